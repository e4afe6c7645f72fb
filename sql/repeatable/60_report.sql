-- sql/repeatable/60_report.sql: the funders' views, aif_report.* (docs/funders.md): what
-- funders query in plain SQL.
--
-- A repeatable file: the current definition of what it holds, run again by every
-- "aifctl db migrate" after the versioned migrations (docs/database.md, "Migrations").
-- Change a function or view here, never in a versioned migration.

-- Per UTC day, cluster, factory, project and sector. jobs = distinct (cluster, job_id) with
-- usage (an interval overlapping the day by a positive duration) that day.
CREATE OR REPLACE VIEW aif_report.usage_daily AS
WITH l AS MATERIALIZED (SELECT * FROM aif.usage_pending_daily)
SELECT u.day, u.cluster, p.factory_id AS factory, u.project_id AS project, u.sector_id AS sector,
       trim_scale(round(u.gpu_us / 3600000000.0, 6)) AS gpu_hours, u.jobs,
       trim_scale(round(u.charged_us / 3600000000.0, 6)) AS charged_hours
FROM (
	SELECT r.day, r.cluster, r.project_id, r.sector_id,
	       r.gpu_us + coalesce(l.gpu_us, 0) AS gpu_us, r.jobs + coalesce(l.jobs, 0) AS jobs,
	       r.charged_us + coalesce(l.charged_us, 0) AS charged_us
	FROM aif.usage_daily_rollup r
	LEFT JOIN l ON l.day = r.day AND l.cluster = r.cluster
		AND l.project_id = r.project_id AND l.sector_id = r.sector_id
	UNION ALL
	SELECT l.day, l.cluster, l.project_id, l.sector_id, l.gpu_us, l.jobs, l.charged_us
	FROM l
	WHERE NOT EXISTS (SELECT 1 FROM aif.usage_daily_rollup r
			  WHERE r.day = l.day AND r.cluster = l.cluster
			    AND r.project_id = l.project_id AND r.sector_id = l.sector_id)
) u
JOIN aif.projects p ON p.id = u.project_id;
COMMENT ON VIEW aif_report.usage_daily IS
	'physical GPU-hours, distinct jobs and charged hours per UTC day, cluster, factory, project and sector';

-- The same per calendar month (UTC); jobs = distinct jobs with usage in that month.
CREATE OR REPLACE VIEW aif_report.usage_monthly AS
WITH l AS MATERIALIZED (SELECT * FROM aif.usage_pending_monthly)
SELECT u.month, u.cluster, p.factory_id AS factory, u.project_id AS project, u.sector_id AS sector,
       trim_scale(round(u.gpu_us / 3600000000.0, 6)) AS gpu_hours, u.jobs,
       trim_scale(round(u.charged_us / 3600000000.0, 6)) AS charged_hours
FROM (
	SELECT r.month, r.cluster, r.project_id, r.sector_id,
	       r.gpu_us + coalesce(l.gpu_us, 0) AS gpu_us, r.jobs + coalesce(l.jobs, 0) AS jobs,
	       r.charged_us + coalesce(l.charged_us, 0) AS charged_us
	FROM aif.usage_monthly_rollup r
	LEFT JOIN l ON l.month = r.month AND l.cluster = r.cluster
		AND l.project_id = r.project_id AND l.sector_id = r.sector_id
	UNION ALL
	SELECT l.month, l.cluster, l.project_id, l.sector_id, l.gpu_us, l.jobs, l.charged_us
	FROM l
	WHERE NOT EXISTS (SELECT 1 FROM aif.usage_monthly_rollup r
			  WHERE r.month = l.month AND r.cluster = l.cluster
			    AND r.project_id = l.project_id AND r.sector_id = l.sector_id)
) u
JOIN aif.projects p ON p.id = u.project_id;
COMMENT ON VIEW aif_report.usage_monthly IS
	'physical GPU-hours, distinct jobs and charged hours per UTC calendar month (first day), cluster, factory, project and sector';

-- One row per budget: per factory (project NULL) and per project, for every period it has a
-- budget in. A factory's usage is the sum over all its projects (retired ones included), on
-- every cluster. state: aif_report.budget_state() (30_budget.sql): exhausted when used >= budget,
-- else warning when used reaches the lowest warn_at threshold, else ok.
CREATE OR REPLACE VIEW aif_report.budget_status AS
WITH per AS (
	SELECT p.id, p.starts_on,
	       p.starts_on::timestamp AT TIME ZONE 'UTC' AS t0, p.ends_on::timestamp AT TIME ZONE 'UTC' AS t1
	FROM aif.periods p
), used AS (
	SELECT x.period_id, x.project_id, sum(x.charged_us) AS gpu_us, sum(x.gpu_us) AS physical_us
	FROM (
		SELECT r.period_id, r.project_id, r.charged_us, r.gpu_us
		FROM aif.usage_period_rollup r
		UNION ALL
		-- each pending interval's overlap computed once (OFFSET 0 keeps the planner from
		-- copying it into both products): what charged_us_within() and gpu_us_within() give
		SELECT o.id, o.project_id, aif_report.charged_us(o.charged_gpus, o.gpus, o.us), o.gpus * o.us
		FROM (SELECT per.id, u.project_id, u.charged_gpus, u.gpus,
			     aif_report.overlap_us(u.started_at, u.ended_at, per.t0, per.t1) AS us
		      FROM aif.usage_pending u
		      JOIN per ON u.started_at < per.t1 AND u.ended_at > per.t0 AND u.ended_at > u.started_at
		      OFFSET 0) o
	) x
	GROUP BY x.period_id, x.project_id
), reserved AS (
	SELECT r.period_id, r.project_id, r.gpu_us FROM aif.reserved_totals r
), by_factory AS (
	SELECT x.period_id, p.factory_id, sum(x.used) AS gpu_us, sum(x.reserved) AS reserved_us,
	       sum(x.physical) AS physical_us
	FROM (SELECT u.period_id, u.project_id, u.gpu_us AS used, 0 AS reserved, u.physical_us AS physical
	      FROM used u
	      UNION ALL
	      SELECT r.period_id, r.project_id, 0, r.gpu_us, 0 FROM reserved r) x
	JOIN aif.projects p ON p.id = x.project_id
	GROUP BY x.period_id, p.factory_id
), budgets AS (
	SELECT b.period_id, f.id AS factory_id, NULL::text AS project_id, b.gpu_hours, f.warn_at,
	       coalesce(u.gpu_us, 0) AS gpu_us, coalesce(u.reserved_us, 0) AS reserved_us,
	       coalesce(u.physical_us, 0) AS physical_us
	FROM aif.factory_budgets b
	JOIN aif.factories f ON f.id = b.factory_id
	LEFT JOIN by_factory u ON u.period_id = b.period_id AND u.factory_id = b.factory_id
	UNION ALL
	SELECT b.period_id, p.factory_id, p.id, b.gpu_hours, p.warn_at, coalesce(u.gpu_us, 0),
	       coalesce(r.gpu_us, 0), coalesce(u.physical_us, 0)
	FROM aif.project_budgets b
	JOIN aif.projects p ON p.id = b.project_id
	LEFT JOIN used u ON u.period_id = b.period_id AND u.project_id = b.project_id
	LEFT JOIN reserved r ON r.period_id = b.period_id AND r.project_id = b.project_id
)
SELECT b.period_id AS period, b.factory_id AS factory, b.project_id AS project,
       b.gpu_hours AS budget_gpu_hours,
       trim_scale(round(b.gpu_us / 3600000000.0, 6)) AS used_gpu_hours,
       trim_scale(b.gpu_hours - round(b.gpu_us / 3600000000.0, 6)) AS remaining_gpu_hours,
       round(b.gpu_us / (b.gpu_hours * 36000000.0), 2) AS pct_used,
       aif_report.budget_state(b.gpu_us, b.gpu_hours, b.warn_at) AS state,
       trim_scale(round(b.reserved_us / 3600000000.0, 6)) AS reserved_gpu_hours,
       trim_scale(round(b.physical_us / 3600000000.0, 6)) AS used_physical_gpu_hours
FROM budgets b
JOIN per ON per.id = b.period_id
ORDER BY per.starts_on, b.period_id, b.factory_id, b.project_id NULLS FIRST;
COMMENT ON VIEW aif_report.budget_status IS
	'budgets per period and factory (project NULL) or project, in charged GPU-hours (each cluster''s rates; 1 per GPU-hour without): used, remaining, state, what running jobs reserve, and the physical GPU-hours used';

-- Per UTC calendar month, cluster, factory, project, sector and GPU model: physical GPU-hours
-- and charged hours (a node's charge split between its models by their GPUs,
-- aif_report.model_shares(); model '(unknown)' for usage whose allocation aif did not learn, as
-- before migration 014). The pending usage's day slices, summed per month, are its month's.
CREATE OR REPLACE VIEW aif_report.usage_by_model AS
WITH pending AS (
	SELECT date_trunc('month', sl.day)::date AS month, sl.cluster, sl.project_id, sl.sector_id,
	       m.model, sum(m.gpus * sl.us) AS gpu_us,
	       sum(aif_report.model_charged_us(sl.charged_gpus, sl.gpus, sl.us, m.share)) AS charged_us
	FROM aif.usage_pending_day_slices sl
	CROSS JOIN LATERAL aif_report.model_shares(sl.gpus, sl.gpu_models) m
	GROUP BY 1, 2, 3, 4, 5
)
SELECT u.month, u.cluster, p.factory_id AS factory, u.project_id AS project, u.sector_id AS sector,
       u.model, trim_scale(round(sum(u.gpu_us) / 3600000000.0, 6)) AS gpu_hours,
       trim_scale(round(sum(u.charged_us) / 3600000000.0, 6)) AS charged_hours
FROM (SELECT r.month, r.cluster, r.project_id, r.sector_id, r.model, r.gpu_us, r.charged_us
      FROM aif.usage_model_monthly_rollup r
      UNION ALL
      SELECT * FROM pending) u
JOIN aif.projects p ON p.id = u.project_id
GROUP BY u.month, u.cluster, p.factory_id, u.project_id, u.sector_id, u.model;
COMMENT ON VIEW aif_report.usage_by_model IS
	'physical GPU-hours and charged hours per UTC calendar month (first day), cluster, factory, project, sector and GPU model';

-- Per UTC day, cluster and reason: GPU-hours (split at UTC midnight, open intervals up to
-- now(), as usage_daily) and distinct jobs. No uid, no user name, no project name.
CREATE OR REPLACE VIEW aif_report.unattributed_daily AS
SELECT d.day, u.cluster, u.reason,
       trim_scale(round(sum(u.gpus * extract(epoch FROM
		least(coalesce(u.ended_at, now()), (d.day + 1)::timestamp AT TIME ZONE 'UTC')
		- greatest(u.started_at, d.day::timestamp AT TIME ZONE 'UTC'))) / 3600.0, 6)) AS gpu_hours,
       count(DISTINCT u.job_id) AS jobs
FROM aif.unattributed_intervals u
CROSS JOIN LATERAL (
	-- the days the interval overlaps by a positive duration (as usage_daily counts jobs)
	SELECT g::date AS day
	FROM generate_series((u.started_at AT TIME ZONE 'UTC')::date,
			     ((coalesce(u.ended_at, now()) - interval '1 microsecond') AT TIME ZONE 'UTC')::date,
			     interval '1 day') g
	WHERE coalesce(u.ended_at, now()) > u.started_at
) d
GROUP BY d.day, u.cluster, u.reason;
COMMENT ON VIEW aif_report.unattributed_daily IS
	'GPU-hours used that no project could be charged for, per UTC day, cluster and reason';

-- The configuration, for joining and labelling (no members: those are personal data).
CREATE OR REPLACE VIEW aif_report.periods AS
SELECT p.id AS period, p.starts_on, p.ends_on
FROM aif.periods p;
COMMENT ON VIEW aif_report.periods IS 'budget periods: [starts_on, ends_on), whole UTC days';

CREATE OR REPLACE VIEW aif_report.factories AS
SELECT f.id AS factory, f.name,
       ARRAY(SELECT c.cluster FROM aif.factory_clusters c WHERE c.factory_id = f.id
	     ORDER BY c.cluster) AS clusters,
       f.on_exhausted, f.warn_at, f.allow_overcommit, f.retired_at, f.admission
FROM aif.factories f;
COMMENT ON VIEW aif_report.factories IS 'AI Factories; retired_at is set when a factory left the configuration';

CREATE OR REPLACE VIEW aif_report.projects AS
SELECT p.id AS project, p.name, p.factory_id AS factory,
       ARRAY(SELECT s.sector_id FROM aif.project_sectors s WHERE s.project_id = p.id
	     ORDER BY s.position) AS sectors,
       p.on_exhausted, p.warn_at, p.retired_at, p.admission
FROM aif.projects p;
COMMENT ON VIEW aif_report.projects IS 'projects; sectors[1] is the default sector';

CREATE OR REPLACE VIEW aif_report.sectors AS
SELECT s.id AS sector, s.retired_at
FROM aif.sectors s;
COMMENT ON VIEW aif_report.sectors IS 'sectors; retired_at is set when a sector left the configuration';

-- Rights: the funders read every view of aif_report, and nothing else.
REVOKE ALL ON ALL TABLES IN SCHEMA aif_report FROM PUBLIC;
GRANT SELECT ON ALL TABLES IN SCHEMA aif_report TO aif_funder, aif_operator, aif_daemon;
