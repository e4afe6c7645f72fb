#!/usr/bin/env bash
# A budget exactly at its thresholds, and one microsecond below: aifd's admission (the
# snapshot's decision), its cancellation pass and the funders' aif_report.budget_status agree,
# since all three read one definition, aif_report.budget_thresholds() (sql/repeatable/30_budget.sql).
# The budget is 50 million GPU-hours, as an AI Factory's year may be: its usage in
# GPU-microseconds (1.8e17) is beyond what a double holds exactly, where the arithmetic in
# hours that decide() did before disagreed with the view by a microsecond.
# A real job runs, charged to the project with no GPU (it adds no usage), so that the
# cancellation pass has a job to cancel once, and only once, the budget is exhausted.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
load_harness
[[ $(id -u) == 0 ]] || fail "run as root: aifd is started as root and becomes SlurmUser"
slurm_user=${AIF_TEST_SLURM_USER:?the harness run has no Slurm}
cluster=$AIF_TEST_CLUSTER
user=$AIF_TEST_USER
uid=$(id -u "$user")
gid=$(id -g "$user")
aifd_setup
job=
cleanup() {
	if [[ -n $job ]]; then
		scancel "$job" 2>/dev/null || true
		for _ in {1..150}; do
			[[ -n $(squeue -h -t PD,R,S,CG,CF -j "$job" -o %i 2>/dev/null) ]] || break
			sleep 0.2
		done
	fi
	aifd_cleanup
}
trap cleanup EXIT
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$AIFD_DB" "$@"; }

hours=50000000
# One AI Factory "big" of 100 million GPU-hours; its project "edge" of $hours, warned at 50 %,
# its jobs cancelled once it is exhausted.
{ budgets_head health; cat; } >"$AIFD_WORK/budgets.yaml" <<YAML
factories: [{id: big, clusters: [$cluster], budgets: {cur: 100000000}, projects: [{id: edge,
  sectors: [health], budgets: {cur: $hours}, warn_at: [50], on_exhausted: cancel,
  members: {users: [$user]}}]}]
YAML
"$AIF_BUILD_DIR/aifctl/aifctl" apply "$AIFD_WORK/budgets.yaml" --db "$AIFD_CONNINFO" >/dev/null
aifd_start a "cluster = $cluster" "user = $slurm_user" "slurm_user = $slurm_user" \
	"reconcile_interval = 1s" "refresh_interval = 100ms"

# Usage of exactly N GPU-microseconds in the period, closed: 50,000 GPUs for N / 50,000 us,
# and one GPU for the rest, from the period's start.
period_start=$(q -c "SELECT starts_on FROM aif.periods WHERE id = 'cur'")
next_job=900000
use() { # use N: closed usage of project edge adding up to N GPU-microseconds in period cur
	local big=$(($1 / 50000)) rest=$(($1 % 50000))
	q -c "INSERT INTO aif.usage_intervals (cluster, job_id, node, restart_count, project_id,
		sector_id, uid, gpus, started_at, ended_at, end_source)
		VALUES ('$cluster', $next_job, 'n1', 0, 'edge', 'health', $uid, 50000,
			'$period_start'::timestamptz, '$period_start'::timestamptz + make_interval(secs => $big / 1e6),
			'epilog'),
		       ('$cluster', $((next_job + 1)), 'n1', 0, 'edge', 'health', $uid, 1,
			'$period_start'::timestamptz, '$period_start'::timestamptz + make_interval(secs => $rest / 1e6),
			'epilog')"
	next_job=$((next_job + 2))
}
used_us() { q -c "SELECT coalesce(sum(aif_report.gpu_us_within(gpus, started_at, ended_at, p.starts_on,
	p.ends_on)), 0) FROM aif.usage_intervals, aif.periods p WHERE project_id = 'edge' AND p.id = 'cur'"; }
state() { q -c "SELECT state FROM aif_report.budget_status WHERE project = 'edge' AND period = 'cur'"; }
# The admission of aifd, on a snapshot that has the usage (refreshed every 100 ms).
admission() { # admission EXPECTED: aifd's answer to a check of project edge, within 3 s
	local deadline=$((SECONDS + 3)) got
	until got=$(aif_send "$user" a check project=edge | head -n 1) && [[ $got == "$1" ]]; do
		((SECONDS < deadline)) || { echo "$got"; return; }
		sleep 0.1
	done
	echo "$got"
}

exhausted_us=$((hours * 3600000000))
warn_us=$((exhausted_us / 2))

# Below the warning threshold by one microsecond: ok everywhere.
use $((warn_us - 1))
assert_eq $((warn_us - 1)) "$(used_us)" "usage one microsecond below 50%"
assert_eq ok "$(state)" "budget_status one microsecond below 50%"
assert_eq ok "$(admission ok)" "aifd's admission one microsecond below 50%"
# At the warning threshold exactly.
use 1
assert_eq warning "$(state)" "budget_status at 50% exactly"
assert_eq warn "$(admission warn)" "aifd's admission at 50% exactly"

# A running job of the project, with no GPU: the cancellation pass's candidate.
job=$(as_user "$user" sbatch --parsable -o /dev/null --wrap 'sleep 600')
deadline=$((SECONDS + 30))
until [[ $(squeue -h -j "$job" -o %T) == RUNNING ]]; do
	((SECONDS < deadline)) || fail "job $job did not start"
	sleep 0.2
done
node=$(squeue -h -j "$job" -o %N)
out=$(aif_send root a usage cluster="$cluster" -- event=start job="$job" node="$node" restart=0 \
	gpus=0 time="$(date +%s)" uid="$uid" project=edge)
assert_eq ok "$(head -n 1 <<<"$out")" "job $job's start: $out"

# One microsecond below exhausted: a warning, and no cancellation after several passes.
use $((exhausted_us - warn_us - 1))
assert_eq $((exhausted_us - 1)) "$(used_us)" "usage one microsecond below the budget"
assert_eq warning "$(state)" "budget_status one microsecond below the budget"
assert_eq warn "$(admission warn)" "aifd's admission one microsecond below the budget"
aifd_wait_log a "reconciled 1 open runs" "a pass with the job"
sleep 3 # three more passes
assert_eq 0 "$(q -c "SELECT count(*) FROM aif.cancellations WHERE job_id = $job")" \
	"no cancellation one microsecond below the budget"
assert_eq RUNNING "$(squeue -h -j "$job" -o %T)" "job $job one microsecond below the budget"

# Exactly exhausted: refused, exhausted, and the job cancelled.
use 1
assert_eq "$exhausted_us" "$(used_us)" "usage at the budget exactly"
assert_eq exhausted "$(state)" "budget_status at the budget exactly"
assert_eq refuse "$(admission refuse)" "aifd's admission at the budget exactly"
wait_sql "SELECT outcome FROM aif.cancellations WHERE job_id = $job AND done_at IS NOT NULL" cancelled \
	"job $job cancelled at the budget exactly"
assert_eq "project|cur" "$(q -c "SELECT scope, period_id FROM aif.cancellations WHERE job_id = $job")" \
	"job $job's cancellation: the project's budget"
echo "thresholds: admission, cancellation and budget_status agree at 50%, 100% and a microsecond below"
