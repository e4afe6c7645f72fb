#!/usr/bin/env bash
# aif.so exports only the symbols Slurm looks up in a SPANK plugin.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
so=${1:?usage: plugin_exports.sh PATH/aif.so}

symbols=$(nm -D --defined-only "$so" | awk '{print $3}' | sort)
[[ -n $symbols ]] || fail "no exported symbols in $so"
echo "$symbols"
grep -qx plugin_name <<<"$symbols" || fail "plugin_name is not exported"
grep -qx slurm_spank_init <<<"$symbols" || fail "slurm_spank_init is not exported"
stray=$(grep -vxE 'plugin_name|plugin_type|plugin_version|spank_plugin_version|slurm_spank_[a-z_]+' <<<"$symbols" || true)
[[ -z $stray ]] || fail "aif.so exports more than SPANK symbols: $stray"
# Undefined symbols are the host's (spank_*, slurm_*) or a library's; one of ours would only
# fail when slurmstepd loads the plugin.
ours=$(nm -D --undefined-only "$so" | awk '{print $2}' | grep -E '^aif_' || true)
[[ -z $ours ]] || fail "aif.so leaves its own symbols undefined: $ours"
echo "plugin exports: ok"
