-- 005_reconcile: what aifd's reconciliation with slurmctld keeps between its passes, and an
-- index for its cancellations.
--
-- An interval whose end never arrived (the node crashed, the epilog's message was lost) is
-- closed by aifd from slurmctld's record of the job (daemon/slurm/reconcile.c, docs/aifd.md):
-- end_source 'reconciled-slurm' at the end time slurmctld reports, or, once slurmctld no longer
-- knows the job (MinJobAge passed) or the job was requeued, 'reconciled-last-seen' at the last
-- bound known: the latest time aifd saw that run of the job alive in slurmctld, kept here, or
-- the interval's own start when it was never seen. aifd keeps no state PostgreSQL does not
-- have, so that bound survives a restart of aifd and a move to another host.
--
-- One row per run of a job (a requeue starts a new run) that has open intervals and was seen
-- running; aifd deletes the row once the run has no open interval left. Not a column of
-- aif.usage_intervals: this is rewritten on every pass for every running job, and updates of
-- the big, append-mostly usage table would be new row versions and index entries each time,
-- where this table stays as small as the set of running jobs.

CREATE TABLE IF NOT EXISTS aif.job_last_seen (
	cluster text NOT NULL,
	job_id bigint NOT NULL,
	restart_count int NOT NULL CHECK (restart_count >= 0),
	seen_at timestamptz NOT NULL,
	PRIMARY KEY (cluster, job_id, restart_count)
);
COMMENT ON TABLE aif.job_last_seen IS
	'the last time aifd saw each run of a job with open intervals alive in slurmctld';

-- The requests not carried out yet, which every pass reads (cancellations only grow).
CREATE INDEX IF NOT EXISTS cancellations_due ON aif.cancellations (cluster, not_before)
	WHERE done_at IS NULL;

REVOKE ALL ON aif.job_last_seen FROM PUBLIC;
GRANT SELECT ON aif.job_last_seen TO aif_operator;
-- aif_daemon: its own bookkeeping, not the accounting record; the one table it deletes from.
GRANT SELECT, INSERT, DELETE ON aif.job_last_seen TO aif_daemon;
GRANT UPDATE (seen_at) ON aif.job_last_seen TO aif_daemon;

INSERT INTO aif.schema_migrations (version, name) VALUES (5, '005_reconcile') ON CONFLICT DO NOTHING;
