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
-- nothing. One rule for both tables (daemon/usage/store.c).
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

-- The records of a group of aif.record_usage() as rows, in their order of arrival (i), each
-- beside its key's latest run in aif.usage_intervals (l_*), with why no project can be charged
-- ("job-id-in-use" when that run is another uid's and still open: an earlier job of a reused
-- id) and the project and sector charged (c_*): the record's own, or, for an unattributed
-- record of that run (its uid's), the run's; NULL: none, the record is unattributed. The one
-- definition for every statement of aif.record_usage(): a plain SQL function, which the
-- planner inlines into each.
CREATE OR REPLACE FUNCTION aif.usage_records_placed(boolean[], text[], bigint[], text[], bigint[],
						    text[], text[], bigint[], text[], bigint[],
						    bigint[], bigint[], boolean[], boolean[], text[],
						    interval)
RETURNS TABLE (is_end boolean, cluster text, job_id bigint, node text, restart_count bigint,
	       project_id text, sector_id text, uid bigint, user_name text, gpus bigint, st bigint,
	       en bigint, exact boolean, final boolean, i bigint, why text, c_project text,
	       c_sector text, l_run int, l_start timestamptz, l_end timestamptz, l_uid bigint)
LANGUAGE sql STABLE
AS $$
	SELECT p.is_end, p.cluster, p.job_id, p.node, p.restart_count, p.project_id, p.sector_id,
	 p.uid, p.user_name, p.gpus, p.st, p.en, p.exact, p.final, p.i, p.why,
	 CASE WHEN p.why IS NULL THEN p.project_id WHEN p.of_latest THEN p.l_project END,
	 CASE WHEN p.why IS NULL THEN p.sector_id WHEN p.of_latest THEN p.l_sector END,
	 p.l_run, p.l_start, p.l_end, p.l_uid
	FROM (SELECT r0.*,
	  CASE WHEN r0.why0 IS NULL AND l.run IS NOT NULL AND l.ended_at IS NULL
	   AND l.uid IS DISTINCT FROM r0.uid THEN 'job-id-in-use' ELSE r0.why0 END AS why,
	  l.uid = r0.uid AND aif.usage_run(l.run, l.started_at, l.ended_at, l.uid, r0.uid,
	   pg_catalog.to_timestamp(coalesce(r0.st, r0.en)), $16) = l.run AS of_latest,
	  l.project_id AS l_project, l.sector_id AS l_sector, l.run AS l_run,
	  l.started_at AS l_start, l.ended_at AS l_end, l.uid AS l_uid
	 FROM unnest($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
	  WITH ORDINALITY AS r0(is_end, cluster, job_id, node, restart_count, project_id, sector_id,
	   uid, user_name, gpus, st, en, exact, final, why0, i)
	 LEFT JOIN LATERAL (SELECT l.run, l.started_at, l.ended_at, l.uid, l.project_id, l.sector_id
	  FROM aif.usage_intervals l WHERE l.cluster = r0.cluster AND l.job_id = r0.job_id
	  AND l.node = r0.node AND l.restart_count = r0.restart_count
	  ORDER BY l.run DESC LIMIT 1) l ON true) p
$$;

-- Write a group of usage records (aifd's usage writer, daemon/usage/store.c, and its settler): one
-- call per group, the records as arrays, so that a group costs one round trip whatever its
-- size. $1 is_end, $2 cluster, $3 job, $4 node, $5 restart, $6 project, $7 sector, $8 uid,
-- $9 user, $10 gpus, $11 start (NULL: unknown), $12 end (NULL for starts), $13 exact, $14
-- final, $15 unattributed (why no project can be charged, NULL when one is); $16 how far a
-- node's clock may be from slurmctld's. The project of each record is the one aifd charges
-- (it decides it once, daemon/handler.c); this function only stores.
-- The records are merged per interval key first (starts and ends of the same key,
-- duplicates), so that the result does not depend on their order, and so that an INSERT ...
-- ON CONFLICT never touches a row twice.
-- Each row goes to its key's run (aif.usage_run()): the latest when the record is that job's
-- (a repeat, or the run is open), else the next: a job id used again. An unattributed record
-- goes to aif.unattributed_intervals (start and end merged per key, the nodes' times, never
-- settled), unless its key is an interval of the same uid stored for a project already: then
-- it is that interval's, with its project (a start charged, an end that no longer can be).
-- Another uid's interval is an earlier job of a reused id; while it is open (its end not yet
-- arrived), a record of another uid cannot be its next run (one run of a key is open at a
-- time) nor merged into it: it is unattributed, "job-id-in-use", and moves to its own run
-- when its charged end comes (mv) after the earlier run closed. A final end that is charged
-- moves an open unattributed row of its key and uid into its interval (mv: the row's start
-- serves when the end has none): the job's admission came after its start.
-- An end that is not final (not settled yet) only goes to aif.usage_end_inbox; a final end
-- closes its interval and leaves the inbox. Per key the first start and the first final end
-- of the group count (WITH ORDINALITY keeps the order of arrival). The start record gives
-- project, sector, uid, user and gpus; an end alone gives its own, and re-tags an interval
-- opened before the job's admission with the project its end is charged to. An exact end (a
-- settled one) gives the interval's start too (slurmctld's), whatever the start record said.
-- An end whose start nobody knows (no start record, slurmctld has forgotten the job) starts
-- at the job's current admission (aif.admission_current()): the job was running then, on all
-- its nodes. Not for a requeued run (the admission is the first run's) nor a reused id (it
-- may be the earlier job's: the key has a run, or the job id an interval that ended well
-- before this end): those start at their end.
-- A new interval takes the charging version in force (aif.project_charging) and is charged
-- aif.charged_gpus_unallocated(), what aif.charged_gpus() gives without an allocation (the view
-- joined once per project and cluster of the group (kc), and the expression inlined: a function
-- looking the version up per row cost a fifth of a start, the view joined per row 9 % of a
-- group of 500 starts), until aifd learns what slurmctld allocated
-- (aif.record_allocations()); stored as aif.charged_gpus_stored() says (NULL: its GPUs).
-- A start's src is NULL: the test for an end without a start is IS NOT DISTINCT FROM, false
-- rather than NULL for it, so that the AND stops there instead of probing the job's intervals.
-- Integers travel as bigint and are cast where stored, so that an out-of-range value is a
-- data error (22003). PL/pgSQL keeps the statement's plans for the session, as a prepared
-- statement's; which one runs is chosen by the group's size (plan_cache_mode). PostgreSQL's
-- own choice planned a small group (a prolog's or epilog's record alone) anew at every call:
-- 1.4 ms of a start's 1.9 ms. Its generic plan, planned once, guesses 10 records per array:
-- right for a small group, but it joins a large one (a settle round of thousands of ends) to
-- the inbox and the unattributed rows in nested loops, 75 s instead of 0.5 s for 20,000 ends.
-- So a group of up to 32 records, or of starts only (they never meet the inbox, and the
-- unattributed rows only by index probes: 500 starts 7.3 ms instead of 8.7, 20,000 in 0.28 s
-- instead of 0.43), runs the generic plan, and a larger one with ends in the general statement
-- a plan made for its size at each call (1.5 ms of planning for 500 records). The statements
-- of one kind (below) run the generic plan at any size: they join nothing to the inbox or the
-- unattributed rows (20,000 epilogs' ends in one group: 0.16 s, 0.28-0.32 s before).
-- A group of one kind (starts only: prologs'; ends not final only: epilogs') whose every
-- record has a project to charge runs a statement of its kind, which does what the general
-- statement would do with it and opens only the table it writes: a statement's executor opens
-- every table and index its plan may write, whether or not a row comes, and the general
-- statement cost a prolog's start 0.51 ms and an epilog's end 0.46, the statement of their
-- kind 0.38 and 0.29 (a durable one-row INSERT: 0.20). Any other group runs the general
-- statement alone: a statement of one kind that finds a record without a project stores
-- nothing, so that every group is stored by one statement, from one snapshot (two statements
-- could place a record differently when another session commits between them).
DROP FUNCTION IF EXISTS aif.record_usage(boolean[], text[], bigint[], text[], bigint[], text[],
	text[], bigint[], text[], bigint[], bigint[], bigint[], boolean[], boolean[], text[], text[],
	bigint[], bigint[], bigint[], bigint[], interval);
CREATE OR REPLACE FUNCTION aif.record_usage(boolean[], text[], bigint[], text[], bigint[],
					    text[], text[], bigint[], text[], bigint[], bigint[],
					    bigint[], boolean[], boolean[], text[], interval)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
	n_ends int := cardinality(array_positions($1, true));
	unplaced bigint; -- a statement of one kind: its records without a project (it stored none)
BEGIN
	IF n_ends = 0 THEN -- starts only (prologs'): new open intervals
		WITH r AS (
		SELECT * FROM aif.usage_records_placed($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,
		 $12, $13, $14, $15, $16)
		), s AS (
		SELECT DISTINCT ON (cluster, job_id, node, restart_count) * FROM r
		WHERE NOT EXISTS (SELECT 1 FROM r u WHERE u.c_project IS NULL)
		ORDER BY cluster, job_id, node, restart_count, i
		), kc AS (
		SELECT c.project_id, c.cluster, v.charging_version, v.unrated_rate
		FROM (SELECT DISTINCT c_project AS project_id, cluster FROM s) c
		LEFT JOIN aif.project_charging v ON v.project_id = c.project_id AND v.cluster = c.cluster
		), opened AS (
		INSERT INTO aif.usage_intervals (cluster, job_id, node, restart_count, run, project_id,
		 sector_id, uid, user_name, gpus, started_at, charging_version, charged_gpus)
		SELECT s.cluster, s.job_id, s.node, s.restart_count::int,
		 aif.usage_run(s.l_run, s.l_start, s.l_end, s.l_uid, s.uid, to_timestamp(s.st), $16),
		 s.c_project, s.c_sector, s.uid, s.user_name, s.gpus::int, to_timestamp(s.st),
		 pc.charging_version,
		 aif.charged_gpus_stored(aif.charged_gpus_unallocated(s.gpus, pc.unrated_rate), s.gpus)
		FROM s LEFT JOIN kc pc ON pc.project_id = s.c_project AND pc.cluster = s.cluster
		ORDER BY s.cluster, s.job_id, s.node, s.restart_count
		ON CONFLICT (cluster, job_id, node, restart_count, run) DO NOTHING
		)
		SELECT count(*) INTO unplaced FROM r WHERE c_project IS NULL;
	ELSIF n_ends = cardinality($1) AND NOT (true = ANY($14)) THEN -- ends not final only (epilogs')
		-- the general statement's inbox, alone (tests/integration/sql_usage.sh: the same rows)
		WITH r AS (
		SELECT * FROM aif.usage_records_placed($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,
		 $12, $13, $14, $15, $16)
		), inbox AS (
		INSERT INTO aif.usage_end_inbox (cluster, job_id, node, restart_count, project_id,
		 sector_id, uid, user_name, gpus, started_at, ended_at)
		SELECT DISTINCT ON (cluster, job_id, node, restart_count) cluster, job_id, node,
		 restart_count::int, c_project, c_sector, uid, user_name, gpus::int,
		 to_timestamp(st), to_timestamp(en)
		FROM r WHERE NOT EXISTS (SELECT 1 FROM r u WHERE u.c_project IS NULL)
		ORDER BY cluster, job_id, node, restart_count, i
		ON CONFLICT DO NOTHING
		)
		SELECT count(*) INTO unplaced FROM r WHERE c_project IS NULL;
	END IF;
	IF unplaced = 0 THEN
		RETURN;
	END IF;
	-- A group that closes intervals first takes the locks of every factory whose reservations
	-- the closes may release, all at once (aif.reservations_lock_jobs()): the statement's update
	-- and insert triggers, each releasing its own, then take them again without waiting. Taken
	-- one trigger after the other, they could wait in a circle with an admission.
	IF true = ANY($14) THEN
		PERFORM aif.reservations_lock_jobs($2, $3, $6);
	END IF;
	-- (until the call returns: the SET clause restores it)
	IF cardinality($1) > 32 AND n_ends > 0 THEN
		PERFORM set_config('plan_cache_mode', 'force_custom_plan', true);
	END IF;
	WITH r1 AS (
	SELECT * FROM aif.usage_records_placed($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
	 $13, $14, $15, $16)
	), un AS (
	INSERT INTO aif.unattributed_intervals AS x (cluster, job_id, node, restart_count, run,
	 reason, project_asked, uid, user_name, gpus, started_at, ended_at)
	SELECT g.cluster, g.job_id, g.node, g.restart_count::int,
	 aif.usage_run(l.run, l.started_at, l.ended_at, l.uid, g.uid, to_timestamp(g.st), $16),
	 g.why, g.project_id, g.uid, g.user_name, g.gpus::int, to_timestamp(g.st),
	 CASE WHEN g.en IS NULL THEN NULL ELSE to_timestamp(greatest(g.en, g.st)) END
	FROM (SELECT cluster, job_id, node, restart_count, min(why) AS why,
	  min(project_id) AS project_id, max(uid) AS uid, min(user_name) AS user_name,
	  max(gpus) AS gpus, min(en) AS en,
	  coalesce(min(st) FILTER (WHERE NOT is_end), min(st), min(en)) AS st
	 FROM r1 WHERE why IS NOT NULL AND c_project IS NULL
	 GROUP BY cluster, job_id, node, restart_count) g
	LEFT JOIN LATERAL (SELECT run, started_at, ended_at, uid FROM aif.unattributed_intervals l
	 WHERE l.cluster = g.cluster AND l.job_id = g.job_id AND l.node = g.node
	 AND l.restart_count = g.restart_count ORDER BY l.run DESC LIMIT 1) l ON true
	ON CONFLICT (cluster, job_id, node, restart_count, run) DO UPDATE SET ended_at = excluded.ended_at
	WHERE x.ended_at IS NULL AND excluded.ended_at IS NOT NULL
	), r AS (
	SELECT is_end, cluster, job_id, node, restart_count, c_project AS project_id,
	 c_sector AS sector_id, uid, user_name, gpus, st, en, exact, final, i, l_run, l_start, l_end,
	 l_uid FROM r1 WHERE why IS NULL OR c_project IS NOT NULL
	), inbox AS (
	INSERT INTO aif.usage_end_inbox (cluster, job_id, node, restart_count, project_id,
	 sector_id, uid, user_name, gpus, started_at, ended_at)
	SELECT DISTINCT ON (cluster, job_id, node, restart_count) cluster, job_id, node,
	 restart_count::int, project_id, sector_id, uid, user_name, gpus::int,
	 to_timestamp(st), to_timestamp(en)
	FROM r WHERE is_end AND NOT final ORDER BY cluster, job_id, node, restart_count, i
	ON CONFLICT DO NOTHING
	), settled AS (
	DELETE FROM aif.usage_end_inbox x USING r WHERE r.is_end AND r.final
	 AND x.cluster = r.cluster AND x.job_id = r.job_id AND x.node = r.node
	 AND x.restart_count = r.restart_count
	), s AS (
	SELECT DISTINCT ON (cluster, job_id, node, restart_count) * FROM r WHERE NOT is_end
	ORDER BY cluster, job_id, node, restart_count, i
	), e AS (
	SELECT DISTINCT ON (cluster, job_id, node, restart_count) * FROM r WHERE is_end AND final
	ORDER BY cluster, job_id, node, restart_count, i
	), mv AS (
	DELETE FROM aif.unattributed_intervals x USING e
	WHERE x.cluster = e.cluster AND x.job_id = e.job_id AND x.node = e.node
	 AND x.restart_count = e.restart_count AND x.uid = e.uid AND x.ended_at IS NULL
	RETURNING x.cluster, x.job_id, x.node, x.restart_count,
	 extract(epoch FROM x.started_at)::bigint AS st
	), k AS (
	SELECT coalesce(s.cluster, e.cluster) AS cluster, coalesce(s.job_id, e.job_id) AS job_id,
	 coalesce(s.node, e.node) AS node,
	 coalesce(s.restart_count, e.restart_count) AS restart_count,
	 CASE WHEN s.i IS NULL THEN e.project_id ELSE s.project_id END AS project_id,
	 CASE WHEN s.i IS NULL THEN e.sector_id ELSE s.sector_id END AS sector_id,
	 CASE WHEN s.i IS NULL THEN e.uid ELSE s.uid END AS uid,
	 CASE WHEN s.i IS NULL THEN e.user_name ELSE s.user_name END AS user_name,
	 CASE WHEN s.i IS NULL THEN e.gpus ELSE s.gpus END AS gpus,
	 CASE WHEN s.i IS NULL THEN e.l_run ELSE s.l_run END AS l_run,
	 CASE WHEN s.i IS NULL THEN e.l_start ELSE s.l_start END AS l_start,
	 CASE WHEN s.i IS NULL THEN e.l_end ELSE s.l_end END AS l_end,
	 CASE WHEN s.i IS NULL THEN e.l_uid ELSE s.l_uid END AS l_uid,
	 CASE WHEN e.exact THEN e.st ELSE coalesce(s.st, e.st, mv.st, e.en) END AS st, e.en,
	 coalesce(e.exact, false) AS exact,
	 CASE WHEN e.i IS NULL THEN NULL
	  WHEN coalesce(s.st, e.st, mv.st) IS NULL THEN 'epilog-no-start' ELSE 'epilog' END AS src
	FROM s FULL JOIN e ON e.cluster = s.cluster AND e.job_id = s.job_id
	 AND e.node = s.node AND e.restart_count = s.restart_count
	LEFT JOIN mv ON mv.cluster = e.cluster AND mv.job_id = e.job_id AND mv.node = e.node
	 AND mv.restart_count = e.restart_count
	), kc AS (
	SELECT c.project_id, c.cluster, v.charging_version, v.unrated_rate
	FROM (SELECT DISTINCT project_id, cluster FROM k) c
	LEFT JOIN aif.project_charging v ON v.project_id = c.project_id AND v.cluster = c.cluster
	)
	INSERT INTO aif.usage_intervals AS u (cluster, job_id, node, restart_count, run, project_id,
	 sector_id, uid, user_name, gpus, started_at, ended_at, end_source, exact, charging_version,
	 charged_gpus)
	SELECT k.cluster, k.job_id, k.node, k.restart_count::int,
	 aif.usage_run(k.l_run, k.l_start, k.l_end, k.l_uid, k.uid, to_timestamp(k.st), $16),
	 k.project_id, k.sector_id, k.uid,
	 k.user_name, k.gpus::int,
	 CASE WHEN k.src IS NOT DISTINCT FROM 'epilog-no-start' AND k.restart_count = 0 AND k.l_run IS NULL
	  AND a.decided_at < to_timestamp(k.en) AND NOT EXISTS (SELECT 1 FROM aif.usage_intervals o
	   WHERE o.cluster = k.cluster AND o.job_id = k.job_id
	   AND o.ended_at < to_timestamp(k.en) - $16)
	  THEN a.decided_at ELSE to_timestamp(k.st) END,
	 CASE WHEN k.en IS NULL THEN NULL ELSE to_timestamp(greatest(k.en, k.st)) END, k.src, k.exact,
	 pc.charging_version,
	 aif.charged_gpus_stored(aif.charged_gpus_unallocated(k.gpus, pc.unrated_rate), k.gpus)
	FROM k LEFT JOIN aif.admissions a ON a.cluster = k.cluster AND a.job_id = k.job_id
	 AND a.sector_id IS NOT NULL
	 AND aif.admission_current(a, k.uid)
	LEFT JOIN kc pc ON pc.project_id = k.project_id AND pc.cluster = k.cluster
	ORDER BY k.cluster, k.job_id, k.node, k.restart_count
	ON CONFLICT (cluster, job_id, node, restart_count, run) DO UPDATE
	SET project_id = excluded.project_id, sector_id = excluded.sector_id,
	 started_at = CASE WHEN excluded.exact THEN excluded.started_at ELSE u.started_at END,
	 ended_at = greatest(excluded.ended_at,
	  CASE WHEN excluded.exact THEN excluded.started_at ELSE u.started_at END),
	 end_source = 'epilog', exact = excluded.exact
	WHERE u.ended_at IS NULL AND excluded.ended_at IS NOT NULL;
END
$$;

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

	-- Open intervals (a prolog's start) go to no rollup and release nothing: a statement
	-- that adds none closed is done here, with one cheap check instead of two statements.
	IF NOT EXISTS (SELECT 1 FROM new_rows n WHERE n.ended_at IS NOT NULL) THEN
		RETURN NULL;
	END IF;
	INSERT INTO aif.usage_queue (cluster, job_id, node, restart_count, project_id, sector_id, gpus,
				     started_at, ended_at, charged_gpus, gpu_models)
	SELECT n.cluster, n.job_id, n.node, n.restart_count, n.project_id, n.sector_id, n.gpus,
	       n.started_at, n.ended_at, n.charged_gpus, n.gpu_models
	FROM new_rows n
	WHERE n.ended_at IS NOT NULL;

	PERFORM aif.reservations_release(array_agg(n.cluster), array_agg(n.job_id),
					 array_agg(DISTINCT n.project_id))
	FROM new_rows n
	WHERE n.ended_at IS NOT NULL
	HAVING count(*) > 0;
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
	-- aif.record_usage()'s INSERT ... ON CONFLICT DO UPDATE fires this trigger at every call,
	-- a prolog's start too, which updates no row: then one cheap check instead of the
	-- statements below. (An updated row is always in both transition tables.)
	IF NOT EXISTS (SELECT 1 FROM new_rows) THEN
		RETURN NULL;
	END IF;
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
		    OR n.gpus <> o.gpus OR n.project_id <> o.project_id OR n.sector_id <> o.sector_id
		    OR n.charged_gpus IS DISTINCT FROM o.charged_gpus
		    OR n.gpu_models IS DISTINCT FROM o.gpu_models))
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
			DETAIL = 'The project, sector, gpus, gpu_models, charged_gpus, started_at and ended_at of a closed interval are folded into the usage rollups.',
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
				     started_at, ended_at, charged_gpus, gpu_models)
	SELECT n.cluster, n.job_id, n.node, n.restart_count, n.project_id, n.sector_id, n.gpus,
	       n.started_at, n.ended_at, n.charged_gpus, n.gpu_models
	FROM old_rows o
	JOIN new_rows n ON n.cluster = o.cluster AND n.job_id = o.job_id
		AND n.node = o.node AND n.restart_count = o.restart_count AND n.run = o.run
	WHERE o.ended_at IS NULL AND n.ended_at IS NOT NULL;

	PERFORM aif.reservations_release(array_agg(n.cluster), array_agg(n.job_id),
					 array_agg(DISTINCT n.project_id) || array_agg(DISTINCT o.project_id))
	FROM old_rows o
	JOIN new_rows n ON n.cluster = o.cluster AND n.job_id = o.job_id
		AND n.node = o.node AND n.restart_count = o.restart_count AND n.run = o.run
	WHERE o.ended_at IS NULL AND n.ended_at IS NOT NULL
	HAVING count(*) > 0;
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
		aif.usage_period_rollup, aif.usage_model_monthly_rollup;
	RETURN NULL;
END
$$;

-- The triggers on aif.usage_intervals. Statement-level with transition tables: one cheap
-- INSERT per statement, whatever the batch size.
CREATE OR REPLACE TRIGGER usage_intervals_inserted AFTER INSERT ON aif.usage_intervals
	REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION aif.usage_intervals_inserted();
CREATE OR REPLACE TRIGGER usage_intervals_updated AFTER UPDATE ON aif.usage_intervals
	REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION aif.usage_intervals_updated();
CREATE OR REPLACE TRIGGER usage_intervals_no_delete BEFORE DELETE ON aif.usage_intervals
	FOR EACH STATEMENT EXECUTE FUNCTION aif.usage_intervals_no_delete();
CREATE OR REPLACE TRIGGER usage_intervals_truncated AFTER TRUNCATE ON aif.usage_intervals
	FOR EACH STATEMENT EXECUTE FUNCTION aif.usage_intervals_truncated();

-- Rights: what aifd and operators call; the trigger functions are called by their triggers.
REVOKE ALL ON FUNCTION aif.usage_run(int, timestamptz, timestamptz, bigint, bigint, timestamptz, interval),
	aif.admission_current(aif.admissions, bigint), aif.usage_check_references(text, text),
	aif.usage_intervals_inserted(), aif.usage_intervals_updated(), aif.usage_intervals_no_delete(),
	aif.usage_intervals_truncated() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION aif.usage_run(int, timestamptz, timestamptz, bigint, bigint, timestamptz, interval),
	aif.admission_current(aif.admissions, bigint) TO aif_daemon, aif_operator;
-- Inlined into aif.record_usage() only when its caller may execute it.
REVOKE ALL ON FUNCTION aif.usage_records_placed(boolean[], text[], bigint[], text[], bigint[],
	text[], text[], bigint[], text[], bigint[], bigint[], bigint[], boolean[], boolean[], text[],
	interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION aif.usage_records_placed(boolean[], text[], bigint[], text[], bigint[],
	text[], text[], bigint[], text[], bigint[], bigint[], bigint[], boolean[], boolean[], text[],
	interval) TO aif_daemon;
REVOKE ALL ON FUNCTION aif.record_usage(boolean[], text[], bigint[], text[], bigint[], text[],
	text[], bigint[], text[], bigint[], bigint[], bigint[], boolean[], boolean[], text[], interval)
	FROM PUBLIC;
GRANT EXECUTE ON FUNCTION aif.record_usage(boolean[], text[], bigint[], text[], bigint[], text[],
	text[], bigint[], text[], bigint[], bigint[], bigint[], boolean[], boolean[], text[], interval)
	TO aif_daemon;
