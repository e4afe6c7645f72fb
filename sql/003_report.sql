-- 003_report: the funders' schema aif_report, a stable public interface (docs/funders.md).
-- The views themselves are defined in sql/repeatable/60_report.sql.

REVOKE ALL ON ALL TABLES IN SCHEMA aif_report FROM PUBLIC;
GRANT USAGE ON SCHEMA aif_report TO aif_funder, aif_operator, aif_daemon;
GRANT SELECT ON ALL TABLES IN SCHEMA aif_report TO aif_funder, aif_operator, aif_daemon;

INSERT INTO aif.schema_migrations (version, name) VALUES (3, '003_report') ON CONFLICT DO NOTHING;
