#!/usr/bin/env bash
# aifd serving requests with real MUNGE and PostgreSQL (docs/protocol.md): every decision
# reason, table-driven, through the real daemon; who may admit and record usage; a replayed
# credential; the same usage twice stored once; status of one's own projects; an aifctl
# apply seen within seconds; SIGTERM.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
load_harness
aifd_setup

now=$(date +%s)
uid_of() { id -u "$1"; }
gid_of() { id -g "$1"; }

# Budgets: the current period is "cur" (30 days either side of today), "old" is long past.
budgets() { # budgets PEXH_BUDGET
	budgets_head health energy space
	cat <<YAML
  old: {start: 2000-01-01, end: 2000-02-01}
factories:
  - id: fa
    clusters: [aiftest]
    budgets: {cur: 1000}
    warn_at: [50]
    projects:
      - {id: proja, sectors: [health, energy], budgets: {cur: 10}, members: {users: [aiftest]}}
      - {id: projb, sectors: [energy], budgets: {cur: 10}, members: {groups: [aiftestgrp]}}
      - {id: pexh, sectors: [health], budgets: {cur: $1}, members: {users: [aiftest2]}}
      - {id: pwarn, sectors: [health], budgets: {cur: 10}, members: {users: [aiftest2, aiftest3]}}
$( [[ ${2:-} == with-pret ]] && echo "      - {id: pret, sectors: [health], budgets: {cur: 10}, members: {users: [aiftest]}}" )
  - id: fnb
    clusters: [aiftest]
    budgets: {old: 10}
    projects:
      - {id: pnb, sectors: [health], members: {users: [aiftest2]}}
  - id: ffull
    clusters: [aiftest]
    budgets: {cur: 3}
    projects:
      - {id: pf1, sectors: [health], members: {users: [aiftest2]}}
  - id: ffw
    clusters: [aiftest]
    budgets: {cur: 10}
    warn_at: [50]
    projects:
      - {id: pfw, sectors: [health], members: {users: [aiftest2]}}
  - id: fother
    clusters: [elsewhere]
    budgets: {cur: 10}
    projects:
      - {id: poth, sectors: [health], members: {users: [aiftest]}}
YAML
}
apply() { # apply FILE
	"$AIF_BUILD_DIR/aifctl/aifctl" --db "$AIFD_CONNINFO" apply "$1" >/dev/null
}
budgets 1 with-pret >"$AIFD_WORK/b1.yaml"
apply "$AIFD_WORK/b1.yaml"
# The jobs here are records without Slurm jobs: reconciliation would close their intervals
# (slurmctld does not know them) a minute after the start, in the middle of the checks of
# what is used. Only its pass at start-up runs.
aifd_start a "reconcile_interval = 1h"

# field KEY ANSWER: the value of KEY in an answer's header

# Usage: closed intervals of H hours x 1 GPU, ended an hour ago, so that the budgets are where
# the table needs them. Sent by root.
job=1000
record() { # record PROJECT GPU_HOURS [USER]
	local user=${3:-aiftest2} start=$((now - 3600 - $2 * 3600))
	job=$((job + 1))
	answer=$(aif_send root a usage cluster=aiftest \
		-- event=start job=$job node=n1 restart=0 gpus=1 time=$start uid="$(uid_of "$user")" project="$1" \
		-- event=end job=$job node=n1 restart=0 gpus=1 time=$((now - 3600)) uid="$(uid_of "$user")" project="$1")
	assert_eq ok "$(head -1 <<<"$answer")" "usage for $1: $answer"
	assert_eq 2 "$(aif_field acked "$answer")" "acked records for $1"
}
record pexh 2
record pwarn 6
record pf1 4
record pfw 6
record pret 1 aiftest
aifd_wait_settled "usage of the budgets' table"
# pret is removed from the file: it has usage, so it is retired, not deleted.
budgets 1 >"$AIFD_WORK/b2.yaml"
apply "$AIFD_WORK/b2.yaml"
assert_eq t "$(psql -d "$AIFD_DB" -Atc "SELECT retired_at IS NOT NULL FROM aif.projects WHERE id = 'pret'")" "pret retired"
aifd_wait_log a "budgets and usage loaded \(budgets changed\)" "reload after apply"

# The table: SENDER | KIND | FIELDS | ANSWER | REGEX on message (or project/sector on ok/warn)
a1=$(uid_of aiftest) g1=$(gid_of aiftest)
grp=$(getent group aiftestgrp | cut -d: -f3)
while IFS='|' read -r sender kind fields expected regex; do
	sender=${sender// /} kind=${kind// /} expected=${expected// /}
	regex=${regex#"${regex%%[! ]*}"} regex=${regex%"${regex##*[! ]}"}
	[[ -z $sender || $sender == \#* ]] && continue
	# shellcheck disable=SC2086
	answer=$(aif_send "$sender" a "$kind" cluster=aiftest $fields)
	what="$sender $kind $fields"
	assert_eq "$expected" "$(head -1 <<<"$answer")" "$what: $answer"
	assert_eq 0123456789abcdef "$(aif_field nonce "$answer")" "$what: nonce echoed"
	case $expected in
	ok) assert_match "$regex" "project=$(aif_field project "$answer") sector=$(aif_field sector "$answer")" "$what" ;;
	*) assert_match "$regex" "$(aif_field message "$answer")" "$what" ;;
	esac
done <<TABLE
aiftest  | check | project=proja                  | ok     | ^project=proja sector=health$
aiftest  | check | project=proja sector=energy    | ok     | ^project=proja sector=energy$
aiftest  | check | project=nope                   | refuse | ^unknown project "nope"$
aiftest  | check | project=pret                   | refuse | ^project "pret" is retired$
aiftest  | check | project=pexh                   | refuse | ^user "aiftest" is not a member of project "pexh"$
aiftest  | check | project=poth                   | refuse | ^project "poth" is not available on cluster "aiftest"$
root     | admit | job=1 uid=65534 gid=65534      | refuse | ^no project given, and user "nobody" is not a member of any project on cluster "aiftest"$
aiftest  | check |                                | refuse | ^no project given, and user "aiftest" is a member of 2 projects on cluster "aiftest"$
aiftest  | check | project=proja sector=space     | refuse | ^sector "space" is not allowed for project "proja"$
aiftest2 | check | project=pnb                    | refuse | ^project "pnb" has no GPU-hours for period cur$
aiftest2 | check | project=pexh                   | refuse | ^project "pexh" has used all its GPU-hours for period cur$
aiftest2 | check | project=pf1                    | refuse | ^AI Factory "ffull" has used all its GPU-hours for period cur$
aiftest2 | check | project=pwarn                  | warn   | ^project "pwarn" has used 60.0% of its GPU-hours for period cur$
aiftest2 | check | project=pfw                    | warn   | ^AI Factory "ffw" has used 60.0% of its GPU-hours for period cur$
aiftest3 | check |                                | warn   | ^project "pwarn" has used 60.0%
# admit: the job's uid and gid as Slurm gives them, from root or SlurmUser only
root     | admit | job=2 uid=$a1 gid=$g1 project=proja | ok | ^project=proja sector=health$
aiftest2 | admit | job=3 uid=$a1 gid=$g1 project=projb | ok | ^project=projb sector=energy$
root     | admit | job=4 uid=4242 gid=$grp project=projb | ok | ^project=projb sector=energy$
root     | admit | job=5 uid=4242 gid=4242 project=projb | refuse | ^uid 4242 is not a member of project "projb"$
aiftest  | admit | job=6 uid=$a1 gid=$g1 project=proja | refuse | ^permission denied to admit jobs$
aiftest  | usage | -- event=start job=7 node=n1 restart=0 gpus=4 time=$now uid=$a1 project=proja | refuse | ^permission denied to record usage$
aiftest3 | usage | -- event=start job=7 node=n1 restart=0 gpus=4 time=$now uid=$a1 project=proja | refuse | ^permission denied to record usage$
TABLE
assert_eq 0 "$(psql -d "$AIFD_DB" -Atc "SELECT count(*) FROM aif.usage_intervals WHERE job_id = 7")" \
	"usage from ordinary users stored"


# An admission is decided once per job: later admits of the same job (other nodes, later steps)
# get the first answer, whatever they ask for; a job not permitted to ask left no trace.
answer=$(aif_send root a admit cluster=aiftest job=2 uid="$a1" gid="$g1" project=projb)
assert_eq "ok proja" "$(head -1 <<<"$answer") $(aif_field project "$answer")" "job 2 admitted again: $answer"
answer=$(aif_send aiftest2 a admit cluster=aiftest job=5 uid=4242 gid="$grp" project=projb)
assert_eq refuse "$(head -1 <<<"$answer")" "job 5 refused again: $answer"
assert_match '^uid 4242 is not a member of project "projb"$' "$(aif_field message "$answer")" "job 5's first reason"
assert_eq "1|refuse||65534
2|ok|proja|$a1
3|ok|projb|$a1
4|ok|projb|4242
5|refuse||4242" "$(psql -d "$AIFD_DB" -Atc "SELECT job_id, verdict, project_id, uid FROM aif.admissions ORDER BY job_id")" \
	"admissions kept"

# An admit aifd cannot accept is refused, never answered "error" (which a plugin with
# on_unreachable=allow would have let through): another cluster, an invalid project name.
# Without a cluster, the admit is for aifd's own (the plugin sends none).
answer=$(aif_send root a admit cluster=bogus job=908 uid="$a1" gid="$g1" project=proja)
assert_eq refuse "$(head -1 <<<"$answer")" "admit for another cluster: $answer"
assert_match '^request for cluster "bogus" sent to the aifd of cluster "aiftest"$' "$(aif_field message "$answer")" \
	"admit for another cluster"
answer=$(aif_send root a admit job=909 uid="$a1" gid="$g1" project=$'\x01')
assert_eq refuse "$(head -1 <<<"$answer")" "admit with a control character in the project: $answer"
assert_eq 0123456789abcdef "$(aif_field nonce "$answer")" "the invalid admit's nonce echoed"
assert_match '^invalid request: .*invalid value for field "project"' "$(aif_field message "$answer")" \
	"admit with a control character in the project"
answer=$(aif_send root a admit job=910 uid="$a1" gid="$g1" project=proja)
assert_eq "ok|proja" "$(head -1 <<<"$answer")|$(aif_field project "$answer")" "admit without a cluster: $answer"

# A replayed credential is refused, and the replay changes nothing.
answer=$(aif_send root a --replay usage cluster=aiftest \
	-- event=start job=8 node=n1 restart=0 gpus=4 time=$((now - 60)) uid="$a1" project=proja)
assert_eq ok "$(head -1 <<<"$answer")" "first use of a credential: $answer"
replayed=$(sed '1,/^----$/d' <<<"$answer")
assert_eq error "$(head -1 <<<"$replayed")" "replayed credential: $replayed"
assert_match "^request refused: its MUNGE credential was already used$" "$(aif_field message "$replayed")" "replay message"
aifd_wait_log a "WARNING:  connection [0-9]+ from .*credential refused" "replay logged"

# The same usage records sent again (a new credential each time), and twice in one request:
# stored once, acknowledged every time.
start=$((now - 7200)) end=$((now - 3600))
for _ in 1 2; do
	answer=$(aif_send root a usage cluster=aiftest \
		-- event=start job=9 node=n1 restart=0 gpus=2 time=$start uid="$a1" project=proja \
		-- event=start job=9 node=n2 restart=0 gpus=3 time=$start uid="$a1" project=proja \
		-- event=start job=9 node=n2 restart=0 gpus=3 time=$start uid="$a1" project=proja \
		-- event=end job=9 node=n2 restart=0 gpus=3 time=$end uid="$a1" project=proja)
	assert_eq "ok 4" "$(head -1 <<<"$answer") $(aif_field acked "$answer")" "usage sent again: $answer"
done
aifd_wait_settled "job 9"
assert_eq "n1|2|proja|health||
n2|3|proja|health|$end|epilog" \
	"$(psql -d "$AIFD_DB" -Atc "SELECT node, gpus, project_id, sector_id, extract(epoch FROM ended_at)::bigint, end_source
	 FROM aif.usage_intervals WHERE job_id = 9 ORDER BY node")" "job 9 stored once"

# An end without its start, carrying the start time: one closed interval. A record without a
# project is charged to the user's only project (aiftest3: pwarn).
answer=$(aif_send aiftest2 a usage cluster=aiftest \
	-- event=end job=10 node=n1 restart=1 gpus=4 time=$end start=$start uid="$(uid_of aiftest3)")
assert_eq "ok 1" "$(head -1 <<<"$answer") $(aif_field acked "$answer")" "end with start: $answer"
aifd_wait_settled "job 10"
assert_eq "pwarn|health|$start|$end|4" \
	"$(psql -d "$AIFD_DB" -Atc "SELECT project_id, sector_id, extract(epoch FROM started_at)::bigint,
	 extract(epoch FROM ended_at)::bigint, gpus FROM aif.usage_intervals WHERE job_id = 10")" "job 10"
# A record no project can be charged for (an unknown project, and its user has two) is kept
# unattributed with its reason, not refused and lost; the other record is charged as usual.
# (Its hour never crosses UTC midnight, where the funders' daily view would split it.)
u_start=$now
((now % 86400 < 86400 - 3600)) || u_start=$((now - 3600))
answer=$(aif_send root a usage cluster=aiftest \
	-- event=start job=11 node=n1 restart=0 gpus=1 time=$now uid="$a1" project=proja \
	-- event=start job=11 node=n2 restart=0 gpus=1 time=$u_start uid="$a1" project=nope \
	-- event=end job=11 node=n2 restart=0 gpus=1 time=$((u_start + 3600)) uid="$a1" project=nope)
assert_eq "ok 3" "$(head -1 <<<"$answer") $(aif_field acked "$answer")" "unknown project: $answer"
assert_eq "n1|proja" "$(psql -d "$AIFD_DB" -Atc "SELECT node || '|' || project_id FROM aif.usage_intervals
	WHERE job_id = 11")" "job 11: the record with a project it may use"
assert_eq "n2|unknown-project|nope|$a1|1|3600" "$(psql -d "$AIFD_DB" -Atc "SELECT node, reason, project_asked, uid,
	gpus, extract(epoch FROM ended_at - started_at)::int FROM aif.unattributed_intervals WHERE job_id = 11")" \
	"job 11: the unattributed record"
aifd_wait_log a "usage of job 11 on node n2 \(uid $a1\) is unattributed \(unknown-project\): unknown project \"nope\"" \
	"the unattributed record in aifd's log"
assert_eq "aiftest|unknown-project|1|1" "$(psql -d "$AIFD_DB" -Atc "SELECT cluster, reason, gpu_hours, jobs
	FROM aif_report.unattributed_daily")" "funders see it counted"

# Records the store can never hold are refused when the request is validated, once (the node
# keeps them in spool_dir/bad/), never answered "error" (retried forever), and never crash
# aifd: a time beyond INT64_MAX, a time past 9999, a start after its end, a node name of 3,000
# bytes.
long_node=$(printf 'n%.0s' $(seq 3000))
while IFS='|' read -r what fields regex; do
	regex=${regex# }
	# shellcheck disable=SC2086
	answer=$(aif_send root a usage cluster=aiftest -- event=end job=12 restart=0 gpus=1 uid="$a1" project=proja $fields)
	assert_eq "refuse 0" "$(head -1 <<<"$answer") $(aif_field acked "$answer")" "$what: $answer"
	assert_match "$regex" "$(aif_field message "$answer")" "$what"
done <<TABLE
time > INT64_MAX | node=n1 time=9223372036854775808 | ^invalid request: line [0-9]+: invalid value for field "time"
start > INT64_MAX | node=n1 time=$now start=9223372036854775808 | ^invalid request: line [0-9]+: invalid value for field "start"
time past 9999 | node=n1 time=253402300800 | ^invalid request: line [0-9]+: invalid value for field "time": "253402300800"$
start after end | node=n1 time=$now start=$((now + 10)) | ^invalid request: line [0-9]+: invalid value for field "start": "$((now + 10))"$
3000-byte node | node=$long_node time=$now | ^invalid request: line [0-9]+: invalid value for field "node": "nnnn
TABLE
assert_eq 0 "$(psql -d "$AIFD_DB" -Atc "SELECT count(*) FROM aif.usage_intervals WHERE job_id = 12")" \
	"nothing of the refused records stored"

# Job ids repeat (MaxJobId wraps, a slurmctld state reset): an admission is the job's only for
# the same uid and while recent. Job 500 of aiftest, then job 500 of uid 4242: its own decision,
# and its usage (no project named) charged to its own project, never to aiftest's.
answer=$(aif_send root a admit job=500 uid="$a1" gid="$g1" project=proja)
assert_match "^(ok|warn) proja$" "$(head -1 <<<"$answer") $(aif_field project "$answer")" "job 500 of aiftest"
answer=$(aif_send root a admit job=500 uid=4242 gid="$grp" project=projb)
assert_eq "ok projb" "$(head -1 <<<"$answer") $(aif_field project "$answer")" "job 500 again, of uid 4242: $answer"
answer=$(aif_send root a admit job=500 uid=4242 gid=4242 project=projb)
assert_eq "ok projb" "$(head -1 <<<"$answer") $(aif_field project "$answer")" "job 500 of uid 4242, decided once: $answer"
answer=$(aif_send root a usage cluster=aiftest -- event=end job=500 node=n1 restart=0 gpus=1 time=$now start=$now uid=4242)
assert_eq "ok 1" "$(head -1 <<<"$answer") $(aif_field acked "$answer")" "job 500's usage: $answer"
aifd_wait_settled "job 500"
assert_eq "projb|4242" "$(psql -d "$AIFD_DB" -Atc "SELECT project_id, uid FROM aif.usage_intervals WHERE job_id = 500")" \
	"job 500's usage charged to its own user's project"
# Usage of a later job of the same id, node and run by another uid that nothing can be charged
# for is kept unattributed: never merged into (and lost in) the earlier job's closed interval.
answer=$(aif_send root a usage cluster=aiftest -- event=end job=500 node=n1 restart=0 gpus=2 time=$now \
	start=$((now - 60)) uid=2147483654)
assert_eq "ok 1" "$(head -1 <<<"$answer") $(aif_field acked "$answer")" "a reused job id's usage: $answer"
assert_eq "no-project|2|60" "$(psql -d "$AIFD_DB" -Atc "SELECT reason, gpus, extract(epoch FROM ended_at - started_at)::int
	FROM aif.unattributed_intervals WHERE job_id = 500 AND uid = 2147483654")" "a reused job id's unattributed usage"
# A job id reused on the same node by the same uid, as after a slurmctld state reset: the later
# job is a run of its own, never taken for a repeat of the earlier one's records; a repeat of
# them (a spool sent again) changes nothing. (No GPUs: projb's figures below stay as they are.)
answer=$(aif_send root a admit job=510 uid=4242 gid="$grp" project=projb)
assert_eq "ok projb" "$(head -1 <<<"$answer") $(aif_field project "$answer")" "job 510's admission: $answer"
reuse_send() { # reuse_send EVENT TIME [START]: a usage record of job 510 of uid 4242 on n1
	answer=$(aif_send root a usage cluster=aiftest -- event="$1" job=510 node=n1 restart=0 gpus=0 \
		time="$2" ${3:+start=$3} uid=4242)
	assert_eq "ok 1" "$(head -1 <<<"$answer") $(aif_field acked "$answer")" "job 510 $1 at $2: $answer"
}
runs_of() { # runs_of TABLE JOB: the seconds of each interval of the job, the earliest first
	psql -d "$AIFD_DB" -Atc "SELECT string_agg(extract(epoch FROM ended_at - started_at)::int::text,
		' ' ORDER BY started_at) FROM aif.$1 WHERE job_id = $2"
}
reuse_send start $((now - 7200))
reuse_send end $((now - 3600))
aifd_wait_settled "job 510, first"
reuse_send start $((now - 60))
reuse_send end "$now"
aifd_wait_settled "job 510, again"
reuse_send start $((now - 7200))
reuse_send end $((now - 3600))
aifd_wait_settled "job 510's first records again"
assert_eq "3600 60" "$(runs_of usage_intervals 510)" "job 510: two jobs, two runs"
# Likewise for usage nobody can be charged for (uid 2147483654 has no project).
for t in $((now - 3600)) "$now" $((now - 3600)); do
	answer=$(aif_send root a usage cluster=aiftest -- event=end job=520 node=n1 restart=0 gpus=1 \
		time="$t" start=$((t - 60)) uid=2147483654)
	assert_eq "ok 1" "$(head -1 <<<"$answer") $(aif_field acked "$answer")" "job 520 at $t: $answer"
done
assert_eq "60 60" "$(runs_of unattributed_intervals 520)" "job 520: two unattributed runs"
# An end whose start never arrived, of a job slurmctld does not know: it starts at the job's
# admission (a lower bound), not at its end.
answer=$(aif_send root a admit job=530 uid=4242 gid="$grp" project=projb)
assert_eq "ok projb" "$(head -1 <<<"$answer") $(aif_field project "$answer")" "job 530's admission: $answer"
sleep 2
answer=$(aif_send root a usage cluster=aiftest -- event=end job=530 node=n1 restart=0 gpus=0 time="$(date +%s)" uid=4242)
assert_eq "ok 1" "$(head -1 <<<"$answer") $(aif_field acked "$answer")" "job 530's end: $answer"
aifd_wait_settled "job 530"
assert_eq "epilog-no-start|t" "$(psql -d "$AIFD_DB" -Atc "SELECT i.end_source, i.started_at = a.decided_at
	AND i.ended_at > i.started_at FROM aif.usage_intervals i JOIN aif.admissions a USING (cluster, job_id)
	WHERE job_id = 530")" "job 530: from its admission to its end"
# ... but not from an admission that may be an earlier job's: job 550's id ran on n2 and ended
# long before this end.
answer=$(aif_send root a admit job=550 uid=4242 gid="$grp" project=projb)
assert_eq "ok projb" "$(head -1 <<<"$answer") $(aif_field project "$answer")" "job 550's admission: $answer"
for rec in "event=start time=$((now - 3600))" "event=end time=$((now - 3000))"; do
	# shellcheck disable=SC2086 # the record's fields
	answer=$(aif_send root a usage cluster=aiftest -- $rec job=550 node=n2 restart=0 gpus=0 uid=4242)
	assert_eq "ok 1" "$(head -1 <<<"$answer") $(aif_field acked "$answer")" "job 550 on n2, $rec: $answer"
done
sleep 2
answer=$(aif_send root a usage cluster=aiftest -- event=end job=550 node=n1 restart=0 gpus=0 time="$(date +%s)" uid=4242)
assert_eq "ok 1" "$(head -1 <<<"$answer") $(aif_field acked "$answer")" "job 550's end on n1: $answer"
aifd_wait_settled "job 550"
assert_eq "epilog-no-start|0" "$(psql -d "$AIFD_DB" -Atc "SELECT end_source, extract(epoch FROM ended_at - started_at)::int
	FROM aif.usage_intervals WHERE job_id = 550 AND node = 'n1'")" "job 550 on n1: not from the admission"
# A job id in use by another uid on the same node while the earlier job's run is still open
# (its end arrives late): the later job's usage waits unattributed, then becomes its own run.
job540() { # job540 EVENT TIME UID [PROJECT]
	answer=$(aif_send root a usage cluster=aiftest -- event="$1" job=540 node=n1 restart=0 gpus=0 \
		time="$2" uid="$3" ${4:+project=$4})
	assert_eq "ok 1" "$(head -1 <<<"$answer") $(aif_field acked "$answer")" "job 540 $1 of uid $3: $answer"
}
answer=$(aif_send root a admit job=540 uid=4242 gid="$grp" project=projb)
assert_eq "ok projb" "$(head -1 <<<"$answer") $(aif_field project "$answer")" "job 540's admission: $answer"
job540 start $((now - 900)) 4242
job540 start $((now - 600)) "$a1" proja
assert_eq "job-id-in-use|$a1" "$(psql -d "$AIFD_DB" -Atc "SELECT reason, uid FROM aif.unattributed_intervals
	WHERE job_id = 540")" "job 540 of $a1 while 4242's run is open"
job540 end $((now - 700)) 4242
aifd_wait_settled "job 540 of 4242"
job540 end $((now - 100)) "$a1" proja
aifd_wait_settled "job 540 of $a1"
assert_eq "0|4242|projb|200 1|$a1|proja|500 0" "$(psql -d "$AIFD_DB" -Atc "SELECT string_agg(concat_ws('|', run, uid,
	project_id, extract(epoch FROM ended_at - started_at)::int), ' ' ORDER BY run)
	FROM aif.usage_intervals WHERE job_id = 540") $(psql -d "$AIFD_DB" -Atc "SELECT count(*)
	FROM aif.unattributed_intervals WHERE job_id = 540")" "job 540: two runs, each its own user's, nothing left unattributed"
# Usage recorded is seen within 1 s: at once after a quiet second, then once a second, not
# after every record (a reload reads every budget's usage; docs/aifd.md). For the check, a
# refresh_interval whose periodic reload does not come during it (SIGHUP).
set_refresh_interval() { # set_refresh_interval FROM TO (ms)
	sed -i "s/^refresh_interval = .*/refresh_interval = $2ms/" "$AIFD_WORK/a.conf"
	kill -HUP "$AIFD_PID_a"
	aifd_wait_log a "setting \"refresh_interval\" changed from \"$1ms\" to \"$2ms\"" "refresh_interval $2ms"
}
set_refresh_interval 1000 10000
sleep 2.2 # a reload that the records above still call for, then a quiet second
mark=$(wc -l <"$AIFD_WORK/a.log")
usage_reloads() { tail -n +$((mark + 1)) "$AIFD_WORK/a.log" | grep -c "budgets and usage loaded (usage recorded)" || true; }
record_start() { # record_start JOB: a start without GPUs (the figures below stay as they are)
	answer=$(aif_send root a usage cluster=aiftest -- event=start job="$1" node=n1 restart=0 gpus=0 \
		time="$now" uid="$a1" project=proja)
	assert_eq "ok 1" "$(head -1 <<<"$answer") $(aif_field acked "$answer")" "job $1's start: $answer"
}
t0=${EPOCHREALTIME/./}
record_start 560
until (($(usage_reloads) > 0)) || ((${EPOCHREALTIME/./} - t0 > 3000000)); do sleep 0.05; done
ms=$(((${EPOCHREALTIME/./} - t0) / 1000))
((ms < 900)) || fail "a record after a quiet second: reloaded after $ms ms, expected at once (< 1 s)"
assert_eq 1 "$(usage_reloads)" "reloads after a record after a quiet second"
t0=${EPOCHREALTIME/./}
for job in $(seq 561 580); do
	record_start "$job"
	sleep 0.1
done
sleep 1.1 # the last reload
ms=$(((${EPOCHREALTIME/./} - t0) / 1000))
reloads=$(($(usage_reloads) - 1))
((reloads >= 1 && reloads <= ms / 1000 + 1)) ||
	fail "20 usage records in $ms ms: $reloads snapshot reloads, expected one a second at most"
set_refresh_interval 10000 1000
# A start nobody could be charged for (no admission yet), whose end can be (the job's admission
# came meanwhile): the usage moves to the job's project, nothing stays unattributed.
# (No GPUs: projb's figures below must stay as they are.)
answer=$(aif_send root a usage cluster=aiftest -- event=start job=800 node=n1 restart=0 gpus=0 \
	time=$((now - 120)) uid=4242)
assert_eq "ok 1" "$(head -1 <<<"$answer") $(aif_field acked "$answer")" "job 800's start: $answer"
assert_eq "no-project" "$(psql -d "$AIFD_DB" -Atc "SELECT reason FROM aif.unattributed_intervals WHERE job_id = 800")" \
	"job 800's start unattributed"
answer=$(aif_send root a admit job=800 uid=4242 gid="$grp" project=projb)
assert_eq "ok projb" "$(head -1 <<<"$answer") $(aif_field project "$answer")" "job 800's admission: $answer"
answer=$(aif_send root a usage cluster=aiftest -- event=end job=800 node=n1 restart=0 gpus=0 time=$now uid=4242)
assert_eq "ok 1" "$(head -1 <<<"$answer") $(aif_field acked "$answer")" "job 800's end: $answer"
aifd_wait_settled "job 800"
assert_eq "projb|120|0" "$(psql -d "$AIFD_DB" -Atc "SELECT project_id, extract(epoch FROM ended_at - started_at)::int,
	(SELECT count(*) FROM aif.unattributed_intervals WHERE job_id = 800) FROM aif.usage_intervals WHERE job_id = 800")" \
	"job 800: charged whole to its project, nothing left unattributed"
# A refusal of a reused id shows its own user, not the earlier one's.
answer=$(aif_send root a admit job=2 uid=4242 gid=4242 project=proja)
assert_eq refuse "$(head -1 <<<"$answer")" "job 2 again, of uid 4242: $answer"
assert_match '^uid 4242 is not a member of project "proja"$' "$(aif_field message "$answer")" "job 2 of uid 4242"
# The same uid with an admission older than any job runs (30 days): decided again.
psql -d "$AIFD_DB" -qc "UPDATE aif.admissions SET decided_at = now() - interval '31 days' WHERE job_id = 500"
answer=$(aif_send root a admit job=500 uid=4242 gid=4242 project=projb)
assert_eq "refuse" "$(head -1 <<<"$answer")" "job 500 of uid 4242 after 31 days, decided again: $answer"
assert_eq "refuse|t" "$(psql -d "$AIFD_DB" -Atc "SELECT verdict, decided_at > now() - interval '1 minute'
	FROM aif.admissions WHERE job_id = 500")" "job 500's admission replaced"

# send_end JOB [away]: JOB's end on n1, of a1, naming proja (which a1 may use), in $answer;
# with "away", while aif.admissions cannot be read (renamed away). No GPU-hours: projb's
# figures below stay.
send_end() {
	[[ ${2-} != away ]] || psql -d "$AIFD_DB" -qc "ALTER TABLE aif.admissions RENAME TO admissions_away"
	answer=$(aif_send root a usage cluster=aiftest -- event=end job="$1" node=n1 restart=0 gpus=1 \
		time="$now" start="$now" uid="$a1" project=proja)
	[[ ${2-} != away ]] || psql -d "$AIFD_DB" -qc "ALTER TABLE aif.admissions_away RENAME TO admissions"
}
# The end of a job this aifd admitted is charged from its memory of the admission
# (daemon/budgets/admission_memory.h), without reading aif.admissions: even while it cannot be
# read. Here to projb, although the record names proja.
answer=$(aif_send root a admit job=650 uid="$a1" gid="$g1" project=projb)
assert_eq "ok projb" "$(head -1 <<<"$answer") $(aif_field project "$answer")" "job 650's admission: $answer"
send_end 650 away
assert_eq "ok 1" "$(head -1 <<<"$answer") $(aif_field acked "$answer")" "job 650's end, admissions unreadable: $answer"
aifd_wait_settled "job 650"
assert_eq projb "$(psql -d "$AIFD_DB" -Atc "SELECT project_id FROM aif.usage_intervals WHERE job_id = 650")" \
	"job 650 charged to the project of its admission"

# Usage whose charged project depends on an admission aifd does not remember and cannot read
# now is answered "error" (the node keeps it and sends it again), never charged by a guess.
# Job 651's admission was kept by another aifd (here by hand, as before a restart of aifd).
psql -d "$AIFD_DB" -qc "INSERT INTO aif.admissions (cluster, job_id, uid, verdict, reason, project_id, sector_id)
	VALUES ('aiftest', 651, $a1, 'ok', 'ok', 'projb', 'energy')"
send_end 651 away
assert_eq "error 0" "$(head -1 <<<"$answer") $(aif_field acked "$answer")" "job 651's end, admissions unreadable: $answer"
assert_eq "could not read the admission of job 651" "$(aif_field message "$answer")" "its message"
send_end 651
assert_eq "ok 1" "$(head -1 <<<"$answer") $(aif_field acked "$answer")" "job 651's end sent again: $answer"
aifd_wait_settled "job 651"
assert_eq projb "$(psql -d "$AIFD_DB" -Atc "SELECT project_id FROM aif.usage_intervals WHERE job_id = 651")" \
	"job 651 charged to the project of its admission"
# An admit of a job whose admission aifd does not remember (kept by another aifd) gets that
# one: its own decision (ok, projb) is not kept over it.
psql -d "$AIFD_DB" -qc "INSERT INTO aif.admissions (cluster, job_id, uid, verdict, reason, message)
	VALUES ('aiftest', 652, $a1, 'refuse', 'not-member', 'refused by the other aifd')"
answer=$(aif_send root a admit job=652 uid="$a1" gid="$g1" project=projb)
assert_eq "refuse|refused by the other aifd" "$(head -1 <<<"$answer")|$(aif_field message "$answer")" \
	"job 652's admit, kept elsewhere: $answer"
assert_eq "refuse|1" "$(psql -d "$AIFD_DB" -Atc "SELECT verdict, count(*) OVER () FROM aif.admissions
	WHERE job_id = 652")" "job 652's admission as kept elsewhere"

# A database that stops answering (its backends stopped: SIGSTOP, as a hung server or a network
# black hole looks to aifd) holds no request: an admission is decided without its history
# within the admissions' timeout (500 ms), a check is answered from the snapshot. Each worker
# has its own connection: every one that made one is stopped.
stop_backend() { # stop_backend APP: SIGSTOP every backend of aifd's connections APP; cont_backend
	backend=$(psql -d "$AIFD_DB" -Atc "SELECT pid FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = '$1'" | xargs)
	[[ $backend =~ ^[0-9]+( [0-9]+)*$ ]] || fail "no backend of aifd's connection $1: '$backend'"
	# shellcheck disable=SC2086 # one pid per word
	kill -STOP $backend
	trap 'kill -CONT $backend 2>/dev/null; aifd_cleanup' EXIT
}
# shellcheck disable=SC2086
cont_backend() { kill -CONT $backend; trap aifd_cleanup EXIT; }
timed_send() { # timed_send ARG...: aif_send ARG..., its answer in $answer, its time in $ms
	local t0
	t0=$(date +%s%N)
	answer=$(aif_send "$@")
	ms=$((($(date +%s%N) - t0) / 1000000))
}
stop_backend aifd-admissions
for job in 600 601 602; do
	timed_send root a admit job=$job uid="$a1" gid="$g1" project=projb
	assert_eq "ok projb" "$(head -1 <<<"$answer") $(aif_field project "$answer")" "admit of job $job, database hung: $answer"
	((ms < 2000)) || fail "admit of job $job took $ms ms with the database hung (goal < 2000)"
done
timed_send aiftest a check project=projb
assert_match "^(ok|warn)$" "$(head -1 <<<"$answer")" "check, database hung: $answer"
((ms < 2000)) || fail "check took $ms ms with the database hung (goal < 2000)"
aifd_wait_log a "the aif database did not answer within 500 ms" "the hung database in aifd's log"
cont_backend
# aifd backs off the database after it stopped answering (at most 5 s), then uses it again.
deadline=$((SECONDS + 15))
until [[ $(psql -d "$AIFD_DB" -Atc "SELECT count(*) FROM aif.admissions WHERE job_id = 603") == 1 ]]; do
	((SECONDS < deadline)) || fail "admissions not kept again within 15 s after the database answered again"
	aif_send root a admit job=603 uid="$a1" gid="$g1" project=projb >/dev/null
	sleep 0.5
done

# A database that takes connections but does not answer them (aif.admissions locked by
# another session): each worker tries it once per backoff, which grows while nothing works;
# a new connection does not reset it (else a reconnection every 100 ms, and a backend left
# behind each time), and the log says it once per worker, not at every attempt. The server
# gives up the statements aifd stopped waiting for (statement_timeout): none is left waiting.
count_log() { grep -Ec "$1" "$AIFD_WORK/a.log" || true; }
any_re="admissions( lost its database connection|: the database does not answer as it should)"
lost_re="WARNING:  $any_re"
back_re="INFO:  admissions( reconnected to the database|: the database answers again)"
any_before=$(count_log "$any_re")
lost_before=$(count_log "$lost_re")
back_before=$(count_log "$back_re")
psql -d "$AIFD_DB" -qc "BEGIN; LOCK TABLE aif.admissions IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(6); COMMIT" \
	>/dev/null &
locker=$!
sleep 0.3
for job in $(seq 661 680); do
	timed_send root a admit job=$job uid="$a1" gid="$g1" project=projb
	assert_eq "ok projb" "$(head -1 <<<"$answer") $(aif_field project "$answer")" "admit of job $job, table locked: $answer"
	((ms < 2000)) || fail "admit of job $job took $ms ms with the table locked (goal < 2000)"
	sleep 0.2
done
sleep 0.6 # the last statement's timeout
assert_eq 0 "$(psql -d "$AIFD_DB" -Atc "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
	AND application_name = 'aifd-admissions' AND wait_event_type = 'Lock'")" "admission statements left waiting for the lock"
wait "$locker"
lost=$(($(count_log "$lost_re") - lost_before))
back=$(($(count_log "$back_re") - back_before))
((lost <= 4)) || fail "$lost warnings of admissions losing the database (goal: at most one per worker)"
(($(count_log "$any_re") > any_before)) || fail "aifd did not see the database fail while aif.admissions was locked"
((back <= 4)) || fail "admissions reconnected $back times while the database did not answer (goal: at most once per worker)"

# A job's first admission costs one statement: it keeps its decision, and reads a kept one only
# when one was kept first. Here no read could be answered (the read of an admission reads
# aif.reservations, locked for 3 s): the first admit of job 690 is answered at once and kept,
# and no worker sees the database fail.
any_before=$(count_log "$any_re")
psql -d "$AIFD_DB" -qc "BEGIN; LOCK TABLE aif.reservations IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(3); COMMIT" \
	>/dev/null &
locker=$!
wait_sql "SELECT count(*) FROM pg_locks WHERE relation = 'aif.reservations'::regclass AND granted
	AND mode = 'AccessExclusiveLock'" 1 "aif.reservations locked" 5
timed_send root a admit job=690 uid="$a1" gid="$g1" project=projb
assert_eq "ok projb" "$(head -1 <<<"$answer") $(aif_field project "$answer")" "job 690's first admit: $answer"
((ms < 400)) || fail "job 690's first admit took $ms ms: it waited for a read (goal: no read, < 400 ms)"
assert_eq "$any_before" "$(count_log "$any_re")" "warnings of admissions failing, aif.reservations locked"
wait "$locker"
assert_eq "ok|projb" "$(psql -d "$AIFD_DB" -Atc "SELECT verdict, project_id FROM aif.admissions WHERE job_id = 690")" \
	"job 690's admission kept"

# The usage writer's backend stopped too: usage is not answered while the writer waits; after
# 10 s new usage is answered "error" at once (the nodes spool it); after 20 s the writer drops
# the connection and writes everything on a new one.
stop_backend aifd-store
t0=$SECONDS
aif_send root a --timeout=2000 usage cluster=aiftest \
	-- event=start job=700 node=n1 restart=0 gpus=1 time=$now uid="$a1" project=proja >/dev/null 2>&1 || true
sleep $((11 - (SECONDS - t0)))
timed_send root a usage cluster=aiftest -- event=start job=701 node=n1 restart=0 gpus=1 time=$now uid="$a1" project=proja
assert_eq "error" "$(head -1 <<<"$answer")" "usage while the writer waits for a stopped database: $answer"
assert_match "^the aif database has not taken usage for 1[0-9] s$" "$(aif_field message "$answer")" "its message"
((ms < 2000)) || fail "usage with the database stopped was answered in $ms ms (goal < 2000)"
aifd_wait_log a "could not write usage: the aif database did not answer within 20 s" "the writer's deadline"
cont_backend
wait_sql "SELECT count(*) FROM aif.usage_intervals WHERE job_id = 700" 1 \
	"job 700's start written on the writer's new connection" 15
# (The continued backend may itself run the write it had read before it sees aifd gone: job
# 700 can be there before the writer's own write on its new connection returned.)
deadline=$((SECONDS + 10))
until answer=$(aif_send root a usage cluster=aiftest \
	-- event=start job=701 node=n1 restart=0 gpus=1 time=$now uid="$a1" project=proja) &&
	[[ $(head -1 <<<"$answer") == ok ]]; do
	((SECONDS < deadline)) || fail "usage not taken within 10 s of the database answering again: $answer"
	sleep 0.2
done
assert_eq "ok 1" "$(head -1 <<<"$answer") $(aif_field acked "$answer")" "usage once the writer has a new connection: $answer"

# A uid of 2^31 and above (large directory uid ranges) is stored, not refused forever.
big=2147483653
answer=$(aif_send root a admit job=501 uid=$big gid="$grp" project=projb)
assert_eq "ok projb" "$(head -1 <<<"$answer") $(aif_field project "$answer")" "job 501 of uid $big: $answer"
answer=$(aif_send root a usage cluster=aiftest \
	-- event=end job=501 node=n1 restart=0 gpus=1 time=$now start=$now uid=$big project=projb)
assert_eq "ok 1" "$(head -1 <<<"$answer") $(aif_field acked "$answer")" "usage of uid $big: $answer"
aifd_wait_settled "job 501"
assert_eq "projb|$big" "$(psql -d "$AIFD_DB" -Atc "SELECT project_id, uid FROM aif.usage_intervals WHERE job_id = 501")" \
	"usage of uid $big stored"
# An admission 31 days old stays the job's while reconciliation sees the job running: a job
# that runs for more than 30 days is not decided again in a later step.
psql -d "$AIFD_DB" -qc "UPDATE aif.admissions SET decided_at = now() - interval '31 days' WHERE job_id = 501;
	INSERT INTO aif.job_last_seen (cluster, job_id, restart_count, seen_at) VALUES ('aiftest', 501, 0, now())"
answer=$(aif_send root a admit job=501 uid=$big gid="$grp" project=projb)
assert_eq "ok projb" "$(head -1 <<<"$answer") $(aif_field project "$answer")" "job 501 after 31 days, still running: $answer"
assert_eq t "$(psql -d "$AIFD_DB" -Atc "SELECT decided_at < now() - interval '30 days' FROM aif.admissions
	WHERE job_id = 501")" "job 501's admission kept, not decided again"

# status: the caller's own projects; running jobs count up to now. Job 9 used 3 GPU-hours of
# proja on n2 and runs on n1 with 2 GPUs since two hours (4), job 8 with 4 GPUs since a minute
# before the test began, jobs 700 and 701 with one GPU each since it began.
# (within the refresh after recording usage: 1 s).
deadline=$((SECONDS + 3))
while :; do
	answer=$(aif_send aiftest a status cluster=aiftest)
	used=$(awk '/^project=proja$/ {p = 1} p && /^used_gpu_hours=/ {sub(/.*=/, ""); print; exit}' <<<"$answer")
	# 3 + 4 + (4 GPUs x 60 s), and the 8 GPUs running since the test began (jobs 8, 9 on n1,
	# 700 and 701)
	expected=$(awk -v t=$(($(date +%s) - now)) 'BEGIN { printf "%.4f", 7 + 4 * 60 / 3600 + 8 * t / 3600 }')
	awk -v u="$used" -v e="$expected" 'BEGIN { exit !(u >= e - 0.02 && u <= e + 0.02) }' && break # 2 decimals
	((SECONDS < deadline)) || fail "proja used $used GPU-hours, expected $expected"
	sleep 0.2
done
assert_eq "ok" "$(head -1 <<<"$answer")" "status: $answer"
assert_eq "proja projb" "$(sed -n 's/^project=//p' <<<"$answer" | xargs)" "aiftest's projects"
assert_eq "pexh pf1 pfw proja projb pwarn" "$(aif_send root a status cluster=aiftest | sed -n 's/^project=//p' | xargs)" \
	"root sees every active project of this cluster with a budget"

# The same through "aifctl projects", as users run it: server and cluster from its config file.
cp "$AIF_BUILD_DIR/aifctl/aifctl" "$AIFD_WORK/aifctl"
printf 'server = %s\ncluster = aiftest\nmunge_socket = %s\n' "$AIFD_WORK/run/a.sock" "$AIF_MUNGE_SOCKET" \
	>"$AIFD_WORK/aifctl.conf"
chmod 644 "$AIFD_WORK/aifctl.conf"
listing=$(as_user aiftest "$AIFD_WORK/aifctl" --config "$AIFD_WORK/aifctl.conf" --format csv projects | tr -d "\r")
assert_eq "period,factory,project,budget_gpu_hours,used_gpu_hours,remaining_gpu_hours,state,limited_by" \
	"$(head -1 <<<"$listing")" "aifctl projects header"
assert_match "^cur,fa,projb,10.00,0.00,10.00,ok,project$" "$(sed -n 3p <<<"$listing")" "aifctl projects: projb"
assert_match "^cur,fa,proja,10.00,7\.[0-9]+,2\.[0-9]+,warning,project$" "$(sed -n 2p <<<"$listing")" "aifctl projects: proja"
rc=0
as_user aiftest "$AIFD_WORK/aifctl" --config "$AIFD_WORK/aifctl.conf" --cluster wrong projects 2>"$AIFD_WORK/err" || rc=$?
assert_eq 1 "$rc" "aifctl projects for another cluster: exit status"
assert_match "request for cluster \"wrong\" sent to the aifd of cluster \"aiftest\"" "$(cat "$AIFD_WORK/err")" \
	"aifctl projects for another cluster"

# An aifctl apply is seen within seconds (LISTEN/NOTIFY): pexh gets more GPU-hours.
budgets 100 >"$AIFD_WORK/b3.yaml"
apply "$AIFD_WORK/b3.yaml"
wait_answer a ok "the new budget of pexh" aiftest2 check cluster=aiftest project=pexh

# A job admitted while its project had room is not refused later, when it has none (under
# on_exhausted: deny, running jobs finish); a new job is.
assert_eq ok "$(aif_send root a admit cluster=aiftest job=30 uid="$(uid_of aiftest2)" gid="$(gid_of aiftest2)" project=pexh | head -1)" \
	"job 30 admitted with room"
apply "$AIFD_WORK/b2.yaml" # pexh back to 1 GPU-hour: exhausted
wait_answer a refuse "pexh's smaller budget" aiftest2 check cluster=aiftest project=pexh
assert_eq ok "$(aif_send root a admit cluster=aiftest job=30 uid="$(uid_of aiftest2)" gid="$(gid_of aiftest2)" project=pexh | head -1)" \
	"job 30's later step"
assert_eq refuse "$(aif_send root a admit cluster=aiftest job=31 uid="$(uid_of aiftest2)" gid="$(gid_of aiftest2)" project=pexh | head -1)" \
	"a new job of exhausted pexh"

# A snapshot that takes long to load (here: the usage table locked for 3 s) spaces the next
# loads out (4 times the load's time), instead of keeping a core busy at every refresh_interval.
psql -d "$AIFD_DB" -qc "BEGIN; LOCK TABLE aif.usage_intervals IN ACCESS EXCLUSIVE MODE;
	SELECT pg_sleep(3); COMMIT;" >/dev/null &
lock_pid=$!
aifd_wait_log a "the budget snapshot took [0-9]{4} ms to load: the next in [0-9]+ ms at the earliest" "a slow load"
wait "$lock_pid"
periodic() { grep -c "budgets and usage loaded (periodic)" "$AIFD_WORK/a.log"; }
before=$(periodic)
sleep 4
assert_eq "$before" "$(periodic)" "periodic loads within 4 s of a load of over 1 s (refresh_interval 1s)"

# Every connection of aifd, the budget refresh's first one (made at start-up) included, has the
# server give up a statement after the owner's timeout: a statement aifd stopped waiting for is
# not left holding a backend and its locks. The usage table locked until the refresh's load
# (20 s) gives up: no backend of aifd may still wait for that lock from before then.
gave_up_re="budget refresh( lost its database connection|: the database does not answer as it should)"
gave_up_before=$(count_log "$gave_up_re")
PGAPPNAME=aif-test-locker psql -d "$AIFD_DB" -qc "BEGIN; LOCK TABLE aif.usage_intervals IN ACCESS EXCLUSIVE MODE;
	SELECT pg_sleep(120); COMMIT;" >/dev/null 2>&1 &
lock_pid=$!
deadline=$((SECONDS + 45)) # the next periodic load (at most 4 x 3 s after the slow one), then 20 s
until (($(count_log "$gave_up_re") > gave_up_before)); do
	((SECONDS < deadline)) || fail "the budget refresh did not give up its load on the locked usage table within 45 s"
	sleep 0.2
done
sleep 1
left=$(psql -d "$AIFD_DB" -Atc "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
	AND application_name LIKE 'aifd%' AND wait_event_type = 'Lock' AND query_start < now() - interval '20.5 s'")
psql -d "$AIFD_DB" -Atc "SELECT pg_cancel_backend(pid) FROM pg_stat_activity
	WHERE datname = current_database() AND application_name = 'aif-test-locker'" >/dev/null
wait "$lock_pid" || true
assert_eq 0 "$left" "aifd statements still waiting for the lock after their owner's timeout (20 s)"

# SIGTERM: exits 0 soon, its socket gone.
kill -TERM "$AIFD_PID_a"
rc=0
timeout 10 tail --pid="$AIFD_PID_a" -f /dev/null || fail "aifd did not stop within 10 s"
wait "$AIFD_PID_a" || rc=$?
assert_eq 0 "$rc" "aifd exit status after SIGTERM"
[[ ! -e $AIFD_WORK/run/a.sock ]] || fail "aifd left its socket behind"
grep -qs "AddressSanitizer\|runtime error" "$AIFD_WORK"/a.log* && fail "sanitizer report in aifd's logs: $(cat "$AIFD_WORK"/a.log*)"
echo "aifd requests: all checks passed"
