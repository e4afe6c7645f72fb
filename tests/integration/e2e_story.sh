#!/usr/bin/env bash
# The whole story, end to end, on a two-node cluster of the test's own (emulated GPUs, real
# PostgreSQL, munged, slurmctld and slurmd, aif.so in plugstack.conf, aifd as SlurmUser):
#   1. an operator applies a budgets file (aifctl plan, then apply) as a login role of aif_operator;
#   2. three ordinary users submit GPU jobs to projects of two AI Factories and several sectors:
#      multi-node, single-node and an array;
#   3. per job, aif's intervals are exactly Slurm's (one per node, its GPUs, StartTime and
#      EndTime to the second, exact); per project and sector aif_report.usage_daily, per project
#      and factory aif_report.budget_status, agree with the GPU-seconds Slurm's numbers give;
#   4. a project with on_exhausted: deny runs out: its running job finishes COMPLETED, the next
#      sbatch is refused with the reason; a project with on_exhausted: cancel runs out: aifd
#      cancels its running job;
#   5. a funder's login role reads the reports (the same figures) and not the user names;
#   6. aifd is killed with SIGKILL while jobs run, start and end (their usage waits in the
#      nodes' spool), and PostgreSQL restarts under running jobs: the totals are still exact;
#   7. a node crashes under a two-node job (slurmd killed, the node set down): reconciliation
#      closes that node's interval at Slurm's EndTime.
# The checks of 3 run again after 4, 6 and 7, against what Slurm reported for every job, and
# against Slurm's own accounting: the cluster runs slurmdbd with MariaDB, as sites do
# (AccountingStorageTRES=gres/gpu), and aif's GPU-seconds per job are sacct's.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
t0=$SECONDS
AIF_SLURMDBD=1 plugin_cluster_start timeout=2s
cluster=$AIF_TEST_CLUSTER
chapter() { printf '\n== %s  [%d s]\n' "$*" $((SECONDS - t0)); }

jobs_file=$AIFD_WORK/story.jobs # JOB PROJECT SECTOR, as submitted (an array: its id)
facts=$AIFD_WORK/slurm.facts    # what Slurm says of each ended job (array tasks one by one)
: >"$jobs_file"
: >"$facts"
install -m 755 "$AIF_BUILD_DIR/aifctl/aifctl" "$AIFD_WORK/aifctl" # the build dir may be private
# aifctl's config on a node: aifd's socket, for users' "aifctl projects" and root's spool flush.
printf 'server = %s\ncluster = %s\nmunge_socket = %s\nspool_dir = %s\n' "$AIFD_WORK/run/a.sock" \
	"$cluster" "$AIF_MUNGE_SOCKET" "$AIFD_WORK/spool" >"$AIFD_WORK/aifctl.conf"
chmod 644 "$AIFD_WORK/aifctl.conf"

q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$AIFD_DB" "$@"; }
conninfo_of() { echo "${AIFD_CONNINFO/user=postgres/user=$1}"; } # a login role's, on the story's db
# aifd "a" as SlurmUser, reconciling with slurmctld every second, on its Unix socket only.
story_aifd_start() {
	aifd_start a "cluster = $cluster" "user = $AIF_TEST_SLURM_USER" "slurm_user = $AIF_TEST_SLURM_USER" \
		"reconcile_interval = 1s" "listen = none"
}

# ---- jobs, and what Slurm says of them ----

# submit USER PROJECT SECTOR SBATCH-ARG...: USER's job; prints its id and remembers it with
# the project and sector asked for.
submit() {
	local user=$1 project=$2 sector=$3 id
	shift 3
	id=$(as_user "$user" sbatch --parsable -o /dev/null --aif-project="$project" --aif-sector="$sector" \
		"$@" 2>"$AIFD_WORK/sbatch.err") || fail "sbatch as $user to $project: $(cat "$AIFD_WORK/sbatch.err")"
	[[ $id =~ ^[0-9]+$ ]] || fail "sbatch as $user to $project did not return a job id: '$id'"
	echo "$id $project $sector" >>"$jobs_file"
	echo "$id"
}
kv() { grep -o " $2=[^ ]*" <<<" $1" | head -n 1 | cut -d= -f2-; } # kv LINE KEY: scontrol -o's value
epoch() { date -d "$1" +%s; } # scontrol prints local time: date reads it in the same zone
job_line() { scontrol -o -d show job "$1" | grep "^JobId=$1 "; } # an array's id shows all its tasks
wait_running() { # wait_running JOB...
	local j deadline=$((SECONDS + 60))
	for j in "$@"; do
		until [[ $(kv "$(job_line "$j")" JobState) == RUNNING ]]; do
			((SECONDS < deadline)) || fail "job $j did not start: $(squeue -j "$j" 2>&1)"
			sleep 0.2
		done
	done
}
# settle JOB [SECONDS]: once JOB (every task, for an array) has ended, its facts as Slurm reports
# them, one line per job or task in $facts: JOB PROJECT SECTOR STATE NODES GPUS-PER-NODE START
# END NODELIST; GPUs per node from TresPerNode, checked against Slurm's total (JOB_GRES).
settle() {
	local id=$1 secs=${2:-90} project sector deadline line job state nn tpn gpn total start end nodes
	read -r _ project sector < <(grep "^$id " "$jobs_file")
	deadline=$((SECONDS + secs))
	while [[ -n $(squeue -h -j "$id" 2>/dev/null) ]]; do # array tasks get their ids as they start
		((SECONDS < deadline)) || fail "job $id did not end within $secs s: $(squeue -j "$id")"
		sleep 0.3
	done
	while read -r job; do
		state=$(wait_job "$job" 30) || exit 1
		line=$(job_line "$job")
		nn=$(kv "$line" NumNodes) tpn=$(kv "$line" TresPerNode) total=$(kv "$line" JOB_GRES)
		# 22.05 spells it gres:gpu:N, 24.11 and later gres/gpu:N (docs/slurm.md).
		[[ $tpn =~ ^gres[:/]gpu:([0-9]+)$ ]] || fail "job $job: TresPerNode '$tpn' is not gres:gpu:N or gres/gpu:N"
		gpn=${BASH_REMATCH[1]}
		assert_eq "gpu:$((nn * gpn))" "$total" "job $job: Slurm's GPUs in all (JOB_GRES), $nn nodes x $gpn"
		assert_eq 0 "$(kv "$line" Restarts)" "job $job: restarts"
		start=$(epoch "$(kv "$line" StartTime)") end=$(epoch "$(kv "$line" EndTime)")
		nodes=$(scontrol show hostnames "$(kv "$line" NodeList)" | sort | paste -sd,)
		echo "$job $project $sector $state $nn $gpn $start $end $nodes" >>"$facts"
		echo "$job $state"
	done < <(scontrol -o show job "$id" | grep -E "^JobId=$id |ArrayJobId=$id " | sed 's/^JobId=\([0-9]*\) .*/\1/')
}
fact() { awk -v j="$1" '$1 == j' "$facts"; } # fact JOB: its line in $facts

# ---- the checks, against Slurm's facts ----

# wait_accounted: until aif holds a closed interval per node of every job in $facts, no other.
wait_accounted() {
	local want got deadline=$((SECONDS + 30))
	want=$(awk '{ n += $5 } END { print n + 0 }' "$facts")
	until got=$(q -c "SELECT count(*) FILTER (WHERE ended_at IS NOT NULL) || ' ' || count(*)
			FROM aif.usage_intervals WHERE cluster = '$cluster'") && [[ $got == "$want $want" ]]; do
		((SECONDS < deadline)) || fail "aif holds $got (closed, all) intervals; Slurm's jobs ran on $want nodes"
		sleep 0.2
	done
}
# check_intervals: every job in $facts has one interval per node of its, with Slurm's GPUs per
# node, its StartTime and EndTime (whole seconds, to the microsecond in aif), exact, and the
# project and sector it was submitted to; no other job has usage.
check_intervals() {
	local job project sector state nn gpn start end nodes want got n=0
	while read -r job project sector state nn gpn start end nodes; do
		want=$(tr , '\n' <<<"$nodes" | sed "s/\$/|0|$gpn|$start|$end|t|$project|$sector/")
		got=$(q -c "SELECT node, restart_count, gpus, trim_scale(extract(epoch FROM started_at)),
			trim_scale(extract(epoch FROM ended_at)), exact, project_id, sector_id
			FROM aif.usage_intervals WHERE cluster = '$cluster' AND job_id = $job ORDER BY node")
		assert_eq "$want" "$got" "job $job ($state): its intervals (node|restart|gpus|start|end|exact|project|sector), against Slurm's"
		n=$((n + 1))
	done <"$facts"
	assert_eq "$n" "$(q -c "SELECT count(DISTINCT job_id) FROM aif.usage_intervals WHERE cluster = '$cluster'")" \
		"jobs with usage in aif"
	echo "  $n jobs: aif's intervals are Slurm's nodes, GPUs, StartTime and EndTime, all exact"
}
utc_days() { # utc_days START END: how many UTC days [START, END) overlaps by a positive duration
	if (($2 > $1)); then echo $((($2 - 1) / 86400 - $1 / 86400 + 1)); else echo 0; fi
}
# slurm_totals: per project and sector "project|sector|GPU-seconds|job-days" from $facts (rows
# with usage only); per project "P project|GPU-seconds", per factory "F factory|GPU-seconds"
# for every project and factory of the budgets file.
slurm_totals() {
	local -A ps=() days=() pj=() fa=()
	local job project sector state nn gpn start end nodes gs k
	while read -r job project sector state nn gpn start end nodes; do
		gs=$((nn * gpn * (end - start)))
		k="$project|$sector"
		ps[$k]=$((${ps[$k]:-0} + gs)) days[$k]=$((${days[$k]:-0} + $(utc_days "$start" "$end")))
		pj[$project]=$((${pj[$project]:-0} + gs))
		fa[${FACTORY_OF[$project]}]=$((${fa[${FACTORY_OF[$project]}]:-0} + gs))
	done <"$facts"
	for k in "${!ps[@]}"; do ((ps[$k] == 0)) || echo "$k|${ps[$k]}|${days[$k]}"; done | LC_ALL=C sort
	for k in "${!FACTORY_OF[@]}"; do echo "P $k|${pj[$k]:-0}"; done | LC_ALL=C sort
	for k in $(printf '%s\n' "${FACTORY_OF[@]}" | sort -u); do echo "F $k|${fa[$k]:-0}"; done
}
# aif_totals CONNINFO: the same from aif_report, read through CONNINFO: usage_daily summed over
# days (GPU-hours x 3600, rounded to the second: the views keep 6 decimals of an hour, 3.6 ms)
# and budget_status's used GPU-hours in period cur.
aif_totals() {
	psql -X -q -At -v ON_ERROR_STOP=1 "$1" <<SQL
SELECT project || '|' || sector || '|' || round(sum(gpu_hours) * 3600) || '|' || sum(jobs)
FROM aif_report.usage_daily WHERE cluster = '$cluster' GROUP BY project, sector ORDER BY project COLLATE "C", sector COLLATE "C";
SELECT 'P ' || project || '|' || round(used_gpu_hours * 3600)
FROM aif_report.budget_status WHERE period = 'cur' AND project IS NOT NULL ORDER BY project COLLATE "C";
SELECT 'F ' || factory || '|' || round(used_gpu_hours * 3600)
FROM aif_report.budget_status WHERE period = 'cur' AND project IS NULL ORDER BY factory COLLATE "C";
SQL
}
check_reports() { # check_reports CONNINFO WHO: aif_report's totals, read as WHO, are Slurm's
	assert_eq "$(slurm_totals)" "$(aif_totals "$1")" \
		"aif_report read as $2 (project|sector|GPU-seconds|job-days; P project, F factory|GPU-seconds) against Slurm's"
	echo "  aif_report.usage_daily and budget_status, read as $2: Slurm's GPU-seconds per project, sector and factory"
}
wait_closed() { # wait_closed JOB: until JOB's intervals are all closed (20 s)
	local deadline=$((SECONDS + 20))
	until [[ $(q -c "SELECT count(*) FILTER (WHERE ended_at IS NULL) || ' ' || (count(*) > 0)
			FROM aif.usage_intervals WHERE cluster = '$cluster' AND job_id = $1") == "0 true" ]]; do
		((SECONDS < deadline)) || fail "job $1's intervals were not closed within 20 s"
		sleep 0.2
	done
}
# check_sacct: per job, aif's GPU-seconds (its intervals) are what slurmdbd recorded: sacct's
# allocated gres/gpu x (End - Start). slurmctld sends a job's end to slurmdbd shortly after it:
# wait for it (20 s).
check_sacct() {
	local ids want got deadline=$((SECONDS + 20))
	ids=$(awk '{ print $1 }' "$facts" | paste -sd,)
	got=$(q -c "SELECT job_id || '|' || round(sum(gpus * extract(epoch FROM ended_at - started_at)))
		FROM aif.usage_intervals WHERE cluster = '$cluster' GROUP BY job_id" | LC_ALL=C sort)
	until want=$(SLURM_TIME_FORMAT=%s sacct -X -n -P -a -j "$ids" -o JobIDRaw,Start,End,AllocTRES |
		awk -F'|' '{ g = 0; n = split($4, t, ",")
			for (i = 1; i <= n; i++) if (t[i] ~ /^gres\/gpu=/) g = substr(t[i], 10)
			print $1 "|" g * ($3 - $2) }' | LC_ALL=C sort) && [[ $want == "$got" ]]; do
		((SECONDS < deadline)) || assert_eq "$want" "$got" "per job, sacct's GPU-seconds (job|GPU-s) against aif's"
		sleep 0.5
	done
	echo "  $(wc -l <<<"$got") jobs: aif's GPU-seconds are sacct's (slurmdbd), job by job"
}
check_story() { wait_accounted && check_intervals && check_reports "$AIFD_CONNINFO" postgres && check_sacct; }

# people_hours SECONDS: GPU-seconds as aifd's messages show GPU-hours: 2 decimals at most,
# rounded down, no trailing zeros (daemon/budgets/decide.c, hours()).
people_hours() {
	local c=$(($1 / 36))
	printf '%d.%02d\n' $((c / 100)) $((c % 100)) | sed -e 's/0*$//' -e 's/\.$//'
}
# refused USER PROJECT: an sbatch to PROJECT that aif refuses at submission; prints aif's lines
refused() {
	local rc=0 out
	out=$(as_user "$1" sbatch --parsable -o /dev/null --aif-project="$2" -N1 --gpus-per-node=1 --wrap true 2>&1) || rc=$?
	assert_eq 1 "$rc" "sbatch as $1 to $2: exit status (output: $out)"
	! grep -Eq '^[0-9]+$' <<<"$out" || fail "sbatch as $1 to $2 submitted a job: $out"
	grep -E '^sbatch: (error: aif: |DETAIL: |HINT: )' <<<"$out"
}

# ===========================================================================================
chapter "1. The operator applies the budgets file: aifctl plan, then aifctl apply"
# Two AI Factories on this cluster; aiftest works in two projects, one in each factory.
declare -A FACTORY_OF=([genomics]=ai2f [tiny-deny]=ai2f [llm]=jaif [grid]=jaif [tiny-cancel]=jaif)
budgets=$AIFD_WORK/budgets.yaml
{ budgets_head health life-sciences language energy; cat; } >"$budgets" <<YAML
factories:
  - id: ai2f
    clusters: [$cluster]
    budgets: {cur: 100}
    projects:
      - id: genomics
        sectors: [health, life-sciences]
        budgets: {cur: 40}
        members: {users: [aiftest]}
      - id: tiny-deny                     # 0.01 GPU-hours: 36 GPU-seconds
        sectors: [health]
        budgets: {cur: 0.01}
        on_exhausted: deny
        members: {users: [aiftest2]}
  - id: jaif
    clusters: [$cluster]
    budgets: {cur: 100}
    projects:
      - id: llm
        sectors: [language, health]
        budgets: {cur: 40}
        members: {users: [aiftest, aiftest2]}
      - id: grid
        sectors: [energy]
        budgets: {cur: 40}
        members: {users: [aiftest3]}
      - id: tiny-cancel
        sectors: [energy]
        budgets: {cur: 0.01}
        on_exhausted: cancel
        grace: 0
        members: {users: [aiftest3]}
YAML
operator=e2e_operator
psql -X -q -d postgres -c "CREATE ROLE $operator LOGIN IN ROLE aif_operator"
op_aifctl() { "$AIFD_WORK/aifctl" --db "$(conninfo_of "$operator")" "$@"; }
plan=$(op_aifctl --format csv plan "$budgets")
assert_eq "add,project,genomics add,project,grid add,project,llm add,project,tiny-cancel add,project,tiny-deny" \
	"$(grep -E '^[a-z]+,project,' <<<"$plan" | cut -d, -f1-3 | LC_ALL=C sort | paste -sd' ')" "plan: the projects"
assert_eq "genomics/user:aiftest grid/user:aiftest3 llm/user:aiftest llm/user:aiftest2 tiny-cancel/user:aiftest3 tiny-deny/user:aiftest2" \
	"$(grep '^add,project-member,' <<<"$plan" | cut -d, -f3 | LC_ALL=C sort | paste -sd' ')" "plan: the members"
assert_eq "" "$(grep -v '^action,' <<<"$plan" | grep -v '^add,' || true)" "plan: anything but additions"
op_aifctl apply "$budgets" >/dev/null
assert_eq "No changes: the database already matches $budgets." "$(op_aifctl plan "$budgets")" "plan after apply"
assert_eq "$(id -un) $operator" "$(q -F ' ' -c 'SELECT applied_by, db_user FROM aif.apply_log')" "the apply's audit log"
echo "  applied by $operator: $(grep -c '^add,' <<<"$plan") additions, $(grep -c ',project,' <<<"$plan") projects"
story_aifd_start

# ===========================================================================================
chapter "2. Users submit GPU jobs: multi-node, single-node, an array; several projects and sectors"
j_gen=$(submit aiftest genomics health -N2 --gpus-per-node=2 --wrap 'sleep 4')
j_gen_ls=$(submit aiftest genomics life-sciences -N1 --gpus-per-node=1 --wrap 'sleep 2')
j_llm=$(submit aiftest2 llm language -N2 --gpus-per-node=1 --wrap 'sleep 3')
j_llm_h=$(submit aiftest llm health -N1 --gpus-per-node=3 --wrap 'sleep 2')
j_grid=$(submit aiftest3 grid energy -N1 --gpus-per-node=1 --array=1-3 --wrap 'sleep 2')
echo "  jobs $j_gen (aiftest, genomics/health, 2 nodes x 2 GPUs), $j_gen_ls (genomics/life-sciences)," \
	"$j_llm (aiftest2, llm/language, 2 nodes x 1), $j_llm_h (aiftest, llm/health, 3 GPUs), array $j_grid (aiftest3, grid/energy)"
for j in "$j_gen" "$j_gen_ls" "$j_llm" "$j_llm_h" "$j_grid"; do
	settle "$j" | while read -r task state; do
		assert_eq COMPLETED "$state" "job $task"
	done
done
assert_eq 7 "$(wc -l <"$facts")" "jobs and array tasks that ran"

# ===========================================================================================
chapter "3. aif's usage is Slurm's, per job to the second, per project, sector and factory"
check_story
# Each job was admitted at its start, for the project and sector it asked for.
while read -r job project sector _; do
	assert_match "^(ok|warn)\|$project\|$sector$" \
		"$(q -c "SELECT verdict, project_id, sector_id FROM aif.admissions WHERE cluster = '$cluster' AND job_id = $job")" \
		"job $job's admission"
done <"$facts"

# ===========================================================================================
chapter "4. Budgets run out: deny lets the running job finish and refuses the next; cancel cancels"
# Each project has 36 GPU-seconds; each job holds 4 GPUs, so crosses its budget after 9 s.
j_deny=$(submit aiftest2 tiny-deny health -N1 --gpus-per-node=4 --wrap 'sleep 20')
j_cancel=$(submit aiftest3 tiny-cancel energy -N1 --gpus-per-node=4 --wrap 'sleep 300')
wait_running "$j_deny" "$j_cancel"
deny_start=$(epoch "$(kv "$(job_line "$j_deny")" StartTime)")
while (($(date +%s) < deny_start + 36 / 4 + 1)); do sleep 0.2; done # by Slurm's clock, over budget
refusal='sbatch: error: aif: project "tiny-deny" has used all its GPU-hours for period cur'
hint='sbatch: HINT:  Ask your AI Factory (ai2f) for more GPU-hours, or use another project.'
out=$(refused aiftest2 tiny-deny)
assert_eq "$refusal" "$(sed -n 1p <<<"$out")" "the refusal while tiny-deny's job runs"
assert_match '^sbatch: DETAIL:  Used [0-9.]+ of 0\.01 charged GPU-hours\.$' "$(sed -n 2p <<<"$out")" \
	"the refusal's detail while tiny-deny's job runs"
assert_eq "$hint" "$(sed -n '3,$p' <<<"$out")" "the refusal's hint while tiny-deny's job runs"
assert_eq RUNNING "$(kv "$(job_line "$j_deny")" JobState)" "tiny-deny's job, over its budget (deny)"
echo "  tiny-deny over its budget: its job $j_deny runs on, the next sbatch is refused"

settle "$j_deny" >/dev/null
read -r _ _ _ state nn gpn start end _ < <(fact "$j_deny")
assert_eq COMPLETED "$state" "tiny-deny's job under deny"
((end - start >= 20)) || fail "tiny-deny's job ran $((end - start)) s, not its 20 s"
assert_eq 0 "$(q -c "SELECT count(*) FROM aif.cancellations WHERE job_id = $j_deny")" "cancellations of the deny job"
wait_closed "$j_deny" # for the exact figure below
deny_used=$((nn * gpn * (end - start)))
assert_eq "$refusal
sbatch: DETAIL:  Used $(people_hours "$deny_used") of 0.01 charged GPU-hours.
$hint" "$(refused aiftest2 tiny-deny)" "the refusal once tiny-deny's job ended ($deny_used GPU-seconds)"
echo "  job $j_deny COMPLETED after $((end - start)) s ($deny_used GPU-seconds of 36); then sbatch:"
refused aiftest2 tiny-deny | sed 's/^/    /'
# What the user sees with aifctl projects: the project exhausted, Slurm's usage (aifd sends
# GPU-hours with 2 decimals).
row=$(as_user aiftest2 "$AIFD_WORK/aifctl" -c "$AIFD_WORK/aifctl.conf" --format csv projects | grep ',tiny-deny,')
IFS=, read -r _ _ _ _ used _ pstate _ <<<"$row"
assert_eq "exhausted $(awk -v s="$deny_used" 'BEGIN { printf "%.2f", s / 3600 }')" "$pstate $used" \
	"aifctl projects as aiftest2: tiny-deny's state and used GPU-hours (2 decimals: $row)"

assert_eq CANCELLED "$(settle "$j_cancel" 60 | cut -d' ' -f2)" "tiny-cancel's job under cancel"
read -r _ _ _ _ nn gpn start end _ < <(fact "$j_cancel")
IFS='|' read -r outcome scope reason requested grace < <(q -c "SELECT outcome, scope, reason,
	extract(epoch FROM requested_at), extract(epoch FROM not_before - requested_at)
	FROM aif.cancellations WHERE cluster = '$cluster' AND job_id = $j_cancel")
assert_eq "cancelled project 0" "$outcome $scope ${grace%%.*}" "job $j_cancel's cancellation: outcome, scope, grace"
assert_match '^project tiny-cancel used [0-9.]+ of its 0.01 charged GPU-hours in period cur$' "$reason" "the cancellation's reason"
# Not before the budget was used up (4 GPUs for 9 s from Slurm's StartTime), and soon after.
awk -v r="$requested" -v s="$start" 'BEGIN { exit !(r >= s + 9 && r <= s + 30) }' ||
	fail "job $j_cancel's cancellation requested at $requested, started at $start: not within 9 to 30 s"
aifd_wait_log a "INFO:  cancelled job $j_cancel of project \"tiny-cancel\"" "the cancellation in aifd's log"
echo "  job $j_cancel of tiny-cancel cancelled after $((end - start)) s: $reason"
assert_eq "exhausted exhausted" "$(q -c "SELECT string_agg(state, ' ' ORDER BY project) FROM aif_report.budget_status
	WHERE period = 'cur' AND project IN ('tiny-deny', 'tiny-cancel')")" "the two small budgets' state"
check_story

# ===========================================================================================
chapter "5. A funder reads the reports, and no user names"
funder=e2e_funder
psql -X -q -d postgres -c "CREATE ROLE $funder LOGIN IN ROLE aif_funder"
as_funder() { psql -X -q -At -v ON_ERROR_STOP=1 "$(conninfo_of "$funder")" "$@"; }
check_reports "$(conninfo_of "$funder")" "$funder (aif_funder)"
rc=0
err=$(as_funder -c "SELECT user_name FROM aif.usage_intervals" 2>&1) || rc=$?
assert_eq 1 "$rc" "the funder reading aif.usage_intervals: exit status ($err)"
assert_match 'permission denied for schema aif' "$err" "the funder reading aif.usage_intervals"
assert_eq "" "$(as_funder -c "SELECT table_name || '.' || column_name FROM information_schema.columns
	WHERE table_schema = 'aif_report' AND column_name ~* '(user|uid|member|login|owner)'")" \
	"columns of aif_report that may hold users"
views=$(as_funder -c "SELECT table_name FROM information_schema.views WHERE table_schema = 'aif_report' ORDER BY 1")
[[ -n $views ]] || fail "the funder sees no aif_report view"
# No value names a user either (the cluster is named like a test user: its columns aside).
names=$(tr ' ' '|' <<<"$AIF_TEST_USERS|$operator")
for v in $views; do
	assert_eq "" "$(as_funder -c "SELECT t FROM aif_report.$v t
		WHERE (to_jsonb(t) - 'cluster' - 'clusters')::text ~ '\\m($names)\\M'")" "rows of aif_report.$v naming a user"
done
echo "  $funder reads $(wc -w <<<"$views") views of aif_report, with the story's figures; not aif, no user names"

# ===========================================================================================
chapter "6. Chaos: aifd killed with SIGKILL while jobs run, PostgreSQL restarted under jobs"
j_k1=$(submit aiftest genomics health -N2 --gpus-per-node=1 --wrap 'sleep 6')
wait_running "$j_k1"
deadline=$((SECONDS + 20))
until [[ $(q -c "SELECT count(*) FROM aif.usage_intervals WHERE job_id = $j_k1 AND ended_at IS NULL") == 2 ]]; do
	((SECONDS < deadline)) || fail "job $j_k1's starts did not reach aifd"
	sleep 0.2
done
kill -KILL "$AIFD_PID_a"
wait "$AIFD_PID_a" 2>/dev/null || true
echo "  aifd (pid $AIFD_PID_a) killed with SIGKILL while job $j_k1 runs on both nodes"
# Jobs run on: a job is submitted (unchecked, with a warning), starts and ends while aifd is
# away; its user has two projects, so its records must carry the one asked for. The first ends
# meanwhile.
j_k2=$(submit aiftest2 llm language -N1 --gpus-per-node=2 --wrap 'sleep 2')
assert_match "could not connect to aifd" "$(cat "$AIFD_WORK/sbatch.err")" "sbatch's warning while aifd is down"
settle "$j_k1" >/dev/null
settle "$j_k2" >/dev/null
k2_node=$(fact "$j_k2" | cut -d' ' -f9)
spooled() { find "$AIFD_WORK/spool" -maxdepth 1 -type f -name '*.usage' -printf '%f\n' | LC_ALL=C sort | paste -sd' '; }
assert_eq "$cluster.$j_k1.0.n1.end.usage $cluster.$j_k1.0.n2.end.usage $cluster.$j_k2.0.$k2_node.end.usage $cluster.$j_k2.0.$k2_node.start.usage" \
	"$(spooled)" "the nodes' spool while aifd is down"
echo "  jobs $j_k1 and $j_k2 ended with aifd down; the nodes spooled: $(spooled)"
story_aifd_start
assert_eq "$AIFD_WORK/spool: 4 usage records sent, 0 moved to bad/, 0 left" \
	"$("$AIFD_WORK/aifctl" -c "$AIFD_WORK/aifctl.conf" spool flush)" "aifctl spool flush, as the node's timer runs it"
# PostgreSQL restarts under a running two-node job; another job starts right after.
j_k3=$(submit aiftest3 grid energy -N2 --gpus-per-node=1 --wrap 'sleep 4')
wait_running "$j_k3"
AIF_HARNESS_QUIET=1 "$AIF_HARNESS" pg-restart "$AIF_HARNESS_DIR" >/dev/null
echo "  PostgreSQL restarted under job $j_k3"
j_k4=$(submit aiftest llm health -N1 --gpus-per-node=3 --wrap 'sleep 2')
settle "$j_k3" >/dev/null
settle "$j_k4" >/dev/null
aifd_wait_log a "budget refresh (lost its database connection|reconnected)" "aifd saw PostgreSQL restart"
# What an epilog could not deliver then waits for the next prolog or the timer's flush.
if [[ -n $(spooled) ]]; then
	echo "  still spooled after the jobs ended: $(spooled); flushed"
	"$AIFD_WORK/aifctl" -c "$AIFD_WORK/aifctl.conf" spool flush >/dev/null
fi
for j in "$j_k1" "$j_k2" "$j_k3" "$j_k4"; do wait_closed "$j"; done
echo "  closed by: $(q -c "SELECT string_agg(DISTINCT job_id || ' ' || end_source, ', ')
	FROM aif.usage_intervals WHERE job_id IN ($j_k1, $j_k2, $j_k3, $j_k4)")"
check_story

# ===========================================================================================
chapter "7. A node crashes under a two-node job: reconciliation closes its interval"
# --no-requeue: Slurm would otherwise requeue the job, and the run's end is then forgotten.
j_crash=$(submit aiftest3 grid energy -N2 --gpus-per-node=2 --no-requeue --wrap 'sleep 300')
wait_running "$j_crash"
deadline=$((SECONDS + 20))
until [[ $(q -c "SELECT count(*) FROM aif.usage_intervals WHERE job_id = $j_crash AND ended_at IS NULL") == 2 ]]; do
	((SECONDS < deadline)) || fail "job $j_crash's starts did not reach aifd"
	sleep 0.2
done
pid=$(cat "$AIF_HARNESS_DIR/pids/slurmd.n2")
kill -KILL "$pid"
# slurmctld would notice after SlurmdTimeout (300 s); the operator who saw the crash says so.
scontrol update nodename=n2 state=down reason="e2e: node crash"
echo "  slurmd of n2 (pid $pid) killed; n2 set down"
assert_eq NODE_FAIL "$(settle "$j_crash" 60 | cut -d' ' -f2)" "the job on the crashed node"
read -r _ _ _ _ _ _ start end _ < <(fact "$j_crash")
deadline=$((SECONDS + 30))
# Both closes race: n1's epilog and the reconciliation round that closes n2. Wait for both.
until [[ $(q -c "SELECT count(*) FROM aif.usage_intervals WHERE job_id = $j_crash AND ended_at IS NOT NULL") == 2 ]]; do
	((SECONDS < deadline)) || fail "job $j_crash's intervals were not both closed: $(q -c "SELECT node, end_source FROM aif.usage_intervals WHERE job_id = $j_crash ORDER BY node" | paste -sd' ')"
	sleep 0.2
done
assert_eq "n1|epilog|$end|t
n2|reconciled-slurm|$end|t" "$(q -c "SELECT node, end_source, trim_scale(extract(epoch FROM ended_at)), exact
	FROM aif.usage_intervals WHERE job_id = $j_crash ORDER BY node")" \
	"job $j_crash's intervals: n1 closed by its epilog, n2 by reconciliation, at Slurm's EndTime"
aifd_wait_log a "closed the usage interval of job $j_crash on node n2 \(restart 0\) at " "the close in aifd's log"
echo "  job $j_crash NODE_FAIL at $end: n1 closed by its epilog, n2 by reconciliation"
AIF_HARNESS_QUIET=1 "$AIF_HARNESS" restart-slurmd "$AIF_HARNESS_DIR" >/dev/null # the node is back (ReturnToService=2)
assert_eq "n1 idle,n2 idle" "$(sinfo -h -N -o '%N %T' | sort | paste -sd,)" "nodes after the crash"
check_story

# ===========================================================================================
chapter "The story's figures"
assert_eq "" "$(q -c 'SELECT * FROM aif.rollup_verify()')" "rollup_verify"
printf '  %-12s %-14s %16s %16s\n' project sector "Slurm GPU-hours" "aif GPU-hours"
LC_ALL=C join -t'|' <(slurm_totals | grep -v '^[PF] ' | cut -d'|' -f1-3 | sed 's/|/:/' | LC_ALL=C sort) \
	<(q -c "SELECT project || ':' || sector || '|' || sum(gpu_hours) FROM aif_report.usage_daily
		WHERE cluster = '$cluster' GROUP BY project, sector" | LC_ALL=C sort) |
	awk -F'|' '{ split($1, k, ":"); printf "  %-12s %-14s %16.6f %16.6f\n", k[1], k[2], $2 / 3600, $3 }'
echo "e2e story: all checks passed in $((SECONDS - t0)) s ($(wc -l <"$facts") jobs)"
