-- sql/repeatable/15_charge.sql: what an hour of usage costs a budget (sql/014_charged.sql;
-- docs/budgets-yaml.md, "Charging"), defined once: aif.record_usage() charges intervals with
-- it, aif.reserve() reserves with it.
--
-- A repeatable file: the current definition of what it holds, run again by every
-- "aifctl db migrate" after the versioned migrations (docs/database.md, "Migrations").
-- Change a function or view here, never in a versioned migration.

-- The GPUs of a node's models, "a100:1,h100:2" (aif_gres_models()'s form): 3. NULL for NULL.
-- (This and aif_report.model_shares() in aif_report: the funders' by-model view calls them
-- with the rights of whoever reads it.)
CREATE OR REPLACE FUNCTION aif_report.gpu_models_gpus(gpu_models text) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT CASE WHEN gpu_models IS NULL THEN NULL
	ELSE coalesce((SELECT sum(split_part(e, ':', 2)::bigint)
		       FROM unnest(string_to_array(nullif(gpu_models, ''), ',')) e), 0) END $$;

-- The charged GPUs of a node whose allocation is not known: its GPUs at the unrated rate
-- (unrated_rate NULL: the cluster has no charging, every GPU costs 1). An expression the
-- planner inlines: aif.record_usage() charges every new interval with it.
CREATE OR REPLACE FUNCTION aif.charged_gpus_unallocated(gpus bigint, unrated_rate numeric)
RETURNS numeric LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT gpus * coalesce(unrated_rate, 1) $$;

-- What aif.usage_intervals.charged_gpus holds for a node charged `charged` budget units per
-- hour: NULL when that is its GPUs (one unit per GPU-hour: every cluster without rates), so
-- that sums over such usage stay in integers (aif_report.charged_us()).
CREATE OR REPLACE FUNCTION aif.charged_gpus_stored(charged numeric, gpus bigint)
RETURNS numeric LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT nullif(charged, gpus) $$;

COMMENT ON COLUMN aif.usage_intervals.charged_gpus IS
	'budget units one hour of this interval costs (aif.charged_gpus()); NULL: its GPUs (aif.charged_gpus_stored())';

-- The charging in force for a project's usage on a cluster: its factory's current version
-- there (none when the factory does not list the cluster), and that version's unrated rate.
-- A view, so that aif.record_usage() joins it for a whole group of records.
CREATE OR REPLACE VIEW aif.project_charging AS
SELECT p.id AS project_id, c.cluster, c.charging_version, v.unrated_rate
FROM aif.projects p
JOIN aif.factory_clusters c ON c.factory_id = p.factory_id
LEFT JOIN aif.charging_versions v ON v.id = c.charging_version;
REVOKE ALL ON aif.project_charging FROM PUBLIC;
GRANT SELECT ON aif.project_charging TO aif_daemon, aif_operator;

-- The charged GPUs of one node of a job, under charging version v (an all-NULL v: the cluster
-- has none, every GPU costs 1): budget units per hour.
--   charge_by gpus: each GPU at its model's rate (the unrated rate when its model has none or
--   it has no type; every GPU at the unrated rate when its models are not known), and with a
--   node share, as many more GPUs at the node's highest rate as its CPUs (memory) take more
--   GPUs' worth than it holds: ceil(cpus / cpus_per_gpu), ceil(memory_mb / memory_per_gpu_mb).
--   charge_by billing: the node's share of the job's billing TRES (its GPUs at the unrated
--   rate when not known).
CREATE OR REPLACE FUNCTION aif.charged_gpus(v aif.charging_versions, gpus bigint, gpu_models text,
					    cpus bigint, memory_mb bigint, billing numeric)
RETURNS numeric LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
SELECT CASE
	WHEN v.id IS NULL THEN aif.charged_gpus_unallocated(gpus, NULL)
	WHEN v.charge_by = 'billing' THEN coalesce(billing, aif.charged_gpus_unallocated(gpus, v.unrated_rate))
	WHEN gpu_models IS NULL AND v.cpus_per_gpu IS NULL AND v.memory_per_gpu_mb IS NULL
		THEN aif.charged_gpus_unallocated(gpus, v.unrated_rate)
	ELSE (SELECT coalesce(m.charged, aif.charged_gpus_unallocated(gpus, v.unrated_rate))
		     + greatest(0, greatest(ceil(cpus::numeric / v.cpus_per_gpu),
					    ceil(memory_mb::numeric / v.memory_per_gpu_mb))
				   - coalesce(m.n, gpus))
		       * coalesce(m.top, v.unrated_rate)
	      FROM (SELECT sum(e.n * e.rate) AS charged, sum(e.n) AS n, max(e.rate) AS top
		    FROM (SELECT split_part(x, ':', 2)::bigint AS n,
				 coalesce((v.rates ->> split_part(x, ':', 1))::numeric, v.unrated_rate) AS rate
			  FROM unnest(string_to_array(nullif(gpu_models, ''), ',')) x) e) m)
END $$;
COMMENT ON FUNCTION aif.charged_gpus(aif.charging_versions, bigint, text, bigint, bigint, numeric) IS
	'budget units per hour of one node of a job under a charging version';

-- A node's share of its job's CPUs or memory: the job's over its nodes, rounded up (slurmctld
-- gives them per job; docs/budgets-yaml.md, "Charging"). NULL for NULL.
CREATE OR REPLACE FUNCTION aif.node_share(job_total bigint, job_nodes bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT ceil(job_total::numeric / job_nodes)::bigint $$;

-- The most one GPU can cost an hour under v: what a reservation charges each GPU of a job
-- (an all-NULL v: 1).
CREATE OR REPLACE FUNCTION aif.charged_gpu_most(v aif.charging_versions) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT CASE WHEN v.id IS NULL THEN 1::numeric
	ELSE greatest(v.unrated_rate, (SELECT max(r.value::numeric) FROM jsonb_each_text(v.rates) r)) END $$;

-- The charging version in force for a project's usage on a cluster: its factory's, NULL when
-- the factory does not list the cluster.
CREATE OR REPLACE FUNCTION aif.charging_version(project_id text, cluster text) RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT c.charging_version FROM aif.project_charging c
	WHERE c.project_id = charging_version.project_id AND c.cluster = charging_version.cluster $$;

-- What slurmctld allocated to the running jobs of open intervals, as aifd learns it
-- (daemon/usage/allocations.c): per interval its key, its uid, and the node's GPUs by model
-- ("a100:1,h100:2"; NULL: slurmctld gave none for this run, and it is not asked again), the
-- job's CPUs, memory in MiB and billing TRES (NULL: the job has none) and its nodes. The
-- interval takes slurmctld's GPUs and its node's share of the job's (CPUs and memory rounded
-- up), and is charged again under its own charging version, the one in force when it opened.
-- Returns the intervals changed, and the GPU models among them that their cluster charges at
-- its unrated rate although it has rates for others (aifd says so, once each).
DROP FUNCTION IF EXISTS aif.record_allocations(text[], bigint[], text[], bigint[], bigint[], text[],
	bigint[], bigint[], bigint[], bigint[]);
CREATE OR REPLACE FUNCTION aif.record_allocations(clusters text[], jobs bigint[], nodes text[],
						  restarts bigint[], uids bigint[], models text[],
						  cpus bigint[], memory bigint[], billing bigint[],
						  job_nodes bigint[], OUT changed bigint, OUT unrated text[])
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	WITH a AS (
		SELECT x.cluster, x.job_id, x.node, x.restart_count, x.uid, x.gm,
		       aif_report.gpu_models_gpus(x.gm) AS gpus,
		       CASE WHEN x.gm IS NOT NULL THEN aif.node_share(x.jc, x.jn) END AS cpus,
		       CASE WHEN x.gm IS NOT NULL THEN aif.node_share(x.jm, x.jn) END AS memory_mb,
		       CASE WHEN x.gm IS NOT NULL THEN x.jb::numeric / x.jn END AS billing
		FROM unnest(clusters, jobs, nodes, restarts, uids, models, cpus, memory, billing,
			    job_nodes) AS x(cluster, job_id, node, restart_count, uid, gm, jc, jm, jb, jn)
		WHERE x.gm IS NULL OR x.jn > 0
	), done AS (
		UPDATE aif.usage_intervals u
		SET allocation_at = now(), gpus = coalesce(a.gpus, u.gpus), gpu_models = a.gm,
		    cpus = a.cpus, memory_mb = a.memory_mb, billing = a.billing,
		    charged_gpus = CASE WHEN a.gm IS NULL THEN u.charged_gpus
			ELSE aif.charged_gpus_stored(aif.charged_gpus((SELECT v FROM aif.charging_versions v
								       WHERE v.id = u.charging_version),
							      a.gpus, a.gm, a.cpus, a.memory_mb, a.billing),
						     a.gpus) END
		FROM a
		WHERE u.cluster = a.cluster AND u.job_id = a.job_id AND u.node = a.node
		  AND u.restart_count = a.restart_count AND u.uid = a.uid
		  AND u.ended_at IS NULL AND u.allocation_at IS NULL
		RETURNING u.cluster, u.charging_version, u.gpu_models
	)
	SELECT count(*),
	       ARRAY(SELECT DISTINCT d.cluster || '/'
				     || coalesce(nullif(split_part(e, ':', 1), ''), '(untyped)')
		     FROM done d
		     JOIN aif.charging_versions v ON v.id = d.charging_version
		     CROSS JOIN LATERAL unnest(string_to_array(nullif(d.gpu_models, ''), ',')) e
		     WHERE v.charge_by = 'gpus' AND v.rates <> '{}'
		       AND NOT v.rates ? split_part(e, ':', 1)
		     ORDER BY 1)
	INTO changed, unrated
	FROM done;
END
$$;

-- One model of a node, e one element of its gpu_models ("h100:2", ":2"; NULL for a node with
-- none of them): its name and its GPUs. '(unknown)': the models were not learnt (all the node's
-- GPUs); '(untyped)': GPUs without a type; '(none)': no GPU (a node charged for its share of
-- CPUs or memory alone). Single expressions: the planner inlines them.
CREATE OR REPLACE FUNCTION aif_report.model_name(gpus bigint, gpu_models text, e text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
SELECT CASE WHEN e IS NOT NULL THEN coalesce(nullif(split_part(e, ':', 1), ''), '(untyped)')
	    WHEN gpu_models IS NULL AND gpus > 0 THEN '(unknown)' ELSE '(none)' END
$$;

CREATE OR REPLACE FUNCTION aif_report.model_gpus(gpus bigint, gpu_models text, e text) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
SELECT CASE WHEN e IS NOT NULL THEN split_part(e, ':', 2)::bigint
	    WHEN gpu_models IS NULL THEN gpus ELSE 0 END
$$;

-- How a node's usage splits between its GPU models, for the by-model rollup: each model
-- (model_name(), model_gpus()) and its share of the node's charge (in proportion to its GPUs;
-- 1 for a node of one model, whose element is its whole gpu_models).
CREATE OR REPLACE FUNCTION aif_report.model_shares(gpus bigint, gpu_models text)
RETURNS TABLE (model text, gpus bigint, share numeric)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
-- One SELECT, no SET: the planner inlines it into the rollup flush (a call per interval cost
-- half the flush's time).
SELECT aif_report.model_name(model_shares.gpus, model_shares.gpu_models, e),
       aif_report.model_gpus(model_shares.gpus, model_shares.gpu_models, e),
       CASE WHEN e IS NULL THEN 1::numeric
	    ELSE split_part(e, ':', 2)::numeric / sum(split_part(e, ':', 2)::numeric) OVER () END
FROM unnest(CASE WHEN coalesce(model_shares.gpu_models, '') = '' THEN ARRAY[NULL::text]
		 ELSE string_to_array(model_shares.gpu_models, ',') END) AS x(e)
$$;

-- A model's part of a slice's charged microseconds: the node's charge (charged_gpus, NULL: its
-- GPUs) times the slice, times the model's share (model_shares()), rounded per slice and model.
CREATE OR REPLACE FUNCTION aif_report.model_charged_us(charged_gpus numeric, gpus bigint, us bigint,
						       share numeric) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT round(coalesce(charged_gpus, gpus) * us * share) $$;

REVOKE ALL ON FUNCTION aif_report.model_shares(bigint, text), aif_report.gpu_models_gpus(text),
	aif_report.model_name(bigint, text, text), aif_report.model_gpus(bigint, text, text),
	aif_report.model_charged_us(numeric, bigint, bigint, numeric) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION aif_report.model_shares(bigint, text), aif_report.gpu_models_gpus(text),
	aif_report.model_name(bigint, text, text), aif_report.model_gpus(bigint, text, text),
	aif_report.model_charged_us(numeric, bigint, bigint, numeric)
	TO aif_daemon, aif_operator, aif_funder;

REVOKE ALL ON FUNCTION aif.record_allocations(text[], bigint[], text[], bigint[], bigint[], text[],
	bigint[], bigint[], bigint[], bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION aif.record_allocations(text[], bigint[], text[], bigint[], bigint[], text[],
	bigint[], bigint[], bigint[], bigint[]) TO aif_daemon;

REVOKE ALL ON FUNCTION aif.node_share(bigint, bigint), aif.charged_gpus_stored(numeric, bigint),
	aif.charged_gpus_unallocated(bigint, numeric) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION aif.node_share(bigint, bigint), aif.charged_gpus_stored(numeric, bigint),
	aif.charged_gpus_unallocated(bigint, numeric) TO aif_daemon, aif_operator;
REVOKE ALL ON FUNCTION
	aif.charged_gpus(aif.charging_versions, bigint, text, bigint, bigint, numeric),
	aif.charged_gpu_most(aif.charging_versions), aif.charging_version(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
	aif.charged_gpus(aif.charging_versions, bigint, text, bigint, bigint, numeric),
	aif.charged_gpu_most(aif.charging_versions), aif.charging_version(text, text)
	TO aif_daemon, aif_operator;
