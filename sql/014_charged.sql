-- 014_charged: usage in charged GPU-hours beside physical ones (docs/budgets-yaml.md,
-- "Charging"; docs/database.md, "Charged hours").
--
-- Each interval keeps what slurmctld allocated on its node (its GPUs by model, its share of the
-- job's CPUs, memory and billing TRES), the charging of its factory's cluster in force when it
-- opened (aif.charging_versions: every apply that changes a cluster's charging adds a version,
-- never changes one) and its charged GPUs: what one hour of it costs the budget. Budgets,
-- decisions and reservations count charged GPU-microseconds (charged_us, whole, rounded per
-- slice as gpu_us is); gpu_us stays physical. An interval stored before this migration is
-- charged its GPUs (charged_gpus NULL), which is what schema version 1 meant.

CREATE TABLE IF NOT EXISTS aif.charging_versions (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	factory_id text NOT NULL,
	cluster text NOT NULL,
	charge_by text NOT NULL CHECK (charge_by IN ('gpus', 'billing')),
	unrated_rate numeric NOT NULL CHECK (unrated_rate >= 0),
	cpus_per_gpu int CHECK (cpus_per_gpu > 0),
	memory_per_gpu_mb bigint CHECK (memory_per_gpu_mb > 0),
	rates jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(rates) = 'object'),
	since timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE aif.charging_versions IS
	'how a cluster of a factory was charged from since on: the rate an interval is charged at is its version''s';
COMMENT ON COLUMN aif.charging_versions.rates IS 'GPU model -> budget units per hour of one GPU';

ALTER TABLE aif.factory_clusters
	ADD COLUMN IF NOT EXISTS charging_version bigint REFERENCES aif.charging_versions;
INSERT INTO aif.charging_versions (factory_id, cluster, charge_by, unrated_rate, cpus_per_gpu,
				   memory_per_gpu_mb, rates)
SELECT c.factory_id, c.cluster, c.charge_by, c.unrated_rate, c.cpus_per_gpu, c.memory_per_gpu_mb,
       coalesce((SELECT jsonb_object_agg(r.model, r.rate) FROM aif.gpu_rates r
		 WHERE r.factory_id = c.factory_id AND r.cluster = c.cluster), '{}')
FROM aif.factory_clusters c
WHERE c.charging_version IS NULL;
UPDATE aif.factory_clusters c SET charging_version = v.id
FROM aif.charging_versions v
WHERE c.charging_version IS NULL AND v.factory_id = c.factory_id AND v.cluster = c.cluster;

ALTER TABLE aif.usage_intervals
	ADD COLUMN IF NOT EXISTS gpu_models text,
	ADD COLUMN IF NOT EXISTS cpus int CHECK (cpus >= 0),
	ADD COLUMN IF NOT EXISTS memory_mb bigint CHECK (memory_mb >= 0),
	ADD COLUMN IF NOT EXISTS billing numeric CHECK (billing >= 0),
	ADD COLUMN IF NOT EXISTS charging_version bigint,
	ADD COLUMN IF NOT EXISTS charged_gpus numeric CHECK (charged_gpus >= 0);
COMMENT ON COLUMN aif.usage_intervals.gpu_models IS
	'the node''s GPUs by model as slurmctld allocated them, "a100:1,h100:2" (":2" untyped); NULL: not known';
COMMENT ON COLUMN aif.usage_intervals.charged_gpus IS
	'budget units one hour of this interval costs (aif.charged_gpus()); NULL: gpus (before migration 014)';
-- When aifd asked slurmctld what the job of an open interval was allocated (NULL: not yet); the
-- partial index holds what is left to ask, few rows on any cluster (daemon/usage/allocations.c).
ALTER TABLE aif.usage_intervals ADD COLUMN IF NOT EXISTS allocation_at timestamptz;
CREATE INDEX IF NOT EXISTS usage_intervals_unallocated ON aif.usage_intervals (cluster, started_at)
	WHERE ended_at IS NULL AND allocation_at IS NULL;
GRANT UPDATE (gpus, gpu_models, cpus, memory_mb, billing, charged_gpus, allocation_at)
	ON aif.usage_intervals TO aif_daemon;

ALTER TABLE aif.usage_queue
	ADD COLUMN IF NOT EXISTS charged_gpus numeric,
	ADD COLUMN IF NOT EXISTS gpu_models text;
ALTER TABLE aif.usage_daily_rollup ADD COLUMN IF NOT EXISTS charged_us bigint;
ALTER TABLE aif.usage_monthly_rollup ADD COLUMN IF NOT EXISTS charged_us bigint;
ALTER TABLE aif.usage_period_rollup ADD COLUMN IF NOT EXISTS charged_us bigint;
UPDATE aif.usage_daily_rollup SET charged_us = gpu_us WHERE charged_us IS NULL;
UPDATE aif.usage_monthly_rollup SET charged_us = gpu_us WHERE charged_us IS NULL;
UPDATE aif.usage_period_rollup SET charged_us = gpu_us WHERE charged_us IS NULL;
ALTER TABLE aif.usage_daily_rollup ALTER COLUMN charged_us SET NOT NULL;
ALTER TABLE aif.usage_monthly_rollup ALTER COLUMN charged_us SET NOT NULL;
ALTER TABLE aif.usage_period_rollup ALTER COLUMN charged_us SET NOT NULL;

-- Physical and charged GPU-microseconds per UTC day and GPU model ('(unknown)': an interval
-- whose allocation aifd did not learn; '(untyped)': GPUs without a GRES type; '(none)': no
-- GPU, charged for its share of a node). A node's charge is split between its models in
-- proportion to their GPUs.
CREATE TABLE IF NOT EXISTS aif.usage_model_daily_rollup (
	day date NOT NULL,
	cluster text NOT NULL,
	project_id text NOT NULL,
	sector_id text NOT NULL,
	model text NOT NULL,
	gpu_us bigint NOT NULL,
	charged_us bigint NOT NULL,
	PRIMARY KEY (day, cluster, project_id, sector_id, model)
);
INSERT INTO aif.usage_model_daily_rollup (day, cluster, project_id, sector_id, model, gpu_us, charged_us)
SELECT day, cluster, project_id, sector_id, '(unknown)', gpu_us, charged_us
FROM aif.usage_daily_rollup
ON CONFLICT DO NOTHING;
REVOKE ALL ON aif.usage_model_daily_rollup FROM PUBLIC;
GRANT SELECT ON aif.usage_model_daily_rollup TO aif_operator, aif_daemon;

-- A reservation holds its job's charged GPUs (what an hour of the whole job may cost).
ALTER TABLE aif.reservations ADD COLUMN IF NOT EXISTS charged numeric CHECK (charged >= 0);
UPDATE aif.reservations SET charged = gpus WHERE charged IS NULL;
ALTER TABLE aif.reservations ALTER COLUMN charged SET NOT NULL;

REVOKE ALL ON aif.charging_versions FROM PUBLIC;
GRANT SELECT ON aif.charging_versions TO aif_operator, aif_daemon;
GRANT INSERT ON aif.charging_versions TO aif_operator;

INSERT INTO aif.schema_migrations (version, name) VALUES (14, '014_charged') ON CONFLICT DO NOTHING;
