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
		state=$(scontrol show job "$id" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p')
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
