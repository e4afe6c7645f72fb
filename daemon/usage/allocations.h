/*
 * allocations: what slurmctld allocated to the running jobs of open intervals (their GPUs by
 * model, the job's CPUs, memory, billing TRES and nodes), so that each is charged as its
 * cluster bills (sql/014_charged.sql; docs/budgets-yaml.md, "Charging"). Learnt while the job
 * runs: slurmctld keeps no GRES per node of an ended job.
 *
 * The usage writer hands it the starts it committed (allocations_started(), through the
 * settler): a queue in memory, so that a start costs the database nothing more. The settler's
 * thread (settle.h) runs a round, on its own connection, while the queue holds starts: at most
 * ALLOCATIONS_ROUND_MAX of them, started within ALLOCATIONS_RECENT_S, go through
 * jobtimes_settle() as starts (one slurmctld RPC for many) and those whose allocation came back
 * in one aif.record_allocations() call. A start whose job slurmctld does not know, or whose run
 * has ended, is dropped: its interval stays charged its GPUs at the unrated rate. One slurmctld
 * has not answered for (late, or paused after a failure: jobtimes.h) is asked again in a later
 * round, until ALLOCATIONS_RECENT_S after its start.
 *
 * What is in memory only is which intervals to ask about: the first round of an aifd, and one
 * after the queue overflowed (ALLOCATIONS_QUEUE_MAX), reads them from the database instead
 * (the open intervals of the cluster whose allocation is not known; the newest that the queue
 * holds). The queue holds about three rounds' worth, 1 MiB: more is a burst no cluster
 * starts, and reading the database once after it costs less than holding it in memory for
 * good (the queue keeps the room it grew).
 */
#ifndef AIFD_ALLOCATIONS_H
#define AIFD_ALLOCATIONS_H

#include <stdbool.h>
#include <stddef.h>

#include "db.h"
#include "jobtimes.h"
#include "usage.h"

#define ALLOCATIONS_ROUND_MAX 20000
#define ALLOCATIONS_RECENT_S 600
#define ALLOCATIONS_QUEUE_MAX 65536

struct allocations;

/* An empty queue whose first round reads the database; NULL when out of memory. */
struct allocations *allocations_new(void);
void allocations_free(struct allocations *a);

/*
 * The writer committed recs: queue their starts. Any thread; never blocks for long. True when
 * a round had nothing to do before: only then need the settler be woken (a busy queue is
 * taken once per round anyway, and a wake-up per commit cost the writer's throughput).
 */
bool allocations_started(struct allocations *a, const struct usage_record *recs, size_t n);

/* Whether a round has anything to do. Any thread. */
bool allocations_pending(struct allocations *a);

/*
 * One round for cluster, from the settler's thread: at most ALLOCATIONS_ROUND_MAX starts, one
 * round a second draining 20,000 starts a second, far above any cluster's job starts (a
 * round at once after a full one drained faster only in benchmarks, and took the writer's
 * CPU). A failure of the database is logged by db.h; the starts stay queued.
 */
void allocations_round(struct allocations *a, struct db *db, struct jobtimes *jt,
		       const char *cluster);

#endif
