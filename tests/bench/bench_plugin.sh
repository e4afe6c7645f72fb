#!/usr/bin/env bash
# Benchmark (not a test): what aif.so costs a Slurm cluster's job throughput. The same short
# GPU jobs run without aif and with it on the harness's two-node cluster; the ratio of the
# times is the figure (goal >= 0.95: aif takes at most 5% of the throughput).
#
#   tests/bench/bench_plugin.sh [BUILD_DIR] [JOBS] [ROUNDS]
#
# Starts its own harness run (stopped on exit unless AIF_BENCH_KEEP=1 is set), migrates its
# database with BUILD_DIR's tests/aif-migrate (default: build), applies a budgets file giving
# the ordinary test user one project with ample GPU-hours, and starts BUILD_DIR's aifd as the
# run's SlurmUser with its default settings (durable PostgreSQL, 4 workers, reconciliation
# every 60 s), on a Unix socket. Each phase writes plugstack.conf, restarts slurmd, submits
# JOBS (default 200) jobs `sbatch -N2 --gpus-per-node=1 --wrap 'sleep 1'`, one after the other as
# the ordinary user, held; then releases them all. Every job takes one GPU on each of the two
# nodes: jobs of one shape pack alike in every phase (1- and 2-node jobs in turn packed
# differently from phase to phase, which moved a phase's time by 2-5 %), and each job has a
# prolog and an epilog on two nodes, its start waiting for the slower one. A phase's
# time is the submissions' (sbatch with its submit-time checks) plus the run's, from the first
# job's allocation (slurmctld's log) until squeue lists none of them (every epilog done).
# Holding keeps the two apart, so every phase measures the same work. The wait between the
# release and the first allocation is Slurm's, printed but left out: slurmctld starts batch
# jobs in a deferred pass, at most every batch_sched_delay (3 s by default) after its previous
# one. AIF_BENCH_WRAP sets the jobs' command. The default, `sleep 1`, is the short GPU job of
# the figure: one that holds its GPUs for a second (less than starting CUDA takes), so that the
# time is Slurm's scheduling, prologs and epilogs more than the jobs' own. AIF_BENCH_WRAP=true
# (zero-length jobs) is the stress case: there, on a small machine, the prolog process that
# Slurm starts for any plugin with a job_prolog already costs more than 5% (the floor's ratio).
# The phases:
#   - nothing in plugstack.conf: once, for information only. With no epilog at all, slurmd
#     answers a job's termination at once and sends slurmctld no "epilog complete", the one
#     event that makes it schedule at once: the freed GPUs wait for the deferred pass, which
#     makes this several times slower than with aif. Sites have an Epilog script or a SPANK
#     plugin with an epilog, hence:
#   - the baseline: only a no-op SPANK plugin with an empty job_epilog (built here with cc),
#     so that Slurm schedules as it does with aif;
#   - the floor: a no-op plugin with an empty job_prolog too: what accounting in the prolog
#     costs any plugin, whatever it does there (slurmd runs a `slurmstepd spank prolog`
#     process on every node before the job may start);
#   - with aif: BUILD_DIR's aif.so (submit-time check in sbatch, admission in slurmstepd,
#     accounting in the prolog and epilog of every node); the jobs carry --aif-project. Then,
#     from PostgreSQL, the proof that the work was done: one admission per job and one
#     interval per job and node, closed by its epilog.
# ROUNDS (default 5) rounds of the last three, back to back, each first in turn. Each phase
# prints its time, jobs/s, how long the submissions took (in all, and each sbatch's median and
# p90), where the CPU went (from the first submission) and, per job from slurmctld's log, the
# median time from allocation to end and from an end to the next allocation. At the end, each
# ratio as the median of the rounds' (the three phases of a round share the machine's moment;
# the median is the verdict, min and max the spread: how far one round strays, as other load on
# the machine makes it), with the best of each and the sums for information: baseline / aif
# (goal >= 0.95), no-op prolog and epilog / aif (aif's own share, goal >= 0.98), baseline /
# floor; then what aif adds to an sbatch, medians over all the rounds' submissions (goal <= 2
# ms), and the wall time it adds per job, per round (median, min, max), with the prolog
# process's part; and, for information, the per-job times from slurmctld's log (medians of the
# rounds) and what aif adds to the floor's cycle: its own cost per job, whatever the jobs'
# packing onto the nodes.
# Slurm's daemons and jobs, munged, aifd and PostgreSQL share this machine's cores. About 20
# minutes (7 with AIF_BENCH_WRAP=true). As root (the harness needs it).
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$src/build}
jobs=${2:-200}
rounds=${3:-5}
wrap=${AIF_BENCH_WRAP:-sleep 1} # the jobs' command
job_nodes=2                     # each job's nodes, one GPU on each
so=$build/plugin/aif.so
aifd=$build/daemon/aifd
migrate=$build/tests/aif-migrate
aifctl=$build/aifctl/aifctl
harness=$src/tests/harness/aif-harness
for tool in "$so" "$aifd" "$migrate" "$aifctl"; do
	[[ -e $tool ]] || { echo "bench: $tool not found; build first (cmake --build $build)" >&2; exit 1; }
done
command -v cc >/dev/null || { echo "bench: cc not found (it builds the no-op plugin)" >&2; exit 1; }
[[ $jobs =~ ^[1-9][0-9]*$ && $rounds =~ ^[1-9][0-9]*$ ]] ||
	{ echo "bench: JOBS and ROUNDS must be positive integers" >&2; exit 2; }
phase_timeout=900 # seconds, for one phase's jobs to finish

bench_start=$(date +%s)
# shellcheck source=tests/bench/bench_lib.sh
source "$src/tests/bench/bench_lib.sh"
now_ms() { date +%s%3N; }
secs() { awk -v ms="$1" 'BEGIN { printf "%.1f s", ms / 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }'; }
goal() { awk -v v="$1" 'BEGIN { printf "%s", (v >= 0.95 ? "met" : "MISSED") }'; }
# Readable by the ordinary user, whose sbatch loads aif.so (the build dir may be private).
mkdir -p "$work/run" "$work/out"
chmod 755 "$work"
chmod 1777 "$work/out"
chown "$AIF_TEST_SLURM_USER" "$work/run" # aifd, once it is SlurmUser, removes its socket here
install -m 755 "$so" "$work/aif.so"
# The no-op plugins (see the top of this file): noop.so has an empty job_epilog, the
# baseline's; noop-prolog.so an empty job_prolog too, the floor's.
noop_c='
#include <slurm/spank.h>
SPANK_PLUGIN(noop, 1);
int slurm_spank_job_epilog(spank_t sp, int ac, char **av) { (void)sp; (void)ac; (void)av; return 0; }
#ifdef WITH_PROLOG
int slurm_spank_job_prolog(spank_t sp, int ac, char **av) { (void)sp; (void)ac; (void)av; return 0; }
#endif
'
cc -shared -fPIC -O2 -o "$work/noop.so" -x c - <<<"$noop_c"
cc -shared -fPIC -O2 -DWITH_PROLOG -o "$work/noop-prolog.so" -x c - <<<"$noop_c"
chmod 755 "$work/noop.so" "$work/noop-prolog.so"
user=$AIF_TEST_USER project=bench
from=$(date -u -d '-30 days' +%F)
to=$(date -u -d '+30 days' +%F)
cat >"$work/budgets.yaml" <<YAML
version: 1
sectors: [language]
periods:
  cur: {start: $from, end: $to}
factories:
  - id: bench-factory
    clusters: [$AIF_TEST_CLUSTER]
    budgets: {cur: 100000000}
    projects:
      - id: $project
        sectors: [language]
        budgets: {cur: 100000000}
        members: {users: [$user]}
YAML
"$aifctl" --db "$AIF_TEST_DB_TCP" apply "$work/budgets.yaml" >/dev/null
sock=$work/run/aifd.sock
log=$work/aifd.log
cat >"$work/aifd.conf" <<CONF
cluster = $AIF_TEST_CLUSTER
db = $AIF_TEST_DB_TCP
listen = none
socket = $sock
munge_socket = $AIF_MUNGE_SOCKET
user = $AIF_TEST_SLURM_USER
slurm_user = $AIF_TEST_SLURM_USER
CONF
start_aifd "$work/aifd.conf" "$log"

plugstack=$(sed -n 's/^PlugStackConfig=//p' "$SLURM_CONF") # the run's own copy
aif_line="required $work/aif.so server=$sock munge_socket=$AIF_MUNGE_SOCKET spool_dir=$work/spool"
echo "machine: $(nproc) cores; Slurm $(sinfo -V | cut -d' ' -f2), nodes $AIF_TEST_NODES" \
	"($AIF_TEST_GPUS_PER_NODE GPUs each); PostgreSQL $(q -c 'SHOW server_version')" \
	"(fsync $(q -c 'SHOW fsync'), synchronous_commit $(q -c 'SHOW synchronous_commit'));" \
	"aifd with its default settings, on a Unix socket"
echo "jobs: $jobs per phase, 'sbatch -N$job_nodes --gpus-per-node=1 --wrap \"$wrap\"'," \
	"submitted one after the other by $user; $rounds rounds of the baseline, the floor and" \
	"with aif, in turn first"

# plugstack none|base|floor|aif: plugstack.conf empty, with a no-op plugin or with aif.so;
# slurmd restarted, since it runs the prolog and epilog of the plugins it knew at its start.
plugstack() {
	case $1 in
	none) : >"$plugstack" ;;
	base) echo "required $work/noop.so" >"$plugstack" ;;
	floor) echo "required $work/noop-prolog.so" >"$plugstack" ;;
	aif) echo "$aif_line" >"$plugstack" ;;
	esac
	env -u AIF_HARNESS_DIR "$harness" restart-slurmd "$env_file" >/dev/null
}

# What slurmctld logs when it allocates a job: its main scheduler, or backfill ("Started").
allocated_re='(sched: Allocate|Started) JobId='
# alloc_ms JOB: when slurmctld allocated JOB (its log), in ms since the epoch
alloc_ms() {
	local line
	line=$(grep -m 1 -E "${allocated_re}$1 " "$AIF_HARNESS_DIR/slurm/log/slurmctld.log") ||
		return 1
	line=${line#\[} # "[2026-11-24T21:35:02.576] sched: Allocate JobId=..."
	date -d "${line%%\]*}" +%s%3N
}

# run_jobs N OUT [SBATCH ARG]...: N jobs as the ordinary user, each on job_nodes nodes; their
# ids go to OUT. They are submitted held and released together once all are in, so that the
# submissions never overlap the run: a phase's time is submit_ms (the submissions, one after
# the other: sbatch and its submit-time checks) plus run_ms (from the first allocation until
# squeue lists none of the jobs: all ended, epilogs done). wait_ms, from the release to the
# first allocation, is Slurm's deferred pass, left out. Fails unless all COMPLETED.
run_jobs() {
	local n=$1 out=$2 t0 t1 t_release t_end left deadline states
	shift 2
	cpu_before=$(cpu_sample)
	t0=$(now_ms)
	# One shell as the user for all the submissions: no per-job setpriv in the figures. Each
	# sbatch's own time (bash's clock, no process of its own) goes to submit.times.
	"$harness" as-user "$env_file" "$user" bash -c '
		n=$1 dir=$2 wrap=$3 nodes=$4; shift 4
		for ((i = 0; i < n; i++)); do
			t=$EPOCHREALTIME
			sbatch --parsable -H -N"$nodes" --gpus-per-node=1 -o "$dir/%j.out" "$@" --wrap "$wrap" || exit 1
			echo "$t $EPOCHREALTIME" >&3
		done 3>"$dir/submit.times"' bash "$n" "$work/out" "$wrap" "$job_nodes" "$@" >"$out" 2>"$out.err" ||
		fail "sbatch failed after $(wc -l <"$out") jobs: $(tail -n 5 "$out.err")"
	t1=$(now_ms)
	submit_ms=$((t1 - t0))
	awk '{ printf "%.3f\n", ($2 - $1) * 1000 }' "$work/out/submit.times" >"$out.sbatch"
	[[ $(grep -c . "$out") == "$n" ]] || fail "expected $n job ids, got: $(head -c 300 "$out")"
	t_release=$(now_ms)
	"$harness" as-user "$env_file" "$user" scontrol release "$(paste -sd, "$out")" ||
		fail "scontrol release failed"
	deadline=$((SECONDS + phase_timeout))
	# squeue lists pending, running and completing jobs: the ones that still cost time. Each
	# call costs slurmctld CPU that the jobs need: seldom while many are left, often near
	# the end, where it sets the resolution.
	while left=$(squeue -h -u "$user" -o %A | wc -l) && ((left > 0)); do
		((SECONDS < deadline)) ||
			fail "$left jobs still queued after $phase_timeout s: $(squeue -u "$user" | head -n 5)"
		if ((left > 40)); then sleep 1; elif ((left > 8)); then sleep 0.25; else sleep 0.05; fi
	done
	t_end=$(now_ms)
	cpu_after=$(cpu_sample)
	# slurmctld starts batch jobs in a deferred pass, at most every batch_sched_delay (3 s)
	# after its previous one: a wait of up to 3 s that is not aif's, left out.
	t1=$(alloc_ms "$(head -n 1 "$out")") || fail "no allocation of job $(head -n 1 "$out") in slurmctld's log"
	wait_ms=$((t1 - t_release))
	run_ms=$((t_end - t1))
	total_ms=$((submit_ms + run_ms))
	states=$(squeue -h -t all -j "$(paste -sd, "$out")" -o %T | sort | uniq -c |
		awk '{ printf "%s%s %s", sep, $1, $2; sep = ", " }')
	[[ $states == "$n COMPLETED" ]] || fail "jobs ended: $states (expected $n COMPLETED)"
	rm -f "$work"/out/*.out "$work/out/submit.times"
}

# median FILE... / p90 FILE...: of the numbers in the files, one per line
median() { sort -g "$@" | awk '{ v[NR] = $1 } END { printf "%.2f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
p90() { sort -g "$@" | awk '{ v[NR] = $1 } END { i = int(NR * 0.9 + 0.999); printf "%.2f", v[i < 1 ? 1 : i] }'; }

# Where the CPU goes, in clock ticks: "busy total aifd postgres munged slurmctld slurmd",
# the machine's (every user's) and the run's daemons' (with the children they reaped:
# PostgreSQL's ended backends, slurmd's prolog and epilog; not slurmstepd, which slurmd
# detaches).
ticks() { # ticks PID [with-children]: user and system ticks of PID
	local f
	[[ -r /proc/$1/stat ]] || { echo 0; return; }
	read -ra f < <(sed 's/.*) //' "/proc/$1/stat") # fields from the 3rd, state
	echo $((f[11] + f[12] + (${2:+1} + 0) * (f[13] + f[14])))
}
cpu_sample() {
	local pm child pg busy total
	read -r busy total < <(awk '/^cpu / { t = 0; for (i = 2; i <= 9; i++) t += $i;
		print t - $5 - $6, t; exit }' /proc/stat)
	pm=$(cat "$AIF_HARNESS_DIR/pids/postgres")
	pg=$(ticks "$pm" with-children)
	for child in $(pgrep -P "$pm"); do pg=$((pg + $(ticks "$child"))); done
	echo "$busy $total $(ticks "$aifd_pid") $pg $(ticks "$(cat "$AIF_HARNESS_DIR/pids/munged")")" \
		"$(ticks "$(cat "$AIF_HARNESS_DIR/pids/slurmctld")" with-children)" \
		"$(($(ticks "$(cat "$AIF_HARNESS_DIR/pids/slurmd.n1")" with-children) +
			$(ticks "$(cat "$AIF_HARNESS_DIR/pids/slurmd.n2")" with-children)))"
}
hz=$(getconf CLK_TCK)

# cycle IDS: "RUN FREE", two medians over the jobs in file IDS, in ms, from slurmctld's log
# (median(), of IDS.run and IDS.free): RUN from a job's allocation to its end (the prolog, the
# admission, the job, the end of its batch step), FREE from the latest end before each
# allocation to that allocation (mostly the epilog of the job that freed the GPUs, then the
# scheduling pass its completion starts; when ends bunch up, the latest may be another job's,
# and FREE then counts less than the epilog). Unlike a phase's time, neither depends on how the
# jobs packed onto the nodes. "- -" when no job has both an allocation and an end in the log,
# "RUN -" when no allocation follows an end. (slurmctld logs local time: a run across a
# daylight-saving change skews one FREE.)
cycle() {
	# The jobs' allocations (A) and ends (E), "MS KIND JOB", in time order, an end before an
	# allocation of the same millisecond; then the two kinds of durations.
	rm -f "$1.run" "$1.free"
	awk -v allocated="$allocated_re" '
	function ms(ts,   p, y, m, a, day) { # "2026-12-06T10:46:26.035": ms, from a civil day number
		split(ts, p, /[-T:]/)
		a = p[2] <= 2; y = p[1] - a; m = p[2] + 12 * a - 3
		day = 365 * y + int(y / 4) - int(y / 100) + int(y / 400) + int((153 * m + 2) / 5) + p[3]
		return (day * 86400 + p[4] * 3600 + p[5] * 60 + p[6]) * 1000
	}
	FNR == NR { want[$1] = 1; next }
	match($0, /JobId=[0-9]+ /) {
		id = substr($0, RSTART + 6, RLENGTH - 7)
		if (!(id in want)) next
		if ($0 ~ allocated) printf "%.0f A %s\n", ms(substr($1, 2, 23)), id
		else if ($0 ~ /_job_complete: JobId=[0-9]+ done/) printf "%.0f E %s\n", ms(substr($1, 2, 23)), id
	}' "$1" "$AIF_HARNESS_DIR/slurm/log/slurmctld.log" | sort -k1,1g -k2,2r |
		awk -v run="$1.run" -v free="$1.free" '
		$2 == "A" && !($3 in al) { al[$3] = $1; if (last != "") print $1 - last >free }
		$2 == "E" { last = $1; if ($3 in al) print $1 - al[$3] >run }'
	if [[ ! -s $1.run ]]; then
		echo "- -"
	elif [[ ! -s $1.free ]]; then
		echo "$(median "$1.run") -"
	else
		echo "$(median "$1.run") $(median "$1.free")"
	fi
}

report() { # report WHAT IDS: the figures of the last run_jobs, whose ids are in IDS
	local ids=$2
	echo "$1: $jobs jobs in $(secs "$total_ms") = $(awk -v n="$jobs" -v ms="$total_ms" \
		'BEGIN { printf "%.2f", n * 1000 / ms }') jobs/s; submitting them took $(secs "$submit_ms")" \
		"($(awk -v n="$jobs" -v ms="$submit_ms" 'BEGIN { printf "%.1f", ms / n }') ms per sbatch;" \
		"each sbatch: median $(median "$ids.sbatch") ms, p90 $(p90 "$ids.sbatch") ms)," \
		"running them $(secs "$run_ms") (from the first allocation, $(secs "$wait_ms") after the release)"
	read -r cycle_run cycle_free < <(cycle "$ids")
	echo "  per job (slurmctld's log): allocation to end median $cycle_run ms, an end to the next" \
		"allocation median $cycle_free ms"
	awk -v hz="$hz" -v a="$cpu_before" -v b="$cpu_after" 'BEGIN {
		split(a, x); split(b, y); for (i = 1; i <= 7; i++) d[i] = (y[i] - x[i]) / hz
		printf "  CPU, core-seconds: machine busy %.1f of %.1f (every user);", d[1], d[2]
		printf " aifd %.2f, PostgreSQL %.2f, munged %.2f,", d[3], d[4], d[5]
		printf " slurmctld %.2f, slurmd with prolog", d[6]
		printf " and epilog %.2f; the rest (slurmstepd, jobs, sbatch, squeue, others) %.1f\n", d[7],
			d[1] - d[3] - d[4] - d[5] - d[6] - d[7] }'
}

# The proof that aif did the work for the jobs in file $1: one admission per job and one
# interval per job and node, closed by its epilog. aifd
# closes an interval once slurmctld gave it the job's times, in rounds at most a second apart
# (docs/aifd.md, Exact times), so the last ones close a little after squeue lists no job: up
# to 30 s are waited for, not counted in the phase's time, and printed.
check_recorded() {
	local ids want_intervals got admitted closed open all t0 lag
	ids="{$(paste -sd, "$1")}"
	want_intervals=$((jobs * job_nodes))
	t0=$(now_ms)
	while :; do
		got=$(q -F ' ' -v ids="$ids" -v cluster="$AIF_TEST_CLUSTER" <<-'SQL'
			SELECT (SELECT count(*) FROM aif.admissions WHERE cluster = :'cluster'
			          AND job_id = ANY (:'ids'::bigint[]) AND verdict = 'ok' AND project_id = 'bench'),
			       count(*) FILTER (WHERE ended_at IS NOT NULL AND end_source = 'epilog' AND gpus = 1
			          AND project_id = 'bench'),
			       count(*) FILTER (WHERE ended_at IS NULL), count(*)
			FROM aif.usage_intervals WHERE cluster = :'cluster' AND job_id = ANY (:'ids'::bigint[])
		SQL
		)
		read -r admitted closed open all <<<"$got"
		lag=$(($(now_ms) - t0))
		((closed < want_intervals && lag < 30000)) || break
		sleep 0.1
	done
	echo "  aifd recorded: $admitted admissions ($jobs expected), $closed intervals closed by" \
		"their epilog ($want_intervals expected: one per job and node; all closed within $(secs "$lag")" \
		"of squeue listing no job), $open open, $all in all"
	[[ $admitted == "$jobs" && $closed == "$want_intervals" && $all == "$want_intervals" ]] ||
		fail "aifd did not record every job: see above; aifd log: $(grep -E 'ERROR|WARNING' "$log" | tail -n 5);" \
			"spool: $(find "$work/spool" -maxdepth 1 -type f -name '*.usage' -printf '%f ' 2>&1 | head -c 300)"
}

check_unrecorded() { # the jobs in file $1 ran without aif: aifd knows none of them
	local n
	n=$(q -v ids="{$(paste -sd, "$1")}" <<<"SELECT count(*) FROM aif.usage_intervals
		WHERE job_id = ANY (:'ids'::bigint[])")
	[[ $n == 0 ]] || fail "aif recorded $n intervals of jobs run without it"
}

per_job() { awk -v n="$jobs" -v ms="$1" 'BEGIN { printf "%.1f", ms / n }'; }

# Warm-up, not counted: caches, slurmctld's first scheduling passes, aifd's connections.
plugstack aif
run_jobs 20 "$work/warmup.ids" --aif-project=$project
plugstack none
run_jobs "$jobs" "$work/none.ids"
report "without aif, nothing in plugstack.conf (for information)" "$work/none.ids"
check_unrecorded "$work/none.ids"
none_ms=$total_ms
declare -A name=([base]="baseline, no-op epilog        " [floor]="floor, no-op prolog and epilog"
	[aif]="with aif                      ") total=([base]=0 [floor]=0 [aif]=0) best=() ms=() \
	cycle_runs=() cycle_frees=()
# phase base|floor|aif ROUND: one timed phase, added to total[] and best[]
phase() {
	local args=()
	[[ $1 != aif ]] || args=("--aif-project=$project")
	plugstack "$1"
	run_jobs "$jobs" "$work/$1.$2.ids" "${args[@]}"
	report "round $2, ${name[$1]}" "$work/$1.$2.ids"
	if [[ $1 == aif ]]; then check_recorded "$work/$1.$2.ids"; else check_unrecorded "$work/$1.$2.ids"; fi
	ms[$1]=$total_ms
	# a phase without both figures is left out of their summary
	[[ $cycle_free == - ]] || cycle_runs[$1]+=" $cycle_run" cycle_frees[$1]+=" $cycle_free"
	total[$1]=$((total[$1] + total_ms))
	((${best[$1]:-0} && best[$1] <= total_ms)) || best[$1]=$total_ms
}
per_round=() per_round_own=() per_round_prolog=() per_round_added=() per_round_added_prolog=()
for ((round = 1; round <= rounds; round++)); do
	# Each first, second and third in turn: slurmctld keeps every ended job (MinJobAge),
	# and a later phase has more of them to go through.
	case $((round % 3)) in
	1) phase base $round; phase floor $round; phase aif $round ;;
	2) phase aif $round; phase base $round; phase floor $round ;;
	0) phase floor $round; phase aif $round; phase base $round ;;
	esac
	per_round+=("$(ratio "${ms[base]}" "${ms[aif]}")")
	per_round_own+=("$(ratio "${ms[floor]}" "${ms[aif]}")")
	per_round_prolog+=("$(ratio "${ms[base]}" "${ms[floor]}")")
	per_round_added+=("$(per_job $((ms[aif] - ms[base])))")
	per_round_added_prolog+=("$(per_job $((ms[floor] - ms[base])))")
done
# spread RATIO...: "median M (min A, max B)" of per-round ratios
spread() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
	printf "median %.3f (min %.3f, max %.3f)", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2,
		v[1], v[NR] }'; }
median_of() { spread "$@" | awk '{ print $2 }'; }
# The headline is the median of the rounds' ratios, each round's phases run back to back (a
# slow moment of the machine slows all three); min and max say how far a round strays.
r=$(median_of "${per_round[@]}")
echo "ratio, baseline time / time with aif, per round: $(spread "${per_round[@]}") over $rounds rounds" \
	"(goal >= 0.95: $(goal "$r")); rounds: ${per_round[*]}; best of each $(ratio "${best[base]}" "${best[aif]}")," \
	"over the sums $(ratio "${total[base]}" "${total[aif]}")"
r=$(median_of "${per_round_own[@]}")
echo "aif's own share, time with a no-op prolog and epilog / time with aif, per round:" \
	"$(spread "${per_round_own[@]}") (goal >= 0.98: $(awk -v v="$r" 'BEGIN { printf "%s", v >= 0.98 ? "met" : "MISSED" }'))"
echo "floor, baseline time / time with a no-op prolog and epilog, per round:" \
	"$(spread "${per_round_prolog[@]}") (what any plugin with a job_prolog costs: slurmd runs" \
	"'slurmstepd spank prolog' on each node before the job starts)"
sb_base=$(median "$work"/base.*.ids.sbatch) sb_aif=$(median "$work"/aif.*.ids.sbatch)
sb_more=$(awk -v a="$sb_aif" -v b="$sb_base" 'BEGIN { printf "%.2f", a - b }')
echo "sbatch, median over $((rounds * jobs)) submissions each: $sb_aif ms with aif, $sb_base ms" \
	"baseline, $(median "$work"/floor.*.ids.sbatch) ms floor: aif adds $sb_more ms (goal <= 2 ms:" \
	"$(awk -v v="$sb_more" 'BEGIN { printf "%s", v <= 2 ? "met" : "MISSED" }')); p90 $(p90 "$work"/aif.*.ids.sbatch)" \
	"ms with aif, $(p90 "$work"/base.*.ids.sbatch) ms baseline"
echo "wall time aif adds per job, per round: $(spread "${per_round_added[@]}") ms; of it the prolog's" \
	"own process (floor less baseline): $(spread "${per_round_added_prolog[@]}") ms; rounds:" \
	"${per_round_added[*]}; best of each $(per_job $((best[aif] - best[base]))) ms," \
	"$(per_job $((best[floor] - best[base]))) ms"
# The same per job, from slurmctld's log: the medians of the rounds' medians (cycle()).
declare -A cyc_run=() cyc_free=()
[[ -n ${cycle_frees[base]:-} && -n ${cycle_frees[floor]:-} && -n ${cycle_frees[aif]:-} ]] ||
	cycle_frees=() # slurmctld's log had not the lines: nothing to print
for p in "${!cycle_frees[@]}"; do
	# shellcheck disable=SC2086 # the lists split on purpose
	cyc_run[$p]=$(printf '%.1f' "$(median_of ${cycle_runs[$p]})")
	# shellcheck disable=SC2086
	cyc_free[$p]=$(printf '%.1f' "$(median_of ${cycle_frees[$p]})")
done
((${#cyc_run[@]} == 0)) ||
	echo "per job, from slurmctld's log, medians of the rounds: allocation to end: baseline ${cyc_run[base]}," \
	"floor ${cyc_run[floor]}, with aif ${cyc_run[aif]} ms; an end to the next allocation: baseline" \
	"${cyc_free[base]}, floor ${cyc_free[floor]}, with aif ${cyc_free[aif]} ms; so aif adds" \
	"$(awk -v a="${cyc_run[aif]}" -v b="${cyc_free[aif]}" -v c="${cyc_run[floor]}" -v d="${cyc_free[floor]}" \
		'BEGIN { printf "%.1f ms to the cycle of the floor (floor / aif: %.3f)", a + b - c - d, (c + d) / (a + b) }')," \
	"aif's own cost per job, whatever the packing (for information)"
echo "for information, time with nothing in plugstack.conf / time with aif:" \
	"$(ratio "$none_ms" "${best[aif]}") (Slurm's deferred scheduling without any epilog)"
echo "aifd log: $(grep -c 'ERROR:' "$log" || true) errors, $(grep -c 'WARNING:' "$log" || true) warnings;" \
	"slurmd logs: $(cat "$AIF_HARNESS_DIR"/slurm/log/slurmd.*.log | grep -c 'error: aif' || true) aif errors;" \
	"spool: $(find "$work/spool" -maxdepth 1 -type f -name '*.usage' 2>/dev/null | wc -l) records left"
echo "total: $(($(date +%s) - bench_start)) s"
