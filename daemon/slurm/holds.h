/*
 * holds: jobs that wait for GPU-hours (docs/aifd.md, "Jobs that wait"). A job of a project that
 * reserves whose cost does not fit, but would once running jobs end, is held with a comment the
 * user sees in squeue: while pending (pending.h), or at its start, put back in the queue held
 * (requeued and held, as "scontrol requeuehold" does); aifd's reconciliation releases it once
 * its cost fits (aif.waiting_release() reserves it then).
 */
#ifndef AIFD_HOLDS_H
#define AIFD_HOLDS_H

#include <stdint.h>

#include "aif_diag.h"
#include "db.h"

/*
 * Requeue job held, with comment, and record it in aif.waiting: its project, GPUs, charged GPUs
 * an hour (numeric text its admission computed from the allocation, under charging_version;
 * NULL or empty: not known) and time limit in seconds. Its release reserves that charge:
 * released at less than its admission charges, it would be held again at its start, over and
 * over. current is the job's own comment as slurmctld had it when the admission read the job's
 * cost (NULL: none, jobcost.h), which follows aif's and comes back when aifd releases the job
 * (a comment its user set in the moment since, while the admission waited for its factory's
 * lock, is replaced: one RPC fewer, and none that could fail and lose it). Returns 0, or -1
 * with why when slurmctld would not (not a batch job, --no-requeue, not answering) or the
 * database failed: then the job is simply refused.
 */
int holds_hold(struct db *db, const char *cluster, uint32_t job, const char *project,
	       int64_t gpus, const char *charged, const char *charging_version, int64_t seconds,
	       const char *comment, const char *current, struct aif_diag *why);

/*
 * Hold job, pending and never started by aif's leave, with comment, and record it in
 * aif.waiting, as holds_hold() does a running one. Returns 0; 1 when aif.waiting has it
 * already (held or released by aifd: left alone); -1 (logged) when the database or slurmctld
 * failed (then nothing is recorded).
 */
int holds_hold_pending(struct db *db, const char *cluster, uint32_t job, const char *project,
		       int64_t gpus, int64_t seconds, const char *comment);

/*
 * The ids of cluster's waiting jobs, ascending, and their number in *n: malloc'd (free it), or
 * NULL (logged) when the database failed.
 */
uint32_t *holds_waiting_ids(struct db *db, const char *cluster, size_t *n);

/*
 * One pass over the waiting jobs of cluster: forget those that started or are gone, release
 * (again) those whose cost fits now; one released 10 minutes ago that did not start loses its
 * reservation, and is held again when it was requeued, forgotten (to wait unheld, weighed
 * again by pending.h) when it never started. Logged; errors wait for the next pass.
 */
void holds_pass(struct db *db, const char *cluster);

#endif
