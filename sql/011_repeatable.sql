-- 011_repeatable: from here on, the functions and views are defined by the repeatable files
-- sql/repeatable/NN_name.sql, which every migration runs again after the versioned ones (the
-- definitions in 001 to 010 are history: the repeatable files replace them). This table
-- records which text of them the database has, so that aifd and aifctl refuse a database whose
-- functions and views are another build's (docs/database.md, "Migrations").
CREATE TABLE IF NOT EXISTS aif.schema_repeatable (
	id boolean PRIMARY KEY DEFAULT true CHECK (id),
	sha256 text NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE aif.schema_repeatable IS
	'the SHA-256 of the repeatable files (sql/repeatable/) last run on this database';
REVOKE ALL ON aif.schema_repeatable FROM PUBLIC;
GRANT SELECT ON aif.schema_repeatable TO aif_operator, aif_daemon;

INSERT INTO aif.schema_migrations (version, name) VALUES (11, '011_repeatable') ON CONFLICT DO NOTHING;
