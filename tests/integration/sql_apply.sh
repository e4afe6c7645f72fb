#!/usr/bin/env bash
# The apply machinery in SQL, as aifctl drives it: staging + plan shows the adds; apply applies
# them, logs and notifies; the same staged data then plans to nothing; changes and removals
# (retire, never delete, for sectors, factories and projects; replace for the rest) plan and
# apply exactly; retired things come back; bad staging is refused; concurrent applies
# serialize.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/sql_common.sh"
load_harness
sql_setup apply "${1:?usage: sql_apply.sh AIF_MIGRATE}"

plan() { # plan: the staged configuration (sql_stage_config with the caller's variables), planned
	{ echo "BEGIN;"; sql_stage_config; echo "SELECT * FROM aif.plan(); ROLLBACK;"; } | q -F ' ' | grep -v '^$' || true
}
apply() { # apply FILE: the same, applied and committed
	{ echo "BEGIN;"; sql_stage_config
	  echo "SELECT * FROM aif.apply('$1', sha256('$1'), 'alice-os'); COMMIT;"; } | q -F ' ' | grep -v '^$' || true
}

# From empty: everything is an add, in the documented order.
adds="add sector energy 
add sector health 
add sector life-sciences 
add period 2026-h1 2026-01-01 .. 2026-07-01
add factory ai2f name \"AI Factory France\", on_exhausted deny, grace_seconds 0, warn_at 80,95, allow_overcommit false
add factory jaif name (none), on_exhausted cancel, grace_seconds 600, warn_at none, allow_overcommit true
add factory-cluster ai2f/jean-zay 
add factory-cluster jaif/jupiter 
add factory-budget ai2f/2026-h1 gpu_hours 1500000
add factory-budget jaif/2026-h1 gpu_hours 800000
add project fusion factory jaif, name (none), on_exhausted cancel, grace_seconds 600, warn_at none
add project genomics-eu factory ai2f, name \"Genomics EU\", on_exhausted deny, grace_seconds 0, warn_at 80,95
add project-sector fusion/energy position 0 (default)
add project-sector genomics-eu/health position 0 (default)
add project-sector genomics-eu/life-sciences position 1
add project-member fusion/user:bob 
add project-member genomics-eu/group:genomics 
add project-member genomics-eu/user:alice 
add project-budget fusion/2026-h1 gpu_hours 100000
add project-budget genomics-eu/2026-h1 gpu_hours 40000"
assert_eq "$adds" "$(plan)" "plan on an empty database"
assert_eq 0 "$(q -c 'SELECT count(*) FROM aif.projects')" "plan changes nothing"

# Apply returns the plan; in the same transaction, planning the same staged data gives nothing.
out=$({ echo "BEGIN;"; sql_stage_config
	echo "SELECT * FROM aif.apply('budgets.yaml', sha256('v1'), 'alice-os');"
	echo "SELECT 'replan', count(*) FROM aif.plan(); COMMIT;"; } | q -F ' ' | grep -v '^$')
assert_eq "$adds
replan 0" "$out" "apply, then plan in the same transaction"
assert_eq "1 alice-os postgres budgets.yaml t 20 0 0 20" \
	"$(q -F ' ' -c "SELECT id, applied_by, db_user, file_name, file_sha256 = sha256('v1'), adds, changes,
		removes, jsonb_array_length(summary->'rows') FROM aif.apply_log")" "apply_log after the first apply"
assert_eq "add|sector|energy|" "$(q -c "SELECT format('%s|%s|%s|%s', r->>'action', r->>'object', r->>'id', r->>'detail')
	FROM aif.apply_log, jsonb_array_elements(summary->'rows') WITH ORDINALITY AS x(r, n) WHERE n = 1")" \
	"apply_log summary rows"

# Unchanged: zero rows, still logged (no NOTIFY: see below).
assert_eq "" "$(plan)" "plan of an unchanged database"
assert_eq "" "$(apply budgets.yaml)" "apply of an unchanged database"
assert_eq "2 0 0 0 0" "$(q -F ' ' -c "SELECT id, adds, changes, removes, jsonb_array_length(summary->'rows')
	FROM aif.apply_log ORDER BY id DESC LIMIT 1")" "a no-op apply is logged"

# Changes and removals. Factory ai2f warns at 80,90; genomics-eu gets 45000 GPU-hours, swaps its
# sectors and loses alice; fusion and its factory jaif go (retired); sector energy goes
# (retired); period 2026-h1 ends a day earlier; period 2026-h2 and project climate appear.
v2() {
	AI2F_WARN='{80,90}' GENOMICS_BUDGET=45000 GENOMICS_DEFAULT=life-sciences GENOMICS_SECOND=health \
	H1_END=2026-06-30 "$@"
}
changes="remove sector energy retire
change period 2026-h1 2026-01-01 .. 2026-07-01 -> 2026-01-01 .. 2026-06-30
add period 2026-h2 2026-07-01 .. 2027-01-01
change factory ai2f warn_at 80,95 -> 80,90
remove factory jaif retire
add factory-cluster ai2f/adastra 
remove factory-cluster jaif/jupiter 
add factory-budget ai2f/2026-h2 gpu_hours 1200000.5
remove factory-budget jaif/2026-h1 gpu_hours 800000
add project climate factory ai2f, name \"Climate\", on_exhausted cancel, grace_seconds 3600, warn_at 50
remove project fusion retire
add project-sector climate/life-sciences position 0 (default)
remove project-sector fusion/energy position 0 (default)
change project-sector genomics-eu/health position 0 -> 1
change project-sector genomics-eu/life-sciences position 1 -> 0 (default)
add project-member climate/user:alice 
remove project-member fusion/user:bob 
remove project-member genomics-eu/user:alice 
add project-budget climate/2026-h2 gpu_hours 300
remove project-budget fusion/2026-h1 gpu_hours 100000
change project-budget genomics-eu/2026-h1 gpu_hours 40000 -> 45000"
stage_v2() {
	EXTRA_PERIODS=", ('2026-h2', '2026-07-01', '2027-01-01')" \
	EXTRA_CLUSTERS=", ('ai2f', 'adastra')" \
	EXTRA_FACTORY_BUDGETS=", ('ai2f', '2026-h2', 1200000.50)" \
	EXTRA_PROJECTS=", ('climate', 'ai2f', 'Climate', 'cancel', 3600, '{50}')" \
	EXTRA_PROJECT_SECTORS=", ('climate', 'life-sciences', 0)" \
	EXTRA_MEMBERS=", ('climate', 'user', 'alice')" \
	EXTRA_PROJECT_BUDGETS=", ('climate', '2026-h2', 300)" \
		v2 "$@"
}
# sql_stage_config cannot leave things out, so v2 is v1 minus fusion/jaif/energy/alice, by
# deleting staged rows before planning.
drop_v1_only="DELETE FROM pg_temp.stage_sectors WHERE id = 'energy';
DELETE FROM pg_temp.stage_factories WHERE id = 'jaif';
DELETE FROM pg_temp.stage_factory_clusters WHERE factory_id = 'jaif';
DELETE FROM pg_temp.stage_factory_budgets WHERE factory_id = 'jaif';
DELETE FROM pg_temp.stage_projects WHERE id = 'fusion';
DELETE FROM pg_temp.stage_project_sectors WHERE project_id = 'fusion';
DELETE FROM pg_temp.stage_project_members WHERE project_id = 'fusion' OR name = 'alice' AND project_id = 'genomics-eu';
DELETE FROM pg_temp.stage_project_budgets WHERE project_id = 'fusion';"
run_v2() { # run_v2 "SELECT ..."
	{ echo "BEGIN;"; stage_v2 sql_stage_config; echo "$drop_v1_only"; echo "$1"; } | q -F ' ' | grep -v '^$' || true
}
# Usage refers to fusion (and so to jaif) and to sector energy: they can only be retired.
q -c "INSERT INTO aif.usage_intervals (cluster, job_id, node, restart_count, project_id, sector_id, gpus,
	started_at, ended_at) VALUES ('jupiter', 7, 'n1', 0, 'fusion', 'energy', 4, '2026-02-01Z', '2026-02-02Z')"
assert_eq "$changes" "$(run_v2 'SELECT * FROM aif.plan(); ROLLBACK;')" "plan of changes and removals"
assert_eq "$changes
LISTEN" "$(run_v2 "LISTEN aif_config; SELECT * FROM aif.apply('budgets.yaml', sha256('v2'), 'alice-os'); COMMIT;" |
	sed 's/^Asynchronous notification "aif_config" with payload "3" received from server process with PID [0-9]*\.$/LISTEN/')" \
	"apply of changes and removals, with its NOTIFY"
assert_eq "" "$(run_v2 'SELECT * FROM aif.plan(); ROLLBACK;')" "plan after applying the changes"
assert_eq "3 7 5 9" "$(q -F ' ' -c 'SELECT id, adds, changes, removes FROM aif.apply_log ORDER BY id DESC LIMIT 1')" \
	"apply_log counts"
# Retired, not deleted; the rest replaced.
assert_eq "energy t
fusion t
jaif t
climate f
genomics-eu f" "$(q -F ' ' -c "SELECT id, retired_at IS NOT NULL FROM aif.sectors WHERE id = 'energy'
	UNION ALL SELECT id, retired_at IS NOT NULL FROM aif.projects WHERE id IN ('fusion')
	UNION ALL SELECT id, retired_at IS NOT NULL FROM aif.factories WHERE id = 'jaif'
	UNION ALL (SELECT id, retired_at IS NOT NULL FROM aif.projects WHERE retired_at IS NULL ORDER BY id)")" \
	"retired rows stay"
assert_eq "0 0 0 0" "$(q -F ' ' -c "SELECT (SELECT count(*) FROM aif.project_members WHERE project_id = 'fusion'),
	(SELECT count(*) FROM aif.project_budgets WHERE project_id = 'fusion'),
	(SELECT count(*) FROM aif.factory_clusters WHERE factory_id = 'jaif'),
	(SELECT count(*) FROM aif.project_sectors WHERE project_id = 'fusion')")" "a retired project's dependents are gone"
assert_eq "genomics-eu life-sciences,health" "$(q -F ' ' -c "SELECT project, array_to_string(sectors, ',')
	FROM aif_report.projects WHERE project = 'genomics-eu'")" "sector order after the swap"
assert_eq "1200000.5" "$(q -c "SELECT gpu_hours FROM aif.factory_budgets WHERE period_id = '2026-h2'")" \
	"budgets are stored without trailing zeros"

# v1 again: the retired ones come back (un-retire), the rest reverts.
back="add sector energy un-retire
change period 2026-h1 2026-01-01 .. 2026-06-30 -> 2026-01-01 .. 2026-07-01
remove period 2026-h2 2026-07-01 .. 2027-01-01
change factory ai2f warn_at 80,90 -> 80,95
add factory jaif un-retire
remove factory-cluster ai2f/adastra 
add factory-cluster jaif/jupiter 
remove factory-budget ai2f/2026-h2 gpu_hours 1200000.5
add factory-budget jaif/2026-h1 gpu_hours 800000
remove project climate retire
add project fusion un-retire
remove project-sector climate/life-sciences position 0 (default)
add project-sector fusion/energy position 0 (default)
change project-sector genomics-eu/health position 1 -> 0 (default)
change project-sector genomics-eu/life-sciences position 0 -> 1
remove project-member climate/user:alice 
add project-member fusion/user:bob 
add project-member genomics-eu/user:alice 
remove project-budget climate/2026-h2 gpu_hours 300
add project-budget fusion/2026-h1 gpu_hours 100000
change project-budget genomics-eu/2026-h1 gpu_hours 45000 -> 40000"
assert_eq "$back" "$(plan)" "plan back to the first file"
assert_eq "$back" "$(apply budgets.yaml)" "apply back to the first file"
assert_eq "" "$(plan)" "plan after going back"
assert_eq "0" "$(q -c "SELECT count(*) FROM aif.projects WHERE id = 'fusion' AND retired_at IS NOT NULL")" \
	"fusion un-retired"
# Un-retiring with changed attributes says both.
assert_eq "add project climate un-retire, name \"Climate\" -> \"Climate 2\"" \
	"$({ echo "BEGIN;"; EXTRA_PROJECTS=", ('climate', 'ai2f', 'Climate 2', 'cancel', 3600, '{50}')" \
		EXTRA_PROJECT_SECTORS=", ('climate', 'health', 0)" sql_stage_config
	     echo "SELECT * FROM aif.plan() WHERE object = 'project'; ROLLBACK;"; } | q -F ' ' | grep -v '^$')" \
	"plan of an un-retire with changes"

# Sectors, factories and projects are never deleted nor renamed, whoever tries.
assert_fails 'aif.projects: rows are never deleted' "deleting a project" q -c "DELETE FROM aif.projects WHERE id = 'climate'"
assert_fails 'aif.sectors: rows are never deleted' "truncating sectors" q -c "TRUNCATE aif.sectors CASCADE"
assert_fails 'the id of a factory cannot be changed' "renaming a factory" q -c "UPDATE aif.factories SET id = 'x' WHERE id = 'jaif'"

# Refused: no staging, a dangling reference, a bad value, another isolation level.
assert_fails 'no staged configuration in this transaction' "plan without staging" \
	q -c 'SELECT * FROM aif.plan()'
assert_fails 'invalid staged configuration: project climate refers to factory nowhere, which is not staged' \
	"plan with a dangling reference" \
	q -c "BEGIN; $(EXTRA_PROJECTS=", ('climate', 'nowhere', NULL, 'deny', 0, '{}')" \
		EXTRA_PROJECT_SECTORS=", ('climate', 'health', 0)" sql_stage_config) SELECT * FROM aif.plan();"
assert_fails 'invalid staged configuration: budget fusion/2027 refers to period 2027, which is not staged' \
	"apply with an unknown period" \
	q -c "BEGIN; $(EXTRA_PROJECT_BUDGETS=", ('fusion', '2027', 5)" sql_stage_config) SELECT * FROM aif.apply('x', sha256('x'), 'x');"
assert_fails 'violates check constraint' "staging a zero budget" \
	q -c "BEGIN; $(GENOMICS_BUDGET=0 sql_stage_config)"
assert_fails 'aif.apply\(\) must run at isolation level READ COMMITTED' "apply in REPEATABLE READ" \
	q -c "BEGIN ISOLATION LEVEL REPEATABLE READ; $(sql_stage_config) SELECT * FROM aif.apply('x', sha256('x'), 'x');"
assert_eq 4 "$(q -c 'SELECT count(*) FROM aif.apply_log')" "refused applies leave no log"

# Concurrent applies serialize: A applies v2 and holds its transaction 3 s; B applies v2 too,
# starting 1 s later. B must wait for A, then find nothing left to do; unserialized, both would
# plan the same changes and B would fail or apply them twice.
{ echo "BEGIN;"; stage_v2 sql_stage_config; echo "$drop_v1_only"
  echo "SELECT 'A', count(*) FROM aif.apply('a.yaml', sha256('a'), 'a'); SELECT pg_sleep(3); COMMIT;"; } |
	q -F ' ' >"$AIF_TEST_WORKDIR/apply_a.$$" 2>&1 &
a_pid=$!
sleep 1
start=$SECONDS
b=$(run_v2 "SELECT 'B', count(*) FROM aif.apply('b.yaml', sha256('b'), 'b'); COMMIT;")
waited=$((SECONDS - start))
wait "$a_pid" || fail "apply A failed: $(cat "$AIF_TEST_WORKDIR/apply_a.$$")"
assert_eq "A 21" "$(grep '^A ' "$AIF_TEST_WORKDIR/apply_a.$$")" "apply A"
rm -f "$AIF_TEST_WORKDIR/apply_a.$$"
assert_eq "B 0" "$b" "apply B, after A"
((waited >= 1)) || fail "apply B did not wait for apply A (${waited}s)"
assert_eq "a.yaml 21
b.yaml 0" "$(q -F ' ' -c "SELECT file_name, adds + changes + removes FROM aif.apply_log ORDER BY id DESC LIMIT 2" | sort)" \
	"both concurrent applies logged, in order"

# Charging (budgets schema version 2): how a cluster is charged and its GPU rates plan and apply
# as adds, changes and removes, into the audit log; a removed cluster takes its rates; a rate of
# a cluster that is not staged is refused.
charging() { # charging SQL COMMIT|ROLLBACK: v1 with SQL after the staging, applied; charging rows
	{ echo "BEGIN;"; sql_stage_config; echo "$1"
	  echo "SELECT * FROM aif.apply('rates.yaml', sha256('r'), 'alice-os'); $2;"; } |
		q -F ' ' | grep -E '^[a-z]+ (factory-cluster|gpu-rate) ' || true
}
rates1="UPDATE pg_temp.stage_factory_clusters SET unrated_rate = 4.0, cpus_per_gpu = 16,
	memory_per_gpu_mb = 81920 WHERE cluster = 'jean-zay';
UPDATE pg_temp.stage_factory_clusters SET charge_by = 'billing' WHERE cluster = 'jupiter';
INSERT INTO pg_temp.stage_gpu_rates VALUES ('ai2f', 'jean-zay', 'h100', 4),
	('ai2f', 'jean-zay', 'a100', 2.0), ('ai2f', 'jean-zay', '1g.10gb', 0.25);"
assert_eq "remove factory-cluster ai2f/adastra 
change factory-cluster ai2f/jean-zay unrated_rate 1 -> 4, cpus_per_gpu none -> 16, memory_per_gpu_mb none -> 81920
add factory-cluster jaif/jupiter charge_by billing
add gpu-rate ai2f/jean-zay/1g.10gb rate 0.25
add gpu-rate ai2f/jean-zay/a100 rate 2
add gpu-rate ai2f/jean-zay/h100 rate 4" "$(charging "$rates1" COMMIT)" "charging added"
assert_eq "jean-zay|gpus|4|16|81920|1g.10gb:0.25,a100:2,h100:4
jupiter|billing|1|||" "$(q -c "SELECT c.cluster, c.charge_by, c.unrated_rate, c.cpus_per_gpu, c.memory_per_gpu_mb,
		(SELECT string_agg(r.model || ':' || r.rate, ',' ORDER BY r.model) FROM aif.gpu_rates r
		 WHERE (r.factory_id, r.cluster) = (c.factory_id, c.cluster))
	FROM aif.factory_clusters c ORDER BY 1")" "charging stored"
assert_eq "" "$(charging "$rates1" ROLLBACK)" "the same charging again: nothing to do"
rates2="$rates1
UPDATE pg_temp.stage_factory_clusters SET cpus_per_gpu = NULL WHERE cluster = 'jean-zay';
UPDATE pg_temp.stage_gpu_rates SET rate = 4.5 WHERE model = 'h100';
DELETE FROM pg_temp.stage_gpu_rates WHERE model = '1g.10gb';"
assert_eq "change factory-cluster ai2f/jean-zay cpus_per_gpu 16 -> none
remove gpu-rate ai2f/jean-zay/1g.10gb rate 0.25
change gpu-rate ai2f/jean-zay/h100 rate 4 -> 4.5" "$(charging "$rates2" COMMIT)" "charging changed"
assert_eq "change gpu-rate ai2f/jean-zay/h100 rate 4 -> 4.5" \
	"$(q -F ' ' -c "SELECT r->>'action', r->>'object', r->>'id', r->>'detail' FROM aif.apply_log,
		jsonb_array_elements(summary->'rows') AS r
	WHERE id = (SELECT max(id) FROM aif.apply_log) AND r->>'id' LIKE '%/h100'")" "a rate change in the audit log"
assert_fails 'invalid staged configuration: gpu rate ai2f/jean-zay/a100 refers to a cluster of the factory that is not staged' \
	"a rate of a cluster that is not staged" \
	q -c "BEGIN; $(sql_stage_config) $rates2 DELETE FROM pg_temp.stage_factory_clusters WHERE cluster = 'jean-zay'; SELECT * FROM aif.plan();"
assert_eq "remove factory-cluster ai2f/jean-zay 
change factory-cluster jaif/jupiter charge_by billing -> gpus
remove gpu-rate ai2f/jean-zay/a100 rate 2
remove gpu-rate ai2f/jean-zay/h100 rate 4.5" \
	"$(charging "DELETE FROM pg_temp.stage_factory_clusters WHERE cluster = 'jean-zay';" COMMIT)" "a cluster removed"
assert_eq 0 "$(q -c 'SELECT count(*) FROM aif.gpu_rates')" "its rates went with it"

echo "sql apply: ok"
