#!/usr/bin/env bash
# Benchmark (not a test): aif_report.budget_status and a month-by-sector report over 10 million
# usage intervals, against the same computed naively over the raw aif.usage_intervals.
#
#   tests/bench/bench_budget_status.sh [BUILD_DIR] [JOBS]
#
# Starts its own harness run (PostgreSQL only; stopped on exit unless AIF_BENCH_KEEP=1 is
# set), migrates with BUILD_DIR's tests/aif-migrate (default: build), applies a realistic
# configuration (4 factories, 200 projects, 13 sectors, 4 half-year periods over 2 years)
# through aif.apply(), and generates
# the usage with SQL: JOBS jobs (default 4,000,000) of 1 to 4 nodes, 2.5 on average, i.e.
# 10 million intervals, of which the last 2000 jobs (about 5000 intervals) still run. They go
# in through the real path: INSERT (triggers queue them), then aif.rollup_flush(). Timings are
# the best of several runs, after ANALYZE, measured in this run. Goal: budget_status < 50 ms.
# As root (the harness needs it).
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$src/build}
jobs=${2:-4000000}
migrate=$build/tests/aif-migrate
[[ -x $migrate ]] || { echo "bench: $migrate not found; build first (cmake --build $build)" >&2; exit 1; }

bench_start=$(date +%s)
export AIF_HARNESS_QUIET=1
# A production-like server: more shared memory and WAL room than initdb's defaults.
export AIF_HARNESS_PG_OPTS="-c shared_buffers=2GB -c max_wal_size=16GB -c checkpoint_timeout=1h
	-c work_mem=64MB -c maintenance_work_mem=1GB -c synchronous_commit=off"
env_file=$("$src/tests/harness/aif-harness" start --no-slurm)
if [[ -n ${AIF_BENCH_KEEP:-} ]]; then # keep the database to explore it; stop it yourself
	trap 'echo "bench: kept; stop with: $src/tests/harness/aif-harness stop $env_file" >&2' EXIT
else
	trap '"$src/tests/harness/aif-harness" stop "$env_file"' EXIT
fi
# shellcheck disable=SC1090
source "$env_file"
q() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
now_ms() { date +%s%3N; }
secs() { awk -v ms="$1" 'BEGIN { printf "%.1f s", ms / 1000 }'; }

"$migrate" "$AIF_TEST_DB" >/dev/null
echo "PostgreSQL $(q -c 'SHOW server_version'), $(nproc) cores;" \
	"shared_buffers $(q -c 'SHOW shared_buffers'), work_mem $(q -c 'SHOW work_mem'), jit $(q -c 'SHOW jit')"

# The configuration, staged and applied as aifctl does.
q >/dev/null <<'EOF'
BEGIN;
SELECT aif.begin_staging();
INSERT INTO pg_temp.stage_sectors SELECT unnest(ARRAY['health', 'energy', 'automotive', 'defense',
	'aerospace', 'robotics', 'cleantech', 'agritech', 'public-services', 'language', 'manufacturing',
	'space', 'life-sciences']);
INSERT INTO pg_temp.stage_periods VALUES ('2025-h1', '2025-01-01', '2025-07-01'),
	('2025-h2', '2025-07-01', '2026-01-01'), ('2026-h1', '2026-01-01', '2026-07-01'),
	('2026-h2', '2026-07-01', '2027-01-01');
INSERT INTO pg_temp.stage_factories VALUES ('ai2f', 'AI Factory France', 'deny', 0, '{80,95}', false),
	('jaif', 'JUPITER AI Factory', 'cancel', 3600, '{75,90}', true),
	('lumi-aif', 'LUMI AI Factory', 'deny', 0, '{80}', true),
	('it4lia', 'IT4LIA', 'deny', 0, '{90}', true);
INSERT INTO pg_temp.stage_factory_clusters VALUES ('ai2f', 'jean-zay'), ('ai2f', 'adastra'),
	('jaif', 'jupiter'), ('lumi-aif', 'lumi'), ('it4lia', 'leonardo');
CREATE TEMP TABLE bench_projects ON COMMIT PRESERVE ROWS AS
SELECT n, format('p%s', lpad(n::text, 3, '0')) AS id,
       (ARRAY['ai2f', 'jaif', 'lumi-aif', 'it4lia'])[1 + n % 4] AS factory,
       (SELECT array_agg(id ORDER BY id) FROM pg_temp.stage_sectors) AS all_sectors,
       200000 + (n * 7919 % 60) * 10000 AS budget
FROM generate_series(1, 200) AS n;
INSERT INTO pg_temp.stage_projects
SELECT id, factory, 'Project ' || n, 'deny', 0, CASE WHEN n % 3 = 0 THEN '{}' ELSE '{80,95}' END::int[]
FROM bench_projects;
INSERT INTO pg_temp.stage_project_sectors
SELECT id, all_sectors[1 + n % 13], 0 FROM bench_projects
UNION ALL
SELECT id, all_sectors[1 + (n * 7 + 3) % 13], 1 FROM bench_projects
WHERE n % 2 = 0 AND (n * 7 + 3) % 13 <> n % 13;
INSERT INTO pg_temp.stage_project_members SELECT id, 'group', 'grp-' || id FROM bench_projects;
INSERT INTO pg_temp.stage_project_budgets
SELECT b.id, p.id, b.budget FROM bench_projects b, pg_temp.stage_periods p;
INSERT INTO pg_temp.stage_factory_budgets
SELECT b.factory, p.id, sum(b.budget) * 11 / 10 FROM bench_projects b, pg_temp.stage_periods p GROUP BY 1, 2;
SELECT count(*) FROM aif.apply('bench.yaml', sha256('bench'), 'bench');
COMMIT;
EOF
q -F ' ' -c "SELECT (SELECT count(*) FROM aif.factories), (SELECT count(*) FROM aif.projects),
	(SELECT count(*) FROM aif.sectors), (SELECT count(*) FROM aif.periods)" |
	{ read -r f p s n; echo "configuration: $f factories, $p projects, $s sectors, $n periods"; }

# The jobs' shape, one row per project (n = job_id % 200 + 1): clusters, sectors, GPUs per node.
q >/dev/null <<'EOF'
CREATE TABLE bench_shape AS
SELECT p.n, p.id AS project_id, p.factory,
       (SELECT array_agg(c.cluster ORDER BY c.cluster) FROM aif.factory_clusters c WHERE c.factory_id = p.factory) AS clusters,
       (SELECT array_agg(s.sector_id ORDER BY s.position) FROM aif.project_sectors s WHERE s.project_id = p.id) AS sectors
FROM (SELECT n, format('p%s', lpad(n::text, 3, '0')) AS id, (SELECT factory_id FROM aif.projects
	WHERE id = format('p%s', lpad(n::text, 3, '0'))) AS factory FROM generate_series(1, 200) AS n) p;
EOF

# Generation: chronological job ids from 2025-01-01 to 4 days ago, exponential run times (mean
# 4 h, at most 72 h), 4 or 8 GPUs per node (sometimes fewer), 1 to 4 nodes; the last 2000 jobs
# started within the last 48 h and still run.
chunk=500000
closed_jobs=$((jobs - 2000))
flush_log=$(mktemp)
flush_bg() { # fold what is queued, in the background, while the next chunk is inserted
	local t=$(now_ms)
	q -c "SELECT aif.rollup_flush(true)" >/dev/null
	echo $(($(now_ms) - t)) >>"$flush_log"
}
insert_ms=0 flush_pid=
load_start=$(now_ms)
for ((first = 1; first <= closed_jobs; first += chunk)); do
	last=$((first + chunk - 1 < closed_jobs ? first + chunk - 1 : closed_jobs))
	t0=$(now_ms)
	q -c "SELECT setseed(${first}::float / $jobs);
	INSERT INTO aif.usage_intervals (cluster, job_id, node, restart_count, project_id, sector_id, uid,
		user_name, gpus, started_at, ended_at, end_source)
	SELECT j.cluster, j.job_id, j.cluster || '-n' || (j.job_id * 13 % 900 + k), 0, j.project_id,
	       j.sector_id, 10000 + j.job_id % 5000, 'user' || j.job_id % 5000, j.gpus, j.started_at,
	       j.started_at + j.run, 'epilog'
	FROM (SELECT g AS job_id, s.project_id, s.clusters[1 + g % cardinality(s.clusters)] AS cluster,
		     s.sectors[1 + (g / 200) % cardinality(s.sectors)] AS sector_id,
		     CASE WHEN random() < 0.2 THEN 1 + g % 3 WHEN s.factory = 'lumi-aif' THEN 8 ELSE 4 END AS gpus,
		     1 + g % 4 AS nodes,
		     timestamptz '2025-01-01 00:00Z' + (g - 1)::float / $jobs
			* (now() - interval '4 days' - timestamptz '2025-01-01 00:00Z')
			+ random() * interval '1 hour' AS started_at,
		     least(-ln(1 - random()) * 4, 72) * interval '1 hour' AS run
	      FROM generate_series($first, $last) AS g
	      JOIN bench_shape s ON s.n = g % 200 + 1) j
	CROSS JOIN LATERAL generate_series(1, j.nodes) AS k" >/dev/null
	insert_ms=$((insert_ms + $(now_ms) - t0))
	[[ -z $flush_pid ]] || wait "$flush_pid"
	flush_bg &
	flush_pid=$!
	printf '\r  jobs %d/%d' "$last" "$jobs" >&2
done
printf '\n' >&2
t0=$(now_ms)
q -c "INSERT INTO aif.usage_intervals (cluster, job_id, node, restart_count, project_id, sector_id, uid,
	user_name, gpus, started_at)
SELECT s.clusters[1 + g % cardinality(s.clusters)], g,
       s.clusters[1 + g % cardinality(s.clusters)] || '-n' || (g * 13 % 900 + k), 0, s.project_id,
       s.sectors[1], 10000 + g % 5000, 'user' || g % 5000, 4, now() - random() * interval '48 hours'
FROM generate_series($closed_jobs + 1, $jobs) AS g
JOIN bench_shape s ON s.n = g % 200 + 1
CROSS JOIN LATERAL generate_series(1, 1 + g % 4) AS k" >/dev/null
insert_ms=$((insert_ms + $(now_ms) - t0))
wait "$flush_pid"
flush_bg
load_ms=$(($(now_ms) - load_start))
flush_ms=$(awk '{ s += $1 } END { print s }' "$flush_log")
# each flush alone: one that grows with the table, not with its batch, shows here
flush_each=$(awk '{ printf "%s%.1f", (NR > 1 ? " " : ""), $1 / 1000 }' "$flush_log")
rm -f "$flush_log"
t0=$(now_ms)
q -c "VACUUM ANALYZE" >/dev/null
vacuum_ms=$(($(now_ms) - t0))
read -r n_intervals n_open < <(q -F ' ' -c "SELECT count(*), count(*) FILTER (WHERE ended_at IS NULL)
	FROM aif.usage_intervals")
read -r n_daily n_monthly n_period < <(q -F ' ' -c "SELECT (SELECT count(*) FROM aif.usage_daily_rollup),
	(SELECT count(*) FROM aif.usage_monthly_rollup), (SELECT count(*) FROM aif.usage_period_rollup)")
echo "usage: $n_intervals intervals ($n_open open) of $jobs jobs;" \
	"rollup rows: daily $n_daily, monthly $n_monthly, period $n_period"
rate() { awk -v n="$n_intervals" -v ms="$1" 'BEGIN { printf "%.0f", n / (ms / 1000) }'; }
echo "load: $(secs "$load_ms") wall: INSERT with triggers $(secs "$insert_ms")" \
	"($(rate "$insert_ms") intervals/s), rollup_flush $(secs "$flush_ms") ($(rate "$flush_ms") intervals/s)," \
	"overlapped on 2 connections; then VACUUM ANALYZE $(secs "$vacuum_ms")"
echo "rollup_flush per chunk of $chunk jobs, in order (s): $flush_each"
q -F ' ' -c "SELECT pg_size_pretty(pg_total_relation_size('aif.usage_intervals')),
	pg_size_pretty(pg_total_relation_size('aif.usage_daily_rollup')
		       + pg_total_relation_size('aif.usage_monthly_rollup')
		       + pg_total_relation_size('aif.usage_period_rollup'))" |
	{ read -r a b c d; echo "size: usage_intervals $a $b, rollups $c $d"; }

# The queries. Naive = the same results straight from aif.usage_intervals.
budget_fast="SELECT period, factory, project, budget_gpu_hours, used_gpu_hours, remaining_gpu_hours, pct_used,
	state FROM aif_report.budget_status"
budget_naive="WITH per AS (
	SELECT id, starts_on, starts_on::timestamp AT TIME ZONE 'UTC' AS t0, ends_on::timestamp AT TIME ZONE 'UTC' AS t1
	FROM aif.periods
), used AS (
	SELECT per.id AS period_id, i.project_id,
	       sum(i.gpus * extract(epoch FROM least(coalesce(i.ended_at, now()), per.t1) - greatest(i.started_at, per.t0))) / 3600 AS h
	FROM aif.usage_intervals i
	JOIN per ON i.started_at < per.t1 AND coalesce(i.ended_at, now()) > per.t0
	WHERE coalesce(i.ended_at, now()) > i.started_at
	GROUP BY 1, 2
), b AS (
	SELECT fb.period_id, fb.factory_id, NULL::text AS project_id, fb.gpu_hours, f.warn_at,
	       coalesce((SELECT sum(u.h) FROM used u JOIN aif.projects p ON p.id = u.project_id
			 WHERE u.period_id = fb.period_id AND p.factory_id = fb.factory_id), 0) AS h
	FROM aif.factory_budgets fb JOIN aif.factories f ON f.id = fb.factory_id
	UNION ALL
	SELECT pb.period_id, p.factory_id, p.id, pb.gpu_hours, p.warn_at, coalesce(u.h, 0)
	FROM aif.project_budgets pb JOIN aif.projects p ON p.id = pb.project_id
	LEFT JOIN used u ON u.period_id = pb.period_id AND u.project_id = pb.project_id
)
SELECT b.period_id AS period, b.factory_id AS factory, b.project_id AS project, b.gpu_hours AS budget_gpu_hours,
       trim_scale(round(b.h, 6)) AS used_gpu_hours, trim_scale(b.gpu_hours - round(b.h, 6)) AS remaining_gpu_hours,
       round(100 * b.h / b.gpu_hours, 2) AS pct_used,
       CASE WHEN b.h >= b.gpu_hours THEN 'exhausted'
	    WHEN 100 * b.h >= (SELECT min(w) FROM unnest(b.warn_at) w) * b.gpu_hours THEN 'warning' ELSE 'ok' END AS state
FROM b JOIN per ON per.id = b.period_id
ORDER BY per.starts_on, b.period_id, b.factory_id, b.project_id NULLS FIRST"
month_fast="SELECT date_trunc('month', day)::date AS month, sector, sum(gpu_hours) AS gpu_hours
FROM aif_report.usage_daily GROUP BY 1, 2 ORDER BY 1, 2"
month_naive="SELECT date_trunc('month', d.t)::date AS month, i.sector_id AS sector,
       trim_scale(round(sum(i.gpus * extract(epoch FROM least(i.e, d.t + interval '1 day') - greatest(i.s, d.t))) / 3600, 6)) AS gpu_hours
FROM (SELECT u.*, u.started_at AT TIME ZONE 'UTC' AS s, coalesce(u.ended_at, now()) AT TIME ZONE 'UTC' AS e
      FROM aif.usage_intervals u) i
CROSS JOIN LATERAL generate_series(date_trunc('day', i.s), i.e, interval '1 day') AS d(t)
WHERE least(i.e, d.t + interval '1 day') > greatest(i.s, d.t)
GROUP BY 1, 2 ORDER BY 1, 2"
monthly_view="SELECT month, sector, sum(gpu_hours) AS gpu_hours, sum(jobs) AS jobs
FROM aif_report.usage_monthly GROUP BY 1, 2 ORDER BY 1, 2"

best_ms() { # best_ms RUNS SQL: the best wall time of RUNS runs, in ms, as psql's \timing sees it
	{ echo '\timing on'; echo '\o /dev/null'; for ((i = 0; i < $1; i++)); do echo "$2;"; done; } |
		q 2>&1 | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | sort -g | head -n 1
}
report() { # report NAME FAST_MS NAIVE_MS [GOAL_MS]
	awk -v name="$1" -v f="$2" -v n="$3" -v goal="${4:-}" 'BEGIN {
		printf "%s: %.1f ms  naive: %.0f ms  ratio %.0fx", name, f, n, n / f
		if (goal != "") printf "  (goal < %d ms: %s)", goal, f < goal ? "met" : "MISSED"
		printf "\n" }'
}

# Same results? One snapshot and one now() for both sides. budget_status must match exactly;
# the month report sums GPU-hours rounded per usage_daily row (6 decimals), so it may differ
# from the naive total by rounding only.
same=$(q <<EOF
BEGIN ISOLATION LEVEL REPEATABLE READ;
WITH f AS MATERIALIZED ($budget_fast), n AS MATERIALIZED ($budget_naive)
SELECT count(*) FROM ((TABLE f EXCEPT TABLE n) UNION ALL (TABLE n EXCEPT TABLE f)) x;
WITH f AS MATERIALIZED ($month_fast), n AS MATERIALIZED ($month_naive)
SELECT count(*) FROM f FULL JOIN n ON n.month = f.month AND n.sector = f.sector
WHERE abs(coalesce(f.gpu_hours, -1) - coalesce(n.gpu_hours, -2)) > 0.01;
COMMIT;
EOF
)
if [[ $same == $'0\n0' ]]; then
	echo "results: views and naive queries agree (budget_status exactly, month x sector to 0.01 GPU-hour)"
else
	echo "results: MISMATCH between views and naive queries ($(echo $same))"
fi
echo "budget_status: $(q -c "SELECT sum(n) || ' rows; states ' || string_agg(state || ' ' || n, ', ' ORDER BY state)
	FROM (SELECT state, count(*) AS n FROM aif_report.budget_status GROUP BY 1) s")"

fast=$(best_ms 10 "$budget_fast")
naive=$(best_ms 2 "$budget_naive")
report "budget_status" "$fast" "$naive" 50
fast=$(best_ms 5 "$month_fast")
naive=$(best_ms 2 "$month_naive")
report "month x sector (usage_daily)" "$fast" "$naive"
fast=$(best_ms 5 "$monthly_view")
report "month x sector (usage_monthly, distinct jobs)" "$fast" "$naive"
echo "total: $(($(date +%s) - bench_start)) s"
