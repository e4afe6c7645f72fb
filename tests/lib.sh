# Shared helpers for aif's shell tests. Source it; every helper fails the test loudly.
# Tests that use the shared harness run get AIF_HARNESS_ENV from ctest.

AIF_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
AIF_HARNESS=$AIF_SRC/tests/harness/aif-harness

fail() {
	printf 'FAIL: %s\n' "$*" >&2
	exit 1
}

assert_eq() { # assert_eq EXPECTED ACTUAL WHAT
	[[ $1 == "$2" ]] || fail "$3: expected '$1', got '$2'"
}

assert_match() { # assert_match REGEX ACTUAL WHAT
	[[ $2 =~ $1 ]] || fail "$3: '$2' does not match /$1/"
}

load_harness() {
	[[ -n ${AIF_HARNESS_ENV:-} && -f $AIF_HARNESS_ENV ]] ||
		fail "no harness run (AIF_HARNESS_ENV='${AIF_HARNESS_ENV:-}'); run through ctest"
	# shellcheck disable=SC1090
	source "$AIF_HARNESS_ENV"
}

as_user() { # as_user USER CMD...: CMD as an ordinary user, in the run's work dir
	"$AIF_HARNESS" as-user "$AIF_HARNESS_DIR" "$@"
}

# Wait until a job has ended; prints its final state.
wait_job() { # wait_job JOBID [SECONDS]
	local id=$1 deadline=$((SECONDS + ${2:-60})) state
	while ((SECONDS < deadline)); do
		# An array's id shows all its tasks: the job is the line of this id.
		state=$(scontrol -o show job "$id" 2>/dev/null | sed -n "s/^JobId=$id .*JobState=\([A-Z_]*\).*/\1/p")
		case $state in
		COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE | PREEMPTED)
			echo "$state"
			return 0
			;;
		esac
		sleep 0.3
	done
	fail "job $id did not end within ${2:-60} s (state '${state:-unknown}')"
}

# ---- aifd in a test: its own database, work directory, ports and log; stopped by pid ----
# aifd_setup: sets AIFD_WORK (mode 755, readable by the test users; kept when already set)
# and AIFD_DB (a new migrated database; conninfo in AIFD_CONNINFO); the EXIT trap stops every
# aifd started with aifd_start and drops the database. Needs load_harness and AIF_BUILD_DIR.
aifd_setup() {
	AIFD_WORK=${AIFD_WORK:-$(mktemp -d)} # set it first to know the socket paths beforehand
	chmod 755 "$AIFD_WORK"
	AIFD_DB=aif_t_$$_$RANDOM
	AIFD_CONNINFO=${AIF_TEST_DB_TCP/dbname=aif/dbname=$AIFD_DB}
	AIFD_PIDS=()
	trap aifd_cleanup EXIT
	createdb "$AIFD_DB"
	"$AIF_BUILD_DIR/tests/aif-migrate" "$AIFD_CONNINFO" >/dev/null
	# The test users run the client from here (the build directory may be private).
	cp "$AIF_BUILD_DIR/tests/aif-send" "$AIFD_WORK/aif-send"
}

stop_pid() { # stop_pid PID [SECONDS]: SIGTERM, then SIGKILL after SECONDS (10)
	kill -TERM "$1" 2>/dev/null || return 0
	for _ in $(seq $((${2:-10} * 10))); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
	kill -KILL "$1" 2>/dev/null || true
}

# aifd_cleanup: stop the test's aifd, drop its database, remove its work directory (kept, with
# aifd's logs, when AIF_KEEP_WORK is set: for debugging a failure).
aifd_cleanup() {
	local pid
	for pid in "${AIFD_PIDS[@]}"; do stop_pid "$pid"; done
	[[ -z $AIFD_DB ]] || dropdb --if-exists "$AIFD_DB" || true
	[[ -z ${PLUGIN_CLUSTER:-} ]] || "$AIF_HARNESS" stop "$AIF_HARNESS_DIR" >/dev/null || true
	[[ -n ${AIF_KEEP_WORK:-} ]] && echo "kept $AIFD_WORK" >&2 || rm -rf "$AIFD_WORK"
}

utc_day() { # utc_day OFFSET: the UTC date OFFSET days from today, YYYY-MM-DD
	date -u -d "@$(($(date +%s) + $1 * 86400))" +%F
}

# budgets_head SECTOR...: the start of a budgets file whose period "cur" contains today (30 days
# either side), so that tests hold whatever the date.
budgets_head() {
	printf 'version: 1\nsectors: [%s]\nperiods:\n  cur: {start: %s, end: %s}\n' \
		"$(IFS=,; echo "$*" | sed 's/,/, /g')" "$(utc_day -30)" "$(utc_day 30)"
}

# wait_sql SQL EXPECTED WHAT [SECONDS]: until SQL on the test's database answers EXPECTED (20 s).
wait_sql() {
	local deadline=$((SECONDS + ${4:-20})) got
	while :; do
		got=$(psql -X -q -At -d "$AIFD_DB" -c "$1")
		[[ $got != "$2" ]] || return 0
		((SECONDS < deadline)) || fail "$3: expected '$2', got '$got' after ${4:-20} s"
		sleep 0.2
	done
}

# apply_proja: budgets of one AI Factory "fa" on cluster aiftest (1000 GPU-hours) and its
# project "proja" (health, 100 GPU-hours, member aiftest), applied to the test's database.
apply_proja() {
	{ budgets_head health; cat; } >"$AIFD_WORK/budgets.yaml" <<YAML
factories:
  - id: fa
    clusters: [aiftest]
    budgets: {cur: 1000}
    projects:
      - {id: proja, sectors: [health], budgets: {cur: 100}, members: {users: [aiftest]}}
YAML
	"$AIF_BUILD_DIR/aifctl/aifctl" --db "$AIFD_CONNINFO" apply "$AIFD_WORK/budgets.yaml" >/dev/null
}

# plugin_cluster_start [PLUGSTACK ARG]...: a harness run of the test's own whose
# plugstack.conf loads this build's aif.so (copied, readable by the test users) talking to
# the aifd "a" that aifd_start will start, with the extra arguments; then aifd_setup. With
# AIF_HARNESS_ARGS, more options of aif-harness start; with
# AIF_PROLOG_FLAGS set, slurm.conf has PrologFlags=$AIF_PROLOG_FLAGS and aif-pelog as
# Prolog= and Epilog=, its stderr in $AIFD_WORK/pelog.log; with AIF_PELOG set, aif-pelog too; with
# AIF_SLURMDBD set, slurmdbd and MariaDB beside it (aif-harness --slurmdbd). The run is stopped
# on exit. Tests that use it hold RESOURCE_LOCK slurm-cluster.
plugin_cluster_start() {
	AIFD_WORK=$(mktemp -d)
	chmod 755 "$AIFD_WORK"
	install -m 755 "$AIF_BUILD_DIR/plugin/aif.so" "$AIFD_WORK/aif.so"
	install -m 644 /dev/null "$AIFD_WORK/plugstack.conf" # filled once munged's socket is known
	AIF_HARNESS_ENV=$AIFD_WORK/harness.env
	local opts=()
	if [[ -n ${AIF_PROLOG_FLAGS:-}${AIF_PELOG:-} ]]; then # aif-pelog records the usage under RunInJob
		# Slurm keeps no prolog's output: a site's prolog script runs aif-pelog, and keeps
		# what it did in pelog.log.
		install -m 755 "$AIF_BUILD_DIR/plugin/aif-pelog" "$AIFD_WORK/aif-pelog"
		# Writable by all: Slurm 24.11.0 to .5 may run an epilog as the job's user (docs/slurm.md).
		install -m 666 /dev/null "$AIFD_WORK/pelog.log"
		cat >"$AIFD_WORK/pelog" <<-EOF
			#!/bin/sh
			log=$AIFD_WORK/pelog.log
			echo "\$(date +%T.%N) \$SLURMD_NODENAME \$SLURM_SCRIPT_CONTEXT job \$SLURM_JOB_ID restart \${SLURM_JOB_RESTART_COUNT:-0}" >>"\$log"
			$AIFD_WORK/aif-pelog 2>>"\$log"
			echo "\$(date +%T.%N) \$SLURMD_NODENAME \$SLURM_SCRIPT_CONTEXT job \$SLURM_JOB_ID: exit \$?" >>"\$log"
		EOF
		chmod 755 "$AIFD_WORK/pelog"
		opts=(--prolog-flags "${AIF_PROLOG_FLAGS:-Alloc}" --pelog "$AIFD_WORK/pelog")
	fi
	[[ -z ${AIF_SLURMDBD:-} ]] || opts+=(--slurmdbd)
	# AIF_HARNESS_ARGS: more options of aif-harness start (--gpu-types ..., --partition ...).
	local extra=()
	[[ -z ${AIF_HARNESS_ARGS:-} ]] || read -ra extra <<<"${AIF_HARNESS_ARGS//$'\n'/ }" # one line, words
	opts+=("${extra[@]}")
	# slurmctld's job_submit/aif as well, as a site installs it (docs/slurm.md).
	opts+=(--plugin "$AIF_BUILD_DIR/plugin/job_submit_aif.so" --slurm-conf-line JobSubmitPlugins=aif)
	"$AIF_HARNESS" start --plugstack "$AIFD_WORK/plugstack.conf" "${opts[@]}" \
		--env-out "$AIF_HARNESS_ENV" >/dev/null
	PLUGIN_CLUSTER=1 AIFD_PIDS=() AIFD_DB=""
	trap aifd_cleanup EXIT
	load_harness
	# The harness runs on its own copy of the file.
	echo "required $AIFD_WORK/aif.so server=$AIFD_WORK/run/a.sock munge_socket=$AIF_MUNGE_SOCKET" \
		"spool_dir=$AIFD_WORK/spool $*" \
		>"$(sed -n 's/^PlugStackConfig=//p' "$SLURM_CONF")"
	"$AIF_HARNESS" restart-slurmd "$AIF_HARNESS_DIR" >/dev/null # job_prolog/epilog need it
	aifd_setup
}

# cluster_start HARNESS-OPTION...: a harness run of the test's own without aif.so (aif-harness
# start with these options), then aifd_setup; stopped on exit. Hold RESOURCE_LOCK slurm-cluster.
cluster_start() {
	AIFD_WORK=$(mktemp -d)
	chmod 755 "$AIFD_WORK"
	AIF_HARNESS_ENV=$AIFD_WORK/harness.env
	"$AIF_HARNESS" start "$@" --env-out "$AIF_HARNESS_ENV" >/dev/null
	PLUGIN_CLUSTER=1 AIFD_PIDS=() AIFD_DB=""
	trap aifd_cleanup EXIT
	load_harness
	aifd_setup
}

aif_apply() { # aif_apply FILE: apply a budgets file to the test's database
	"$AIF_BUILD_DIR/aifctl/aifctl" --db "$AIFD_CONNINFO" apply "$1" >/dev/null
}

# plugin_aifd_start [KEY = VALUE]...: the aifd "a" of a plugin_cluster_start run, as that run's
# SlurmUser (so that it may cancel jobs), for its cluster, with the lines given.
plugin_aifd_start() {
	aifd_start a "cluster = $AIF_TEST_CLUSTER" "user = $AIF_TEST_SLURM_USER" \
		"slurm_user = $AIF_TEST_SLURM_USER" "$@"
}

# wait_answer AIFD WORD WHAT SENDER ARG...: until aif_send SENDER AIFD ARG... answers WORD,
# at most 5 s (aifd sees a budget change at once, usage within its refresh)
wait_answer() {
	local aifd=$1 word=$2 what=$3 deadline=$((SECONDS + 5)) got
	shift 3
	until got=$(aif_send "$1" "$aifd" "${@:2}" | head -1) && [[ $got == "$word" ]]; do
		((SECONDS < deadline)) || fail "$what: aifd $aifd answers '$got', expected '$word' within 5 s"
		sleep 0.2
	done
}

# free_port [OWNER_DIR]: a TCP port nobody listens on, claimed the way the harness claims its
# own, so that overlapping runs never pick the same one: the claim lasts until OWNER_DIR
# (default the test's AIFD_WORK) is gone; then anyone may take it over.
free_port() {
	"$AIF_HARNESS" claim-port "${1:-${AIFD_WORK:?free_port needs an owner dir}}"
}

# aifd_start NAME [KEY = VALUE]...: an aifd of cluster aiftest (the lines override defaults)
# on the test database, as user aiftest3, with aiftest2 as its SlurmUser; waits until it is
# ready. Its socket is $AIFD_WORK/run/NAME.sock, its log $AIFD_WORK/NAME.log, its pid in
# AIFD_PID_<NAME>.
aifd_start() {
	local name=$1 conf=$AIFD_WORK/$1.conf log=$AIFD_WORK/$1.log pid
	shift
	{
		echo "cluster = aiftest"
		echo "db = $AIFD_CONNINFO"
		echo "listen = 127.0.0.1:$(free_port)"
		echo "socket = $AIFD_WORK/run/$name.sock" # aifd makes run/ its own
		echo "munge_socket = $AIF_MUNGE_SOCKET"
		echo "user = aiftest3"
		echo "slurm_user = aiftest2"
		echo "log_level = debug"
		echo "refresh_interval = 1s"
		printf '%s\n' "$@"
	} | tac | awk -F' = ' '!seen[$1]++' | tac >"$conf" # a later line overrides a default
	chmod 644 "$conf"
	# This start's log: an earlier start's "aifd is ready" must not count.
	[[ ! -e $log ]] || mv "$log" "$log.$(date +%s%N)"
	"$AIF_BUILD_DIR/daemon/aifd" -f "$conf" 2>>"$log" &
	pid=$!
	AIFD_PIDS+=("$pid")
	printf -v "AIFD_PID_$name" '%s' "$pid"
	aifd_wait_log "$name" "aifd is ready" "aifd $name start"
}

aifd_wait_log() { # aifd_wait_log NAME REGEX WHAT: until NAME's log matches, at most 20 s
	local log=$AIFD_WORK/$1.log deadline=$((SECONDS + 20)) pid_var=AIFD_PID_$1
	until grep -Eqs -- "$2" "$log"; do
		kill -0 "${!pid_var}" 2>/dev/null || fail "$3: aifd $1 exited; log: $(tail -20 "$log")"
		((SECONDS < deadline)) || fail "$3: no /$2/ in the log of aifd $1 within 20 s; log: $(tail -20 "$log")"
		sleep 0.1
	done
}

# aifd_wait_settled WHAT: until the aifds of this test closed every end they acknowledged
# (aif.usage_end_inbox empty; aifd settles ends in rounds at most a second apart), at most 20 s
aifd_wait_settled() {
	local deadline=$((SECONDS + 20)) left
	until left=$(psql -d "$AIFD_DB" -Atc "SELECT count(*) FROM aif.usage_end_inbox") && [[ $left == 0 ]]; do
		((SECONDS < deadline)) || fail "$1: $left acknowledged ends still not closed after 20 s"
		sleep 0.1
	done
}

# aif_field KEY ANSWER: the value of KEY= in the first block of an answer aif-send printed.
aif_field() { sed -n "0,/^\$/s/^$1=//p" <<<"$2"; }

# aif_send USER NAME ARG...: tests/tools/aif-send as USER (or root) to aifd NAME.
aif_send() {
	local user=$1 name=$2
	shift 2
	if [[ $user == root ]]; then
		"$AIFD_WORK/aif-send" --server="$AIFD_WORK/run/$name.sock" --munge-socket="$AIF_MUNGE_SOCKET" "$@"
	else
		as_user "$user" "$AIFD_WORK/aif-send" --server="$AIFD_WORK/run/$name.sock" \
			--munge-socket="$AIF_MUNGE_SOCKET" "$@"
	fi
}
