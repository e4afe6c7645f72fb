#!/usr/bin/env bash
# The start-time admission in slurmstepd (plugin/admit.c), on a two-node cluster of the test's
# own with aif.so in plugstack.conf and a real aifd: a member's job runs; an ordinary user who
# bypasses the submit-time check (a private SLURM_CONF whose plugstack lacks aif) to charge a
# project they are not a member of gets a FAILED job with the reason in its stderr, and both
# nodes stay IDLE; a user's own SPANK plugin that forges AIF_PROJECT in the job control
# environment (what the prolog and epilog read) gets no GPU-hour charged to the forged project;
# a forged SLURM_SPANK_ option variable is refused at submit; a later srun step of an admitted
# job is not refused once its project is exhausted; a control character in AIF_PROJECT, or a
# missing or false SLURM_CLUSTER_NAME in a step's environment, refuses the step (never an
# "error" that on_unreachable=allow lets through); an "error" answer refuses the step whatever
# on_unreachable says; with SlurmdParameters=contain_spank (24.11 and later) the answer, read
# in a child of slurmstepd, still admits and refuses.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
plugin_cluster_start
user=$AIF_TEST_USER

{ budgets_head health; cat; } >"$AIFD_WORK/budgets.yaml" <<YAML
factories:
  - id: fa
    clusters: [$AIF_TEST_CLUSTER]
    budgets: {cur: 1000}
    projects:
      - {id: mine, sectors: [health], budgets: {cur: 100}, members: {users: [$user]}}
      - {id: theirs, sectors: [health], budgets: {cur: 100}, members: {users: [aiftest2]}}
      - {id: small, sectors: [health], budgets: {cur: 1}, members: {users: [$user]}}
YAML
aif_apply "$AIFD_WORK/budgets.yaml"
plugin_aifd_start

nodes_state() { sinfo -h -N -o '%N %T' | sort | paste -sd,; }
submit() { # submit NAME SBATCH-ARG...: as $user, in the run's work dir; prints the job id
	local name=$1
	shift
	as_user "$user" sbatch --parsable -o "$name.out" -e "$name.err" "$@"
}

# A member's two-node job runs.
job=$(submit ok -N2 --gpus-per-node=1 --aif-project=mine --wrap 'srun -N2 hostname')
assert_eq COMPLETED "$(wait_job "$job")" "a member's job"
assert_eq "ok|mine" "$(psql -d "$AIFD_DB" -Atc "SELECT verdict, project_id FROM aif.admissions WHERE job_id = $job")" \
	"its admission"

# The bypass: a private slurm.conf whose plugstack has no aif, and AIF_PROJECT naming a
# project of someone else. sbatch cannot check anything; slurmstepd refuses the job.
sed "s|^PlugStackConfig=.*|PlugStackConfig=$AIFD_WORK/empty-plugstack.conf|" "$SLURM_CONF" >"$AIFD_WORK/private.conf"
install -m 644 /dev/null "$AIFD_WORK/empty-plugstack.conf"
chmod 644 "$AIFD_WORK/private.conf"
job=$(as_user "$user" env SLURM_CONF="$AIFD_WORK/private.conf" AIF_PROJECT=theirs \
	sbatch --parsable -N2 --gpus-per-node=1 -o bypass.out -e bypass.err --wrap 'echo ran')
assert_eq FAILED "$(wait_job "$job")" "the bypassing job"
err=$(cat "$AIF_TEST_WORKDIR/bypass.err")
assert_match "aif: user \"$user\" is not a member of project \"theirs\"" "$err" "the reason in the job's stderr"
[[ ! -s $AIF_TEST_WORKDIR/bypass.out ]] || fail "the refused job's script ran: $(cat "$AIF_TEST_WORKDIR/bypass.out")"
assert_eq "n1 idle,n2 idle" "$(nodes_state)" "nodes after the refusal"
assert_eq "refuse" "$(psql -d "$AIFD_DB" -Atc "SELECT verdict FROM aif.admissions WHERE job_id = $job")" \
	"its admission"

# The forged job control environment. The user builds a SPANK plugin of their own
# (data/forge_spank.c) and loads it through a private slurm.conf, after aif.so or instead of
# it: it sets AIF_PROJECT in the job control environment to "theirs", so that the prolog's and
# epilog's usage records name "theirs". The three jobs run side by side (1 GPU per node each).
cc -shared -fPIC -Wall -Werror -o "$AIFD_WORK/forge.so" "$AIF_SRC/tests/integration/data/forge_spank.c"
chmod 755 "$AIFD_WORK/forge.so"
forge_conf() { # forge_conf NAME PLUGSTACK-LINE...: a private slurm.conf with these plugstack lines
	printf '%s\n' "${@:2}" >"$AIFD_WORK/$1-plugstack.conf"
	sed "s|^PlugStackConfig=.*|PlugStackConfig=$AIFD_WORK/$1-plugstack.conf|" "$SLURM_CONF" >"$AIFD_WORK/$1.conf"
	chmod 644 "$AIFD_WORK/$1-plugstack.conf" "$AIFD_WORK/$1.conf"
}
# The cluster's own plugstack line for aif.so (users can read it), then theirs.
aif_line=$(cat "$(sed -n 's/^PlugStackConfig=//p' "$SLURM_CONF")")
forge_conf forge-aif "$aif_line" "required $AIFD_WORK/forge.so"
forge_conf forge "required $AIFD_WORK/forge.so"
forge() { # forge NAME CONF [VAR=VALUE | --SBATCH-OPTION]...: sbatch as $user, prints the job id
	local name=$1 conf=$2 arg vars=() opts=()
	shift 2
	for arg; do
		if [[ $arg == --* ]]; then opts+=("$arg"); else vars+=("$arg"); fi
	done
	# shellcheck disable=SC2016 # the job expands it
	as_user "$user" env -u AIF_PROJECT SLURM_CONF="$AIFD_WORK/$conf.conf" FORGE_PROJECT=theirs "${vars[@]}" \
		sbatch --parsable -N2 --gpus-per-node=1 -o "$name.out" -e "$name.err" "${opts[@]}" \
		--wrap 'echo "$SLURM_SPANK_AIF_PROJECT"'
}
# 1. Their own project asked for, by the option (aif.so's submit-time check passes) and by
# AIF_PROJECT (aif.so not loaded): admitted for "mine", so charged to "mine".
opt_job=$(forge forge-opt forge-aif --aif-project=mine)
env_job=$(forge forge-env forge AIF_PROJECT=mine)
# ... and a forged value that is no name at all (a control character; 5,000 bytes): the usage
# records leave it out rather than fail, so the job is still charged.
ctl_job=$(forge forge-ctl forge-aif --aif-project=mine FORGE_PROJECT=$'bad\x01')
long_job=$(forge forge-long forge-aif --aif-project=mine FORGE_PROJECT="$(printf 'x%.0s' $(seq 5000))")
# 2. No project, and two of their own: the admission refuses the job.
none_job=$(forge forge-none forge)
charged() { # charged JOB: the job's usage intervals, node|project|open or closed, comma-separated
	psql -d "$AIFD_DB" -Atc "SELECT node || '|' || project_id || '|'
		|| CASE WHEN ended_at IS NULL THEN 'open' ELSE 'closed' END
		FROM aif.usage_intervals WHERE job_id = $1 ORDER BY node, restart_count" | paste -sd,
}
for job in "$opt_job" "$env_job" "$ctl_job" "$long_job"; do
	assert_eq COMPLETED "$(wait_job "$job")" "the forging job $job"
	assert_eq "ok|mine" "$(psql -d "$AIFD_DB" -Atc \
		"SELECT verdict, project_id FROM aif.admissions WHERE job_id = $job")" "the admission of the forging job $job"
	# The epilog has answered once the job ended; a moment more for a spooled record.
	deadline=$((SECONDS + 10))
	until [[ $(charged "$job") =~ ^n1\|[^,]*\|closed,n2\|[^,]*\|closed$ ]] || ((SECONDS >= deadline)); do
		sleep 0.2
	done
	assert_eq "n1|mine|closed,n2|mine|closed" "$(charged "$job")" "the usage intervals of the forging job $job"
done
# The forgery was real: the job saw the forged value.
assert_eq theirs "$(cat "$AIF_TEST_WORKDIR/forge-opt.out")" "SLURM_SPANK_AIF_PROJECT in the job (option)"
assert_eq theirs "$(cat "$AIF_TEST_WORKDIR/forge-env.out")" "SLURM_SPANK_AIF_PROJECT in the job (AIF_PROJECT)"
assert_eq FAILED "$(wait_job "$none_job")" "the forging job without a project"
err=$(cat "$AIF_TEST_WORKDIR/forge-none.err")
assert_match "aif: no project given, and user \"$user\" is a member of 2 projects" "$err" \
	"the reason in the forging job's stderr"
[[ ! -s $AIF_TEST_WORKDIR/forge-none.out ]] || fail "the refused forging job's script ran"
assert_eq "" "$(psql -d "$AIFD_DB" -Atc "SELECT job_id || '|' || node FROM aif.usage_intervals
	WHERE project_id = 'theirs' ORDER BY 1" | paste -sd,)" "usage intervals (job|node) charged to \"theirs\""
assert_eq "n1 idle,n2 idle" "$(nodes_state)" "nodes after the forging jobs"

# 3. The option's value forged in the variable that carries it into nested sbatch: sbatch
# reads it as --aif-project, and aif.so's submit-time check refuses it.
if out=$(as_user "$user" env SLURM_SPANK__SLURM_SPANK_OPTION_aif_aif_project=theirs \
	sbatch --parsable -N2 --gpus-per-node=1 -o forged-option.out --wrap 'echo ran' 2>&1); then
	fail "sbatch took a forged SLURM_SPANK__SLURM_SPANK_OPTION_aif_aif_project: $out"
fi
assert_match "is not a member of project \"theirs\"" "$out" "the refusal of the forged option variable"

# A later step of an admitted job is not refused, though its project ran out meanwhile.
cat >"$AIF_TEST_WORKDIR/later.sh" <<'JOB'
#!/bin/bash
while [[ ! -e go ]]; do sleep 0.2; done
srun -N1 echo later step ran
JOB
chmod 644 "$AIF_TEST_WORKDIR/later.sh"
job=$(submit later -N1 --gpus-per-node=1 --aif-project=small later.sh)
deadline=$((SECONDS + 30))
until [[ $(squeue -h -j "$job" -o %T) == RUNNING ]]; do
	((SECONDS < deadline)) || fail "job $job did not start"
	sleep 0.2
done
# Exhaust "small": 2 GPU-hours used elsewhere.
aif_send root a usage cluster="$AIF_TEST_CLUSTER" -- event=start job=999999 node=n9 restart=0 gpus=2 \
	time=$(($(date +%s) - 3600)) uid="$(id -u "$user")" project=small >/dev/null
wait_answer a refuse "small exhausted" "$user" check project=small
touch "$AIF_TEST_WORKDIR/go"
assert_eq COMPLETED "$(wait_job "$job")" "the admitted job with a later step"
assert_eq "later step ran" "$(cat "$AIF_TEST_WORKDIR/later.out")" "the later step's output"

# The job's environment is the user's: nothing in it may turn the admission into an "error"
# that on_unreachable=allow lets through. With the private slurm.conf (no submit-time check):
# 1. a control character in AIF_PROJECT, by a member of the exhausted "small";
job=$(as_user "$user" env SLURM_CONF="$AIFD_WORK/private.conf" AIF_PROJECT=$'\x01' \
	sbatch --parsable -N1 --gpus-per-node=1 -o ctl.out -e ctl.err --wrap 'echo ran')
assert_eq FAILED "$(wait_job "$job")" "the job with a control character in AIF_PROJECT"
assert_match "aif: invalid value for AIF_PROJECT" "$(cat "$AIF_TEST_WORKDIR/ctl.err")" "its reason"
[[ ! -s $AIF_TEST_WORKDIR/ctl.out ]] || fail "the job with a control character in AIF_PROJECT ran"
# 2. a step whose environment lacks SLURM_CLUSTER_NAME or names another cluster, by a
# non-member: the cluster is aifd's own, so the step is refused as not a member.
for cluster_env in "-u SLURM_CLUSTER_NAME" "SLURM_CLUSTER_NAME=bogus"; do
	# shellcheck disable=SC2086 # two words: env's option and its argument
	if out=$(as_user "$user" env SLURM_CONF="$AIFD_WORK/private.conf" AIF_PROJECT=theirs \
		salloc -N1 --gpus-per-node=1 env $cluster_env srun -N1 echo step ran 2>&1); then
		fail "salloc ... env $cluster_env srun: the step of a non-member succeeded: $out"
	fi
	[[ $out != *"step ran"* ]] || fail "env $cluster_env: the step of a non-member ran: $out"
	assert_match "aif: user \"$user\" is not a member of project \"theirs\"" "$out" \
		"env $cluster_env: the step's refusal"
done
# PostgreSQL stops answering while jobs start: every process of it stopped (SIGSTOP: a hung
# server or a network black hole, not a shutdown that closes connections). Each start is
# answered by aifd within the plugin's timeout, from its budget snapshot (docs/aifd.md,
# "Database connections"): the jobs run, and none is let through by on_unreachable=allow
# (slurmstepd logs "admitted without aifd" when it is). The prologs' and epilogs' usage waits
# at most the plugin's timeout and stays in the nodes' spools; nothing is lost once the
# database answers again.
pg_main=$(head -1 "$AIF_HARNESS_DIR/pg/data/postmaster.pid")
pg_pids="$pg_main $(ps -o pid= --ppid "$pg_main" | xargs)"
# shellcheck disable=SC2086 # one pid per word
kill -STOP $pg_pids
trap 'kill -CONT $pg_pids 2>/dev/null; aifd_cleanup' EXIT
hung=()
for i in 1 2 3; do
	hung+=("$(submit "hung$i" -N2 --gpus-per-node=1 --aif-project=mine --wrap 'srun -N2 true')")
done
for job in "${hung[@]}"; do
	assert_eq COMPLETED "$(wait_job "$job" 90)" "job $job, started with the database hung"
	if grep -h "job $job admitted without aifd" "$AIF_HARNESS_DIR"/slurm/log/slurmd.*.log; then
		fail "job $job: aifd did not answer its admission within the plugin's timeout"
	fi
done
aifd_wait_log a "admissions lost its database connection" "the hung database in aifd's log"
# shellcheck disable=SC2086
kill -CONT $pg_pids
trap aifd_cleanup EXIT
# The next job on both nodes sends what their spools kept.
job=$(submit after-hung -N2 --gpus-per-node=1 --aif-project=mine --wrap 'true')
assert_eq COMPLETED "$(wait_job "$job" 90)" "the job after the database answers again"
jobs_list=$(IFS=,; echo "${hung[*]},$job")
wait_sql "SELECT count(*) FROM aif.usage_intervals WHERE job_id IN ($jobs_list) AND ended_at IS NOT NULL" \
	8 "every node's interval of the jobs started while the database was hung, closed" 60
# The allocations' epilogs may still run (COMPLETING); never a drained node.
deadline=$((SECONDS + 20))
until [[ $(nodes_state) == "n1 idle,n2 idle" ]] || ((SECONDS >= deadline)); do sleep 0.2; done
assert_eq "n1 idle,n2 idle" "$(nodes_state)" "nodes at the end"

# aifd answers "error" to an admission (here: it cannot check credentials, its munged is not
# there): an answer, not a transport failure, so the step is refused although
# on_unreachable=allow (the default); never a drained node.
aifd_start b "munge_socket = $AIFD_WORK/no-munged.socket"
plugstack_file=$(sed -n 's/^PlugStackConfig=//p' "$SLURM_CONF")
sed -i "s|server=[^ ]*|server=$AIFD_WORK/run/b.sock|" "$plugstack_file"
"$AIF_HARNESS" restart-slurmd "$AIF_HARNESS_DIR" >/dev/null
job=$(as_user "$user" env SLURM_CONF="$AIFD_WORK/private.conf" AIF_PROJECT=mine \
	sbatch --parsable -N1 --gpus-per-node=1 -o err.out -e err.err --wrap 'echo ran')
assert_eq FAILED "$(wait_job "$job")" "the job aifd answered error to"
assert_eq "aif: job refused: aifd could not admit it
aif: DETAIL:  aifd could not check the request's MUNGE credential. munge: Failed to access \"$AIFD_WORK/no-munged.socket\": No such file or directory (Did you start munged?).
aif: HINT:  Check that munged is running on aifd's host." \
	"$(grep -o 'aif: .*' "$AIF_TEST_WORKDIR/err.err")" \
	"the refusal in the job's stderr ($(cat "$AIF_TEST_WORKDIR/err.err"))"
[[ ! -s $AIF_TEST_WORKDIR/err.out ]] || fail "the job aifd answered error to ran"
if grep -h "job $job admitted without aifd" "$AIF_HARNESS_DIR"/slurm/log/slurmd.*.log; then
	fail "job $job: an error answer was let through by on_unreachable=allow"
fi
deadline=$((SECONDS + 20))
until [[ $(nodes_state) == "n1 idle,n2 idle" ]] || ((SECONDS >= deadline)); do sleep 0.2; done
assert_eq "n1 idle,n2 idle" "$(nodes_state)" "nodes after the job aifd answered error to"

# SlurmdParameters=contain_spank (24.11 and later): slurmstepd runs user_init, where aif.so
# reads aifd's answer, in a child that shares its memory but not its file descriptors
# (docs/slurm.md). The answer still decides: a member's job runs, a bypassing job is refused
# with its reason, and no node is drained.
if "$AIF_HARNESS" slurm-at-least 24.11; then
	sed -i "s|server=[^ ]*|server=$AIFD_WORK/run/a.sock|" "$plugstack_file"
	sed -i 's|^SlurmdParameters=.*|&,contain_spank|' "$SLURM_CONF"
	scontrol reconfigure
	"$AIF_HARNESS" restart-slurmd "$AIF_HARNESS_DIR" >/dev/null
	assert_match "contain_spank" "$(scontrol show config | grep '^SlurmdParameters')" "SlurmdParameters"
	job=$(submit contained -N2 --gpus-per-node=1 --aif-project=mine --wrap 'srun -N2 hostname')
	assert_eq COMPLETED "$(wait_job "$job")" "a member's job with contain_spank"
	assert_eq 2 "$(wc -l <"$AIF_TEST_WORKDIR/contained.out")" "its srun step's output"
	job=$(as_user "$user" env SLURM_CONF="$AIFD_WORK/private.conf" AIF_PROJECT=theirs \
		sbatch --parsable -N2 --gpus-per-node=1 -o contained-bypass.out -e contained-bypass.err --wrap 'echo ran')
	assert_eq FAILED "$(wait_job "$job")" "the bypassing job with contain_spank"
	assert_match "aif: user \"$user\" is not a member of project \"theirs\"" \
		"$(cat "$AIF_TEST_WORKDIR/contained-bypass.err")" "its reason in the job's stderr"
	[[ ! -s $AIF_TEST_WORKDIR/contained-bypass.out ]] || fail "the bypassing job ran with contain_spank"
	deadline=$((SECONDS + 20))
	until [[ $(nodes_state) == "n1 idle,n2 idle" ]] || ((SECONDS >= deadline)); do sleep 0.2; done
	assert_eq "n1 idle,n2 idle" "$(nodes_state)" "nodes with contain_spank"
	echo "plugin admission: checked with contain_spank too"
fi
echo "plugin admission: all checks passed"
