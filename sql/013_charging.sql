-- 013_charging: what one GPU-hour costs on each cluster of a factory (budgets schema version 2,
-- docs/budgets-yaml.md, "Charging").
--
-- A factory's cluster is charged by its GPUs (each at its model's rate, optionally raised to
-- the share of the node's CPUs and memory the job holds) or by Slurm's billing TRES. The
-- defaults are what schema version 1 meant: every GPU costs 1 per hour. A rate applies from the
-- moment aif.apply() stores it; what is already charged keeps its rate (the apply log shows the
-- change).

ALTER TABLE aif.factory_clusters
	ADD COLUMN IF NOT EXISTS charge_by text NOT NULL DEFAULT 'gpus'
		CHECK (charge_by IN ('gpus', 'billing')),
	ADD COLUMN IF NOT EXISTS unrated_rate numeric NOT NULL DEFAULT 1 CHECK (unrated_rate >= 0),
	ADD COLUMN IF NOT EXISTS cpus_per_gpu int CHECK (cpus_per_gpu > 0),
	ADD COLUMN IF NOT EXISTS memory_per_gpu_mb bigint CHECK (memory_per_gpu_mb > 0);
COMMENT ON COLUMN aif.factory_clusters.unrated_rate IS
	'what an hour of a GPU costs whose model has no rate in aif.gpu_rates, or that has no type';
COMMENT ON COLUMN aif.factory_clusters.cpus_per_gpu IS
	'node share: a node''s CPUs of a job, divided by this and rounded up, are GPUs charged';

-- Model names are Slurm GRES types, as gres.conf's Type= gives them (MIG profiles included).
CREATE TABLE IF NOT EXISTS aif.gpu_rates (
	factory_id text NOT NULL,
	cluster text NOT NULL,
	model text NOT NULL CHECK (model <> ''),
	rate numeric NOT NULL CHECK (rate >= 0),
	PRIMARY KEY (factory_id, cluster, model),
	FOREIGN KEY (factory_id, cluster) REFERENCES aif.factory_clusters ON DELETE CASCADE
);
COMMENT ON TABLE aif.gpu_rates IS
	'budget units charged for one hour of one GPU of a model on a cluster of a factory';

REVOKE ALL ON aif.gpu_rates FROM PUBLIC;
GRANT SELECT ON aif.gpu_rates TO aif_operator, aif_daemon;
GRANT INSERT, UPDATE, DELETE ON aif.gpu_rates TO aif_operator;

INSERT INTO aif.schema_migrations (version, name) VALUES (13, '013_charging') ON CONFLICT DO NOTHING;
