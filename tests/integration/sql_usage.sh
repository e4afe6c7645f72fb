#!/usr/bin/env bash
# Usage accounting: intervals inserted as aifd will (one crossing UTC midnight, one crossing a
# budget period boundary, multi-node and requeued jobs, one still open) give the exact
# GPU-hours, pct_used and state in aif_report.budget_status and the exact per-day (per-month)
# GPU-hours and distinct jobs in aif_report.usage_daily (usage_monthly), whether the rollups
# are flushed or not; closing keeps the totals exact; a duplicate event is rejected or
# ignored by the key; closed intervals can be neither changed nor deleted; a random workload
# matches a naive computation over the raw intervals at every step.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/sql_common.sh"
load_harness
sql_setup usage "${1:?usage: sql_usage.sh AIF_MIGRATE}"

# The configuration: factory f1 (warn at 80 %, 95 %) with projects p1 (warn at 90 %), p2 (no
# warning) and p3 (no budget); periods q1 and q2 meet at 2025-04-01; cur contains today.
config() { # config Q1_END
	cat <<EOF
BEGIN;
SELECT aif.begin_staging();
INSERT INTO pg_temp.stage_sectors VALUES ('s1'), ('s2');
INSERT INTO pg_temp.stage_periods VALUES ('q1', '2025-01-01', '$1'), ('q2', '2025-04-01', '2025-07-01'),
	('cur', (now() AT TIME ZONE 'UTC')::date - 30, (now() AT TIME ZONE 'UTC')::date + 30);
INSERT INTO pg_temp.stage_factories VALUES ('f1', 'Factory One', 'deny', 0, '{80,95}', false);
INSERT INTO pg_temp.stage_factory_clusters VALUES ('f1', 'c1');
INSERT INTO pg_temp.stage_factory_budgets VALUES ('f1', 'q1', 100), ('f1', 'q2', 1000), ('f1', 'cur', 8);
INSERT INTO pg_temp.stage_projects VALUES ('p1', 'f1', NULL, 'deny', 0, '{90}'),
	('p2', 'f1', NULL, 'deny', 0, '{}'), ('p3', 'f1', NULL, 'deny', 0, '{80,95}');
INSERT INTO pg_temp.stage_project_sectors VALUES ('p1', 's1', 0), ('p1', 's2', 1), ('p2', 's2', 0), ('p3', 's1', 0);
INSERT INTO pg_temp.stage_project_budgets VALUES ('p1', 'q1', 28), ('p1', 'cur', 10), ('p2', 'q1', 48), ('p2', 'q2', 100);
SELECT count(*) FROM aif.apply('usage.yaml', sha256('usage'), 'test');
COMMIT;
EOF
}
config 2025-04-01 | q >/dev/null

status() {
	q -F ' ' -c "SELECT period, factory, coalesce(project, '-'), budget_gpu_hours, used_gpu_hours,
			remaining_gpu_hours, pct_used, state FROM aif_report.budget_status WHERE period <> 'cur'"
}
daily() {
	q -F ' ' -c "SELECT day, cluster, factory, project, sector, gpu_hours, jobs FROM aif_report.usage_daily
			ORDER BY day, cluster, project, sector"
}
monthly() {
	q -F ' ' -c "SELECT month, cluster, factory, project, sector, gpu_hours, jobs FROM aif_report.usage_monthly
			ORDER BY month, cluster, project, sector"
}
verify() { # the rollups against a recomputation from the raw intervals (flushes first)
	assert_eq "" "$(q -c 'SELECT * FROM aif.rollup_verify()')" "rollup_verify ($1)"
}
insert() { # insert CLUSTER JOB NODE RESTART PROJECT SECTOR GPUS START END
	q -c "INSERT INTO aif.usage_intervals (cluster, job_id, node, restart_count, project_id, sector_id,
			uid, user_name, gpus, started_at, ended_at, end_source)
		VALUES ('$1', $2, '$3', $4, '$5', '$6', 1000, 'alice', $7, '$8', '$9', 'epilog')"
}

# Closed intervals, in one transaction as aifd's group commit would: job 1 on two nodes, job 2
# across midnight, job 3 across the q1/q2 boundary, job 5 of project p3.
q <<'EOF'
INSERT INTO aif.usage_intervals (cluster, job_id, node, restart_count, project_id, sector_id, uid,
	user_name, gpus, started_at, ended_at, end_source) VALUES
	('c1', 1, 'n1', 0, 'p1', 's1', 1000, 'alice', 4, '2025-01-10 10:00Z', '2025-01-10 12:00Z', 'epilog'),
	('c1', 1, 'n2', 0, 'p1', 's1', 1000, 'alice', 4, '2025-01-10 10:00Z', '2025-01-10 12:00Z', 'epilog'),
	('c1', 2, 'n1', 0, 'p1', 's1', 1000, 'alice', 2, '2025-01-11 22:00Z', '2025-01-12 03:00Z', 'epilog'),
	('c1', 3, 'n1', 0, 'p2', 's2', 1001, 'bob', 8, '2025-03-31 18:00Z', '2025-04-01 06:00Z', 'reconciled-slurm'),
	('c1', 5, 'n1', 0, 'p3', 's1', 1002, 'carol', 1, '2025-02-01 00:00Z', '2025-02-01 10:00Z', 'epilog');
EOF
expected_status="q1 f1 - 100 84 16 84.00 warning
q1 f1 p1 28 26 2 92.86 warning
q1 f1 p2 48 48 0 100.00 exhausted
q2 f1 - 1000 48 952 4.80 ok
q2 f1 p2 100 48 52 48.00 ok"
expected_daily="2025-01-10 c1 f1 p1 s1 16 1
2025-01-11 c1 f1 p1 s1 4 1
2025-01-12 c1 f1 p1 s1 6 1
2025-02-01 c1 f1 p3 s1 10 1
2025-03-31 c1 f1 p2 s2 48 1
2025-04-01 c1 f1 p2 s2 48 1"
expected_monthly="2025-01-01 c1 f1 p1 s1 26 2
2025-02-01 c1 f1 p3 s1 10 1
2025-03-01 c1 f1 p2 s2 48 1
2025-04-01 c1 f1 p2 s2 48 1"
# Not flushed yet: everything comes from the queue.
assert_eq 5 "$(q -c 'SELECT count(*) FROM aif.usage_queue')" "queued intervals"
assert_eq "$expected_status" "$(status)" "budget_status, unflushed"
assert_eq "$expected_daily" "$(daily)" "usage_daily, unflushed"
assert_eq "$expected_monthly" "$(monthly)" "usage_monthly, unflushed"
# Flushed: everything comes from the rollups.
assert_eq 5 "$(q -c 'SELECT aif.rollup_flush()')" "intervals folded by the flush"
assert_eq 0 "$(q -c 'SELECT count(*) FROM aif.usage_queue')" "queue after the flush"
assert_eq "$expected_status" "$(status)" "budget_status, flushed"
assert_eq "$expected_daily" "$(daily)" "usage_daily, flushed"
assert_eq "$expected_monthly" "$(monthly)" "usage_monthly, flushed"
verify "first batch"

# More of job 1: a third node on a day the job already counts for, and a requeue three days
# later. Jobs per day must stay distinct, whether the earlier intervals are folded or not.
insert c1 1 n3 0 p1 s1 2 '2025-01-10 11:00Z' '2025-01-10 11:30Z'
insert c1 1 n1 1 p1 s1 1 '2025-01-13 00:00Z' '2025-01-13 05:00Z'
expected_daily="2025-01-10 c1 f1 p1 s1 17 1
2025-01-11 c1 f1 p1 s1 4 1
2025-01-12 c1 f1 p1 s1 6 1
2025-01-13 c1 f1 p1 s1 5 1
2025-02-01 c1 f1 p3 s1 10 1
2025-03-31 c1 f1 p2 s2 48 1
2025-04-01 c1 f1 p2 s2 48 1"
expected_monthly="2025-01-01 c1 f1 p1 s1 32 2
2025-02-01 c1 f1 p3 s1 10 1
2025-03-01 c1 f1 p2 s2 48 1
2025-04-01 c1 f1 p2 s2 48 1"
expected_status="q1 f1 - 100 90 10 90.00 warning
q1 f1 p1 28 32 -4 114.29 exhausted
q1 f1 p2 48 48 0 100.00 exhausted
q2 f1 - 1000 48 952 4.80 ok
q2 f1 p2 100 48 52 48.00 ok"
assert_eq "$expected_daily" "$(daily)" "usage_daily, second batch unflushed"
assert_eq "$expected_monthly" "$(monthly)" "usage_monthly, second batch unflushed"
assert_eq "$expected_status" "$(status)" "budget_status, second batch unflushed"
assert_eq 2 "$(q -c 'SELECT aif.rollup_flush()')" "second flush"
assert_eq "$expected_daily" "$(daily)" "usage_daily, second batch flushed"
assert_eq "$expected_monthly" "$(monthly)" "usage_monthly, second batch flushed"
assert_eq "$expected_status" "$(status)" "budget_status, second batch flushed"
verify "second batch"

# The same event twice: the key rejects it, or ignores it with ON CONFLICT DO NOTHING.
assert_fails 'duplicate key value violates unique constraint "usage_intervals_pkey"' "duplicate interval" \
	insert c1 1 n1 0 p1 s1 4 '2025-01-10 10:00Z' '2025-01-10 12:00Z'
assert_eq "INSERT 0 0" "$(psql -X -v ON_ERROR_STOP=1 -c "INSERT INTO aif.usage_intervals
	(cluster, job_id, node, restart_count, project_id, sector_id, gpus, started_at, ended_at)
	VALUES ('c1', 1, 'n1', 0, 'p1', 's1', 4, '2025-01-10 10:00Z', '2025-01-10 12:00Z')
	ON CONFLICT DO NOTHING")" "duplicate interval with ON CONFLICT DO NOTHING"
assert_eq "$expected_status" "$(status)" "budget_status after duplicates"

# Projects and sectors must exist.
assert_fails 'usage refers to an unknown project "nope"' "usage of an unknown project" \
	insert c1 99 n1 0 nope s1 1 '2025-01-10 10:00Z' '2025-01-10 12:00Z'
assert_fails 'usage refers to an unknown sector "nope"' "usage of an unknown sector" \
	insert c1 99 n1 0 p1 nope 1 '2025-01-10 10:00Z' '2025-01-10 12:00Z'

# Closed intervals are immutable in what the rollups hold, and nothing is deleted.
assert_fails 'usage interval \(cluster c1, job 1, node n1, restart 0, run 0\) is closed and cannot be changed' \
	"correcting ended_at" q -c "UPDATE aif.usage_intervals SET ended_at = ended_at + interval '1 hour'
		WHERE cluster = 'c1' AND job_id = 1 AND node = 'n1' AND restart_count = 0"
assert_fails 'is closed and cannot be changed' "changing the gpus of a closed interval" \
	q -c "UPDATE aif.usage_intervals SET gpus = 1 WHERE job_id = 2"
assert_fails 'the key of a usage interval cannot be changed' "changing a key" \
	q -c "UPDATE aif.usage_intervals SET node = 'n9' WHERE job_id = 2"
assert_fails 'usage intervals cannot be deleted' "deleting an interval" \
	q -c "DELETE FROM aif.usage_intervals WHERE job_id = 2"
q -c "UPDATE aif.usage_intervals SET user_name = NULL, uid = NULL WHERE job_id = 5" # pseudonymization
assert_eq "$expected_status" "$(status)" "budget_status after refused changes"

# An open interval: 4 GPUs since two hours ago, in project p1 (budget 10 in cur, warns at 90 %)
# of f1 (budget 8 in cur). Inside one transaction now() stands still: exactly 8 GPU-hours.
open_checks=$(q <<'EOF'
BEGIN;
INSERT INTO aif.usage_intervals (cluster, job_id, node, restart_count, project_id, sector_id, uid,
	user_name, gpus, started_at) VALUES ('c1', 4, 'n1', 0, 'p1', 's2', 1000, 'alice', 4, now() - interval '2 hours');
SELECT string_agg(concat_ws(' ', coalesce(project, '-'), budget_gpu_hours, used_gpu_hours,
	remaining_gpu_hours, pct_used, state), ',' ORDER BY project NULLS FIRST)
FROM aif_report.budget_status WHERE period = 'cur';
-- Over UTC midnight (or a month's end) the interval is two rows, each rounded to 6 decimals.
SELECT trim_scale(round(sum(gpu_hours), 4)), min(jobs), max(jobs) FROM aif_report.usage_daily WHERE project = 'p1' AND sector = 's2';
SELECT trim_scale(round(sum(gpu_hours), 4)), min(jobs), max(jobs) FROM aif_report.usage_monthly WHERE project = 'p1' AND sector = 's2';
SELECT count(*) = count(DISTINCT day) AND count(*) = 1 + ((now() AT TIME ZONE 'UTC')::date
	<> ((now() - interval '2 hours') AT TIME ZONE 'UTC')::date)::int
FROM aif_report.usage_daily WHERE project = 'p1' AND sector = 's2';
COMMIT;
EOF
)
assert_eq "- 8 8 0 100.00 exhausted,p1 10 8 2 80.00 ok
8|1|1
8|1|1
t" "$open_checks" "budget_status, usage_daily and usage_monthly with an open interval"
# Time goes on: the open interval grows.
used=$(q -c "SELECT used_gpu_hours FROM aif_report.budget_status WHERE period = 'cur' AND project = 'p1'")
assert_eq t "$(q -c "SELECT $used > 8 AND $used < 8.5")" "open interval counts up to now ($used)"
# aifd closes it (as the epilog would): exactly 2 hours, 8 GPU-hours, queued then folded.
assert_eq "UPDATE 1" "$(psql -X -v ON_ERROR_STOP=1 -c "UPDATE aif.usage_intervals
	SET ended_at = started_at + interval '2 hours', end_source = 'epilog'
	WHERE cluster = 'c1' AND job_id = 4 AND node = 'n1' AND restart_count = 0 AND ended_at IS NULL")" \
	"closing the open interval"
assert_eq "UPDATE 0" "$(psql -X -v ON_ERROR_STOP=1 -c "UPDATE aif.usage_intervals
	SET ended_at = now(), end_source = 'epilog'
	WHERE cluster = 'c1' AND job_id = 4 AND node = 'n1' AND restart_count = 0 AND ended_at IS NULL")" \
	"closing it again"
cur_status() {
	q -F ' ' -c "SELECT coalesce(project, '-'), used_gpu_hours, pct_used, state
		FROM aif_report.budget_status WHERE period = 'cur'"
}
assert_eq "- 8 100.00 exhausted
p1 8 80.00 ok" "$(cur_status)" "budget_status after closing, unflushed"
assert_eq "8|1" "$(q -c "SELECT trim_scale(round(sum(gpu_hours), 4)), max(jobs) FROM aif_report.usage_daily WHERE project = 'p1' AND sector = 's2'")" \
	"usage_daily after closing, unflushed"
assert_eq 1 "$(q -c 'SELECT aif.rollup_flush()')" "flush of the closed interval"
assert_eq "- 8 100.00 exhausted
p1 8 80.00 ok" "$(cur_status)" "budget_status after closing, flushed"
assert_eq "8|1" "$(q -c "SELECT trim_scale(round(sum(gpu_hours), 4)), max(jobs) FROM aif_report.usage_daily WHERE project = 'p1' AND sector = 's2'")" \
	"usage_daily after closing, flushed"
assert_eq "$expected_status" "$(status)" "other periods unchanged"
verify "after closing"

# Moving a period's end recomputes its rollup: q1 now ends before 2025-03-31, so job 3's
# first 48 GPU-hours leave it.
config 2025-03-31 | q >/dev/null
assert_eq "q1 f1 - 100 42 58 42.00 ok
q1 f1 p1 28 32 -4 114.29 exhausted
q1 f1 p2 48 0 48 0.00 ok" "$(status | grep '^q1')" "budget_status after moving q1's end"
verify "after moving a period"

# A random workload (multi-node jobs, requeues, multi-day and zero-length intervals, open ones
# closed later), checked against a naive computation over the raw intervals at every step.
naive_check() { # same snapshot and now() for both sides
	q <<'EOF'
BEGIN ISOLATION LEVEL REPEATABLE READ;
CREATE TEMP VIEW naive_slices AS
SELECT i.cluster, i.job_id, p.factory_id AS factory, i.project_id AS project, i.sector_id AS sector,
       d.t::date AS day,
       i.gpus * extract(epoch FROM least(i.e, d.t + interval '1 day') - greatest(i.s, d.t)) AS gpu_s,
       coalesce(i.charged_gpus, i.gpus)
	* extract(epoch FROM least(i.e, d.t + interval '1 day') - greatest(i.s, d.t)) AS charged_s
FROM (SELECT u.*, u.started_at AT TIME ZONE 'UTC' AS s,
	     coalesce(u.ended_at, now()) AT TIME ZONE 'UTC' AS e FROM aif.usage_intervals u) i
JOIN aif.projects p ON p.id = i.project_id,
     generate_series(date_trunc('day', i.s), i.e, interval '1 day') AS d(t)
WHERE least(i.e, d.t + interval '1 day') > greatest(i.s, d.t);
CREATE TEMP VIEW naive_daily AS
SELECT day, cluster, factory, project, sector, trim_scale(round(sum(gpu_s) / 3600, 6)) AS gpu_hours,
       count(DISTINCT job_id) AS jobs, trim_scale(round(sum(charged_s) / 3600, 6)) AS charged_hours
FROM naive_slices GROUP BY 1, 2, 3, 4, 5;
CREATE TEMP VIEW naive_monthly AS
SELECT date_trunc('month', day)::date AS month, cluster, factory, project, sector,
       trim_scale(round(sum(gpu_s) / 3600, 6)) AS gpu_hours, count(DISTINCT job_id) AS jobs,
       trim_scale(round(sum(charged_s) / 3600, 6)) AS charged_hours
FROM naive_slices GROUP BY 1, 2, 3, 4, 5;
SELECT 'daily', count(*) FROM ((SELECT * FROM aif_report.usage_daily EXCEPT SELECT * FROM naive_daily)
	UNION ALL (SELECT * FROM naive_daily EXCEPT SELECT * FROM aif_report.usage_daily)) x;
SELECT 'monthly', count(*) FROM ((SELECT * FROM aif_report.usage_monthly EXCEPT SELECT * FROM naive_monthly)
	UNION ALL (SELECT * FROM naive_monthly EXCEPT SELECT * FROM aif_report.usage_monthly)) x;
SELECT 'budget', count(*) FROM aif_report.budget_status b
JOIN aif.periods per ON per.id = b.period
WHERE b.used_gpu_hours <> (
	SELECT coalesce(trim_scale(round(sum(i.gpus * extract(epoch FROM
		least(coalesce(i.ended_at, now()), per.ends_on::timestamp AT TIME ZONE 'UTC')
		- greatest(i.started_at, per.starts_on::timestamp AT TIME ZONE 'UTC'))) / 3600, 6)), 0)
	FROM aif.usage_intervals i JOIN aif.projects p ON p.id = i.project_id
	WHERE (i.project_id = b.project OR (b.project IS NULL AND p.factory_id = b.factory))
	  AND i.started_at < per.ends_on::timestamp AT TIME ZONE 'UTC'
	  AND coalesce(i.ended_at, now()) > per.starts_on::timestamp AT TIME ZONE 'UTC'
	  AND coalesce(i.ended_at, now()) > i.started_at);
COMMIT;
EOF
}
random_batch() { # random_batch SEED FIRST_JOB: 300 jobs of 1-3 nodes, about 1 in 6 running (since < 3.4 days)
	q <<EOF >/dev/null
SELECT setseed($1);
INSERT INTO aif.usage_intervals (cluster, job_id, node, restart_count, project_id, sector_id, uid,
	user_name, gpus, started_at, ended_at, end_source)
SELECT j.cluster, j.job_id, 'n' || n, j.restart, j.project, j.sector, 1000, 'u', (random() * 8)::int,
       j.start + n * interval '7 seconds',
       CASE WHEN j.open THEN NULL ELSE j.start + n * interval '7 seconds' + j.len END,
       CASE WHEN j.open THEN NULL ELSE 'epilog' END
FROM (SELECT (ARRAY['c1', 'c2'])[1 + (random() >= 0.5)::int] AS cluster,
	     $2 + g / 2 AS job_id, g % 2 AS restart,
	     (ARRAY['p1', 'p2', 'p3'])[1 + floor(random() * 3)::int] AS project,
	     (ARRAY['s1', 's2'])[1 + (random() >= 0.5)::int] AS sector_pick,
	     random() * interval '200 days' AS start_offset,
	     CASE WHEN random() < 0.05 THEN interval '0' ELSE random() * interval '3 days' END AS len,
	     1 + floor(random() * 3)::int AS nodes, random() < 0.17 AS open
      FROM generate_series(0, 299) AS g) j00
CROSS JOIN LATERAL (SELECT j00.*, CASE WHEN j00.open THEN now() - j00.start_offset / 60
				  ELSE timestamptz '2025-01-01 00:00Z' + j00.start_offset END AS start) j0
CROSS JOIN LATERAL (SELECT j0.*, CASE j0.project WHEN 'p1' THEN j0.sector_pick WHEN 'p2' THEN 's2'
				 ELSE 's1' END AS sector) j
CROSS JOIN LATERAL generate_series(1, j.nodes) AS n
ON CONFLICT DO NOTHING;
EOF
}
assert_eq "daily|0
monthly|0
budget|0" "$(naive_check)" "views against the naive computation, before the random workload"
random_batch 0.25 1000
assert_eq "daily|0
monthly|0
budget|0" "$(naive_check)" "random workload, unflushed"
q -c 'SELECT aif.rollup_flush()' >/dev/null
random_batch 0.5 2000
assert_eq "daily|0
monthly|0
budget|0" "$(naive_check)" "random workload, partly flushed"
# Close the open ones in two statements with a flush in between, as aifd and its timer would.
q -c "UPDATE aif.usage_intervals SET ended_at = greatest(started_at, now() - interval '1 hour'),
	end_source = 'reconciled-slurm' WHERE ended_at IS NULL AND job_id % 2 = 0"
q -c 'SELECT aif.rollup_flush()' >/dev/null
q -c "UPDATE aif.usage_intervals SET ended_at = started_at + interval '90 minutes',
	end_source = 'reconciled-last-seen' WHERE ended_at IS NULL AND started_at < now() - interval '2 hours'"
assert_eq "daily|0
monthly|0
budget|0" "$(naive_check)" "random workload, closed, unflushed"
verify "random workload"
assert_eq "daily|0
monthly|0
budget|0" "$(naive_check)" "random workload, flushed"
# A rebuild from scratch gives the same rollups.
before=$(q -c "SELECT md5(string_agg(concat_ws(' ', day, cluster, project_id, sector_id, gpu_us, jobs), ',' ORDER BY day, cluster, project_id, sector_id)) FROM aif.usage_daily_rollup")
q -c 'SELECT aif.rollup_rebuild()' >/dev/null
assert_eq "$before" "$(q -c "SELECT md5(string_agg(concat_ws(' ', day, cluster, project_id, sector_id, gpu_us, jobs), ',' ORDER BY day, cluster, project_id, sector_id)) FROM aif.usage_daily_rollup")" \
	"daily rollup after aif.rollup_rebuild()"
verify "after rebuild"

# A reused job id: runs 0 and 1 of one key (010). One statement may change both (the closed one
# only where the rollups ignore it); at most one run of a key is open.
q -c "INSERT INTO aif.usage_intervals (cluster, job_id, node, restart_count, run, project_id, sector_id,
		uid, user_name, gpus, started_at, ended_at, end_source)
	VALUES ('c1', 987654, 'n1', 0, 0, 'p1', 's1', 1000, 'alice', 2, now() - interval '3 hours',
		now() - interval '2 hours', 'epilog'),
	       ('c1', 987654, 'n1', 0, 1, 'p1', 's1', 1000, 'alice', 1, now() - interval '1 hour', NULL, NULL)" >/dev/null
assert_eq "UPDATE 2" "$(psql -X -v ON_ERROR_STOP=1 -c "UPDATE aif.usage_intervals SET user_name = 'alice2',
	gpus = CASE WHEN run = 1 THEN 3 ELSE gpus END WHERE job_id = 987654")" "changing two runs of a key in one statement"
assert_fails 'duplicate key value violates unique constraint "usage_intervals_open_run"' "a second open run" \
	q -c "INSERT INTO aif.usage_intervals (cluster, job_id, node, restart_count, run, project_id, sector_id,
		gpus, started_at) VALUES ('c1', 987654, 'n1', 0, 2, 'p1', 's1', 1, now())"
q -c "UPDATE aif.usage_intervals SET ended_at = now(), end_source = 'epilog' WHERE job_id = 987654 AND ended_at IS NULL" >/dev/null
verify "two runs of a reused job id"
assert_eq "0|2|alice2 1|3|alice2" "$(q -c "SELECT string_agg(concat_ws('|', run, gpus, user_name), ' ' ORDER BY run)
	FROM aif.usage_intervals WHERE job_id = 987654 AND ended_at IS NOT NULL")" "both runs closed"

# A batch of 16 intervals or more per page of usage (about a third of its rows), and of at least
# 10,000 intervals (a backlog, a rebuild), finds its jobs' intervals folded before with one scan
# of all usage, hashed; any other batch probes the index per job, never a scan. Both count each
# job once per day and month. 6000 jobs of 3 nodes across midnight: node 1's intervals closed
# and folded first (a small batch), then the other two nodes' closed (12,000 intervals: a bulk
# batch).
flush_scans() { # flush_scans: intervals folded, sequential scans of aif.usage_intervals doing so, enable_nestloop after
	q -F ' ' -c "BEGIN" -c "SELECT aif.rollup_flush(true), pg_stat_get_xact_numscans('aif.usage_intervals'::regclass)" \
		-c "SHOW enable_nestloop" -c "COMMIT" | paste -sd ' '
}
q -c "INSERT INTO aif.usage_intervals (cluster, job_id, node, restart_count, project_id, sector_id, uid,
	user_name, gpus, started_at, ended_at, end_source)
SELECT 'c3', 500000 + g, 'n' || n, 0, (ARRAY['p1', 'p2', 'p3'])[1 + g % 3], CASE WHEN g % 3 = 1 THEN 's2' ELSE 's1' END,
       1000, 'u', 1 + n, timestamptz '2025-05-31 20:00Z' + (g % 97) * interval '1 minute',
       CASE WHEN n = 1 THEN timestamptz '2025-05-31 23:00Z' + (g % 89) * interval '1 minute' END,
       CASE WHEN n = 1 THEN 'epilog' END
FROM generate_series(1, 6000) AS g, generate_series(1, 3) AS n" >/dev/null
assert_eq "6000 0 on" "$(flush_scans)" "a small batch: probes, no scan of all usage"
q -c "UPDATE aif.usage_intervals SET ended_at = started_at + (job_id % 7 + 5) * interval '1 hour',
	end_source = 'epilog' WHERE cluster = 'c3' AND ended_at IS NULL" >/dev/null
assert_eq "12000 1 on" "$(flush_scans)" "a bulk batch: one scan of all usage, nested loops allowed again after"
assert_eq "daily|0
monthly|0
budget|0" "$(naive_check)" "after a bulk batch"
verify "after a bulk batch"
assert_eq "6000 6000" "$(q -F ' ' -c "SELECT sum(jobs) FILTER (WHERE day = '2025-06-01'), sum(jobs) FILTER (WHERE month = '2025-06-01')
	FROM (SELECT day, NULL::date AS month, jobs FROM aif.usage_daily_rollup WHERE cluster = 'c3'
	      UNION ALL SELECT NULL, month, jobs FROM aif.usage_monthly_rollup WHERE cluster = 'c3') r")" \
	"each job counted once on the day and in the month its later nodes were folded"
# 10,000 intervals at 4 to 16 per page of usage are not a bulk batch either: there the index
# probes cost less than the scan (docs/database.md, "Plan stability").
q -c "INSERT INTO aif.usage_intervals (cluster, job_id, node, restart_count, project_id, sector_id, uid,
	user_name, gpus, started_at, ended_at, end_source)
SELECT 'c4', g, 'n1', 0, 'p1', 's1', 1000, 'u', 1, timestamptz '2025-05-01 00:00Z' + g * interval '1 second',
       timestamptz '2025-05-01 01:00Z' + g * interval '1 second', 'epilog'
FROM generate_series(1, 40000) AS g" -c "SELECT aif.rollup_flush(true)" >/dev/null
q -c "INSERT INTO aif.usage_intervals (cluster, job_id, node, restart_count, project_id, sector_id, uid,
	user_name, gpus, started_at, ended_at, end_source)
SELECT 'c4', 40000 + g, 'n1', 0, 'p1', 's1', 1000, 'u', 1, timestamptz '2025-05-03 00:00Z',
       timestamptz '2025-05-03 01:00Z', 'epilog'
FROM generate_series(1, 10000) AS g" >/dev/null
assert_eq "t" "$(q -c "SELECT 10000 BETWEEN 5 * p AND 15 * p
	FROM (SELECT pg_relation_size('aif.usage_intervals') / current_setting('block_size')::bigint AS p) s")" \
	"the test's premise: 10,000 intervals are 5 to 15 per page of usage"
assert_eq "10000 0 on" "$(flush_scans)" "10,000 intervals at 5 to 15 per page of usage: probes"

# A batch of starts as aifd records them probes each key of the primary key twice: for the
# interval's latest run and for the insert's conflict. A start never looks for the job's earlier
# intervals, which only an end without a start needs (NULL AND ... went on to probe them).
starts_sql() { # starts_sql N CLUSTER [end|last-end|epilog]: aif.record_usage() of N starts (jobs
	# 1..N on n1), as aifd sends them; with "end", of N final ends instead; "last-end": job N's
	# an end; "epilog": N ends not final (as the epilogs send them)
	local is_end="array_fill(false, ARRAY[$1])" end="array_fill(NULL::bigint, ARRAY[$1])"
	local now="extract(epoch FROM now())::bigint" final
	case ${3:-} in
	end | epilog) is_end="array_fill(true, ARRAY[$1])" end="array_fill($now, ARRAY[$1])" ;;
	last-end) is_end="array_fill(false, ARRAY[$1 - 1]) || true"
		end="array_fill(NULL::bigint, ARRAY[$1 - 1]) || $now" ;;
	esac
	final=$is_end
	[[ ${3:-} != epilog ]] || final="array_fill(false, ARRAY[$1])"
	echo "SELECT aif.record_usage($is_end,
	array_fill('$2'::text, ARRAY[$1]), (SELECT array_agg(g::bigint) FROM generate_series(1, $1) g),
	array_fill('n1'::text, ARRAY[$1]), array_fill(0::bigint, ARRAY[$1]), array_fill('p1'::text, ARRAY[$1]),
	array_fill('s1'::text, ARRAY[$1]), array_fill(1000::bigint, ARRAY[$1]), array_fill('alice'::text, ARRAY[$1]),
	array_fill(1::bigint, ARRAY[$1]), array_fill($now - 60, ARRAY[$1]),
	$end, array_fill(false, ARRAY[$1]), $final,
	array_fill(NULL::text, ARRAY[$1]), interval '300 seconds')"
}
assert_eq "400" "$(q -c "BEGIN" -c "$(starts_sql 200 c5)" \
	-c "SELECT pg_stat_get_xact_numscans('aif.usage_intervals_pkey'::regclass)" -c "ROLLBACK" | sed -n 2p)" \
	"200 starts: two probes of the primary key each"

# A prolog's start and an epilog's end each run only the statement of their kind
# (docs/database.md): the starts a plain INSERT, whose UPDATE trigger is not called; the ends,
# not final, nothing on aif.usage_intervals, whose triggers are not called.
trigger_calls() { # trigger_calls N KIND: the calls of usage_intervals' INSERT and UPDATE
	# triggers, then the intervals and inbox rows stored (rolled back)
	q -c "SET track_functions = 'all'" -c "BEGIN" -c "$(starts_sql "$1" c6 "${2:-}")" \
		-c "SELECT concat_ws(' ',
		 coalesce(pg_stat_get_xact_function_calls('aif.usage_intervals_inserted'::regproc), 0),
		 coalesce(pg_stat_get_xact_function_calls('aif.usage_intervals_updated'::regproc), 0),
		 (SELECT count(*) FROM aif.usage_intervals WHERE cluster = 'c6'),
		 (SELECT count(*) FROM aif.usage_end_inbox WHERE cluster = 'c6'))" \
		-c "ROLLBACK" | sed -n 2p
}
assert_eq "1 0 3 0" "$(trigger_calls 3)" "3 starts: the INSERT trigger only, 3 intervals, no inbox row"
assert_eq "0 0 0 3" "$(trigger_calls 3 epilog)" "3 ends not final: no trigger, no interval, 3 inbox rows"

# A group of one kind with a record that has no project to charge is stored by the general
# statement alone, as if there were no statement of its kind: a start and an end of job 1
# with none (no-project) beside jobs 1-3's of p1 keep an unattributed row of their own. The
# inbox rows are the same either way.
group_sql() { # group_sql CLUSTER start|end [unattributed]: jobs 1-3 of p1, and job 1 with no project
	local n=3 ev=false st=1700000000 en=NULL why="NULL, NULL, NULL" proj="'p1', 'p1', 'p1'" sec="'s1', 's1', 's1'"
	[[ $2 == start ]] || { ev=true st=NULL en=1700000600; }
	[[ -z ${3:-} ]] || { n=4 why="$why, 'no-project'" proj="$proj, NULL" sec="$sec, NULL"; }
	echo "SELECT aif.record_usage(array_fill($ev, ARRAY[$n]), array_fill('$1'::text, ARRAY[$n]),
	(ARRAY[1, 2, 3, 1]::bigint[])[1:$n], array_fill('n1'::text, ARRAY[$n]), array_fill(0::bigint, ARRAY[$n]),
	ARRAY[$proj]::text[], ARRAY[$sec]::text[], array_fill(1000::bigint, ARRAY[$n]),
	array_fill('alice'::text, ARRAY[$n]), array_fill(1::bigint, ARRAY[$n]), array_fill($st::bigint, ARRAY[$n]),
	array_fill($en::bigint, ARRAY[$n]), array_fill(false, ARRAY[$n]), array_fill(false, ARRAY[$n]),
	ARRAY[$why]::text[], interval '300 seconds')"
}
stored() { # stored CLUSTER: its intervals, inbox rows and unattributed rows
	q -c "SELECT concat_ws(' / ',
	 (SELECT string_agg(concat_ws(',', job_id, project_id, started_at, ended_at), ' ' ORDER BY job_id)
	  FROM aif.usage_intervals WHERE cluster = '$1'),
	 (SELECT string_agg(concat_ws(',', job_id, project_id, uid, gpus, started_at, ended_at), ' ' ORDER BY job_id)
	  FROM aif.usage_end_inbox WHERE cluster = '$1'),
	 (SELECT string_agg(concat_ws(',', job_id, reason, started_at, ended_at), ' ' ORDER BY job_id)
	  FROM aif.unattributed_intervals WHERE cluster = '$1'))"
}
for kind in start end; do
	q -c "$(group_sql "c8$kind" "$kind")" -c "$(group_sql "c9$kind" "$kind" unattributed)" >/dev/null
done
t0=$(q -c "SELECT to_timestamp(1700000000)") t1=$(q -c "SELECT to_timestamp(1700000600)")
assert_eq "1,p1,$t0 2,p1,$t0 3,p1,$t0" "$(stored c8start)" "3 starts of p1"
assert_eq "1,p1,$t0 2,p1,$t0 3,p1,$t0 / 1,no-project,$t0" "$(stored c9start)" \
	"3 starts of p1 and one without a project: the general statement's"
assert_eq "1,p1,1000,1,$t1 2,p1,1000,1,$t1 3,p1,1000,1,$t1" "$(stored c8end)" "3 ends of p1, not final"
assert_eq "1,p1,1000,1,$t1 2,p1,1000,1,$t1 3,p1,1000,1,$t1 / 1,no-project,$t1,$t1" "$(stored c9end)" \
	"3 ends of p1, not final, and one without a project: the general statement's"

# record_usage() picks its plan by the group. A record alone runs the generic plan, planned
# once (PostgreSQL planned it anew at every call: most of a start's time), which guesses 10
# records per array; the plan's estimate shows which plan ran (auto_explain).
plan_rows() { # plan_rows N [end|last-end]: the estimated rows of record_usage()'s unnest (starts_sql)
	q -c "LOAD 'auto_explain'" -c "SET auto_explain.log_min_duration = 0" \
		-c "SET auto_explain.log_nested_statements = on" -c "SET client_min_messages = log" \
		-c "BEGIN" -c "$(starts_sql "$1" c7 "${2:-}")" -c "ROLLBACK" 2>&1 >/dev/null |
		sed -n '/Query Text: WITH r/,$p' | sed -n 's/.*Function Scan on [a-z_0-9]* *(cost=[^ ]* rows=\([0-9]*\) .*/\1/p' |
		head -1
}
assert_eq "10" "$(plan_rows 1)" "a group of one record: the generic plan"
assert_eq "10" "$(plan_rows 1 end)" "a group of one end: the generic plan"
# A larger group with ends is planned for its size: the generic plan joins a settle round of
# thousands of ends to the inbox in nested loops (75 s for 20,000 ends, docs/database.md).
assert_eq "40" "$(plan_rows 40 end)" "a group of 40 ends: a plan made for them"
assert_eq "40" "$(plan_rows 40 last-end)" "39 starts and an end: a plan made for them"
# Starts never meet the inbox, and the unattributed rows only by index probes: the generic
# plan, whatever their number.
assert_eq "10" "$(plan_rows 40)" "a group of 40 starts: the generic plan"

# budget_state() compares whole microseconds with a budget's exact share (budget_share_us()),
# aifd with the thresholds rounded up to whole microseconds (budget_thresholds()): the same
# state at each threshold and one microsecond below, also where a threshold has a fraction
# (444.44412 and 31.111088 microseconds; 1.000000001 GPU-hours) or is capped at the largest
# bigint (3 billion GPU-hours).
thresholds_sql="WITH b(h, w) AS (VALUES (0.0000001234567, '{7}'::int[]), (1.000000001, '{33}'),
		(123.456789012345, '{1,2}'), (3000000000, '{80}'), (2562047788.015216, '{99}')),
	t AS (SELECT h, w, (aif_report.budget_thresholds(h, w)).* FROM b)
	SELECT h, w, n, CASE WHEN n >= exhausted_us THEN 'exhausted' WHEN n >= warn_us[1] THEN 'warning'
			     ELSE 'ok' END AS aifd
	FROM t, unnest(ARRAY[warn_us[1] - 1, warn_us[1], exhausted_us - 1, exhausted_us]) WITH ORDINALITY AS u(n, i)
	ORDER BY h, i"
assert_eq "$(q -c "SELECT string_agg(aifd, ' ') FROM ($thresholds_sql) x")" \
	"$(q -c "SELECT string_agg(aif_report.budget_state(n, h, w), ' ') FROM ($thresholds_sql) x")" \
	"budget_state() and aifd's thresholds at each threshold and a microsecond below"
assert_eq "ok warning warning exhausted" "$(q -c "SELECT string_agg(aif_report.budget_state(n, h, w), ' ')
	FROM ($thresholds_sql) x WHERE h = 0.0000001234567")" "budget_state() where thresholds have a fraction"

echo "sql usage: ok"
