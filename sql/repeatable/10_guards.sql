-- sql/repeatable/10_guards.sql: what no one may change: the apply log's stamps, and the
-- configuration rows that are never deleted.
--
-- A repeatable file: the current definition of what it holds, run again by every
-- "aifctl db migrate" after the versioned migrations (docs/database.md, "Migrations").
-- Change a function or view here, never in a versioned migration.

-- applied_at and db_user are facts, not claims: whoever inserts cannot choose them.
CREATE OR REPLACE FUNCTION aif.apply_log_stamp() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	NEW.applied_at := now();
	NEW.db_user := session_user;
	RETURN NEW;
END
$$;

-- Sectors, factories and projects are referenced by usage and cancellations: never deleted
-- (retired instead), and their ids never change.
CREATE OR REPLACE FUNCTION aif.never_deleted() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	what text := CASE TG_TABLE_NAME WHEN 'factories' THEN 'factory' WHEN 'projects' THEN 'project'
				       ELSE 'sector' END;
BEGIN
	IF TG_OP = 'UPDATE' THEN
		RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
			MESSAGE = format('the id of a %s cannot be changed', what),
			DETAIL = format('The %s %s may be referenced by usage.', what, OLD.id),
			HINT = 'Add the new id and retire the old one.';
	END IF;
	RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
		MESSAGE = format('aif.%s: rows are never deleted', TG_TABLE_NAME),
		DETAIL = 'Usage refers to them.',
		HINT = 'Retire them instead: set retired_at (aif.apply() does it for what a budgets file leaves out).';
END
$$;

-- Rights: trigger functions are called by their triggers only.
REVOKE ALL ON FUNCTION aif.apply_log_stamp(), aif.never_deleted() FROM PUBLIC;
