-- 006_admissions: the start-time admission of each job, decided once.
--
-- aifd decides a job's admission at its first "admit" (the prolog or the first step, from
-- root or SlurmUser) and answers every later "admit" of the same job (other nodes, later srun
-- steps) from here: a job admitted while its budget had room is not refused in a later step
-- (on_exhausted: deny lets running jobs finish), and one refused stays refused, whichever aifd
-- is asked and after a restart. The first decision wins: INSERT ... ON CONFLICT DO NOTHING.
--
-- Holds the job's uid: personal data, not for funders (not in aif_report).

CREATE TABLE IF NOT EXISTS aif.admissions (
	cluster text NOT NULL,
	job_id bigint NOT NULL,
	uid bigint NOT NULL,
	verdict text NOT NULL CHECK (verdict IN ('ok', 'warn', 'refuse')),
	reason text NOT NULL,  -- which check decided: daemon/budgets/decide.c, docs/protocol.md
	project_id text,     -- resolved (NULL when refused before the project was known)
	sector_id text,
	message text NOT NULL DEFAULT '',
	detail text NOT NULL DEFAULT '',
	hint text NOT NULL DEFAULT '',
	decided_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (cluster, job_id),
	CHECK (verdict = 'refuse' OR (project_id IS NOT NULL AND sector_id IS NOT NULL))
);
COMMENT ON TABLE aif.admissions IS 'the first start-time admission decision of each job';

REVOKE ALL ON aif.admissions FROM PUBLIC;
GRANT SELECT ON aif.admissions TO aif_operator;
GRANT SELECT, INSERT ON aif.admissions TO aif_daemon;

INSERT INTO aif.schema_migrations (version, name) VALUES (6, '006_admissions') ON CONFLICT DO NOTHING;
