#!/usr/bin/env bash
# aif.so exports only the symbols Slurm looks up in a SPANK plugin, job_submit_aif.so only those
# slurmctld looks up in a job_submit plugin; neither leaves one of its own symbols undefined.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
spank=${1:?usage: plugin_exports.sh PATH/aif.so PATH/job_submit_aif.so}
job_submit=${2:?usage: plugin_exports.sh PATH/aif.so PATH/job_submit_aif.so}

# exports SO ALLOWED MUST...: SO exports only symbols matching ALLOWED (an ERE), and each MUST.
exports() {
	local so=$1 allowed=$2 symbols stray ours
	shift 2
	symbols=$(nm -D --defined-only "$so" | awk '{print $3}' | sort)
	[[ -n $symbols ]] || fail "no exported symbols in $so"
	echo "$symbols"
	for must in "$@"; do
		grep -qx "$must" <<<"$symbols" || fail "$must is not exported from $so"
	done
	stray=$(grep -vxE "$allowed" <<<"$symbols" || true)
	[[ -z $stray ]] || fail "$so exports more than its plugin interface: $stray"
	# Undefined symbols are the host's (spank_*, slurm_*) or a library's; one of ours would only
	# fail when Slurm loads the plugin.
	ours=$(nm -D --undefined-only "$so" | awk '{print $2}' | grep -E '^(aif_|hours_)' || true)
	[[ -z $ours ]] || fail "$so leaves its own symbols undefined: $ours"
}

exports "$spank" 'plugin_name|plugin_type|plugin_version|spank_plugin_version|slurm_spank_[a-z_]+' \
	plugin_name slurm_spank_init
exports "$job_submit" 'plugin_name|plugin_type|plugin_version|init|fini|job_submit|job_modify' \
	plugin_name plugin_type plugin_version init fini job_submit job_modify
# Of Slurm, the job_submit plugin uses only its allocator: slurmctld frees what it sets with it.
host=$(nm -D --undefined-only "$job_submit" | awk '$2 ~ /^slurm_/ {print $2}' | paste -sd' ')
[[ $host == "slurm_xfree_ptr slurm_xstrcat" ]] ||
	fail "job_submit_aif.so needs more of slurmctld than its allocator: $host"
echo "plugin exports: ok"
