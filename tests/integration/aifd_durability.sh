#!/usr/bin/env bash
# No acknowledged usage is ever lost: concurrent clients (tests/tools/aif-load, real MUNGE) send
# usage records to aifd while aifd is killed with SIGKILL and restarted, and while PostgreSQL
# restarts. The clients resend what was not acknowledged (with a new credential each time);
# at the end every acknowledged record is in the database, exactly once, and so is every
# record sent. Acknowledged ends that aifd had not closed yet when it stopped (they wait in
# aif.usage_end_inbox until slurmctld's times are asked for) are closed by the next aifd.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
load_harness
aifd_setup
load=$AIF_BUILD_DIR/tests/aif-load

{ budgets_head health; cat; } >"$AIFD_WORK/budgets.yaml" <<YAML
factories:
  - id: fa
    clusters: [aiftest]
    budgets: {cur: 1000000000}
    projects:
      - {id: pload, sectors: [health], members: {users: [root]}}
YAML
"$AIF_BUILD_DIR/aifctl/aifctl" --db "$AIFD_CONNINFO" apply "$AIFD_WORK/budgets.yaml" >/dev/null
aifd_start a

stored() { psql -d "$AIFD_DB" -Atc "SELECT count(*) FROM aif.usage_intervals"; }
acked_lines() { wc -l <"$1"; }

# run_load NAME FIRST_JOB [EVENT]: 8 clients x 150 requests x 4 start (or EVENT) records, in
# the background.
run_load() {
	"$load" --server="$AIFD_WORK/run/a.sock" --munge-socket="$AIF_MUNGE_SOCKET" --cluster=aiftest \
		--mode=usage --event="${3:-start}" --clients=8 --requests=150 --records=4 --project=pload \
		--first-job="$2" --acked-log="$AIFD_WORK/$1.acked" --retry-for=60 \
		>"$AIFD_WORK/$1.out" 2>"$AIFD_WORK/$1.err" &
	load_pid=$!
}
wait_acked() { # wait_acked FILE N: until FILE has N lines
	local deadline=$((SECONDS + 30))
	until [[ -s $1 ]] && (($(acked_lines "$1") >= $2)); do
		((SECONDS < deadline)) || fail "fewer than $2 records acknowledged within 30 s"
		sleep 0.05
	done
}
finish_load() { # finish_load NAME: the load ends well; every record it sent is acknowledged
	local rc=0
	wait "$load_pid" || rc=$?
	[[ $rc == 0 ]] || fail "aif-load $1 exited $rc: $(cat "$AIFD_WORK/$1.err")"
	echo "$1: $(cat "$AIFD_WORK/$1.out")"
	assert_eq 4800 "$(sort -u "$AIFD_WORK/$1.acked" | wc -l)" "$1: distinct records acknowledged"
}
# check_stored NAME: every acknowledged record is in the database
check_stored() {
	local missing
	missing=$(psql -d "$AIFD_DB" -Atq <<SQL
CREATE TEMP TABLE acked (job_id bigint, node text, restart_count int, event text);
\\copy acked FROM '$AIFD_WORK/$1.acked' WITH (FORMAT text, DELIMITER ' ')
SELECT count(*) FROM acked a WHERE NOT EXISTS (SELECT 1 FROM aif.usage_intervals i
  WHERE i.cluster = 'aiftest' AND i.job_id = a.job_id AND i.node = a.node
    AND i.restart_count = a.restart_count);
SQL
	)
	assert_eq 0 "$missing" "$1: acknowledged records missing from the database"
}

# 1. aifd killed with SIGKILL in the middle of the load, then started again.
run_load kill 100000
wait_acked "$AIFD_WORK/kill.acked" 400
kill -KILL "$AIFD_PID_a"
wait "$AIFD_PID_a" 2>/dev/null || true
before=$(acked_lines "$AIFD_WORK/kill.acked")
sleep 1
aifd_start a
finish_load kill
((before < 4800)) || fail "the load was over before aifd was killed; make it longer"
check_stored kill
assert_eq 4800 "$(stored)" "records stored after the SIGKILL load"

# 2. PostgreSQL restarts in the middle of the load: aifd's writer and refresh reconnect, the
# clients retry what was answered with an error.
run_load pgrestart 200000
wait_acked "$AIFD_WORK/pgrestart.acked" 400
"$AIF_HARNESS" pg-restart "$AIF_HARNESS_DIR" >/dev/null
before=$(acked_lines "$AIFD_WORK/pgrestart.acked")
finish_load pgrestart
((before < 4800)) || fail "the load was over before PostgreSQL was back; make it longer"
check_stored pgrestart
assert_eq 9600 "$(stored)" "records stored after the PostgreSQL restart load"
kill -0 "$AIFD_PID_a" || fail "aifd exited during the PostgreSQL restart"
aifd_wait_log a "budget refresh (lost its database connection|reconnected)" "refresh reconnects"

# 3. The same load sent again: nothing new is stored, everything is acknowledged again.
run_load again 100000
finish_load again
assert_eq 9600 "$(stored)" "records stored after sending them again"
# 4. The ends of the first load, with aifd killed in the middle: every acknowledged end closes
# its interval, also those the killed aifd had only put in the inbox.
inbox() { psql -d "$AIFD_DB" -Atc "SELECT count(*) FROM aif.usage_end_inbox"; }
closed() { psql -d "$AIFD_DB" -Atc "SELECT count(*) FROM aif.usage_intervals WHERE job_id < 200000 AND ended_at IS NOT NULL"; }
wait_closed() { # wait_closed N WHAT: until N intervals of the first load are closed and the inbox is empty
	local deadline=$((SECONDS + 20))
	until [[ $(closed) == "$1" && $(inbox) == 0 ]]; do
		((SECONDS < deadline)) || fail "$2: $(closed) intervals closed ($1 expected), $(inbox) ends in the inbox"
		sleep 0.1
	done
}
run_load ends 100000 end
wait_acked "$AIFD_WORK/ends.acked" 400
kill -KILL "$AIFD_PID_a"
wait "$AIFD_PID_a" 2>/dev/null || true
before=$(acked_lines "$AIFD_WORK/ends.acked")
left=$(inbox)
aifd_start a
finish_load ends
((before < 4800)) || fail "the end load was over before aifd was killed; make it longer"
wait_closed 4800 "ends after the SIGKILL"
echo "ends: $left acknowledged ends were waiting in the inbox at the SIGKILL"
assert_eq 9600 "$(stored)" "intervals stored after the ends"

# 5. Ends an earlier aifd acknowledged and left in the inbox, put there by hand: the next
# aifd closes their intervals at the inbox's times when it starts. Three open intervals of
# their own: the earlier loads' may have been closed meanwhile by a reconciliation pass
# (slurmctld knows none of these jobs), which takes its time on a busy machine.
stop_pid "$AIFD_PID_a"
assert_eq 3 "$(psql -d "$AIFD_DB" -Atq -c "INSERT INTO aif.usage_intervals (cluster, job_id, node,
	restart_count, project_id, sector_id, uid, user_name, gpus, started_at)
	SELECT cluster, 300000 + n, node, restart_count, project_id, sector_id, uid, user_name, gpus,
	       started_at
	FROM (SELECT *, row_number() OVER (ORDER BY job_id, node) AS n FROM aif.usage_intervals
	      WHERE job_id < 200000 LIMIT 3) i RETURNING 1" | wc -l)" "open intervals made for the inbox"
psql -d "$AIFD_DB" -Atq -c "INSERT INTO aif.usage_end_inbox (cluster, job_id, node, restart_count,
	project_id, sector_id, uid, user_name, gpus, ended_at)
	SELECT cluster, job_id, node, restart_count, project_id, sector_id, uid, user_name, gpus,
	       started_at + interval '1 hour'
	FROM aif.usage_intervals WHERE job_id > 300000"
aifd_start a
aifd_wait_log a "closing 3 usage intervals whose ends an earlier aifd acknowledged" "the inbox read at start"
aifd_wait_settled "the ends read from the inbox at start"
assert_eq "3|3|0" "$(psql -d "$AIFD_DB" -Atc "SELECT count(*), count(*) FILTER (WHERE
	ended_at = started_at + interval '1 hour' AND end_source = 'epilog'), count(*) FILTER (WHERE exact)
	FROM aif.usage_intervals WHERE job_id > 300000 AND ended_at IS NOT NULL")" \
	"intervals closed from the inbox (closed, at the inbox's end, exact: slurmctld knows no such job)"

# 6. PostgreSQL down (stopped: its port refuses connections) in the middle of a load: a check
# is answered from the last snapshot and an admission without its history, each within 2 s
# (the plugin waits 5 s); usage is retried by its senders (the nodes' spools), and once the
# database is back every record of the load is stored.
run_load pgdown 400000
wait_acked "$AIFD_WORK/pgdown.acked" 400
trap 'kill "$load_pid" 2>/dev/null; "$AIF_HARNESS" pg-start "$AIF_HARNESS_DIR" >/dev/null 2>&1 || true; aifd_cleanup' EXIT
"$AIF_HARNESS" pg-stop "$AIF_HARNESS_DIR" >/dev/null
down_at=$SECONDS
pg_isready -q -h "$PGHOST" -p "$PGPORT" && fail "PostgreSQL still answers after pg-stop"
for request in "check project=pload" "admit job=499999 uid=0 gid=0 project=pload"; do
	t0=$(date +%s%N)
	# shellcheck disable=SC2086 # the request's words
	answer=$(aif_send root a $request)
	ms=$((($(date +%s%N) - t0) / 1000000))
	assert_eq "ok pload" "$(head -1 <<<"$answer") $(aif_field project "$answer")" "${request%% *} with the database down: $answer"
	((ms < 2000)) || fail "${request%% *} with the database down answered in $ms ms (goal < 2000)"
done
while ((SECONDS - down_at < 6)); do sleep 0.5; done
before=$(acked_lines "$AIFD_WORK/pgdown.acked")
aifd_wait_log a "could not write usage|usage records not stored" "the writer meeting the stopped database"
"$AIF_HARNESS" pg-start "$AIF_HARNESS_DIR" >/dev/null
trap aifd_cleanup EXIT
finish_load pgdown
((before < 4800)) || fail "the load was over before PostgreSQL was back; make it longer"
check_stored pgdown
assert_eq 4800 "$(psql -d "$AIFD_DB" -Atc "SELECT count(*) FROM aif.usage_intervals WHERE job_id >= 400000")" \
	"records of the load stored once PostgreSQL was back"

grep -qs "AddressSanitizer\|runtime error" "$AIFD_WORK"/a.log* && fail "sanitizer report in aifd's logs"
echo "aifd durability: all checks passed"
