#!/usr/bin/env bash
# Migrations: from empty to the latest version, a second run changes nothing, every file is
# safe to run twice by hand (psql -1 -f) and gives the same schema as the runner, concurrent
# migrators apply each migration once, and a newer or broken database is refused clearly.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/sql_common.sh"
load_harness
migrate=${1:?usage: sql_migrate.sh AIF_MIGRATE}
sql=$AIF_SRC/sql
files=("$sql"/[0-9][0-9][0-9]_*.sql)
latest=${#files[@]}

# From empty (the database is created without the schema), then again.
SQL_DB=aif_t_migrate_$$
trap sql_cleanup EXIT
createdb "$SQL_DB"
export PGDATABASE=$SQL_DB
assert_eq 0 "$("$migrate" --version "$(sql_conninfo)")" "schema version of an empty database"
assert_eq "applied $latest version $latest" "$("$migrate" "$(sql_conninfo)")" "first migration"
assert_eq "applied 0 version $latest" "$("$migrate" "$(sql_conninfo)" 2>&1)" "second migration"
assert_eq "$latest" "$(q -c 'SELECT count(*) FROM aif.schema_migrations')" "recorded migrations"
assert_eq "$(printf '%s\n' "${files[@]##*/}" | sed 's/\.sql$//' | paste -sd,)" \
	"$(q -c 'SELECT string_agg(name, $$,$$ ORDER BY version) FROM aif.schema_migrations')" \
	"recorded names"

# By hand: every file twice, in order, each in one transaction, then the repeatable ones; no
# error, same schema.
hand=aif_t_migrate_hand_$$
createdb "$hand"
for f in "${files[@]}" "$sql"/repeatable/[0-9][0-9]_*.sql; do
	for run in 1 2; do
		psql -X -q -1 -v ON_ERROR_STOP=1 -d "$hand" -f "$f" >/dev/null 2>"$AIF_TEST_WORKDIR/migrate.$$.err" ||
			{ dropdb --force "$hand"; fail "psql -1 -f ${f##*/} (run $run): $(cat "$AIF_TEST_WORKDIR/migrate.$$.err")"; }
	done
done
assert_eq "applied 0 version $latest" "$("$migrate" "$(sql_conninfo "$hand")" 2>&1)" "runner after psql by hand"
# (pg_dump's \restrict lines carry a random key.)
pg_dump -s -d "$SQL_DB" | grep -Ev '^\\(un)?restrict ' >"$AIF_TEST_WORKDIR/schema.runner.$$"
pg_dump -s -d "$hand" | grep -Ev '^\\(un)?restrict ' >"$AIF_TEST_WORKDIR/schema.hand.$$"
dropdb --force "$hand"
diff -u "$AIF_TEST_WORKDIR/schema.runner.$$" "$AIF_TEST_WORKDIR/schema.hand.$$" ||
	fail "the schema made by psql -1 -f twice differs from the runner's"
rm -f "$AIF_TEST_WORKDIR/schema.runner.$$" "$AIF_TEST_WORKDIR/schema.hand.$$" "$AIF_TEST_WORKDIR/migrate.$$.err"

# Four migrators at once on an empty database: each migration is applied exactly once.
conc=aif_t_migrate_conc_$$
createdb "$conc"
pids=()
for i in 1 2 3 4; do
	"$migrate" "$(sql_conninfo "$conc")" >"$AIF_TEST_WORKDIR/conc.$$.$i" 2>&1 &
	pids+=($!)
done
for i in 1 2 3 4; do
	wait "${pids[$((i - 1))]}" || { dropdb --force "$conc"; fail "concurrent migrator $i: $(cat "$AIF_TEST_WORKDIR/conc.$$.$i")"; }
done
total=$(cat "$AIF_TEST_WORKDIR"/conc.$$.* | awk '$1 == "applied" { n += $2 } END { print n }')
rm -f "$AIF_TEST_WORKDIR"/conc.$$.*
assert_eq "$latest" "$total" "migrations applied by four concurrent migrators"
assert_eq "$latest" "$("$migrate" --version "$(sql_conninfo "$conc")")" "version after concurrent migration"
dropdb --force "$conc"

# 016 rolls the by-model usage up per month: migration 014's daily rows are summed into their
# months, and their table goes.
old=aif_t_migrate_016_$$
createdb "$old"
for f in "${files[@]:0:15}"; do
	psql -X -q -1 -v ON_ERROR_STOP=1 -d "$old" -f "$f" >/dev/null || { dropdb --force "$old"; fail "psql -f ${f##*/}"; }
done
# (the view of the repeatable files before it, over the daily table)
psql -X -q -v ON_ERROR_STOP=1 -d "$old" -c "CREATE VIEW aif_report.usage_by_model AS
	SELECT day, model, gpu_us FROM aif.usage_model_daily_rollup" -c "INSERT INTO aif.usage_model_daily_rollup VALUES
	('2026-01-01', 'c', 'p1', 's', 'h100', 10, 40), ('2026-01-31', 'c', 'p1', 's', 'h100', 5, 20),
	('2026-01-02', 'c', 'p1', 's', 'a100', 20, 30), ('2026-02-01', 'c', 'p1', 's', 'h100', 1, 4)" ||
	{ dropdb --force "$old"; fail "rows before 016"; }
"$migrate" "$(sql_conninfo "$old")" >/dev/null || { dropdb --force "$old"; fail "migrating from 015"; }
assert_eq "2026-01-01 a100 20 30
2026-01-01 h100 15 60
2026-02-01 h100 1 4
daily by-model rollup gone" "$(psql -X -At -F ' ' -d "$old" -c "SELECT month, model, gpu_us, charged_us
	FROM aif.usage_model_monthly_rollup ORDER BY month, model" -c "SELECT coalesce(to_regclass('aif.usage_model_daily_rollup')::text,
	'daily by-model rollup gone')")" "016: the by-model rollup per month"
# Run again by hand, it leaves today's view alone.
psql -X -q -1 -v ON_ERROR_STOP=1 -d "$old" -f "$sql/016_model_monthly_rollup.sql" >/dev/null || { dropdb --force "$old"; fail "016 again"; }
assert_eq "month" "$(psql -X -At -d "$old" -c "SELECT attname FROM pg_attribute
	WHERE attrelid = 'aif_report.usage_by_model'::regclass AND attnum = 1")" "016 run again: usage_by_model kept"
dropdb --force "$old"

# The repeatable files run again when the database's record of them is not this build's (a
# build with other functions and views migrated it last), and aifctl refuses such a database
# until then. What they define comes back whole: a view dropped with its function, its rights.
q -c "UPDATE aif.schema_repeatable SET sha256 = 'another build'" \
	-c "DROP FUNCTION aif_report.budget_state(numeric, numeric, int[]) CASCADE"
assert_fails "the database's aif functions and views are not this program's" \
	"aifctl on a database with another build's functions and views" \
	"$AIF_BUILD_DIR/aifctl/aifctl" --db "$(sql_conninfo)" status
assert_eq "applied 0 version $latest" "$("$migrate" "$(sql_conninfo)" 2>&1)" \
	"migration after the repeatable files changed"
assert_eq "exhausted|t" "$(q -c "SELECT aif_report.budget_state(3600000000, 1, '{80}'),
	has_table_privilege('aif_funder', 'aif_report.budget_status', 'SELECT')")" \
	"budget_state and budget_status re-created, with the funders' right"
"$AIF_BUILD_DIR/aifctl/aifctl" --db "$(sql_conninfo)" status >/dev/null ||
	fail "aifctl status after the migration"

# A database newer than this build is refused, and left alone.
q -c "INSERT INTO aif.schema_migrations (version, name) VALUES ($latest + 1, 'from_the_future')"
assert_fails "newer than this program's \\(version $latest\\)" "migrating a newer database" \
	"$migrate" "$(sql_conninfo)"
q -c "DELETE FROM aif.schema_migrations WHERE version = $latest + 1"

# A failing migration names itself and its line, and is rolled back entirely.
broken=aif_t_migrate_broken_$$
createdb "$broken"
psql -X -q -d "$broken" -v ON_ERROR_STOP=1 -c "CREATE SCHEMA aif; CREATE TABLE aif.sectors (x int)"
assert_fails "migration 001_core failed: .*DETAIL: .*At line [0-9]+ of sql/001_core.sql" \
	"migrating over a conflicting table" "$migrate" "$(sql_conninfo "$broken")"
assert_eq "" "$(psql -X -At -d "$broken" -c "SELECT to_regclass('aif.schema_migrations')")" \
	"nothing of the failed migration stays"
dropdb --force "$broken"

echo "sql migrate: ok"
