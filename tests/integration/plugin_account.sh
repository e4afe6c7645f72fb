#!/usr/bin/env bash
# Per-node accounting in the prolog and epilog (plugin/account.c), on a two-node cluster of the
# test's own with aif.so and a real aifd: a two-node GPU job gives one interval per node with
# that node's GPUs, within Slurm's own start and end; with aifd stopped, jobs still run, their
# records wait in the node's spool, and arrive once aifd is back (the next job's prolog
# flushes the spool), each exactly once.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
plugin_cluster_start timeout=2s
user=$AIF_TEST_USER

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

epoch() { date -u -d "$1" +%s; } # scontrol prints local time; the harness runs in UTC or TZ
slurm_times() { # slurm_times JOB: "START END" in Unix seconds, as slurmctld reports them
	local line
	line=$(scontrol -o show job "$1")
	echo "$(date -d "$(sed 's/.* StartTime=\([^ ]*\).*/\1/' <<<"$line")" +%s)" \
		"$(date -d "$(sed 's/.* EndTime=\([^ ]*\).*/\1/' <<<"$line")" +%s)"
}
intervals() { # intervals JOB: node|gpus|start|end|end_source per node
	psql -d "$AIFD_DB" -Atc "SELECT node, gpus, extract(epoch FROM started_at)::bigint,
		extract(epoch FROM ended_at)::bigint, end_source FROM aif.usage_intervals
		WHERE job_id = $1 ORDER BY node"
}
# check_job JOB GPUS: one closed interval per node with GPUS GPUs, within Slurm's times (the
# prolog runs at the allocation, the epilog once the job ended: at most a second apart).
check_job() {
	local job=$1 gpus=$2 s e rows node g start end src
	read -r s e < <(slurm_times "$job")
	rows=$(intervals "$job")
	echo "job $job: slurm $s..$e; $(paste -sd' ' <<<"$rows")"
	assert_eq 2 "$(grep -c . <<<"$rows")" "job $job: intervals"
	while IFS='|' read -r node g start end src; do
		assert_eq "$gpus" "$g" "job $job on $node: GPUs"
		assert_eq epilog "$src" "job $job on $node: end source"
		((start >= s - 1 && start <= s + 1)) || fail "job $job on $node: start $start, Slurm says $s"
		((end >= e - 1 && end <= e + 1)) || fail "job $job on $node: end $end, Slurm says $e"
	done <<<"$rows"
}

job=$(as_user "$user" sbatch --parsable -N2 --gpus-per-node=2 --aif-project=mine -o j1.out --wrap 'sleep 2')
assert_eq COMPLETED "$(wait_job "$job")" "first job"
deadline=$((SECONDS + 10))
until [[ $(intervals "$job" | grep -c epilog) == 2 ]]; do
	((SECONDS < deadline)) || fail "job $job: no closed intervals: $(intervals "$job")"
	sleep 0.2
done
check_job "$job" 2

# aifd stopped: the job runs all the same; its records wait in the spool.
stop_pid "$AIFD_PID_a"
job2=$(as_user "$user" sbatch --parsable -N2 --gpus-per-node=1 --aif-project=mine -o j2.out --wrap 'sleep 1')
assert_eq COMPLETED "$(wait_job "$job2" 90)" "a job while aifd is down"
deadline=$((SECONDS + 20))
until (($(find "$AIFD_WORK/spool" -maxdepth 1 -type f -name "*.$job2.*.usage" 2>/dev/null | wc -l) == 4)); do
	((SECONDS < deadline)) || fail "job $job2: spool has $(ls "$AIFD_WORK/spool" 2>&1)"
	sleep 0.2
done
assert_eq "n1 idle,n2 idle" "$(sinfo -h -N -o '%N %T' | sort | paste -sd,)" "nodes while aifd is down"

# aifd back: the next job's prolog and epilog flush the spool.
plugin_aifd_start
job3=$(as_user "$user" sbatch --parsable -N2 --gpus-per-node=1 --aif-project=mine -o j3.out --wrap 'true')
assert_eq COMPLETED "$(wait_job "$job3")" "the job after aifd is back"
deadline=$((SECONDS + 10))
until [[ $(intervals "$job2" | grep -c epilog) == 2 && $(intervals "$job3" | grep -c epilog) == 2 ]]; do
	((SECONDS < deadline)) || fail "spooled usage did not arrive: $(intervals "$job2"); spool: $(ls -R "$AIFD_WORK/spool"); $(cat "$AIFD_WORK"/spool/bad/*.why 2>/dev/null); slurmd: $(grep -h aif "$AIF_HARNESS_DIR"/slurm/log/*d*.log | tail -20)"
	sleep 0.2
done
check_job "$job2" 1
check_job "$job3" 1
assert_eq "" "$(find "$AIFD_WORK/spool" -maxdepth 1 -type f -name '*.usage')" "records left in the spool"
[[ ! -d $AIFD_WORK/spool/bad ]] || fail "records moved aside: $(ls "$AIFD_WORK/spool/bad")"
echo "plugin accounting: all checks passed"
