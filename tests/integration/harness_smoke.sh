#!/usr/bin/env bash
# The harness is real: an ordinary user's two-node GPU job runs on both nodes, each task sees
# two GPU indices, and the throwaway PostgreSQL answers a query.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
load_harness

# PostgreSQL: a real server on its own port and socket.
assert_eq "2" "$(psql -X -At -c 'SELECT 1 + 1')" "query on the throwaway PostgreSQL"
assert_match "^PostgreSQL " "$(psql -X -At -c 'SELECT version()')" "server version"
assert_eq "$PGPORT" "$(psql -X -At -c 'SHOW port')" "server port"

# Slurm: both nodes up with 4 GPUs each.
assert_eq "n1 idle gpu:4,n2 idle gpu:4" "$(sinfo -h -N -o '%N %T %G' | sort | paste -sd,)" "nodes"

out=smoke.$$.out
cat >"$AIF_TEST_WORKDIR/smoke.$$.sh" <<'JOB'
#!/bin/bash
srun --ntasks-per-node=1 bash -c 'echo "$SLURMD_NODENAME $(id -un) $CUDA_VISIBLE_DEVICES"'
JOB
chmod 644 "$AIF_TEST_WORKDIR/smoke.$$.sh"
job=$(as_user "$AIF_TEST_USER" sbatch --parsable -N2 --gpus-per-node=2 -o "$out" -e "$out.err" "smoke.$$.sh")
[[ $job =~ ^[0-9]+$ ]] || fail "sbatch did not return a job id: '$job'"
assert_eq COMPLETED "$(wait_job "$job")" "job $job state"
assert_eq "$AIF_TEST_USER" "$(scontrol show job "$job" | sed -n 's/.*UserId=\([^(]*\)(.*/\1/p')" "job owner"

lines=$(sort "$AIF_TEST_WORKDIR/$out")
echo "$lines"
[[ ! -s $AIF_TEST_WORKDIR/$out.err ]] || fail "job wrote to stderr: $(cat "$AIF_TEST_WORKDIR/$out.err")"
assert_eq 2 "$(wc -l <<<"$lines")" "one line per node"
for node in n1 n2; do
	line=$(grep "^$node " <<<"$lines") || fail "no task ran on $node"
	read -r _ user gpus <<<"$line"
	assert_eq "$AIF_TEST_USER" "$user" "task user on $node"
	assert_match '^[0-3],[0-3]$' "$gpus" "CUDA_VISIBLE_DEVICES on $node"
done
echo "harness smoke: ok"
