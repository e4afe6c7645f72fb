-- sql/repeatable/20_usage.sql: the rules of usage records: which run of a key a record belongs
-- to, which admission is a job's, and what may change in aif.usage_intervals (its triggers
-- feed the rollups' queue).
--
-- A repeatable file: the current definition of what it holds, run again by every
-- "aifctl db migrate" after the versioned migrations (docs/database.md, "Migrations").
-- Change a function or view here, never in a versioned migration.

-- Which run of a key a record at time at of uid job_uid belongs to, given the key's latest run
-- (latest_run NULL: none yet). A record from before the latest run began is a repeat of an
-- earlier, closed run's (an old spool sent again): it goes to that run, where it changes
-- nothing. One rule for both tables (daemon/store.c).
CREATE OR REPLACE FUNCTION aif.usage_run(latest_run int, latest_start timestamptz,
					 latest_end timestamptz, latest_uid bigint, job_uid bigint,
					 at timestamptz, tolerance interval)
RETURNS int LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT CASE WHEN latest_run IS NULL THEN 0
		  WHEN latest_run > 0 AND at < latest_start - tolerance THEN latest_run - 1
		  WHEN latest_end IS NULL THEN latest_run
		  WHEN latest_uid IS NOT DISTINCT FROM job_uid AND at <= latest_end + tolerance THEN latest_run
		  ELSE latest_run + 1 END $$;
COMMENT ON FUNCTION aif.usage_run(int, timestamptz, timestamptz, bigint, bigint, timestamptz, interval) IS
	'the run of a usage key a record belongs to: the latest if it is that job''s, else the next';

-- An admission is a job's only while it is current: a Slurm job id repeats after MaxJobId
-- wraps and after a slurmctld state reset. An admission decided for another uid, or 30 days
-- ago for a job that aifd's reconciliation has not seen running in the last day, belongs to
-- an earlier job of that id: it is decided again (aifd's KEEP statement replaces it) and
-- never charges the later job's usage. (A job still running after 30 days keeps its
-- admission: reconciliation sees it at every pass, aif.job_last_seen.)
CREATE OR REPLACE FUNCTION aif.admission_current(adm aif.admissions, job_uid bigint)
RETURNS boolean LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT adm.uid = job_uid AND (adm.decided_at > now() - interval '30 days'
	OR EXISTS (SELECT 1 FROM aif.job_last_seen s WHERE s.cluster = adm.cluster
		   AND s.job_id = adm.job_id AND s.seen_at > now() - interval '1 day')) $$;
COMMENT ON FUNCTION aif.admission_current(aif.admissions, bigint) IS
	'whether a kept admission is the one of the job its uid runs now (job ids repeat)';

-- The project and the sector of new or changed rows must exist (what foreign keys would check,
-- once per statement instead of twice per row; see sql/001_core.sql).
CREATE OR REPLACE FUNCTION aif.usage_check_references(project_id text, sector_id text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF project_id IS NULL THEN
		RETURN;
	END IF;
	RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation',
		MESSAGE = CASE WHEN NOT EXISTS (SELECT 1 FROM aif.projects p WHERE p.id = project_id)
			       THEN format('usage refers to an unknown project "%s"', project_id)
			       ELSE format('usage refers to an unknown sector "%s"', sector_id) END,
		DETAIL = 'Usage intervals must refer to projects and sectors in aif.projects and aif.sectors.',
		HINT = 'Apply a budgets file that defines them first.';
END
$$;

CREATE OR REPLACE FUNCTION aif.usage_intervals_inserted() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	bad record;
BEGIN
	SELECT n.project_id, n.sector_id INTO bad
	FROM (SELECT DISTINCT r.project_id, r.sector_id FROM new_rows r) n
	WHERE NOT EXISTS (SELECT 1 FROM aif.projects p WHERE p.id = n.project_id)
	   OR NOT EXISTS (SELECT 1 FROM aif.sectors s WHERE s.id = n.sector_id)
	LIMIT 1;
	PERFORM aif.usage_check_references(bad.project_id, bad.sector_id);

	INSERT INTO aif.usage_queue (cluster, job_id, node, restart_count, project_id, sector_id, gpus,
				     started_at, ended_at)
	SELECT n.cluster, n.job_id, n.node, n.restart_count, n.project_id, n.sector_id, n.gpus,
	       n.started_at, n.ended_at
	FROM new_rows n
	WHERE n.ended_at IS NOT NULL;
	RETURN NULL;
END
$$;

-- The UPDATE trigger pairs old and new rows by the whole key, the run included (two runs of a
-- key may be changed by one statement). Without nested loops: the settled ends of a round close
-- their intervals in one UPDATE of hundreds of rows, and the planner takes each transition
-- table for one row (as nested loops, quadratic in the rows: 123 ms for 250 closes, 3.7 ms
-- with hash joins).
CREATE OR REPLACE FUNCTION aif.usage_intervals_updated() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET enable_nestloop = off
AS $$
DECLARE
	bad record;
BEGIN
	-- An open interval may change freely (it is not in any rollup yet); a closed one only in
	-- what the rollups ignore (uid, user_name, end_source, exact); the key never.
	SELECT coalesce(o.cluster, n.cluster) AS cluster, coalesce(o.job_id, n.job_id) AS job_id,
	       coalesce(o.node, n.node) AS node, coalesce(o.restart_count, n.restart_count) AS restart_count,
	       coalesce(o.run, n.run) AS run, (o.cluster IS NULL OR n.cluster IS NULL) AS key_changed
	INTO bad
	FROM old_rows o
	FULL JOIN new_rows n ON n.cluster = o.cluster AND n.job_id = o.job_id
		AND n.node = o.node AND n.restart_count = o.restart_count AND n.run = o.run
	WHERE o.cluster IS NULL OR n.cluster IS NULL
	   OR (o.ended_at IS NOT NULL
	       AND (n.ended_at IS DISTINCT FROM o.ended_at OR n.started_at <> o.started_at
		    OR n.gpus <> o.gpus OR n.project_id <> o.project_id OR n.sector_id <> o.sector_id))
	LIMIT 1;
	IF FOUND THEN
		IF bad.key_changed THEN
			RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
				MESSAGE = 'the key of a usage interval cannot be changed',
				DETAIL = format('Interval cluster %s, job %s, node %s, restart %s, run %s.',
						bad.cluster, bad.job_id, bad.node, bad.restart_count, bad.run),
				HINT = 'Insert a new interval instead.';
		END IF;
		RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
			MESSAGE = format('usage interval (cluster %s, job %s, node %s, restart %s, run %s) is closed and cannot be changed',
					 bad.cluster, bad.job_id, bad.node, bad.restart_count, bad.run),
			DETAIL = 'The project, sector, gpus, started_at and ended_at of a closed interval are folded into the usage rollups.',
			HINT = 'Only an open interval can be closed or changed. To correct history, disable the triggers of aif.usage_intervals as its owner, fix the rows, enable them and run SELECT aif.rollup_rebuild().';
	END IF;

	SELECT n.project_id, n.sector_id INTO bad
	FROM old_rows o
	JOIN new_rows n ON n.cluster = o.cluster AND n.job_id = o.job_id
		AND n.node = o.node AND n.restart_count = o.restart_count AND n.run = o.run
	WHERE (n.project_id <> o.project_id
	       AND NOT EXISTS (SELECT 1 FROM aif.projects p WHERE p.id = n.project_id))
	   OR (n.sector_id <> o.sector_id
	       AND NOT EXISTS (SELECT 1 FROM aif.sectors s WHERE s.id = n.sector_id))
	LIMIT 1;
	PERFORM aif.usage_check_references(bad.project_id, bad.sector_id);

	INSERT INTO aif.usage_queue (cluster, job_id, node, restart_count, project_id, sector_id, gpus,
				     started_at, ended_at)
	SELECT n.cluster, n.job_id, n.node, n.restart_count, n.project_id, n.sector_id, n.gpus,
	       n.started_at, n.ended_at
	FROM old_rows o
	JOIN new_rows n ON n.cluster = o.cluster AND n.job_id = o.job_id
		AND n.node = o.node AND n.restart_count = o.restart_count AND n.run = o.run
	WHERE o.ended_at IS NULL AND n.ended_at IS NOT NULL;
	RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION aif.usage_intervals_no_delete() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
		MESSAGE = 'usage intervals cannot be deleted',
		DETAIL = 'They are the accounting record; the usage rollups are derived from them.',
		HINT = 'Close an open interval instead (set ended_at). To correct history, disable the triggers of aif.usage_intervals as its owner, fix the rows, enable them and run SELECT aif.rollup_rebuild().';
END
$$;

CREATE OR REPLACE FUNCTION aif.usage_intervals_truncated() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	TRUNCATE aif.usage_queue, aif.usage_daily_rollup, aif.usage_monthly_rollup,
		aif.usage_period_rollup;
	RETURN NULL;
END
$$;

-- Rights: what aifd and operators call; the trigger functions are called by their triggers.
REVOKE ALL ON FUNCTION aif.usage_run(int, timestamptz, timestamptz, bigint, bigint, timestamptz, interval),
	aif.admission_current(aif.admissions, bigint), aif.usage_check_references(text, text),
	aif.usage_intervals_inserted(), aif.usage_intervals_updated(), aif.usage_intervals_no_delete(),
	aif.usage_intervals_truncated() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION aif.usage_run(int, timestamptz, timestamptz, bigint, bigint, timestamptz, interval),
	aif.admission_current(aif.admissions, bigint) TO aif_daemon, aif_operator;
