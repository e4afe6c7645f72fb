#!/usr/bin/env bash
# aifd's reconciliation with slurmctld and on_exhausted: cancel (daemon/slurm/reconcile.c), on the
# harness Slurm, with aifd running as SlurmUser and a 1 s reconcile_interval. Usage starts are
# recorded through aifd (tests/tools/aif-send, as root); then, in aif.usage_intervals:
#   - a real job that ended with only its starts recorded is closed at exactly slurmctld's end
#     time (end_source reconciled-slurm), on each of its nodes;
#   - a job id slurmctld never knew is closed at its start (never seen: the last bound);
#   - a requeued job's earlier run is closed at the last time aifd saw it running;
#   - a running job stays open;
#   - an ended job whose end waits in aif.usage_end_inbox is left to the usage writer, for 5 minutes;
# and, with budgets exhausted by backdated starts: the job of a project with on_exhausted:
# cancel is cancelled within a few passes (a row in aif.cancellations, a log line), with a
# grace not before it, and for an exhausted AI Factory; the job of a project with deny is not.
# Last, a stopped slurmctld: aifd keeps answering, warns, and carries on once it is back.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
load_harness
[[ $(id -u) == 0 ]] || fail "run as root: aifd is started as root and becomes SlurmUser"
slurm_user=${AIF_TEST_SLURM_USER:?the harness run has no Slurm}
[[ $slurm_user != root ]] || fail "the harness runs slurmctld as root; aifd must run as SlurmUser, which cannot be root"
cluster=$AIF_TEST_CLUSTER
uid=$(id -u "$AIF_TEST_USER")
aifd_setup
ctld_stopped=
cleanup() {
	[[ -z $ctld_stopped ]] || kill -CONT "$ctld_stopped" 2>/dev/null || true
	if [[ -s $AIFD_WORK/jobs ]]; then
		# Tests that run next expect idle nodes: wait until the jobs are gone.
		xargs scancel <"$AIFD_WORK/jobs" 2>/dev/null || true
		for _ in {1..150}; do
			[[ -n $(squeue -h -t PD,R,S,CG,CF -j "$(paste -sd, "$AIFD_WORK/jobs")" -o %i 2>/dev/null) ]] || break
			sleep 0.2
		done
	fi
	aifd_cleanup
}
trap cleanup EXIT
export PGDATABASE=$AIFD_DB
log=$AIFD_WORK/a.log

q() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }

# One period around today; a roomy project for the reconciliation jobs; tiny budgets to
# exhaust: a project that cancels at once, one that cancels after a grace, one that denies,
# and a whole AI Factory that cancels.
{ budgets_head health; cat; } >"$AIFD_WORK/budgets.yaml" <<YAML
factories:
  - id: recon
    clusters: [$cluster]
    budgets: {cur: 100000}
    projects:
      - {id: roomy, sectors: [health], budgets: {cur: 90000}, members: {users: [$AIF_TEST_USER]}}
      - id: tiny-cancel
        sectors: [health]
        budgets: {cur: 1}
        on_exhausted: cancel
        members: {users: [$AIF_TEST_USER]}
      - id: tiny-grace
        sectors: [health]
        budgets: {cur: 1}
        on_exhausted: cancel
        grace: 6s
        members: {users: [$AIF_TEST_USER]}
      - {id: tiny-deny, sectors: [health], budgets: {cur: 1}, members: {users: [$AIF_TEST_USER]}}
  - id: small
    clusters: [$cluster]
    budgets: {cur: 1}
    on_exhausted: cancel
    projects:
      - {id: in-small, sectors: [health], members: {users: [$AIF_TEST_USER]}}
YAML
"$AIF_BUILD_DIR/aifctl/aifctl" apply "$AIFD_WORK/budgets.yaml" --db "$AIFD_CONNINFO" >/dev/null

# aifd as SlurmUser (started as root, it becomes that user), a pass every second.
aifd_start a "cluster = $cluster" "user = $slurm_user" "slurm_user = $slurm_user" "reconcile_interval = 1s"
pid=$AIFD_PID_a
assert_eq "$slurm_user" "$(ps -o user= -p "$pid")" "aifd's user"


submit() { # submit ARGS...: an ordinary user's batch job; prints its id (cancelled at exit)
	local id
	id=$(as_user "$AIF_TEST_USER" sbatch --parsable -o /dev/null "$@")
	[[ $id =~ ^[0-9]+$ ]] || fail "sbatch did not return a job id: '$id'"
	echo "$id" >>"$AIFD_WORK/jobs" # submit runs in $(...): a variable would not survive it
	echo "$id"
}
field() { # field JOB KEY: a value of scontrol show job
	scontrol show job "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1
}
epoch() { date -d "$1" +%s; } # scontrol prints local time: date reads it in the same zone
wait_running() { # wait_running JOB
	local deadline=$((SECONDS + 30))
	until [[ $(field "$1" JobState) == RUNNING ]]; do
		((SECONDS < deadline)) || fail "job $1 did not start (state $(field "$1" JobState))"
		sleep 0.2
	done
}
# start JOB NODE TIME PROJECT [RESTART]: record the job's start on NODE through aifd, as root.
start() {
	local out
	out=$(aif_send root a usage cluster="$cluster" -- event=start job="$1" node="$2" \
		restart="${5:-0}" gpus=1 time="$3" uid="$uid" project="$4" 2>&1) ||
		fail "aif-send for job $1: $out"
	assert_eq "ok" "$(head -n 1 <<<"$out")" "aifd's answer to job $1's start on $2"
}
interval() { # interval JOB NODE [RESTART]: started|ended|end_source, times as Unix seconds
	q -c "SELECT extract(epoch FROM started_at)::bigint || '|' ||
		coalesce(extract(epoch FROM ended_at)::bigint::text, '') || '|' || coalesce(end_source, '')
		FROM aif.usage_intervals WHERE cluster = '$cluster' AND job_id = $1 AND node = '$2'
		AND restart_count = ${3:-0}"
}
is_open() { q -c "SELECT count(*) FROM aif.usage_intervals WHERE job_id = $1 AND ended_at IS NULL"; }

# 1. A two-node job that ends with only its starts recorded: both intervals closed at the end
# time slurmctld reports.
job_a=$(submit -N2 --gpus-per-node=1 --wrap 'sleep 3')
wait_running "$job_a"
start_a=$(epoch "$(field "$job_a" StartTime)")
# The nodes' clocks a second late: aifd keeps slurmctld's start instead (daemon/slurm/jobtimes.c).
start "$job_a" n1 "$((start_a + 1))" roomy
start "$job_a" n2 "$((start_a + 1))" roomy
assert_eq COMPLETED "$(wait_job "$job_a")" "job $job_a"
end_a=$(epoch "$(field "$job_a" EndTime)")
wait_sql "SELECT count(*) FROM aif.usage_intervals WHERE job_id = $job_a AND ended_at IS NOT NULL" 2 \
	"job $job_a's intervals closed"
assert_eq "$start_a|$end_a|reconciled-slurm" "$(interval "$job_a" n1)" "job $job_a on n1"
assert_eq "$start_a|$end_a|reconciled-slurm" "$(interval "$job_a" n2)" "job $job_a on n2"
assert_eq "t" "$(q -c "SELECT bool_and(exact) FROM aif.usage_intervals WHERE job_id = $job_a")" \
	"job $job_a's intervals exact"
aifd_wait_log a "closed the usage interval of job $job_a on node n1 \(restart 0\) at " "job $job_a's log line"
echo "ended job $job_a: closed at slurmctld's end time $end_a"

# 1a. An epilog's end that slurmctld answers for late (stopped for 2 s, as a busy controller
# completing jobs is slow): its settlement waits for the answer, rather than closing the
# interval at the node's times after the first round's 500 ms. Only the end is recorded (no
# start: reconciliation has no interval of it to close); slurmctld's times give both.
job_e=$(submit -N1 --gpus-per-node=1 --wrap 'sleep 1')
assert_eq COMPLETED "$(wait_job "$job_e")" "job $job_e"
start_e=$(epoch "$(field "$job_e" StartTime)") end_e=$(epoch "$(field "$job_e" EndTime)")
ctld_stopped=$(cat "$AIF_HARNESS_DIR/pids/slurmctld")
kill -STOP "$ctld_stopped"
out=$(aif_send root a usage cluster="$cluster" -- event=end job="$job_e" node=n1 restart=0 gpus=1 \
	time="$end_e" uid="$uid" project=roomy 2>&1) || fail "aif-send for job $job_e's end: $out"
assert_eq "ok" "$(head -n 1 <<<"$out")" "aifd's answer to job $job_e's end, slurmctld stopped"
sleep 2
kill -CONT "$ctld_stopped"
ctld_stopped=
aifd_wait_settled "job $job_e's end"
assert_eq "$start_e|$end_e|epilog|t" "$(interval "$job_e" n1)|$(q -c "SELECT exact FROM aif.usage_intervals
	WHERE job_id = $job_e")" "job $job_e: slurmctld's late answer settles it"

# 1b. A job that ended whose epilog's end was acknowledged and waits in aif.usage_end_inbox for
# the usage writer's round (put there by hand, while the job runs, since once it ends the next
# pass would close the interval; this aifd's writer does not know the row): not
# reconciliation's to close, however many passes see the job ended, until it has waited there
# for 5 minutes.
job_b=$(submit -N1 --gpus-per-node=1 --wrap 'sleep 2')
wait_running "$job_b"
node_b=$(field "$job_b" NodeList)
start "$job_b" "$node_b" "$(epoch "$(field "$job_b" StartTime)")" roomy
q -c "INSERT INTO aif.usage_end_inbox (cluster, job_id, node, restart_count, project_id, sector_id,
	uid, gpus, ended_at) VALUES ('$cluster', $job_b, '$node_b', 0, 'roomy', 'health', $uid, 1, now())"
assert_eq COMPLETED "$(wait_job "$job_b")" "job $job_b"

# 2. A job id slurmctld never knew: closed at the last bound, its own start (never seen).
ghost=4000000
ghost_start=$(($(date +%s) - 600))
start "$ghost" n2 "$ghost_start" roomy
wait_sql "SELECT count(*) FROM aif.usage_intervals WHERE job_id = $ghost AND ended_at IS NOT NULL" 1 \
	"unknown job's interval closed"
assert_eq "$ghost_start|$ghost_start|reconciled-last-seen" "$(interval "$ghost" n2)" "unknown job $ghost"
aifd_wait_log a "job $ghost on node n2 .*" "unknown job's log line"

# 2b. The same for usage nobody could be charged for (kept unattributed), whose end never comes.
q -c "INSERT INTO aif.unattributed_intervals (cluster, job_id, node, restart_count, reason, uid, gpus,
	started_at) VALUES ('$cluster', 4000002, 'n1', 0, 'no-project', 4242, 2, to_timestamp($ghost_start))"
wait_sql "SELECT count(*) FROM aif.unattributed_intervals WHERE job_id = 4000002 AND ended_at = started_at" 1 \
	"unknown job's unattributed usage closed"

# 1b, continued: passes have run since its end went to the inbox (they closed the ghost).
sleep 2
assert_eq 1 "$(is_open "$job_b")" "job $job_b, its end in the inbox, left open by reconciliation"
q -c "UPDATE aif.usage_end_inbox SET received_at = now() - interval '301 seconds' WHERE job_id = $job_b"
wait_sql "SELECT end_source FROM aif.usage_intervals WHERE job_id = $job_b" reconciled-slurm \
	"job $job_b, its end 5 minutes in the inbox, closed by reconciliation"
q -c "DELETE FROM aif.usage_end_inbox WHERE job_id = $job_b"
echo "job $job_b: left to the usage writer while its end was in the inbox, reconciled after 5 minutes"

# 3. A running job stays open, seen at every pass.
job_c=$(submit -N1 --gpus-per-node=1 --wrap 'sleep 300')
wait_running "$job_c"
start_c=$(epoch "$(field "$job_c" StartTime)")
start "$job_c" "$(field "$job_c" NodeList)" "$start_c" roomy
wait_sql "SELECT count(*) FROM aif.job_last_seen WHERE job_id = $job_c" 1 "job $job_c seen"
seen1=$(q -c "SELECT extract(epoch FROM seen_at)::bigint FROM aif.job_last_seen WHERE job_id = $job_c")
sleep 3
seen2=$(q -c "SELECT extract(epoch FROM seen_at)::bigint FROM aif.job_last_seen WHERE job_id = $job_c")
((seen2 > seen1)) || fail "job $job_c's last sighting did not advance: $seen1, then $seen2"
assert_eq 1 "$(is_open "$job_c")" "running job $job_c still open after several passes"

# 4. Requeued: the run of restart 0 is over once slurmctld counts a restart; it is closed at
# the last time a pass saw it running, and the next run's start time is later.
job_r=$(submit -N1 --gpus-per-node=1 --requeue --wrap 'sleep 300')
wait_running "$job_r"
start_r=$(epoch "$(field "$job_r" StartTime)")
start "$job_r" "$(field "$job_r" NodeList)" "$start_r" roomy
node_r=$(field "$job_r" NodeList)
wait_sql "SELECT count(*) FROM aif.job_last_seen WHERE job_id = $job_r AND seen_at > to_timestamp($start_r)" 1 \
	"job $job_r seen after its start"
sleep 1
scontrol requeue "$job_r"
requeued_at=$(date +%s) # every sighting of the first run came before this
wait_sql "SELECT end_source FROM aif.usage_intervals WHERE job_id = $job_r" reconciled-last-seen \
	"requeued job's first run closed"
IFS='|' read -r s e _ <<<"$(interval "$job_r" "$node_r")"
assert_eq "$start_r" "$s" "requeued job's start"
((e > start_r && e <= requeued_at && e >= requeued_at - 3)) ||
	fail "requeued job $job_r closed at $e: expected its last sighting, in [$((requeued_at - 3)), $requeued_at]"
assert_eq 1 "$(field "$job_r" Restarts)" "slurmctld's restart count of job $job_r"
assert_eq 0 "$(q -c "SELECT count(*) FROM aif.job_last_seen WHERE job_id = $job_r")" "sighting forgotten"
aifd_wait_log a "closed the usage interval of job $job_r .*" "requeued job's log line"
echo "requeued job $job_r: first run closed at $e (requeued at $requeued_at)"

# 5. on_exhausted: cancel. Each job's start is backdated two hours on one GPU: 2 GPU-hours, over
# the budget of 1. A project that cancels at once; one that cancels after 6 s; a project under
# a factory whose own budget is exhausted; a project that denies.
backdated=$(($(date +%s) - 7200))
job_d=$(submit -N1 --gpus-per-node=1 --wrap 'sleep 300')
job_e=$(submit -N1 --gpus-per-node=1 --wrap 'sleep 300')
job_g=$(submit -N1 --gpus-per-node=1 --wrap 'sleep 300')
job_f=$(submit -N1 --gpus-per-node=1 --wrap 'sleep 300')
for j in "$job_d" "$job_e" "$job_g" "$job_f"; do wait_running "$j"; done
start "$job_d" "$(field "$job_d" NodeList)" "$backdated" tiny-cancel
start "$job_e" "$(field "$job_e" NodeList)" "$backdated" tiny-grace
start "$job_g" "$(field "$job_g" NodeList)" "$backdated" in-small
start "$job_f" "$(field "$job_f" NodeList)" "$backdated" tiny-deny
t_sent=$(date +%s)

assert_eq CANCELLED "$(wait_job "$job_d" 20)" "job $job_d of tiny-cancel"
assert_eq CANCELLED "$(wait_job "$job_g" 20)" "job $job_g of the exhausted factory"
for j in "$job_d" "$job_g"; do
	wait_sql "SELECT outcome FROM aif.cancellations WHERE job_id = $j AND done_at IS NOT NULL" cancelled \
		"job $j's cancellation recorded"
	aifd_wait_log a "INFO:  cancelled job $j of project " "job $j's cancellation logged"
done
assert_eq "$cluster|tiny-cancel|recon|project|cur|t" "$(q -c "SELECT cluster, project_id, factory_id, scope,
	period_id, not_before = requested_at FROM aif.cancellations WHERE job_id = $job_d")" "job $job_d's request"
assert_match "^project tiny-cancel used 2(\.[0-9]+)? of its 1 charged GPU-hours in period cur$" \
	"$(q -c "SELECT reason FROM aif.cancellations WHERE job_id = $job_d")" "job $job_d's reason"
assert_eq "$cluster|in-small|small|factory|t" "$(q -c "SELECT cluster, project_id, factory_id, scope,
	not_before = requested_at FROM aif.cancellations WHERE job_id = $job_g")" "job $job_g's request"
# The cancelled job's interval is then closed at its end, like any other.
wait_sql "SELECT end_source FROM aif.usage_intervals WHERE job_id = $job_d" reconciled-slurm \
	"cancelled job's interval closed"
assert_eq "$(epoch "$(field "$job_d" EndTime)")" "$(interval "$job_d" "$(field "$job_d" NodeList)" | cut -d'|' -f2)" \
	"cancelled job's interval ends at its end"

# With a grace of 6 s: requested at once, not cancelled before not_before.
wait_sql "SELECT extract(epoch FROM not_before - requested_at)::int FROM aif.cancellations WHERE job_id = $job_e" 6 \
	"job $job_e's request with its grace"
aifd_wait_log a "job $job_e of project \"tiny-grace\" is to be cancelled" "job $job_e's request logged"
not_before=$(q -c "SELECT floor(extract(epoch FROM not_before))::bigint FROM aif.cancellations WHERE job_id = $job_e")
if (($(date +%s) < not_before - 1)); then
	assert_eq RUNNING "$(field "$job_e" JobState)" "job $job_e during its grace"
fi
assert_eq CANCELLED "$(wait_job "$job_e" 30)" "job $job_e of tiny-grace"
end_e=$(epoch "$(field "$job_e" EndTime)")
((end_e >= not_before)) || fail "job $job_e ended at $end_e, before its not_before $not_before"
assert_eq "cancelled|t" "$(q -c "SELECT outcome, done_at >= not_before FROM aif.cancellations WHERE job_id = $job_e")" \
	"job $job_e's cancellation after the grace"
aifd_wait_log a "INFO:  cancelled job $job_e of project \"tiny-grace\"" "job $job_e's cancellation logged"
echo "cancelled jobs $job_d (no grace), $job_e (6 s grace, not before $not_before, ended $end_e), $job_g (factory)"

# on_exhausted: deny: running jobs finish. A few more passes change nothing.
sleep $((t_sent + 8 - $(date +%s) > 3 ? t_sent + 8 - $(date +%s) : 3))
assert_eq RUNNING "$(field "$job_f" JobState)" "job $job_f of tiny-deny"
assert_eq 0 "$(q -c "SELECT count(*) FROM aif.cancellations WHERE job_id = $job_f")" "no cancellation for $job_f"
assert_eq deny "$(q -c "SELECT on_exhausted FROM aif.projects WHERE id = 'tiny-deny'")" "tiny-deny's policy"
assert_eq exhausted "$(q -c "SELECT state FROM aif_report.budget_status WHERE project = 'tiny-deny'")" \
	"tiny-deny's budget"
assert_eq 1 "$(is_open "$job_c")" "running job $job_c still open"
assert_eq 3 "$(q -c 'SELECT count(*) FROM aif.cancellations')" "cancellations"

# 6. slurmctld stops answering: usage is still recorded at once, a warning is logged, and the
# running job's interval is left alone; once it answers again, aifd says so and carries on.
ctld_stopped=$(cat "$AIF_HARNESS_DIR/pids/slurmctld")
kill -STOP "$ctld_stopped"
t0=$SECONDS
start 4000001 n1 "$(date +%s)" roomy
((SECONDS - t0 <= 2)) || fail "usage took $((SECONDS - t0)) s to be recorded with slurmctld stopped"
aifd_wait_log a "WARNING:  could not load the jobs from slurmctld" "warning about slurmctld"
kill -CONT "$ctld_stopped"
ctld_stopped=
aifd_wait_log a "INFO:  slurmctld answers again" "slurmctld back"
wait_sql "SELECT end_source FROM aif.usage_intervals WHERE job_id = 4000001" reconciled-last-seen \
	"unknown job closed once slurmctld answers" 30
assert_eq 1 "$(is_open "$job_c")" "running job $job_c still open after the outage"

# 7. SIGHUP applies a new reconcile_interval; SIGTERM stops aifd cleanly.
sed -i 's/^reconcile_interval = .*/reconcile_interval = 2s/' "$AIFD_WORK/a.conf"
kill -HUP "$pid"
aifd_wait_log a "setting \"reconcile_interval\" changed from \"1000ms\" to \"2000ms\"" "reconcile_interval reloaded"
scancel "$job_c"
wait_sql "SELECT end_source FROM aif.usage_intervals WHERE job_id = $job_c" reconciled-slurm \
	"cancelled running job closed"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
assert_eq 0 "$rc" "aifd's exit status after SIGTERM"
assert_match "INFO:  aifd stopped" "$(cat "$log")" "aifd stopped"
! grep -E "^[^ ]+ [^ ]+ UTC \[[0-9]+\] ERROR:" "$log" || fail "errors in aifd's log"
assert_eq "" "$(q -c 'SELECT * FROM aif.rollup_verify()')" "rollup_verify"
echo "aifd reconcile: all checks passed"
