-- 010_job_runs: a reused job id is another job, never a duplicate of the earlier one.
--
-- A Slurm job id repeats after MaxJobId wraps and after a slurmctld state reset, so (cluster,
-- job, node, restart) can name two jobs: the later one's usage was taken for a repeat of the
-- earlier, closed interval's and dropped. A usage row is now keyed by the job's run too: 0 for
-- the first job under that key, 1 for the next, ... aifd's usage writer (daemon/store.c) gives
-- a record the key's latest run when it is that job's (open, or closed and of the same uid
-- with the record's time within the nodes' clock tolerance of its end: a repeat), else the
-- next run. At most one run per key is open.
--
-- Adding the column does not rewrite the table (a constant default); the new primary key
-- builds one index over it, under an exclusive lock: on a large table run the upgrade in a
-- quiet moment (docs/operators.md, upgrades).

ALTER TABLE aif.usage_intervals ADD COLUMN IF NOT EXISTS run int NOT NULL DEFAULT 0 CHECK (run >= 0);
ALTER TABLE aif.usage_intervals DROP CONSTRAINT usage_intervals_pkey,
	ADD PRIMARY KEY (cluster, job_id, node, restart_count, run);
COMMENT ON COLUMN aif.usage_intervals.run IS
	'0 for the first job under this job id, node and restart; 1, 2, ... after the job id was reused';
CREATE UNIQUE INDEX IF NOT EXISTS usage_intervals_open_run
	ON aif.usage_intervals (cluster, job_id, node, restart_count) WHERE ended_at IS NULL;
DROP INDEX IF EXISTS aif.usage_intervals_open;

ALTER TABLE aif.unattributed_intervals ADD COLUMN IF NOT EXISTS run int NOT NULL DEFAULT 0 CHECK (run >= 0);
ALTER TABLE aif.unattributed_intervals DROP CONSTRAINT unattributed_intervals_pkey,
	ADD PRIMARY KEY (cluster, job_id, node, restart_count, run);
CREATE UNIQUE INDEX IF NOT EXISTS unattributed_intervals_open_run
	ON aif.unattributed_intervals (cluster, job_id, node, restart_count) WHERE ended_at IS NULL;
DROP INDEX IF EXISTS aif.unattributed_intervals_open;

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
REVOKE ALL ON FUNCTION aif.usage_run(int, timestamptz, timestamptz, bigint, bigint, timestamptz, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION aif.usage_run(int, timestamptz, timestamptz, bigint, bigint, timestamptz, interval)
	TO aif_daemon, aif_operator;

-- 002's UPDATE trigger pairs old and new rows by the whole key, the run included (two runs of
-- a key may be changed by one statement). Otherwise as in 002 and 008.
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

INSERT INTO aif.schema_migrations (version, name) VALUES (10, '010_job_runs') ON CONFLICT DO NOTHING;
