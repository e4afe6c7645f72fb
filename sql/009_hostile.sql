-- 009_hostile: what a hostile user or an unusual site must not break.
--
-- 1. uids of 2^31 and above (large LDAP/AD uid ranges) are stored, not refused forever: the
--    uid columns of the usage tables become bigint (as aif.admissions' already is). This
--    rewrites aif.usage_intervals once, under an exclusive lock: on a large table run the
--    upgrade in a quiet moment (docs/operators.md, upgrades).
ALTER TABLE aif.usage_intervals ALTER COLUMN uid TYPE bigint;
ALTER TABLE aif.usage_end_inbox ALTER COLUMN uid TYPE bigint;

-- 2. An admission is a job's only while it is current: a Slurm job id repeats after MaxJobId
--    wraps and after a slurmctld state reset. An admission decided for another uid, or 30 days
--    ago for a job that aifd's reconciliation has not seen running in the last day, belongs to
--    an earlier job of that id: it is decided again (aifd's KEEP statement replaces it) and
--    never charges the later job's usage. (A job still running after 30 days keeps its
--    admission: reconciliation sees it at every pass, aif.job_last_seen.)
CREATE OR REPLACE FUNCTION aif.admission_current(adm aif.admissions, job_uid bigint)
RETURNS boolean LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT adm.uid = job_uid AND (adm.decided_at > now() - interval '30 days'
	OR EXISTS (SELECT 1 FROM aif.job_last_seen s WHERE s.cluster = adm.cluster
		   AND s.job_id = adm.job_id AND s.seen_at > now() - interval '1 day')) $$;
COMMENT ON FUNCTION aif.admission_current(aif.admissions, bigint) IS
	'whether a kept admission is the one of the job its uid runs now (job ids repeat)';
REVOKE ALL ON FUNCTION aif.admission_current(aif.admissions, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION aif.admission_current(aif.admissions, bigint) TO aif_daemon, aif_operator;
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

-- Per UTC day, cluster and reason: GPU-hours (split at UTC midnight, open intervals up to
-- now(), as usage_daily) and distinct jobs. No uid, no user name, no project name.
CREATE OR REPLACE VIEW aif_report.unattributed_daily AS
SELECT d.day, u.cluster, u.reason,
       trim_scale(round(sum(u.gpus * extract(epoch FROM
		least(coalesce(u.ended_at, now()), (d.day + 1)::timestamp AT TIME ZONE 'UTC')
		- greatest(u.started_at, d.day::timestamp AT TIME ZONE 'UTC'))) / 3600.0, 6)) AS gpu_hours,
       count(DISTINCT u.job_id) AS jobs
FROM aif.unattributed_intervals u
CROSS JOIN LATERAL (
	-- the days the interval overlaps by a positive duration (as usage_daily counts jobs)
	SELECT g::date AS day
	FROM generate_series((u.started_at AT TIME ZONE 'UTC')::date,
			     ((coalesce(u.ended_at, now()) - interval '1 microsecond') AT TIME ZONE 'UTC')::date,
			     interval '1 day') g
	WHERE coalesce(u.ended_at, now()) > u.started_at
) d
GROUP BY d.day, u.cluster, u.reason;
COMMENT ON VIEW aif_report.unattributed_daily IS
	'GPU-hours used that no project could be charged for, per UTC day, cluster and reason';
REVOKE ALL ON aif_report.unattributed_daily FROM PUBLIC;
GRANT SELECT ON aif_report.unattributed_daily TO aif_funder, aif_operator, aif_daemon;

INSERT INTO aif.schema_migrations (version, name) VALUES (9, '009_hostile') ON CONFLICT DO NOTHING;
