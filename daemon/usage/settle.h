/*
 * settle: the second step of an end record, after the usage writer acknowledged it (store.h):
 * its times from slurmctld (jobtimes.h), then its interval closed. One thread owns the step,
 * with a database connection of its own (db.h). Its queue is aif.usage_end_inbox, where the
 * writer commits the ends it acknowledges: nothing of it lives only in memory, and the ends an
 * aifd acknowledged and did not close (it stopped first) are closed by the next one.
 *
 * A round, at most every SETTLE_ROUND_MS (settle_written() after the writer committed ends; a
 * look every SETTLE_IDLE_MS in any case):
 *   1. read the cluster's ends in the inbox, oldest first, at most SETTLE_ROUND_MAX;
 *   2. settle their times (jobtimes_settle(): slurmctld's StartTime and EndTime where they are
 *      the run's; it waits at most JOBTIMES_WAIT_MS);
 *   3. the ends of jobs slurmctld no longer knows (the epilog's record came after MinJobAge,
 *      its start perhaps never): slurmdbd's start and end of that run, where slurm.conf names
 *      a slurmdbd (slurmdbd.h), of the same user, ended by the epilog's time; they wait for
 *      it at most SETTLE_SLURMDBD_PATIENCE_MS after they were acknowledged. Not a requeued
 *      run's (restart > 0): were its own record not in slurmdbd yet, the run before it could
 *      be taken for it;
 *   4. close, in one aif.record_usage() call, those settled and those that waited longer than
 *      USAGE_SETTLE_PATIENCE_MS for slurmctld (at the nodes' times); each close empties its
 *      inbox row. The others are tried again in the next round.
 * Then, in the same thread, the allocations of the jobs started (allocations.h), while
 * starts the writer committed wait to be asked about, at most every SETTLE_ROUND_MS too.
 * An end the database refuses to close even alone (it never should) is logged and left to
 * reconciliation, which closes its interval at slurmctld's end time (its inbox row removed).
 */
#ifndef AIFD_SETTLE_H
#define AIFD_SETTLE_H

#include <stddef.h>

#include "jobtimes.h"
#include "usage.h"

#define SETTLE_ROUND_MS 1000
#define SETTLE_ROUND_MAX 20000
/*
 * How long an end of a job slurmctld forgot waits for slurmdbd's answer (or for its record,
 * which slurmctld may still be sending it); one round waits SETTLE_SLURMDBD_WAIT_MS at most,
 * a lookup slower than that goes on (said after SETTLE_SLURMDBD_SLOW_MS), and after slurmdbd
 * failed or lacked a run it is not asked again for SETTLE_SLURMDBD_PAUSE_MS.
 */
#define SETTLE_SLURMDBD_PATIENCE_MS 60000
#define SETTLE_SLURMDBD_WAIT_MS 2000
#define SETTLE_SLURMDBD_PAUSE_MS 10000
#define SETTLE_SLURMDBD_SLOW_MS 15000

struct settle;

/*
 * Start the thread for cluster's ends, with jt for slurmctld's times; closed(arg) is called
 * after a round closed intervals (the budget refresh reloads: decisions see the usage closed
 * within its min_interval, as they see the usage recorded). NULL (logged) on failure.
 */
struct settle *settle_start(const char *conninfo, const char *cluster, struct jobtimes *jt,
			    void (*closed)(void *arg), void *closed_arg);

/*
 * The writer committed recs (one batch; ends went to the inbox): their starts are queued for
 * their allocations, and a round comes soon, of the inbox too when ends were among them. Any
 * thread; never blocks for long.
 */
void settle_written(struct settle *s, const struct usage_record *recs, size_t n);

/* Stop the thread (a round in progress is finished); the ends left stay in the inbox. */
void settle_stop(struct settle *s);

#endif
