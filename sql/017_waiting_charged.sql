-- 017_waiting_charged: what a held job costs, when it was last tried, and which run a
-- reservation is of
-- (docs/aifd.md, "Reservations" and "Jobs that wait"). Safe to run twice.
--
-- A job held at its start keeps the cost per hour its admission computed from slurmctld's
-- allocation (charged GPUs: models at their rates, raised to the node's CPU and memory shares,
-- or billing) and the charging version it was computed under, so that its release reserves that,
-- not each GPU at the cluster's highest rate: on a cluster that charges shares or billing, that
-- was less than the job's cost, and the job was released, held again at its start and released
-- again, over and over. The charge is used only while its version is the cluster's. NULL: held
-- while pending (the allocation is not known yet).
ALTER TABLE aif.waiting ADD COLUMN IF NOT EXISTS charged numeric CHECK (charged >= 0);
ALTER TABLE aif.waiting ADD COLUMN IF NOT EXISTS charging_version bigint;
COMMENT ON COLUMN aif.waiting.charged IS
	'charged GPUs per hour its admission computed when it was held at its start; NULL: held while pending';
COMMENT ON COLUMN aif.waiting.charging_version IS
	'the charging version charged was computed under (aif.charging_versions; NULL: none)';

-- When aif.waiting_release() last tried a job that still does not fit: a pass tries 100, those
-- looked at least recently first (tried, or held and not tried since), so that more than 100
-- waiting jobs that do not fit do not keep the others from ever being tried. NULL: never
-- tried (a job held again keeps its last try: it is as overdue for one).
ALTER TABLE aif.waiting ADD COLUMN IF NOT EXISTS tried_at timestamptz;
COMMENT ON COLUMN aif.waiting.tried_at IS
	'when aif.waiting_release() last tried it and it did not fit; NULL: never';

-- A reservation made by a run's admission keeps the run (slurmctld's restart count): the late
-- close of an earlier run's intervals (its end spooled while aifd was away) does not release
-- the reservation of the next run, whose own intervals are not recorded yet.
ALTER TABLE aif.reservations ADD COLUMN IF NOT EXISTS restart_count bigint CHECK (restart_count >= 0);
COMMENT ON COLUMN aif.reservations.restart_count IS
	'the run whose admission made it (slurmctld''s restart count); NULL: a release''s, or made before 017';

INSERT INTO aif.schema_migrations (version, name) VALUES (17, '017_waiting_charged') ON CONFLICT DO NOTHING;
