#!/usr/bin/env bash
# Two harness runs at the same time do not interfere, and stopping a run leaves nothing behind:
# not its daemons, not the slurmstepd and tasks of a job still running, not its port claims.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
load_harness
run_a=$AIF_HARNESS_DIR
slurm_port() { sed -n 's/^SlurmctldPort=//p' "$1"; }
ctld_port_a=$(slurm_port "$SLURM_CONF")
pg_port_a=$PGPORT

env_b=$(AIF_HARNESS_QUIET=1 "$AIF_HARNESS" start)
run_b=$(dirname "$env_b")
trap 'AIF_HARNESS_QUIET=1 "$AIF_HARNESS" stop "$env_b" 2>/dev/null || true' EXIT
ctld_port_b=$(source "$env_b" && slurm_port "$SLURM_CONF")
pg_port_b=$(source "$env_b" && echo "$PGPORT")
[[ $run_a != "$run_b" ]] || fail "both runs use $run_a"
[[ $ctld_port_a != "$ctld_port_b" && $pg_port_a != "$pg_port_b" ]] ||
	fail "runs share ports: slurmctld $ctld_port_a/$ctld_port_b, postgres $pg_port_a/$pg_port_b"
# No claimed port is one of the kernel's ephemeral ports, which an outgoing connection may take
# before the daemon binds it (claims of run A: released when it stops).
read -r eph_low eph_high </proc/sys/net/ipv4/ip_local_port_range
for port in "$ctld_port_a" "$pg_port_a" "$ctld_port_b" "$pg_port_b" \
	$(for _ in $(seq 40); do "$AIF_HARNESS" claim-port "$run_a"; done); do
	((port < eph_low || port > eph_high)) || fail "port $port is in the ephemeral range $eph_low-$eph_high"
done

# A job held running on B is invisible to A, and A still runs its own jobs.
job_b=$("$AIF_HARNESS" as-user "$env_b" "$AIF_TEST_USER" sbatch --parsable -N2 --gpus-per-node=1 \
	-o /dev/null --wrap 'srun sleep 300')
deadline=$((SECONDS + 30))
until [[ $(source "$env_b" && squeue -h -j "$job_b" -o %T) == RUNNING ]]; do
	((SECONDS < deadline)) || fail "job $job_b on run B did not start"
	sleep 0.2
done
# (Job ids are per cluster, so both runs number from 1: run A must simply show no job.)
assert_eq "" "$(squeue -h -o '%i %T')" "run A's queue while run B runs a job"
job_a=$(as_user "$AIF_TEST_USER" sbatch --parsable -N2 --gpus-per-node=4 -o /dev/null --wrap true)
assert_eq COMPLETED "$(wait_job "$job_a")" "run A's job while run B is busy"
psql -X -q -c "CREATE TABLE only_in_a(x int)"
assert_eq "" "$(source "$env_b" && psql -X -At -c "SELECT to_regclass('only_in_a')")" "run B's database"

# Everything run B started, directly or through Slurm, and still alive now: its daemons, what
# carries its marker, what is in its cgroup, and every slurmstepd of its job. (On 24.11 a
# slurmstepd carries neither slurmd's environment nor the job's: found by the run's cgroup.)
marker="AIF_HARNESS_DIR=$run_b"
b_pids=$(cat "$run_b"/pids/*)
for p in /proc/[0-9]*; do
	tr '\0' '\n' 2>/dev/null <"$p/environ" | grep -qxF "$marker" && b_pids+=" ${p#/proc/}"
done
[[ ! -e $run_b/cgroup ]] || b_pids+=" $(cat "$(cat "$run_b/cgroup")/cgroup.procs")"
stepds=0
for p in $(pgrep -f "^slurmstepd: \[$job_b\." || true); do
	if grep -qw "$p" <<<"$b_pids" ||
		tr '\0' '\n' 2>/dev/null <"/proc/$p/environ" | grep -qxF "SLURM_CONF=$run_b/slurm/slurm.conf"; then
		stepds=$((stepds + 1)) b_pids+=" $p"
	fi
done
((stepds > 0)) || fail "no slurmstepd of job $job_b of run B found (neither in its cgroup nor by its environment)"
b_pids=$(tr ' ' '\n' <<<"$b_pids" | sort -un | paste -sd' ')
job_procs=$(wc -w <<<"$b_pids")
((job_procs > 7)) || fail "expected the daemons and the running job's processes, found only: $b_pids"

AIF_HARNESS_QUIET=1 "$AIF_HARNESS" stop "$env_b"
trap - EXIT
for p in $b_pids; do
	# (A zombie is dead: its parent, which may be the host's init, has not reaped it yet.)
	state=$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null || true)
	[[ -z $state || $state == Z ]] || fail "process $p of run B survived stop: $(tr '\0' ' ' <"/proc/$p/cmdline")"
done
[[ ! -e $run_b ]] || fail "run B's directory $run_b was not removed"
! grep -rlxF "$run_b" /tmp/aif-harness-ports/*/owner 2>/dev/null || fail "run B's ports are still claimed"

# Run A is untouched.
assert_eq "n1 idle,n2 idle" "$(sinfo -h -N -o '%N %T' | sort | paste -sd,)" "run A's nodes after B stopped"
assert_eq 1 "$(psql -X -At -c 'SELECT 1')" "run A's database after B stopped"
psql -X -q -c "DROP TABLE only_in_a"
echo "harness isolation: ok ($job_procs processes of run B stopped)"
