#!/usr/bin/env bash
# The node's spool against a hostile user and a full disk (lib/aif_spool.c, aifctl spool), with
# a real aifd, MUNGE and PostgreSQL:
# - symbolic links planted by an ordinary user anywhere on spool_dir's path, and directories of
#   theirs on it, make the spool refused (put, flush and list), and nothing is written through
#   them; a root spool in a sticky directory (/tmp) is fine;
# - on a full file system (a small tmpfs, no block and no inode left), a put fails naming the
#   path and leaves the records spooled before intact; a flush still sends them (the lock is
#   the directory: nothing to create); a refused record still goes to bad/ and the .why that
#   could not be written is reported; aifctl spool list shows bad/ and why.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
load_harness
aifd_setup
fs=$AIFD_WORK/fs
trap 'umount "$fs" 2>/dev/null || true; aifd_cleanup' EXIT

apply_proja

now=$(date +%s)
start=$((now - 7200))
uid=$(id -u aiftest)
printf 'server = %s\nmunge_socket = %s\n' "$AIFD_WORK/run/a.sock" "$AIF_MUNGE_SOCKET" >"$AIFD_WORK/aifctl.conf"
aifctl() { "$AIF_BUILD_DIR/aifctl/aifctl" --config "$AIFD_WORK/aifctl.conf" "$@"; }
run() { # run CMD...: sets rc, out, err
	rc=0
	out=$("$@" 2>"$AIFD_WORK/err") || rc=$?
	err=$(cat "$AIFD_WORK/err")
}
put() { # put DIR JOB [KEY=VALUE...]: one start record of cluster aiftest, as the prolog spools it
	local dir=$1 job=$2
	shift 2
	"$AIF_BUILD_DIR/tests/aif-spool" put "$dir" aiftest event=start job="$job" node=n1 restart=0 gpus=1 \
		time=$start uid="$uid" project=proja "$@"
}

# ---- symbolic links and directories of an ordinary user on the path ----
pub=$AIFD_WORK/pub # a sticky directory everybody may write into, as /tmp
mkdir -m 1777 "$pub"
as_user aiftest mkdir "$pub/mine"
as_user aiftest ln -s "$pub/mine" "$pub/spool"        # the spool itself a link of theirs
as_user aiftest ln -s "$pub/mine" "$pub/parent"       # a link of theirs above the spool
for dir in "$pub/spool" "$pub/parent/spool" "$pub/mine/spool"; do
	run "$AIF_BUILD_DIR/tests/aif-spool" put "$dir" aiftest event=start job=1 node=n1 restart=0 gpus=1 time=$start uid="$uid"
	assert_eq 1 "$rc" "put into $dir: exit status ($err)"
	assert_match "^aif-spool: unsafe spool directory \"$dir\"" "$err" "put into $dir: message"
	for cmd in flush list; do
		run aifctl spool "$cmd" --spool-dir "$dir"
		assert_eq 1 "$rc" "spool $cmd of $dir: exit status ($err)"
		assert_match "ERROR:  unsafe spool directory \"$dir\"" "$err" "spool $cmd of $dir: message"
	done
done
assert_match "DETAIL:  \"$pub/spool\" on its path is a symbolic link that belongs to uid $uid" \
	"$(aifctl spool list --spool-dir "$pub/spool" 2>&1 || true)" "a user's link: detail"
assert_match "DETAIL:  \"$pub/mine\" on its path belongs to uid $uid" \
	"$(aifctl spool list --spool-dir "$pub/mine/spool" 2>&1 || true)" "a user's directory: detail"
assert_eq "" "$(ls -A "$pub/mine")" "nothing written through the user's links"
# root's own spool in the sticky directory: nobody else can rename or replace it there
put "$pub/rootspool" 1
assert_eq "700 root" "$(stat -c '%a %U' "$pub/rootspool")" "root's spool in a sticky directory"
# a link of root's on the path is followed
ln -s "$pub" "$AIFD_WORK/rootlink"
run aifctl spool list --spool-dir "$AIFD_WORK/rootlink/rootspool"
assert_eq "0 aiftest.1.0.n1.start.usage
$AIFD_WORK/rootlink/rootspool: 1 usage record waiting, 0 in bad/" "$rc $out" "a link of root's on the path ($err)"

# ---- a full file system ----
mkdir "$fs"
mount -t tmpfs -o size=128k,nr_inodes=32,mode=0755 tmpfs "$fs" || fail "could not mount a tmpfs on $fs"
spool=$fs/spool
put "$spool" 101
put "$spool" 102
put "$spool" 103 gpus=3000000000 # aifd refuses it: a number the database can never store
sums=$(cd "$spool" && sha256sum -- *.usage)
# until the file system is full: no block and no inode left
dd if=/dev/zero of="$fs/filler" bs=4k 2>/dev/null || true
mkdir "$fs/inodes"
for i in $(seq 64); do : 2>/dev/null >"$fs/inodes/$i" || break; done
run put "$spool" 104
assert_eq 1 "$rc" "put on a full file system: exit status"
assert_match "could not write spool file \"$spool/aiftest.104.0.n1.start.usage\": No space left on device" \
	"$err" "put on a full file system: message"
assert_match "HINT:  Free space on the file system of \"$spool\"" "$err" "put on a full file system: hint"
assert_eq "$sums" "$(cd "$spool" && sha256sum -- *.usage)" "records spooled before the disk filled: intact"
assert_eq "" "$(find "$spool" -name '.tmp-*')" "no temporary file left behind"
# aifd down: the flush keeps everything (its lock is the directory: no file to create)
run aifctl spool flush --spool-dir "$spool"
assert_eq "1 $spool: 0 usage records sent, 0 moved to bad/, 3 left" "$rc $out" "flush, aifd down, disk full ($err)"
assert_match "could not connect to aifd" "$err" "flush, aifd down, disk full: message"
# aifd up: two records sent (which frees space); the refused one goes to bad/ with its .why
aifd_start a
run aifctl spool flush --spool-dir "$spool"
assert_eq "0 $spool: 2 usage records sent, 1 moved to bad/, 0 left" "$rc $out" "flush, disk full ($err)"
assert_match "WARNING:  spooled usage record moved aside: could not write usage: integer out of range" "$err" \
	"flush, disk full: the refused record"
aifd_wait_settled "jobs 101, 102"
assert_eq "2" "$(psql -d "$AIFD_DB" -Atc "SELECT count(*) FROM aif.usage_intervals WHERE job_id IN (101, 102)")" \
	"records sent from a full disk"
# full again: a refused record still goes to bad/ (never resent); its .why cannot be written, which is said
rm -r "$fs/inodes"
put "$spool" 105 gpus=3000000000
dd if=/dev/zero of="$fs/filler2" bs=4k 2>/dev/null || true
run aifctl spool flush --spool-dir "$spool"
assert_eq "1 $spool: 0 usage records sent, 1 moved to bad/, 0 left" "$rc $out" "flush, disk full, refused ($err)"
assert_match "ERROR:  could not write spool file \"$spool/bad/aiftest.105.0.n1.start.usage.why\": No space left on device" \
	"$err" "flush, disk full: the .why not written"
run aifctl spool list --spool-dir "$spool"
assert_eq 0 "$rc" "list: exit status ($err)"
assert_match "^bad/aiftest.103.0.n1.start.usage
    could not write usage: integer out of range
bad/aiftest.105.0.n1.start.usage
    \(no .why file: the reason is in the log of the prolog, epilog or flush that put it there\)
$spool: 0 usage records waiting, 2 in bad/$" "$out" "list: bad/ and why"
rm "$fs/filler" "$fs/filler2"

grep -qs "AddressSanitizer\|runtime error" "$AIFD_WORK"/a.log* && fail "sanitizer report in aifd's logs: $(cat "$AIFD_WORK"/a.log*)"
echo "spool against hostile users and a full disk: all checks passed"
