#!/usr/bin/env bash
# aifd's admission decisions on real data: a budgets file applied with aifctl, usage recorded
# in aif.usage_intervals (flushed into the rollups, still queued, and running), then
# daemon/budgets/snapshot.c loads it all and daemon/budgets/decide.c answers (through tests/tools/aif-decide):
# ok, warn (running jobs counted), project exhausted, factory exhausted, not a member, the
# default project of a member through an NSS group, a sector not allowed, an unknown project.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
load_harness
aifctl=${AIF_BUILD_DIR:?}/aifctl/aifctl
migrate=$AIF_BUILD_DIR/tests/aif-migrate
decide_tool=$AIF_BUILD_DIR/tests/aif-decide
read -r user1 user2 user3 <<<"$AIF_TEST_USERS" # user1 is in $AIF_TEST_GROUP
group=$AIF_TEST_GROUP

export PGDATABASE=aif_s_$$
daemon_role=aifd_s_$$
work=$(mktemp -d)
cleanup() {
	dropdb --force --if-exists "$PGDATABASE"
	psql -X -q -d postgres -c "DROP ROLE IF EXISTS $daemon_role" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT
createdb "$PGDATABASE"
conninfo="$AIF_TEST_DB dbname=$PGDATABASE"
"$migrate" "$conninfo" >/dev/null

# A period around today (generated: the test must not depend on the date it runs).
from=$(date -u -d '-30 days' +%F)
to=$(date -u -d '+30 days' +%F)
cat >"$work/budgets.yaml" <<YAML
version: 1
sectors: [health, energy, language]
periods:
  cur: {start: $from, end: $to}
factories:
  - id: ai2f
    clusters: [c1]
    budgets: {cur: 100}
    warn_at: [50, 90]
    projects:
      - id: p-ok
        sectors: [health, language]
        budgets: {cur: 50}
        members: {users: [$user2]}
      - id: p-warn
        sectors: [energy]
        budgets: {cur: 20}
        members: {users: [$user3]}
      - id: p-ex
        sectors: [health]
        budgets: {cur: 10}
        members: {groups: [$group]}
  - id: jaif
    clusters: [c2]
    budgets: {cur: 10}
    projects:
      - id: p-f2
        sectors: [language]
        members: {users: [$user1]}
YAML
"$aifctl" apply "$work/budgets.yaml" >/dev/null

insert() { # insert JOB PROJECT SECTOR GPUS STARTED_HOURS_AGO [ENDED_HOURS_AGO]
	local ended=NULL source=NULL
	if [[ -n ${6:-} ]]; then
		ended="now() - interval '$6 hours'"
		source="'epilog'"
	fi
	psql -X -q -v ON_ERROR_STOP=1 -c "INSERT INTO aif.usage_intervals (cluster, job_id, node,
		restart_count, project_id, sector_id, uid, user_name, gpus, started_at, ended_at, end_source)
		VALUES ('c1', $1, 'n1', 0, '$2', '$3', 1000, 'someone', $4, now() - interval '$5 hours',
		$ended, $source)"
}
# p-ex: 2 GPUs x 3 h folded into the rollups, then 1 GPU x 4.5 h still queued: 10.5 of 10.
insert 1 p-ex health 2 8 5
psql -X -q -At -c "SELECT aif.rollup_flush()" >/dev/null
insert 2 p-ex health 1 6 1.5
# p-warn: 2 GPUs x 5 h closed, and 2 GPUs running for an hour: 12 of 20 = 60 % (a snapshot
# counts running jobs up to its whole second, so 59.99 % when it is read within a second).
insert 3 p-warn energy 2 7 2
insert 4 p-warn energy 2 1
# p-f2 (jaif): 1 GPU x 11 h: the factory's 10 are exhausted.
insert 5 p-f2 language 1 12 1

# decision ARGS...: sets verdict, reason, project, sector, message, detail, hint.
decision() {
	"$decide_tool" "$@" >"$work/out" 2>"$work/err" || fail "aif-decide $*: $(cat "$work/err")"
	verdict=$(sed -n 's/^verdict=//p' "$work/out")
	reason=$(sed -n 's/^reason=//p' "$work/out")
	project=$(sed -n 's/^project=//p' "$work/out")
	sector=$(sed -n 's/^sector=//p' "$work/out")
	message=$(sed -n 's/^message=//p' "$work/out")
	detail=$(sed -n 's/^detail=//p' "$work/out")
	hint=$(sed -n 's/^hint=//p' "$work/out")
}

decision --project=p-ok "$conninfo" c1 "$user2"
assert_eq "ok ok p-ok health" "$verdict $reason $project $sector" "ok"
assert_eq "" "$message$detail$hint" "ok has no message"

decision --admit --project=p-ok --sector=language "$conninfo" c1 "$user2"
assert_eq "ok p-ok language" "$verdict $project $sector" "ok with a sector, at start time"

decision --project=p-warn "$conninfo" c1 "$user3"
assert_eq "warn project-warning p-warn energy" "$verdict $reason $project $sector" "warn"
assert_match '^project "p-warn" has used (59\.9|6[0-9]\.[0-9])% of its GPU-hours for period cur$' "$message" "warn message"
assert_match '^Used (11\.99|12(\.[0-9]+)?) of 20 charged GPU-hours, at or above the 50% warning threshold; (8|7\.[0-9]+) remain\.$' \
	"$detail" "warn detail (running job counted)"

decision --project=p-ex "$conninfo" c1 "$user1"
assert_eq "refuse project-exhausted p-ex health" "$verdict $reason $project $sector" "project exhausted"
assert_eq 'project "p-ex" has used all its GPU-hours for period cur' "$message" "exhausted message"
assert_eq "Used 10.5 of 10 charged GPU-hours." "$detail" "exhausted detail (rollup + queue)"
assert_eq "Ask your AI Factory (ai2f) for more GPU-hours, or use another project." "$hint" "exhausted hint"
# The same figure as the funders' view.
assert_eq "10.5 exhausted" "$(psql -X -At -F ' ' -c "SELECT used_gpu_hours, state FROM aif_report.budget_status
	WHERE project = 'p-ex'")" "budget_status agrees"

# No project given: user1's only project on c1 is p-ex, through its NSS group.
decision "$conninfo" c1 "$user1"
assert_eq "refuse project-exhausted p-ex health" "$verdict $reason $project $sector" "default project through a group"

decision --project=p-f2 "$conninfo" c2 "$user1"
assert_eq "refuse factory-exhausted p-f2 language" "$verdict $reason $project $sector" "factory exhausted"
assert_eq 'AI Factory "jaif" has used all its GPU-hours for period cur' "$message" "factory message"
assert_eq 'Its projects, "p-f2" among them, used 11 of 10 charged GPU-hours.' "$detail" "factory detail"

decision --project=p-ex "$conninfo" c1 "$user2"
assert_eq "refuse not-member p-ex" "$verdict $reason $project" "not a member"
assert_eq "user \"$user2\" is not a member of project \"p-ex\"" "$message" "not a member message"

decision --project=p-ok --sector=energy "$conninfo" c1 "$user2"
assert_eq "refuse bad-sector" "$verdict $reason" "sector not allowed"
assert_eq "Allowed sectors: health, language (the first is the default)." "$detail" "allowed sectors"

decision --project=nope "$conninfo" c1 "$user2"
assert_eq "refuse unknown-project" "$verdict $reason" "unknown project"

decision --project=p-ok "$conninfo" c2 "$user2"
assert_eq "refuse wrong-cluster" "$verdict $reason" "project on another cluster"

# aifd logs in as a member of aif_daemon: its rights are enough for the snapshot.
psql -X -q -d postgres -v ON_ERROR_STOP=1 -c "CREATE ROLE $daemon_role LOGIN IN ROLE aif_daemon"
decision --project=p-ex "${conninfo/user=postgres/user=$daemon_role}" c1 "$user1"
assert_eq "refuse project-exhausted 10.5" "$verdict $reason $(sed -n 's/^Used \([0-9.]*\) .*/\1/p' <<<"$detail")" \
	"the same decision as aif_daemon"

# A later apply that raises p-ex's budget is seen by the next snapshot.
sed -i '/id: p-ex/,/members/ s/budgets: {cur: 10}/budgets: {cur: 30}/' "$work/budgets.yaml"
"$aifctl" apply "$work/budgets.yaml" >/dev/null
decision --project=p-ex "$conninfo" c1 "$user1"
assert_eq "ok ok p-ex" "$verdict $reason $project" "after raising the budget"

# The snapshot's usage per period and project, against a per-interval computation of the same
# at the snapshot's time: periods before, around and after today, and running intervals that
# start before every period, in one and running into the next, on a period's first instant,
# within a second of the snapshot and after it (a node's clock ahead), besides the closed ones
# above (rollups and queue).
prev_from=$(date -u -d '-90 days' +%F)
next_to=$(date -u -d '+90 days' +%F)
sed -i "s/^  cur: {start: $from, end: $to}\$/  prev: {start: $prev_from, end: $from}\n&\n  next: {start: $to, end: $next_to}/" \
	"$work/budgets.yaml"
"$aifctl" apply "$work/budgets.yaml" >/dev/null
open_at() { # open_at JOB PROJECT SECTOR GPUS START(SQL) [CHARGED_GPUS]
	psql -X -q -v ON_ERROR_STOP=1 -c "INSERT INTO aif.usage_intervals (cluster, job_id, node,
		restart_count, project_id, sector_id, gpus, started_at, charged_gpus)
		VALUES ('c1', $1, 'n1', 0, '$2', '$3', $4, $5, ${6:-NULL})"
}
open_at 20 p-ok health 3 "'$(date -u -d '-120 days' +%F)'"
open_at 21 p-ok health 5 "'$from 00:00Z'"
open_at 25 p-ok health 1 "'$from 00:00Z'::timestamptz - interval '1 day'"
open_at 22 p-ok language 7 "now() - interval '0.5 seconds'"
open_at 24 p-warn energy 4 "now() + interval '1 hour'"
# Two on each whole second from just before now to 10 s after, on it and a microsecond later:
# the snapshot's own second is among them, so one starts at the very instant of the snapshot
# (running, with no usage yet) and one a microsecond later (not running yet).
psql -X -q -v ON_ERROR_STOP=1 -c "INSERT INTO aif.usage_intervals (cluster, job_id, node,
	restart_count, project_id, sector_id, gpus, started_at)
	SELECT 'c1', j + s.i, 'n1', 0, 'p-ok', 'language', g, b.t + (s.i - 1) * interval '1 second' + d
	FROM (SELECT date_trunc('second', now()) AS t) b, generate_series(0, 11) s(i),
	     (VALUES (30, 2, interval '0'), (50, 6, interval '1 microsecond')) v(j, g, d)"
# Two charged half a GPU, in different spans of start times (before every period, and within
# the previous one): the GPUs running are summed before they are rounded up.
open_at 26 p-ok health 1 "'$(date -u -d '-100 days' +%F)'" 0.5
open_at 27 p-ok health 1 "'$from 00:00Z'::timestamptz - interval '2 days'" 0.5
"$decide_tool" --usage "$conninfo" >"$work/usage" 2>"$work/err" || fail "aif-decide --usage: $(cat "$work/err")"
taken_at=$(sed -n 's/^taken_at=//p' "$work/usage")
[[ $(psql -X -At -c "SELECT count(*) FROM aif.usage_intervals
	WHERE job_id BETWEEN 30 AND 41 AND started_at = to_timestamp($taken_at)") == 1 ]] ||
	fail "the snapshot was taken at $taken_at, not on the second an interval starts on: the test ran too slowly"
expected=$(psql -X -At -F ' ' -c "WITH t AS (SELECT to_timestamp($taken_at) AS t),
	per AS (SELECT id, starts_on::timestamp AT TIME ZONE 'UTC' AS t0, ends_on::timestamp AT TIME ZONE 'UTC' AS t1
		FROM aif.periods),
	u AS (SELECT i.project_id, coalesce(i.charged_gpus, i.gpus) AS c, i.started_at,
		     coalesce(i.ended_at, t.t) AS e, i.ended_at IS NULL AS running
		FROM aif.usage_intervals i, t)
	SELECT per.id, u.project_id,
	       sum(CASE WHEN u.e > u.started_at AND u.started_at < per.t1 AND u.e > per.t0
		   THEN round(u.c * round(date_part('epoch', least(u.e, per.t1) - greatest(u.started_at, per.t0)) * 1000000)::bigint)
		   ELSE 0 END),
	       ceil(sum(CASE WHEN u.running AND u.started_at <= t.t AND per.t1 > t.t THEN u.c ELSE 0 END))
	FROM u, per, t GROUP BY 1, 2 HAVING sum(CASE WHEN u.e > u.started_at AND u.started_at < per.t1
		AND u.e > per.t0 THEN 1 ELSE 0 END) > 0 OR sum(CASE WHEN u.running AND u.started_at <= t.t
		AND per.t1 > t.t THEN u.c ELSE 0 END) > 0
" | LC_ALL=C sort)
assert_eq "$expected" "$(grep -v '^taken_at=' "$work/usage" | LC_ALL=C sort)" "the snapshot's usage, per period and project"
[[ $(grep -c '^next ' <<<"$expected") -ge 1 && $(grep -c '^prev ' <<<"$expected") -ge 1 ]] ||
	fail "the usage compared covers no earlier or later period: $expected"
echo "aifd.snapshot: ok"
