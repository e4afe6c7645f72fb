-- sql/repeatable/35_reserve.sql: admission that reserves (sql/012_reservations.sql; docs/aifd.md,
-- "Reservations"): a job's maximum cost checked against what is left and reserved in one step
-- for every aifd on the database, and released when the job's run ends.
--
-- A repeatable file: the current definition of what it holds, run again by every
-- "aifctl db migrate" after the versioned migrations (docs/database.md, "Migrations").
-- Change a function or view here, never in a versioned migration.
--
-- Locking. Admissions against one factory take turns: whoever inserts reservations (aif.reserve,
-- aif.waiting_release) first takes the advisory lock of each factory concerned (two-key form:
-- 1634297345 = 'aif\1', hashtext(id)), all at once and in the order of their keys, so that
-- the check and the insert are one step for every aifd, and no two of them wait for each
-- other in a circle. Releasing the reservations of ended runs (aif.reservations_release, from
-- the close of their intervals) takes the same locks, so that a close and an admission of one
-- job take turns; it only lowers what is committed, in the same transaction that queues the
-- usage that replaces it. Rows of aif.reserved_totals are changed in (period_id, project_id)
-- order. (An advisory lock rather than a row lock of aif.factories: that one writes the row,
-- which cost 0.15 ms per admission.)

-- A reservation's share of each period it reaches, in charged microseconds: charged GPUs over
-- [starts, ends), as usage is split (aif_report.charged_us_within(), the one definition).
-- Without SET (its names are qualified): the planner inlines it into each caller's plan.
DROP FUNCTION IF EXISTS aif.reservation_shares(bigint, timestamptz, timestamptz);
CREATE OR REPLACE FUNCTION aif.reservation_shares(charged numeric, starts timestamptz, ends timestamptz)
RETURNS TABLE (period_id text, starts_on date, t0 timestamptz, t1 timestamptz, gpu_us bigint)
LANGUAGE sql STABLE
AS $$
SELECT p.id, p.starts_on, x.t0, x.t1, aif_report.charged_us_within(charged, starts, ends, x.t0, x.t1)
FROM aif.periods p
CROSS JOIN LATERAL (SELECT p.starts_on::timestamp AT TIME ZONE 'UTC' AS t0,
			   p.ends_on::timestamp AT TIME ZONE 'UTC' AS t1) x
WHERE x.t0 < ends AND x.t1 > starts
$$;

-- Lock the factories of the given projects, in the order of their keys.
CREATE OR REPLACE FUNCTION aif.reservations_lock(projects text[]) RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
	PERFORM pg_advisory_xact_lock(1634297345, f.k)
	FROM (SELECT DISTINCT hashtext(p.factory_id) AS k FROM aif.projects p
	      WHERE p.id = ANY (projects) ORDER BY 1) f;
END
$$;

-- Lock the factories a reservation of the jobs (clusters[i], jobs[i]) may be of: the projects
-- given, and those of the jobs' intervals and reservations. The one set aif.reserve() and the
-- closes of runs (aif.reservations_release(), aif.record_usage()) take, so that an admission
-- and the close of the same job always share a lock, whatever project each names.
-- A close of many jobs (a settle round, a bulk load) whose projects already name every
-- factory locks them all without a lookup: a superset of any job's set. Else one index probe
-- per job (OFFSET 0): planned as a join, the lookup hashed the whole of aif.usage_intervals,
-- a sequential scan held under the factories' locks (188 ms for 8,000 jobs among 750,000
-- intervals, growing with the table): bench_budget_status.sh's bulk INSERT of closed
-- intervals ran at 76 k intervals/s with it, 122 k without. (cardinality(jobs) counts entries:
-- one per closing interval.)
CREATE OR REPLACE FUNCTION aif.reservations_lock_jobs(clusters text[], jobs bigint[],
						      projects text[] DEFAULT '{}')
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
	IF cardinality(jobs) > 64
	   AND (SELECT count(DISTINCT p.factory_id) FILTER (WHERE p.id = ANY (projects))
		       = count(DISTINCT p.factory_id)
		FROM aif.projects p) THEN
		PERFORM aif.reservations_lock(projects);
		RETURN;
	END IF;
	PERFORM aif.reservations_lock(projects || ARRAY(
		SELECT i.project_id
		FROM (SELECT DISTINCT k.c, k.j FROM unnest(clusters, jobs) AS k(c, j)) k
		CROSS JOIN LATERAL (SELECT i.project_id FROM aif.usage_intervals i
				    WHERE i.cluster = k.c AND i.job_id = k.j OFFSET 0) i
		UNION
		SELECT r.project_id FROM aif.reservations r
		JOIN unnest(clusters, jobs) AS k(c, j) ON r.cluster = k.c AND r.job_id = k.j));
END
$$;

-- Add a reservation's shares (charged GPUs over [starts, ends)) to project's totals, in key
-- order; the caller holds the factory's lock.
CREATE OR REPLACE FUNCTION aif.reserved_totals_add(project text, charged numeric,
						   starts timestamptz, ends timestamptz)
RETURNS void LANGUAGE plpgsql
AS $$
BEGIN
	INSERT INTO aif.reserved_totals AS t (period_id, project_id, gpu_us)
	SELECT h.period_id, project, h.gpu_us
	FROM aif.reservation_shares(charged, starts, ends) h
	WHERE h.gpu_us > 0
	ORDER BY h.period_id
	ON CONFLICT ON CONSTRAINT reserved_totals_pkey
	DO UPDATE SET gpu_us = t.gpu_us + excluded.gpu_us;
END
$$;

-- What the budget of a project (projects: its id) or a factory (projects: all of its) in
-- period [t0, t1) has committed: closed usage (rollup and queue) and reservations. The open
-- intervals of reserved jobs are in their reservations; those of jobs admitted without one
-- (aifd unreachable, or before the project reserved) count once closed.
-- (PL/pgSQL: its plan is kept per session; a SQL function with subqueries is planned anew at
-- every call, which cost a millisecond per admission. Like reservations_lock(), without a SET
-- clause, which costs a tenth of a millisecond per call: it has no rights of its own, and
-- its names are qualified.)
CREATE OR REPLACE FUNCTION aif.committed_us(projects text[], period_id text, t0 timestamptz,
					    t1 timestamptz)
RETURNS bigint LANGUAGE plpgsql STABLE
AS $$
BEGIN
	RETURN (coalesce((SELECT sum(u.charged_us) FROM aif.usage_period_rollup u
			  WHERE u.period_id = committed_us.period_id AND u.project_id = ANY (projects)), 0)
		+ coalesce((SELECT sum(aif_report.charged_us_within(coalesce(q.charged_gpus, q.gpus),
								   q.started_at, q.ended_at, t0, t1))
			    FROM aif.usage_queue q
			    WHERE q.project_id = ANY (projects) AND q.started_at < t1 AND q.ended_at > t0), 0)
		+ coalesce((SELECT sum(r.gpu_us) FROM aif.reserved_totals r
			    WHERE r.period_id = committed_us.period_id AND r.project_id = ANY (projects)), 0)
	       )::bigint;
END
$$;

-- (Dropped first: CREATE OR REPLACE cannot change the columns a function returns.)
DROP FUNCTION IF EXISTS aif.reserve(text, bigint, text, bigint, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS aif.reserve(text, bigint, text, bigint, timestamptz, timestamptz, boolean);
DROP FUNCTION IF EXISTS aif.reserve(text, bigint, text, bigint, timestamptz, timestamptz, boolean,
	text[], bigint, bigint, bigint);
DROP FUNCTION IF EXISTS aif.reserve(text, bigint, text, bigint, timestamptz, timestamptz, boolean,
	text[], bigint, bigint, bigint, numeric);
-- Reserve gpus over [starts, ends) for job (cluster, job) of project, charged as its usage will
-- be: each node (models[i], its GPUs by model, "a100:1,h100:2") under aif.charged_gpus() with
-- its share of the job's CPUs, memory and billing, as aif.record_allocations() charges its
-- interval; without models (slurmctld's detail not read), each GPU at the most one GPU costs an
-- hour on the cluster (aif.charged_gpu_most()), or, given held_charged, at that (a waiting
-- job's release: what its admission computed when it was held at its start). Only when, in
-- every period the span reaches, the cost fits what the project's budget (if it has one there)
-- and its factory's budget (none: no GPU-hours) have left after what they committed. A job
-- reserved already fits as it did when that reservation is its project's, of the same GPUs, and
-- made by an admission of this run (another node's or step's: the same restarts), whatever its
-- span (reconciliation moves its end with the run's, aif.reservations_follow()) and the rates
-- since, or (its release from waiting) covering this span at least at this cost's rate;
-- otherwise it is replaced. running: the job runs (its admission), so one whose intervals of
-- this run (restarts: slurmctld's restart count; NULL: any) have all closed has ended in the
-- meantime. (Not the earlier runs': a requeued job admitted before its run's start is recorded,
-- spooled while aifd was away, would get no reservation.)
-- Returns fits, and the figures of the budget that decided (scope project or factory, owner its
-- id): the first that has no room, else the one left with the least room (its committed_us then
-- includes this job's cost); waits: it does not fit, but its cost is within the budget, so it
-- will once running jobs end, more GPU-hours are granted or a new period begins; charged: the
-- job's cost per hour, in charged GPUs, and charging_version, the version it was computed under
-- (what a hold records, aif.waiting.charged and charging_version).
CREATE OR REPLACE FUNCTION aif.reserve(cluster text, job bigint, project text, gpus bigint,
				       starts timestamptz, ends timestamptz, running boolean,
				       models text[] DEFAULT NULL, job_cpus bigint DEFAULT NULL,
				       job_memory_mb bigint DEFAULT NULL, job_billing bigint DEFAULT NULL,
				       held_charged numeric DEFAULT NULL, restarts bigint DEFAULT NULL,
				       OUT fits boolean, OUT period_id text, OUT scope text, OUT owner text,
				       OUT budget_us bigint, OUT committed_us bigint, OUT cost_us bigint,
				       OUT waits boolean, OUT charged numeric,
				       OUT charging_version bigint)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	factory text;
	b record;
	least_room bigint;
	covered boolean;
	replacing boolean;
	released boolean; -- the job's reservation has no run: its release's
	models_known boolean := reserve.models IS NOT NULL AND cardinality(reserve.models) > 0
		AND (SELECT sum(aif_report.gpu_models_gpus(m)) FROM unnest(reserve.models) m)
			IS NOT DISTINCT FROM reserve.gpus;
BEGIN
	SELECT p.factory_id INTO factory FROM aif.projects p WHERE p.id = reserve.project;
	IF NOT FOUND THEN
		RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation',
			MESSAGE = format('cannot reserve for an unknown project "%s"', reserve.project),
			HINT = 'Apply a budgets file that defines it first.';
	END IF;
	-- This project's factory and, for a reservation to replace or an interval that may close
	-- meanwhile, theirs: all at once.
	PERFORM aif.reservations_lock_jobs(ARRAY[reserve.cluster], ARRAY[reserve.job],
					   ARRAY[reserve.project]);
	fits := true;
	waits := false;
	-- (models that do not add up to the job's GPUs are not trusted: the highest rate then)
	SELECT CASE WHEN models_known
		    THEN (SELECT sum(aif.charged_gpus(v, aif_report.gpu_models_gpus(m), m,
						      aif.node_share(job_cpus, n), aif.node_share(job_memory_mb, n),
						      job_billing::numeric / n))
			  FROM unnest(reserve.models) m,
			       (SELECT cardinality(reserve.models)::bigint AS n) k)
		    ELSE coalesce(held_charged, reserve.gpus * aif.charged_gpu_most(v)) END,
	       v.id
	INTO reserve.charged, reserve.charging_version
	FROM (SELECT NULL) x
	LEFT JOIN aif.charging_versions v ON v.id = aif.charging_version(reserve.project, reserve.cluster);
	-- (the same GPUs: a job held while pending was reserved the most it asked for; the same
	-- project: a job id reused after slurmctld lost its state is never covered by another
	-- project's reservation; this run's whatever its span, since reconciliation moves its end
	-- with the run's (a limit an operator raised just before); else covering the span at a
	-- rate at least this one: a job released from waiting was reserved as it was charged at
	-- its last start, and may run on dearer nodes now, while this run's intervals keep the
	-- rates in force when they opened)
	SELECT r.gpus = reserve.gpus AND r.project_id = reserve.project
	       AND (r.restart_count = restarts
		    OR (r.restart_count IS NULL AND r.starts_at <= starts AND r.ends_at >= ends
			AND r.charged >= reserve.charged)),
	       r.restart_count IS NULL
	INTO covered, released
	FROM aif.reservations r WHERE r.cluster = reserve.cluster AND r.job_id = reserve.job;
	IF covered THEN
		-- A release's reservation (no run) that covers the run becomes the run's: a run's
		-- reservation follows its end (aif.reservations_follow()), and no earlier run's late
		-- close releases it.
		IF released AND running AND restarts IS NOT NULL THEN
			UPDATE aif.reservations r SET restart_count = restarts
			WHERE r.cluster = reserve.cluster AND r.job_id = reserve.job
			  AND r.restart_count IS NULL;
		END IF;
		RETURN;
	END IF;
	replacing := FOUND;
	-- A job whose intervals are all closed has ended (its cancellation raced its admission):
	-- a reservation now would never be released.
	IF running AND EXISTS (SELECT 1 FROM aif.usage_intervals i
		   WHERE i.cluster = reserve.cluster AND i.job_id = reserve.job
		     AND i.restart_count = coalesce(restarts, i.restart_count))
	   AND NOT EXISTS (SELECT 1 FROM aif.usage_intervals i
			   WHERE i.cluster = reserve.cluster AND i.job_id = reserve.job
			     AND i.ended_at IS NULL) THEN
		RETURN;
	END IF;
	-- In a block: a reservation that no longer covers the job is replaced only if the new one
	-- fits; otherwise the block is rolled back and the old one stands.
	BEGIN
		IF replacing THEN
			PERFORM aif.reservations_delete(ARRAY[reserve.cluster], ARRAY[reserve.job], false);
		END IF;
		FOR b IN
			WITH scoped AS (
				SELECT h.*, 'project' AS scope, reserve.project AS owner, pb.gpu_hours,
				       ARRAY[reserve.project] AS projects
				FROM aif.reservation_shares(reserve.charged, starts, ends) h
				JOIN aif.project_budgets pb
				  ON pb.period_id = h.period_id AND pb.project_id = reserve.project
				UNION ALL
				SELECT h.*, 'factory', factory, coalesce(fb.gpu_hours, 0),
				       ARRAY(SELECT p.id FROM aif.projects p WHERE p.factory_id = factory)
				FROM aif.reservation_shares(reserve.charged, starts, ends) h
				LEFT JOIN aif.factory_budgets fb
				  ON fb.period_id = h.period_id AND fb.factory_id = factory
			)
			SELECT s.period_id AS id, s.scope, s.owner, s.gpu_us AS cost,
			       aif_report.budget_threshold_us(s.gpu_hours, 100) AS budget,
			       aif.committed_us(s.projects, s.period_id, s.t0, s.t1) AS committed,
			       coalesce((SELECT sum(t.gpu_us) FROM aif.reserved_totals t
					 WHERE t.period_id = s.period_id AND t.project_id = ANY (s.projects)), 0)
				AS reserved
			FROM scoped s
			WHERE s.gpu_us > 0
			ORDER BY s.starts_on, s.period_id, s.scope DESC
		LOOP
			IF b.committed::numeric + b.cost > b.budget THEN
				fits := false;
				waits := b.cost <= b.budget;
				period_id := b.id;
				scope := b.scope;
				owner := b.owner;
				budget_us := b.budget;
				committed_us := b.committed;
				cost_us := b.cost;
				RAISE SQLSTATE 'AIF01'; -- (caught below: roll the block back)
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
		INSERT INTO aif.reservations (cluster, job_id, project_id, gpus, starts_at, ends_at, charged,
					      restart_count)
		VALUES (reserve.cluster, reserve.job, reserve.project, reserve.gpus, starts, ends,
			reserve.charged, CASE WHEN running THEN restarts END);
		PERFORM aif.reserved_totals_add(reserve.project, reserve.charged, starts, ends);
	EXCEPTION WHEN SQLSTATE 'AIF01' THEN
		NULL; -- does not fit: nothing reserved, nothing replaced
	END;
END
$$;

-- Delete the reservations of the jobs (clusters[i], jobs[i]) (with ended: only those without an
-- open interval left, and, for one of a run's admission, with an interval of that run or a
-- later one: not the next run's, admitted before its start was recorded, when an earlier run's
-- end arrives late) and take their shares off aif.reserved_totals.
-- (PL/pgSQL, as committed_us(): a SQL function is planned anew at every call.)
CREATE OR REPLACE FUNCTION aif.reservations_delete(clusters text[], jobs bigint[], ended boolean)
RETURNS void LANGUAGE plpgsql
AS $$
BEGIN
WITH gone AS (
	DELETE FROM aif.reservations r
	USING (SELECT DISTINCT c, j FROM unnest(clusters, jobs) AS k(c, j)) k
	WHERE r.cluster = k.c AND r.job_id = k.j
	  AND NOT (ended AND (EXISTS (SELECT 1 FROM aif.usage_intervals i
				      WHERE i.cluster = k.c AND i.job_id = k.j AND i.ended_at IS NULL)
			      OR (r.restart_count IS NOT NULL
				  AND NOT EXISTS (SELECT 1 FROM aif.usage_intervals i
						  WHERE i.cluster = k.c AND i.job_id = k.j
						    AND i.restart_count >= r.restart_count))))
	RETURNING r.project_id, r.charged, r.starts_at, r.ends_at
), shares AS (
	SELECT h.period_id, g.project_id, sum(h.gpu_us) AS gpu_us
	FROM gone g
	CROSS JOIN LATERAL aif.reservation_shares(g.charged, g.starts_at, g.ends_at) h
	GROUP BY 1, 2
), locked AS ( -- (in key order, as every writer of the totals)
	SELECT t.period_id, t.project_id FROM aif.reserved_totals t
	JOIN shares s ON t.period_id = s.period_id AND t.project_id = s.project_id
	ORDER BY 1, 2
	FOR UPDATE OF t
)
UPDATE aif.reserved_totals t SET gpu_us = greatest(t.gpu_us - s.gpu_us, 0)
FROM shares s, locked l
WHERE t.period_id = s.period_id AND t.project_id = s.project_id
  AND l.period_id = t.period_id AND l.project_id = t.project_id;
END
$$;

-- Release the reservations of the jobs (clusters[i], jobs[i]) that have no open interval left:
-- their runs ended, and what they used is in the rollups' queue from the same transaction (the
-- triggers of aif.usage_intervals call this), so the budget never counts a job twice or not at
-- all. First the factories' locks, of the projects given (the closing intervals' own) and of
-- the jobs' intervals and reservations, as aif.reserve() takes them: a close and an admission
-- of one job take turns. Without them, an admission that
-- did not see the uncommitted close (an interval still open) reserved after the close had
-- looked for a reservation to release, or the close did not see the admission's uncommitted
-- reservation: either way a reservation was left for a job that had ended, never released.
DROP FUNCTION IF EXISTS aif.reservations_release(text[], bigint[]);
CREATE OR REPLACE FUNCTION aif.reservations_release(clusters text[], jobs bigint[],
						    projects text[] DEFAULT '{}') RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM aif.reservations_lock_jobs(clusters, jobs, projects);
	PERFORM aif.reservations_delete(clusters, jobs, true);
END
$$;

-- What aif.reserve() would answer for a job that is not running yet, placed from now, without
-- reserving: the reservation is made and rolled back, so that the answer is the admission's
-- own arithmetic, under its lock (aifd's holds of pending jobs: daemon/budgets/pending.c).
CREATE OR REPLACE FUNCTION aif.reserve_trial(cluster text, job bigint, project text, gpus bigint,
					     seconds bigint,
					     OUT fits boolean, OUT period_id text, OUT scope text,
					     OUT owner text, OUT budget_us bigint,
					     OUT committed_us bigint, OUT cost_us bigint,
					     OUT waits boolean)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	BEGIN
		SELECT r.fits, r.period_id, r.scope, r.owner, r.budget_us, r.committed_us, r.cost_us,
		       r.waits
		INTO fits, period_id, scope, owner, budget_us, committed_us, cost_us, waits
		FROM aif.reserve(reserve_trial.cluster, reserve_trial.job, reserve_trial.project,
				 reserve_trial.gpus, now(), now() + make_interval(secs => reserve_trial.seconds),
				 false) r;
		RAISE SQLSTATE 'AIF02'; -- (caught below: undo the reservation)
	EXCEPTION WHEN SQLSTATE 'AIF02' THEN
		NULL;
	END;
END
$$;

-- The jobs of cluster that wait (aif.waiting) and fit now, 100 a pass (below): each is
-- reserved (reserved true) its GPUs for its time limit from now, at the rate its admission
-- charged it when it was held at its start (while the cluster's charging is the one in force
-- then; else each GPU at the cluster's highest), and marked released. Its admission then
-- replaces the reservation with one of its own span and allocation, and holds it again if that
-- does not fit: released at a lower rate than that, it would start, be held, be released again,
-- over and over. A job that can no longer fit at all (its cost is more than the whole budget
-- now, lowered since, or its span reaches a period without one) is released too, unreserved:
-- its admission decides at its start, with today's rates, and says why if it refuses it, rather
-- than leaving it held for ever.
DROP FUNCTION IF EXISTS aif.waiting_release(text); -- (it returned SETOF bigint)
CREATE OR REPLACE FUNCTION aif.waiting_release(cluster text)
RETURNS TABLE (job_id bigint, reserved boolean)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	w record;
	tried record;
BEGIN
	-- Every factory it may reserve against, at once (aif.reserve() takes them again: no wait).
	PERFORM aif.reservations_lock(ARRAY(SELECT x.project_id FROM aif.waiting x
					    WHERE x.cluster = waiting_release.cluster
					      AND x.released_at IS NULL));
	-- A pass's share, the jobs looked at least recently (last tried, or held and not tried
	-- since): with more waiting, the next pass takes those this one left, whatever their project
	-- or their place in it. Then, among those, each project's oldest first, then each one's
	-- second, ...: jobs of one project that do not fit never keep another's from its turn.
	FOR w IN SELECT * FROM (SELECT * FROM aif.waiting x
				WHERE x.cluster = waiting_release.cluster AND x.released_at IS NULL
				ORDER BY coalesce(x.tried_at, x.held_at), x.held_at, x.job_id
				LIMIT 100) x -- a pass's share: admissions wait for these locks
		 ORDER BY row_number() OVER (PARTITION BY x.project_id ORDER BY x.held_at, x.job_id),
			  x.held_at, x.job_id
	LOOP
		-- Its exact cost, placed from now: its admission places it at its StartTime.
		SELECT r.fits, r.waits INTO tried
		FROM aif.reserve(w.cluster, w.job_id, w.project_id, w.gpus, now(),
				 now() + make_interval(secs => w.seconds), false,
				 held_charged => CASE WHEN w.charging_version IS NOT DISTINCT FROM
							   aif.charging_version(w.project_id, w.cluster)
						      THEN w.charged END) r;
		IF tried.fits OR NOT tried.waits THEN
			UPDATE aif.waiting x SET released_at = now()
			WHERE x.cluster = w.cluster AND x.job_id = w.job_id;
			job_id := w.job_id;
			reserved := tried.fits;
			RETURN NEXT;
		ELSE
			UPDATE aif.waiting x SET tried_at = now()
			WHERE x.cluster = w.cluster AND x.job_id = w.job_id;
		END IF;
	END LOOP;
END
$$;

-- Delete the reservations of cluster that nothing else would ever release: the end of their span
-- (the job's StartTime + time limit) more than an hour past, and no interval of the job open,
-- attributed or not. A run's close releases its reservation; this catches one whose run's
-- usage never closed an interval of aif.usage_intervals (its records lost with a node's spool,
-- or unattributed), which would otherwise hold its project's GPU-hours for good. A job still
-- running past its time limit (OverTimeLimit) has an open interval and keeps its reservation.
-- Returns how many it deleted.
CREATE OR REPLACE FUNCTION aif.reservations_expire(cluster text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	clusters text[];
	jobs bigint[];
BEGIN
	-- (chosen, locked, then chosen again under the locks: an admission of a reused job id may
	-- have replaced one meanwhile)
	FOR pass IN 1..2 LOOP
		SELECT coalesce(array_agg(r.cluster ORDER BY r.job_id), '{}'),
		       coalesce(array_agg(r.job_id ORDER BY r.job_id), '{}')
		INTO clusters, jobs
		FROM aif.reservations r
		WHERE r.cluster = reservations_expire.cluster AND r.ends_at < now() - interval '1 hour'
		  AND NOT EXISTS (SELECT 1 FROM aif.usage_intervals i
				  WHERE i.cluster = r.cluster AND i.job_id = r.job_id AND i.ended_at IS NULL)
		  AND NOT EXISTS (SELECT 1 FROM aif.unattributed_intervals u
				  WHERE u.cluster = r.cluster AND u.job_id = r.job_id AND u.ended_at IS NULL);
		IF cardinality(jobs) = 0 THEN
			RETURN 0;
		END IF;
		IF pass = 1 THEN
			PERFORM aif.reservations_lock_jobs(clusters, jobs);
		END IF;
	END LOOP;
	PERFORM aif.reservations_delete(clusters, jobs, false);
	RETURN cardinality(jobs);
END
$$;

-- The reservations of runs (restarts[i] of jobs[i] of cluster, running) whose span is to end
-- elsewhere now that slurmctld says each run ends at ends[i] (aif.reservations_follow()): where,
-- moved_to, and whether that is slurmctld's end (limit_moved), or, for a run whose end is past
-- or that has none (0), a rolling end: now + step_seconds, once less than half of that is left.
-- A rolling end only ever extends: making a job UNLIMITED commits no less than it had.
-- A run also takes over (taken) its job's reservation of an earlier run (restart_was, below
-- restart_count) or of none (a release's, restart_was NULL) when the job was requeued (its
-- restart count above 0) and admitted already (a kept admission, current, of that project):
-- the run stands on it, since its admission, the kept one, found it and reserved nothing more.
-- (A run without a kept admission, a first run or one held at its start before any admission of
-- the job was kept, makes a release's its own or replaces it at its admission: aif.reserve(),
-- which also checks the rate.)
-- Only by a run with usage open in the reservation's project, and once no earlier run's is
-- (the pass closes those first; an end waiting in the inbox, the next pass), since from then
-- it spans the run alone, from its start (start_to: slurmctld's StartTime, starts[i] in Unix
-- seconds, or the run's first open interval if earlier), whatever its end. It keeps its GPUs
-- and rate.
DROP FUNCTION IF EXISTS aif.reservations_moved(text, bigint[], bigint[], bigint[], bigint);
DROP FUNCTION IF EXISTS aif.reservations_moved(text, bigint[], bigint[], bigint[], bigint, bigint[]);
CREATE FUNCTION aif.reservations_moved(cluster text, jobs bigint[], restarts bigint[],
				       ends bigint[], step_seconds bigint, starts bigint[])
RETURNS TABLE (job_id bigint, project_id text, restart_was bigint, restart_count bigint,
	       taken boolean, starts_at timestamptz, start_to timestamptz, ends_at timestamptz,
	       moved_to timestamptz, limit_moved boolean)
LANGUAGE sql STABLE
AS $$
SELECT m.job_id, m.project_id, m.restart_was, m.restart_count, m.taken, m.starts_at, m.start_to,
       m.ends_at, m.moved_to, m.limit_moved
FROM (SELECT r.job_id, r.project_id, r.restart_count AS restart_was, k.rc AS restart_count,
	     x.taken, r.starts_at, y.start_to, r.ends_at, x.limit_moved,
	     greatest(CASE WHEN x.limit_moved THEN x.slurm_end
			   ELSE greatest(now() + make_interval(secs => step_seconds), r.ends_at) END,
		      y.start_to) AS moved_to
      FROM aif.reservations r
      JOIN unnest(jobs, restarts, ends, coalesce(starts, '{}')) AS k(j, rc, e, s)
	ON r.job_id = k.j AND (r.restart_count <= k.rc OR (r.restart_count IS NULL AND k.rc > 0))
      CROSS JOIN LATERAL (SELECT to_timestamp(k.e) AS slurm_end,
				 to_timestamp(k.e) >= now() AS limit_moved,
				 r.restart_count IS DISTINCT FROM k.rc AS taken) x
      -- (in CASE: the run's intervals are looked up only for a reservation to take over)
      CROSS JOIN LATERAL (SELECT CASE WHEN x.taken
				      THEN least(CASE WHEN k.s > 0 THEN to_timestamp(k.s) END,
						 (SELECT min(i.started_at) FROM aif.usage_intervals i
						  WHERE i.cluster = r.cluster AND i.job_id = r.job_id
						    AND i.restart_count = k.rc AND i.ended_at IS NULL))
				      ELSE r.starts_at END AS start_to) y
      WHERE r.cluster = reservations_moved.cluster AND k.e IS NOT NULL
	AND CASE WHEN x.taken
		 THEN EXISTS (SELECT 1 FROM aif.usage_intervals i
			      WHERE i.cluster = r.cluster AND i.job_id = r.job_id
				AND i.restart_count = k.rc AND i.project_id = r.project_id
				AND i.ended_at IS NULL
				AND (r.restart_count IS NOT NULL
				     OR EXISTS (SELECT 1 FROM aif.admissions a
						WHERE a.cluster = r.cluster AND a.job_id = r.job_id
						  AND a.project_id = r.project_id AND a.verdict <> 'refuse'
						  AND aif.admission_current(a, i.uid))))
		      AND NOT EXISTS (SELECT 1 FROM aif.usage_intervals i
				      WHERE i.cluster = r.cluster AND i.job_id = r.job_id
					AND i.restart_count < k.rc AND i.ended_at IS NULL)
		 ELSE true END) m
WHERE m.taken
   OR CASE WHEN m.limit_moved THEN m.moved_to <> m.ends_at
	   ELSE m.ends_at < now() + make_interval(secs => step_seconds / 2.0) END
$$;

-- Make the reservations of running runs follow slurmctld's end of each run: an operator raised
-- its time limit (scontrol update TimeLimit=), or its user lowered it. Run restarts[i] of job
-- jobs[i] of cluster ends at ends[i] (Unix seconds, slurmctld's EndTime; 0: no end, UNLIMITED;
-- NULL: unknown, left alone), so its reservation (that run's admission's) now ends there; a run
-- whose end is past (OverTimeLimit, suspended, or at its limit until slurmctld ends it) or that
-- has none is reserved up to now + step_seconds before its reservation runs out (aifd passes two
-- of its passes), so that its open intervals, which count only through its reservation, stay
-- inside it while passes keep their interval. Whatever the budgets have left: the job runs
-- already, and a raised limit is an operator's choice; what it commits keeps later admissions
-- from spending it again. At most 1000 a call, the most overdue first, so that the factories'
-- locks are held briefly (admissions wait for them); the rest at the next pass.
-- A run that stands on its job's reservation of an earlier run (a requeued job) or of its
-- release takes it over (aif.reservations_moved()), from the run's start (starts[i], Unix
-- seconds, slurmctld's StartTime of the run), and it follows this run from then on.
-- Returns the reservations that moved: their ends before and after, limit_moved as above,
-- whether the running run took it over (taken), and then the earlier run's restart count
-- (run_was; NULL: a release's).
-- (Dropped first: CREATE OR REPLACE cannot change the columns a function returns. starts has a
-- default, so that an aifd of before it still calls it.)
DROP FUNCTION IF EXISTS aif.reservations_follow(text, bigint[], bigint[], bigint[], bigint);
DROP FUNCTION IF EXISTS aif.reservations_follow(text, bigint[], bigint[], bigint[], bigint, bigint[]);
CREATE FUNCTION aif.reservations_follow(cluster text, jobs bigint[], restarts bigint[],
					ends bigint[], step_seconds bigint,
					starts bigint[] DEFAULT NULL)
RETURNS TABLE (job bigint, project text, old_end timestamptz, new_end timestamptz,
	       limit_moved boolean, taken boolean, run_was bigint)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	locked text[];
BEGIN
	-- The factories of those to move, locked; then chosen again under the locks, each only if
	-- its project's factory is locked (one replaced meanwhile under another project waits for
	-- the next pass), and moved only as chosen (a row changed since is left alone).
	SELECT coalesce(array_agg(DISTINCT x.project_id), '{}') INTO locked
	FROM aif.reservations_moved(cluster, jobs, restarts, ends, step_seconds, starts) x;
	IF cardinality(locked) = 0 THEN
		RETURN;
	END IF;
	PERFORM aif.reservations_lock(locked);
	RETURN QUERY
	WITH chosen AS (
		SELECT x.* FROM aif.reservations_moved(cluster, jobs, restarts, ends, step_seconds, starts) x
		WHERE x.project_id = ANY (locked)
		ORDER BY x.ends_at, x.job_id -- (the most overdue first)
		LIMIT 1000
	), moved AS (
		UPDATE aif.reservations r
		SET starts_at = c.start_to, ends_at = c.moved_to, restart_count = c.restart_count
		FROM chosen c
		WHERE r.cluster = reservations_follow.cluster AND r.job_id = c.job_id
		  AND r.project_id = c.project_id AND r.restart_count IS NOT DISTINCT FROM c.restart_was
		  AND r.starts_at = c.starts_at AND r.ends_at = c.ends_at
		RETURNING r.job_id, r.project_id, r.charged, c.starts_at AS starts_was, c.ends_at AS was,
			  c.start_to, c.moved_to, c.limit_moved, c.taken,
			  CASE WHEN c.taken THEN c.restart_was END AS run_was
	), net AS ( -- what each total gains (or loses): the new spans' shares less the old ones'
		SELECT s.period_id, s.project_id, sum(s.gpu_us) AS gpu_us
		FROM (SELECT h.period_id, v.project_id, h.gpu_us
		      FROM moved v CROSS JOIN LATERAL aif.reservation_shares(v.charged, v.start_to, v.moved_to) h
		      UNION ALL
		      SELECT h.period_id, v.project_id, -h.gpu_us
		      FROM moved v CROSS JOIN LATERAL aif.reservation_shares(v.charged, v.starts_was, v.was) h) s
		GROUP BY 1, 2
		HAVING sum(s.gpu_us) <> 0
	), totals AS ( -- (in key order, as every writer of the totals)
		INSERT INTO aif.reserved_totals AS t (period_id, project_id, gpu_us)
		SELECT n.period_id, n.project_id, greatest(n.gpu_us, 0) FROM net n ORDER BY 1, 2
		ON CONFLICT ON CONSTRAINT reserved_totals_pkey
		DO UPDATE SET gpu_us = greatest(t.gpu_us + (SELECT n.gpu_us FROM net n
							     WHERE n.period_id = t.period_id
							       AND n.project_id = t.project_id), 0)
	)
	SELECT v.job_id, v.project_id, v.was, v.moved_to, v.limit_moved, v.taken, v.run_was
	FROM moved v ORDER BY v.job_id;
END
$$;

-- Recompute aif.reserved_totals from the reservations, after periods moved (aif.apply()).
CREATE OR REPLACE FUNCTION aif.reserved_totals_recompute() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM aif.reservations_lock(ARRAY(SELECT p.id FROM aif.projects p));
	DELETE FROM aif.reserved_totals;
	INSERT INTO aif.reserved_totals (period_id, project_id, gpu_us)
	SELECT h.period_id, r.project_id, sum(h.gpu_us)
	FROM aif.reservations r
	CROSS JOIN LATERAL aif.reservation_shares(r.charged, r.starts_at, r.ends_at) h
	WHERE h.gpu_us > 0
	GROUP BY 1, 2;
END
$$;

-- Forget a waiting job as aifd's pass listed it (held at listed_held_at), not a record of it made
-- since: a job released, started and found not to fit is held again, and recorded anew, while
-- the pass looks at it; that record is the only one that would ever release it
-- (daemon/slurm/holds.c). Whether a row was deleted.
CREATE OR REPLACE FUNCTION aif.waiting_forget(cluster text, job bigint, listed_held_at timestamptz)
RETURNS boolean LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
WITH gone AS (
	DELETE FROM aif.waiting w
	WHERE w.cluster = waiting_forget.cluster AND w.job_id = waiting_forget.job
	  AND w.held_at = waiting_forget.listed_held_at
	RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM gone)
$$;

REVOKE ALL ON FUNCTION aif.reservation_shares(numeric, timestamptz, timestamptz),
	aif.reservations_lock(text[]), aif.reservations_lock_jobs(text[], bigint[], text[]),
	aif.committed_us(text[], text, timestamptz, timestamptz),
	aif.reserve(text, bigint, text, bigint, timestamptz, timestamptz, boolean, text[], bigint, bigint,
		    bigint, numeric, bigint),
	aif.reserve_trial(text, bigint, text, bigint, bigint),
	aif.reservations_delete(text[], bigint[], boolean), aif.reservations_release(text[], bigint[], text[]),
	aif.waiting_release(text), aif.waiting_forget(text, bigint, timestamptz),
	aif.reservations_expire(text), aif.reserved_totals_recompute(),
	aif.reserved_totals_add(text, numeric, timestamptz, timestamptz),
	aif.reservations_moved(text, bigint[], bigint[], bigint[], bigint, bigint[]),
	aif.reservations_follow(text, bigint[], bigint[], bigint[], bigint, bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION aif.reserve(text, bigint, text, bigint, timestamptz, timestamptz, boolean,
	text[], bigint, bigint, bigint, numeric, bigint),
	aif.reserve_trial(text, bigint, text, bigint, bigint), aif.waiting_release(text),
	aif.waiting_forget(text, bigint, timestamptz), aif.reservations_release(text[], bigint[], text[]),
	aif.reservations_expire(text),
	aif.reservations_follow(text, bigint[], bigint[], bigint[], bigint, bigint[]) TO aif_daemon;
GRANT EXECUTE ON FUNCTION aif.reservations_lock(text[]), aif.reservations_lock_jobs(text[], bigint[], text[])
	TO aif_daemon; -- aif.record_usage(), as the writer
GRANT EXECUTE ON FUNCTION aif.committed_us(text[], text, timestamptz, timestamptz)
	TO aif_daemon, aif_operator;
GRANT EXECUTE ON FUNCTION aif.reserved_totals_recompute(), aif.reservations_lock(text[])
	TO aif_operator; -- aif.apply()
