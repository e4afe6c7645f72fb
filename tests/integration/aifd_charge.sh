#!/usr/bin/env bash
# Charging on a real cluster with typed GPUs (issue 18): n1 with 4 x h100, n2 with 2 x a100 and 2
# MIG-like 1g.10gb slices, Slurm's accounting through slurmdbd and MariaDB (typed GPU TRES,
# TRESBillingWeights); real jobs of an ordinary user through aif.so and aifd. Job by job, each
# node's interval holds the GPU models slurmctld allocated and is charged, to the second of
# slurmctld's StartTime and EndTime, at the rates of the budgets file (schema version 2), raised to
# the CPU share of the node; a job over both node types is charged per node; the GPU-hours per
# model are sacct's typed gres/gpu:MODEL; with charge: billing, a job's charged hours are its
# billing TRES times its elapsed time, as sacct has them; budget_status counts charged hours; and a
# job held at its start for its charged cost is released at that cost, or unreserved once it
# can no longer fit, and then not held again. The expected figures are computed here from what
# slurmctld and slurmdbd report (scontrol -d show job, sacct), not from what aifd stored.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
# Slurm's billing: 1 per CPU, and each GPU at the rate the budgets file gives its model below.
weights=CPU=1,GRES/gpu:h100=4,GRES/gpu:a100=2,GRES/gpu:1g.10gb=0.5
AIF_PELOG=1 AIF_SLURMDBD=1 \
	AIF_HARNESS_ARGS="--gpu-types n1=h100:4 --gpu-types n2=a100:2+1g.10gb:2 --billing-weights $weights" \
	plugin_cluster_start timeout=2s
user=$AIF_TEST_USER

budgets_yaml() { # budgets_yaml CLUSTER-SETTINGS [ADMISSION [HOURS]]: a budgets file, schema version 2
	{ budgets_head health | sed 's/^version: 1$/version: 2/'; cat; } <<YAML
factories:
  - id: fa
    clusters:
      $AIF_TEST_CLUSTER: $1
    budgets: {cur: 1000}
    admission: ${2:-used}
    projects:
      - {id: mine, sectors: [health], budgets: {cur: ${3:-100}}, members: {users: [$user]}}
YAML
}
budgets() { # budgets CLUSTER-SETTINGS [ADMISSION [HOURS]]: applied
	budgets_yaml "$@" >"$AIFD_WORK/budgets.yaml"
	aif_apply "$AIFD_WORK/budgets.yaml"
}

# aifctl check --slurm: every GPU model of the cluster's nodes (sinfo) has a rate where the file
# gives rates; a100 has none here. Untyped GPUs, a file without rates: nothing to miss.
budgets_yaml "{rates: {h100: 4, 1g.10gb: 0.5}}" >"$AIFD_WORK/missing.yaml"
rc=0
out=$("$AIF_BUILD_DIR/aifctl/aifctl" check --slurm "$AIFD_WORK/missing.yaml" 2>&1) || rc=$?
assert_eq 2 "$rc" "aifctl check --slurm of a file without a rate for a100: exit status ($out)"
assert_match "missing.yaml:[0-9]+:[0-9]+: error: GPU model \"a100\" has no rate in cluster \"$AIF_TEST_CLUSTER\" of factory \"fa\"; Slurm's nodes of the cluster have it: add it to \"rates\"" \
	"$out" "aifctl check --slurm: the model without a rate"
assert_eq 0 "$("$AIF_BUILD_DIR/aifctl/aifctl" check "$AIFD_WORK/missing.yaml" >/dev/null; echo $?)" \
	"aifctl check without --slurm: Slurm's models are not known"
budgets_yaml "{rates: {h100: 4, a100: 2, 1g.10gb: 0.5}}" >"$AIFD_WORK/rated.yaml"
"$AIF_BUILD_DIR/aifctl/aifctl" check --slurm "$AIFD_WORK/rated.yaml" >/dev/null ||
	fail "aifctl check --slurm of a file that rates every model: $("$AIF_BUILD_DIR/aifctl/aifctl" check --slurm "$AIFD_WORK/rated.yaml" 2>&1)"
sed "s/^      $AIF_TEST_CLUSTER: /      elsewhere: /" "$AIFD_WORK/missing.yaml" >"$AIFD_WORK/elsewhere.yaml"
assert_match "WARNING:  no factory of \"$AIFD_WORK/elsewhere.yaml\" lists cluster \"$AIF_TEST_CLUSTER\"" \
	"$("$AIF_BUILD_DIR/aifctl/aifctl" check --slurm "$AIFD_WORK/elsewhere.yaml" 2>&1 >/dev/null)" \
	"aifctl check --slurm of a file without this cluster"
budgets "{rates: {h100: 4, a100: 2, 1g.10gb: 0.5}, share: {cpus_per_gpu: 1}}"
plugin_aifd_start "reconcile_interval = 1s"

job() { # job ARG...: a job of 5 s (JOB_SECONDS) of the user in project mine; prints its id once it runs, its
	# allocation as slurmctld has it then in $AIFD_WORK/alloc.ID (an ended job's keeps no GRES
	# per node)
	local id deadline=$((SECONDS + 30))
	id=$(as_user "$user" sbatch --parsable --aif-project=mine -o /dev/null "$@" --wrap "sleep ${JOB_SECONDS:-5}")
	[[ $id =~ ^[0-9]+$ ]] || fail "sbatch $* did not return a job id: '$id'"
	until [[ $(squeue -h -j "$id" -o %T) == RUNNING ]]; do
		((SECONDS < deadline)) || fail "job $id ($*) did not start"
		sleep 0.2
	done
	scontrol -d show job "$id" >"$AIFD_WORK/alloc.$id"
	echo "$id"
}
tres_of() { # tres_of NAME TRES: NAME's count in TRES (e.g. billing=8,cpu=2,...), or nothing
	{ grep -o "\(^\|,\)$1=[0-9]*" <<<"$2" || true; } | cut -d= -f2 | head -n 1
}
# alloc_tres RECORD: the allocated TRES of scontrol show job's RECORD: AllocTRES= from 24.11
# (beside ReqTRES=, what was asked), TRES= before.
alloc_tres() {
	{ grep -o '\(AllocTRES\| TRES\)=[^ ]*' <<<"$1" || true; } | head -n 1 | cut -d= -f2-
}
calc() { awk "BEGIN { printf \"%.12g\", $1 }"; } # calc EXPR: its value, as awk computes it
rate() { # rate MODEL: the rate of the budgets file in force
	case $1 in h100) echo 4 ;; a100) echo 2 ;; 1g.10gb) echo 0.5 ;; *) echo 4 ;; esac
}
# expected JOB: per node "node models gpus charged start end" from slurmctld's record: the
# node's GPUs by model (scontrol -d's GRES=), the job's CPUs (TRES cpu=) over its nodes
# rounded up, and the charge: the GPUs at their rates, raised to the CPU share at the node's
# highest rate.
expected() {
	local rec nodes n tres cpus start end line group models gpus charged top
	rec=$(cat "$AIFD_WORK/alloc.$1")
	tres=$(alloc_tres "$rec")
	cpus=$(tres_of cpu "$tres")
	n=$(scontrol show hostnames "$(sed -n 's/^ *NodeList=//p' <<<"$rec" | head -n 1)" | wc -l)
	start=$(date -d "$(scontrol show job "$1" | grep -o 'StartTime=[^ ]*' | cut -d= -f2)" +%s)
	end=$(date -d "$(scontrol show job "$1" | grep -o 'EndTime=[^ ]*' | cut -d= -f2)" +%s)
	grep -E '^ *Nodes=[^ ]+ CPU_IDs=' <<<"$rec" | while read -r line; do
		group=$(sed 's/^ *Nodes=\([^ ]*\) .*/\1/' <<<"$line")
		models=$(grep -o 'GRES=[^ ]*' <<<"$line" | sed 's/^GRES=//; s/([^)]*)//g' |
			tr ',' '\n' | sed -n 's/^gpu:\([^:]*\):\([0-9]*\)$/\1:\2/p' | grep -v ':0$' | sort | paste -sd,)
		gpus=0 charged=0 top=0
		for m in ${models//,/ }; do
			gpus=$((gpus + ${m#*:}))
			charged=$(calc "$charged + ${m#*:} * $(rate "${m%%:*}")")
			top=$(calc "($(rate "${m%%:*}") > $top) ? $(rate "${m%%:*}") : $top")
		done
		share=$(((cpus + n - 1) / n))
		((share > gpus)) && charged=$(calc "$charged + ($share - $gpus) * $top")
		for node in $(scontrol show hostnames "$group"); do
			echo "$node $models $gpus $(printf '%g' "$charged") $start $end"
		done
	done | sort
}
stored() { # stored JOB: the same from aifd's intervals
	psql -d "$AIFD_DB" -Atc "SELECT node, gpu_models, gpus, trim_scale(coalesce(charged_gpus, gpus)),
		extract(epoch FROM started_at)::bigint, extract(epoch FROM ended_at)::bigint
		FROM aif.usage_intervals WHERE job_id = $1 AND exact ORDER BY node" | tr '|' ' '
}

j1=$(job --gres=gpu:h100:2)     # 2 x 4
j2=$(job --gres=gpu:a100:1 -c 3) # 3 CPUs: 3 GPUs' share at 2
j3=$(job -N2 --ntasks-per-node=1 --gpus-per-node=1 -w n1,n2) # one node of each type
j4=$(job --gres=gpu:1g.10gb:1)   # a MIG slice at 0.5
for j in $j1 $j2 $j3 $j4; do
	assert_eq COMPLETED "$(wait_job "$j")" "job $j"
done
aifd_wait_settled "the jobs' ends"
total=0
for j in $j1 $j2 $j3 $j4; do
	want=$(expected "$j")
	[[ -n $want ]] || fail "job $j: no allocation in scontrol -d show job: $(scontrol -d show job "$j")"
	assert_eq "$want" "$(stored "$j")" "job $j: models, GPUs, charged GPUs and times per node"
	while read -r _ _ _ charged start end; do
		total=$(calc "$total + $charged * ($end - $start)")
	done <<<"$want"
done
assert_eq 2 "$(stored "$j3" | wc -l)" "job $j3 charged per node"
assert_eq 2 "$(stored "$j3" | cut -d' ' -f2 | sed 's/:.*//' | sort -u | grep -c .)" \
	"job $j3: one node of each model"
assert_eq 8 "$(stored "$j1" | cut -d' ' -f4)" "job $j1: 2 h100 at 4"
assert_eq 6 "$(stored "$j2" | cut -d' ' -f4)" "job $j2: 1 a100 and 2 more for its CPUs, at 2"
assert_eq 0.5 "$(stored "$j4" | cut -d' ' -f4)" "job $j4: a 1g.10gb slice at 0.5"
# budget_status: the charged hours of the jobs, as the view rounds them (6 decimals).
wait_sql "SELECT used_gpu_hours = round($total / 3600.0, 6) FROM aif_report.budget_status
	WHERE project = 'mine'" t "budget_status: the charged hours of the jobs ($total charged GPU-seconds)"

# sacct JOB FIELD...: the job's allocation as slurmdbd has it (-X, -P), once it has its end.
sacct_of() {
	local job=$1 got deadline=$((SECONDS + 30))
	shift
	until got=$(sacct -X -n -P -j "$job" -o State,"$(IFS=,; echo "$*")" | tail -n 1) &&
		[[ $got == COMPLETED\|* ]]; do
		((SECONDS < deadline)) || fail "sacct has no end of job $job: '$got'"
		sleep 0.5
	done
	echo "${got#*|}"
}
# GPU-seconds per model: sacct's typed gres/gpu:MODEL x ElapsedRaw over the jobs, and what the
# funders read in aif_report.usage_by_model (hours, 6 decimals: to the second here).
declare -A by_model=()
for j in $j1 $j2 $j3 $j4; do
	IFS='|' read -r elapsed tres <<<"$(sacct_of "$j" ElapsedRaw AllocTRES)"
	for m in h100 a100 1g.10gb; do
		n=$(tres_of "gres/gpu:$m" "$tres")
		by_model[$m]=$((${by_model[$m]:-0} + ${n:-0} * elapsed))
	done
done
assert_eq "1g.10gb ${by_model[1g.10gb]}
a100 ${by_model[a100]}
h100 ${by_model[h100]}" "$(psql -d "$AIFD_DB" -Atc "SELECT model || ' ' || round(sum(gpu_hours) * 3600)
	FROM aif_report.usage_by_model GROUP BY model ORDER BY model")" "GPU-seconds per model: sacct's gres/gpu:MODEL"

# Which intervals to ask slurmctld about is in aifd's memory only: an aifd started while a job
# runs whose allocation is not known (as an aifd that stopped right after committing its start
# leaves it) learns it from the database.
j11=$(JOB_SECONDS=60 job --gres=gpu:h100:1)
wait_sql "SELECT gpu_models FROM aif.usage_intervals WHERE job_id = $j11" "h100:1" "job $j11's allocation"
kill -TERM "$AIFD_PID_a"
wait "$AIFD_PID_a" || true
psql -d "$AIFD_DB" -qAtc "UPDATE aif.usage_intervals SET gpu_models = NULL, allocation_at = NULL
	WHERE job_id = $j11"
plugin_aifd_start "reconcile_interval = 1s"
wait_sql "SELECT gpu_models FROM aif.usage_intervals WHERE job_id = $j11" "h100:1" \
	"job $j11's allocation, learnt by the aifd started while it runs"
scancel "$j11"

# A model without a rate on a cluster that has rates: charged at the unrated rate (by default
# the highest, 4), never refused, and aifd says so once, whatever the jobs.
budgets "{rates: {h100: 4, 1g.10gb: 0.5}}"
j6=$(job --gres=gpu:a100:1)
j7=$(job --gres=gpu:a100:2)
for j in $j6 $j7; do assert_eq COMPLETED "$(wait_job "$j")" "job $j"; done
aifd_wait_settled "the a100 jobs' ends"
assert_eq "4 8" "$(psql -d "$AIFD_DB" -Atc "SELECT string_agg(trim_scale(coalesce(charged_gpus, gpus))::text, ' ' ORDER BY job_id)
	FROM aif.usage_intervals WHERE job_id IN ($j6, $j7)")" "a100 jobs at the unrated rate"
assert_eq 1 "$(grep -c 'GPU model "a100" on cluster .* has no rate in the budgets file' "$AIFD_WORK/a.log")" \
	"the unrated model said once"

# A reservation follows the rates: the admission of a job reserves each node of it as its usage
# will be charged, from slurmctld's allocation: an h100 job reserves twice what the same job
# on an a100 does.
budgets "{rates: {h100: 4, a100: 2, 1g.10gb: 0.5}}" reserve
j9=$(job --gres=gpu:a100:1 --time=1)
j10=$(job --gres=gpu:h100:1 --time=1)
for j in "$j9 2" "$j10 4"; do
	wait_sql "SELECT trim_scale(charged) || ' ' || (ends_at - starts_at) FROM aif.reservations
		WHERE job_id = ${j% *}" "${j#* } 00:01:00" "job ${j% *}: its reservation, per its model"
done
for j in $j9 $j10; do assert_eq COMPLETED "$(wait_job "$j")" "job $j"; done

# A job held at its start is released only when the cost its admission computed fits, not each
# GPU at the cluster's highest rate: an a100 with 4 CPUs is charged 8 an hour (its CPU share),
# 0.13 hours for its minute, where the project has 0.1 left; at the highest rate (4) it would
# fit, be released, start, be held again, over and over.
share="{rates: {h100: 4, a100: 2, 1g.10gb: 0.5}, share: {cpus_per_gpu: 1}}"
# held_at_start: such a job, submitted once the project has 0.1 hours left ($committed: what it
# committed before), in $held once aifd holds it at its start
held_at_start() {
	aifd_wait_settled "the jobs' ends"
	committed=$(psql -d "$AIFD_DB" -Atc "SELECT used_gpu_hours + reserved_gpu_hours FROM aif_report.budget_status
		WHERE project = 'mine'")
	budgets "$share" reserve "$(calc "$committed + 0.1")"
	held=$(as_user "$user" sbatch --parsable --aif-project=mine -o /dev/null --gres=gpu:a100:1 -c 4 --time=1 \
		--wrap "sleep 5")
	wait_sql "SELECT trim_scale(charged) || ' ' || coalesce(released_at::text, 'held') FROM aif.waiting
		WHERE job_id = $held" "8 held" "job $held held at its start, at its admission's rate" 30
}
held_at_start
j12=$held
sleep 2 # (passes of reconciliation, a second apart: before, the first released it)
assert_eq "PENDING 0 Restarts=1" "$(squeue -h -j "$j12" -o '%T %Q') $(scontrol -o show job "$j12" |
	grep -o 'Restarts=[0-9]*')" "job $j12, 2 s later: held, started once"
! grep -q "job $j12 released" "$AIFD_WORK/a.log" || fail "job $j12 was released: $(grep "job $j12" "$AIFD_WORK/a.log")"
budgets "$share" reserve "$(calc "$committed + 0.2")"
assert_eq COMPLETED "$(wait_job "$j12" 60)" "job $j12, once its cost fits"
grep -q "job $j12 released" "$AIFD_WORK/a.log" || fail "job $j12 was not released by aifd"
assert_eq "Restarts=1" "$(scontrol -o show job "$j12" | grep -o 'Restarts=[0-9]*')" "job $j12 started twice"

# One held at its start that can no longer fit at all (the project's budget lowered below its
# cost) is released unreserved, for its admission to refuse it and say why. While it waits for
# nodes (its partition down), it is not held again 10 minutes after its release, since it holds
# no reservation to drop: before, it was held and released again at every pass from then on.
held_at_start
j13=$held
partition=$(sinfo -h -o %P | head -n 1 | tr -d '*')
scontrol update PartitionName="$partition" State=DOWN
budgets "$share" reserve 0.1
aifd_wait_log a "job $j13 released: its cost is more than its whole budget now" "job $j13 released unreserved"
assert_eq 0 "$(psql -d "$AIFD_DB" -Atc "SELECT count(*) FROM aif.reservations WHERE job_id = $j13")" \
	"job $j13's reservation"
psql -d "$AIFD_DB" -qAtc "UPDATE aif.waiting SET released_at = now() - interval '11 minutes' WHERE job_id = $j13"
sleep 2 # (passes of reconciliation, a second apart)
assert_eq 1 "$(grep -c "job $j13 released" "$AIFD_WORK/a.log")" "job $j13 released once, not held and released again"
[[ $(squeue -h -j "$j13" -o %Q) != 0 ]] || fail "job $j13 held again: $(scontrol -o show job "$j13")"
scontrol update PartitionName="$partition" State=UP
assert_eq FAILED "$(wait_job "$j13" 60)" "job $j13, once its partition is up"
assert_eq refuse "$(psql -d "$AIFD_DB" -Atc "SELECT verdict FROM aif.admissions WHERE job_id = $j13")" \
	"job $j13's admission"

# charge: billing: a job's charged hours are its billing TRES times its elapsed time, as
# slurmctld and sacct have them (TRESBillingWeights above: CPUs, and the GPUs by model).
budgets "{charge: billing}"
j5=$(job -N2 --ntasks-per-node=1 --gpus-per-node=1 -c 2)
j8=$(job --gres=gpu:h100:2 -c 1)
for j in $j5 $j8; do assert_eq COMPLETED "$(wait_job "$j")" "job $j"; done
aifd_wait_settled "the billing jobs' ends"
for j in $j5 $j8; do
	rec=$(scontrol show job "$j")
	billing=$(tres_of billing "$(alloc_tres "$rec")")
	[[ -n $billing ]] || fail "job $j has no billing TRES: $rec"
	elapsed=$(($(date -d "$(grep -o 'EndTime=[^ ]*' <<<"$rec" | cut -d= -f2)" +%s) -
		   $(date -d "$(grep -o 'StartTime=[^ ]*' <<<"$rec" | cut -d= -f2)" +%s)))
	charged=$(psql -d "$AIFD_DB" -Atc "SELECT trim_scale(round(sum(coalesce(charged_gpus, gpus)
		* extract(epoch FROM ended_at - started_at)), 6)) FROM aif.usage_intervals WHERE job_id = $j AND exact")
	assert_eq "$((billing * elapsed))" "$charged" "job $j: billing $billing x $elapsed s"
	IFS='|' read -r elapsed tres <<<"$(sacct_of "$j" ElapsedRaw AllocTRES)"
	assert_eq "$(($(tres_of billing "$tres") * elapsed))" "$charged" "job $j: sacct's billing x ElapsedRaw ($tres)"
done
assert_eq 9 "$(tres_of billing "$tres")" "job $j8: billing 1 CPU and 2 h100 at 4"
# Every reconciliation pass (a second apart here) ran its statements without an error.
! grep -E "could not (expire reservations|release waiting jobs|read the waiting jobs)" "$AIFD_WORK"/a.log* ||
	fail "reconciliation's statements failed"
echo "aifd charge: ok"
