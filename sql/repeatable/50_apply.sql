-- sql/repeatable/50_apply.sql: the configuration: what no one may change in it (the apply
-- log's stamps; sectors, factories and projects are never deleted), and applying a budgets
-- file: staging, checks, the plan and the apply (aifctl plan, aifctl apply).
--
-- A repeatable file: the current definition of what it holds, run again by every
-- "aifctl db migrate" after the versioned migrations (docs/database.md, "Migrations").
-- Change a function or view here, never in a versioned migration.

-- applied_at and db_user are facts, not claims: whoever inserts cannot choose them.
CREATE OR REPLACE FUNCTION aif.apply_log_stamp() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	NEW.applied_at := now();
	NEW.db_user := session_user;
	RETURN NEW;
END
$$;

-- Sectors, factories and projects are referenced by usage and cancellations: never deleted
-- (retired instead), and their ids never change.
CREATE OR REPLACE FUNCTION aif.never_deleted() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	what text := CASE TG_TABLE_NAME WHEN 'factories' THEN 'factory' WHEN 'projects' THEN 'project'
				       ELSE 'sector' END;
BEGIN
	IF TG_OP = 'UPDATE' THEN
		RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
			MESSAGE = format('the id of a %s cannot be changed', what),
			DETAIL = format('The %s %s may be referenced by usage.', what, OLD.id),
			HINT = 'Add the new id and retire the old one.';
	END IF;
	RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
		MESSAGE = format('aif.%s: rows are never deleted', TG_TABLE_NAME),
		DETAIL = 'Usage refers to them.',
		HINT = 'Retire them instead: set retired_at (aif.apply() does it for what a budgets file leaves out).';
END
$$;

-- The triggers.
CREATE OR REPLACE TRIGGER apply_log_stamp BEFORE INSERT ON aif.apply_log
	FOR EACH ROW EXECUTE FUNCTION aif.apply_log_stamp();
CREATE OR REPLACE TRIGGER sectors_never_deleted BEFORE DELETE OR TRUNCATE ON aif.sectors
	FOR EACH STATEMENT EXECUTE FUNCTION aif.never_deleted();
CREATE OR REPLACE TRIGGER factories_never_deleted BEFORE DELETE OR TRUNCATE ON aif.factories
	FOR EACH STATEMENT EXECUTE FUNCTION aif.never_deleted();
CREATE OR REPLACE TRIGGER projects_never_deleted BEFORE DELETE OR TRUNCATE ON aif.projects
	FOR EACH STATEMENT EXECUTE FUNCTION aif.never_deleted();
CREATE OR REPLACE TRIGGER sectors_id_fixed BEFORE UPDATE OF id ON aif.sectors
	FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION aif.never_deleted();
CREATE OR REPLACE TRIGGER factories_id_fixed BEFORE UPDATE OF id ON aif.factories
	FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION aif.never_deleted();
CREATE OR REPLACE TRIGGER projects_id_fixed BEFORE UPDATE OF id ON aif.projects
	FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION aif.never_deleted();

-- Rights: trigger functions are called by their triggers only.
REVOKE ALL ON FUNCTION aif.apply_log_stamp(), aif.never_deleted() FROM PUBLIC;

-- Helpers for plan details.
CREATE OR REPLACE FUNCTION aif.plan_text(t text) RETURNS text
LANGUAGE sql IMMUTABLE
AS $$ SELECT CASE WHEN t IS NULL THEN '(none)' ELSE '"' || t || '"' END $$;

CREATE OR REPLACE FUNCTION aif.plan_list(w int[]) RETURNS text
LANGUAGE sql IMMUTABLE
AS $$ SELECT coalesce(nullif(array_to_string(w, ','), ''), 'none') $$;

CREATE OR REPLACE FUNCTION aif.plan_num(x numeric) RETURNS text
LANGUAGE sql IMMUTABLE
AS $$ SELECT trim_scale(x)::text $$;

CREATE OR REPLACE FUNCTION aif.plan_days(a date, b date) RETURNS text
LANGUAGE sql IMMUTABLE
AS $$ SELECT to_char(a, 'YYYY-MM-DD') || ' .. ' || to_char(b, 'YYYY-MM-DD') $$;

CREATE OR REPLACE FUNCTION aif.plan_position(p int) RETURNS text
LANGUAGE sql IMMUTABLE
AS $$ SELECT p::text || CASE WHEN p = 0 THEN ' (default)' ELSE '' END $$;

CREATE OR REPLACE FUNCTION aif.begin_staging() RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET client_min_messages = warning
AS $$
BEGIN
	DROP TABLE IF EXISTS pg_temp.stage_sectors, pg_temp.stage_periods, pg_temp.stage_factories,
		pg_temp.stage_factory_clusters, pg_temp.stage_factory_budgets, pg_temp.stage_projects,
		pg_temp.stage_project_sectors, pg_temp.stage_project_members,
		pg_temp.stage_project_budgets, pg_temp.stage_gpu_rates;

	CREATE TEMP TABLE stage_sectors (
		id text PRIMARY KEY CHECK (id <> '')
	) ON COMMIT DROP;
	CREATE TEMP TABLE stage_periods (
		id text PRIMARY KEY CHECK (id <> ''),
		starts_on date NOT NULL,
		ends_on date NOT NULL,
		CHECK (ends_on > starts_on)
	) ON COMMIT DROP;
	CREATE TEMP TABLE stage_factories (
		id text PRIMARY KEY CHECK (id <> ''),
		name text,
		on_exhausted text NOT NULL CHECK (on_exhausted IN ('deny', 'cancel')),
		grace_seconds bigint NOT NULL CHECK (grace_seconds >= 0),
		warn_at int[] NOT NULL
			CHECK (cardinality(warn_at) <= 8 AND array_position(warn_at, NULL) IS NULL
			       AND 1 <= ALL (warn_at) AND 100 >= ALL (warn_at)),
		allow_overcommit boolean NOT NULL,
		admission text NOT NULL DEFAULT 'used' CHECK (admission IN ('used', 'reserve'))
	) ON COMMIT DROP;
	-- The charging columns have the defaults of a schema version 1 file.
	CREATE TEMP TABLE stage_factory_clusters (
		factory_id text NOT NULL,
		cluster text NOT NULL CHECK (cluster <> ''),
		charge_by text NOT NULL DEFAULT 'gpus' CHECK (charge_by IN ('gpus', 'billing')),
		unrated_rate numeric NOT NULL DEFAULT 1 CHECK (unrated_rate >= 0),
		cpus_per_gpu int CHECK (cpus_per_gpu > 0),
		memory_per_gpu_mb bigint CHECK (memory_per_gpu_mb > 0),
		PRIMARY KEY (factory_id, cluster)
	) ON COMMIT DROP;
	CREATE TEMP TABLE stage_gpu_rates (
		factory_id text NOT NULL,
		cluster text NOT NULL,
		model text NOT NULL CHECK (model <> ''),
		rate numeric NOT NULL CHECK (rate >= 0),
		PRIMARY KEY (factory_id, cluster, model)
	) ON COMMIT DROP;
	CREATE TEMP TABLE stage_factory_budgets (
		factory_id text NOT NULL,
		period_id text NOT NULL,
		gpu_hours numeric NOT NULL CHECK (gpu_hours > 0),
		PRIMARY KEY (factory_id, period_id)
	) ON COMMIT DROP;
	CREATE TEMP TABLE stage_projects (
		id text PRIMARY KEY CHECK (id <> ''),
		factory_id text NOT NULL,
		name text,
		on_exhausted text NOT NULL CHECK (on_exhausted IN ('deny', 'cancel')),
		grace_seconds bigint NOT NULL CHECK (grace_seconds >= 0),
		warn_at int[] NOT NULL
			CHECK (cardinality(warn_at) <= 8 AND array_position(warn_at, NULL) IS NULL
			       AND 1 <= ALL (warn_at) AND 100 >= ALL (warn_at)),
		admission text NOT NULL DEFAULT 'used' CHECK (admission IN ('used', 'reserve'))
	) ON COMMIT DROP;
	CREATE TEMP TABLE stage_project_sectors (
		project_id text NOT NULL,
		sector_id text NOT NULL,
		position int NOT NULL CHECK (position >= 0),
		PRIMARY KEY (project_id, sector_id),
		UNIQUE (project_id, position)
	) ON COMMIT DROP;
	CREATE TEMP TABLE stage_project_members (
		project_id text NOT NULL,
		kind text NOT NULL CHECK (kind IN ('user', 'group')),
		name text NOT NULL CHECK (name <> ''),
		PRIMARY KEY (project_id, kind, name)
	) ON COMMIT DROP;
	CREATE TEMP TABLE stage_project_budgets (
		project_id text NOT NULL,
		period_id text NOT NULL,
		gpu_hours numeric NOT NULL CHECK (gpu_hours > 0),
		PRIMARY KEY (project_id, period_id)
	) ON COMMIT DROP;
END
$$;

-- Every staged reference must resolve to a staged id.
CREATE OR REPLACE FUNCTION aif.stage_check() RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	msg text;
BEGIN
	IF to_regclass('pg_temp.stage_sectors') IS NULL OR to_regclass('pg_temp.stage_periods') IS NULL
	   OR to_regclass('pg_temp.stage_factories') IS NULL
	   OR to_regclass('pg_temp.stage_factory_clusters') IS NULL
	   OR to_regclass('pg_temp.stage_factory_budgets') IS NULL
	   OR to_regclass('pg_temp.stage_projects') IS NULL
	   OR to_regclass('pg_temp.stage_project_sectors') IS NULL
	   OR to_regclass('pg_temp.stage_project_members') IS NULL
	   OR to_regclass('pg_temp.stage_project_budgets') IS NULL
	   OR to_regclass('pg_temp.stage_gpu_rates') IS NULL THEN
		RAISE EXCEPTION USING ERRCODE = 'undefined_table',
			MESSAGE = 'no staged configuration in this transaction',
			HINT = 'Call SELECT aif.begin_staging() after BEGIN, fill the pg_temp.stage_* tables, then plan or apply in the same transaction.';
	END IF;

	SELECT x.m INTO msg
	FROM (
		SELECT 1 AS k, format('project %s refers to factory %s, which is not staged',
				      p.id, p.factory_id) AS m
		FROM pg_temp.stage_projects p
		WHERE NOT EXISTS (SELECT 1 FROM pg_temp.stage_factories f WHERE f.id = p.factory_id)
		UNION ALL
		SELECT 2, format('cluster %s refers to factory %s, which is not staged',
				 c.cluster, c.factory_id)
		FROM pg_temp.stage_factory_clusters c
		WHERE NOT EXISTS (SELECT 1 FROM pg_temp.stage_factories f WHERE f.id = c.factory_id)
		UNION ALL
		SELECT 3, format('budget %s/%s refers to factory %s, which is not staged',
				 b.factory_id, b.period_id, b.factory_id)
		FROM pg_temp.stage_factory_budgets b
		WHERE NOT EXISTS (SELECT 1 FROM pg_temp.stage_factories f WHERE f.id = b.factory_id)
		UNION ALL
		SELECT 4, format('budget %s/%s refers to period %s, which is not staged',
				 b.factory_id, b.period_id, b.period_id)
		FROM pg_temp.stage_factory_budgets b
		WHERE NOT EXISTS (SELECT 1 FROM pg_temp.stage_periods p WHERE p.id = b.period_id)
		UNION ALL
		SELECT 5, format('sector %s of project %s: the project is not staged',
				 s.sector_id, s.project_id)
		FROM pg_temp.stage_project_sectors s
		WHERE NOT EXISTS (SELECT 1 FROM pg_temp.stage_projects p WHERE p.id = s.project_id)
		UNION ALL
		SELECT 6, format('project %s refers to sector %s, which is not staged',
				 s.project_id, s.sector_id)
		FROM pg_temp.stage_project_sectors s
		WHERE NOT EXISTS (SELECT 1 FROM pg_temp.stage_sectors t WHERE t.id = s.sector_id)
		UNION ALL
		SELECT 7, format('project %s has no default sector (position 0)', p.id)
		FROM pg_temp.stage_projects p
		WHERE NOT EXISTS (SELECT 1 FROM pg_temp.stage_project_sectors s
				  WHERE s.project_id = p.id AND s.position = 0)
		UNION ALL
		SELECT 8, format('member %s:%s of project %s: the project is not staged',
				 m.kind, m.name, m.project_id)
		FROM pg_temp.stage_project_members m
		WHERE NOT EXISTS (SELECT 1 FROM pg_temp.stage_projects p WHERE p.id = m.project_id)
		UNION ALL
		SELECT 9, format('budget %s/%s refers to project %s, which is not staged',
				 b.project_id, b.period_id, b.project_id)
		FROM pg_temp.stage_project_budgets b
		WHERE NOT EXISTS (SELECT 1 FROM pg_temp.stage_projects p WHERE p.id = b.project_id)
		UNION ALL
		SELECT 10, format('budget %s/%s refers to period %s, which is not staged',
				  b.project_id, b.period_id, b.period_id)
		FROM pg_temp.stage_project_budgets b
		WHERE NOT EXISTS (SELECT 1 FROM pg_temp.stage_periods p WHERE p.id = b.period_id)
		UNION ALL
		SELECT 11, format('project %s admits by used, but its factory %s reserves', p.id, f.id)
		FROM pg_temp.stage_projects p
		JOIN pg_temp.stage_factories f ON f.id = p.factory_id
		WHERE f.admission = 'reserve' AND p.admission <> 'reserve'
		UNION ALL
		SELECT 12, format('gpu rate %s/%s/%s refers to a cluster of the factory that is not staged',
				  r.factory_id, r.cluster, r.model)
		FROM pg_temp.stage_gpu_rates r
		WHERE NOT EXISTS (SELECT 1 FROM pg_temp.stage_factory_clusters c
				  WHERE c.factory_id = r.factory_id AND c.cluster = r.cluster)
	) x
	ORDER BY x.k, x.m COLLATE "C"
	LIMIT 1;
	IF msg IS NOT NULL THEN
		RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation',
			MESSAGE = 'invalid staged configuration: ' || msg,
			HINT = 'Every staged row must refer to staged ids; aifctl check validates a budgets file.';
	END IF;
END
$$;

CREATE OR REPLACE FUNCTION aif.plan()
RETURNS TABLE(action text, object text, id text, detail text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
	PERFORM aif.stage_check();
	RETURN QUERY
	SELECT x.action, x.object, x.id, x.detail
	FROM (
		-- sectors (retire, never delete)
		SELECT 'add' AS action, 'sector' AS object, s.id,
		       CASE WHEN l.id IS NOT NULL THEN 'un-retire' END AS detail
		FROM pg_temp.stage_sectors s
		LEFT JOIN aif.sectors l ON l.id = s.id
		WHERE l.id IS NULL OR l.retired_at IS NOT NULL
		UNION ALL
		SELECT 'remove', 'sector', l.id, 'retire'
		FROM aif.sectors l
		WHERE l.retired_at IS NULL
		  AND NOT EXISTS (SELECT 1 FROM pg_temp.stage_sectors s WHERE s.id = l.id)

		-- periods
		UNION ALL
		SELECT CASE WHEN l.id IS NULL THEN 'add' ELSE 'change' END, 'period', s.id,
		       CASE WHEN l.id IS NULL THEN aif.plan_days(s.starts_on, s.ends_on)
			    ELSE aif.plan_days(l.starts_on, l.ends_on) || ' -> '
				 || aif.plan_days(s.starts_on, s.ends_on) END
		FROM pg_temp.stage_periods s
		LEFT JOIN aif.periods l ON l.id = s.id
		WHERE l.id IS NULL OR l.starts_on <> s.starts_on OR l.ends_on <> s.ends_on
		UNION ALL
		SELECT 'remove', 'period', l.id, aif.plan_days(l.starts_on, l.ends_on)
		FROM aif.periods l
		WHERE NOT EXISTS (SELECT 1 FROM pg_temp.stage_periods s WHERE s.id = l.id)

		-- factories (retire, never delete)
		UNION ALL
		SELECT CASE WHEN l.id IS NULL OR l.retired_at IS NOT NULL THEN 'add' ELSE 'change' END,
		       'factory', s.id,
		       CASE WHEN l.id IS NULL THEN
				concat_ws(', ', 'name ' || aif.plan_text(s.name),
					  'on_exhausted ' || s.on_exhausted,
					  'grace_seconds ' || s.grace_seconds,
					  'warn_at ' || aif.plan_list(s.warn_at),
					  'allow_overcommit ' || s.allow_overcommit,
					  CASE WHEN s.admission <> 'used' THEN 'admission ' || s.admission END)
			    ELSE
				concat_ws(', ',
					  CASE WHEN l.retired_at IS NOT NULL THEN 'un-retire' END,
					  CASE WHEN l.name IS DISTINCT FROM s.name THEN
						'name ' || aif.plan_text(l.name) || ' -> ' || aif.plan_text(s.name) END,
					  CASE WHEN l.on_exhausted <> s.on_exhausted THEN
						'on_exhausted ' || l.on_exhausted || ' -> ' || s.on_exhausted END,
					  CASE WHEN l.grace_seconds <> s.grace_seconds THEN
						'grace_seconds ' || l.grace_seconds || ' -> ' || s.grace_seconds END,
					  CASE WHEN l.warn_at <> s.warn_at THEN
						'warn_at ' || aif.plan_list(l.warn_at) || ' -> ' || aif.plan_list(s.warn_at) END,
					  CASE WHEN l.allow_overcommit <> s.allow_overcommit THEN
						'allow_overcommit ' || l.allow_overcommit || ' -> ' || s.allow_overcommit END,
					  CASE WHEN l.admission <> s.admission THEN
						'admission ' || l.admission || ' -> ' || s.admission END)
		       END
		FROM pg_temp.stage_factories s
		LEFT JOIN aif.factories l ON l.id = s.id
		WHERE l.id IS NULL OR l.retired_at IS NOT NULL OR l.name IS DISTINCT FROM s.name
		   OR l.on_exhausted <> s.on_exhausted OR l.grace_seconds <> s.grace_seconds
		   OR l.warn_at <> s.warn_at OR l.allow_overcommit <> s.allow_overcommit
		   OR l.admission <> s.admission
		UNION ALL
		SELECT 'remove', 'factory', l.id, 'retire'
		FROM aif.factories l
		WHERE l.retired_at IS NULL
		  AND NOT EXISTS (SELECT 1 FROM pg_temp.stage_factories s WHERE s.id = l.id)

		-- factory clusters and how they are charged
		UNION ALL
		SELECT CASE WHEN l.factory_id IS NULL THEN 'add' ELSE 'change' END, 'factory-cluster',
		       s.factory_id || '/' || s.cluster,
		       CASE WHEN l.factory_id IS NULL THEN
				nullif(concat_ws(', ',
					CASE WHEN s.charge_by <> 'gpus' THEN 'charge_by ' || s.charge_by END,
					CASE WHEN s.unrated_rate <> 1 THEN 'unrated_rate ' || aif.plan_num(s.unrated_rate) END,
					'cpus_per_gpu ' || s.cpus_per_gpu,
					'memory_per_gpu_mb ' || s.memory_per_gpu_mb), '')
			    ELSE
				concat_ws(', ',
					CASE WHEN l.charge_by <> s.charge_by THEN
						'charge_by ' || l.charge_by || ' -> ' || s.charge_by END,
					CASE WHEN l.unrated_rate <> s.unrated_rate THEN
						'unrated_rate ' || aif.plan_num(l.unrated_rate) || ' -> '
						|| aif.plan_num(s.unrated_rate) END,
					CASE WHEN l.cpus_per_gpu IS DISTINCT FROM s.cpus_per_gpu THEN
						'cpus_per_gpu ' || coalesce(l.cpus_per_gpu::text, 'none') || ' -> '
						|| coalesce(s.cpus_per_gpu::text, 'none') END,
					CASE WHEN l.memory_per_gpu_mb IS DISTINCT FROM s.memory_per_gpu_mb THEN
						'memory_per_gpu_mb ' || coalesce(l.memory_per_gpu_mb::text, 'none')
						|| ' -> ' || coalesce(s.memory_per_gpu_mb::text, 'none') END)
		       END
		FROM pg_temp.stage_factory_clusters s
		LEFT JOIN aif.factory_clusters l ON l.factory_id = s.factory_id AND l.cluster = s.cluster
		WHERE l.factory_id IS NULL OR l.charge_by <> s.charge_by
		   OR l.unrated_rate <> s.unrated_rate
		   OR l.cpus_per_gpu IS DISTINCT FROM s.cpus_per_gpu
		   OR l.memory_per_gpu_mb IS DISTINCT FROM s.memory_per_gpu_mb
		UNION ALL
		SELECT 'remove', 'factory-cluster', l.factory_id || '/' || l.cluster, NULL
		FROM aif.factory_clusters l
		WHERE NOT EXISTS (SELECT 1 FROM pg_temp.stage_factory_clusters s
				  WHERE s.factory_id = l.factory_id AND s.cluster = l.cluster)

		-- what an hour of each GPU model costs there
		UNION ALL
		SELECT CASE WHEN l.factory_id IS NULL THEN 'add' ELSE 'change' END, 'gpu-rate',
		       s.factory_id || '/' || s.cluster || '/' || s.model,
		       CASE WHEN l.factory_id IS NULL THEN 'rate ' || aif.plan_num(s.rate)
			    ELSE 'rate ' || aif.plan_num(l.rate) || ' -> ' || aif.plan_num(s.rate) END
		FROM pg_temp.stage_gpu_rates s
		LEFT JOIN aif.gpu_rates l
			ON l.factory_id = s.factory_id AND l.cluster = s.cluster AND l.model = s.model
		WHERE l.factory_id IS NULL OR l.rate <> s.rate
		UNION ALL
		SELECT 'remove', 'gpu-rate', l.factory_id || '/' || l.cluster || '/' || l.model,
		       'rate ' || aif.plan_num(l.rate)
		FROM aif.gpu_rates l
		WHERE NOT EXISTS (SELECT 1 FROM pg_temp.stage_gpu_rates s
				  WHERE s.factory_id = l.factory_id AND s.cluster = l.cluster
				    AND s.model = l.model)

		-- factory budgets
		UNION ALL
		SELECT CASE WHEN l.factory_id IS NULL THEN 'add' ELSE 'change' END, 'factory-budget',
		       s.factory_id || '/' || s.period_id,
		       CASE WHEN l.factory_id IS NULL THEN 'gpu_hours ' || aif.plan_num(s.gpu_hours)
			    ELSE 'gpu_hours ' || aif.plan_num(l.gpu_hours) || ' -> ' || aif.plan_num(s.gpu_hours) END
		FROM pg_temp.stage_factory_budgets s
		LEFT JOIN aif.factory_budgets l ON l.factory_id = s.factory_id AND l.period_id = s.period_id
		WHERE l.factory_id IS NULL OR l.gpu_hours <> s.gpu_hours
		UNION ALL
		SELECT 'remove', 'factory-budget', l.factory_id || '/' || l.period_id,
		       'gpu_hours ' || aif.plan_num(l.gpu_hours)
		FROM aif.factory_budgets l
		WHERE NOT EXISTS (SELECT 1 FROM pg_temp.stage_factory_budgets s
				  WHERE s.factory_id = l.factory_id AND s.period_id = l.period_id)

		-- projects (retire, never delete)
		UNION ALL
		SELECT CASE WHEN l.id IS NULL OR l.retired_at IS NOT NULL THEN 'add' ELSE 'change' END,
		       'project', s.id,
		       CASE WHEN l.id IS NULL THEN
				concat_ws(', ', 'factory ' || s.factory_id,
					  'name ' || aif.plan_text(s.name),
					  'on_exhausted ' || s.on_exhausted,
					  'grace_seconds ' || s.grace_seconds,
					  'warn_at ' || aif.plan_list(s.warn_at),
					  CASE WHEN s.admission <> 'used' THEN 'admission ' || s.admission END)
			    ELSE
				concat_ws(', ',
					  CASE WHEN l.retired_at IS NOT NULL THEN 'un-retire' END,
					  CASE WHEN l.factory_id <> s.factory_id THEN
						'factory ' || l.factory_id || ' -> ' || s.factory_id END,
					  CASE WHEN l.name IS DISTINCT FROM s.name THEN
						'name ' || aif.plan_text(l.name) || ' -> ' || aif.plan_text(s.name) END,
					  CASE WHEN l.on_exhausted <> s.on_exhausted THEN
						'on_exhausted ' || l.on_exhausted || ' -> ' || s.on_exhausted END,
					  CASE WHEN l.grace_seconds <> s.grace_seconds THEN
						'grace_seconds ' || l.grace_seconds || ' -> ' || s.grace_seconds END,
					  CASE WHEN l.warn_at <> s.warn_at THEN
						'warn_at ' || aif.plan_list(l.warn_at) || ' -> ' || aif.plan_list(s.warn_at) END,
					  CASE WHEN l.admission <> s.admission THEN
						'admission ' || l.admission || ' -> ' || s.admission END)
		       END
		FROM pg_temp.stage_projects s
		LEFT JOIN aif.projects l ON l.id = s.id
		WHERE l.id IS NULL OR l.retired_at IS NOT NULL OR l.factory_id <> s.factory_id
		   OR l.name IS DISTINCT FROM s.name OR l.on_exhausted <> s.on_exhausted
		   OR l.grace_seconds <> s.grace_seconds OR l.warn_at <> s.warn_at
		   OR l.admission <> s.admission
		UNION ALL
		SELECT 'remove', 'project', l.id, 'retire'
		FROM aif.projects l
		WHERE l.retired_at IS NULL
		  AND NOT EXISTS (SELECT 1 FROM pg_temp.stage_projects s WHERE s.id = l.id)

		-- project sectors
		UNION ALL
		SELECT CASE WHEN l.project_id IS NULL THEN 'add' ELSE 'change' END, 'project-sector',
		       s.project_id || '/' || s.sector_id,
		       CASE WHEN l.project_id IS NULL THEN 'position ' || aif.plan_position(s.position)
			    ELSE 'position ' || l.position || ' -> ' || aif.plan_position(s.position) END
		FROM pg_temp.stage_project_sectors s
		LEFT JOIN aif.project_sectors l ON l.project_id = s.project_id AND l.sector_id = s.sector_id
		WHERE l.project_id IS NULL OR l.position <> s.position
		UNION ALL
		SELECT 'remove', 'project-sector', l.project_id || '/' || l.sector_id,
		       'position ' || aif.plan_position(l.position)
		FROM aif.project_sectors l
		WHERE NOT EXISTS (SELECT 1 FROM pg_temp.stage_project_sectors s
				  WHERE s.project_id = l.project_id AND s.sector_id = l.sector_id)

		-- project members
		UNION ALL
		SELECT 'add', 'project-member', s.project_id || '/' || s.kind || ':' || s.name, NULL
		FROM pg_temp.stage_project_members s
		WHERE NOT EXISTS (SELECT 1 FROM aif.project_members l
				  WHERE l.project_id = s.project_id AND l.kind = s.kind AND l.name = s.name)
		UNION ALL
		SELECT 'remove', 'project-member', l.project_id || '/' || l.kind || ':' || l.name, NULL
		FROM aif.project_members l
		WHERE NOT EXISTS (SELECT 1 FROM pg_temp.stage_project_members s
				  WHERE s.project_id = l.project_id AND s.kind = l.kind AND s.name = l.name)

		-- project budgets
		UNION ALL
		SELECT CASE WHEN l.project_id IS NULL THEN 'add' ELSE 'change' END, 'project-budget',
		       s.project_id || '/' || s.period_id,
		       CASE WHEN l.project_id IS NULL THEN 'gpu_hours ' || aif.plan_num(s.gpu_hours)
			    ELSE 'gpu_hours ' || aif.plan_num(l.gpu_hours) || ' -> ' || aif.plan_num(s.gpu_hours) END
		FROM pg_temp.stage_project_budgets s
		LEFT JOIN aif.project_budgets l ON l.project_id = s.project_id AND l.period_id = s.period_id
		WHERE l.project_id IS NULL OR l.gpu_hours <> s.gpu_hours
		UNION ALL
		SELECT 'remove', 'project-budget', l.project_id || '/' || l.period_id,
		       'gpu_hours ' || aif.plan_num(l.gpu_hours)
		FROM aif.project_budgets l
		WHERE NOT EXISTS (SELECT 1 FROM pg_temp.stage_project_budgets s
				  WHERE s.project_id = l.project_id AND s.period_id = l.period_id)
	) x
	ORDER BY array_position(ARRAY['sector', 'period', 'factory', 'factory-cluster', 'gpu-rate',
				      'factory-budget',
				      'project', 'project-sector', 'project-member', 'project-budget'],
				x.object),
		 x.id COLLATE "C", x.action COLLATE "C";
END
$$;

CREATE OR REPLACE FUNCTION aif.apply(file_name text, file_sha256 bytea, applied_by text)
RETURNS TABLE(action text, object text, id text, detail text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	plan_rows jsonb;
	n_add int;
	n_change int;
	n_remove int;
	log_id bigint;
	moved_periods text[];
BEGIN
	IF current_setting('transaction_isolation') <> 'read committed' THEN
		RAISE EXCEPTION USING ERRCODE = 'invalid_transaction_state',
			MESSAGE = 'aif.apply() must run at isolation level READ COMMITTED',
			DETAIL = format('This transaction runs at %s.', current_setting('transaction_isolation')),
			HINT = 'Concurrent applies are serialized by a lock; each must see the changes of the one before it.';
	END IF;
	PERFORM pg_advisory_xact_lock(1634297344, 2);
	-- Before any period can change: an admission holding a factory's lock may wait for a
	-- period row (sql/repeatable/35_reserve.sql), never the other way round.
	PERFORM aif.reservations_lock(ARRAY(SELECT p.id FROM aif.projects p));

	-- From here on every statement sees every earlier apply.
	SELECT coalesce(jsonb_agg(jsonb_build_object('action', p.action, 'object', p.object,
						     'id', p.id, 'detail', p.detail) ORDER BY p.n),
			'[]'::jsonb)
	INTO plan_rows
	FROM aif.plan() WITH ORDINALITY AS p(action, object, id, detail, n);

	-- Sectors.
	INSERT INTO aif.sectors AS l (id)
	SELECT s.id FROM pg_temp.stage_sectors s
	ON CONFLICT (id) DO UPDATE SET retired_at = NULL WHERE l.retired_at IS NOT NULL;
	UPDATE aif.sectors l SET retired_at = now()
	WHERE l.retired_at IS NULL
	  AND NOT EXISTS (SELECT 1 FROM pg_temp.stage_sectors s WHERE s.id = l.id);

	-- Periods: new and moved ones now, removed ones after the budgets. No rollup flush may
	-- run meanwhile with the old dates (lock 3, as in aif.rollup_flush()).
	IF EXISTS (SELECT 1 FROM pg_temp.stage_periods s
		   FULL JOIN aif.periods l ON l.id = s.id
		   WHERE s.id IS NULL OR l.id IS NULL OR l.starts_on <> s.starts_on
		      OR l.ends_on <> s.ends_on) THEN
		PERFORM pg_advisory_xact_lock(1634297344, 3);
	END IF;
	SELECT array_agg(s.id) INTO moved_periods
	FROM pg_temp.stage_periods s
	LEFT JOIN aif.periods l ON l.id = s.id
	WHERE l.id IS NULL OR l.starts_on <> s.starts_on OR l.ends_on <> s.ends_on;
	INSERT INTO aif.periods AS l (id, starts_on, ends_on)
	SELECT s.id, s.starts_on, s.ends_on
	FROM pg_temp.stage_periods s
	WHERE s.id = ANY (moved_periods)
	ON CONFLICT (id) DO UPDATE SET starts_on = excluded.starts_on, ends_on = excluded.ends_on;

	-- Factories and their clusters.
	INSERT INTO aif.factories AS l (id, name, on_exhausted, grace_seconds, warn_at, allow_overcommit,
					admission)
	SELECT s.id, s.name, s.on_exhausted, s.grace_seconds, s.warn_at, s.allow_overcommit, s.admission
	FROM pg_temp.stage_factories s
	ON CONFLICT (id) DO UPDATE
	SET name = excluded.name, on_exhausted = excluded.on_exhausted,
	    grace_seconds = excluded.grace_seconds, warn_at = excluded.warn_at,
	    allow_overcommit = excluded.allow_overcommit, admission = excluded.admission,
	    retired_at = NULL
	WHERE l.retired_at IS NOT NULL
	   OR (l.name, l.on_exhausted, l.grace_seconds, l.warn_at, l.allow_overcommit, l.admission)
	      IS DISTINCT FROM (excluded.name, excluded.on_exhausted, excluded.grace_seconds,
				excluded.warn_at, excluded.allow_overcommit, excluded.admission);
	UPDATE aif.factories l SET retired_at = now()
	WHERE l.retired_at IS NULL
	  AND NOT EXISTS (SELECT 1 FROM pg_temp.stage_factories s WHERE s.id = l.id);

	DELETE FROM aif.factory_clusters l
	WHERE NOT EXISTS (SELECT 1 FROM pg_temp.stage_factory_clusters s
			  WHERE s.factory_id = l.factory_id AND s.cluster = l.cluster);
	INSERT INTO aif.factory_clusters AS l (factory_id, cluster, charge_by, unrated_rate, cpus_per_gpu,
					       memory_per_gpu_mb)
	SELECT s.factory_id, s.cluster, s.charge_by, trim_scale(s.unrated_rate), s.cpus_per_gpu,
	       s.memory_per_gpu_mb
	FROM pg_temp.stage_factory_clusters s
	ON CONFLICT (factory_id, cluster) DO UPDATE
	SET charge_by = excluded.charge_by, unrated_rate = excluded.unrated_rate,
	    cpus_per_gpu = excluded.cpus_per_gpu, memory_per_gpu_mb = excluded.memory_per_gpu_mb
	WHERE (l.charge_by, l.unrated_rate, l.cpus_per_gpu, l.memory_per_gpu_mb)
	      IS DISTINCT FROM (excluded.charge_by, excluded.unrated_rate, excluded.cpus_per_gpu,
				excluded.memory_per_gpu_mb);
	-- A rate applies from now on: what is charged already keeps the rate it was charged at.
	DELETE FROM aif.gpu_rates l
	WHERE NOT EXISTS (SELECT 1 FROM pg_temp.stage_gpu_rates s
			  WHERE s.factory_id = l.factory_id AND s.cluster = l.cluster
			    AND s.model = l.model);
	INSERT INTO aif.gpu_rates AS l (factory_id, cluster, model, rate)
	SELECT s.factory_id, s.cluster, s.model, trim_scale(s.rate) FROM pg_temp.stage_gpu_rates s
	ON CONFLICT (factory_id, cluster, model) DO UPDATE SET rate = excluded.rate
	WHERE l.rate <> excluded.rate;

	-- A cluster whose charging changed, or a new one, gets a new version: the intervals that open
	-- from now on are charged under it, those open already keep theirs (sql/014_charged.sql).
	WITH cur AS (
		SELECT c.factory_id, c.cluster, c.charge_by, c.unrated_rate, c.cpus_per_gpu,
		       c.memory_per_gpu_mb, c.charging_version,
		       coalesce((SELECT jsonb_object_agg(r.model, r.rate) FROM aif.gpu_rates r
				 WHERE r.factory_id = c.factory_id AND r.cluster = c.cluster), '{}') AS rates
		FROM aif.factory_clusters c
	), added AS (
		INSERT INTO aif.charging_versions (factory_id, cluster, charge_by, unrated_rate, cpus_per_gpu,
						   memory_per_gpu_mb, rates)
		SELECT cur.factory_id, cur.cluster, cur.charge_by, cur.unrated_rate, cur.cpus_per_gpu,
		       cur.memory_per_gpu_mb, cur.rates
		FROM cur
		LEFT JOIN aif.charging_versions v ON v.id = cur.charging_version
		WHERE v.id IS NULL
		   OR (v.charge_by, v.unrated_rate, v.cpus_per_gpu, v.memory_per_gpu_mb, v.rates)
		      IS DISTINCT FROM (cur.charge_by, cur.unrated_rate, cur.cpus_per_gpu,
					cur.memory_per_gpu_mb, cur.rates)
		RETURNING id, factory_id, cluster
	)
	UPDATE aif.factory_clusters c SET charging_version = a.id
	FROM added a
	WHERE c.factory_id = a.factory_id AND c.cluster = a.cluster;

	-- Projects, their sectors and members.
	INSERT INTO aif.projects AS l (id, factory_id, name, on_exhausted, grace_seconds, warn_at,
				       admission)
	SELECT s.id, s.factory_id, s.name, s.on_exhausted, s.grace_seconds, s.warn_at, s.admission
	FROM pg_temp.stage_projects s
	ON CONFLICT (id) DO UPDATE
	SET factory_id = excluded.factory_id, name = excluded.name,
	    on_exhausted = excluded.on_exhausted, grace_seconds = excluded.grace_seconds,
	    warn_at = excluded.warn_at, admission = excluded.admission, retired_at = NULL
	WHERE l.retired_at IS NOT NULL
	   OR (l.factory_id, l.name, l.on_exhausted, l.grace_seconds, l.warn_at, l.admission)
	      IS DISTINCT FROM (excluded.factory_id, excluded.name, excluded.on_exhausted,
				excluded.grace_seconds, excluded.warn_at, excluded.admission);
	UPDATE aif.projects l SET retired_at = now()
	WHERE l.retired_at IS NULL
	  AND NOT EXISTS (SELECT 1 FROM pg_temp.stage_projects s WHERE s.id = l.id);

	-- A sector whose position changes is deleted and inserted again (positions are unique).
	DELETE FROM aif.project_sectors l
	WHERE NOT EXISTS (SELECT 1 FROM pg_temp.stage_project_sectors s
			  WHERE s.project_id = l.project_id AND s.sector_id = l.sector_id
			    AND s.position = l.position);
	INSERT INTO aif.project_sectors (project_id, sector_id, position)
	SELECT s.project_id, s.sector_id, s.position FROM pg_temp.stage_project_sectors s
	ON CONFLICT (project_id, sector_id) DO NOTHING;

	DELETE FROM aif.project_members l
	WHERE NOT EXISTS (SELECT 1 FROM pg_temp.stage_project_members s
			  WHERE s.project_id = l.project_id AND s.kind = l.kind AND s.name = l.name);
	INSERT INTO aif.project_members (project_id, kind, name)
	SELECT s.project_id, s.kind, s.name FROM pg_temp.stage_project_members s
	ON CONFLICT (project_id, kind, name) DO NOTHING;

	-- Budgets.
	DELETE FROM aif.factory_budgets l
	WHERE NOT EXISTS (SELECT 1 FROM pg_temp.stage_factory_budgets s
			  WHERE s.factory_id = l.factory_id AND s.period_id = l.period_id);
	INSERT INTO aif.factory_budgets AS l (factory_id, period_id, gpu_hours)
	SELECT s.factory_id, s.period_id, trim_scale(s.gpu_hours) FROM pg_temp.stage_factory_budgets s
	ON CONFLICT (factory_id, period_id) DO UPDATE SET gpu_hours = excluded.gpu_hours
	WHERE l.gpu_hours <> excluded.gpu_hours;

	DELETE FROM aif.project_budgets l
	WHERE NOT EXISTS (SELECT 1 FROM pg_temp.stage_project_budgets s
			  WHERE s.project_id = l.project_id AND s.period_id = l.period_id);
	INSERT INTO aif.project_budgets AS l (project_id, period_id, gpu_hours)
	SELECT s.project_id, s.period_id, trim_scale(s.gpu_hours) FROM pg_temp.stage_project_budgets s
	ON CONFLICT (project_id, period_id) DO UPDATE SET gpu_hours = excluded.gpu_hours
	WHERE l.gpu_hours <> excluded.gpu_hours;

	-- Removed periods (their period rollups go with them), then the rollups of the new and
	-- moved ones.
	DELETE FROM aif.periods l
	WHERE NOT EXISTS (SELECT 1 FROM pg_temp.stage_periods s WHERE s.id = l.id);
	IF moved_periods IS NOT NULL THEN
		PERFORM aif.rollup_recompute_periods(moved_periods);
		PERFORM aif.reserved_totals_recompute();
	END IF;

	SELECT count(*) FILTER (WHERE r->>'action' = 'add'),
	       count(*) FILTER (WHERE r->>'action' = 'change'),
	       count(*) FILTER (WHERE r->>'action' = 'remove')
	INTO n_add, n_change, n_remove
	FROM jsonb_array_elements(plan_rows) AS r;

	INSERT INTO aif.apply_log (applied_by, file_name, file_sha256, adds, changes, removes, summary)
	VALUES (apply.applied_by, apply.file_name, apply.file_sha256, n_add, n_change, n_remove,
		jsonb_build_object('add', n_add, 'change', n_change, 'remove', n_remove,
				   'rows', plan_rows))
	RETURNING apply_log.id INTO log_id;

	IF jsonb_array_length(plan_rows) > 0 THEN
		PERFORM pg_notify('aif_config', log_id::text);
	END IF;

	RETURN QUERY
	SELECT r.e->>'action', r.e->>'object', r.e->>'id', r.e->>'detail'
	FROM jsonb_array_elements(plan_rows) WITH ORDINALITY AS r(e, n)
	ORDER BY r.n;
END
$$;

-- Rights.
REVOKE ALL ON FUNCTION aif.plan_text(text), aif.plan_list(int[]), aif.plan_num(numeric),
	aif.plan_days(date, date), aif.plan_position(int), aif.begin_staging(), aif.stage_check(),
	aif.plan(), aif.apply(text, bytea, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION aif.plan_text(text), aif.plan_list(int[]), aif.plan_num(numeric),
	aif.plan_days(date, date), aif.plan_position(int), aif.begin_staging(), aif.stage_check(),
	aif.plan(), aif.apply(text, bytea, text)
	TO aif_operator;
