#!/usr/bin/env bash
# Benchmark (not a test): what an admission that reserves adds (docs/aifd.md, "Reservations"),
# against its floors, measured in the same run:
#   - aif.reserve() of one job, committed as aifd commits it, with 1000 other jobs reserved
#     against the same factory, with 1 and 2 clients (2: both against one factory, so they take
#     turns on its row lock, as two clusters' aifd do); floor: one durable INSERT into a plain
#     table over the same connections (the commit every reservation needs);
#   - the slurmctld lookup of the job's GPUs and time limit (jobcost_load(): slurm_load_job);
#     it is itself Slurm's own floor for knowing the job.
# Goals (issue 17) for the admission as a whole: p50 < 0.5 ms, p99 < 2 ms with 1 and 2 clients.
#
#   tests/bench/bench_reserve.sh [BUILD_DIR]
#
# Starts its own harness run (stopped on exit unless AIF_BENCH_KEEP=1), with PostgreSQL's
# durable defaults. About 30 s. As root.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$src/build}
tool=$build/tests/aif-reserve-bench
migrate=$build/tests/aif-migrate
aifctl=$build/aifctl/aifctl
harness=$src/tests/harness/aif-harness
for t in "$tool" "$migrate" "$aifctl"; do
	[[ -x $t ]] || { echo "bench: $t not found; build first (cmake --build $build)" >&2; exit 1; }
done
n=${AIF_BENCH_N:-2000}
# shellcheck source=tests/bench/bench_lib.sh
source "$src/tests/bench/bench_lib.sh"
mkdir -p "$work"
cat >"$work/budgets.yaml" <<YAML
version: 1
sectors: [health]
periods:
  cur: {start: $(date -u -d '-30 days' +%F), end: $(date -u -d '+30 days' +%F)}
factories:
  - id: bench-factory
    clusters: [aiftest]
    budgets: {cur: 100000000}
    admission: reserve
    projects:
      - {id: bench, sectors: [health], budgets: {cur: 100000000}, members: {users: [root]}}
YAML
"$aifctl" --db "$AIF_TEST_DB_TCP" apply "$work/budgets.yaml" >/dev/null
# (through aif.reserve(), as aifd reserves: their charge and the factory's totals with them)
reserved=$(q "$AIF_TEST_DB_TCP" -c "SELECT count(*) FILTER (WHERE r.fits) FROM generate_series(1, 1000) j,
	LATERAL aif.reserve('other', j, 'bench', 8, now(), now() + interval '1 day', false) r")
[[ $reserved == 1000 ]] || fail "1000 other jobs to reserve, $reserved reserved"
echo "machine: $(nproc) cores; PostgreSQL $(q -c 'SHOW server_version') (fsync $(q -c 'SHOW fsync')," \
	"synchronous_commit $(q -c 'SHOW synchronous_commit')); 1000 other jobs reserved"

kv() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2"; }
for clients in 1 2; do
	out=$("$tool" sql "$AIF_TEST_DB_TCP" "$clients" "$n" bench) || fail "aif-reserve-bench sql failed"
	echo "reserve, $clients client(s) against one factory: p50 $(kv reserve_p50_ms "$out") ms," \
		"p99 $(kv reserve_p99_ms "$out") ms; floor (durable INSERT): p50 $(kv floor_p50_ms "$out") ms," \
		"p99 $(kv floor_p99_ms "$out") ms; ratio p50 $(awk -v a="$(kv reserve_p50_ms "$out")" \
		-v b="$(kv floor_p50_ms "$out")" 'BEGIN { printf "%.2f", a / b }'); $(kv fits "$out") of $((clients * n)) fitted"
done

# A running job of 2 GPUs with a time limit of an hour, for slurmctld to describe.
job=$("$harness" as-user "$AIF_HARNESS_DIR" "$AIF_TEST_USER" sbatch --parsable -N1 --gpus-per-node=2 \
	--time=60 -o /dev/null --wrap 'sleep 120')
deadline=$((SECONDS + 30))
until [[ $(squeue -h -j "$job" -o %T) == RUNNING ]]; do
	((SECONDS < deadline)) || fail "job $job did not start: $(squeue -j "$job")"
	sleep 0.2
done
out=$("$tool" slurm "$job" "$(id -u "$AIF_TEST_USER")" 500) || fail "aif-reserve-bench slurm failed"
scancel "$job"
echo "slurmctld lookup of the job (slurm_load_job): p50 $(kv rpc_p50_ms "$out") ms, p99 $(kv rpc_p99_ms "$out") ms" \
	"(it told $(kv gpus "$out") GPUs, $(kv seconds "$out") s)"
