# Sourced by the benchmarks: their own harness run and aifd, stopped by pid on exit.
# Needs: harness (tests/harness/aif-harness), migrate (tests/aif-migrate), aifd. Sets env_file,
# sources the run's environment and migrates its database; aifd_pid is the bench's aifd.

export AIF_HARNESS_QUIET=1
env_file=$("$harness" start)
aifd_pid=
stop_aifd() { # by pid: SIGTERM, then SIGKILL after 10 s
	[[ -n $aifd_pid ]] || return 0
	kill -TERM "$aifd_pid" 2>/dev/null || true
	for _ in {1..100}; do kill -0 "$aifd_pid" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$aifd_pid" 2>/dev/null || true
	wait "$aifd_pid" 2>/dev/null || true
	rm -f "$AIF_HARNESS_DIR/pids/aifd"
	aifd_pid=
}
cleanup() {
	stop_aifd
	if [[ -n ${AIF_BENCH_KEEP:-} ]]; then # keep the run to explore it; stop it yourself
		echo "bench: kept; stop with: $harness stop $env_file" >&2
	else
		# Without the run's marker: the harness kills whatever carries it, after Slurm.
		env -u AIF_HARNESS_DIR "$harness" stop "$env_file"
	fi
}
trap cleanup EXIT
# shellcheck disable=SC1090
source "$env_file"
q() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
fail() { echo "bench: $*" >&2; exit 1; }

"$migrate" "$AIF_TEST_DB_TCP" >/dev/null
work=$AIF_HARNESS_DIR/work/bench # removed with the run

# start_aifd CONF LOG: the bench's aifd, in the foreground of this script; waits until ready.
start_aifd() {
	local deadline=$((SECONDS + 30))
	chmod 644 "$1"
	"$aifd" -f "$1" 2>"$2" &
	aifd_pid=$!
	echo "$aifd_pid" >"$AIF_HARNESS_DIR/pids/aifd" # the harness stops it too, should the bench die
	until grep -q 'aifd is ready' "$2"; do
		kill -0 "$aifd_pid" 2>/dev/null || fail "aifd exited; log: $(cat "$2")"
		((SECONDS < deadline)) || fail "aifd not ready within 30 s; log: $(cat "$2")"
		sleep 0.1
	done
}
