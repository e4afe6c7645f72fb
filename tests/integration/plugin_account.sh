#!/usr/bin/env bash
# Per-node accounting in the prolog and epilog (plugin/account.c), on a two-node cluster of the
# test's own with aif.so and a real aifd: a two-node GPU job gives one interval per node with
# that node's GPUs and exactly Slurm's own StartTime and EndTime (daemon/slurm/jobtimes.c); with aifd
# stopped, jobs still run, their records wait in the node's spool, and arrive once aifd is back
# (the next job's prolog flushes the spool), each exactly once and still exact; each task of a
# job array is its own job; a requeued job gives one interval per node and run (restart
# count), the first run's closed by its epilog although the requeue raised the count before it.
# aif-pelog is Prolog= and Epilog= too: run by slurmd, as here, it records nothing.
# plugin_account.sh RunInJob: the same with PrologFlags=RunInJob, where aif-pelog records the
# usage (plugin/pelog.c).
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
AIF_PROLOG_FLAGS=${1:-} AIF_PELOG=1
plugin_cluster_start timeout=2s
user=$AIF_TEST_USER
# Jobs on both nodes; with RunInJob before Slurm 25.11 on one: there, the extern slurmstepd of
# every node but the first crashes on a job with GPUs on several nodes (docs/slurm.md).
nodes=2
if [[ -n $AIF_PROLOG_FLAGS ]] && ! "$AIF_HARNESS" slurm-at-least 25.11; then
	nodes=1
fi

{ budgets_head health; cat; } >"$AIFD_WORK/budgets.yaml" <<YAML
factories:
  - id: fa
    clusters: [$AIF_TEST_CLUSTER]
    budgets: {cur: 1000}
    projects:
      - {id: mine, sectors: [health], budgets: {cur: 100}, members: {users: [$user]}}
YAML
aif_apply "$AIFD_WORK/budgets.yaml"
plugin_aifd_start

slurm_times() { # slurm_times JOB: "START END RESTARTS" as slurmctld reports them (Unix seconds; - for Unknown)
	local line start end
	line=$(scontrol -o show job "$1" | grep "^JobId=$1 ") # an array's id shows all its tasks
	start=$(sed 's/.* StartTime=\([^ ]*\).*/\1/' <<<"$line")
	end=$(sed 's/.* EndTime=\([^ ]*\).*/\1/' <<<"$line")
	[[ $start == Unknown ]] && start=- || start=$(date -d "$start" +%s)
	[[ $end == Unknown ]] && end=- || end=$(date -d "$end" +%s)
	echo "$start $end $(sed 's/.* Restarts=\([0-9]*\).*/\1/' <<<"$line")"
}
intervals() { # intervals JOB: node|restart|gpus|start|end|end_source|exact per node and run
	psql -d "$AIFD_DB" -Atc "SELECT node, restart_count, gpus, extract(epoch FROM started_at)::bigint,
		extract(epoch FROM ended_at)::bigint, end_source, exact FROM aif.usage_intervals
		WHERE job_id = $1 ORDER BY restart_count, node"
}
wait_closed() { # wait_closed JOB COUNT: until COUNT intervals of JOB were closed by an epilog
	local deadline=$((SECONDS + 20))
	until [[ $(intervals "$1" | grep -c '|epilog|') == "$2" ]]; do
		((SECONDS < deadline)) || fail "job $1: not $2 closed intervals: $(intervals "$1")" \
			"$(tail -n 40 "$AIFD_WORK/pelog.log" 2>/dev/null)"
		sleep 0.2
	done
}
# check_job JOB GPUS [NODES]: one closed interval per node with GPUS GPUs, from exactly Slurm's
# StartTime to its EndTime.
check_job() {
	local job=$1 gpus=$2 nodes=${3:-2} s e r rows node restart g start end src exact
	read -r s e r < <(slurm_times "$job")
	rows=$(intervals "$job")
	echo "job $job: slurm $s..$e; $(paste -sd' ' <<<"$rows")"
	assert_eq "$nodes" "$(grep -c . <<<"$rows")" "job $job: intervals"
	while IFS='|' read -r node restart g start end src exact; do
		assert_eq "$r $gpus epilog t" "$restart $g $src $exact" "job $job on $node: restart, GPUs, end source, exact"
		assert_eq "$s $e" "$start $end" "job $job on $node: start and end (Slurm's)"
	done <<<"$rows"
}

job=$(as_user "$user" sbatch --parsable -N$nodes --gpus-per-node=2 --aif-project=mine -o j1.out --wrap 'sleep 2')
assert_eq COMPLETED "$(wait_job "$job")" "first job"
wait_closed "$job" $nodes
check_job "$job" 2 $nodes

# A job array: every task is a job of its own, with its own id and interval.
array=$(as_user "$user" sbatch --parsable -N1 --gpus-per-node=3 --array=1-3 --aif-project=mine -o /dev/null --wrap 'sleep 1')
deadline=$((SECONDS + 60))
while [[ -n $(squeue -h -j "$array") ]]; do # its tasks get their own ids when they start
	((SECONDS < deadline)) || fail "array $array did not end: $(squeue -j "$array")"
	sleep 0.3
done
tasks=$(scontrol -o show job "$array" | sed -n 's/^JobId=\([0-9]*\) .*ArrayTaskId=\([0-9]*\) .*/\1/p' | sort -n)
assert_eq 3 "$(grep -c . <<<"$tasks")" "array $array: tasks"
for task in $tasks; do
	assert_eq COMPLETED "$(wait_job "$task")" "array task $task"
	wait_closed "$task" 1
	check_job "$task" 3 1
done

# A requeued job: the requeue ends the first run (restart 0) on each node; the second
# (restart 1) runs to its end. The first run's epilog sees restart count 1 already.
requeued=$(as_user "$user" sbatch --parsable -N$nodes --gpus-per-node=1 --requeue --aif-project=mine -o /dev/null \
	--wrap 'if [ "${SLURM_RESTART_COUNT:-0}" = 0 ]; then sleep 300; else sleep 1; fi')
deadline=$((SECONDS + 30))
until [[ $(intervals "$requeued" | grep -c '^n.|0|1|[0-9]*||') == "$nodes" ]]; do
	((SECONDS < deadline)) || fail "job $requeued: the first run did not open: $(intervals "$requeued")"
	sleep 0.2
done
read -r s0 _ _ < <(slurm_times "$requeued")
scontrol requeue "$requeued"
requeued_at=$(date +%s)
deadline=$((SECONDS + 30))
# Slurm holds a requeued job back a while; once it is pending again, let it start now.
until [[ $(squeue -h -j "$requeued" -o %T) == RUNNING ]] || [[ -z $(squeue -h -j "$requeued") ]]; do
	((SECONDS < deadline)) || fail "job $requeued did not start again: $(squeue -j "$requeued")"
	scontrol update JobId="$requeued" StartTime=now 2>/dev/null || true
	sleep 0.5
done
assert_eq COMPLETED "$(wait_job "$requeued")" "the requeued job"
wait_closed "$requeued" $((2 * nodes))
rows=$(intervals "$requeued")
echo "requeued job $requeued: first run from $s0, requeued at $requeued_at; $(paste -sd' ' <<<"$rows")"
# Under RunInJob the epilog runs in the extern slurmstepd once the job's other steps are gone,
# which it SIGKILLs after 2 s: 3 to 4 s after the requeue on 24.11 (docs/slurm.md "RunInJob").
late=2
[[ -z $AIF_PROLOG_FLAGS ]] || late=5
while IFS='|' read -r node restart g start end src exact; do
	# The first run's times are the node's clock: slurmctld forgets them at the requeue, and a
	# start is settled only with its end. The prolog starts after slurmctld's StartTime, within
	# a second (on 24.11 it crossed a second boundary 1 run in 5).
	assert_eq "1 epilog f" "$g $src $exact" "job $requeued run 0 on $node: GPUs, end source, exact"
	((start >= s0 && start <= s0 + 1)) || fail "job $requeued run 0 on $node: start $start, slurmctld's $s0"
	((end >= requeued_at - 2 && end <= requeued_at + late)) || fail "job $requeued run 0 on $node: end $end, requeued at $requeued_at"
done < <(grep '^n.|0|' <<<"$rows")
assert_eq "$nodes" "$(grep -c '^n.|1|1|[0-9]*|[0-9]*|epilog|t$' <<<"$rows")" "job $requeued: the second run's intervals"
read -r s e r < <(slurm_times "$requeued")
assert_eq "1 $nodes" "$r $(grep -c "^n.|1|1|$s|$e|" <<<"$rows")" "job $requeued: the second run at Slurm's times"
assert_eq "" "$(ls "$AIFD_WORK/spool/runs")" "the prologs' run files, once the epilogs took them"

# aifd stopped: the job runs all the same; its records wait in the spool.
stop_pid "$AIFD_PID_a"
job2=$(as_user "$user" sbatch --parsable -N$nodes --gpus-per-node=1 --aif-project=mine -o j2.out --wrap 'sleep 1')
assert_eq COMPLETED "$(wait_job "$job2" 90)" "a job while aifd is down"
deadline=$((SECONDS + 20))
until (($(find "$AIFD_WORK/spool" -maxdepth 1 -type f -name "*.$job2.*.usage" 2>/dev/null | wc -l) == 2 * nodes)); do
	((SECONDS < deadline)) || fail "job $job2: spool has $(ls "$AIFD_WORK/spool" 2>&1)"
	sleep 0.2
done
assert_eq "n1 idle,n2 idle" "$(sinfo -h -N -o '%N %T' | sort | paste -sd,)" "nodes while aifd is down"

# aifd back: the next job's prolog and epilog flush the spool.
plugin_aifd_start
job3=$(as_user "$user" sbatch --parsable -N$nodes --gpus-per-node=1 --aif-project=mine -o j3.out --wrap 'true')
assert_eq COMPLETED "$(wait_job "$job3")" "the job after aifd is back"
deadline=$((SECONDS + 10))
until [[ $(intervals "$job2" | grep -c '|epilog|') == "$nodes" && $(intervals "$job3" | grep -c '|epilog|') == "$nodes" ]]; do
	((SECONDS < deadline)) || fail "spooled usage did not arrive: job $job2: $(intervals "$job2"); job $job3: $(intervals "$job3"); unattributed: $(psql -d "$AIFD_DB" -Atc "SELECT job_id, node, reason FROM aif.unattributed_intervals"); spool: $(ls -R "$AIFD_WORK/spool"); $(cat "$AIFD_WORK"/spool/bad/*.why 2>/dev/null); slurmd: $(grep -h aif "$AIF_HARNESS_DIR"/slurm/log/*d*.log | tail -20)"
	sleep 0.2
done
check_job "$job2" 1 $nodes
check_job "$job3" 1 $nodes
assert_eq "" "$(find "$AIFD_WORK/spool" -maxdepth 1 -type f -name '*.usage')" "records left in the spool"
[[ ! -d $AIFD_WORK/spool/bad ]] || fail "records moved aside: $(ls "$AIFD_WORK/spool/bad")"
if [[ -z $AIF_PROLOG_FLAGS ]]; then # run by slurmd: aif.so recorded, aif-pelog nothing
	runs=$(grep -c ': exit 0$' "$AIFD_WORK/pelog.log")
	((runs >= 16)) || fail "aif-pelog ran $runs times: $(cat "$AIFD_WORK/pelog.log")"
	assert_eq "$runs" "$(grep -c 'error: aif: the \(prolog\|epilog\) of job [0-9]* was run by slurmd, not in the job.s slurmstepd; nothing recorded$' "$AIFD_WORK/pelog.log")" \
		"aif-pelog runs by slurmd that said they recorded nothing"
	! grep -E 'spooled|sent|usage records' "$AIFD_WORK/pelog.log" || fail "aif-pelog recorded usage when run by slurmd"
fi
echo "plugin accounting: all checks passed"
