-- sql/repeatable/30_budget.sql: the budget arithmetic, defined once. aifd's budget snapshot
-- (daemon/budgets/snapshot.c) loads the thresholds below for its decisions; cancellation (aifd's
-- reconciliation) and the funders read aif_report.budget_status, which uses the same
-- functions. So an admission, a cancellation pass and budget_status never disagree at a
-- threshold (docs/aifd.md, "The budget arithmetic").
--
-- A repeatable file: the current definition of what it holds, run again by every
-- "aifctl db migrate" after the versioned migrations (docs/database.md, "Migrations").
-- Change a function or view here, never in a versioned migration.

-- The GPU-microseconds an interval [started_at, ended_at) of gpus GPUs uses within the period
-- [t0, t1): its overlap with the period, rounded to whole microseconds, times its GPUs; 0
-- when they do not overlap. (Timestamps are whole microseconds: the rounding is exact for any
-- overlap shorter than a century.)
CREATE OR REPLACE FUNCTION aif.gpu_us_within(gpus bigint, started_at timestamptz,
					     ended_at timestamptz, t0 timestamptz, t1 timestamptz)
RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT CASE WHEN started_at < t1 AND ended_at > t0 AND ended_at > started_at
	THEN gpus * round(date_part('epoch', least(ended_at, t1) - greatest(started_at, t0))
			  * 1000000)::bigint
	ELSE 0 END $$;
COMMENT ON FUNCTION aif.gpu_us_within(bigint, timestamptz, timestamptz, timestamptz, timestamptz) IS
	'GPU-microseconds of an interval within a period';

-- The thresholds of a budget of gpu_hours, in GPU-microseconds of usage: exhausted_us, where
-- it is exhausted (used >= budget), and warn_us[i], where it reaches warn_at[i] percent, in
-- warn_at's order. Whole microseconds, rounded up: usage (whole microseconds) reaches a
-- threshold exactly when it is at least the threshold's integer. A budget above 2.5 billion
-- GPU-hours (the budgets file allows them) has its thresholds at the largest bigint, which
-- no usage reaches.
CREATE OR REPLACE FUNCTION aif.budget_thresholds(gpu_hours numeric, warn_at int[],
						 OUT exhausted_us bigint, OUT warn_us bigint[])
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT least(ceil(gpu_hours * 3600000000), 9223372036854775807)::bigint,
	coalesce(ARRAY(SELECT least(ceil(w * gpu_hours * 36000000), 9223372036854775807)::bigint
		       FROM unnest(warn_at) WITH ORDINALITY AS t(w, i) ORDER BY i), '{}') $$;
COMMENT ON FUNCTION aif.budget_thresholds(numeric, int[]) IS
	'GPU-microseconds at which a budget is exhausted, and reaches each warn_at percent';

-- The state of a budget of gpu_hours with used_us GPU-microseconds used: exhausted at its
-- exhausted threshold, else warning at its lowest warn_at threshold, else ok. SECURITY DEFINER:
-- the funders' budget_status calls it, and they may not look into schema aif themselves.
CREATE OR REPLACE FUNCTION aif.budget_state(used_us numeric, gpu_hours numeric, warn_at int[])
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT CASE WHEN used_us >= t.exhausted_us THEN 'exhausted'
		  WHEN used_us >= (SELECT min(w) FROM unnest(t.warn_us) AS w) THEN 'warning'
		  ELSE 'ok' END
      FROM aif.budget_thresholds(gpu_hours, warn_at) AS t $$;
COMMENT ON FUNCTION aif.budget_state(numeric, numeric, int[]) IS
	'ok, warning or exhausted: the state of a budget with this usage';

-- The funders' views call them, with the rights of whoever reads the views.
REVOKE ALL ON FUNCTION aif.gpu_us_within(bigint, timestamptz, timestamptz, timestamptz, timestamptz),
	aif.budget_thresholds(numeric, int[]), aif.budget_state(numeric, numeric, int[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION aif.gpu_us_within(bigint, timestamptz, timestamptz, timestamptz, timestamptz),
	aif.budget_thresholds(numeric, int[]), aif.budget_state(numeric, numeric, int[])
	TO aif_funder, aif_operator, aif_daemon;
