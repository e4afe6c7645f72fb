#!/usr/bin/env bash
# The start-time admission in slurmstepd (plugin/admit.c), on a two-node cluster of the test's
# own with aif.so in plugstack.conf and a real aifd: a member's job runs; an ordinary user who
# bypasses the submit-time check (a private SLURM_CONF whose plugstack lacks aif) to charge a
# project they are not a member of gets a FAILED job with the reason in its stderr, and both
# nodes stay IDLE; a later srun step of an admitted job is not refused once its project is
# exhausted.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
plugin_cluster_start
user=$AIF_TEST_USER

{ budgets_head health; cat; } >"$AIFD_WORK/budgets.yaml" <<YAML
factories:
  - id: fa
    clusters: [$AIF_TEST_CLUSTER]
    budgets: {cur: 1000}
    projects:
      - {id: mine, sectors: [health], budgets: {cur: 100}, members: {users: [$user]}}
      - {id: theirs, sectors: [health], budgets: {cur: 100}, members: {users: [aiftest2]}}
      - {id: small, sectors: [health], budgets: {cur: 1}, members: {users: [$user]}}
YAML
aif_apply "$AIFD_WORK/budgets.yaml"
plugin_aifd_start

nodes_state() { sinfo -h -N -o '%N %T' | sort | paste -sd,; }
submit() { # submit NAME SBATCH-ARG...: as $user, in the run's work dir; prints the job id
	local name=$1
	shift
	as_user "$user" sbatch --parsable -o "$name.out" -e "$name.err" "$@"
}

# A member's two-node job runs.
job=$(submit ok -N2 --gpus-per-node=1 --aif-project=mine --wrap 'srun -N2 hostname')
assert_eq COMPLETED "$(wait_job "$job")" "a member's job"
assert_eq "ok|mine" "$(psql -d "$AIFD_DB" -Atc "SELECT verdict, project_id FROM aif.admissions WHERE job_id = $job")" \
	"its admission"

# The bypass: a private slurm.conf whose plugstack has no aif, and AIF_PROJECT naming a
# project of someone else. sbatch cannot check anything; slurmstepd refuses the job.
sed "s|^PlugStackConfig=.*|PlugStackConfig=$AIFD_WORK/empty-plugstack.conf|" "$SLURM_CONF" >"$AIFD_WORK/private.conf"
install -m 644 /dev/null "$AIFD_WORK/empty-plugstack.conf"
chmod 644 "$AIFD_WORK/private.conf"
job=$(as_user "$user" env SLURM_CONF="$AIFD_WORK/private.conf" AIF_PROJECT=theirs \
	sbatch --parsable -N2 --gpus-per-node=1 -o bypass.out -e bypass.err --wrap 'echo ran')
assert_eq FAILED "$(wait_job "$job")" "the bypassing job"
err=$(cat "$AIF_TEST_WORKDIR/bypass.err")
assert_match "aif: user \"$user\" is not a member of project \"theirs\"" "$err" "the reason in the job's stderr"
[[ ! -s $AIF_TEST_WORKDIR/bypass.out ]] || fail "the refused job's script ran: $(cat "$AIF_TEST_WORKDIR/bypass.out")"
assert_eq "n1 idle,n2 idle" "$(nodes_state)" "nodes after the refusal"
assert_eq "refuse" "$(psql -d "$AIFD_DB" -Atc "SELECT verdict FROM aif.admissions WHERE job_id = $job")" \
	"its admission"

# A later step of an admitted job is not refused, though its project ran out meanwhile.
cat >"$AIF_TEST_WORKDIR/later.sh" <<'JOB'
#!/bin/bash
while [[ ! -e go ]]; do sleep 0.2; done
srun -N1 echo later step ran
JOB
chmod 644 "$AIF_TEST_WORKDIR/later.sh"
job=$(submit later -N1 --gpus-per-node=1 --aif-project=small later.sh)
deadline=$((SECONDS + 30))
until [[ $(squeue -h -j "$job" -o %T) == RUNNING ]]; do
	((SECONDS < deadline)) || fail "job $job did not start"
	sleep 0.2
done
# Exhaust "small": 2 GPU-hours used elsewhere.
aif_send root a usage cluster="$AIF_TEST_CLUSTER" -- event=start job=999999 node=n9 restart=0 gpus=2 \
	time=$(($(date +%s) - 3600)) uid="$(id -u "$user")" project=small >/dev/null
wait_answer a refuse "small exhausted" "$user" check project=small
touch "$AIF_TEST_WORKDIR/go"
assert_eq COMPLETED "$(wait_job "$job")" "the admitted job with a later step"
assert_eq "later step ran" "$(cat "$AIF_TEST_WORKDIR/later.out")" "the later step's output"
assert_eq "n1 idle,n2 idle" "$(nodes_state)" "nodes at the end"
echo "plugin admission: all checks passed"
