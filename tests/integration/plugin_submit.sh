#!/usr/bin/env bash
# The submit-time check (plugin/submit.c, options.c, settings.c) on a cluster of the test's own
# with aif.so in plugstack.conf and a real aifd, as the ordinary users aiftest (member of
# several projects), aiftest2 (of one) and aiftest3 (of none), with exact output:
#   --aif-project and --aif-sector in the --help of sbatch, salloc and srun;
#   refusals (unknown project, not a member, exhausted, sector, ambiguous, invalid values)
#   print aifd's reason in PostgreSQL style and submit nothing, from sbatch, salloc and srun;
#   a warning is printed and the job submitted; AIF_PROJECT / AIF_SECTOR as defaults; the
#   only project as the default; the resolved project and sector in the prolog's environment
#   (SPANK_AIF_PROJECT, from sbatch, salloc and srun) and a batch job's;
#   require_project=yes|no; on_unreachable=allow|deny with aifd stopped, and with aifd not
#   answering (bounded by timeout); an "error" answer refuses whatever on_unreachable says; invalid plugstack.conf arguments, each named;
#   slurmctld's job_submit/aif: what a tagged job can cost (GPUs x time limit), per node, job,
#   task, array, without or with an unlimited time limit, from sbatch and salloc; nothing
#   for an untagged job.
# shellcheck disable=SC2016 # "$..." in single quotes is for the job or Slurm to expand
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
plugin_cluster_start
# A Prolog script (beside aif.so's job_prolog) that keeps what the prolog environment says of
# the job's project and sector, to check what the submit side recorded there.
printf '#!/bin/sh\nenv | grep ^SPANK_AIF_ | sort >%s/prolog.$SLURM_JOB_ID\n' "$AIFD_WORK" >"$AIFD_WORK/prolog.sh"
chmod 755 "$AIFD_WORK/prolog.sh"
echo "Prolog=$AIFD_WORK/prolog.sh" >>"$SLURM_CONF"
"$AIF_HARNESS" restart-slurmd "$AIF_HARNESS_DIR" >/dev/null
prolog_env() { paste -sd' ' "$AIFD_WORK/prolog.$1"; }

{ budgets_head health energy space; cat; } >"$AIFD_WORK/budgets.yaml" <<YAML
factories:
  - id: fa
    clusters: [$AIF_TEST_CLUSTER]
    budgets: {cur: 1000}
    projects:
      - {id: proja, sectors: [health, energy], budgets: {cur: 100}, members: {users: [aiftest]}}
      - {id: projb, sectors: [energy], budgets: {cur: 100}, members: {users: [aiftest]}}
      - {id: pexh, sectors: [health], budgets: {cur: 1}, members: {users: [aiftest]}}
      - {id: pwarn, sectors: [space], budgets: {cur: 10}, warn_at: [50], members: {users: [aiftest]}}
      - {id: psolo, sectors: [energy, space], budgets: {cur: 100}, members: {users: [aiftest2]}}
YAML
aif_apply "$AIFD_WORK/budgets.yaml"
aifd_start a "cluster = $AIF_TEST_CLUSTER"
sock=$AIFD_WORK/run/a.sock
plugstack_file=$(sed -n 's/^PlugStackConfig=//p' "$SLURM_CONF")
base_line=$(cat "$plugstack_file")

# Usage, so that pexh is exhausted (2 of 1 GPU-hours) and pwarn above its 50 % (6 of 10).
now=$(date +%s)
record() { # record JOB PROJECT GPU_HOURS: a closed interval that ended an hour ago
	aif_send root a usage cluster="$AIF_TEST_CLUSTER" \
		-- event=start job="$1" node=n1 restart=0 gpus=1 time=$((now - 3600 - $3 * 3600)) uid="$(id -u aiftest)" project="$2" \
		-- event=end job="$1" node=n1 restart=0 gpus=1 time=$((now - 3600)) uid="$(id -u aiftest)" project="$2" >/dev/null
}
record 900001 pexh 2
record 900002 pwarn 6
aifd_wait_settled "the usage of pexh and pwarn"
# The ends closed, the budget snapshot reloads (the settler pokes it): 2 GPU-hours, not the
# open interval's up to now.
deadline=$((SECONDS + 5))
until [[ $(aif_field detail "$(aif_send aiftest a check project=pexh)") == "Used 2 of 1 charged GPU-hours." ]]; do
	((SECONDS < deadline)) || fail "pexh's closed usage not seen by aifd's decisions within 5 s"
	sleep 0.1
done

plugstack() { # plugstack ARG...: this run's aif.so line, with these arguments added
	echo "$base_line $*" >"$plugstack_file"
}

# run USER CMD...: CMD as USER, in the run's work directory; sets rc, out and err.
run() {
	local user=$1
	shift
	rc=0
	as_user "$user" "$@" >"$AIFD_WORK/stdout" 2>"$AIFD_WORK/stderr" || rc=$?
	out=$(cat "$AIFD_WORK/stdout")
	err=$(cat "$AIFD_WORK/stderr")
}

jobs_known() { squeue -h -t all -o %i | sort -n | paste -sd, -; }

# What Slurm prints after a plugin refuses in init_post_opt (srun ends its line with a period).
slurm_tail() { # slurm_tail PROGRAM
	local dot=
	[[ $1 != srun ]] || dot=.
	printf '%s: error: spank: required plugin aif.so: init_post_opt() failed with rc=-1\n' "$1"
	printf '%s: error: Plugin stack post-option processing failed%s' "$1" "$dot"
}

# refused WHAT USER EXPECTED CMD...: CMD exits 1 with exactly EXPECTED (then Slurm's own two
# lines) on stderr, and slurmctld knows no new job.
refused() {
	local what=$1 user=$2 expected=$3 before prog
	shift 3
	for prog in "$@"; do [[ $prog != sbatch && $prog != salloc && $prog != srun ]] || break; done
	before=$(jobs_known)
	run "$user" "$@"
	assert_eq "$expected
$(slurm_tail "$prog")" "$err" "$what: stderr"
	assert_eq 1 "$rc" "$what: exit status"
	assert_eq "$before" "$(jobs_known)" "$what: jobs known to slurmctld"
}

# submitted WHAT USER EXPECTED CMD...: CMD (an sbatch -H) submits a job, with exactly EXPECTED on
# stderr; sets job.
submitted() {
	local what=$1 user=$2 expected=$3
	shift 3
	run "$user" "$@"
	assert_eq "$expected" "$err" "$what: stderr"
	assert_eq 0 "$rc" "$what: exit status"
	[[ $out =~ ^Submitted\ batch\ job\ ([0-9]+)$ ]] || fail "$what: sbatch printed '$out'"
	job=${BASH_REMATCH[1]}
	assert_eq "$user" "$(squeue -h -j "$job" -o %u)" "$what: job $job in squeue"
}

# ---- the options in --help ----
help='      --aif-project=NAME      EuroHPC AI Factory project to charge this job'"'"'s
                              GPU-hours to (default: $AIF_PROJECT, else your
                              only project)
      --aif-sector=SECTOR     sector of the work, one of the project'"'"'s (default:
                              $AIF_SECTOR, else the project'"'"'s first)'
for prog in sbatch salloc srun; do
	run aiftest "$prog" --help
	assert_eq 0 "$rc" "$prog --help"
	assert_eq "$help" "$(sed -n '/--aif-project=/,/project.s first)$/p' <<<"$out")" "$prog --help"
done

# ---- refusals: aifd's reason, nothing submitted ----
refused "unknown project" aiftest 'sbatch: error: aif: unknown project "nope"
sbatch: HINT:  "aifctl projects" lists your projects.' \
	sbatch --aif-project=nope --wrap true
refused "not a member" aiftest 'sbatch: error: aif: user "aiftest" is not a member of project "psolo"
sbatch: DETAIL:  Neither the user nor one of its groups (aiftest, aiftestgrp) is among the project'"'"'s members.
sbatch: HINT:  Ask your AI Factory (fa) to add you to the project, or use another project.' \
	sbatch --aif-project=psolo --wrap true
prefixed() { sed "s/^/$1: /" <<<"$2"; } # prefixed PROGRAM TEXT: as PROGRAM prints TEXT
exhausted='error: aif: project "pexh" has used all its GPU-hours for period cur
DETAIL:  Used 2 of 1 charged GPU-hours.
HINT:  Ask your AI Factory (fa) for more GPU-hours, or use another project.'
refused "exhausted project" aiftest "$(prefixed sbatch "$exhausted")" \
	sbatch --aif-project=pexh --wrap true
refused "exhausted project, salloc" aiftest "$(prefixed salloc "$exhausted")" \
	salloc --aif-project=pexh true
refused "exhausted project, srun" aiftest "$(prefixed srun "$exhausted")" \
	srun --aif-project=pexh true
refused "sector not allowed" aiftest 'sbatch: error: aif: sector "space" is not allowed for project "proja"
sbatch: DETAIL:  Allowed sectors: health, energy (the first is the default).
sbatch: HINT:  Use --aif-sector with one of them, or leave it out for the default.' \
	sbatch --aif-project=proja --aif-sector=space --wrap true
ambiguous='sbatch: error: aif: no project given, and user "aiftest" is a member of 4 projects on cluster "aiftest"
sbatch: DETAIL:  Candidates: pexh, proja, projb, pwarn.
sbatch: HINT:  Choose one with --aif-project=NAME or AIF_PROJECT=NAME.'
refused "several projects" aiftest "$ambiguous" sbatch --wrap true
no_project='sbatch: error: aif: no project given, and user "aiftest3" is not a member of any project on cluster "aiftest"
sbatch: HINT:  Ask your AI Factory to add you to a project; "aifctl projects" lists your projects.'
refused "no project, require_project=yes (the default)" aiftest3 "$no_project" sbatch --wrap true

# Values that are not names: refused by sbatch itself, before aifd is asked.
run aiftest sbatch --aif-sector= --wrap true
assert_eq 'sbatch: error: aif: invalid value for --aif-sector: ""
sbatch: DETAIL:  A name has 1 to 128 characters, none of them a control character.
sbatch: error: Invalid --aif-sector argument: ' "$err" "empty --aif-sector"
((rc != 0)) || fail "empty --aif-sector: exit status 0" # sbatch exits 255 on a bad option
run aiftest env AIF_PROJECT=$'pro\tja' sbatch --wrap true
assert_eq 'sbatch: error: aif: invalid value for AIF_PROJECT
sbatch: DETAIL:  A name has 1 to 128 characters, none of them a control character.
sbatch: error: spank: required plugin aif.so: init() failed with rc=-1
sbatch: error: Failed to initialize plugin stack' "$err" "AIF_PROJECT with a tab"
assert_eq 1 "$rc" "AIF_PROJECT with a tab: exit status"

# ---- allowed ----
submitted "warning" aiftest 'sbatch: warning: aif: project "pwarn" has used 60.0% of its GPU-hours for period cur
sbatch: DETAIL:  Used 6 of 10 charged GPU-hours, at or above the 50% warning threshold; 4 remain.
sbatch: HINT:  Ask your AI Factory (fa) for more GPU-hours before they run out.' \
	sbatch -H --aif-project=pwarn --wrap true
submitted "a member's project" aiftest "" sbatch -H --aif-project=proja --wrap true
submitted "AIF_PROJECT" aiftest "" env AIF_PROJECT=proja sbatch -H --wrap true
refused "AIF_PROJECT unknown" aiftest 'sbatch: error: aif: unknown project "nope"
sbatch: HINT:  "aifctl projects" lists your projects.' env AIF_PROJECT=nope sbatch --wrap true
submitted "--aif-project over AIF_PROJECT" aiftest "" env AIF_PROJECT=nope sbatch -H --aif-project=proja --wrap true
refused "AIF_SECTOR" aiftest 'sbatch: error: aif: sector "space" is not allowed for project "proja"
sbatch: DETAIL:  Allowed sectors: health, energy (the first is the default).
sbatch: HINT:  Use --aif-sector with one of them, or leave it out for the default.' \
	env AIF_PROJECT=proja AIF_SECTOR=space sbatch --wrap true

# ---- slurmctld's job_submit/aif: what a tagged job can cost, from what slurmctld received ----
submitted "job_submit: GPUs per node x nodes" aiftest \
	"sbatch: aif: this job can use up to 6 GPU-hours: 4 GPUs x 01:30:00 (its time limit), charged at the cluster's rates" \
	sbatch -H --aif-project=proja -N2 --gpus-per-node=2 --time=90 --wrap true
submitted "job_submit: GPUs per job, days" aiftest \
	"sbatch: aif: this job can use up to 72 GPU-hours: 3 GPUs x 1-00:00:00 (its time limit), charged at the cluster's rates" \
	sbatch -H --aif-project=proja --gpus=3 --time=1-0 --wrap true
submitted "job_submit: --gres" aiftest \
	"sbatch: aif: this job can use up to 0.33 GPU-hours: 1 GPU x 00:20:00 (its time limit), charged at the cluster's rates" \
	sbatch -H --aif-project=proja --gres=gpu:1 -t 20 --wrap true
submitted "job_submit: GPUs per task x tasks" aiftest \
	"sbatch: aif: this job can use up to 2 GPU-hours: 2 GPUs x 01:00:00 (its time limit), charged at the cluster's rates" \
	sbatch -H --aif-project=proja -n2 --gpus-per-task=1 -t 60 --wrap true
submitted "job_submit: an array" aiftest \
	"sbatch: aif: each job of this array can use up to 1 GPU-hours: 1 GPU x 01:00:00 (its time limit), charged at the cluster's rates" \
	sbatch -H --aif-project=proja --array=1-3 --gpus=1 -t 60 --wrap true
submitted "job_submit: no --time" aiftest \
	"sbatch: aif: this job can cost up to 2 GPUs x its partition's default time limit (set --time to know and bound it)" \
	sbatch -H --aif-project=proja --gpus=2 --wrap true
submitted "job_submit: --time=UNLIMITED" aiftest \
	"sbatch: aif: this job has no time limit: what its 1 GPU can cost has no bound (set --time)" \
	sbatch -H --aif-project=proja --gpus=1 --time=UNLIMITED --wrap true
run aiftest salloc --aif-project=proja --gpus=1 -t 30 true
assert_eq 0 "$rc" "job_submit: salloc: exit status (stderr: $err)"
assert_match "salloc: aif: this job can use up to 0.5 GPU-hours: 1 GPU x 00:30:00 \(its time limit\), charged at the cluster's rates" "$err" \
	"job_submit: salloc"

# The only project is the default; the resolved project and sector reach the prolog and epilog
# (SPANK_AIF_PROJECT, SPANK_AIF_SECTOR) and the job (SLURM_SPANK_AIF_...).
run aiftest2 sbatch --parsable -o solo.out --wrap 'echo "$SLURM_SPANK_AIF_PROJECT $SLURM_SPANK_AIF_SECTOR"'
assert_eq "0|" "$rc|$err" "the only project: exit status and stderr"
assert_eq COMPLETED "$(wait_job "$out")" "the only project: job $out"
assert_eq "psolo energy" "$(cat "$AIF_TEST_WORKDIR/solo.out")" "the only project, in the job"
assert_eq "SPANK_AIF_PROJECT=psolo SPANK_AIF_SECTOR=energy" "$(prolog_env "$out")" "the only project, in the prolog"
run aiftest2 sbatch --parsable --aif-sector=space -o solo2.out --wrap 'echo "$SLURM_SPANK_AIF_PROJECT $SLURM_SPANK_AIF_SECTOR"'
assert_eq COMPLETED "$(wait_job "$out")" "the only project, --aif-sector: job $out"
assert_eq "psolo space" "$(cat "$AIF_TEST_WORKDIR/solo2.out")" "the only project and --aif-sector"

# salloc and srun that are allowed run, recorded alike (srun inside the allocation starts a
# step: no new check).
run aiftest salloc --aif-project=proja srun printenv SLURM_JOB_ID
assert_eq 0 "$rc" "salloc --aif-project=proja: exit status (stderr: $err)"
[[ $err != *aif* ]] || fail "salloc --aif-project=proja printed: $err"
assert_eq "SPANK_AIF_PROJECT=proja SPANK_AIF_SECTOR=health" "$(prolog_env "$out")" "salloc, in the prolog"
run aiftest srun --aif-project=proja --aif-sector=energy printenv SLURM_JOB_ID
assert_eq "0|" "$rc|$err" "srun --aif-project=proja: exit status and stderr"
assert_eq "SPANK_AIF_PROJECT=proja SPANK_AIF_SECTOR=energy" "$(prolog_env "$out")" "srun, in the prolog"

# ---- require_project=no: a member of no project submits untagged jobs, silently ----
plugstack require_project=no
submitted "no project, require_project=no" aiftest3 "" sbatch -H --wrap true
submitted "no project, GPUs, require_project=no: nothing from job_submit/aif" aiftest3 "" \
	sbatch -H --gpus=1 -t 10 --wrap true
run aiftest3 sbatch -H -v --wrap true
assert_match 'sbatch: aif: no project given, and user "aiftest3" is not a member of any project on cluster "aiftest"; the job is not an AI Factory job' \
	"$err" "require_project=no, sbatch -v"
refused "several projects, require_project=no" aiftest "$ambiguous" sbatch --wrap true
refused "a project given, require_project=no" aiftest3 'sbatch: error: aif: user "aiftest3" is not a member of project "proja"
sbatch: DETAIL:  Neither the user nor one of its groups (aiftest3) is among the project'"'"'s members.
sbatch: HINT:  Ask your AI Factory (fa) to add you to the project, or use another project.' \
	sbatch --aif-project=proja --wrap true
plugstack require_project=yes
refused "no project, require_project=yes" aiftest3 "$no_project" sbatch --wrap true

# ---- invalid plugstack.conf arguments: each one named, nothing submitted ----
plugstack server=aifd:x timeout=0 on_unreachable=maybe require_project=perhaps spool_dir=spool \
	munge_socket=munge.sock servr=/x nokey
before=$(jobs_known)
run aiftest sbatch --aif-project=proja --wrap true
assert_eq 'sbatch: error: aif: plugstack.conf: invalid value for setting "server": "aifd:x"
sbatch: HINT:  Use an absolute Unix socket path, or host, host:port or [IPv6]:port for TCP.
sbatch: error: aif: plugstack.conf: invalid value for setting "timeout": "0"
sbatch: DETAIL:  The value must be a duration from 100ms to 60000ms.
sbatch: HINT:  Write a whole number with a unit: ms, s, min or h (a bare number is seconds).
sbatch: error: aif: plugstack.conf: invalid value for setting "on_unreachable": "maybe"
sbatch: HINT:  Valid values are: allow, deny.
sbatch: error: aif: plugstack.conf: invalid value for setting "require_project": "perhaps"
sbatch: HINT:  Use yes or no.
sbatch: error: aif: plugstack.conf: invalid value for setting "spool_dir": "spool"
sbatch: DETAIL:  The value must be an absolute path.
sbatch: error: aif: plugstack.conf: invalid value for setting "munge_socket": "munge.sock"
sbatch: DETAIL:  The value must be an absolute path.
sbatch: error: aif: plugstack.conf: unrecognized setting "servr"
sbatch: HINT:  Valid settings are: server, timeout, on_unreachable, require_project, spool_dir, munge_socket.
sbatch: error: aif: plugstack.conf: invalid argument "nokey"
sbatch: HINT:  Arguments have the form key=value.
sbatch: error: spank: required plugin aif.so: init() failed with rc=-1
sbatch: error: Failed to initialize plugin stack' "$err" "invalid plugstack.conf arguments"
assert_eq 1 "$rc" "invalid plugstack.conf arguments: exit status"
assert_eq "$before" "$(jobs_known)" "invalid plugstack.conf arguments: jobs known to slurmctld"

# ---- aifd answers error (it cannot check credentials: its munged is not there) ----
# An answer, not a transport failure: refused whatever on_unreachable says (docs/plugin.md).
aifd_start b "munge_socket = $AIFD_WORK/no-munged.socket"
plugstack server="$AIFD_WORK/run/b.sock" # on_unreachable=allow is the default
refused "aifd answers error, on_unreachable=allow" aiftest "sbatch: error: aif: job refused: aifd could not check it
sbatch: DETAIL:  aifd could not check the request's MUNGE credential. munge: Failed to access \"$AIFD_WORK/no-munged.socket\": No such file or directory (Did you start munged?).
sbatch: HINT:  Check that munged is running on aifd's host." \
	sbatch -H --aif-project=proja --wrap true
plugstack server="$AIFD_WORK/run/b.sock" on_unreachable=deny
refused "aifd answers error, on_unreachable=deny, srun" aiftest "srun: error: aif: job refused: aifd could not check it
srun: DETAIL:  aifd could not check the request's MUNGE credential. munge: Failed to access \"$AIFD_WORK/no-munged.socket\": No such file or directory (Did you start munged?).
srun: HINT:  Check that munged is running on aifd's host." \
	srun --aif-project=proja true
# shellcheck disable=SC2154 # AIFD_PID_b: set by aifd_start
stop_pid "$AIFD_PID_b"

# ---- aifd that does not answer (stopped with SIGSTOP): bounded by timeout ----
# shellcheck disable=SC2154 # AIFD_PID_a: set by aifd_start
kill -STOP "$AIFD_PID_a"
timed() { # timed WHAT: run's elapsed time below 1 s timeout + 1.5 s
	local ms=$(((${EPOCHREALTIME/./} - t0) / 1000))
	((ms < 2500)) || fail "$1: took $ms ms with timeout=1s"
}
plugstack timeout=1s
t0=${EPOCHREALTIME/./}
submitted "aifd silent, on_unreachable=allow" aiftest "sbatch: warning: aif: timed out after 1000 ms waiting for aifd at $sock; the job is submitted without a budget check" \
	sbatch -H --aif-project=pexh --wrap true
timed "aifd silent, on_unreachable=allow"
plugstack timeout=1s on_unreachable=deny
t0=${EPOCHREALTIME/./}
refused "aifd silent, on_unreachable=deny" aiftest "sbatch: error: aif: job refused: timed out after 1000 ms waiting for aifd at $sock
sbatch: DETAIL:  This cluster refuses jobs while aifd, which checks GPU-hour budgets, cannot answer (on_unreachable=deny).
sbatch: HINT:  Try again in a few minutes. If it persists, contact your site's support." \
	sbatch --aif-project=proja --wrap true
timed "aifd silent, on_unreachable=deny"
kill -CONT "$AIFD_PID_a"

# ---- aifd stopped ----
stop_pid "$AIFD_PID_a"
plugstack # on_unreachable=allow is the default
submitted "aifd stopped, on_unreachable=allow" aiftest "sbatch: warning: aif: could not connect to aifd at $sock: No such file or directory; the job is submitted without a budget check" \
	sbatch -H --aif-project=pexh --wrap true
plugstack on_unreachable=deny
refused "aifd stopped, on_unreachable=deny" aiftest "sbatch: error: aif: job refused: could not connect to aifd at $sock: No such file or directory
sbatch: DETAIL:  This cluster refuses jobs while aifd, which checks GPU-hour budgets, cannot answer (on_unreachable=deny).
sbatch: HINT:  Try again in a few minutes. If it persists, contact your site's support." \
	sbatch --aif-project=proja --wrap true
refused "aifd stopped, on_unreachable=deny, srun" aiftest "srun: error: aif: job refused: could not connect to aifd at $sock: No such file or directory
srun: DETAIL:  This cluster refuses jobs while aifd, which checks GPU-hour budgets, cannot answer (on_unreachable=deny).
srun: HINT:  Try again in a few minutes. If it persists, contact your site's support." \
	srun --aif-project=proja true
echo "plugin submit: all checks passed"
