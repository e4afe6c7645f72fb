#!/usr/bin/env bash
# aifctl against a real PostgreSQL: db migrate, check, plan, apply (idempotent, serialized,
# audited, all-or-nothing), status and report in every format, and the exit codes.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
load_harness
data=$(dirname "$0")/data
aifctl=${AIF_BUILD_DIR:?}/aifctl/aifctl
export PGDATABASE=aif_ctl_$$
createdb "$PGDATABASE"
trap 'dropdb --if-exists "$PGDATABASE"' EXIT
work=$(mktemp -d)
trap 'dropdb --if-exists "$PGDATABASE"; rm -rf "$work"' EXIT

# run EXPECTED_RC CMD...: stdout to $work/out, stderr to $work/err
run() {
	local expected=$1 rc=0
	shift
	"$@" >"$work/out" 2>"$work/err" || rc=$?
	[[ $rc == "$expected" ]] || fail "$* exited $rc, expected $expected; stderr: $(cat "$work/err")"
}
config_digest() { # everything an apply may change, as one digest
	psql -X -At -c "SELECT md5(string_agg(t, '|' ORDER BY t)) FROM (
		SELECT 'f:' || f::text AS t FROM aif.factories f UNION ALL
		SELECT 'p:' || p::text FROM aif.projects p UNION ALL
		SELECT 'pb:' || b::text FROM aif.project_budgets b UNION ALL
		SELECT 'fb:' || b::text FROM aif.factory_budgets b UNION ALL
		SELECT 'm:' || m::text FROM aif.project_members m UNION ALL
		SELECT 'ps:' || s::text FROM aif.project_sectors s UNION ALL
		SELECT 'pe:' || e::text FROM aif.periods e UNION ALL
		SELECT 's:' || s::text FROM aif.sectors s) x"
}
applies() { psql -X -At -c "SELECT count(*) FROM aif.apply_log"; }

# Without a schema, commands that need one say what to do.
run 1 "$aifctl" status
assert_match "the database has no aif schema" "$(cat "$work/err")" "status before migrate"
assert_match 'HINT:  Run "aifctl db migrate"' "$(cat "$work/err")" "hint before migrate"
run 0 "$aifctl" db migrate
assert_match "^Migrated the aif schema from version 0 to [0-9]+" "$(cat "$work/out")" "first migrate"
run 0 "$aifctl" db migrate
assert_match "^The aif schema is up to date" "$(cat "$work/out")" "second migrate"

# check needs no database; errors name file, line and column; exit 2.
run 0 "$aifctl" check "$data/budgets-v1.yaml" --db "host=/nonexistent"
assert_match "valid: 2 factories, 3 projects, 2 periods, 3 sectors" "$(cat "$work/out")" "check v1"
run 2 "$aifctl" check "$data/budgets-invalid.yaml"
assert_match "budgets-invalid.yaml:12:[0-9]+: error: .*genomics" "$(cat "$work/out")" "unknown sector reported"
assert_match "budgets-invalid.yaml:13:[0-9]+: error: " "$(cat "$work/out")" "negative budget reported"
assert_match "invalid: 2 errors" "$(cat "$work/out")" "both errors in one run"
run 2 "$aifctl" check "$data/budgets-invalid.yaml" --format json
assert_eq "12 13" "$(jq -r '[.[] | select(.severity == "error") | .line] | join(" ")' "$work/out")" "check json lines"
run 1 "$aifctl" check "$work/no-such-file.yaml"
assert_match "could not read budgets file" "$(cat "$work/err")" "missing file"

# plan on an empty database: everything is an add; nothing is written.
before=$(config_digest)
run 0 "$aifctl" plan "$data/budgets-v1.yaml" --format json
assert_eq "add" "$(jq -r '[.[].action] | unique | join(",")' "$work/out")" "first plan only adds"
for id in ai2f jaif genomics-eu grid-ai llm-de 2026-h1 2026-h2 health energy language; do
	jq -e --arg id "$id" 'any(.[]; .id == $id)' "$work/out" >/dev/null || fail "first plan lacks $id"
done
assert_eq "$before" "$(config_digest)" "plan changed the database"
assert_eq 0 "$(applies)" "plan wrote the audit log"

# apply, then the same plan is empty and a second apply changes nothing.
run 0 "$aifctl" apply "$data/budgets-v1.yaml"
assert_match "genomics-eu" "$(cat "$work/out")" "apply lists its changes"
after_v1=$(config_digest)
[[ $after_v1 != "$before" ]] || fail "apply changed nothing"
run 0 "$aifctl" plan "$data/budgets-v1.yaml"
assert_match "^No changes" "$(cat "$work/out")" "plan after apply"
run 0 "$aifctl" apply "$data/budgets-v1.yaml" --format json
assert_eq "[]" "$(jq -c . "$work/out")" "second apply"
assert_eq "$after_v1" "$(config_digest)" "second apply changed the database"
assert_eq "$(sha256sum "$data/budgets-v1.yaml" | cut -d' ' -f1)" \
	"$(psql -X -At -c "SELECT encode(file_sha256, 'hex') FROM aif.apply_log ORDER BY id LIMIT 1")" "audited digest"
assert_eq "$(id -un)" "$(psql -X -At -c "SELECT applied_by FROM aif.apply_log ORDER BY id LIMIT 1")" "audited user"

# v2: one budget changed, a project removed, a member and a period added.
run 0 "$aifctl" plan "$data/budgets-v2.yaml" --format csv
plan_csv=$(cat "$work/out")
echo "$plan_csv"
assert_eq "action,object,id,detail" "$(head -n 1 <<<"$plan_csv" | tr -d '\r')" "csv header"
grep -q '^change,project-budget,genomics-eu/2026-h2,' <<<"$plan_csv" || fail "plan lacks the budget change"
grep -q '^remove,project,grid-ai,' <<<"$plan_csv" || fail "plan lacks the project removal"
grep -q '^add,project-member,genomics-eu/user:aiftest2,' <<<"$plan_csv" || fail "plan lacks the new member"
grep -q '^add,period,2027-h1,' <<<"$plan_csv" || fail "plan lacks the new period"
grep -q '^change,factory-cluster,ai2f/adastra,"unrated_rate 1 -> 3.5, cpus_per_gpu none -> 8"' <<<"$plan_csv" ||
	fail "plan lacks the charging of adastra (schema version 2)"
grep -q '^add,gpu-rate,ai2f/adastra/mi300a,rate 3.5' <<<"$plan_csv" || fail "plan lacks the rate of mi300a"
! grep -q 'llm-de\|jaif' <<<"$plan_csv" || fail "plan mentions the unchanged factory jaif"

# An invalid file changes nothing, not even the audit log.
n=$(applies)
run 2 "$aifctl" apply "$data/budgets-invalid.yaml"
assert_match "is invalid; nothing was applied" "$(cat "$work/err")" "invalid apply"
assert_eq "$after_v1" "$(config_digest)" "invalid apply changed the database"
assert_eq "$n" "$(applies)" "invalid apply wrote the audit log"

# Concurrent applies serialize: both succeed, both are audited, the result is one of them.
n=$(applies)
"$aifctl" apply "$data/budgets-v2.yaml" >"$work/a1" 2>&1 & p1=$!
"$aifctl" apply "$data/budgets-v1.yaml" >"$work/a2" 2>&1 & p2=$!
wait $p1 || fail "concurrent apply v2 failed: $(cat "$work/a1")"
wait $p2 || fail "concurrent apply v1 failed: $(cat "$work/a2")"
(($(applies) >= n + 1)) || fail "concurrent applies were not audited"
"$aifctl" plan "$data/budgets-v1.yaml" | grep -q "^No changes" ||
	"$aifctl" plan "$data/budgets-v2.yaml" | grep -q "^No changes" ||
	fail "after two concurrent applies the database matches neither file"
run 0 "$aifctl" apply "$data/budgets-v2.yaml"

# Usage: 2 GPUs for 10 h on 2026-08-10 for genomics-eu (health), 4 GPUs for 5 h for llm-de.
psql -X -q -v ON_ERROR_STOP=1 <<-SQL
	INSERT INTO aif.usage_intervals (cluster, job_id, node, restart_count, project_id, sector_id,
		uid, user_name, gpus, started_at, ended_at, end_source)
	VALUES ('jean-zay', 1, 'n1', 0, 'genomics-eu', 'health', 1001, 'aiftest', 2,
		'2026-08-10 08:00:00+00', '2026-08-10 18:00:00+00', 'epilog'),
	       ('jupiter', 7, 'j1', 0, 'llm-de', 'language', 1003, 'aiftest3', 4,
		'2026-09-01 00:00:00+00', '2026-09-01 05:00:00+00', 'epilog');
SQL
run 0 "$aifctl" status --period 2026-h2 --format json
# (Numbers through "+ 0": jq 1.7, Debian 13's, prints a number as it was written, 20.0; jq 1.6
# prints 20.)
assert_eq "20 13.3 ok" "$(jq -r '.[] | select(.project == "genomics-eu") | "\(.used_gpu_hours + 0) \(.pct_used + 0) \(.state)"' "$work/out")" "genomics-eu status"
assert_eq "20" "$(jq -r '.[] | select(.factory == "ai2f" and .project == null) | .used_gpu_hours + 0' "$work/out")" "ai2f status"
assert_eq "number" "$(jq -r '.[0].budget_gpu_hours | type' "$work/out")" "json numbers"
run 0 "$aifctl" status
assert_match "genomics-eu +150\.0 +20\.0 +130\.0 +13\.3 +ok" "$(cat "$work/out")" "status table"
assert_eq "Hours are charged GPU-hours: each GPU-hour at its GPU model's rate on its cluster." \
	"$(tail -n 1 "$work/out")" "status table: its hours said to be charged, under it"
run 0 "$aifctl" report --by sector --format csv
assert_eq $'sector,gpu_hours,pct,charged_hours\nhealth,20.0,50.0,20.0\nlanguage,20.0,50.0,20.0' "$(tr -d '\r' <"$work/out")" "report by sector"
run 0 "$aifctl" report --by factory --period 2026-h2 --format json
assert_eq "ai2f=20 jaif=20" "$(jq -r 'sort_by(.factory) | map("\(.factory)=\(.gpu_hours + 0)") | join(" ")' "$work/out")" "report by factory"
run 0 "$aifctl" report --by month
assert_match "2026-08 +20\.0" "$(cat "$work/out")" "report by month"
run 0 "$aifctl" report --by project --period 2026-h1 --format json
assert_eq "[]" "$(jq -c . "$work/out")" "no usage in 2026-h1"

# A budget below 0.05 GPU-hours (the YAML allows it) does not read as 0.0.
psql -X -q -v ON_ERROR_STOP=1 -c "UPDATE aif.project_budgets SET gpu_hours = 0.004
	WHERE project_id = 'genomics-eu' AND period_id = '2026-h2'"
run 0 "$aifctl" status --period 2026-h2
assert_match "genomics-eu +0\.004 +20\.0 +-20\.0 +500000\.0 +exhausted" "$(cat "$work/out")" "status of a tiny budget"
run 0 "$aifctl" apply "$data/budgets-v2.yaml"

# Bad input: exit 2 with a clear message.
run 2 "$aifctl" report --by cluster
assert_match 'invalid --by "cluster"' "$(cat "$work/err")" "bad --by"
run 2 "$aifctl" status --period 2030-h1
assert_match 'unknown period "2030-h1"' "$(cat "$work/err")" "unknown period"
run 2 "$aifctl" status --format xml
run 2 "$aifctl" frobnicate
run 1 "$aifctl" --db "host=$PGHOST port=1 dbname=x" status
assert_match "could not connect to the aif database" "$(cat "$work/err")" "unreachable database"

# The config file's db setting is used when --db is absent; --db wins over it.
printf '# aifctl test config\ndb = host=%s port=%s dbname=%s\n' "$PGHOST" "$PGPORT" "$PGDATABASE" >"$work/aifctl.conf"
run 0 env -u PGDATABASE -u PGHOST -u PGPORT "$aifctl" --config "$work/aifctl.conf" status --format csv
assert_match "genomics-eu" "$(cat "$work/out")" "status through the config file"
run 1 env -u PGDATABASE "$aifctl" --config "$work/aifctl.conf" --db "host=$PGHOST port=1" status
assert_match "could not connect" "$(cat "$work/err")" "--db wins over the config file"
printf 'db = x\ncolour = blue\n' >"$work/bad.conf"
run 1 "$aifctl" --config "$work/bad.conf" status
assert_match "bad.conf:2: unrecognized setting \"colour\"" "$(cat "$work/err")" "config error with file and line"
run 1 "$aifctl" --config "$work/missing.conf" status
assert_match "could not open config file" "$(cat "$work/err")" "missing explicit config file"
echo "aifctl budgets: ok"
