#!/usr/bin/env bash
# The harness gives nodes typed GPUs, as gres.conf's Type= does on a real site (issue 18's
# typed-GPU tests stand on it): n1 with 4 x h100, n2 with 2 x a100 and 2 MIG-like 1g.10gb
# slices, partitions h100 (n1) and a100 (n2) beside gpu. Slurm places a job asking for a type
# on its node only, and reports the model in the job's allocation; a job of no type takes
# any; a wrong option is refused before anything starts, naming it.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
[[ $(id -u) == 0 ]] || fail "run as root"

for bad in "n3=h100:1" "n1=h100:5" "n1=h100" "n1=h 100:1" ; do
	out=$("$AIF_HARNESS" start --gpu-types "$bad" 2>&1) && fail "--gpu-types '$bad' accepted"
	assert_match "^aif-harness: --gpu-types '$bad'" "$out" "--gpu-types '$bad' refused, named"
done
out=$("$AIF_HARNESS" start --partition "x=n9" 2>&1) && fail "--partition x=n9 accepted"
assert_match "no node n9" "$out" "--partition with an unknown node refused, named"

cluster_start --gpu-types n1=h100:4 --gpu-types n2=a100:2+1g.10gb:2 --partition h100=n1 --partition a100=n2
assert_eq "n1 gpu:h100:4,n2 gpu:a100:2,gpu:1g.10gb:2" \
	"$(sinfo -h -N -p gpu -o '%N %G' | sort | paste -sd,)" "the nodes' typed GPUs"
assert_eq "a100 n2,gpu n1,gpu n2,h100 n1" "$(sinfo -h -N -o '%R %N' | sort | paste -sd,)" "the partitions"

job() { # job ARG...: an ordinary user's job of 2 s; prints its id once it ended
	local id
	id=$(as_user "$AIF_TEST_USER" sbatch --parsable -o /dev/null "$@" --wrap 'sleep 2')
	[[ $id =~ ^[0-9]+$ ]] || fail "sbatch $* did not return a job id: '$id'"
	assert_eq COMPLETED "$(wait_job "$id")" "job $id ($*)"
	echo "$id"
}
node_of() { scontrol show job "$1" | tr ' ' '\n' | sed -n 's/^NodeList=//p'; }
alloc_of() { scontrol show job -d "$1" | grep -o 'GRES=gpu[^ ]*' | head -n 1; }

j=$(job --gres=gpu:a100:2)
assert_eq n2 "$(node_of "$j")" "a job of 2 a100"
assert_match "^GRES=gpu:a100:2(\\(IDX:0-1\\))?$" "$(alloc_of "$j")" "its allocation names the model"
j=$(job --gres=gpu:1g.10gb:1)
assert_eq n2 "$(node_of "$j")" "a job of a 1g.10gb slice"
assert_match "^GRES=gpu:1g\\.10gb:1(\\(IDX:[23]\\))?$" "$(alloc_of "$j")" "its allocation names the slice"
j=$(job -p h100 --gpus=3)
assert_eq n1 "$(node_of "$j")" "a job of 3 GPUs in partition h100"
assert_match "^GRES=gpu:h100:3(\\(IDX:0-2\\))?$" "$(alloc_of "$j")" "its allocation names the model"
j=$(job -N2 --gpus-per-node=2)
assert_eq "n[1-2]" "$(node_of "$j")" "a job of untyped GPUs on both nodes"
echo "harness typed GPUs: ok"
