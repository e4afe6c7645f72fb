/*
 * allocations: what slurmctld allocated to the running jobs of open intervals (their GPUs by
 * model, the job's CPUs, memory, billing TRES and nodes), so that each is charged as its
 * cluster bills (sql/014_charged.sql; docs/budgets-yaml.md, "Charging"). Learnt while the job
 * runs: slurmctld keeps no GRES per node of an ended job.
 *
 * The settler's thread (settle.h) calls it in every round, on its own connection: the open
 * intervals not asked for yet (aif.usage_intervals.allocation_at NULL, a partial index), at
 * most ALLOCATIONS_ROUND_MAX, oldest first and started within ALLOCATIONS_RECENT_S, go through
 * jobtimes_settle() as starts (one slurmctld RPC for many) and back in one
 * aif.record_allocations() call. An interval whose job slurmctld does not know, or whose run
 * has ended, is marked asked, without an allocation: it stays charged its GPUs at the unrated
 * rate. One slurmctld has not answered for (late, or paused after a failure: jobtimes.h) is
 * asked again later.
 */
#ifndef AIFD_ALLOCATIONS_H
#define AIFD_ALLOCATIONS_H

#include <stdbool.h>

#include "db.h"
#include "jobtimes.h"

#define ALLOCATIONS_ROUND_MAX 2000
#define ALLOCATIONS_RECENT_S 600

/* One round for cluster; true when intervals are left to ask for (a full round, or a failure). */
bool allocations_round(struct db *db, struct jobtimes *jt, const char *cluster);

#endif
