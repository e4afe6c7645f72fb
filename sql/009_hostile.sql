-- 009_hostile: what a hostile user or an unusual site must not break.
--
-- 1. uids of 2^31 and above (large LDAP/AD uid ranges) are stored, not refused forever: the
--    uid columns of the usage tables become bigint (as aif.admissions' already is). This
--    rewrites aif.usage_intervals once, under an exclusive lock: on a large table run the
--    upgrade in a quiet moment (docs/operators.md, upgrades).
ALTER TABLE aif.usage_intervals ALTER COLUMN uid TYPE bigint;
ALTER TABLE aif.usage_end_inbox ALTER COLUMN uid TYPE bigint;

-- 2. An admission is a job's only while it is current (aif.admission_current(),
--    sql/repeatable/20_usage.sql): aifd replaces one kept for an earlier job of the same id.
GRANT UPDATE ON aif.admissions TO aif_daemon;

-- 3. Usage that no project can be charged for (a user with no project who bypassed the
--    checks, a project its user may no longer use, ...) is kept here, with its reason, instead
--    of being refused and lost: the GPUs were used. One row per job, node and run, like
--    aif.usage_intervals, with the nodes' times (never settled with slurmctld's: no project's
--    budget depends on them). An open row whose end can be charged (the job's admission came
--    meanwhile) moves to aif.usage_intervals; one whose end never arrives is closed by aifd's
--    reconciliation as an interval is. Operators read it; funders see it counted, without
--    personal data, in aif_report.unattributed_daily.
CREATE TABLE IF NOT EXISTS aif.unattributed_intervals (
	cluster text NOT NULL,
	job_id bigint NOT NULL,
	node text NOT NULL,
	restart_count int NOT NULL CHECK (restart_count >= 0),
	reason text NOT NULL CHECK (reason <> ''),  -- decide.c's reason: no-project, not-member, ...
	project_asked text,                         -- what the record named (the user's choice)
	uid bigint,
	user_name text,
	gpus int NOT NULL CHECK (gpus >= 0),
	started_at timestamptz NOT NULL,
	ended_at timestamptz,
	received_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (cluster, job_id, node, restart_count),
	CHECK (ended_at >= started_at)
);
COMMENT ON TABLE aif.unattributed_intervals IS
	'GPU usage no project could be charged for, with the reason; the nodes'' times';
-- Open rows (running jobs), read by aifd's reconciliation as aif.usage_intervals' are.
CREATE INDEX IF NOT EXISTS unattributed_intervals_open ON aif.unattributed_intervals (cluster, job_id)
	WHERE ended_at IS NULL;
REVOKE ALL ON aif.unattributed_intervals FROM PUBLIC;
-- DELETE: an open row whose end turns out chargeable moves to aif.usage_intervals (store.c).
GRANT SELECT, INSERT, UPDATE, DELETE ON aif.unattributed_intervals TO aif_daemon;
GRANT SELECT ON aif.unattributed_intervals TO aif_operator;

INSERT INTO aif.schema_migrations (version, name) VALUES (9, '009_hostile') ON CONFLICT DO NOTHING;
