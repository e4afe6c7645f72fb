-- sql/repeatable/40_rollup.sql: the report rollups: usage not yet folded (aif.usage_pending*),
-- and folding it (aif.rollup_flush).
--
-- A repeatable file: the current definition of what it holds, run again by every
-- "aifctl db migrate" after the versioned migrations (docs/database.md, "Migrations").
-- Change a function or view here, never in a versioned migration.

-- What the rollups do not hold yet: queued (closed, not folded) and open intervals, the open
-- ones with ended_at = now(). charged_gpus NULL: charged as its GPUs (aif_report.charged_us()).
-- (charged_gpus last: CREATE OR REPLACE VIEW only adds columns.)
CREATE OR REPLACE VIEW aif.usage_pending AS
SELECT q.cluster, q.job_id, q.node, q.restart_count, q.project_id, q.sector_id, q.gpus,
       q.started_at, q.ended_at, q.charged_gpus, q.gpu_models
FROM aif.usage_queue q
UNION ALL
SELECT i.cluster, i.job_id, i.node, i.restart_count, i.project_id, i.sector_id, i.gpus,
       i.started_at, now(), i.charged_gpus, i.gpu_models
FROM aif.usage_intervals i
WHERE i.ended_at IS NULL;

-- The closed intervals already folded into the rollups of the jobs that have pending usage: a
-- pending job counts for a day (month) only if none of them covers it. (OFFSET 0: one index
-- probe per pending job, never a scan of all usage.)
CREATE OR REPLACE VIEW aif.usage_pending_folded AS
SELECT o.cluster, o.job_id, o.project_id, o.sector_id, o.started_at, o.ended_at
FROM (SELECT DISTINCT p.cluster, p.job_id FROM aif.usage_pending p) b
CROSS JOIN LATERAL (
	SELECT i.cluster, i.job_id, i.node, i.restart_count, i.project_id, i.sector_id,
	       i.started_at, i.ended_at
	FROM aif.usage_intervals i
	WHERE i.cluster = b.cluster AND i.job_id = b.job_id AND i.ended_at > i.started_at
	OFFSET 0) o
WHERE NOT EXISTS (SELECT 1 FROM aif.usage_queue q
		  WHERE q.cluster = o.cluster AND q.job_id = o.job_id AND q.node = o.node
		    AND q.restart_count = o.restart_count);

-- The pending usage sliced by UTC day: per interval and day it overlaps by a positive duration,
-- the overlap in whole microseconds (us). The days of an interval come from a recursive CTE
-- rather than generate_series(), whose row estimate for timestamps (1000 per call) made the
-- planner expect millions of rows and pay for JIT compilation and parallel workers on a few
-- thousand. Only built-in functions: the funder views use this view, and functions in views
-- are called with the rights of whoever reads them. Overlaps are rounded to whole
-- microseconds from float8 seconds, which is exact for any overlap shorter than a century
-- (timestamps are whole microseconds). OFFSET 0 computes us once per slice: inlined, its
-- expression was computed again for each sum that uses it (GPU and charged microseconds).
CREATE OR REPLACE VIEW aif.usage_pending_day_slices AS
WITH RECURSIVE sl AS (
	SELECT u.cluster, u.job_id, u.project_id, u.sector_id, u.gpus, u.charged_gpus, u.gpu_models,
	       u.started_at AT TIME ZONE 'UTC' AS s, u.ended_at AT TIME ZONE 'UTC' AS e,
	       date_trunc('day', u.started_at AT TIME ZONE 'UTC') AS t
	FROM aif.usage_pending u
	WHERE u.ended_at > u.started_at
	UNION ALL
	SELECT sl.cluster, sl.job_id, sl.project_id, sl.sector_id, sl.gpus, sl.charged_gpus,
	       sl.gpu_models, sl.s, sl.e, sl.t + interval '1 day'
	FROM sl
	WHERE sl.t + interval '1 day' < sl.e
)
SELECT sl.cluster, sl.job_id, sl.project_id, sl.sector_id, sl.gpus, sl.charged_gpus, sl.gpu_models,
       sl.t::date AS day,
       round(date_part('epoch', least(sl.e, sl.t + interval '1 day') - greatest(sl.s, sl.t))
	     * 1000000)::bigint AS us
FROM sl
OFFSET 0;

-- The pending usage per day, in the shape of aif.usage_daily_rollup.
CREATE OR REPLACE VIEW aif.usage_pending_daily AS
WITH jd AS (
	SELECT sl.cluster, sl.job_id, sl.project_id, sl.sector_id, sl.day,
	       sum(sl.gpus * sl.us) AS gpu_us, sum(aif_report.charged_us(sl.charged_gpus, sl.gpus, sl.us)) AS charged_us
	FROM aif.usage_pending_day_slices sl
	GROUP BY 1, 2, 3, 4, 5
), covered AS (
	SELECT DISTINCT jd.day, jd.cluster, jd.project_id, jd.sector_id, jd.job_id
	FROM jd
	JOIN aif.usage_pending_folded f ON f.cluster = jd.cluster AND f.job_id = jd.job_id
		AND f.project_id = jd.project_id AND f.sector_id = jd.sector_id
		AND f.started_at < (jd.day + 1)::timestamp AT TIME ZONE 'UTC'
		AND f.ended_at > jd.day::timestamp AT TIME ZONE 'UTC'
)
SELECT jd.day, jd.cluster, jd.project_id, jd.sector_id, sum(jd.gpu_us)::bigint AS gpu_us,
       count(*) FILTER (WHERE c.job_id IS NULL) AS jobs, sum(jd.charged_us)::bigint AS charged_us
FROM jd
LEFT JOIN covered c ON c.day = jd.day AND c.cluster = jd.cluster AND c.project_id = jd.project_id
	AND c.sector_id = jd.sector_id AND c.job_id = jd.job_id
GROUP BY jd.day, jd.cluster, jd.project_id, jd.sector_id;

-- The same per month (OFFSET 0: us once per slice, as in usage_pending_day_slices).
CREATE OR REPLACE VIEW aif.usage_pending_monthly AS
WITH RECURSIVE sl AS (
	SELECT u.cluster, u.job_id, u.project_id, u.sector_id, u.gpus, u.charged_gpus,
	       u.started_at AT TIME ZONE 'UTC' AS s, u.ended_at AT TIME ZONE 'UTC' AS e,
	       date_trunc('month', u.started_at AT TIME ZONE 'UTC') AS t
	FROM aif.usage_pending u
	WHERE u.ended_at > u.started_at
	UNION ALL
	SELECT sl.cluster, sl.job_id, sl.project_id, sl.sector_id, sl.gpus, sl.charged_gpus, sl.s,
	       sl.e, sl.t + interval '1 month'
	FROM sl
	WHERE sl.t + interval '1 month' < sl.e
), jm AS (
	SELECT sl.cluster, sl.job_id, sl.project_id, sl.sector_id, sl.t::date AS month,
	       sum(sl.gpus * sl.us) AS gpu_us, sum(aif_report.charged_us(sl.charged_gpus, sl.gpus, sl.us)) AS charged_us
	FROM (SELECT sl.*, round(date_part('epoch', least(sl.e, sl.t + interval '1 month')
						 - greatest(sl.s, sl.t)) * 1000000)::bigint AS us
	      FROM sl OFFSET 0) sl
	GROUP BY 1, 2, 3, 4, 5
), covered AS (
	SELECT DISTINCT jm.month, jm.cluster, jm.project_id, jm.sector_id, jm.job_id
	FROM jm
	JOIN aif.usage_pending_folded f ON f.cluster = jm.cluster AND f.job_id = jm.job_id
		AND f.project_id = jm.project_id AND f.sector_id = jm.sector_id
		AND f.started_at < (jm.month + interval '1 month') AT TIME ZONE 'UTC'
		AND f.ended_at > jm.month::timestamp AT TIME ZONE 'UTC'
)
SELECT jm.month, jm.cluster, jm.project_id, jm.sector_id, sum(jm.gpu_us)::bigint AS gpu_us,
       count(*) FILTER (WHERE c.job_id IS NULL) AS jobs, sum(jm.charged_us)::bigint AS charged_us
FROM jm
LEFT JOIN covered c ON c.month = jm.month AND c.cluster = jm.cluster AND c.project_id = jm.project_id
	AND c.sector_id = jm.sector_id AND c.job_id = jm.job_id
GROUP BY jm.month, jm.cluster, jm.project_id, jm.sector_id;

-- Fold the queue into the rollups. Returns the number of intervals folded. With wait false
-- (what aifd calls every few seconds) it returns 0 at once when another flush is running.
-- Safe to call at any time and from any transaction; readers see the queue and the rollups
-- change together at commit. The planner settings keep the plan proportional to the batch
-- (hash joins on batch-sized sides, index probes into usage) even when the statistics of the
-- ever-changing queue are off; measured in tests/bench. The statement is planned at each call
-- (a few ms), for the size of its batch (jobs_usage).
CREATE OR REPLACE FUNCTION aif.rollup_flush(wait boolean DEFAULT false) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
SET enable_bitmapscan = off
SET enable_mergejoin = off
SET enable_sort = off
SET enable_nestloop = on
SET work_mem = '64MB'
AS $$
DECLARE
	n bigint;
	queued bigint;
	pages bigint;
	-- How the batch's jobs (b) meet their intervals (o) to find those folded before. A batch
	-- of at least 10,000 intervals and 16 per page of usage (about a third of its rows: a
	-- backlog, aif.rollup_rebuild()) reads all usage once, hashed against its jobs: an index
	-- probe per job costs more from there on. Below, the probes cost less: reading and
	-- hashing a page of usage costs about 30 us, a probe about 7 us, and a job has 2 or 3
	-- intervals, so the two meet at about 11 intervals per page; beside a busy writer the
	-- scan costs more (docs/database.md, "Plan stability", has the figures). Any other
	-- batch probes the index once per job, whatever the statistics of the queue say
	-- (OFFSET 0), never a scan of all usage.
	jobs_usage text := $probe$
		CROSS JOIN LATERAL (
			SELECT i.cluster, i.job_id, i.node, i.restart_count, i.project_id, i.sector_id,
			       i.started_at, i.ended_at
			FROM aif.usage_intervals i
			WHERE i.cluster = b.cluster AND i.job_id = b.job_id
			OFFSET 0) o$probe$;
BEGIN
	IF wait THEN
		PERFORM pg_advisory_xact_lock(1634297344, 3);
	ELSIF NOT pg_try_advisory_xact_lock(1634297344, 3) THEN
		RETURN 0;
	END IF;

	-- (The pages of usage as they are now, not as statistics last saw them: what a scan
	-- reads.)
	SELECT count(*) INTO queued FROM aif.usage_queue;
	pages := pg_relation_size('aif.usage_intervals') / current_setting('block_size')::bigint;
	IF queued >= 10000 AND queued >= 16 * pages THEN
		-- (job_id + 0: not through the index; no nested loop until the function returns)
		jobs_usage := $scan$
		JOIN aif.usage_intervals o ON o.cluster = b.cluster AND o.job_id + 0 = b.job_id$scan$;
		SET LOCAL enable_nestloop = off;
	END IF;

	-- One statement, one snapshot: the closed intervals not in this batch are exactly the
	-- ones folded before.
	EXECUTE replace($fold$
	WITH q AS (
		DELETE FROM aif.usage_queue
		RETURNING cluster, job_id, node, restart_count, project_id, sector_id, gpus,
			  started_at AT TIME ZONE 'UTC' AS s, ended_at AT TIME ZONE 'UTC' AS e,
			  charged_gpus, gpu_models
	), ov AS (
		-- each interval's slices: one per UTC day it overlaps by a positive duration (most
		-- intervals lie within one day: no series for them), with the overlap in microseconds
		SELECT q.cluster, q.job_id, q.project_id, q.sector_id, q.gpus, q.charged_gpus,
		       q.gpu_models, q.s::date AS day, (extract(epoch FROM q.e - q.s) * 1000000)::bigint AS us
		FROM q
		WHERE q.e > q.s AND q.e <= date_trunc('day', q.s) + interval '1 day'
		UNION ALL
		SELECT q.cluster, q.job_id, q.project_id, q.sector_id, q.gpus, q.charged_gpus,
		       q.gpu_models, d.t::date,
		       (extract(epoch FROM least(q.e, d.t + interval '1 day') - greatest(q.s, d.t))
			* 1000000)::bigint
		FROM q
		CROSS JOIN LATERAL generate_series(date_trunc('day', q.s), q.e, interval '1 day') AS d(t)
		WHERE q.e > date_trunc('day', q.s) + interval '1 day'
		  AND least(q.e, d.t + interval '1 day') > greatest(q.s, d.t)
	), sl AS (
		SELECT ov.cluster, ov.job_id, ov.project_id, ov.sector_id, ov.day, ov.gpus * ov.us AS gpu_us,
		       aif_report.charged_us(ov.charged_gpus, ov.gpus, ov.us) AS charged_us
		FROM ov
	), jd AS (
		-- per job, project, sector and day
		SELECT sl.day, sl.cluster, sl.project_id, sl.sector_id, sl.job_id, sum(sl.gpu_us) AS gpu_us,
		       sum(sl.charged_us) AS charged_us
		FROM sl
		GROUP BY sl.day, sl.cluster, sl.project_id, sl.sector_id, sl.job_id
	), earlier AS (
		-- The closed intervals of this batch's jobs folded before: a job counts for a day
		-- (month) only if none of them covers it already.
		SELECT o.cluster, o.job_id, o.project_id, o.sector_id, o.started_at, o.ended_at
		FROM (SELECT DISTINCT q.cluster, q.job_id FROM q) b
		/* jobs_usage */
		WHERE o.ended_at > o.started_at
		  AND NOT EXISTS (SELECT 1 FROM q
				  WHERE q.cluster = o.cluster AND q.job_id = o.job_id AND q.node = o.node
				    AND q.restart_count = o.restart_count)
	), covered_days AS (
		SELECT DISTINCT jd.day, jd.cluster, jd.project_id, jd.sector_id, jd.job_id
		FROM jd
		JOIN earlier e ON e.cluster = jd.cluster AND e.job_id = jd.job_id
			AND e.project_id = jd.project_id AND e.sector_id = jd.sector_id
			AND e.started_at < (jd.day + 1)::timestamp AT TIME ZONE 'UTC'
			AND e.ended_at > jd.day::timestamp AT TIME ZONE 'UTC'
	), daily AS (
		SELECT jd.day, jd.cluster, jd.project_id, jd.sector_id, sum(jd.gpu_us)::bigint AS gpu_us,
		       count(*) FILTER (WHERE c.job_id IS NULL) AS jobs,
		       sum(jd.charged_us)::bigint AS charged_us
		FROM jd
		LEFT JOIN covered_days c ON c.day = jd.day AND c.cluster = jd.cluster
			AND c.project_id = jd.project_id AND c.sector_id = jd.sector_id AND c.job_id = jd.job_id
		GROUP BY jd.day, jd.cluster, jd.project_id, jd.sector_id
	), jm AS (
		SELECT date_trunc('month', jd.day)::date AS month, jd.cluster, jd.project_id, jd.sector_id,
		       jd.job_id, sum(jd.gpu_us) AS gpu_us, sum(jd.charged_us) AS charged_us
		FROM jd
		GROUP BY 1, 2, 3, 4, 5
	), covered_months AS (
		SELECT DISTINCT jm.month, jm.cluster, jm.project_id, jm.sector_id, jm.job_id
		FROM jm
		JOIN earlier e ON e.cluster = jm.cluster AND e.job_id = jm.job_id
			AND e.project_id = jm.project_id AND e.sector_id = jm.sector_id
			AND e.started_at < (jm.month + interval '1 month') AT TIME ZONE 'UTC'
			AND e.ended_at > jm.month::timestamp AT TIME ZONE 'UTC'
	), monthly AS (
		SELECT jm.month, jm.cluster, jm.project_id, jm.sector_id, sum(jm.gpu_us)::bigint AS gpu_us,
		       count(*) FILTER (WHERE c.job_id IS NULL) AS jobs,
		       sum(jm.charged_us)::bigint AS charged_us
		FROM jm
		LEFT JOIN covered_months c ON c.month = jm.month AND c.cluster = jm.cluster
			AND c.project_id = jm.project_id AND c.sector_id = jm.sector_id AND c.job_id = jm.job_id
		GROUP BY jm.month, jm.cluster, jm.project_id, jm.sector_id
	), ins_daily AS (
		INSERT INTO aif.usage_daily_rollup AS r (day, cluster, project_id, sector_id, gpu_us, jobs,
							 charged_us)
		SELECT d.day, d.cluster, d.project_id, d.sector_id, d.gpu_us, d.jobs, d.charged_us
		FROM daily d
		ORDER BY 1, 2, 3, 4
		ON CONFLICT (day, cluster, project_id, sector_id) DO UPDATE
		SET gpu_us = r.gpu_us + excluded.gpu_us, jobs = r.jobs + excluded.jobs,
		    charged_us = r.charged_us + excluded.charged_us
	), ins_monthly AS (
		INSERT INTO aif.usage_monthly_rollup AS r (month, cluster, project_id, sector_id, gpu_us, jobs,
							   charged_us)
		SELECT m.month, m.cluster, m.project_id, m.sector_id, m.gpu_us, m.jobs, m.charged_us
		FROM monthly m
		ORDER BY 1, 2, 3, 4
		ON CONFLICT (month, cluster, project_id, sector_id) DO UPDATE
		SET gpu_us = r.gpu_us + excluded.gpu_us, jobs = r.jobs + excluded.jobs,
		    charged_us = r.charged_us + excluded.charged_us
	), ins_period AS (
		INSERT INTO aif.usage_period_rollup AS r (period_id, project_id, gpu_us, charged_us)
		SELECT p.id, d.project_id, sum(d.gpu_us)::bigint, sum(d.charged_us)::bigint
		FROM daily d
		JOIN aif.periods p ON d.day >= p.starts_on AND d.day < p.ends_on
		GROUP BY 1, 2
		ORDER BY 1, 2
		ON CONFLICT (period_id, project_id) DO UPDATE
		SET gpu_us = r.gpu_us + excluded.gpu_us, charged_us = r.charged_us + excluded.charged_us
	), ins_model AS (
		-- per month: a node's charge split between its models (aif_report.model_shares()); the
		-- slices of nodes of one model (most) are summed per model at once: a single model's
		-- share is 1, so the sums are what the slices give one by one (the split per slice, or
		-- per group of slices, took a third of the flush)
		INSERT INTO aif.usage_model_monthly_rollup AS r (month, cluster, project_id, sector_id,
								 model, gpu_us, charged_us)
		SELECT x.month, x.cluster, x.project_id, x.sector_id, x.model, sum(x.gpu_us)::bigint,
		       sum(x.charged_us)::bigint
		FROM (SELECT date_trunc('month', ov.day)::date AS month, ov.cluster, ov.project_id,
			     ov.sector_id,
			     aif_report.model_name(ov.gpus, ov.gpu_models, nullif(ov.gpu_models, '')) AS model,
			     sum(aif_report.model_gpus(ov.gpus, ov.gpu_models, nullif(ov.gpu_models, ''))
				 * ov.us) AS gpu_us,
			     sum(aif_report.charged_us(ov.charged_gpus, ov.gpus, ov.us)) AS charged_us
		      FROM ov
		      WHERE ov.gpu_models IS NULL OR strpos(ov.gpu_models, ',') = 0
		      GROUP BY 1, 2, 3, 4, 5
		      UNION ALL
		      SELECT date_trunc('month', ov.day)::date, ov.cluster, ov.project_id, ov.sector_id,
			     m.model, m.gpus * ov.us,
			     aif_report.model_charged_us(ov.charged_gpus, ov.gpus, ov.us, m.share)
		      FROM ov
		      CROSS JOIN LATERAL aif_report.model_shares(ov.gpus, ov.gpu_models) m
		      WHERE strpos(ov.gpu_models, ',') > 0) x
		GROUP BY 1, 2, 3, 4, 5
		ORDER BY 1, 2, 3, 4, 5
		ON CONFLICT (month, cluster, project_id, sector_id, model) DO UPDATE
		SET gpu_us = r.gpu_us + excluded.gpu_us, charged_us = r.charged_us + excluded.charged_us
	)
	SELECT count(*) FROM q
	$fold$, '/* jobs_usage */', jobs_usage) INTO n;
	RETURN n;
END
$$;

-- Recompute the period rollup of the given periods from the daily rollup: for a period that
-- was added or whose dates changed (aif.apply() calls it). Queued intervals are folded later
-- by the flush, with the new dates.
CREATE OR REPLACE FUNCTION aif.rollup_recompute_periods(period_ids text[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
BEGIN
	PERFORM pg_advisory_xact_lock(1634297344, 3);
	DELETE FROM aif.usage_period_rollup r WHERE r.period_id = ANY (period_ids);
	INSERT INTO aif.usage_period_rollup (period_id, project_id, gpu_us, charged_us)
	SELECT p.id, d.project_id, sum(d.gpu_us)::bigint, sum(d.charged_us)::bigint
	FROM aif.periods p
	JOIN aif.usage_daily_rollup d ON d.day >= p.starts_on AND d.day < p.ends_on
	WHERE p.id = ANY (period_ids)
	GROUP BY 1, 2;
END
$$;

-- Recompute every rollup from aif.usage_intervals (after an administrative correction). Blocks
-- writers of usage while it runs.
CREATE OR REPLACE FUNCTION aif.rollup_rebuild() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
BEGIN
	PERFORM pg_advisory_xact_lock(1634297344, 3);
	LOCK TABLE aif.usage_intervals IN SHARE MODE;
	TRUNCATE aif.usage_queue, aif.usage_daily_rollup, aif.usage_monthly_rollup,
		aif.usage_period_rollup, aif.usage_model_monthly_rollup;
	INSERT INTO aif.usage_queue (cluster, job_id, node, restart_count, project_id, sector_id, gpus,
				     started_at, ended_at, charged_gpus, gpu_models)
	SELECT i.cluster, i.job_id, i.node, i.restart_count, i.project_id, i.sector_id, i.gpus,
	       i.started_at, i.ended_at, i.charged_gpus, i.gpu_models
	FROM aif.usage_intervals i
	WHERE i.ended_at IS NOT NULL;
	RETURN aif.rollup_flush(true);
END
$$;

-- Flush, then compare every rollup with a recomputation from aif.usage_intervals. Returns the
-- rows that differ: none when the rollups are exact. Blocks writers of usage while it runs.
DROP FUNCTION IF EXISTS aif.rollup_verify();
CREATE OR REPLACE FUNCTION aif.rollup_verify()
RETURNS TABLE(rollup text, key text, gpu_us bigint, expected_gpu_us bigint, jobs bigint,
	      expected_jobs bigint, charged_us bigint, expected_charged_us bigint)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
#variable_conflict use_column
BEGIN
	LOCK TABLE aif.usage_intervals IN SHARE MODE;
	PERFORM aif.rollup_flush(true);
	RETURN QUERY
	WITH ov AS (
		SELECT i.cluster, i.job_id, i.project_id, i.sector_id, i.gpus,
		       coalesce(i.charged_gpus, i.gpus) AS charged_gpus, i.gpu_models, d.t::date AS day,
		       (extract(epoch FROM least(i.e, d.t + interval '1 day') - greatest(i.s, d.t))
			* 1000000)::bigint AS us
		FROM (SELECT u.*, u.started_at AT TIME ZONE 'UTC' AS s, u.ended_at AT TIME ZONE 'UTC' AS e
		      FROM aif.usage_intervals u WHERE u.ended_at IS NOT NULL) i
		CROSS JOIN LATERAL generate_series(date_trunc('day', i.s), i.e, interval '1 day') AS d(t)
		WHERE least(i.e, d.t + interval '1 day') > greatest(i.s, d.t)
	), sl AS (
		SELECT ov.*, ov.gpus * ov.us AS gpu_us, round(ov.charged_gpus * ov.us)::bigint AS charged_us
		FROM ov
	), daily AS (
		SELECT sl.day, sl.cluster, sl.project_id, sl.sector_id, sum(sl.gpu_us)::bigint AS gpu_us,
		       count(DISTINCT sl.job_id) AS jobs, sum(sl.charged_us)::bigint AS charged_us
		FROM sl GROUP BY 1, 2, 3, 4
	), monthly AS (
		SELECT date_trunc('month', sl.day)::date AS month, sl.cluster, sl.project_id, sl.sector_id,
		       sum(sl.gpu_us)::bigint AS gpu_us, count(DISTINCT sl.job_id) AS jobs,
		       sum(sl.charged_us)::bigint AS charged_us
		FROM sl GROUP BY 1, 2, 3, 4
	), period AS (
		SELECT p.id AS period_id, d.project_id, sum(d.gpu_us)::bigint AS gpu_us,
		       sum(d.charged_us)::bigint AS charged_us
		FROM daily d JOIN aif.periods p ON d.day >= p.starts_on AND d.day < p.ends_on
		GROUP BY 1, 2
	), model AS (
		SELECT date_trunc('month', ov.day)::date AS month, ov.cluster, ov.project_id, ov.sector_id,
		       m.model, sum(m.gpus * ov.us)::bigint AS gpu_us,
		       sum(round(ov.charged_gpus * ov.us * m.share))::bigint AS charged_us
		FROM ov CROSS JOIN LATERAL aif_report.model_shares(ov.gpus, ov.gpu_models) m
		GROUP BY 1, 2, 3, 4, 5
	)
	SELECT 'daily', concat_ws('/', coalesce(r.day, e.day), coalesce(r.cluster, e.cluster),
				  coalesce(r.project_id, e.project_id), coalesce(r.sector_id, e.sector_id)),
	       r.gpu_us, e.gpu_us, r.jobs, e.jobs, r.charged_us, e.charged_us
	FROM aif.usage_daily_rollup r
	FULL JOIN daily e ON e.day = r.day AND e.cluster = r.cluster AND e.project_id = r.project_id
		AND e.sector_id = r.sector_id
	WHERE r.gpu_us IS DISTINCT FROM e.gpu_us OR r.jobs IS DISTINCT FROM e.jobs
	   OR r.charged_us IS DISTINCT FROM e.charged_us
	UNION ALL
	SELECT 'monthly', concat_ws('/', coalesce(r.month, e.month), coalesce(r.cluster, e.cluster),
				    coalesce(r.project_id, e.project_id), coalesce(r.sector_id, e.sector_id)),
	       r.gpu_us, e.gpu_us, r.jobs, e.jobs, r.charged_us, e.charged_us
	FROM aif.usage_monthly_rollup r
	FULL JOIN monthly e ON e.month = r.month AND e.cluster = r.cluster
		AND e.project_id = r.project_id AND e.sector_id = r.sector_id
	WHERE r.gpu_us IS DISTINCT FROM e.gpu_us OR r.jobs IS DISTINCT FROM e.jobs
	   OR r.charged_us IS DISTINCT FROM e.charged_us
	UNION ALL
	SELECT 'period', concat_ws('/', coalesce(r.period_id, e.period_id), coalesce(r.project_id, e.project_id)),
	       r.gpu_us, e.gpu_us, NULL::bigint, NULL::bigint, r.charged_us, e.charged_us
	FROM aif.usage_period_rollup r
	FULL JOIN period e ON e.period_id = r.period_id AND e.project_id = r.project_id
	WHERE r.gpu_us IS DISTINCT FROM e.gpu_us OR r.charged_us IS DISTINCT FROM e.charged_us
	UNION ALL
	SELECT 'model', concat_ws('/', coalesce(r.month, e.month), coalesce(r.cluster, e.cluster),
				  coalesce(r.project_id, e.project_id), coalesce(r.sector_id, e.sector_id),
				  coalesce(r.model, e.model)),
	       r.gpu_us, e.gpu_us, NULL::bigint, NULL::bigint, r.charged_us, e.charged_us
	FROM aif.usage_model_monthly_rollup r
	FULL JOIN model e ON e.month = r.month AND e.cluster = r.cluster AND e.project_id = r.project_id
		AND e.sector_id = r.sector_id AND e.model = r.model
	WHERE r.gpu_us IS DISTINCT FROM e.gpu_us OR r.charged_us IS DISTINCT FROM e.charged_us;
END
$$;

-- Rights.
REVOKE ALL ON aif.usage_pending, aif.usage_pending_folded, aif.usage_pending_day_slices,
	aif.usage_pending_daily, aif.usage_pending_monthly FROM PUBLIC;
GRANT SELECT ON aif.usage_pending, aif.usage_pending_folded, aif.usage_pending_day_slices,
	aif.usage_pending_daily, aif.usage_pending_monthly TO aif_operator, aif_daemon;
REVOKE ALL ON FUNCTION aif.rollup_flush(boolean), aif.rollup_recompute_periods(text[]),
	aif.rollup_rebuild(), aif.rollup_verify() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION aif.rollup_flush(boolean) TO aif_operator, aif_daemon;
GRANT EXECUTE ON FUNCTION aif.rollup_recompute_periods(text[]), aif.rollup_rebuild(),
	aif.rollup_verify() TO aif_operator;
