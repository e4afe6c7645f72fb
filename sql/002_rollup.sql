-- 002_rollup: the usage rollups behind the funder views, and what keeps them exact.
--
-- Aggregating raw intervals at query time does not scale (10 million rows), so closed
-- intervals are folded into three rollups:
--   aif.usage_daily_rollup    (day, cluster, project, sector) -> gpu_us, jobs
--   aif.usage_monthly_rollup  (month, cluster, project, sector) -> gpu_us, jobs
--   aif.usage_period_rollup   (period, project) -> gpu_us
-- gpu_us is GPU-microseconds (bigint, exact: timestamps have microsecond resolution). A closed
-- interval contributes gpus * overlap to every UTC day (month, period) it overlaps by a
-- positive duration; jobs counts the distinct (cluster, job_id) with such an overlap.
--
-- Writers never touch the rollups (hot rows would serialize aifd instances and deadlock
-- batched transactions). Statement-level triggers only append newly closed intervals to
-- aif.usage_queue (a copy of what the rollups need: no lock, no conflict, no index);
-- aif.rollup_flush() (one flusher at a time, advisory lock) folds the queue into the rollups in
-- one statement. Readers add what is not folded yet: queued intervals and open ones (up to
-- now()), see aif.usage_pending. So every report is exact whenever it is read, flushed or not;
-- flushing only keeps reads fast. aifd calls aif.rollup_flush() every few seconds.
--
-- Invariants (checked by aif.rollup_verify()):
--   rollups + pending == the aggregate of aif.usage_intervals, at every snapshot;
--   an interval is in aif.usage_queue (once, with its values) iff it is closed and not yet folded.
-- They hold because closed intervals are immutable in project, sector, gpus, started_at and
-- ended_at, intervals are never deleted (both enforced below), and a TRUNCATE clears the
-- derived tables too. An administrator who corrects history anyway (triggers disabled) runs
-- aif.rollup_rebuild() afterwards.
--
-- Advisory locks of aif (two-key form, first key 1634297344 = 'aif\0'):
--   1 migrations, 2 aif.apply(), 3 rollup flush / period recompute.

CREATE TABLE IF NOT EXISTS aif.usage_queue (
	cluster text NOT NULL,
	job_id bigint NOT NULL,
	node text NOT NULL,
	restart_count int NOT NULL,
	project_id text NOT NULL,
	sector_id text NOT NULL,
	gpus int NOT NULL,
	started_at timestamptz NOT NULL,
	ended_at timestamptz NOT NULL
);
COMMENT ON TABLE aif.usage_queue IS
	'closed intervals not yet folded into the rollups (see aif.rollup_flush())';

CREATE TABLE IF NOT EXISTS aif.usage_daily_rollup (
	day date NOT NULL,
	cluster text NOT NULL,
	project_id text NOT NULL,
	sector_id text NOT NULL,
	gpu_us bigint NOT NULL,
	jobs bigint NOT NULL,
	PRIMARY KEY (day, cluster, project_id, sector_id)
);

CREATE TABLE IF NOT EXISTS aif.usage_monthly_rollup (
	month date NOT NULL CHECK (extract(day FROM month) = 1),
	cluster text NOT NULL,
	project_id text NOT NULL,
	sector_id text NOT NULL,
	gpu_us bigint NOT NULL,
	jobs bigint NOT NULL,
	PRIMARY KEY (month, cluster, project_id, sector_id)
);

-- Per budget period: what aif_report.budget_status reads. Recomputed from the daily rollup
-- when a period is added or its dates change (aif.rollup_recompute_periods()).
CREATE TABLE IF NOT EXISTS aif.usage_period_rollup (
	period_id text NOT NULL REFERENCES aif.periods ON DELETE CASCADE,
	project_id text NOT NULL,
	gpu_us bigint NOT NULL,
	PRIMARY KEY (period_id, project_id)
);

-- The triggers on aif.usage_intervals that fill aif.usage_queue, the views of what is not
-- folded yet and the folding functions: sql/repeatable/20_usage.sql and 40_rollup.sql.

REVOKE ALL ON aif.usage_queue, aif.usage_daily_rollup, aif.usage_monthly_rollup,
	aif.usage_period_rollup FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA aif FROM PUBLIC;
GRANT SELECT ON aif.usage_queue, aif.usage_daily_rollup, aif.usage_monthly_rollup,
	aif.usage_period_rollup TO aif_operator, aif_daemon;

INSERT INTO aif.schema_migrations (version, name) VALUES (2, '002_rollup') ON CONFLICT DO NOTHING;
