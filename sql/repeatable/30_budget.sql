-- sql/repeatable/30_budget.sql: the budget arithmetic, defined once, in schema aif_report: the
-- funders' budget_status calls it with their rights, and they may use it too. aifd's snapshot
-- (daemon/budgets/snapshot.c) loads the thresholds below for its decisions; cancellation (aifd's
-- reconciliation) and the funders read aif_report.budget_status, which uses the same
-- functions. So an admission, a cancellation pass and budget_status never disagree at a
-- threshold (docs/aifd.md, "The budget arithmetic").
--
-- A repeatable file: the current definition of what it holds, run again by every
-- "aifctl db migrate" after the versioned migrations (docs/database.md, "Migrations").
-- Change a function or view here, never in a versioned migration.

-- The microseconds an interval [started_at, ended_at) lies within the period [t0, t1): its
-- overlap, rounded to whole microseconds; 0 when they do not overlap. (Timestamps are whole
-- microseconds: the rounding is exact for any overlap shorter than a century.)
CREATE OR REPLACE FUNCTION aif_report.overlap_us(started_at timestamptz, ended_at timestamptz,
					  t0 timestamptz, t1 timestamptz)
RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT CASE WHEN started_at < t1 AND ended_at > t0 AND ended_at > started_at
	THEN round(date_part('epoch', least(ended_at, t1) - greatest(started_at, t0)) * 1000000)::bigint
	ELSE 0 END $$;
COMMENT ON FUNCTION aif_report.overlap_us(timestamptz, timestamptz, timestamptz, timestamptz) IS
	'microseconds of an interval within a period';

-- The GPU-microseconds an interval of gpus GPUs uses within a period: its overlap times its GPUs.
CREATE OR REPLACE FUNCTION aif_report.gpu_us_within(gpus bigint, started_at timestamptz,
					     ended_at timestamptz, t0 timestamptz, t1 timestamptz)
RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT gpus * aif_report.overlap_us(started_at, ended_at, t0, t1) $$;
COMMENT ON FUNCTION aif_report.gpu_us_within(bigint, timestamptz, timestamptz, timestamptz, timestamptz) IS
	'GPU-microseconds of an interval within a period';

-- The same for an interval charged charged_gpus budget units per hour (sql/014_charged.sql):
-- its overlap times its charged GPUs, rounded to a whole charged microsecond. Equal to
-- gpu_us_within() for a whole number of GPUs.
CREATE OR REPLACE FUNCTION aif_report.charged_us_within(charged_gpus numeric, started_at timestamptz,
						 ended_at timestamptz, t0 timestamptz, t1 timestamptz)
RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT round(charged_gpus * aif_report.overlap_us(started_at, ended_at, t0, t1))::bigint $$;
COMMENT ON FUNCTION aif_report.charged_us_within(numeric, timestamptz, timestamptz, timestamptz, timestamptz) IS
	'charged microseconds of an interval within a period';

-- The charged microseconds of us microseconds of an interval of gpus GPUs charged charged_gpus
-- budget units per hour: rounded to a whole charged microsecond; its GPU-microseconds when
-- charged_gpus is NULL (charged as its GPUs, sql/014_charged.sql), in integers: most usage is.
-- (CASE, not coalesce(): coalesce's first argument converts us to numeric for every row, NULL
-- charge or not: 4 % of budget_status over 5,000 open intervals.)
CREATE OR REPLACE FUNCTION aif_report.charged_us(charged_gpus numeric, gpus bigint, us bigint)
RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT CASE WHEN charged_gpus IS NULL THEN gpus * us ELSE round(charged_gpus * us)::bigint END $$;
COMMENT ON FUNCTION aif_report.charged_us(numeric, bigint, bigint) IS
	'charged microseconds of an interval''s slice';

-- pct percent of a budget of gpu_hours, in (charged) GPU-microseconds, exact: a numeric that
-- may have a fraction. A budget above 2.5 billion GPU-hours (the budgets file allows them) is
-- capped at the largest bigint, which no usage reaches.
CREATE OR REPLACE FUNCTION aif_report.budget_share_us(gpu_hours numeric, pct numeric)
RETURNS numeric LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT least(gpu_hours * (pct * 36000000), 9223372036854775807) $$;
COMMENT ON FUNCTION aif_report.budget_share_us(numeric, numeric) IS
	'pct percent of a budget, in GPU-microseconds, exact';

-- The threshold of a budget of gpu_hours at pct percent, in (charged) GPU-microseconds of usage: the one
-- definition of "reached". Whole microseconds, rounded up: usage (whole microseconds) reaches
-- it exactly when it is at least this integer. A plain expression, so that the planner inlines
-- it into its callers.
CREATE OR REPLACE FUNCTION aif_report.budget_threshold_us(gpu_hours numeric, pct numeric)
RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT ceil(aif_report.budget_share_us(gpu_hours, pct))::bigint $$;
COMMENT ON FUNCTION aif_report.budget_threshold_us(numeric, numeric) IS
	'GPU-microseconds at which a budget reaches pct percent';

-- The thresholds of a budget, as aifd's snapshot loads them: exhausted_us (100 %), and
-- warn_us[i] where it reaches warn_at[i] percent, in warn_at's order.
CREATE OR REPLACE FUNCTION aif_report.budget_thresholds(gpu_hours numeric, warn_at int[],
						 OUT exhausted_us bigint, OUT warn_us bigint[])
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT aif_report.budget_threshold_us(gpu_hours, 100),
	coalesce(ARRAY(SELECT aif_report.budget_threshold_us(gpu_hours, w)
		       FROM unnest(warn_at) WITH ORDINALITY AS t(w, i) ORDER BY i), '{}') $$;
COMMENT ON FUNCTION aif_report.budget_thresholds(numeric, int[]) IS
	'GPU-microseconds at which a budget is exhausted, and reaches each warn_at percent';

-- The state of a budget of gpu_hours with used_us GPU-microseconds used: exhausted at 100 %,
-- else warning at its lowest warn_at threshold (warn_at[1]: aif.apply() keeps the values
-- strictly increasing), else ok. Whole microseconds reach budget_threshold_us() exactly when
-- they reach budget_share_us(), its value before rounding up (n >= ceil(x) when n >= x, for a
-- whole n): the same state, without a ceil() and two conversions per threshold, which were a
-- third of budget_status's state column.
CREATE OR REPLACE FUNCTION aif_report.budget_state(used_us numeric, gpu_hours numeric, warn_at int[])
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT CASE WHEN used_us >= aif_report.budget_share_us(gpu_hours, 100) THEN 'exhausted'
		  WHEN used_us >= aif_report.budget_share_us(gpu_hours, warn_at[1]) THEN 'warning'
		  ELSE 'ok' END $$;
COMMENT ON FUNCTION aif_report.budget_state(numeric, numeric, int[]) IS
	'ok, warning or exhausted: the state of a budget with this usage';

-- The funders' views call them, with the rights of whoever reads the views (a function's body
-- is read with them too: hence schema aif_report, where funders may look).
REVOKE ALL ON FUNCTION aif_report.overlap_us(timestamptz, timestamptz, timestamptz, timestamptz),
	aif_report.charged_us(numeric, bigint, bigint),
	aif_report.gpu_us_within(bigint, timestamptz, timestamptz, timestamptz, timestamptz),
	aif_report.charged_us_within(numeric, timestamptz, timestamptz, timestamptz, timestamptz),
	aif_report.budget_share_us(numeric, numeric), aif_report.budget_threshold_us(numeric, numeric),
	aif_report.budget_thresholds(numeric, int[]), aif_report.budget_state(numeric, numeric, int[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION aif_report.overlap_us(timestamptz, timestamptz, timestamptz, timestamptz),
	aif_report.charged_us(numeric, bigint, bigint),
	aif_report.gpu_us_within(bigint, timestamptz, timestamptz, timestamptz, timestamptz),
	aif_report.charged_us_within(numeric, timestamptz, timestamptz, timestamptz, timestamptz),
	aif_report.budget_share_us(numeric, numeric), aif_report.budget_threshold_us(numeric, numeric),
	aif_report.budget_thresholds(numeric, int[]), aif_report.budget_state(numeric, numeric, int[])
	TO aif_funder, aif_operator, aif_daemon;
