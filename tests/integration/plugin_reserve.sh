#!/usr/bin/env bash
# Admission that reserves (docs/aifd.md "Reservations"), on a cluster of the test's own with
# aif.so and a real aifd, as an ordinary user, in a factory with admission: reserve:
#   sbatch tells what the project has neither used nor reserved, and that the job reserves;
#   a job whose GPUs for its time limit can never fit what its project has left is refused at
#   start, told what it may cost and what is left; one without a time limit is refused with a
#   hint to set one; a job that fits runs, with its cost reserved (slurmctld's GPUs, StartTime
#   and time limit); while it runs, a job that fits the budget but not beside its reservation
#   waits, requeued held, with a comment in squeue; when the first is cancelled early, its
#   reservation is released at once, and aifd releases the waiting job, which runs; a pending
#   job (waiting for the first's node) that would not fit is held before it ever starts, by its
#   project from job_submit/aif's AdminComment, and released to run once it fits; a job
#   requeued reserves again for its next run (and takes over its last run's reservation that it
#   stood on), and a later step reserves again when the job's
#   reservation is another project's; a running job's reservation follows its time limit,
#   raised by an operator (a job that fitted beside it waits) or lowered by its user (the
#   waiting job runs); no node is drained.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
plugin_cluster_start
user=$AIF_TEST_USER

{ budgets_head health; cat; } >"$AIFD_WORK/budgets.yaml" <<YAML
factories:
  - id: fa
    clusters: [$AIF_TEST_CLUSTER]
    budgets: {cur: 1000}
    admission: reserve
    projects:
      - {id: small, sectors: [health], budgets: {cur: 1}, members: {users: [$user]}}
      - {id: other, sectors: [health], budgets: {cur: 1}, members: {users: [$user]}}
YAML
aif_apply "$AIFD_WORK/budgets.yaml"
# (reconciliation, which releases waiting jobs, every second)
aifd_start a "cluster = $AIF_TEST_CLUSTER" "user = $AIF_TEST_SLURM_USER" \
	"slurm_user = $AIF_TEST_SLURM_USER" "reconcile_interval = 1s"

submit() { # submit NAME SBATCH-ARG...: as $user, in the run's work dir; prints the job id
	local name=$1
	shift
	as_user "$user" sbatch --parsable -N1 --aif-project=small -o "$name.out" -e "$name.err" "$@"
}
reservations() {
	psql -d "$AIFD_DB" -Atc "SELECT job_id, gpus, extract(epoch FROM ends_at - starts_at)::int,
		extract(epoch FROM starts_at)::bigint FROM aif.reservations ORDER BY job_id"
}
start_of() { # start_of JOB: its StartTime in slurmctld, Unix seconds
	date -d "$(scontrol -o show job "$1" | sed 's/.* StartTime=\([^ ]*\).*/\1/')" +%s
}
admission() { psql -d "$AIFD_DB" -Atc "SELECT verdict, reason FROM aif.admissions WHERE job_id = $1"; }
nodes_state() { sinfo -h -N -o '%N %T' | sort | paste -sd,; }
held() { # held JOB: waits (30 s at most) until JOB is pending with priority 0, then its comment
	local deadline=$((SECONDS + 30))
	until [[ $(squeue -h -j "$1" -o '%T %Q') == "PENDING 0" ]]; do
		((SECONDS < deadline)) || fail "job $1 is not held: $(scontrol -o show job "$1")"
		sleep 0.2
	done
	squeue -h -j "$1" -o %k
}

# 2 GPUs for an hour: 2 GPU-hours, where the project has 1.
job=$(submit big --gpus-per-node=2 --time=60 --wrap 'echo ran')
assert_eq FAILED "$(wait_job "$job")" "a job that may cost 2 GPU-hours"
err=$(cat "$AIF_TEST_WORKDIR/big.err")
assert_match 'aif: job refused: it may cost 2 charged GPU-hours, and project "small" has 1 left' "$err" "its reason"
assert_match 'DETAIL:  2 GPUs for its time limit of 01:00:00, at this cluster.s rates: 2 charged GPU-hours in period "cur"' "$err" "its detail"
assert_match 'HINT:  Ask for less time \(--time\) or fewer GPUs' "$err" "its hint"
[[ ! -s $AIF_TEST_WORKDIR/big.out ]] || fail "the refused job's script ran"
assert_eq "refuse|project-cannot-afford" "$(admission "$job")" "its admission"

# No time limit (the partition has neither DefaultTime nor MaxTime): refused.
job=$(submit unlimited --gpus-per-node=1 --wrap 'echo ran')
assert_eq FAILED "$(wait_job "$job")" "a job without a time limit"
assert_match 'aif: job refused: it has no time limit, and project "small" reserves what each job may cost' \
	"$(cat "$AIF_TEST_WORKDIR/unlimited.err")" "its reason"
assert_match 'HINT:  Submit it with a time limit, e.g. --time=2:00:00.' "$(cat "$AIF_TEST_WORKDIR/unlimited.err")" "its hint"
assert_eq "refuse|no-time-limit" "$(admission "$job")" "its admission"
assert_eq "" "$(reservations)" "reservations of refused jobs"

# 1 GPU for 30 minutes fits (0.5 GPU-hours): it runs, reserved at slurmctld's StartTime.
first=$(submit first --gpus-per-node=1 --time=30 --wrap 'sleep 300')
deadline=$((SECONDS + 30))
until [[ -n $(reservations) ]]; do
	((SECONDS < deadline)) || fail "job $first: no reservation: $(squeue -j "$first") $(admission "$first")"
	sleep 0.2
done
start=$(start_of "$first")
assert_eq "$first|1|1800|$start" "$(reservations)" "the first job's reservation"
assert_eq "ok|ok" "$(admission "$first")" "the first job's admission"

# Beside it, 1 GPU for 40 minutes (0.67) does not fit the 0.5 left, but will once the first
# ends: it waits, requeued and held, with a comment saying why.
# At submission, sbatch says what the project has neither used nor reserved (the first job's
# reservation in aifd's snapshot, refreshed every second), and that the job reserves; then
# slurmctld's job_submit/aif what the job can cost.
sleep 2
second=$(submit second --gpus-per-node=1 --time=40 --comment='sweep 7 (lr 3e-4)' --wrap 'echo ran' \
	2>"$AIFD_WORK/second.sbatch")
want=$(cat <<'LINES'
sbatch: aif: project "small": 0.5 charged GPU-hours of period cur are neither used nor reserved (its or its AI Factory's, whichever is less)
sbatch: aif: this job reserves its GPUs x its time limit (--time), at the cluster's rates, when it starts, and waits, held, until that fits
sbatch: aif: this job can use up to 0.67 GPU-hours: 1 GPU x 00:40:00 (its time limit), charged at the cluster's rates
LINES
)
assert_eq "$want" "$(cat "$AIFD_WORK/second.sbatch")" "sbatch's lines for a project that reserves"
# Its user's own comment follows aif's, and comes back when it is released.
assert_eq "aif: waiting for GPU-hours: may cost 0.67 charged, project small has 0.5 left (your comment: sweep 7 (lr 3e-4))" \
	"$(held "$second")" "the held job's comment"
assert_eq "small|1|2400|f" "$(psql -d "$AIFD_DB" -Atc "SELECT project_id, gpus, seconds,
	released_at IS NOT NULL FROM aif.waiting WHERE job_id = $second")" "the waiting job"
assert_eq "" "$(admission "$second")" "an admission kept for the waiting job"
sleep 2 # (passes of reconciliation: the job stays held)
assert_eq "PENDING 0" "$(squeue -h -j "$second" -o '%T %Q')" "the waiting job, 2 s later"

# A job that waits for nodes (all 8 GPUs, while the first holds one) is held while pending,
# before it ever starts: slurmctld's job_submit/aif wrote its project in its AdminComment, and
# aifd finds that its 8 GPUs x 5 minutes, 0.67, do not fit the 0.5 left.
after=$(submit after -N2 --gpus-per-node=4 --time=5 --wrap 'echo ran')
assert_eq "AdminComment=aif project=small" \
	"$(scontrol -o show job "$after" | grep -o 'AdminComment=[^ ]* [^ ]*')" "its AdminComment"
assert_eq "aif: waiting for GPU-hours: may cost 0.67 charged, project small has 0.5 left" \
	"$(held "$after")" "the pending held job's comment"
grep -q "job $after of project \"small\" held while pending: aif: waiting for GPU-hours: may cost 0.67 charged, project small has 0.5 left" \
	"$AIFD_WORK/a.log" || fail "aifd did not log holding job $after: $(tail -n 20 "$AIFD_WORK/a.log")"
assert_eq "Restarts=0" "$(scontrol -o show job "$after" | grep -o 'Restarts=[0-9]*')" \
	"the pending held job never started"
# aifd's hold is an administrator's: its user cannot release it.
! as_user "$user" scontrol release "$after" 2>/dev/null || fail "user $user released job $after"
assert_eq "PENDING 0" "$(squeue -h -j "$after" -o '%T %Q')" "the pending held job, after its user's release"

# The first ends early: its reservation goes with its usage's end, and aifd releases the
# second, whose cost fits now; it runs.
scancel "$first"
assert_eq COMPLETED "$(wait_job "$second" 90)" "the waiting job, once the first ended"
assert_eq "ran" "$(cat "$AIF_TEST_WORKDIR/second.out")" "its output"
assert_eq "ok|ok" "$(admission "$second")" "its admission"
assert_eq "sweep 7 (lr 3e-4)" "$(squeue -h -j "$second" -t all -o %k)" "its user's comment, back"
grep -q "job $second released: its cost fits its budgets now" "$AIFD_WORK/a.log" ||
	fail "aifd did not log the release of job $second: $(tail -n 20 "$AIFD_WORK/a.log")"
# The second's 0.67 taken, 0.33 is left: the pending job waits for the second to end, then
# runs, started once, and never requeued.
assert_eq COMPLETED "$(wait_job "$after" 90)" "the job held while pending, once the second ended"
assert_eq "ran" "$(cat "$AIF_TEST_WORKDIR/after.out")" "its output"
assert_eq "ok|ok" "$(admission "$after")" "its admission"
assert_eq "Restarts=0" "$(scontrol -o show job "$after" | grep -o 'Restarts=[0-9]*')" \
	"the job held while pending, run once"
assert_eq "" "$(squeue -h -j "$after" -t all -o %k)" "its comment (none of its user's), once released"
wait_sql "SELECT count(*) FROM aif.waiting" 0 "waiting jobs once they ran"

# A requeued job: its reservation goes with its first run; its second run, admitted as the
# job was (the kept admission), reserves again.
# (Running and admitted: a reservation alone may be its release's, while it still pends: it
# can be held while pending for a moment, until the jobs before it have closed their usage.)
third=$(submit third --gpus-per-node=1 --time=30 --wrap 'sleep 300')
deadline=$((SECONDS + 30))
until [[ $(squeue -h -j "$third" -o %T) == RUNNING && $(admission "$third") == "ok|ok" &&
	$(reservations) == "$third|1|1800|"* ]]; do
	((SECONDS < deadline)) || fail "job $third: not running with a reservation: $(reservations) $(squeue -j "$third")"
	sleep 0.2
done
# A reservation of the job under another project (say, from a hold by an AdminComment that an
# operator changed) is not its kept admission's: a later step of the job (srun --overlap)
# reserves again under the admission's project, replacing it.
start=$(start_of "$third")
psql -d "$AIFD_DB" -Atqc "SELECT aif.reservations_delete(ARRAY['$AIF_TEST_CLUSTER'], ARRAY[$third::bigint], false)"
assert_eq t "$(psql -d "$AIFD_DB" -Atc "SELECT fits FROM aif.reserve('$AIF_TEST_CLUSTER', $third, 'other', 1,
	to_timestamp($start), to_timestamp($start + 1800), true)")" "job $third reserved under another project"
as_user "$user" srun --jobid="$third" --overlap -n1 --aif-project=small true ||
	fail "a step of job $third failed"
assert_eq "small" "$(psql -d "$AIFD_DB" -Atc "SELECT project_id FROM aif.reservations WHERE job_id = $third")" \
	"job $third's reservation after its step"
scontrol requeue "$third"
wait_sql "SELECT count(*) FROM aif.reservations" 0 "the requeued job's reservation once its run ended" 30
deadline=$((SECONDS + 30))
until [[ $(squeue -h -j "$third" -o '%T') == RUNNING ]]; do
	((SECONDS < deadline)) || fail "job $third did not start again: $(squeue -j "$third")"
	scontrol update JobId="$third" StartTime=now 2>/dev/null || true
	sleep 0.5
done
deadline=$((SECONDS + 30))
until [[ $(reservations) == "$third|1|1800|"* ]]; do
	((SECONDS < deadline)) || fail "job $third, run again: no reservation: $(reservations)"
	sleep 0.2
done
start=$(start_of "$third")
assert_eq "$third|1|1800|$start" "$(reservations)" "the requeued job's second run's reservation"
# Had the second run been admitted while the first run's reservation was still there (its end
# spooled while aifd was away), it would stand on that one: aifd's next pass gives it to the
# second run, from the run's StartTime. (The first run's made to look so: its restart count, a
# start 10 minutes earlier, the totals to match.)
psql -d "$AIFD_DB" -Atqc "UPDATE aif.reservations SET restart_count = 0,
	starts_at = starts_at - interval '10 minutes' WHERE job_id = $third" -c "SELECT aif.reserved_totals_recompute()"
aifd_wait_log a "DETAIL: +It was made for an earlier run of the job \(restart count 0\)" \
	"aifd's line for job $third's reservation taken over"
assert_eq "$third|1|1800|$start|1" "$(reservations)|$(psql -d "$AIFD_DB" -Atc "SELECT restart_count
	FROM aif.reservations WHERE job_id = $third")" "the second run's reservation, taken over"
scancel "$third"
wait_job "$third" >/dev/null
wait_sql "SELECT count(*) FROM aif.reservations" 0 "reservations once every job ended"

# A running job's time limit raised by an operator: aifd's next pass moves its reservation to
# the new end, so a job that would have fitted beside the old one waits. Its user lowers the
# limit again: the reservation follows, and the waiting job is released and runs.
wait_sql "SELECT count(*) FROM aif.reservations" 0 "reservations before the fourth job"
fourth=$(submit fourth --gpus-per-node=1 --time=20 --wrap 'sleep 300')
until_reserved() { # until_reserved JOB SECONDS: JOB runs with SECONDS reserved (30 s at most)
	local deadline=$((SECONDS + 30))
	until [[ $(squeue -h -j "$1" -o %T) == RUNNING &&
		$(reservations | grep "^$1|") == "$1|1|$2|$(start_of "$1")" ]]; do
		((SECONDS < deadline)) || fail "job $1: not running with $2 s reserved: $(reservations) $(squeue -j "$1")"
		sleep 0.2
	done
}
until_reserved "$fourth" 1200
scontrol update JobId="$fourth" TimeLimit=50
until_reserved "$fourth" 3000
aifd_wait_log a "the reservation of job $fourth of project \"small\" now ends at" \
	"aifd's line for job $fourth's reservation"
# 0.5 GPU-hours fit beside 20 minutes (0.33) of the 1 (less the minutes the jobs above used),
# not beside 50 (0.83).
fifth=$(submit fifth --gpus-per-node=1 --time=30 --wrap 'echo ran')
assert_match '^aif: waiting for GPU-hours: may cost 0.5 charged, project small has 0(\.[0-9]+)? left' \
	"$(held "$fifth")" "the job beside the raised one"
as_user "$user" scontrol update JobId="$fourth" TimeLimit=10 || fail "user $user could not lower a time limit"
until_reserved "$fourth" 600
! as_user "$user" scontrol update JobId="$fourth" TimeLimit=50 2>/dev/null ||
	fail "user $user raised the time limit of a running job"
assert_eq COMPLETED "$(wait_job "$fifth" 90)" "the waiting job, once the limit was lowered"
assert_eq "ran" "$(cat "$AIF_TEST_WORKDIR/fifth.out")" "its output"
scancel "$fourth"
wait_job "$fourth" >/dev/null
wait_sql "SELECT count(*) FROM aif.reservations" 0 "reservations once every job ended"
wait_sql "SELECT count(*) FROM aif.reserved_totals WHERE gpu_us > 0" 0 "reserved totals once every job ended"
assert_eq "n1 idle,n2 idle" "$(nodes_state)" "nodes after the refusals"
echo "plugin reservations: all checks passed"
