/*
 * jobtimes: slurmctld's own StartTime and EndTime for the usage records aifd receives, so
 * that an interval's GPU-hours are exactly what Slurm's times and GPU counts give
 * (the exact column, sql/007_exact_times.sql).
 *
 * The prolog and epilog report their node's clock, within about a second of slurmctld's times.
 * aifd asks slurmctld once per job, after it acknowledged the epilogs' end records (settle.h),
 * while slurmctld still keeps the ended job (MinJobAge, 300 s by default); the
 * nodes of one job share the answer, which gives the interval's start too. A record takes
 * slurmctld's times only when they are this run's: the same job id, uid and restart count, the
 * job started (and, for an end, ended), and each time within USAGE_CLOCK_TOLERANCE of the
 * node's. Otherwise, and while slurmctld does not answer, the record keeps the node's times
 * and is not exact. A start of a job still running gets what slurmctld allocated on its node
 * too (usage.h, the record's alloc; allocations.h): an ended job's record keeps no GRES per node.
 */
#ifndef AIFD_JOBTIMES_H
#define AIFD_JOBTIMES_H

#include <stddef.h>

#include "usage.h"

struct jobtimes;

/* Loads libslurm's configuration (slurmctld.h) and starts the thread. NULL (logged) when it cannot. */
struct jobtimes *jobtimes_new(void);
void jobtimes_free(struct jobtimes *jt);

/* How long a round of records waits for slurmctld's answer before it keeps the nodes' times. */
#define JOBTIMES_WAIT_MS 500

/*
 * Replace the times of *recs[0..n) with slurmctld's where they are the run's, setting exact;
 * set unanswered on those whose job slurmctld was asked for and has not answered yet (the
 * settler tries them again: an answer late under load still makes the interval exact).
 * Called by the settler once per round of acknowledged ends (settle.h), so that one round of
 * RPCs serves everything acknowledged meanwhile.
 * Thread-safe; waits at most JOBTIMES_WAIT_MS. The jobs without a fresh answer are asked for
 * in jobtimes' own thread (one RPC per job, one slurm_load_jobs() for many: jobtimes.c); none
 * for a while after slurmctld did not answer.
 */
void jobtimes_settle(struct jobtimes *jt, struct usage_record *const *recs, size_t n);

#endif
