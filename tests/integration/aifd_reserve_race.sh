#!/usr/bin/env bash
# Two aifd (two clusters) on one database, admitting a burst of real running jobs against one
# AI Factory budget that reserves (docs/aifd.md "Reservations"): together they admit exactly as
# many jobs as fit, never more, whatever the interleaving; each refusal names the factory; what
# is reserved never exceeds the budget.
#
# The jobs run on the shared harness cluster (no aif.so there); their admissions are sent to
# the two aifd, alternately and all at once, as slurmstepd would send them (tests/tools/aif-send,
# as root). Both aifd ask the same slurmctld for the jobs' GPUs and time limits.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
load_harness
aifd_setup
user=aiftest
uid=$(id -u "$user")
gid=$(id -g "$user")

# 3.5 GPU-hours: three of the jobs below (1 GPU, 1 h) fit, the fourth does not.
{ budgets_head health; cat; } >"$AIFD_WORK/budgets.yaml" <<YAML
factories:
  - id: shared
    clusters: [aiftest, aiftestb]
    budgets: {cur: 3.5}
    admission: reserve
    projects:
      - {id: ps, sectors: [health], members: {users: [$user]}}
YAML
aif_apply "$AIFD_WORK/budgets.yaml"
aifd_start a "user = $AIF_TEST_SLURM_USER" "slurm_user = $AIF_TEST_SLURM_USER"
aifd_start b "cluster = aiftestb" "user = $AIF_TEST_SLURM_USER" "slurm_user = $AIF_TEST_SLURM_USER"

jobs=()
cleanup_jobs() { ((${#jobs[@]} == 0)) || scancel "${jobs[@]}" 2>/dev/null || true; aifd_cleanup; }
trap cleanup_jobs EXIT
for i in $(seq 8); do
	jobs+=("$(as_user "$user" sbatch --parsable -N1 --gpus-per-node=1 --time=60 --no-requeue \
		-o /dev/null --wrap 'sleep 120')")
done
deadline=$((SECONDS + 60))
until [[ $(squeue -h -j "$(IFS=,; echo "${jobs[*]}")" -t RUNNING | wc -l) == 8 ]]; do
	((SECONDS < deadline)) || fail "the 8 jobs did not all start: $(squeue)"
	sleep 0.3
done

# All eight admissions at once, even jobs through a, odd ones through b.
senders=()
for i in "${!jobs[@]}"; do
	name=$([[ $((i % 2)) == 0 ]] && echo a || echo b)
	cluster=$([[ $name == a ]] && echo aiftest || echo aiftestb)
	aif_send root "$name" admit cluster="$cluster" job="${jobs[$i]}" uid="$uid" gid="$gid" project=ps \
		>"$AIFD_WORK/answer.$i" 2>&1 &
	senders+=($!)
done
wait "${senders[@]}" # (not aifd's)
ok=0 refused=0
for i in "${!jobs[@]}"; do
	word=$(head -1 "$AIFD_WORK/answer.$i")
	case $word in
	ok) ok=$((ok + 1)) ;;
	refuse)
		refused=$((refused + 1))
		assert_match '^message=job refused: it may cost 1 charged GPU-hours, and factory "shared" has 0.5 left$' \
			"$(grep '^message=' "$AIFD_WORK/answer.$i")" "the refusal of job ${jobs[$i]}"
		;;
	*) fail "job ${jobs[$i]}: $(cat "$AIFD_WORK/answer.$i")" ;;
	esac
done
echo "two aifd, eight admissions at once: $ok admitted, $refused refused"
assert_eq "3 5" "$ok $refused" "admitted and refused"
assert_eq "3|3" "$(psql -d "$AIFD_DB" -Atc "SELECT count(*), round(sum(extract(epoch FROM ends_at - starts_at)
	* gpus) / 3600) FROM aif.reservations")" "reservations: jobs and GPU-hours"
assert_eq "3" "$(psql -d "$AIFD_DB" -Atc "SELECT trim_scale(reserved_gpu_hours) FROM aif_report.budget_status
	WHERE project IS NULL")" "the factory's reserved GPU-hours in budget_status"
echo "two aifd, one budget that reserves: all checks passed"
