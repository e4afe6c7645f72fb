#!/usr/bin/env bash
# The demo (demo/run, the README's first command) on this tree's build, in a directory of its
# own: it runs to the end; the refusal is aifd's, shown verbatim; the funders' tables hold the
# story's usage, each project and sector with its jobs and its GPUs x seconds (two nodes of
# the multi-node job counted); then "demo/run stop" leaves none of the processes it started,
# removes the directory, and a second stop is harmless.
#
# Usage: demo_run.sh BUILD_DIR
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
build=${1:?usage: demo_run.sh BUILD_DIR}
demo=$AIF_SRC/demo/run

export AIF_BUILD_DIR=$build
AIF_DEMO_DIR=$(mktemp -d "${TMPDIR:-/tmp}/aif-demo.XXXXXX")
export AIF_DEMO_DIR
out=$(mktemp)
trap '[[ ! -e $AIF_DEMO_DIR/.aif-demo ]] || "$demo" stop >/dev/null 2>&1 || true; rm -rf "$out" "$AIF_DEMO_DIR"' EXIT

rc=0
"$demo" >"$out" 2>&1 || rc=$?
cat "$out"
assert_eq 0 "$rc" "demo/run exit status"

# ---- the story ----
assert_eq 4 "$(grep -c '^    Submitted batch job [0-9]*$' "$out")" "jobs submitted"
refusal='    sbatch: error: aif: user "clambert" is not a member of project "genomics-eu"
    sbatch: DETAIL:  Neither the user nor one of its groups (GROUPS) is among the project'"'"'s members.
    sbatch: HINT:  Ask your AI Factory (ai2f) to add you to the project, or use another project.
    sbatch: error: spank: required plugin aif.so: init_post_opt() failed with rc=-1
    sbatch: error: Plugin stack post-option processing failed
    (sbatch exit status 1)'
# (clambert's groups depend on the machine's useradd defaults)
assert_eq "$refusal" "$(grep -A5 '^    sbatch: error: aif: ' "$out" | sed 's/its groups ([^)]*)/its groups (GROUPS)/')" \
	"the refusal"
assert_match 'genomics-eu +60000\.00 +[0-9.]+ +[0-9.]+ +ok +project' \
	"$(grep -A4 'adupont\$ aifctl projects' "$out")" "aifctl projects as adupont"

# ---- the funders' tables (psql's aligned format: fields between '|') ----
# table TITLE-REGEX: the rows of the psql table after the title line, fields trimmed, '|'-separated
table() {
	awk -v title="$1" '
		$0 ~ title { on = 1; next }
		on && /^ *\([0-9]+ rows?\)/ { exit }
		on && /\|/ && !/^ *-+\+/ { gsub(/ *\| */, "|"); gsub(/^ +| +$/, ""); print }' "$out" | tail -n +2
}
daily=$(table 'usage per day')
budget=$(table 'budget status of ai2f')
echo "usage_daily: $(paste -sd' ' <<<"$daily")"
echo "budget_status: $(paste -sd' ' <<<"$budget")"
# A demo run over midnight (UTC) has two days: a job that ran on both counts on each, so a
# project's jobs summed over the days are its jobs, up to twice that when it crossed midnight.
days=$(cut -d'|' -f1 <<<"$daily" | sort -u | wc -l)
((days == 1 || days == 2)) || fail "usage_daily: $days days, for a story of seconds"
assert_eq "aero-cfd-surrogates|aerospace
genomics-eu|health
grid-forecast|cleantech
llm-fr-public|public-services" "$(cut -d'|' -f4,5 <<<"$daily" | sort -u)" "usage_daily: project and sector"
for expected in aero-cfd-surrogates:1 genomics-eu:1 grid-forecast:1 llm-fr-public:2; do
	jobs=$(awk -F'|' -v p="${expected%:*}" '$4 == p { n += $7 } END { print n + 0 }' <<<"$daily")
	((jobs >= ${expected#*:} && jobs <= days * ${expected#*:})) ||
		fail "usage_daily: ${expected%:*} has $jobs jobs over $days day(s), expected ${expected#*:}"
done
assert_eq "jean-zay|ai2f" "$(cut -d'|' -f2,3 <<<"$daily" | sort -u)" "usage_daily: cluster and factory"
# gpu_hours over the days: GPUs x seconds of each job, within the prolog's and epilog's clocks:
# genomics-eu ran 2 nodes x 2 GPUs for 15 s (0.0167); the others 1 GPU for 10 s (0.0028),
# twice for the array.
gpu_hours() { awk -F'|' -v p="$1" '$4 == p { s += $6 } END { print s + 0 }' <<<"$daily"; }
between() { # between VALUE LOW HIGH WHAT
	awk -v v="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(v >= lo && v <= hi) }' ||
		fail "$4: $1 GPU-hours, expected $2 to $3"
}
between "$(gpu_hours genomics-eu)" "$(awk 'BEGIN { print 4 * 14 / 3600 }')" "$(awk 'BEGIN { print 4 * 30 / 3600 }')" "genomics-eu"
between "$(gpu_hours llm-fr-public)" "$(awk 'BEGIN { print 2 * 9 / 3600 }')" "$(awk 'BEGIN { print 2 * 25 / 3600 }')" "llm-fr-public"
for p in aero-cfd-surrogates grid-forecast; do
	between "$(gpu_hours $p)" "$(awk 'BEGIN { print 9 / 3600 }')" "$(awk 'BEGIN { print 25 / 3600 }')" "$p"
done
# budget_status: the factory row first, then every project of ai2f; the factory's used is the
# sum of its projects', and usage_daily's total.
assert_eq "|aero-cfd-surrogates|agri-vision-sme|genomics-eu|grid-forecast|llm-fr-public" \
	"$(cut -d'|' -f3 <<<"$budget" | paste -sd'|')" "budget_status: rows"
sum() { awk -F'|' -v f="$1" '{ s += $f } END { printf "%.6f", s }'; } # sum FIELD: of stdin's rows
near() { # near A B WHAT: equal but for the views' rounding to 6 decimals
	awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; exit !(d < 0.00001 && d > -0.00001) }' || fail "$3: $1, expected $2"
}
factory_used=$(awk -F'|' '$3 == "" { print $5 }' <<<"$budget")
near "$factory_used" "$(awk -F'|' '$3 != ""' <<<"$budget" | sum 5)" "budget_status: ai2f's used, against its projects'"
near "$factory_used" "$(sum 6 <<<"$daily")" "budget_status: ai2f's used, against usage_daily"
assert_eq "ok" "$(cut -d'|' -f8 <<<"$budget" | sort -u)" "budget_status: states"

# ---- stop: by pid, everything ----
run=$(ls -d "$AIF_DEMO_DIR"/harness/aif-harness.*)
started=$(cat "$run"/pids/* "$AIF_DEMO_DIR/aifd.pid")
for p in /proc/[0-9]*; do # slurmstepd and the like carry the run's marker
	tr '\0' '\n' 2>/dev/null <"$p/environ" | grep -qxF "AIF_HARNESS_DIR=$run" && started+=" ${p#/proc/}"
done
assert_match "^[0-9 ]+$" "$(paste -sd' ' <<<"$started")" "pids of the demo"
(($(wc -w <<<"$started") >= 6)) || fail "the demo's processes: only $started"
"$demo" stop
left=""
for p in $started; do ! kill -0 "$p" 2>/dev/null || left+=" $p($(tr '\0' ' ' 2>/dev/null </proc/"$p"/cmdline))"; done
assert_eq "" "$left" "processes left after demo/run stop"
[[ ! -e $AIF_DEMO_DIR ]] || fail "demo/run stop left $AIF_DEMO_DIR: $(ls -A "$AIF_DEMO_DIR")"
assert_eq "demo: nothing to stop: no demo in $AIF_DEMO_DIR" "$("$demo" stop 2>&1)" "a second stop"
echo "demo.run: ok"
