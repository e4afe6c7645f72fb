#!/usr/bin/env bash
# Reconciliation with Slurm's own accounting (daemon/slurm/slurmdbd.c), on a cluster of the
# test's own with slurmdbd and MariaDB (aif-harness --slurmdbd) and MinJobAge=2, so that
# slurmctld forgets ended jobs within its next purge (at most a minute). Usage starts are
# recorded through aifd (tests/tools/aif-send, as root), then aifd is stopped, so that the jobs
# end and are forgotten before any pass sees them:
#   - with slurmdbd hanging (SIGSTOP), passes wait 15 s for it once, then go on; the intervals
#     stay open and aifd stops at once;
#   - with slurmdbd stopped, aifd warns and leaves their intervals open, pass after pass;
#   - once slurmdbd answers, each is closed at slurmdbd's start and end of that run, exactly
#     what sacct reports (end_source reconciled-slurmdbd, exact), with a log line saying so;
#   - a job id slurmdbd never recorded is closed at the last bound (reconciled-last-seen);
#   - an end record alone (its start never came), sent after slurmctld forgot its job, is
#     closed at slurmdbd's start and end of that run, exact, not with zero length.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
[[ $(id -u) == 0 ]] || fail "run as root: aifd is started as root and becomes SlurmUser"
cluster_start --slurmdbd --slurm-conf-line MinJobAge=2
cluster=$AIF_TEST_CLUSTER
uid=$(id -u "$AIF_TEST_USER")
export PGDATABASE=$AIFD_DB
q() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }

{ budgets_head health; cat; } >"$AIFD_WORK/budgets.yaml" <<YAML
factories:
  - id: dbd
    clusters: [$cluster]
    budgets: {cur: 1000}
    projects:
      - {id: roomy, sectors: [health], budgets: {cur: 900}, members: {users: [$AIF_TEST_USER]}}
YAML
aif_apply "$AIFD_WORK/budgets.yaml"
dbd_aifd_start() {
	aifd_start a "cluster = $cluster" "user = $AIF_TEST_SLURM_USER" \
		"slurm_user = $AIF_TEST_SLURM_USER" "reconcile_interval = 1s"
}
dbd_aifd_start

submit() { # submit ARGS...: an ordinary user's batch job; prints its id
	local id
	id=$(as_user "$AIF_TEST_USER" sbatch --parsable -o /dev/null "$@")
	[[ $id =~ ^[0-9]+$ ]] || fail "sbatch did not return a job id: '$id'"
	echo "$id"
}
field() { scontrol show job "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1; }
epoch() { date -d "$1" +%s; }
wait_running() {
	local deadline=$((SECONDS + 30))
	until [[ $(field "$1" JobState) == RUNNING ]]; do
		((SECONDS < deadline)) || fail "job $1 did not start (state $(field "$1" JobState))"
		sleep 0.2
	done
}
start() { # start JOB NODE TIME: the job's start on NODE, through aifd, as root
	local out
	out=$(aif_send root a usage cluster="$cluster" -- event=start job="$1" node="$2" restart=0 \
		gpus="${4:-1}" time="$3" uid="$uid" project=roomy 2>&1) || fail "aif-send for job $1: $out"
	assert_eq ok "$(head -n 1 <<<"$out")" "aifd's answer to job $1's start on $2"
}
interval() { # interval JOB NODE: started|ended|end_source|exact, times as Unix seconds
	q -c "SELECT extract(epoch FROM started_at)::bigint || '|' ||
		coalesce(extract(epoch FROM ended_at)::bigint::text, '') || '|' ||
		coalesce(end_source, '') || '|' || exact
		FROM aif.usage_intervals WHERE cluster = '$cluster' AND job_id = $1 AND node = '$2'"
}
sacct_times() { # sacct_times JOB: Start|End as slurmdbd has them, Unix seconds
	SLURM_TIME_FORMAT=%s sacct -X -n -P -j "$1" -o Start,End | tail -n 1
}

# Two jobs, their starts recorded a second late (as a slow node's prolog would), then aifd
# stopped: a two-node job of 3 s and a job cancelled after a second.
job_a=$(submit -N2 --gpus-per-node=2 -t 5 --wrap 'sleep 3')
job_b=$(submit -N1 --gpus-per-node=1 -t 5 --wrap 'sleep 300')
job_c=$(submit -N1 --gpus-per-node=1 -t 5 --wrap 'sleep 2') # its start never recorded
wait_running "$job_a"
wait_running "$job_b"
deadline=$((SECONDS + 30))
until node_c=$(field "$job_c" NodeList) && [[ $node_c =~ ^n[0-9]+$ ]]; do
	((SECONDS < deadline)) || fail "job $job_c has no node after 30 s: '$node_c'"
	sleep 0.2
done
start_a=$(epoch "$(field "$job_a" StartTime)") start_b=$(epoch "$(field "$job_b" StartTime)")
node_b=$(field "$job_b" NodeList)
start "$job_a" n1 "$((start_a + 1))" 2
start "$job_a" n2 "$((start_a + 1))" 2
start "$job_b" "$node_b" "$((start_b + 1))"
stop_pid "$AIFD_PID_a"
sleep 1
scancel "$job_b"

# 1. Both end and are forgotten by slurmctld (MinJobAge=2; its purge runs once a minute).
deadline=$((SECONDS + 150))
for j in "$job_a" "$job_b" "$job_c"; do
	until ! scontrol show job "$j" >/dev/null 2>&1; do
		((SECONDS < deadline)) || fail "slurmctld still knows job $j after 150 s (MinJobAge=2)"
		sleep 1
	done
done
times_a=$(sacct_times "$job_a") times_b=$(sacct_times "$job_b") times_c=$(sacct_times "$job_c")
[[ $times_a =~ ^[0-9]+\|[0-9]+$ && $times_b =~ ^[0-9]+\|[0-9]+$ && $times_c =~ ^[0-9]+\|[0-9]+$ ]] ||
	fail "sacct's times of jobs $job_a, $job_b and $job_c: '$times_a', '$times_b', '$times_c'"
assert_eq "$start_a" "${times_a%|*}" "job $job_a: slurmdbd's start is slurmctld's"
echo "jobs $job_a and $job_b ended and forgotten by slurmctld; slurmdbd has $times_a and $times_b"

open_count() {
	q -c "SELECT count(*) FROM aif.usage_intervals WHERE ended_at IS NULL AND job_id IN ($job_a, $job_b)"
}

# 2. slurmdbd hangs (SIGSTOP: it accepts connections and never answers; libslurm would wait
# 15 minutes): each pass waits 15 s for it, later passes go on without it, the intervals stay
# open, and aifd stops at once when asked.
dbd_pid=$(cat "$AIF_HARNESS_DIR/pids/slurmdbd")
kill -STOP "$dbd_pid"
trap 'kill -CONT "$dbd_pid" 2>/dev/null || true; aifd_cleanup' EXIT
dbd_aifd_start
aifd_wait_log a "WARNING:  slurmdbd did not answer within 15 s" "aifd's warning while slurmdbd hangs"
aifd_wait_log a "WARNING:  slurmdbd still has not answered an earlier request" "the next pass, slurmdbd hanging"
assert_eq 3 "$(open_count)" "intervals left open while slurmdbd hangs"
t=$SECONDS
stop_pid "$AIFD_PID_a" 20
((SECONDS - t < 10)) || fail "aifd took $((SECONDS - t)) s to stop while slurmdbd hangs"
kill -CONT "$dbd_pid"
echo "slurmdbd hanging: passes go on without it, the intervals stay open, aifd stops at once"

# 3. slurmdbd down: aifd warns and leaves the intervals open.
"$AIF_HARNESS" slurmdbd-stop "$AIF_HARNESS_DIR"
dbd_aifd_start
aifd_wait_log a "WARNING:  slurmdbd did not answer" "aifd's warning while slurmdbd is down"
sleep 3 # three passes
assert_eq 3 "$(open_count)" "intervals left open while slurmdbd does not answer"
echo "slurmdbd down: the 3 intervals of the forgotten jobs stay open"

# 4. slurmdbd back: closed at its times, exact, and said so.
"$AIF_HARNESS" slurmdbd-start "$AIF_HARNESS_DIR"
wait_sql "SELECT count(*) FROM aif.usage_intervals WHERE ended_at IS NULL AND job_id IN ($job_a, $job_b)" 0 \
	"the forgotten jobs' intervals closed once slurmdbd answers" 60
assert_eq "$times_a|reconciled-slurmdbd|true" "$(interval "$job_a" n1)" "job $job_a on n1"
assert_eq "$times_a|reconciled-slurmdbd|true" "$(interval "$job_a" n2)" "job $job_a on n2"
assert_eq "$times_b|reconciled-slurmdbd|true" "$(interval "$job_b" "$node_b")" "job $job_b on $node_b"
aifd_wait_log a "closed the usage interval of job $job_b on node $node_b .*" "job $job_b's log line"
grep -q "slurmdbd records it CANCELLED" "$AIFD_WORK/a.log" ||
	fail "no log line tells that job $job_b was closed from slurmdbd's record: $(grep -A2 "job $job_b" "$AIFD_WORK/a.log")"
echo "slurmdbd back: closed at slurmdbd's start and end (= sacct), exact, end_source reconciled-slurmdbd"

# 5. A job id slurmdbd never recorded: the last bound, as without slurmdbd (a fresh aifd: one
# that saw slurmdbd fail waits 10 minutes for what slurmctld may still be sending it).
stop_pid "$AIFD_PID_a"
dbd_aifd_start
ghost=4000000 ghost_start=$(($(date +%s) - 600))
start "$ghost" n2 "$ghost_start"
wait_sql "SELECT count(*) FROM aif.usage_intervals WHERE job_id = $ghost AND ended_at IS NOT NULL" 1 \
	"unknown job's interval closed"
assert_eq "$ghost_start|$ghost_start|reconciled-last-seen|false" "$(interval "$ghost" n2)" \
	"job $ghost, unknown to slurmctld and slurmdbd"
echo "job $ghost, never recorded by slurmdbd: closed at its last bound"

# 6. An end alone, its start record lost, sent after slurmctld forgot the job (as a node's
# spool sends it late, its epilog 2 s after the job's end), while slurmdbd hangs: it waits
# (its lookup goes on past a round's 2 s), then takes slurmdbd's start and end of that run,
# exact; without slurmdbd it would have zero length (no start, no admission).
end_c=$((${times_c#*|} + 2))
dbd_pid=$(cat "$AIF_HARNESS_DIR/pids/slurmdbd") # restarted in 4.
kill -STOP "$dbd_pid"
trap 'kill -CONT "$dbd_pid" 2>/dev/null || true; aifd_cleanup' EXIT
out=$(aif_send root a usage cluster="$cluster" -- event=end job="$job_c" node="$node_c" restart=0 \
	gpus=1 time="$end_c" uid="$uid" project=roomy 2>&1) || fail "aif-send for job $job_c: $out"
assert_eq ok "$(head -n 1 <<<"$out")" "aifd's answer to job $job_c's end alone"
sleep 5
assert_eq 1 "$(q -c "SELECT count(*) FROM aif.usage_end_inbox WHERE job_id = $job_c")" \
	"job $job_c's end waiting for slurmdbd, which hangs"
kill -CONT "$dbd_pid"
wait_sql "SELECT count(*) FROM aif.usage_intervals WHERE job_id = $job_c AND ended_at IS NOT NULL" 1 \
	"job $job_c's end alone closed"
assert_eq "$times_c|epilog|true" "$(interval "$job_c" "$node_c")" "job $job_c: its end alone, at slurmdbd's times"
aifd_wait_log a "closing 1 usage ends of jobs slurmctld no longer knows at slurmdbd's start and end of their runs \(1 of them without a start record\)" \
	"the settler's log line"
echo "job $job_c's end alone, its job forgotten by slurmctld: waited for slurmdbd, closed at its start and end"
