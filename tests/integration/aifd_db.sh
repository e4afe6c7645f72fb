#!/usr/bin/env bash
# How aifd runs a statement (daemon/db.c, db_exec(), driven by tests/tools/aif-db-exec): prepared
# on its connection at its first run and run prepared after, so that it is parsed once; prepared
# anew on a new connection after a lost one; and, when a schema change broke its plan ("cached
# plan must not change result type"), failed once and prepared anew, never failed again; its
# sessions durable (synchronous_commit on) whatever the database's default; a statement of 1
# MiB to a backend that stopped reading dropped after the timeout.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
load_harness
tool=${AIF_BUILD_DIR:?}/tests/aif-db-exec

db=aif_db_$$
cleanup() { dropdb --force --if-exists "$db" >/dev/null 2>&1 || true; rm -f "${errfile:-}"; }
trap cleanup EXIT
createdb "$db"
conninfo="${AIF_TEST_DB/dbname=aif/dbname=$db}"
errfile=$(mktemp)

mapfile -t out < <("$tool" "$conninfo" <<'SQL'
SELECT 41 + 1
SELECT 41 + 1
SELECT name, statement FROM pg_prepared_statements ORDER BY name
CREATE TABLE t (a int)
INSERT INTO t VALUES (1)
SELECT * FROM t
ALTER TABLE t ADD COLUMN b text DEFAULT 'x'
SELECT * FROM t
SELECT * FROM t
SELECT name FROM pg_prepared_statements WHERE statement = 'SELECT * FROM t' ORDER BY name
SELECT pg_terminate_backend(pg_backend_pid())
SELECT 41 + 1
SELECT name FROM pg_prepared_statements ORDER BY name
SQL
)
assert_eq 13 "${#out[@]}" "one answer per statement"
assert_eq "42" "${out[0]}" "a statement's first run"
assert_eq "42" "${out[1]}" "its second run"
assert_eq "aifd_0_0|SELECT 41 + 1;aifd_0_1|SELECT name, statement FROM pg_prepared_statements ORDER BY name" \
	"${out[2]}" "statements prepared on the connection, once each"
assert_eq "1" "${out[5]}" "a table's rows"
assert_eq "ERROR 0A000" "${out[7]}" "a prepared statement whose result the schema changed"
assert_eq "1|x" "${out[8]}" "the same statement after it: prepared anew"
assert_eq "aifd_0_4;aifd_1_0" "${out[9]}" "the old statement retired, the new one under a new name"
assert_eq "LOST" "${out[10]}" "the connection terminated"
assert_eq "42" "${out[11]}" "a statement on the new connection"
assert_eq "aifd_1_0;aifd_1_1" "${out[12]}" "the new connection's statements, prepared anew"

# A database whose sessions default to synchronous_commit off (for speed: a crash then loses
# the last commits) has aifd's own sessions durable, and aifd says so once.
psql -X -q -d "$db" -c "ALTER DATABASE $db SET synchronous_commit = off"
assert_eq off "$(psql -X -At -d "$db" -c 'SHOW synchronous_commit')" "a session's synchronous_commit"
out=$(printf 'SHOW synchronous_commit\nSHOW statement_timeout\n' | "$tool" "$conninfo" 2>"$errfile")
assert_eq "on
5s" "$out" "aifd's session: synchronous_commit and statement_timeout"
assert_match "WARNING:  synchronous_commit is off for aifd's database sessions; aifd sets it on for its own" \
	"$(cat "$errfile")" "what aifd says of it"
psql -X -q -d "$db" -c "ALTER DATABASE $db RESET synchronous_commit"

# A server that stops reading (its backend stopped: SIGSTOP, as a hung server or a network black
# hole looks to aifd) holds a statement no longer than the timeout (5 s here), however large:
# libpq sends it within the deadline (a non-blocking connection), then the connection is
# dropped. Before, PQsend*() wrote a statement larger than the socket's buffer itself, with no
# limit: aifd's writer, holding a group of a few thousand records, waited for ever.
work=$(mktemp -d)
backend=
trap '[[ -z $backend ]] || kill -CONT "$backend" 2>/dev/null; [[ -z ${exec_pid:-} ]] || kill "$exec_pid" 2>/dev/null; rm -rf "$work"; cleanup' EXIT
mkfifo "$work/in"
"$tool" "$conninfo" <"$work/in" >"$work/out" &
exec_pid=$!
exec 3>"$work/in"
# lines OUT N: until OUT has N lines, at most 15 s
lines() {
	local deadline=$((SECONDS + 15))
	until (($(wc -l <"$1") >= $2)); do
		((SECONDS < deadline)) || fail "no answer $2 from aif-db-exec within 15 s: $(cat "$1")"
		sleep 0.1
	done
}
echo "SELECT pg_backend_pid()" >&3
lines "$work/out" 1
backend=$(head -1 "$work/out")
[[ $backend =~ ^[0-9]+$ ]] || fail "aif-db-exec's backend: '$backend'"
kill -STOP "$backend"
t0=$(date +%s%N)
echo "SELECT length('$(head -c 1048576 /dev/zero | tr '\0' x)')" >&3 # 1 MiB
lines "$work/out" 2
ms=$((($(date +%s%N) - t0) / 1000000))
assert_eq LOST "$(sed -n 2p "$work/out")" "a 1 MiB statement to a stopped backend"
((ms < 10000)) || fail "a 1 MiB statement to a stopped backend took $ms ms (timeout 5000 ms)"
echo "a 1 MiB statement to a stopped backend: connection dropped after $ms ms"
kill -CONT "$backend"
backend=
echo "SELECT 41 + 1" >&3
lines "$work/out" 3
assert_eq 42 "$(sed -n 3p "$work/out")" "a statement on a new connection after it"
exec 3>&-
wait "$exec_pid"
exec_pid=
echo "aifd db: ok"
