# Shared by the sql_*.sh tests (source it after tests/lib.sh and load_harness): each test works
# in a database of its own, migrated with tests/tools/aif-migrate, and dropped on exit with any
# login role it made, so that the tests can run in parallel.

SQL_ROLES=()

sql_cleanup() {
	local rc=$? r
	[[ -z ${SQL_WORK:-} ]] || rm -rf "$SQL_WORK"
	if [[ -n ${SQL_DB:-} ]]; then
		dropdb --force --if-exists "$SQL_DB" >/dev/null 2>&1 || true
	fi
	for r in "${SQL_ROLES[@]}"; do
		psql -X -q -d postgres -c "DROP ROLE IF EXISTS \"$r\"" >/dev/null 2>&1 || true
	done
	exit "$rc"
}

# sql_setup NAME AIF_MIGRATE: a fresh database aif_t_NAME_PID, migrated, as PGDATABASE.
sql_setup() {
	SQL_DB=aif_t_${1}_$$
	AIF_MIGRATE=$2
	[[ -x $AIF_MIGRATE ]] || fail "aif-migrate not found: '$AIF_MIGRATE'"
	trap sql_cleanup EXIT
	createdb "$SQL_DB"
	export PGDATABASE=$SQL_DB
	"$AIF_MIGRATE" "$(sql_conninfo)" >/dev/null || fail "migration of $SQL_DB failed"
}

sql_conninfo() { # sql_conninfo [DB]
	echo "$AIF_TEST_DB dbname=${1:-$SQL_DB}"
}

# q SQL...: psql, unaligned, tuples only, stop at the first error.
q() {
	psql -X -q -At -v ON_ERROR_STOP=1 "$@"
}

# sql_login_role NAME GROUP: a login role (cluster-wide, dropped on exit) in GROUP.
sql_login_role() {
	SQL_ROLES+=("$1")
	psql -X -q -d postgres -v ON_ERROR_STOP=1 -c "CREATE ROLE \"$1\" LOGIN IN ROLE $2" >/dev/null
}

# assert_fails REGEX WHAT CMD...: CMD must fail with stderr matching REGEX.
assert_fails() {
	local regex=$1 what=$2 out
	shift 2
	if out=$("$@" 2>&1); then
		fail "$what: succeeded, expected an error matching /$regex/ (output: $out)"
	fi
	[[ $out =~ $regex ]] || fail "$what: error '$out' does not match /$regex/"
}

# The staging of a small configuration, as aifctl sends it, for psql. Variables (all optional)
# tweak it; see sql_apply.sh.
sql_stage_config() {
	local ai2f_warn=${AI2F_WARN:-'{80,95}'}
	cat <<EOF
SELECT aif.begin_staging();
INSERT INTO pg_temp.stage_sectors VALUES ('health'), ('energy'), ('life-sciences')${EXTRA_SECTORS:-};
INSERT INTO pg_temp.stage_periods VALUES ('2026-h1', '2026-01-01', '${H1_END:-2026-07-01}')${EXTRA_PERIODS:-};
INSERT INTO pg_temp.stage_factories VALUES
	('ai2f', 'AI Factory France', 'deny', 0, '$ai2f_warn', false),
	('jaif', NULL, 'cancel', 600, '{}', true);
INSERT INTO pg_temp.stage_factory_clusters VALUES ('ai2f', 'jean-zay'), ('jaif', 'jupiter')${EXTRA_CLUSTERS:-};
INSERT INTO pg_temp.stage_factory_budgets VALUES ('ai2f', '2026-h1', 1500000), ('jaif', '2026-h1', 800000)${EXTRA_FACTORY_BUDGETS:-};
INSERT INTO pg_temp.stage_projects VALUES
	('genomics-eu', 'ai2f', 'Genomics EU', 'deny', 0, '{80,95}'),
	('fusion', 'jaif', NULL, 'cancel', 600, '{}')${EXTRA_PROJECTS:-};
INSERT INTO pg_temp.stage_project_sectors VALUES
	('genomics-eu', '${GENOMICS_DEFAULT:-health}', 0), ('genomics-eu', '${GENOMICS_SECOND:-life-sciences}', 1),
	('fusion', 'energy', 0)${EXTRA_PROJECT_SECTORS:-};
INSERT INTO pg_temp.stage_project_members VALUES
	('genomics-eu', 'user', 'alice'), ('genomics-eu', 'group', 'genomics'),
	('fusion', 'user', '${FUSION_USER:-bob}')${EXTRA_MEMBERS:-};
INSERT INTO pg_temp.stage_project_budgets VALUES ('genomics-eu', '2026-h1', ${GENOMICS_BUDGET:-40000}),
	('fusion', '2026-h1', 100000)${EXTRA_PROJECT_BUDGETS:-};
EOF
}
