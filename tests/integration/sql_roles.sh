#!/usr/bin/env bash
# Roles and rights, through real login roles: aif_funder reads the aif_report views and nothing
# in aif, and no aif_report column holds user names or uids; aif_daemon writes usage (only the
# columns it must) and cancellations but no configuration; aif_operator plans and applies
# (logged under its own name) but deletes no usage; PUBLIC gets nothing.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/sql_common.sh"
load_harness
sql_setup roles "${1:?usage: sql_roles.sh AIF_MIGRATE}"

funder=aif_t_funder_$$ daemon=aif_t_daemon_$$ operator=aif_t_operator_$$ nobody=aif_t_nobody_$$
sql_login_role "$funder" aif_funder
sql_login_role "$daemon" aif_daemon
sql_login_role "$operator" aif_operator
sql_login_role "$nobody" pg_read_all_settings # any login role without aif rights
as() { # as ROLE SQL: run SQL as a login role
	local role=$1
	shift
	q -U "$role" -c "$@"
}

# A configuration, applied by the operator: apply_log records who.
{ echo "BEGIN;"; sql_stage_config; echo "SELECT count(*) FROM aif.apply('b.yaml', sha256('b'), 'carol'); COMMIT;"; } |
	q -U "$operator" >/dev/null
assert_eq "carol $operator" "$(q -F ' ' -c 'SELECT applied_by, db_user FROM aif.apply_log')" \
	"apply_log names the OS user and the database user"
assert_fails 'permission denied for table apply_log' "operator rewriting the audit log" \
	as "$operator" "UPDATE aif.apply_log SET applied_by = 'mallory'"
assert_fails 'permission denied for table apply_log' "operator erasing the audit log" \
	as "$operator" "DELETE FROM aif.apply_log"

# aif_daemon: opens and closes intervals, records cancellations, flushes the rollups, reads
# the configuration and the reports.
as "$daemon" "INSERT INTO aif.usage_intervals (cluster, job_id, node, restart_count, project_id, sector_id,
	uid, user_name, gpus, started_at) VALUES ('jean-zay', 1, 'n1', 0, 'genomics-eu', 'health', 1000, 'alice', 4,
	'2026-02-01 10:00Z') ON CONFLICT DO NOTHING" >/dev/null
as "$daemon" "UPDATE aif.usage_intervals SET ended_at = '2026-02-01 12:00Z', end_source = 'epilog'
	WHERE cluster = 'jean-zay' AND job_id = 1 AND node = 'n1' AND restart_count = 0 AND ended_at IS NULL" >/dev/null
as "$daemon" "INSERT INTO aif.cancellations (cluster, job_id, project_id, factory_id, scope, period_id, reason)
	VALUES ('jean-zay', 1, 'genomics-eu', 'ai2f', 'project', '2026-h1', 'budget exhausted')
	ON CONFLICT (cluster, job_id) DO NOTHING" >/dev/null
as "$daemon" "UPDATE aif.cancellations SET done_at = now(), outcome = 'cancelled' WHERE cluster = 'jean-zay' AND job_id = 1" >/dev/null
# The end may also arrive as an upsert (epilog before prolog, or a retry): ON CONFLICT DO UPDATE
# needs nothing more, and queues the interval exactly once.
for attempt in 1 2; do
	as "$daemon" "INSERT INTO aif.usage_intervals AS u (cluster, job_id, node, restart_count, project_id,
		sector_id, uid, user_name, gpus, started_at, ended_at, end_source)
		VALUES ('jean-zay', 2, 'n1', 0, 'genomics-eu', 'health', 1000, 'alice', 2, '2026-02-02 10:00Z',
		'2026-02-02 11:00Z', 'epilog')
		ON CONFLICT (cluster, job_id, node, restart_count, run) DO UPDATE
		SET ended_at = excluded.ended_at, end_source = excluded.end_source WHERE u.ended_at IS NULL" >/dev/null
done
assert_eq 2 "$(q -c 'SELECT count(*) FROM aif.usage_queue')" "queued intervals after open, close and upserts"
assert_eq 2 "$(as "$daemon" 'SELECT aif.rollup_flush()')" "daemon flushes the rollups"
assert_eq 10 "$(as "$daemon" "SELECT used_gpu_hours FROM aif_report.budget_status WHERE project = 'genomics-eu'")" \
	"daemon reads budget_status"
assert_eq 2 "$(as "$daemon" "SELECT count(*) FROM aif.project_members WHERE project_id = 'genomics-eu'")" \
	"daemon reads the configuration"
assert_fails 'permission denied for table usage_intervals' "daemon changing the key of an interval" \
	as "$daemon" "UPDATE aif.usage_intervals SET node = 'n9'"
assert_fails 'is closed and cannot be changed' "daemon changing the gpus of a closed interval" \
	as "$daemon" "UPDATE aif.usage_intervals SET gpus = 1, charged_gpus = 1 WHERE ended_at IS NOT NULL"
assert_fails 'permission denied for table usage_intervals' "daemon deleting usage" \
	as "$daemon" "DELETE FROM aif.usage_intervals"
assert_fails 'permission denied for table cancellations' "daemon deleting cancellations" \
	as "$daemon" "DELETE FROM aif.cancellations"
assert_fails 'permission denied for table usage_daily_rollup' "daemon writing a rollup" \
	as "$daemon" "DELETE FROM aif.usage_daily_rollup"
assert_fails 'permission denied for table apply_log' "daemon reading the apply log" \
	as "$daemon" "SELECT * FROM aif.apply_log"
assert_fails 'permission denied for function begin_staging' "daemon staging a configuration" \
	as "$daemon" "SELECT aif.begin_staging()"
for t in sectors periods factories factory_clusters factory_budgets projects project_sectors \
	project_members project_budgets; do
	for stmt in "INSERT INTO aif.$t DEFAULT VALUES" "UPDATE aif.$t SET retired_at = NULL" "DELETE FROM aif.$t"; do
		[[ $stmt == UPDATE* && $t != sectors && $t != factories && $t != projects ]] &&
			stmt="UPDATE aif.$t SET ${t%%_*}_id = ${t%%_*}_id"
		[[ $t == periods && $stmt == UPDATE* ]] && stmt="UPDATE aif.periods SET id = id"
		assert_fails "permission denied for table $t" "daemon: $stmt" as "$daemon" "$stmt"
	done
done

# aif_operator: no usage writes, no rollup writes except through the functions.
assert_fails 'permission denied for table usage_intervals' "operator inserting usage" \
	as "$operator" "INSERT INTO aif.usage_intervals (cluster, job_id, node, restart_count, project_id,
		sector_id, gpus, started_at) VALUES ('x', 1, 'n', 0, 'genomics-eu', 'health', 1, now())"
assert_fails 'permission denied for table projects' "operator deleting a project" \
	as "$operator" "DELETE FROM aif.projects"
assert_eq "" "$(as "$operator" 'SELECT * FROM aif.rollup_verify()')" "operator verifies the rollups"

# aif_funder: every aif_report view, nothing in aif.
views=$(q -c "SELECT string_agg(c.relname, ' ' ORDER BY c.relname) FROM pg_class c
	WHERE c.relnamespace = 'aif_report'::regnamespace")
assert_eq "budget_status factories periods projects sectors unattributed_daily usage_by_model usage_daily usage_monthly" "$views" "aif_report views"
for v in $views; do
	as "$funder" "SELECT * FROM aif_report.$v" >/dev/null || fail "funder cannot read aif_report.$v"
done
assert_eq 10 "$(as "$funder" "SELECT used_gpu_hours FROM aif_report.budget_status WHERE project = 'genomics-eu'")" \
	"funder reads budget_status"
assert_eq "2026-02-01|jean-zay|ai2f|genomics-eu|health|8|1|8
2026-02-02|jean-zay|ai2f|genomics-eu|health|2|1|2" "$(as "$funder" 'SELECT * FROM aif_report.usage_daily ORDER BY day')" \
	"funder reads usage_daily"
assert_eq "(unknown)|10|10" "$(as "$funder" 'SELECT model, sum(gpu_hours), sum(charged_hours)
	FROM aif_report.usage_by_model GROUP BY model')" "funder reads usage_by_model"
n=0
for t in $(q -c "SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'aif'::regnamespace
		 AND c.relkind IN ('r', 'v', 'p', 'm') ORDER BY 1"); do
	assert_fails 'permission denied for schema aif' "funder reading aif.$t" as "$funder" "SELECT * FROM aif.$t"
	n=$((n + 1))
done
((n >= 20)) || fail "only $n relations in schema aif checked"
assert_fails 'permission denied for schema aif' "funder calling an aif function" \
	as "$funder" "SELECT aif.rollup_flush()"
assert_fails 'permission denied for view sectors' "funder writing a view" \
	as "$funder" "DELETE FROM aif_report.sectors"

# No user names or uids in aif_report: no such column, and no view reads one.
assert_eq "" "$(q -c "SELECT table_name || '.' || column_name FROM information_schema.columns
	WHERE table_schema = 'aif_report' AND column_name ~* '(user|uid|member|login|owner)'")" \
	"personal columns in aif_report"
assert_eq "" "$(q -c "SELECT DISTINCT v.relname FROM pg_depend d
	JOIN pg_rewrite w ON w.oid = d.objid JOIN pg_class v ON v.oid = w.ev_class
	JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
	WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = 'aif.usage_intervals'::regclass
	  AND a.attname IN ('uid', 'user_name') AND v.relnamespace IN ('aif'::regnamespace, 'aif_report'::regnamespace)")" \
	"views reading uid or user_name"
assert_eq "" "$(q -c "SELECT DISTINCT v.relname FROM pg_depend d
	JOIN pg_rewrite w ON w.oid = d.objid JOIN pg_class v ON v.oid = w.ev_class
	WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = 'aif.project_members'::regclass
	  AND v.relnamespace = 'aif_report'::regnamespace")" "views reading project members"

# PUBLIC: nothing in aif or aif_report, no aif function executable.
assert_fails 'permission denied for schema aif' "a stranger reading aif" as "$nobody" "SELECT * FROM aif.projects"
assert_fails 'permission denied for schema aif_report' "a stranger reading aif_report" \
	as "$nobody" "SELECT * FROM aif_report.budget_status"
assert_eq "" "$(q -c "SELECT p.oid::regprocedure FROM pg_proc p WHERE p.pronamespace = 'aif'::regnamespace
	AND has_function_privilege('$nobody', p.oid, 'EXECUTE')")" "aif functions executable by PUBLIC"
assert_eq "" "$(q -c "SELECT c.relname FROM pg_class c WHERE c.relnamespace IN ('aif'::regnamespace,
	'aif_report'::regnamespace) AND has_table_privilege('$nobody', c.oid, 'SELECT')")" \
	"aif relations readable by PUBLIC"
# Group roles cannot log in.
assert_eq "" "$(q -c "SELECT rolname FROM pg_roles WHERE rolname IN ('aif_funder', 'aif_operator', 'aif_daemon')
	AND rolcanlogin")" "group roles with LOGIN"

echo "sql roles: ok"
