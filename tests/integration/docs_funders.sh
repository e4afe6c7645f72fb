#!/usr/bin/env bash
# docs/funders.md, the funders' SQL cookbook, runs as written: every ```sql block of the page is
# run as a login role of aif_funder (which may read aif_report and nothing else) against a
# database with applied budgets and a few months of usage, and must succeed and return rows.
# The budgets use the ids the cookbook names (ai2f, genomics-eu, ...) and periods around today,
# so that the "current period" queries hold whatever the date. The burn-down of genomics-eu
# must also end on the GPU-hours budget_status reports for it.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/sql_common.sh"
load_harness
sql_setup funders "${1:?usage: docs_funders.sh AIF_MIGRATE}"
page=$AIF_SRC/docs/funders.md
aifctl=$AIF_BUILD_DIR/aifctl/aifctl
work=$(mktemp -d)
cleanup() { # the work dir too, then sql_cleanup with the test's exit status
	local rc=$?
	rm -rf "$work"
	set +e
	(exit "$rc")
	sql_cleanup
}
trap cleanup EXIT

# Half-year periods, as the example budgets have them: the one that contains today (cur) and
# the one before (prev), named like 2026-h2 and 2026-h1.
year=$(date -u +%Y) month=$(date -u +%-m)
if ((month <= 6)); then
	cur=$year-h1 cur_start=$year-01-01 cur_end=$year-07-01
	prev=$((year - 1))-h2 prev_start=$((year - 1))-07-01
else
	cur=$year-h2 cur_start=$year-07-01 cur_end=$((year + 1))-01-01
	prev=$year-h1 prev_start=$year-01-01
fi
cat >"$work/budgets.yaml" <<EOF
version: 1
sectors: [health, life-sciences, language, public-services, energy, agritech]
periods:
  $prev: {start: $prev_start, end: $cur_start}
  $cur: {start: $cur_start, end: $cur_end}
factories:
  - id: ai2f
    name: AI2F - AI Factory France
    clusters: [jean-zay, adastra]
    budgets: {$prev: 150000, $cur: 180000}
    projects:
      - id: genomics-eu
        name: Pan-European genomics foundation models
        sectors: [health, life-sciences]
        budgets: {$prev: 40000, $cur: 60000}
        members: {users: [aiftest]}
      - id: llm-fr-public
        name: French-language assistants for public services
        sectors: [language, public-services]
        budgets: {$prev: 90000, $cur: 100000}
        members: {users: [aiftest2]}
      - id: agri-vision-sme
        name: Crop disease detection from drone imagery
        sectors: [agritech]
        budgets: {$cur: 2500}
        members: {users: [aiftest3]}
  - id: jaif
    name: JAIF - JUPITER AI Factory
    clusters: [jupiter]
    budgets: {$prev: 300000, $cur: 350000}
    on_exhausted: cancel
    projects:
      - id: eu-llm-pretrain
        name: Open multilingual European LLM pre-training
        sectors: [language]
        budgets: {$prev: 200000, $cur: 250000}
        members: {users: [aiftest]}
      - id: grid-forecast
        name: Renewable production forecasting for grid operators
        sectors: [energy]
        budgets: {$cur: 12000}
        members: {users: [aiftest2]}
EOF
"$aifctl" --db "$(sql_conninfo "$SQL_DB")" apply "$work/budgets.yaml" >/dev/null || fail "aifctl apply of the test budgets failed"

# Usage as aifd records it: 600 jobs of one or two nodes over the last 200 days, each project
# on its factory's clusters in one of its sectors; half of them folded into the rollups, half
# still queued; one job of eu-llm-pretrain still running. agri-vision-sme has used nothing;
# grid-forecast uses its budget faster than its period lasts. Deterministic (setseed); every
# interval but the running one ends before now.
q <<'EOF' >/dev/null
SELECT setseed(0.25);
CREATE TEMP TABLE jobs AS
SELECT g AS job_id, w.cluster, w.project_id, w.sector_id, 1 + (g % 2) AS nodes,
       (1 + (g % 4)) * 2 AS gpus,
       date_trunc('second', now() - interval '1 day' * (1 + random() * 199)) AS started_at,
       interval '1 minute' * (30 + floor(random() * 1400)) AS runs
FROM generate_series(1, 600) AS g
JOIN (VALUES (0, 'jean-zay', 'genomics-eu', 'health'), (1, 'adastra', 'genomics-eu', 'life-sciences'),
             (2, 'jean-zay', 'llm-fr-public', 'language'), (3, 'adastra', 'llm-fr-public', 'public-services'),
             (4, 'jupiter', 'eu-llm-pretrain', 'language'), (5, 'jupiter', 'grid-forecast', 'energy'))
     AS w(k, cluster, project_id, sector_id) ON w.k = g % 6;
INSERT INTO aif.usage_intervals (cluster, job_id, node, restart_count, project_id, sector_id, uid,
	user_name, gpus, started_at, ended_at, end_source)
SELECT cluster, job_id, 'n' || n, 0, project_id, sector_id, 1000, 'aiftest', gpus, started_at,
       started_at + runs, 'epilog'
FROM jobs, generate_series(1, nodes) AS n WHERE job_id <= 300;
SELECT aif.rollup_flush();
INSERT INTO aif.usage_intervals (cluster, job_id, node, restart_count, project_id, sector_id, uid,
	user_name, gpus, started_at, ended_at, end_source)
SELECT cluster, job_id, 'n' || n, 0, project_id, sector_id, 1000, 'aiftest', gpus, started_at,
       started_at + runs, 'epilog'
FROM jobs, generate_series(1, nodes) AS n WHERE job_id > 300;
INSERT INTO aif.usage_intervals (cluster, job_id, node, restart_count, project_id, sector_id, uid,
	user_name, gpus, started_at) VALUES
	('jupiter', 1000, 'n1', 0, 'eu-llm-pretrain', 'language', 1000, 'aiftest', 4, now() - interval '3 hours');
-- Usage no project could be charged for (a user of none who bypassed the checks).
INSERT INTO aif.unattributed_intervals (cluster, job_id, node, restart_count, reason, uid, gpus,
	started_at, ended_at) VALUES
	('jean-zay', 2000, 'n1', 0, 'no-project', 4242, 2, now() - interval '2 days', now() - interval '1 day');
EOF

funder=aif_t_funder_$$
sql_login_role "$funder" aif_funder

# Every ```sql block of the page, one file each (block-1.sql, ...), with the line it starts on.
awk -v dir="$work" '
	/^```sql[[:space:]]*$/ { n++; file = sprintf("%s/block-%d.sql", dir, n); print NR > (dir "/lines"); inside = 1; next }
	/^```/ && inside { inside = 0; close(file); next }
	inside { print > file }
' "$page"
mapfile -t lines <"$work/lines"
((${#lines[@]} >= 10)) || fail "docs/funders.md: only ${#lines[@]} sql blocks found"

for i in "${!lines[@]}"; do
	block=$work/block-$((i + 1)).sql
	where="docs/funders.md, the sql block at line ${lines[i]}"
	out=$(psql -X -q -At -v ON_ERROR_STOP=1 -U "$funder" -f "$block" 2>&1) ||
		fail "$where fails as aif_funder: $out"
	[[ -n $out ]] || fail "$where returns no rows"
	printf '%s\n' "$out" >"$work/out-$((i + 1))"
done

# The burn-down of genomics-eu: its last row's used_so_far (the 4th column) is the project's
# used GPU-hours in the current period, as budget_status says (to the 2 decimals shown).
burn=$(grep -l "WHERE s.project = 'genomics-eu'" "$work"/block-*.sql | head -1)
[[ -n $burn ]] || fail "docs/funders.md: no burn-down of genomics-eu found"
n=${burn##*block-}
last=$(tail -1 "$work/out-${n%.sql}" | cut -d'|' -f4)
used=$(q -c "SELECT used_gpu_hours FROM aif_report.budget_status WHERE project = 'genomics-eu' AND period = '$cur'")
[[ $(q -c "SELECT abs($last - $used) <= 0.01") == t ]] ||
	fail "burn-down of genomics-eu ends at $last GPU-hours, budget_status says $used"
# And nothing of the cookbook needs the private schema: the funder role cannot read it.
assert_fails 'permission denied for schema aif' "aif_funder reading aif.usage_intervals" \
	psql -X -q -At -v ON_ERROR_STOP=1 -U "$funder" -c 'SELECT count(*) FROM aif.usage_intervals'
echo "funders cookbook: ${#lines[@]} queries ran as aif_funder and returned rows"
