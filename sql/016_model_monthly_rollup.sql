-- 016_model_monthly_rollup: usage per GPU model is rolled up per calendar month, not per day.
-- The daily by-model rollup of migration 014 had as many rows as the daily rollup itself, and
-- folding into it took a fifth of every flush; funders read GPU models per month
-- (docs/funders.md). Its rows are summed into their months. Safe to run twice.

-- Physical and charged GPU-microseconds per UTC calendar month (its first day) and GPU model
-- ('(unknown)': an interval whose allocation aifd did not learn; '(untyped)': GPUs without a
-- GRES type; '(none)': no GPU, charged for its share of a node). A node's charge is split
-- between its models in proportion to their GPUs.
CREATE TABLE IF NOT EXISTS aif.usage_model_monthly_rollup (
	month date NOT NULL CHECK (extract(day FROM month) = 1),
	cluster text NOT NULL,
	project_id text NOT NULL,
	sector_id text NOT NULL,
	model text NOT NULL,
	gpu_us bigint NOT NULL,
	charged_us bigint NOT NULL,
	PRIMARY KEY (month, cluster, project_id, sector_id, model)
);

DO $$
BEGIN
	IF to_regclass('aif.usage_model_daily_rollup') IS NOT NULL THEN
		-- The view over it has a month where it had a day: sql/repeatable/60_report.sql
		-- creates it again. (Not on a second run: that would drop today's view.)
		DROP VIEW IF EXISTS aif_report.usage_by_model;
		INSERT INTO aif.usage_model_monthly_rollup (month, cluster, project_id, sector_id, model,
							   gpu_us, charged_us)
		SELECT date_trunc('month', d.day)::date, d.cluster, d.project_id, d.sector_id, d.model,
		       sum(d.gpu_us), sum(d.charged_us)
		FROM aif.usage_model_daily_rollup d
		GROUP BY 1, 2, 3, 4, 5;
		DROP TABLE aif.usage_model_daily_rollup;
	END IF;
END
$$;

REVOKE ALL ON aif.usage_model_monthly_rollup FROM PUBLIC;
GRANT SELECT ON aif.usage_model_monthly_rollup TO aif_operator, aif_daemon;

INSERT INTO aif.schema_migrations (version, name) VALUES (16, '016_model_monthly_rollup') ON CONFLICT DO NOTHING;
