#!/usr/bin/env bash
# Benchmark (not a test): aifd serving protocol 1 with real MUNGE and a real PostgreSQL, driven
# by tests/tools/aif-load over aifd's Unix socket, against the floors measured in the same run.
#
#   tests/bench/bench_aifd.sh [BUILD_DIR]
#
# Starts its own harness run (stopped on exit unless AIF_BENCH_KEEP=1 is set) with
# PostgreSQL's durable defaults (fsync and synchronous_commit on), and Slurm, since aifd reads
# slurm.conf at start, migrates with BUILD_DIR's tests/aif-migrate (default: build), applies one
# factory and one project (user root is a member) and starts BUILD_DIR's aifd as root, which
# becomes aiftest3, with its default workers, flush and refresh intervals; reconciliation runs
# once at start only (its interval is 24 h), since slurmctld knows none of the jobs recorded
# here and would close their intervals. Then, in this order:
#   - floor: MUNGE decode rates, 1 and 4 threads, through the run's munged; and encode then
#     decode (4 threads), MUNGE's share of a request when the clients share aifd's host;
#   - submit-time checks: latency with 1, 2, 4 and 8 clients (goal p50 < 0.5 ms, p99 < 2 ms);
#   - usage, acknowledged only after the commit: 1 start record per request, then batches of
#     32 records (16 intervals, start and end) per request, 32 clients each (goal >= 10,000
#     records/s); the time until those ends are settled and flushed into the rollups, which
#     the next phase waits for, so that it measures its own records only; then batches of 32
#     start records until 100,000 intervals are open
#     (AIF_BENCH_OPEN=N: N of them, e.g. 1000000 for a very busy cluster's snapshot);
#   - the rows in PostgreSQL compared with what was acknowledged;
#   - checks again, with those 100,000 open intervals in the budgets' usage, and the time one
#     snapshot load takes then (tests/aif-decide);
#   - aifd's peak RSS, VmHWM (goal < 64 MB);
#   - floor: COPY of the same 100,000 open rows into a plain table LIKE aif.usage_intervals
#     INCLUDING ALL (indexes and constraints, no triggers), one transaction, best of 3;
#   - ratios: durable usage rate / COPY rate, request rate / MUNGE rates.
# Everything (clients, munged, aifd, PostgreSQL) shares this machine's cores: the figures are
# for one host, the ratios say how close aifd gets to its floors here. About a minute.
# As root (the harness needs it).
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$src/build}
aifd=$build/daemon/aifd
load=$build/tests/aif-load
migrate=$build/tests/aif-migrate
aifctl=$build/aifctl/aifctl
decide=$build/tests/aif-decide
harness=$src/tests/harness/aif-harness
for tool in "$aifd" "$load" "$migrate" "$aifctl" "$decide"; do
	[[ -x $tool ]] || { echo "bench: $tool not found; build first (cmake --build $build)" >&2; exit 1; }
done

check_clients=8 usage_clients=32 batch=32 open_goal=${AIF_BENCH_OPEN:-100000} phase_seconds=10
bench_start=$(date +%s)
# shellcheck source=tests/bench/bench_lib.sh
source "$src/tests/bench/bench_lib.sh"
mkdir -p "$work/run"
chmod 755 "$work"
chown aiftest3 "$work/run" # aifd, once it is aiftest3, removes its socket here
from=$(date -u -d '-30 days' +%F)
to=$(date -u -d '+30 days' +%F)
cat >"$work/budgets.yaml" <<YAML
version: 1
sectors: [language, health]
periods:
  cur: {start: $from, end: $to}
factories:
  - id: bench-factory
    clusters: [aiftest]
    budgets: {cur: 100000000}
    projects:
      - id: bench
        sectors: [language, health]
        budgets: {cur: 100000000}
        members: {users: [root]}
YAML
"$aifctl" --db "$AIF_TEST_DB_TCP" apply "$work/budgets.yaml" >/dev/null
sock=$work/run/aifd.sock
log=$work/aifd.log
cat >"$work/aifd.conf" <<CONF
cluster = aiftest
db = $AIF_TEST_DB_TCP
listen = none
socket = $sock
munge_socket = $AIF_MUNGE_SOCKET
user = aiftest3
slurm_user = aiftest2
log_level = info
reconcile_interval = 24h
CONF
start_aifd "$work/aifd.conf" "$log"
echo "machine: $(nproc) cores; PostgreSQL $(q -c 'SHOW server_version')" \
	"(fsync $(q -c 'SHOW fsync'), synchronous_commit $(q -c 'SHOW synchronous_commit'));" \
	"aifd with its default settings (4 workers) but reconcile_interval 24h, over its Unix socket"

kv() { # kv KEY LINE: the value of KEY in an aif-load summary line
	sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2"
}
# run_load ARG...: aif-load on aifd as root (a member of "bench", and allowed to record usage);
# its summary line is in $out.
run_load() {
	kill -0 "$aifd_pid" 2>/dev/null || fail "aifd is no longer running; log: $(tail -n 20 "$log")"
	out=$("$load" --server="$sock" --munge-socket="$AIF_MUNGE_SOCKET" --cluster=aiftest \
		--project=bench "$@" 2>"$work/load.err") ||
		fail "aif-load $* failed: $(cat "$work/load.err") $out; aifd log: $(tail -n 20 "$log")"
}
goal() { # goal VALUE OP LIMIT: "met" or "MISSED"
	awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN {
		ok = op == "<" ? v < l : v >= l; printf "%s", ok ? "met" : "MISSED" }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }

# 1. Floor: what munged alone does here (aifd decodes with 4 workers).
out=$("$load" --mode=munge-decode --munge-socket="$AIF_MUNGE_SOCKET" --clients=4 --requests=20000) ||
	fail "aif-load --mode=munge-decode failed"
munge_4=$(kv decode_rate_4 "$out")
munge_both=$(kv encode_decode_rate_4 "$out")
echo "floor, MUNGE: decode $(kv decode_rate_1 "$out")/s with 1 thread, $munge_4/s with 4 threads;" \
	"encode $(kv encode_rate "$out")/s, encode then decode $munge_both/s, with 4 threads"

# 2. Submit-time checks, on a snapshot with no usage yet.
report_checks() { # report_checks WHAT: from $out, with the goals
	local p50 p99
	p50=$(kv p50_ms "$out")
	p99=$(kv p99_ms "$out")
	echo "$1: p50 $p50 ms (goal < 0.5 ms: $(goal "$p50" "<" 0.5)), p99 $p99 ms" \
		"(goal < 2 ms: $(goal "$p99" "<" 2)), max $(kv max_ms "$out") ms;" \
		"aifd's part (credential made to answer read) p50 $(kv aifd_p50_ms "$out") ms," \
		"p99 $(kv aifd_p99_ms "$out") ms; $(kv request_rate "$out") checks/s"
}
run_load --mode=check --clients=$check_clients --duration=1 # warm-up: connections, NSS, caches
# Latency grows with concurrency once MUNGE (encode in the clients, decode in aifd, all in
# munged) saturates the cores: at N clients, p50 >= N / (MUNGE encode-then-decode rate).
for clients in 1 2 4; do
	run_load --mode=check --clients=$clients --requests=2000
	report_checks "check, $clients client$( ((clients > 1)) && echo s)"
done
run_load --mode=check --clients=$check_clients --duration=$phase_seconds
check_rate=$(kv request_rate "$out")
report_checks "check, $check_clients clients"

# 3. Usage, durable: each request is answered only once its records are committed.
next_xid() { q -c "SELECT pg_snapshot_xmax(pg_current_snapshot())"; }
# run_usage ARG...: run_load, and in $commits the transactions that wrote meanwhile (each
# takes a transaction id: aifd's group commits, and its rollup flushes)
run_usage() {
	local before
	before=$(next_xid)
	run_load --mode=usage "$@"
	commits=$(($(next_xid) - before))
}
report_usage() { # report_usage WHAT: from $out, with the goal
	local rate
	rate=$(kv record_rate "$out")
	echo "$1: $rate records/s (goal >= 10000/s: $(goal "$rate" ">=" 10000))," \
		"$(kv request_rate "$out") requests/s; $(kv records_acked "$out") acknowledged," \
		"errors $(kv errors "$out"); $commits commits," \
		"$(ratio "$(kv records_acked "$out")" "$commits") records per commit"
}
run_usage --clients=$usage_clients --records=1 --event=start --first-job=1 \
	--duration=$phase_seconds
single_rate=$(kv record_rate "$out")
single_requests=$(kv request_rate "$out")
opened=$(kv records_acked "$out")
report_usage "usage, 1 start record per request, $usage_clients clients"
run_usage --clients=$usage_clients --records=$batch --event=both --first-job=100000001 \
	--duration=$phase_seconds
closed=$(($(kv records_acked "$out") / 2))
batch_rate=$(kv record_rate "$out")
report_usage "usage, $batch records per request ($((batch / 2)) intervals, start and end), $usage_clients clients"
# The ends of that phase are still being settled and flushed into the rollups: wait for that
# and say how long it took, so that the next phase measures the starts alone.
drain_ms() { # ms until the inbox and the rollups' queue are empty (at most 120 s)
	local t0 i
	t0=$(date +%s%N)
	for ((i = 0; i < 1200; i++)); do
		[[ $(q -c "SELECT (SELECT count(*) FROM aif.usage_end_inbox)
			+ (SELECT count(*) FROM aif.usage_queue)") == 0 ]] && break
		sleep 0.1
	done
	((i < 1200)) || fail "the ends of the last phase were not settled and flushed in 120 s"
	echo $((($(date +%s%N) - t0) / 1000000))
}
echo "usage, settled and flushed into the rollups $(drain_ms) ms after that phase ended" \
	"($closed intervals; aifd's flush interval is its default)"
if ((opened < open_goal)); then
	per_client=$(((open_goal - opened + usage_clients * batch - 1) / (usage_clients * batch)))
	run_usage --clients=$usage_clients --records=$batch --event=start \
		--first-job=200000001 --requests=$per_client
	opened=$((opened + $(kv records_acked "$out")))
	report_usage "usage, $batch start records per request, $usage_clients clients (up to $open_goal open intervals)"
fi

# 4. What PostgreSQL holds: exactly what was acknowledged (job ids are unique per request).
read -r db_open db_closed < <(q -F ' ' -c "SELECT count(*) FILTER (WHERE ended_at IS NULL),
	count(*) FILTER (WHERE ended_at IS NOT NULL) FROM aif.usage_intervals")
if [[ $db_open == "$opened" && $db_closed == "$closed" ]]; then
	echo "database: $db_open open and $db_closed closed intervals, as acknowledged"
else
	echo "database: MISMATCH: $db_open open and $db_closed closed intervals;" \
		"acknowledged $opened open and $closed closed"
fi

# 5. Checks again, once the snapshot (reloaded every 2 s, and after usage) has all that usage;
# and how long loading one takes now (tests/aif-decide: connect, load, decide once).
sleep 3
snapshot_ms() { # the best of 3, in ms
	local t0
	for _ in 1 2 3; do
		t0=$(date +%s%N)
		"$decide" --project=bench "$AIF_TEST_DB_TCP" aiftest root >/dev/null
		echo $((($(date +%s%N) - t0) / 1000000))
	done | sort -n | head -n 1
}
echo "snapshot: loading budgets and usage with $db_open open intervals takes $(snapshot_ms) ms" \
	"(best of 3, connection included, connected as aifd connects: JIT off)," \
	"$(q -c 'ANALYZE' && snapshot_ms) ms once ANALYZE has run"
run_load --mode=check --clients=$check_clients --requests=1000
report_checks "check, $check_clients clients, $db_open open intervals"
hwm_kb=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$aifd_pid/status")
rss_kb=$(sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$aifd_pid/status")
hwm_mb=$(awk -v k="$hwm_kb" 'BEGIN { printf "%.1f", k / 1024 }')
echo "aifd memory: peak RSS (VmHWM) $hwm_mb MB (goal < 64 MB: $(goal "$hwm_mb" "<" 64))," \
	"RSS now $(awk -v k="$rss_kb" 'BEGIN { printf "%.1f", k / 1024 }') MB"

# 6. Floor: PostgreSQL's COPY of the same open rows, without aifd, MUNGE or the triggers.
q -c "\\copy (SELECT * FROM aif.usage_intervals WHERE ended_at IS NULL) TO '$work/rows.copy'"
copy="\\copy public.bench_copy FROM '$work/rows.copy'"
copy_ms=$(printf '%s\n' 'CREATE TABLE public.bench_copy (LIKE aif.usage_intervals INCLUDING ALL);' \
	'\timing on' "$copy" 'TRUNCATE public.bench_copy;' "$copy" 'TRUNCATE public.bench_copy;' "$copy" |
	q | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | awk 'NR % 2 == 1' | sort -g | head -n 1)
copy_rate=$(awk -v n="$db_open" -v ms="$copy_ms" 'BEGIN { printf "%.0f", n / (ms / 1000) }')
echo "floor, PostgreSQL COPY: $db_open rows in $copy_ms ms = $copy_rate rows/s" \
	"(best of 3; a plain table LIKE aif.usage_intervals INCLUDING ALL, one transaction)"

# 7. Ratios to the floors.
echo "ratio, durable usage / COPY: $(ratio "$single_rate" "$copy_rate") with 1 record per request," \
	"$(ratio "$batch_rate" "$copy_rate") with $batch per request"
echo "ratio, requests / MUNGE decode with 4 threads: checks $(ratio "$check_rate" "$munge_4")," \
	"usage with 1 record per request $(ratio "$single_requests" "$munge_4");" \
	"/ MUNGE encode then decode: $(ratio "$check_rate" "$munge_both")," \
	"$(ratio "$single_requests" "$munge_both")"
echo "aifd log: $(grep -c 'ERROR:' "$log" || true) errors, $(grep -c 'WARNING:' "$log" || true) warnings"
echo "total: $(($(date +%s) - bench_start)) s"
