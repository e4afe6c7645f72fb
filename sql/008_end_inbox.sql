-- 008_end_inbox: epilog ends that aifd has acknowledged but not yet closed with slurmctld's times.
--
-- aifd acknowledges a usage record as soon as it is durable, without waiting for slurmctld:
-- a prolog or epilog must not wait on a busy controller, and the controller must not answer
-- one RPC per job start and end. Its usage writer stores a start at once, with the node's
-- clock, and corrects it to slurmctld's StartTime once asked (an open interval may change).
-- A closed interval may not (002: the rollups hold it), so an epilog's end first goes here,
-- in the same statement that acknowledges it; aifd then asks slurmctld for the run's times and
-- closes the interval with them (or with the node's, when slurmctld does not know the run),
-- deleting the row in the same statement. Normally within a second. A row left by an aifd
-- that stopped meanwhile is closed by the next aifd of its cluster when it starts.
-- The interval stays open until then: reports count it up to now, as any running job.

CREATE TABLE IF NOT EXISTS aif.usage_end_inbox (
	cluster text NOT NULL CHECK (cluster <> ''),
	job_id bigint NOT NULL,
	node text NOT NULL CHECK (node <> ''),
	restart_count int NOT NULL CHECK (restart_count >= 0),
	project_id text NOT NULL CHECK (project_id <> ''),
	sector_id text NOT NULL CHECK (sector_id <> ''),
	uid int,
	user_name text,
	gpus int NOT NULL CHECK (gpus >= 0),
	started_at timestamptz,
	ended_at timestamptz NOT NULL,
	received_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (cluster, job_id, node, restart_count),
	CHECK (started_at <= ended_at) -- what aifd checked before it acknowledged the end
);
COMMENT ON TABLE aif.usage_end_inbox IS
	'epilog ends acknowledged by aifd, not yet closed with slurmctld''s times (normally for under a second)';
COMMENT ON COLUMN aif.usage_end_inbox.started_at IS
	'the end record''s own start (an end whose start never arrived), else NULL';

GRANT SELECT, INSERT, DELETE ON aif.usage_end_inbox TO aif_daemon;
GRANT SELECT ON aif.usage_end_inbox TO aif_operator;

INSERT INTO aif.schema_migrations (version, name) VALUES (8, '008_end_inbox') ON CONFLICT DO NOTHING;
