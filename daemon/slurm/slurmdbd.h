/*
 * slurmdbd: what Slurm's accounting recorded of jobs that slurmctld has forgotten (MinJobAge
 * passed, or aifd was down for long), so that reconciliation closes their intervals at Slurm's
 * own end time rather than at the last time aifd saw them (docs/aifd.md, "Reconciliation").
 * Only where slurm.conf says AccountingStorageType=accounting_storage/slurmdbd.
 *
 * A lookup runs in a thread of its own: libslurm waits up to 15 minutes for slurmdbd's answer
 * (SLURMDBD_TIMEOUT), and reconciliation, holds and cancellations must not wait with it. The
 * caller waits up to a deadline; a lookup not answered by then is left to finish on its own.
 */
#ifndef AIFD_SLURMDBD_H
#define AIFD_SLURMDBD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "aif_diag.h"

/* One run of a job: asked by job id and times within the run, answered with its times. */
struct slurmdbd_run {
	uint32_t job;
	time_t first;   /* in: the run had started by then: its first interval start (aif's
			 * prolog time), or for an end alone that end */
	time_t seen;    /* in: the run was still running then: the last time aifd saw it running in
			 * slurmctld, or for an end alone that end less the nodes' clock tolerance
			 * (0: never seen, then first) */
	time_t start;   /* out: slurmdbd's start and end of that run; 0 when it has no ended record */
	time_t end;
	uint32_t state; /* out: slurmdbd's job state of that run */
	uint32_t uid;   /* out: its user */
};

enum slurmdbd_answer {
	SLURMDBD_NONE,     /* slurm.conf names no slurmdbd: nothing to ask */
	SLURMDBD_ANSWERED, /* every run looked up (found or not) */
	SLURMDBD_FAILED,   /* slurmctld or slurmdbd did not answer: why says so */
	SLURMDBD_PENDING,  /* no answer by the deadline: the lookup goes on */
};

struct slurmdbd_lookup;

/*
 * Look the runs up (copied) in slurmdbd, for this cluster, in requests of at most 1000 job ids.
 * A run's record is the one of its job id that started last at or before the run's first
 * and ended after its seen (an earlier run of a requeued job, or an older job of the same id,
 * ended before); only one that has ended, not in the future, counts.
 * NULL when the thread cannot start (out of memory). Call only after slurmctld_acquire().
 */
struct slurmdbd_lookup *slurmdbd_lookup_start(const char *cluster, const struct slurmdbd_run *runs,
					      size_t n);

/* Wait until the lookup is done or CLOCK_MONOTONIC passes deadline_ms; when done, runs (as
 * given to start) get the answers. */
enum slurmdbd_answer slurmdbd_lookup_wait(struct slurmdbd_lookup *l, int64_t deadline_ms,
					  struct slurmdbd_run *runs, struct aif_diag *why);

/* Whether it is done (an answer is waiting). */
bool slurmdbd_lookup_done(struct slurmdbd_lookup *l);

/* Let go of it: freed now when done, else by its thread when it finishes. */
void slurmdbd_lookup_drop(struct slurmdbd_lookup *l);

/* What a lookup keeps of one slurmdbd record. */
struct slurmdbd_record {
	uint32_t job;
	uint32_t state;
	time_t start, end;
	uint32_t uid;
};

/*
 * The run's record among recs[0..n) (sorted by job): of its job id, the one that started last
 * at or before the run's first, if it ended after the run's seen (its first when not seen),
 * not after now (an older job of a reused id, or an earlier run of a requeued job, ended
 * before). Fills run's start, end, state and uid, or zeroes them.
 * tests/unit/test_slurmdbd.c tests it.
 */
void slurmdbd_match(struct slurmdbd_run *run, const struct slurmdbd_record *recs, size_t n,
		    time_t now);

#endif
