-- sql/repeatable/35_reserve.sql: admission that reserves (sql/012_reservations.sql; docs/aifd.md,
-- "Reservations"): a job's maximum cost checked against what is left and reserved in one step
-- for every aifd on the database, and released when the job's run ends.
--
-- A repeatable file: the current definition of what it holds, run again by every
-- "aifctl db migrate" after the versioned migrations (docs/database.md, "Migrations").
-- Change a function or view here, never in a versioned migration.

-- What the budget of a project (projects: its id) or a factory (projects: all of its) in
-- period [t0, t1) has committed: closed usage (rollup and queue) and reservations. The open
-- intervals of reserved jobs are in their reservations; those of jobs admitted without one
-- (aifd unreachable, or before the project reserved) count once closed.
CREATE OR REPLACE FUNCTION aif.committed_us(projects text[], period_id text, t0 timestamptz,
					    t1 timestamptz)
RETURNS bigint LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT (coalesce((SELECT sum(u.gpu_us) FROM aif.usage_period_rollup u
		  WHERE u.period_id = committed_us.period_id AND u.project_id = ANY (projects)), 0)
	+ coalesce((SELECT sum(aif_report.gpu_us_within(q.gpus, q.started_at, q.ended_at, t0, t1))
		    FROM aif.usage_queue q
		    WHERE q.project_id = ANY (projects) AND q.started_at < t1 AND q.ended_at > t0), 0)
	+ coalesce((SELECT sum(aif_report.gpu_us_within(r.gpus, r.starts_at, r.ends_at, t0, t1))
		    FROM aif.reservations r
		    WHERE r.project_id = ANY (projects) AND r.starts_at < t1 AND r.ends_at > t0), 0)
       )::bigint
$$;

-- Reserve gpus over [starts, ends) for job (cluster, job) of project: only when, in every period
-- the span reaches, the cost fits what the project's budget (if it has one there) and its
-- factory's budget (none: no GPU-hours) have left after what they committed. Row-locks the
-- factory, so that admissions against one factory's budgets, from any aifd, take turns: the
-- check and the insert are one step for all of them, and together they never reserve more than
-- fits. A job reserved already (another node's or step's admission) fits as it did.
-- Returns fits, and the figures of the budget that decided (scope project or factory, owner its
-- id): the first that has no room, else the one left with the least room (its committed_us then
-- includes this job's cost).
CREATE OR REPLACE FUNCTION aif.reserve(cluster text, job bigint, project text, gpus bigint,
				       starts timestamptz, ends timestamptz,
				       OUT fits boolean, OUT period_id text, OUT scope text, OUT owner text,
				       OUT budget_us bigint, OUT committed_us bigint, OUT cost_us bigint)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	factory text;
	b record;
	least_room bigint;
BEGIN
	SELECT p.factory_id INTO factory FROM aif.projects p WHERE p.id = reserve.project;
	IF NOT FOUND THEN
		RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation',
			MESSAGE = format('cannot reserve for an unknown project "%s"', reserve.project),
			HINT = 'Apply a budgets file that defines it first.';
	END IF;
	PERFORM 1 FROM aif.factories f WHERE f.id = factory FOR UPDATE;
	fits := true;
	IF EXISTS (SELECT 1 FROM aif.reservations r
		   WHERE r.cluster = reserve.cluster AND r.job_id = reserve.job) THEN
		RETURN;
	END IF;
	FOR b IN
		WITH hit AS (
			SELECT pe.id, pe.starts_on, x.t0, x.t1,
			       aif_report.gpu_us_within(reserve.gpus, starts, ends, x.t0, x.t1) AS cost
			FROM aif.periods pe
			CROSS JOIN LATERAL (SELECT pe.starts_on::timestamp AT TIME ZONE 'UTC' AS t0,
						   pe.ends_on::timestamp AT TIME ZONE 'UTC' AS t1) x
			WHERE x.t0 < ends AND x.t1 > starts
		), scoped AS (
			SELECT h.*, 'project' AS scope, reserve.project AS owner, pb.gpu_hours,
			       ARRAY[reserve.project] AS projects
			FROM hit h
			JOIN aif.project_budgets pb ON pb.period_id = h.id AND pb.project_id = reserve.project
			UNION ALL
			SELECT h.*, 'factory', factory, coalesce(fb.gpu_hours, 0),
			       ARRAY(SELECT p.id FROM aif.projects p WHERE p.factory_id = factory)
			FROM hit h
			LEFT JOIN aif.factory_budgets fb ON fb.period_id = h.id AND fb.factory_id = factory
		)
		SELECT s.id, s.scope, s.owner, s.cost, aif_report.budget_threshold_us(s.gpu_hours, 100) AS budget,
		       aif.committed_us(s.projects, s.id, s.t0, s.t1) AS committed
		FROM scoped s
		WHERE s.cost > 0
		ORDER BY s.starts_on, s.id, s.scope DESC
	LOOP
		IF b.committed::numeric + b.cost > b.budget THEN
			fits := false;
			period_id := b.id;
			scope := b.scope;
			owner := b.owner;
			budget_us := b.budget;
			committed_us := b.committed;
			cost_us := b.cost;
			RETURN;
		END IF;
		IF least_room IS NULL OR b.budget - b.committed - b.cost < least_room THEN
			least_room := b.budget - b.committed - b.cost;
			period_id := b.id;
			scope := b.scope;
			owner := b.owner;
			budget_us := b.budget;
			committed_us := b.committed + b.cost;
			cost_us := b.cost;
		END IF;
	END LOOP;
	INSERT INTO aif.reservations (cluster, job_id, project_id, gpus, starts_at, ends_at)
	VALUES (reserve.cluster, reserve.job, reserve.project, reserve.gpus, starts, ends)
	ON CONFLICT DO NOTHING;
END
$$;

-- Release the reservations of the jobs (clusters[i], jobs[i]) that have no open interval left:
-- their runs ended, and what they used is in the rollups' queue from the same transaction (the
-- triggers of aif.usage_intervals call this), so the budget never sees neither or both.
CREATE OR REPLACE FUNCTION aif.reservations_release(clusters text[], jobs bigint[]) RETURNS void
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DELETE FROM aif.reservations r
USING (SELECT DISTINCT c, j FROM unnest(clusters, jobs) AS k(c, j)) k
WHERE r.cluster = k.c AND r.job_id = k.j
  AND NOT EXISTS (SELECT 1 FROM aif.usage_intervals i
		  WHERE i.cluster = k.c AND i.job_id = k.j AND i.ended_at IS NULL)
$$;

REVOKE ALL ON FUNCTION aif.committed_us(text[], text, timestamptz, timestamptz),
	aif.reserve(text, bigint, text, bigint, timestamptz, timestamptz),
	aif.reservations_release(text[], bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION aif.reserve(text, bigint, text, bigint, timestamptz, timestamptz)
	TO aif_daemon;
GRANT EXECUTE ON FUNCTION aif.committed_us(text[], text, timestamptz, timestamptz)
	TO aif_daemon, aif_operator;
