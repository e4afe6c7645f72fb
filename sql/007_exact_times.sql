-- 007_exact_times: whether an interval's times are slurmctld's own, and the rights the usage
-- writer needs to settle an interval when it closes.
--
-- The prolog and epilog report the node's clock, which is within about a second of the job's
-- StartTime and EndTime in slurmctld. aifd asks slurmctld for those as it writes the records
-- (daemon/slurm/jobtimes.c) and stores them instead where slurmctld knows the run; reconciliation
-- does the same when it closes an interval from slurmctld's record. So an interval's
-- GPU-hours are exactly what Slurm's own start and end times and GPU counts give.
--
-- exact: started_at and (once closed) ended_at are slurmctld's StartTime and EndTime of this
-- run of the job. false: at least one of them is the node's clock, when slurmctld no longer
-- knew the run (MinJobAge passed before a spooled record arrived, slurmctld was unreachable,
-- or the job was requeued, which makes slurmctld forget the run's end) or the interval was
-- closed at aifd's last sighting of the job. A column of its own rather than an end_source
-- value: it is about both ends, and it changes only while the interval is open, with
-- started_at (a closed interval is immutable, see 002).

ALTER TABLE aif.usage_intervals ADD COLUMN IF NOT EXISTS exact boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN aif.usage_intervals.exact IS
	'started_at and ended_at are slurmctld''s StartTime and EndTime of this run (false: the node''s clock, or a reconciled bound)';

-- The usage writer settles an interval when it closes: started_at from slurmctld's StartTime,
-- and the project and sector from the job's admission (a record names the project its user
-- claims; the job is charged to the one it was admitted for, daemon/usage/store.c).
GRANT UPDATE (started_at, exact, project_id, sector_id) ON aif.usage_intervals TO aif_daemon;

INSERT INTO aif.schema_migrations (version, name) VALUES (7, '007_exact_times') ON CONFLICT DO NOTHING;
