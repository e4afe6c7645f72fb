#!/usr/bin/env bash
# The usage writer (daemon/usage/store.c) on the harness PostgreSQL, driven by tests/tools/aif-store-load:
# every acknowledged record is stored exactly once with the right values; records sent again
# change nothing; a start and its end (in one batch or apart) give the exact interval; an end
# without its start stores the closed interval; batches naming an unknown project are refused
# without holding up the others; a PostgreSQL restart during a load loses no acknowledged
# record. Prints the measured rates.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
load_harness
load=${AIF_BUILD_DIR:?}/tests/aif-store-load
migrate=$AIF_BUILD_DIR/tests/aif-migrate
aifctl=$AIF_BUILD_DIR/aifctl/aifctl
data=$(cd "$(dirname "$0")/data" && pwd)

db=aif_w_$$
work=$(mktemp -d)
load_pid=
cleanup() {
	[[ -z $load_pid ]] || kill "$load_pid" 2>/dev/null || true
	dropdb --force --if-exists "$db" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT
createdb "$db"
export PGDATABASE=$db
conninfo="${AIF_TEST_DB/dbname=aif/dbname=$db}"
"$migrate" "$conninfo" >/dev/null
"$aifctl" apply "$data/budgets-v1.yaml" --db "$conninfo" >/dev/null

projects=genomics-eu:health,grid-ai:energy,llm-de:language
time_base=1767225600

q() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }

# run_load ACKED REFUSED ARG...: aif-store-load on the test database; its line is in $out.
run_load() {
	local acked=$1 refused=$2
	shift 2
	out=$("$load" --projects "$projects" --time-base "$time_base" "$@" "$conninfo" 2>"$work/err") ||
		fail "aif-store-load $* failed: $(cat "$work/err")"
	assert_match "^acked $acked refused $refused " "$out" "aif-store-load $*"
}

# check_rows WHAT BASE M MODE [BATCH BAD_EVERY]: the rows of jobs BASE .. BASE+M-1 are exactly
# the records aif-store-load generates (see its header), as MODE leaves them, without the
# batches --bad-every refused.
check_rows() {
	local what=$1 diff count
	diff=$(q -v base="$2" -v m="$3" -v mode="$4" -v batch="${5:-1}" -v bad="${6:-0}" \
		-v t="$time_base" <<'EOF'
CREATE TEMP VIEW expected AS
SELECT 'aiftest'::text AS cluster, :base + i AS job_id, 'n' || i % 4 AS node, i % 2 AS restart_count,
       (ARRAY['genomics-eu', 'grid-ai', 'llm-de'])[i % 3 + 1] AS project_id,
       (ARRAY['health', 'energy', 'language'])[i % 3 + 1] AS sector_id, 1000 + i % 5 AS uid,
       CASE WHEN i % 7 = 0 THEN NULL ELSE (ARRAY['alice', 'bob', 'o"brien\x', 'd,e{f} g'])[i % 4 + 1] END AS user_name,
       1 + i % 8 AS gpus,
       to_timestamp(CASE WHEN :'mode' = 'end-nostart' THEN :t + i + 60 + i % 3600 ELSE :t + i END) AS started_at,
       CASE WHEN :'mode' = 'start' THEN NULL ELSE to_timestamp(:t + i + 60 + i % 3600) END AS ended_at,
       CASE :'mode' WHEN 'start' THEN NULL WHEN 'end-nostart' THEN 'epilog-no-start' ELSE 'epilog' END AS end_source
FROM generate_series(0, :m - 1) i
WHERE :bad = 0 OR (i / :batch) % :bad <> :bad - 1;
CREATE TEMP VIEW actual AS
SELECT cluster, job_id, node, restart_count, project_id, sector_id, uid, user_name, gpus, started_at,
       ended_at, end_source
FROM aif.usage_intervals WHERE job_id BETWEEN :base AND :base + :m - 1;
SELECT count(*) FROM ((TABLE expected EXCEPT ALL TABLE actual) UNION ALL
		      (TABLE actual EXCEPT ALL TABLE expected)) d;
EOF
	)
	assert_eq 0 "$diff" "$what: rows differing from the records"
	count=$(q -c "SELECT count(*) FROM aif.usage_intervals WHERE job_id BETWEEN $2 AND $2 + $3 - 1")
	echo "$what: $count rows as expected"
}

# 1. Open intervals, one record per request from 32 clients: group commit.
run_load 20000 0 -n 20000 -k 32 -b 1 --mode start --job-base 1
echo "starts, 1 record per request, 32 clients: $out"
check_rows "starts" 1 20000 start

# 2. Their ends, 10 records per request: the same rows, closed, exact intervals.
run_load 20000 0 -n 20000 -k 32 -b 10 --mode end --job-base 1
echo "ends, 10 records per request, 32 clients: $out"
check_rows "starts then ends" 1 20000 end

# 3. The same records again (ends, then starts): acknowledged again, nothing changes.
run_load 20000 0 -n 20000 -k 8 -b 50 --mode end --job-base 1
run_load 20000 0 -n 20000 -k 8 -b 50 --mode start --job-base 1
check_rows "starts and ends sent twice" 1 20000 end
assert_eq 20000 "$(q -c 'SELECT count(*) FROM aif.usage_intervals')" "rows after duplicates"

# 4. A start and its end in the same request.
run_load 10000 0 -n 5000 -k 16 -b 10 --mode pair --job-base 100001
check_rows "start and end in one batch" 100001 5000 pair
run_load 10000 0 -n 5000 -k 4 -b 100 --mode pair --job-base 100001
check_rows "start and end in one batch, twice" 100001 5000 pair

# 5. Ends whose start never arrived: closed from the end's own start time; without it, a
# zero-length interval marked epilog-no-start. A late start changes nothing.
run_load 3000 0 -n 3000 -k 8 -b 5 --mode end --job-base 200001
check_rows "end without start" 200001 3000 end
run_load 3000 0 -n 3000 -k 8 -b 5 --mode start --job-base 200001
check_rows "late start after the end" 200001 3000 end
run_load 100 0 -n 100 -k 2 -b 7 --mode end-nostart --job-base 300001
check_rows "end without start time" 300001 100 end-nostart

# 6. Every fifth request names an unknown project: those are refused (all their records), the
# others are committed, in the same groups.
run_load 6400 1600 -n 4000 -k 16 -b 4 --mode pair --job-base 400001 --bad-every 5
assert_match 'batches_refused 200 ' "$out" "refused batches"
assert_match 'usage refers to an unknown project "no-such-project"' "$(cat "$work/err")" "refusal reason"
echo "unknown project in every 5th request: $out"
check_rows "good batches beside refused ones" 400001 4000 pair 4 5

# 7. PostgreSQL restarts during a load: the writer reconnects, retries, and every
# acknowledged record is stored exactly once.
m=100000
"$load" --projects "$projects" --time-base "$time_base" -n $m -k 32 -b 5 --mode pair \
	--job-base 1000001 --acked-out "$work/acked" "$conninfo" >"$work/restart.out" 2>"$work/restart.err" &
load_pid=$!
deadline=$((SECONDS + 60))
until (($(q -c "SELECT count(*) FROM aif.usage_intervals WHERE job_id > 1000000") > 2000)); do
	((SECONDS < deadline)) || fail "the load did not start writing"
	sleep 0.1
done
"$AIF_HARNESS" pg-restart "$AIF_HARNESS_DIR"
rc=0
wait "$load_pid" || rc=$?
load_pid=
[[ $rc == 0 ]] || fail "aif-store-load across a restart exited $rc: $(cat "$work/restart.err")"
out=$(cat "$work/restart.out")
echo "pair load across a PostgreSQL restart: $out"
assert_match "^acked $((2 * m)) refused 0 " "$out" "load across the restart"
reconnects=$(sed -n 's/.* reconnects \([0-9]*\).*/\1/p' <<<"$out")
((reconnects >= 1)) || fail "the writer never reconnected: $out"
acked_jobs=$(wc -l <"$work/acked")
assert_eq "$m" "$acked_jobs" "acknowledged jobs listed"
missing=$(q -c "CREATE TEMP TABLE acked (job bigint)" -c "\\copy acked FROM '$work/acked'" \
	-c "SELECT count(*) FROM acked a LEFT JOIN (SELECT job_id, count(*) AS n FROM aif.usage_intervals
		WHERE job_id > 1000000 GROUP BY job_id) u ON u.job_id = a.job WHERE coalesce(u.n, 0) <> 1")
assert_eq 0 "$missing" "acknowledged jobs not stored exactly once after the restart"
check_rows "load across the restart" 1000001 $m pair

# The queue is bounded in bytes too (names make records of up to about 1.3 kB): with a
# bound of 64 kB, 8 clients of 4 requests of 100 records each find it full, wait, and every
# record is still written once.
run_load 4000 0 -n 4000 -k 8 -b 100 -w 4 --mode start --job-base 900000 --max-queued-bytes 65536
queue_full=$(sed -n 's/.* queue_full \([0-9]*\)$/\1/p' <<<"$out")
((queue_full > 0)) || fail "no submission found the queue full at 64 kB: $out"
check_rows "starts under a bound of 64 kB" 900000 4000 start
echo "starts, queue bounded at 64 kB: $out"

# The rollups stay exact (the writer flushed them on the way).
assert_eq "" "$(q -c 'SELECT * FROM aif.rollup_verify()')" "rollup_verify"
echo "store: all checks passed"
