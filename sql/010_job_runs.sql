-- 010_job_runs: a reused job id is another job, never a duplicate of the earlier one.
--
-- A Slurm job id repeats after MaxJobId wraps and after a slurmctld state reset, so (cluster,
-- job, node, restart) can name two jobs: the later one's usage was taken for a repeat of the
-- earlier, closed interval's and dropped. A usage row is now keyed by the job's run too: 0 for
-- the first job under that key, 1 for the next, ... aifd's usage writer (daemon/usage/store.c) gives
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

INSERT INTO aif.schema_migrations (version, name) VALUES (10, '010_job_runs') ON CONFLICT DO NOTHING;
