#!/usr/bin/env bash
# aifd's operational skeleton on the harness PostgreSQL: config errors (all of them, with file
# and line), --check-config, an unreachable database, a missing or old schema, giving up root,
# both listeners, SIGHUP with a broken and a fixed config, SIGTERM, and stale sockets.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
load_harness
aifd=${AIF_BUILD_DIR:?}/daemon/aifd
migrate=$AIF_BUILD_DIR/tests/aif-migrate
[[ $(id -u) == 0 ]] || fail "run as root: aifd must be seen giving up root"
run_user=aiftest2
run_uid=$(id -u "$run_user")

db=aif_d_$$
old_db=aif_d_old_$$
work=$(mktemp -d)
chmod 755 "$work" # aifd, once it is $run_user, re-reads its config and removes its socket here
pids=()
cleanup() {
	local pid
	for pid in "${pids[@]}"; do stop_pid "$pid" 5; done
	dropdb --if-exists "$db"
	dropdb --if-exists "$old_db"
	rm -rf "$work"
}
trap cleanup EXIT
createdb "$db"
createdb "$old_db"
conninfo() { echo "${AIF_TEST_DB_TCP/dbname=aif/dbname=$1}"; }
"$migrate" "$(conninfo "$db")" >/dev/null

port=$(free_port "$work")
sock=$work/run/aifd.sock
log=$work/aifd.log

write_config() { # write_config FILE DATABASE [EXTRA LINE]...
	local file=$1 database=$2
	shift 2
	{
		echo "# aifd_startup.sh"
		echo "cluster = aiftest"
		echo "db = $(conninfo "$database")"
		echo "listen = 127.0.0.1:$port"
		echo "socket = $sock"
		echo "user = $run_user"
		echo "log_level = debug"
		printf '%s\n' "$@"
	} >"$file"
	chmod 644 "$file"
}

# run_aifd EXPECTED_RC ARG...: aifd in the foreground, stderr to $log, at most 30 s.
run_aifd() {
	local expected=$1 rc=0
	shift
	timeout 30 "$aifd" "$@" >"$work/out" 2>"$log" || rc=$?
	[[ $rc == "$expected" ]] || fail "aifd $* exited $rc, expected $expected; log: $(cat "$log")"
}

# start_aifd CONFIG: in the background; sets $pid, tracked for the EXIT trap.
start_aifd() {
	: >"$log"
	"$aifd" -f "$1" 2>>"$log" &
	pid=$!
	pids+=("$pid")
}

wait_log() { # wait_log REGEX WHAT: until the log has a line matching REGEX, at most 20 s
	local deadline=$((SECONDS + 20))
	until grep -Eq -- "$1" "$log"; do
		kill -0 "$pid" 2>/dev/null || fail "$2: aifd exited; log: $(cat "$log")"
		((SECONDS < deadline)) || fail "$2: no /$1/ in the log within 20 s; log: $(cat "$log")"
		sleep 0.1
	done
}

wait_exit() { # wait_exit SECONDS: aifd $pid exits in time; sets $rc
	local deadline=$((SECONDS + $1))
	while kill -0 "$pid" 2>/dev/null; do
		((SECONDS < deadline)) || fail "aifd did not exit within $1 s; log: $(cat "$log")"
		sleep 0.1
	done
	rc=0
	wait "$pid" || rc=$?
}

tcp_listening() { ss -Htln "sport = :$port" | grep -q LISTEN; }
unix_listening() { ss -Hxl | grep -qF "$sock"; }

# 1. A config with errors: every one of them with file:line, exit 2, nothing started.
cat >"$work/bad.conf" <<CONF
# line 1
cluster = Jean Zay
db = host='unterminated
listen = 127.0.0.1:99999
socket = relative/aifd.sock
user = no-such-user-aif
log_level = loud
no_such_key = 1
flush_interval = 5 parsecs
CONF
run_aifd 2 -f "$work/bad.conf"
errors=$(cat "$log")
for line in 2 3 4 5 6 7 8 9; do
	assert_match "ERROR:  $work/bad.conf:$line: " "$errors" "error on line $line reported"
done
assert_match "has 8 errors; not starting" "$errors" "error count"
[[ ! -e $sock && ! -e $work/run ]] || fail "a bad config created the socket"
tcp_listening && fail "a bad config opened the TCP port"
write_config "$work/missing.conf" "$db"
sed -i '/^cluster/d; /^db/d' "$work/missing.conf"
run_aifd 2 -f "$work/missing.conf"
assert_match "missing required setting \"cluster\"" "$(cat "$log")" "cluster is required"
assert_match "missing required setting \"db\"" "$(cat "$log")" "db is required"
run_aifd 2 -f "$work/no-such.conf"
assert_match "could not open config file \"$work/no-such.conf\"" "$(cat "$log")" "missing config file"

# 2. --check-config.
write_config "$work/good.conf" "$db"
run_aifd 0 --check-config -f "$work/good.conf"
assert_match "is valid" "$(cat "$work/out")" "check-config on a good config"
run_aifd 2 -t -f "$work/bad.conf"
assert_match "bad.conf:7: invalid value for setting \"log_level\"" "$(cat "$log")" "check-config errors"
[[ ! -e $work/run ]] || fail "--check-config created the socket directory"

# 3. An unreachable database: exit 1, a clear message, no socket left behind.
write_config "$work/nodb.conf" "$db"
sed -i "s/port=$PGPORT/port=$(free_port "$work")/" "$work/nodb.conf"
run_aifd 1 -f "$work/nodb.conf"
assert_match "ERROR:  could not connect to the aif database" "$(cat "$log")" "unreachable database"
assert_match "DETAIL:  connection to server" "$(cat "$log")" "libpq's reason"
[[ ! -e $sock ]] || fail "aifd left its socket behind after failing to start"

# 4. No schema, then an old one: exit 1 and the hint to migrate.
write_config "$work/old.conf" "$old_db"
run_aifd 1 -f "$work/old.conf"
assert_match "ERROR:  the database has no aif schema" "$(cat "$log")" "missing schema"
assert_match "HINT:  Run \"aifctl db migrate\"" "$(cat "$log")" "missing schema hint"
"$migrate" "$(conninfo "$old_db")" >/dev/null
psql -X -q -d "$old_db" -c "DELETE FROM aif.schema_migrations
	WHERE version = (SELECT max(version) FROM aif.schema_migrations)"
run_aifd 1 -f "$work/old.conf"
assert_match "ERROR:  the database's aif schema \(version [0-9]+\) is older" "$(cat "$log")" "old schema"
assert_match "HINT:  Run \"aifctl db migrate\"" "$(cat "$log")" "old schema hint"

# 5. A good config: started as root, runs as $run_user, listens on both sockets.
start_aifd "$work/good.conf"
wait_log "INFO:  aifd is ready" "start"
assert_match "^Uid:\s+$run_uid\s+$run_uid\s+$run_uid\s+$run_uid$" "$(grep '^Uid:' "/proc/$pid/status")" "uids"
assert_match "^Groups:.*" "$(grep '^Groups:' "/proc/$pid/status")" "groups"
grep -q "^Groups:.*\b0\b" "/proc/$pid/status" && fail "aifd kept root's group"
tcp_listening || fail "aifd does not listen on 127.0.0.1:$port"
unix_listening || fail "aifd does not listen on $sock"
assert_eq "srw-rw-rw-" "$(stat -c %A "$sock")" "socket mode"
assert_eq "drwxr-xr-x $run_user" "$(stat -c '%A %U' "$work/run")" "socket directory"
# A frame that is no MUNGE credential gets an error answer (tests/integration/aifd_requests.sh
# covers requests in full).
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf '\0\0\0\5hello' >&3
assert_eq "AIF/1 error" "$(timeout 5 head -c 15 <&3 | tail -c +5)" "answer to a bad frame over TCP"
exec 3>&-
exec 3>&-
wait_log "DEBUG:  connection [0-9]+ from 127\.0\.0\.1:[0-9]+ on tcp" "TCP connection accepted"
wait_log "DEBUG:  closing connection [0-9]+ from 127\.0\.0\.1" "TCP connection closed"

# A second aifd with the same socket refuses to start and leaves the first one's socket alone.
second_log=$work/second.log
rc=0
timeout 30 "$aifd" -f "$work/good.conf" 2>"$second_log" || rc=$?
assert_eq 1 "$rc" "second aifd's exit code"
assert_match "another process is listening on the socket" "$(cat "$second_log")" "second aifd"
unix_listening || fail "the second aifd took the first one's socket"

# 6. SIGHUP: a broken config is logged and the running one kept; a fixed one is applied, and
# what needs a restart is said to need one.
write_config "$work/good.conf" "$db" "log_level = loud"
kill -HUP "$pid"
wait_log "keeping the running configuration" "SIGHUP with a broken config"
assert_match "good.conf:8: invalid value for setting \"log_level\"" "$(cat "$log")" "reload error line"
kill -0 "$pid" || fail "aifd exited on a broken config"
write_config "$work/good.conf" "$db" "refresh_interval = 3s"
sed -i "s/^listen = .*/listen = 127.0.0.1:$(free_port "$work")/" "$work/good.conf"
kill -HUP "$pid"
wait_log "INFO:  reloaded configuration file \"$work/good.conf\"" "SIGHUP with a fixed config"
assert_match "setting \"refresh_interval\" changed from \"2000ms\" to \"3000ms\"" "$(cat "$log")" "applied change"
assert_match "WARNING:  setting \"listen\" changed .*takes effect when aifd is restarted" "$(cat "$log")" "restart-only change"
tcp_listening || fail "the old TCP listener must stay until a restart"

# 7. SIGTERM: stops within a few seconds, exit 0, its socket removed.
kill -TERM "$pid"
wait_exit 5
assert_eq 0 "$rc" "exit code after SIGTERM"
assert_match "received SIGTERM" "$(cat "$log")" "SIGTERM logged"
assert_match "INFO:  aifd stopped" "$(cat "$log")" "stop logged"
[[ ! -e $sock ]] || fail "aifd left its socket behind after SIGTERM"
tcp_listening && fail "the TCP port is still open after SIGTERM"

# 8. After kill -9 the socket stays; the next aifd removes it as stale and starts.
write_config "$work/good.conf" "$db"
start_aifd "$work/good.conf"
wait_log "INFO:  aifd is ready" "start before kill -9"
kill -KILL "$pid"
{ wait "$pid"; } 2>/dev/null || true
[[ -S $sock ]] || fail "expected the killed aifd's socket to remain"
start_aifd "$work/good.conf"
wait_log "INFO:  aifd is ready" "start after kill -9"
assert_match "removed the stale socket" "$(cat "$log")" "stale socket removed"
kill -INT "$pid"
wait_exit 5
assert_eq 0 "$rc" "exit code after SIGINT"
[[ ! -e $sock ]] || fail "aifd left its socket behind after SIGINT"
echo "aifd startup: ok"
