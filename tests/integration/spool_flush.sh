#!/usr/bin/env bash
# The node's spool (lib/aif_spool.c) and "aifctl spool flush", with a real aifd, MUNGE and
# PostgreSQL: records spooled while aifd is down stay until it is back, then arrive exactly
# once; a record aifd refuses goes to bad/ and the others are stored; a record of another
# cluster stays spooled; two flushers at once send each record once; bad usage is refused.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
load_harness
aifd_setup

apply_proja

spool=$AIFD_WORK/spool
now=$(date +%s)
start=$((now - 7200)) end=$((now - 3600))
uid=$(id -u aiftest)
printf 'server = %s\nmunge_socket = %s\nspool_dir = %s\n' "$AIFD_WORK/run/a.sock" "$AIF_MUNGE_SOCKET" "$spool" \
	>"$AIFD_WORK/aifctl.conf"
aifctl() { "$AIF_BUILD_DIR/aifctl/aifctl" --config "$AIFD_WORK/aifctl.conf" "$@"; }
spool_put() { # spool_put KEY=VALUE...: one record of cluster aiftest, as the prolog/epilog spool it
	"$AIF_BUILD_DIR/tests/aif-spool" put "$spool" aiftest "$@"
}
records() { find "$spool" -maxdepth 1 -type f -name '*.usage' | wc -l; }
rows() { # rows JOB: node|started|ended|gpus|project of its intervals, and how many of each
	psql -d "$AIFD_DB" -Atc "SELECT node, extract(epoch FROM started_at)::bigint,
	 extract(epoch FROM ended_at)::bigint, gpus, project_id, count(*) OVER (PARTITION BY node)
	 FROM aif.usage_intervals WHERE cluster = 'aiftest' AND job_id = $1 ORDER BY node"
}
flush() { # flush: runs aifctl spool flush; sets rc, out, err
	rc=0
	out=$(aifctl spool flush 2>"$AIFD_WORK/err") || rc=$?
	err=$(cat "$AIFD_WORK/err")
}

# aifd is not running yet: job 101 on two nodes, start and end; job 102 with 3 billion GPUs,
# which the database can never store, an integer out of range (usage no project can be charged
# for is stored unattributed: only such a record is refused).
for node in n1 n2; do
	spool_put event=start job=101 node=$node restart=0 gpus=2 time=$start uid="$uid" project=proja
	spool_put event=end job=101 node=$node restart=0 gpus=2 time=$end start=$start uid="$uid" project=proja
done
spool_put event=start job=102 node=n1 restart=0 gpus=3000000000 time=$start uid=4242 project=nope
# the same record spooled again (a second epilog attempt): still one file
spool_put event=end job=101 node=n1 restart=0 gpus=2 time=$end start=$start uid="$uid" project=proja
assert_eq 5 "$(records)" "records spooled"
assert_eq "700 root" "$(stat -c '%a %U' "$spool")" "spool directory mode and owner"
assert_eq "600" "$(stat -c '%a' "$spool/aiftest.101.0.n1.end.usage")" "record file mode"

# aifd down: nothing sent, everything kept, exit 1.
flush
assert_eq 1 "$rc" "flush with aifd down: exit status ($err)"
assert_match "ERROR:  could not connect to aifd at $AIFD_WORK/run/a.sock" "$err" "flush with aifd down: message"
assert_eq "$spool: 0 usage records sent, 0 moved to bad/, 5 left" "$out" "flush with aifd down: summary"
assert_eq 5 "$(records)" "records kept while aifd is down"

# aifd back: the four records of job 101 are stored, job 102's is refused and moved aside.
aifd_start a
flush
assert_eq 0 "$rc" "flush: exit status ($err)"
assert_eq "$spool: 4 usage records sent, 1 moved to bad/, 0 left" "$out" "flush: summary"
assert_match "WARNING:  spooled usage record moved aside: could not write usage: integer out of range" \
	"$err" "flush: warning about the refused record"
assert_match "HINT:  It is now $spool/bad/aiftest.102.0.n1.start.usage" "$err" "flush: where the refused record is"
assert_eq 0 "$(records)" "spool empty after the flush"
assert_eq "aiftest.102.0.n1.start.usage aiftest.102.0.n1.start.usage.why" "$(cd "$spool/bad" && echo *)" "bad/"
assert_match "integer out of range" "$(cat "$spool/bad/aiftest.102.0.n1.start.usage.why")" "why file"
aifd_wait_settled "job 101"
assert_eq "n1|$start|$end|2|proja|1
n2|$start|$end|2|proja|1" "$(rows 101)" "job 101 stored once per node"
assert_eq "" "$(rows 102)" "job 102 not stored"

# Again: nothing to send.
flush
assert_eq 0 "$rc" "second flush: exit status ($err)"
assert_eq "$spool: 0 usage records sent, 0 moved to bad/, 0 left" "$out" "second flush: summary"

# Records aifd already has (an epilog that spooled although its request had been committed):
# acknowledged again, stored once.
spool_put event=end job=101 node=n2 restart=0 gpus=2 time=$end start=$start uid="$uid" project=proja
flush
assert_eq "0 $spool: 1 usage record sent, 0 moved to bad/, 0 left" "$rc $out" "resent record ($err)"
assert_eq "n1|$start|$end|2|proja|1
n2|$start|$end|2|proja|1" "$(rows 101)" "job 101 still stored once per node"

# Two flushers at once (the timer and a prolog, say): each record is sent once, both end well.
for job in $(seq 200 259); do
	spool_put event=start job="$job" node=n1 restart=0 gpus=1 time=$start uid="$uid" project=proja
done
rc1=0 rc2=0
aifctl spool flush >"$AIFD_WORK/out1" 2>&1 &
pid1=$!
aifctl spool flush >"$AIFD_WORK/out2" 2>&1 || rc2=$?
wait "$pid1" || rc1=$?
assert_eq "0 0" "$rc1 $rc2" "concurrent flushes: $(cat "$AIFD_WORK/out1" "$AIFD_WORK/out2")"
assert_eq 0 "$(records)" "spool empty after concurrent flushes"
sent=$(cat "$AIFD_WORK/out1" "$AIFD_WORK/out2" | awk '/usage records? sent/ {n += $2} END {print n + 0}')
assert_eq 60 "$sent" "records sent by the two flushers together"
assert_eq "60 60" "$(psql -d "$AIFD_DB" -Atc "SELECT count(*), count(DISTINCT job_id) FROM aif.usage_intervals
	WHERE job_id BETWEEN 200 AND 259" | tr '|' ' ')" "concurrent flushes: stored once each"

# --spool-dir wins over the config file; a missing spool is an empty one.
rc=0
out=$(aifctl spool flush --spool-dir "$AIFD_WORK/nothing-here" 2>&1) || rc=$?
assert_eq "0 $AIFD_WORK/nothing-here: 0 usage records sent, 0 moved to bad/, 0 left" "$rc $out" "--spool-dir"
[[ ! -e $AIFD_WORK/nothing-here ]] || fail "flush created the missing spool directory"

# A record of another cluster (a node that sends to this aifd by mistake, or aifd's "cluster"
# misnamed): aifd answers "error", so it stays spooled, to go once the configuration is fixed.
# Before, the answer was "refuse", and the node moved the cluster's every record to bad/.
"$AIF_BUILD_DIR/tests/aif-spool" put "$spool" elsewhere event=start job=103 node=n1 restart=0 gpus=1 \
	time=$start uid="$uid" project=proja
flush
assert_eq "1 $spool: 0 usage records sent, 0 moved to bad/, 1 left" "$rc $out" "a record of another cluster ($err)"
assert_match 'request for cluster "elsewhere" sent to the aifd of cluster "aiftest"' "$err" \
	"a record of another cluster: why it stays"
assert_eq "aiftest.102.0.n1.start.usage aiftest.102.0.n1.start.usage.why" "$(cd "$spool/bad" && echo *)" \
	"bad/ after a record of another cluster"
rm "$spool"/elsewhere.103.*

# A spool others can write into is refused: its records would be sent as root's.
chmod 0777 "$spool"
flush
assert_eq 1 "$rc" "unsafe spool: exit status"
assert_match "ERROR:  unsafe spool directory \"$spool\"" "$err" "unsafe spool: message"
chmod 0700 "$spool"

# Bad usage: exit 2.
for args in "spool" "spool nope" "spool flush extra" "spool flush --spool-dir relative/dir" \
	"status --spool-dir /x"; do
	rc=0
	# shellcheck disable=SC2086
	aifctl $args >/dev/null 2>"$AIFD_WORK/err" || rc=$?
	assert_eq 2 "$rc" "aifctl $args: exit status ($(cat "$AIFD_WORK/err"))"
done

grep -qs "AddressSanitizer\|runtime error" "$AIFD_WORK"/a.log* && fail "sanitizer report in aifd's logs: $(cat "$AIFD_WORK"/a.log*)"
echo "spool flush: all checks passed"
