-- 001_core: the schemas, the three group roles, the configuration tables, the usage intervals,
-- cancellations and the apply log.
--
-- Like every migration: run by aif_db_migrate() inside one transaction (this file has no
-- BEGIN/COMMIT), idempotent (safe to run again by hand with psql -1 -f), and it records itself
-- in aif.schema_migrations at the end. docs/database.md describes the schema.

CREATE SCHEMA IF NOT EXISTS aif;
CREATE SCHEMA IF NOT EXISTS aif_report;
COMMENT ON SCHEMA aif IS 'aif private data: configuration, usage intervals, rollups, apply log';
COMMENT ON SCHEMA aif_report IS 'aif funder views: aggregates only, no personal data';
REVOKE ALL ON SCHEMA aif FROM PUBLIC;
REVOKE ALL ON SCHEMA aif_report FROM PUBLIC;

-- Roles are cluster-wide: create the missing ones only. Two databases migrated at the same
-- time may both find a role missing; the loser of that race gets duplicate_object or
-- unique_violation and moves on.
DO $$
DECLARE
	r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['aif_funder', 'aif_operator', 'aif_daemon'] LOOP
		IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
			BEGIN
				EXECUTE format('CREATE ROLE %I NOLOGIN', r);
			EXCEPTION WHEN duplicate_object OR unique_violation THEN
				NULL;
			END;
		END IF;
	END LOOP;
END
$$;

-- Sites may have revoked CONNECT/TEMPORARY from PUBLIC: give them to the roles when we can.
-- aif.begin_staging() (004) needs TEMPORARY for aif_operator.
DO $$
BEGIN
	IF has_database_privilege(current_user, current_database(), 'CONNECT WITH GRANT OPTION') THEN
		EXECUTE format('GRANT CONNECT ON DATABASE %I TO aif_funder, aif_operator, aif_daemon',
			       current_database());
	END IF;
	IF has_database_privilege(current_user, current_database(), 'TEMPORARY WITH GRANT OPTION') THEN
		EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO aif_operator', current_database());
	END IF;
END
$$;

CREATE TABLE IF NOT EXISTS aif.schema_migrations (
	version int PRIMARY KEY,
	name text NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
);

-- Configuration: the operators' budgets YAML as applied by aif.apply() (004). Sectors,
-- factories and projects are referenced by usage, so they are never deleted, only retired
-- (retired_at set; applying them again clears it). The rest is replaced outright.

CREATE TABLE IF NOT EXISTS aif.sectors (
	id text PRIMARY KEY CHECK (id <> ''),
	created_at timestamptz NOT NULL DEFAULT now(),
	retired_at timestamptz
);

-- Budget periods are whole UTC days: [starts_on, ends_on). They may overlap (a year and its
-- halves).
CREATE TABLE IF NOT EXISTS aif.periods (
	id text PRIMARY KEY CHECK (id <> ''),
	starts_on date NOT NULL,
	ends_on date NOT NULL,
	CHECK (ends_on > starts_on)
);

CREATE TABLE IF NOT EXISTS aif.factories (
	id text PRIMARY KEY CHECK (id <> ''),
	name text,
	on_exhausted text NOT NULL DEFAULT 'deny' CHECK (on_exhausted IN ('deny', 'cancel')),
	grace_seconds bigint NOT NULL DEFAULT 0 CHECK (grace_seconds >= 0),
	warn_at int[] NOT NULL DEFAULT '{}'
		CHECK (cardinality(warn_at) <= 8 AND array_position(warn_at, NULL) IS NULL
		       AND 1 <= ALL (warn_at) AND 100 >= ALL (warn_at)),
	allow_overcommit boolean NOT NULL DEFAULT false,
	created_at timestamptz NOT NULL DEFAULT now(),
	retired_at timestamptz
);

-- The Slurm ClusterName values a factory runs on. A cluster may serve several factories.
CREATE TABLE IF NOT EXISTS aif.factory_clusters (
	factory_id text NOT NULL REFERENCES aif.factories,
	cluster text NOT NULL CHECK (cluster <> ''),
	PRIMARY KEY (factory_id, cluster)
);
CREATE INDEX IF NOT EXISTS factory_clusters_cluster ON aif.factory_clusters (cluster);

CREATE TABLE IF NOT EXISTS aif.factory_budgets (
	factory_id text NOT NULL REFERENCES aif.factories,
	period_id text NOT NULL REFERENCES aif.periods,
	gpu_hours numeric NOT NULL CHECK (gpu_hours > 0),
	PRIMARY KEY (factory_id, period_id)
);

-- Project ids are unique across all factories. on_exhausted, grace_seconds and warn_at are the
-- effective values (the factory's when the YAML does not set them).
CREATE TABLE IF NOT EXISTS aif.projects (
	id text PRIMARY KEY CHECK (id <> ''),
	factory_id text NOT NULL REFERENCES aif.factories,
	name text,
	on_exhausted text NOT NULL DEFAULT 'deny' CHECK (on_exhausted IN ('deny', 'cancel')),
	grace_seconds bigint NOT NULL DEFAULT 0 CHECK (grace_seconds >= 0),
	warn_at int[] NOT NULL DEFAULT '{}'
		CHECK (cardinality(warn_at) <= 8 AND array_position(warn_at, NULL) IS NULL
		       AND 1 <= ALL (warn_at) AND 100 >= ALL (warn_at)),
	created_at timestamptz NOT NULL DEFAULT now(),
	retired_at timestamptz
);
CREATE INDEX IF NOT EXISTS projects_factory ON aif.projects (factory_id);

-- The sectors a project may run for; position 0 is the default sector.
CREATE TABLE IF NOT EXISTS aif.project_sectors (
	project_id text NOT NULL REFERENCES aif.projects,
	sector_id text NOT NULL REFERENCES aif.sectors,
	position int NOT NULL CHECK (position >= 0),
	PRIMARY KEY (project_id, sector_id),
	UNIQUE (project_id, position)
);

-- Unix users and groups allowed to run for a project (resolved through NSS by the plugin).
CREATE TABLE IF NOT EXISTS aif.project_members (
	project_id text NOT NULL REFERENCES aif.projects,
	kind text NOT NULL CHECK (kind IN ('user', 'group')),
	name text NOT NULL CHECK (name <> ''),
	PRIMARY KEY (project_id, kind, name)
);
CREATE INDEX IF NOT EXISTS project_members_name ON aif.project_members (kind, name);

CREATE TABLE IF NOT EXISTS aif.project_budgets (
	project_id text NOT NULL REFERENCES aif.projects,
	period_id text NOT NULL REFERENCES aif.periods,
	gpu_hours numeric NOT NULL CHECK (gpu_hours > 0),
	PRIMARY KEY (project_id, period_id)
);

-- Usage: one row per job, node and restart (requeue) of the job, written by aifd from the
-- prolog (open: ended_at NULL) and the epilog or reconciliation (closed). The key makes every
-- event idempotent: the same start can never be stored twice. GPU-hours of a row are
-- gpus * (coalesce(ended_at, now()) - started_at). Closed rows are immutable in everything
-- the usage rollups derive from, rows are never deleted, and project_id and sector_id must
-- exist: the statement triggers of 002 enforce all three. (Not foreign keys: two lookups and
-- row locks per inserted row were two thirds of the insert cost; one set-based check per
-- statement is nearly free, and sectors and projects are never deleted, see below.)
CREATE TABLE IF NOT EXISTS aif.usage_intervals (
	cluster text NOT NULL,
	job_id bigint NOT NULL,
	node text NOT NULL,
	restart_count int NOT NULL CHECK (restart_count >= 0),
	project_id text NOT NULL,
	sector_id text NOT NULL,
	uid int,
	user_name text,
	gpus int NOT NULL CHECK (gpus >= 0),
	started_at timestamptz NOT NULL,
	ended_at timestamptz,
	end_source text CHECK (end_source <> ''),
	PRIMARY KEY (cluster, job_id, node, restart_count),
	CHECK (ended_at >= started_at),
	CHECK (end_source IS NULL OR ended_at IS NOT NULL)
);
COMMENT ON COLUMN aif.usage_intervals.end_source IS
	'how the end became known: epilog, reconciled-slurm, reconciled-last-seen, ...';
-- Open intervals (running jobs): few, read live by the report views and by aifd.
CREATE INDEX IF NOT EXISTS usage_intervals_open ON aif.usage_intervals (cluster, job_id)
	WHERE ended_at IS NULL;

-- Jobs aifd decided to cancel under on_exhausted: cancel (after not_before, the grace).
CREATE TABLE IF NOT EXISTS aif.cancellations (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	cluster text NOT NULL,
	job_id bigint NOT NULL,
	project_id text NOT NULL REFERENCES aif.projects,
	factory_id text NOT NULL REFERENCES aif.factories,
	scope text NOT NULL CHECK (scope IN ('project', 'factory')),
	period_id text,
	reason text NOT NULL,
	requested_at timestamptz NOT NULL DEFAULT now(),
	not_before timestamptz NOT NULL DEFAULT now(),
	done_at timestamptz,
	outcome text,
	UNIQUE (cluster, job_id)
);
COMMENT ON COLUMN aif.cancellations.scope IS 'whose budget ran out: the project''s or the factory''s';

-- The audit log of every aif.apply(), no-ops included.
CREATE TABLE IF NOT EXISTS aif.apply_log (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	applied_at timestamptz NOT NULL DEFAULT now(),
	applied_by text NOT NULL,
	db_user text NOT NULL DEFAULT session_user,
	file_name text NOT NULL,
	file_sha256 bytea NOT NULL CHECK (octet_length(file_sha256) = 32),
	adds int NOT NULL CHECK (adds >= 0),
	changes int NOT NULL CHECK (changes >= 0),
	removes int NOT NULL CHECK (removes >= 0),
	summary jsonb NOT NULL
);
COMMENT ON COLUMN aif.apply_log.applied_by IS 'the OS user aifctl reports';
COMMENT ON COLUMN aif.apply_log.db_user IS 'session_user of the applying connection (set by trigger)';

-- Rights. Funders get nothing in aif: the aif_report views (003) are owned by the schema owner.
REVOKE ALL ON ALL TABLES IN SCHEMA aif FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA aif FROM PUBLIC;
GRANT USAGE ON SCHEMA aif TO aif_operator, aif_daemon;

GRANT SELECT ON aif.schema_migrations, aif.sectors, aif.periods, aif.factories,
	aif.factory_clusters, aif.factory_budgets, aif.projects, aif.project_sectors,
	aif.project_members, aif.project_budgets
	TO aif_operator, aif_daemon;

-- aif_operator: apply rewrites the configuration; sectors, factories and projects are only
-- ever retired, so there is no DELETE on them.
GRANT INSERT, UPDATE ON aif.sectors, aif.factories, aif.projects TO aif_operator;
GRANT INSERT, UPDATE, DELETE ON aif.periods, aif.factory_clusters, aif.factory_budgets,
	aif.project_sectors, aif.project_members, aif.project_budgets
	TO aif_operator;
GRANT SELECT ON aif.usage_intervals, aif.cancellations, aif.apply_log TO aif_operator;
GRANT INSERT ON aif.apply_log TO aif_operator;

-- aif_daemon: writes usage (opening rows, then closing them) and cancellations.
GRANT SELECT, INSERT ON aif.usage_intervals TO aif_daemon;
GRANT UPDATE (ended_at, end_source) ON aif.usage_intervals TO aif_daemon;
GRANT SELECT, INSERT ON aif.cancellations TO aif_daemon;
GRANT UPDATE (done_at, outcome) ON aif.cancellations TO aif_daemon;

INSERT INTO aif.schema_migrations (version, name) VALUES (1, '001_core') ON CONFLICT DO NOTHING;
