-- 012_reservations: admission that reserves a job's maximum cost (docs/aifd.md, "Reservations").
--
-- A factory or project whose admission is 'reserve' admits a job only when its maximum cost
-- (its GPUs times its time limit, split at period boundaries) fits what is left of the budget
-- after closed usage and the other reservations, for the project and its factory; 'used' is
-- the admission of version 1 (used so far against the budget). The projects' column holds the
-- effective value (the factory's when the budgets file does not set it).
--
-- A reservation lives from the job's admission until its run's last interval closes
-- (aif.reservations_release(), called by the triggers of aif.usage_intervals). No uid and no
-- user name: what a project has reserved is no personal data.

ALTER TABLE aif.factories ADD COLUMN IF NOT EXISTS admission text NOT NULL DEFAULT 'used'
	CHECK (admission IN ('used', 'reserve'));
ALTER TABLE aif.projects ADD COLUMN IF NOT EXISTS admission text NOT NULL DEFAULT 'used'
	CHECK (admission IN ('used', 'reserve'));

CREATE TABLE IF NOT EXISTS aif.reservations (
	cluster text NOT NULL,
	job_id bigint NOT NULL,
	project_id text NOT NULL REFERENCES aif.projects,
	gpus bigint NOT NULL CHECK (gpus >= 0),
	starts_at timestamptz NOT NULL,
	ends_at timestamptz NOT NULL CHECK (ends_at >= starts_at),
	reserved_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (cluster, job_id)
);
CREATE INDEX IF NOT EXISTS reservations_project ON aif.reservations (project_id);
COMMENT ON TABLE aif.reservations IS
	'the maximum cost (GPUs over [starts_at, ends_at)) of each running job admitted by reserving';

REVOKE ALL ON aif.reservations FROM PUBLIC;
GRANT SELECT ON aif.reservations TO aif_operator, aif_daemon;

-- What the reservations hold per period and project, kept by the functions that insert and
-- delete reservations (and recomputed when periods move), so that an admission reads one row
-- per budget instead of summing every running job's reservation.
CREATE TABLE IF NOT EXISTS aif.reserved_totals (
	period_id text NOT NULL REFERENCES aif.periods ON DELETE CASCADE,
	project_id text NOT NULL REFERENCES aif.projects,
	gpu_us bigint NOT NULL CHECK (gpu_us >= 0),
	PRIMARY KEY (period_id, project_id)
);
COMMENT ON TABLE aif.reserved_totals IS
	'the GPU-microseconds of aif.reservations within each period, per project';
REVOKE ALL ON aif.reserved_totals FROM PUBLIC;
GRANT SELECT ON aif.reserved_totals TO aif_operator, aif_daemon;

-- Jobs that did not fit at their start and wait, held by aifd in slurmctld, until their cost
-- fits again (docs/aifd.md, "Jobs that wait"): their GPUs and time limit, and when aifd
-- released them (reserving their cost then, until they start).
CREATE TABLE IF NOT EXISTS aif.waiting (
	cluster text NOT NULL,
	job_id bigint NOT NULL,
	project_id text NOT NULL REFERENCES aif.projects,
	gpus bigint NOT NULL CHECK (gpus >= 0),
	seconds bigint NOT NULL CHECK (seconds > 0),
	held_at timestamptz NOT NULL DEFAULT now(),
	released_at timestamptz,
	PRIMARY KEY (cluster, job_id)
);
COMMENT ON TABLE aif.waiting IS 'jobs held by aifd until their maximum cost fits their budgets';
REVOKE ALL ON aif.waiting FROM PUBLIC;
GRANT SELECT ON aif.waiting TO aif_operator;
GRANT SELECT, INSERT, UPDATE, DELETE ON aif.waiting TO aif_daemon;

INSERT INTO aif.schema_migrations (version, name) VALUES (12, '012_reservations') ON CONFLICT DO NOTHING;
