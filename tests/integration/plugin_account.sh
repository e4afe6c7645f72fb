#!/usr/bin/env bash
# Per-node accounting in the prolog and epilog (plugin/account.c), on a two-node cluster of the
# test's own with aif.so and a real aifd: a two-node GPU job gives one interval per node with
# that node's GPUs and exactly Slurm's own StartTime and EndTime (daemon/slurm/jobtimes.c); with aifd
# stopped, jobs still run, their records wait in the node's spool, and arrive once aifd is back
# (the next job's prolog flushes the spool), each exactly once and still exact; each task of a
# job array is its own job; a requeued job gives one interval per node and run (restart
# count), the first run's closed by its epilog although the requeue raised the count before it;
# an epilog that Slurm ran as the job's user records nothing, and reconciliation closes its run;
# with an unusable spool (a directory of the user's) the records are sent all the same.
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
# Slurm 24.11.0 to .5 now and then run a RunInJob epilog as the job's user (docs/slurm.md
# "RunInJob"): aif-pelog then records nothing and says so, and aifd's reconciliation closes the
# interval at slurmctld's end. raced JOB: the node of each time that happened to JOB's epilog.
raced() {
	sed -n "s/.*aif: the epilog of job $1 on \([^ ]*\) runs as uid [0-9]*, not as root; nothing recorded$/\1/p" \
		"$AIFD_WORK/pelog.log"
}
reconcile_every() { # reconcile_every DURATION: aifd "a"'s reconcile_interval from now on
	sed -i '/^reconcile_interval = /d' "$AIFD_WORK/a.conf"
	echo "reconcile_interval = $1" >>"$AIFD_WORK/a.conf"
	kill -HUP "$AIFD_PID_a"
}
# wait_closed JOB COUNT: until COUNT intervals of JOB were closed: by an epilog, or by
# reconciliation exactly as often as an epilog of JOB ran without root (made to come soon).
wait_closed() {
	local deadline=$((SECONDS + 20)) rows races=0 by_epilog by_reconcile soon=""
	while :; do
		rows=$(intervals "$1")
		races=$(raced "$1" | grep -c . || true)
		if ((races > 0)) && [[ -z $soon ]]; then
			echo "job $1: an epilog ran as the user on $(raced "$1" | paste -sd' ')"
			reconcile_every 1s
			soon=1
		fi
		by_epilog=$(grep -c '|epilog|' <<<"$rows" || true)
		by_reconcile=$(grep -c '|reconciled-' <<<"$rows" || true)
		((by_epilog + by_reconcile == $2 && by_reconcile == races)) && break
		((SECONDS < deadline)) || fail "job $1: not $2 closed intervals: $(intervals "$1")" \
			"$(tail -n 40 "$AIFD_WORK/pelog.log" 2>/dev/null)"
		sleep 0.2
	done
	[[ -z $soon ]] || reconcile_every 60s
	# a row closed by reconciliation only on a node where the epilog ran as the user
	while IFS='|' read -r node _ _ _ _ src _; do
		[[ $src != reconciled-* ]] || raced "$1" | grep -qx "$node" ||
			fail "job $1 on $node: closed by $src, though its epilog ran as root"
	done <<<"$rows"
}
# end_source JOB NODE: how JOB's interval on NODE ends: by its epilog, or by slurmctld's end
# where the epilog ran as the user.
end_source() {
	if raced "$1" | grep -qx "$2"; then echo reconciled-slurm; else echo epilog; fi
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
		assert_eq "$r $gpus $(end_source "$job" "$node") t" "$restart $g $src $exact" \
			"job $job on $node: restart, GPUs, end source, exact"
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
	((start >= s0 && start <= s0 + 1)) || fail "job $requeued run 0 on $node: start $start, slurmctld's $s0"
	if [[ $src == reconciled-* ]]; then # its epilog ran as the user (wait_closed checked that)
		assert_eq "1 reconciled-last-seen f" "$g $src $exact" "job $requeued run 0 on $node: GPUs, end source, exact"
		continue
	fi
	assert_eq "1 epilog f" "$g $src $exact" "job $requeued run 0 on $node: GPUs, end source, exact"
	((end >= requeued_at - 2 && end <= requeued_at + late)) || fail "job $requeued run 0 on $node: end $end, requeued at $requeued_at"
done < <(grep '^n.|0|' <<<"$rows")
assert_eq "$nodes" "$(grep -cE '^n.\|1\|1\|[0-9]+\|[0-9]+\|(epilog|reconciled-slurm)\|t$' <<<"$rows")" \
	"job $requeued: the second run's intervals"
read -r s e r < <(slurm_times "$requeued")
assert_eq "1 $nodes" "$r $(grep -c "^n.|1|1|$s|$e|" <<<"$rows")" "job $requeued: the second run at Slurm's times"
# The prologs' run files, once the epilogs took them: only one whose epilog ran as the user
# (it could not) is left, NODE.JOB.
for run in $(ls "$AIFD_WORK/spool/runs"); do
	raced "${run#*.}" | grep -qx "${run%%.*}" ||
		fail "the prolog's run file $run is left, though its job's epilogs on that node ran as root"
done

# aifd stopped: the job runs all the same; its records wait in the spool.
stop_pid "$AIFD_PID_a"
job2=$(as_user "$user" sbatch --parsable -N$nodes --gpus-per-node=1 --aif-project=mine -o j2.out --wrap 'sleep 1')
assert_eq COMPLETED "$(wait_job "$job2" 90)" "a job while aifd is down"
deadline=$((SECONDS + 20))
# a start and an end per node, but no end from an epilog that ran as the user
until (($(find "$AIFD_WORK/spool" -maxdepth 1 -type f -name "*.$job2.*.usage" 2>/dev/null | wc -l) ==
	2 * nodes - $(raced "$job2" | grep -c . || true))); do
	((SECONDS < deadline)) || fail "job $job2: spool has $(ls "$AIFD_WORK/spool" 2>&1)"
	sleep 0.2
done
assert_eq "n1 idle,n2 idle" "$(sinfo -h -N -o '%N %T' | sort | paste -sd,)" "nodes while aifd is down"

# aifd back: the next job's prolog and epilog flush the spool.
plugin_aifd_start
job3=$(as_user "$user" sbatch --parsable -N$nodes --gpus-per-node=1 --aif-project=mine -o j3.out --wrap 'true')
assert_eq COMPLETED "$(wait_job "$job3")" "the job after aifd is back"
deadline=$((SECONDS + 10))
until [[ $(intervals "$job2" | grep -c .) == "$nodes" && $(intervals "$job3" | grep -c .) == "$nodes" ]]; do
	((SECONDS < deadline)) || fail "spooled usage did not arrive: job $job2: $(intervals "$job2"); job $job3: $(intervals "$job3"); unattributed: $(psql -d "$AIFD_DB" -Atc "SELECT job_id, node, reason FROM aif.unattributed_intervals"); spool: $(ls -R "$AIFD_WORK/spool"); $(cat "$AIFD_WORK"/spool/bad/*.why 2>/dev/null); slurmd: $(grep -h aif "$AIF_HARNESS_DIR"/slurm/log/*d*.log | tail -20)"
	sleep 0.2
done
wait_closed "$job2" "$nodes"
wait_closed "$job3" "$nodes"
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
# aif-pelog without root, as Slurm 24.11.0 to .5 may run a RunInJob epilog: it says so,
# records and spools nothing, and exits 0 (a failing epilog drains the node).
before=$(find "$AIFD_WORK/spool" -type f | sort)
out=$(as_user "$user" env -i SLURM_JOB_ID=4000000 SLURM_JOB_UID="$(id -u "$user")" SLURMD_NODENAME=n1 \
	SLURM_SCRIPT_CONTEXT=epilog_slurmd SLURM_CONF="$SLURM_CONF" "$AIFD_WORK/aif-pelog" 2>&1) ||
	fail "aif-pelog run as $user exited $?: $out"
grep -q 'error: aif: the epilog of job 4000000 on n1 runs as uid [0-9]*, not as root; nothing recorded$' <<<"$out" ||
	fail "aif-pelog run as $user: $out"
grep -q 'HINT: *Upgrade Slurm to 24.11.6 or later' <<<"$out" || fail "aif-pelog run as $user, no hint: $out"
assert_eq "$before" "$(find "$AIFD_WORK/spool" -type f | sort)" "the spool after aif-pelog ran as $user"
assert_eq "" "$(intervals 4000000)" "intervals of the job whose epilog ran as $user"

# A spool that cannot be used (spool_dir a directory of the user's, as a user can make one in
# /tmp before the first job after a boot): it is refused, and each record is sent all the same,
# not lost. Before, a failed spool counted as one that still held records, so every record
# went into it behind them, and failed there too: neither sent nor spooled.
user_spool=$AIFD_WORK/userspool
mkdir -m 700 "$user_spool"
chown "$user" "$user_spool"
plugstack=$(sed -n 's/^PlugStackConfig=//p' "$SLURM_CONF")
sed -i "s|spool_dir=$AIFD_WORK/spool |spool_dir=$user_spool |" "$plugstack"
grep -q "spool_dir=$user_spool " "$plugstack" || fail "plugstack.conf not changed: $(cat "$plugstack")"
"$AIF_HARNESS" restart-slurmd "$AIF_HARNESS_DIR" >/dev/null
job5=$(as_user "$user" sbatch --parsable -N$nodes --gpus-per-node=1 --aif-project=mine -o /dev/null --wrap 'sleep 1')
assert_eq COMPLETED "$(wait_job "$job5")" "a job whose nodes' spool is the user's"
wait_closed "$job5" "$nodes"
check_job "$job5" 1 $nodes
grep -qs "spool directory \"$user_spool\" belongs to uid $(id -u "$user"), not to uid 0" \
	"$AIF_HARNESS_DIR"/slurm/log/*.log "$AIFD_WORK/pelog.log" ||
	fail "no word of the unusable spool: $(grep -hs 'spool' "$AIF_HARNESS_DIR"/slurm/log/slurmd*.log "$AIFD_WORK/pelog.log" | tail -10)"
assert_eq "" "$(ls -A "$user_spool")" "nothing written into the user's directory"
echo "plugin accounting: all checks passed"
