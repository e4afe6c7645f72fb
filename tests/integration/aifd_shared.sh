#!/usr/bin/env bash
# Two aifd (two clusters) on one database enforce one AI Factory budget: each sees the usage
# the other records within its refresh interval, and refuses once the shared budget is spent.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
load_harness
aifd_setup

now=$(date +%s)
uid=$(id -u aiftest)
{ budgets_head health; cat; } >"$AIFD_WORK/budgets.yaml" <<YAML
factories:
  - id: shared
    clusters: [aiftest, aiftestb]
    budgets: {cur: 10}
    warn_at: [50]
    projects:
      - {id: ps, sectors: [health], members: {users: [aiftest]}}
YAML
"$AIF_BUILD_DIR/aifctl/aifctl" --db "$AIFD_CONNINFO" apply "$AIFD_WORK/budgets.yaml" >/dev/null
aifd_start a
aifd_start b "cluster = aiftestb"

verdict() { # verdict AIFD: the answer word of a check by aiftest for project ps
	aif_send aiftest "$1" check cluster="$([[ $1 == a ]] && echo aiftest || echo aiftestb)" project=ps | head -1
}
# wait_verdict AIFD WORD WHAT: within 3 s (refresh_interval is 1 s)
wait_verdict() {
	local deadline=$((SECONDS + 3)) got
	until got=$(verdict "$1") && [[ $got == "$2" ]]; do
		((SECONDS < deadline)) || fail "$3: aifd $1 answers '$got', expected '$2' within 3 s"
		sleep 0.2
	done
}
assert_eq ok "$(verdict a)" "a before any usage"
assert_eq ok "$(verdict b)" "b before any usage"

# Through b: a job on aiftestb ran 2 GPUs x 3 h (closed): 6 of 10 GPU-hours, a warning on both.
answer=$(aif_send root b usage cluster=aiftestb \
	-- event=start job=1 node=b1 restart=0 gpus=2 time=$((now - 4 * 3600)) uid="$uid" project=ps \
	-- event=end job=1 node=b1 restart=0 gpus=2 time=$((now - 3600)) uid="$uid" project=ps)
assert_eq ok "$(head -1 <<<"$answer")" "usage through b: $answer"
wait_verdict a warn "a sees b's closed usage"

# Through a: a running job on aiftest, 4 GPUs since an hour: 10 of 10, exhausted on both.
answer=$(aif_send root a usage cluster=aiftest \
	-- event=start job=1 node=n1 restart=0 gpus=4 time=$((now - 3600)) uid="$uid" project=ps)
assert_eq ok "$(head -1 <<<"$answer")" "usage through a: $answer"
wait_verdict b refuse "b sees a's running job"
assert_eq 'AI Factory "shared" has used all its GPU-hours for period cur' \
	"$(aif_send aiftest b check cluster=aiftestb project=ps | sed -n 's/^message=//p')" "b's refusal"
wait_verdict a refuse "a sees its own running job"

# A bigger budget applied once reaches both aifd.
sed -i 's/budgets: {cur: 10}/budgets: {cur: 1000}/' "$AIFD_WORK/budgets.yaml"
"$AIF_BUILD_DIR/aifctl/aifctl" --db "$AIFD_CONNINFO" apply "$AIFD_WORK/budgets.yaml" >/dev/null
wait_verdict a ok "a sees the new budget"
wait_verdict b ok "b sees the new budget"
echo "two aifd, one budget: all checks passed"
