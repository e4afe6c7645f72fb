#!/usr/bin/env bash
# aifd under attack before authentication (docs/aifd.md "Limits", docs/protocol.md "Threat
# model"). As the ordinary user aiftest (tests/tools/aif-hostile): silent and slow connections
# on the Unix socket and over TCP, past the connection limit and re-opened as soon as aifd
# closes them; incomplete frames holding more than aifd's buffer limit; invalid frame lengths;
# a flood of checks; a client that never reads its answers. Meanwhile checks by aiftest2 are
# answered within 2 s on both listeners, aifd's memory stays bounded and aifd says what it
# did; SIGTERM while a client does not read stops aifd within seconds. Then requests sent and
# abandoned at once do not pile up.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
load_harness
aifd_setup

# Every attack runs in the background and is stopped by pid, also when a check fails.
attack_pids=()
stop_attacks() {
	local pid
	for pid in "${attack_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${attack_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	attack_pids=()
}
on_exit() {
	local rc=$?
	set +e # whatever fails here, aifd and the database are still to be cleaned up
	stop_attacks
	((rc == 0)) || { echo "aifd's last warnings:"; grep -hE "WARNING|ERROR|DETAIL" "$AIFD_WORK"/a.log* | tail -40; } >&2
	aifd_cleanup
}
trap on_exit EXIT

# attack NAME ARG...: aif-hostile as aiftest in the background, its output in NAME.out
attack() {
	local name=$1
	shift
	"$AIF_HARNESS" as-user "$AIF_HARNESS_DIR" aiftest "$AIFD_WORK/aif-hostile" "$@" \
		>"$AIFD_WORK/$name.out" 2>&1 &
	attack_pids+=("$!")
}
# wait_ready NAME: until attack NAME has tried all its connections and sent their bytes
wait_ready() {
	local deadline=$((SECONDS + 20))
	until [[ -e $AIFD_WORK/ready/$1 ]]; do
		((SECONDS < deadline)) || fail "attack $1 not under way within 20 s: $(cat "$AIFD_WORK/$1.out")"
		sleep 0.1
	done
}
# count KEY NAME: a count from attack NAME's last line (once it ended)
count() { sed -n "s/.*\b$1=\([0-9]*\).*/\1/p" "$AIFD_WORK/$2.out" | tail -1; }

cp "$AIF_BUILD_DIR/tests/aif-hostile" "$AIF_BUILD_DIR/tests/aif-load" "$AIFD_WORK/"
mkdir -m 1777 "$AIFD_WORK/ready" # where the attacks, as aiftest, say they are under way
budgets_head health >"$AIFD_WORK/budgets.yaml"
cat >>"$AIFD_WORK/budgets.yaml" <<YAML
factories:
  - id: fa
    clusters: [aiftest]
    budgets: {cur: 1000}
    projects:
      - {id: pleg, sectors: [health], budgets: {cur: 100}, members: {users: [aiftest, aiftest2]}}
YAML
aif_apply "$AIFD_WORK/budgets.yaml"

# A small open-file limit, so that a few hundred connections fill aifd's table (the limits
# derive from it). Under ASan: no quarantine, freed memory returned at once and no fake stacks
# (on by default from clang 15), so that RSS measures aifd's own memory, not the sanitizer's
# (which grew by +34 to +67 MiB over the connection attacks alone, by the compiler's release).
port=$(free_port)
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0:thread_local_quarantine_size_kb=0:allocator_release_to_os_interval_ms=0:detect_stack_use_after_return=0
hard=$(ulimit -Hn)
ulimit -Sn 512
aifd_start a "listen = 127.0.0.1:$port"
ulimit -Sn "$hard"
pid=$AIFD_PID_a
sock=$AIFD_WORK/run/a.sock tcp=127.0.0.1:$port
aifd_wait_log a "accepting at most 256 connections \(open-file limit 512\), 64 per user on the Unix socket" \
	"the limits aifd derives from its open-file limit"

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$pid/status"; }
max_rss=0
sample_rss() { local r; r=$(rss_kb); ((r > max_rss)) && max_rss=$r; return 0; }

# legit VIA WHAT: 3 checks by aiftest2 through VIA (the socket, or HOST:PORT), each answered ok
# within 2 s (the credential made, a connection, the answer read).
legit() {
	local out max
	out=$("$AIF_HARNESS" as-user "$AIF_HARNESS_DIR" aiftest2 "$AIFD_WORK/aif-load" --server="$1" \
		--munge-socket="$AIF_MUNGE_SOCKET" --cluster=aiftest --mode=check --project=pleg \
		--clients=1 --requests=3 --timeout=2000 2>&1) || fail "$2: a check by aiftest2 failed: $out"
	max=$(sed -n 's/.* max_ms=\([0-9]*\).*/\1/p' <<<"$out")
	if [[ -z $max ]] || ((max >= 2000)); then fail "$2: a check by aiftest2 took ${max:-?} ms: $out"; fi
	echo "$2: checks answered in at most $max ms"
	sample_rss
}

legit "$sock" "unix, no attack"
legit "$tcp" "tcp, no attack"
base_rss=$(rss_kb)
echo "RSS before the attacks: $base_rss kB"

# 1. Invalid frame lengths: each connection closed at once, and said so.
"$AIF_HARNESS" as-user "$AIF_HARNESS_DIR" aiftest "$AIFD_WORK/aif-hostile" --server="$tcp" headers \
	>"$AIFD_WORK/headers.out" || fail "invalid frame lengths: $(cat "$AIFD_WORK/headers.out")"
aifd_wait_log a "WARNING:  connection [0-9]+ from .*: frame of 0 bytes \(allowed: 1 to 1048576\); closing" \
	"a frame of 0 bytes logged"

# 2. Silent connections of one user on the Unix socket: 64 kept, the others refused. Then
# slow ones over TCP, each re-opened at once when closed, fill the table: the oldest without a
# request in progress make room for new ones; a flood of checks by the same user on top.
attack unix-silent --server="$sock" hold --count=150 --duration=60 --ready-file="$AIFD_WORK/ready/unix-silent"
wait_ready unix-silent
aifd_wait_log a "WARNING:  too many connections from uid $(id -u aiftest): refused a new connection on $sock" \
	"connections over the per-user limit"
legit "$sock" "unix, 150 silent connections of another user"
attack tcp-slow --server="$tcp" hold --count=400 --announce=1048576 --send=100 --trickle-ms=1000 \
	--reconnect --duration=60
"$AIF_HARNESS" as-user "$AIF_HARNESS_DIR" aiftest "$AIFD_WORK/aif-load" --server="$sock" \
	--munge-socket="$AIF_MUNGE_SOCKET" --cluster=aiftest --mode=check --project=pleg \
	--clients=4 --duration=6 --timeout=5000 >"$AIFD_WORK/flood.out" 2>&1 &
flood=$!
attack_pids+=("$flood")
aifd_wait_log a "WARNING:  too many connections: closed connection [0-9]+ from .* to make room for a new one" \
	"connections closed to make room"
for round in 1 2 3; do
	legit "$sock" "unix, round $round of 400 slow tcp connections and a flood of checks"
	legit "$tcp" "tcp, round $round of 400 slow tcp connections and a flood of checks"
	sleep 1
done
wait "$flood" || true # the flood's own requests may be refused or closed: it is aiftest's
stop_attacks
assert_match "requests=[1-9]" "$(cat "$AIFD_WORK/flood.out")" "the flood of checks was answered too"
echo "the flood of checks: $(cat "$AIFD_WORK/flood.out")"
unix_open=$(count open unix-silent)
((unix_open <= 64)) || fail "aiftest still held $unix_open connections on the Unix socket (at most 64)"
echo "aiftest held $unix_open connections on the Unix socket at the end"
sample_rss
echo "RSS after the connection attacks: $(rss_kb) kB, at most $max_rss kB"

# 3. Incomplete frames of 1 MiB - 1 byte on 200 connections: more than the 64 MiB aifd holds;
# the oldest make room. Slow ones that trickle a byte a second are closed 10 s after their
# first byte all the same (those bytes do not extend the deadline).
attack tcp-big --server="$tcp" hold --count=200 --announce=1048576 --send=1048575 --duration=30 \
	--ready-file="$AIFD_WORK/ready/tcp-big"
attack tcp-trickle --server="$tcp" hold --count=20 --announce=512 --send=1 --trickle-ms=500 --duration=14
wait_ready tcp-big
aifd_wait_log a "WARNING:  requests not yet answered hold 64 MiB: closed connection [0-9]+ from " \
	"incomplete requests over the buffer limit"
for round in 1 2 3; do
	legit "$tcp" "tcp, round $round of 200 incomplete frames of 1 MiB"
	legit "$sock" "unix, round $round of 200 incomplete frames of 1 MiB"
	sleep 1
done
aifd_wait_log a "WARNING:  connection [0-9]+ from .*: request not complete after 10 s; closing it" \
	"frames not complete in time"
wait "${attack_pids[-1]}" || true # tcp-trickle ends after 14 s
assert_eq 20 "$(count closed_by_aifd tcp-trickle)" "trickling connections closed by aifd within 14 s"
stop_attacks
sample_rss
growth=$(((max_rss - base_rss) / 1024))
echo "RSS: $base_rss kB before the attacks, at most $max_rss kB during them (+$growth MiB)"
# docs/aifd.md "Limits": 64 MiB of frames and 256 connections (+64 MiB measured, with or
# without ASan). Without the limits the 200 frames alone are 200 MiB.
((growth < 72)) || fail "aifd's RSS grew by $growth MiB under attack (bound: 72 MiB)"

# 4. A client that never reads its answers is closed 10 s after it stopped reading.
attack noread --server="$sock" noread --count=1000 --duration=30
aifd_wait_log a "WARNING:  connection [0-9]+ from local uid $(id -u aiftest) pid [0-9]+: answer not read within 10000 ms; closing it" \
	"a client that does not read its answers"
wait "${attack_pids[-1]}" || true
assert_eq 1 "$(count closed_by_aifd noread)" "the client that did not read was closed"
attack_pids=()
# What a sender repeats at will is logged once every 10 s, then counted: its bogus requests
# made a few warnings and a count, not a line each.
aifd_wait_log a "[0-9]+ more requests refused for their MUNGE credential" "the count of bogus requests"
refused=$(cat "$AIFD_WORK"/a.log* | grep -c "credential refused")
((refused <= 10)) || fail "$refused warnings for bogus credentials in aifd's log (at most one per 10 s)"

# 5. SIGTERM while a client does not read its answers: aifd stops within seconds.
attack noread2 --server="$sock" noread --count=1000 --duration=60
deadline=$((SECONDS + 10))
until ss -Hx | grep -F "$sock" | awk '$4 > 100000 {found = 1} END {exit !found}'; do
	((SECONDS < deadline)) || fail "the second client that does not read never filled its socket"
	sleep 0.1
done
sleep 1
t0=$(date +%s%N)
kill -TERM "$pid"
while kill -0 "$pid" 2>/dev/null; do
	stop_ms=$((($(date +%s%N) - t0) / 1000000))
	((stop_ms < 10000)) || fail "aifd did not stop within 10 s of SIGTERM"
	sleep 0.05
done
stop_ms=$((($(date +%s%N) - t0) / 1000000))
rc=0
wait "$pid" || rc=$?
assert_eq 0 "$rc" "aifd's exit status after SIGTERM"
echo "aifd stopped $stop_ms ms after SIGTERM with a client that does not read"
((stop_ms < 3000)) || fail "aifd took $stop_ms ms to stop (at most 3000)"
stop_attacks

# 6. Requests sent and abandoned at once, over TCP and then on the Unix socket, as fast as one
# process can (a connection, a replayed credential of the user's, closed without reading the
# answer), to an aifd with one worker: each connection keeps its place (on the Unix socket,
# aiftest's 64) until the worker gave its request back, and the worker skips it (over TCP it
# sees the close as EPOLLRDHUP), so the queue stays short. Another user's checks are answered
# meanwhile, and at SIGTERM no more than aiftest's 64 requests are left to answer. Before, each
# close freed its place at once and left its request queued for a munge_decode: the queue grew
# by thousands a second, delaying every other request, and a stop waited for all of them.
"$AIF_HARNESS" as-user "$AIF_HARNESS_DIR" aiftest munge -n -S "$AIF_MUNGE_SOCKET" \
	>"$AIFD_WORK/replayed.cred" || fail "aiftest could not make a MUNGE credential"
aifd_start b "workers = 1"
pid_b=$AIFD_PID_b pid=$AIFD_PID_b # (legit samples its RSS)
sock_b=$AIFD_WORK/run/b.sock
tcp_b=$(sed -n 's/^listen = //p' "$AIFD_WORK/b.conf" | tail -1)
# Over TCP first (no per-user limit there: the workers' skipping is what keeps the queue short;
# a close shows there as EPOLLRDHUP alone), then on the Unix socket.
for via in "$tcp_b" "$sock_b"; do
	attack abandon --server="$via" abandon --count=100000 --duration=6 \
		--frame-file="$AIFD_WORK/replayed.cred"
	abandon_pid=${attack_pids[-1]}
	sleep 2
	legit "$sock_b" "one worker, requests abandoned at once on $via"
	wait "$abandon_pid" || true
	attack_pids=()
	echo "requests abandoned at once on $via: $(cat "$AIFD_WORK/abandon.out")"
	sent=$(sed -n 's/.*requests_sent=\([0-9]*\).*/\1/p' "$AIFD_WORK/abandon.out")
	((sent > 1000)) || fail "the attack on $via sent only ${sent:-no} requests: $(cat "$AIFD_WORK/abandon.out")"
done

# 7. Refused checks, which any user can send at will (here of a project nobody has), are logged
# 100 every 10 s at most, the others counted: before, each was a line of aifd's log.
"$AIF_HARNESS" as-user "$AIF_HARNESS_DIR" aiftest "$AIFD_WORK/aif-load" --server="$sock_b" \
	--munge-socket="$AIF_MUNGE_SOCKET" --cluster=aiftest --mode=check --project=nope \
	--clients=2 --requests=1500 >"$AIFD_WORK/refused.out" 2>&1 || true
logged=$(grep -cE 'submit-time check by aiftest \(uid [0-9]+\): unknown-project' "$AIFD_WORK/b.log" || true)
echo "refused checks: $(tail -1 "$AIFD_WORK/refused.out"); $logged of them logged"
assert_match "errors=3000 " "$(cat "$AIFD_WORK/refused.out")" "the refused checks, all answered refused"
((logged >= 1 && logged <= 200)) || fail "$logged refused checks logged (between 1 and 200: 100 every 10 s)"
aifd_wait_log b "INFO:  [0-9]+ more submit-time checks refused \(each was answered with why\)" \
	"the refused checks not logged, counted"
kill -TERM "$pid_b"
wait "$pid_b" || fail "aifd b's exit status after SIGTERM: $?"
left=$(sed -n 's/.*answering \([0-9]*\) requests already received.*/\1/p' "$AIFD_WORK/b.log" | tail -1)
echo "at SIGTERM, aifd b had ${left:-0} requests to answer"
((${left:-0} <= 64)) || fail "aifd b had $left requests left to answer at SIGTERM (at most aiftest's 64)"

grep -qs "AddressSanitizer\|LeakSanitizer\|runtime error" "$AIFD_WORK"/[ab].log* && fail "sanitizer report in aifd's log: $(grep -A20 "Sanitizer\|runtime error" "$AIFD_WORK"/[ab].log*)"
echo "aifd hostile: all checks passed"
