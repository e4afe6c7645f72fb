/*
 * reconcile: aifd's side of slurmctld (docs/aifd.md, "Reconciliation" and "Cancellation").
 * One thread with its own PostgreSQL connection runs a pass at start and then every
 * interval_ms:
 *
 *   1. Open intervals whose end never arrived are closed from slurmctld's record (libslurm):
 *      at the end time slurmctld reports once the job has ended and its epilogs are done
 *      (end_source 'reconciled-slurm'); at the last bound known when slurmctld no longer knows
 *      the job or the job was requeued since (restart count higher than the interval's:
 *      'reconciled-last-seen'). The last bound is the latest time a pass saw that run of the
 *      job alive in slurmctld (aif.job_last_seen, sql/005_reconcile.sql), else the
 *      interval's start. Where slurm.conf uses slurmdbd, a job slurmctld has forgotten is
 *      first looked up there (slurmdbd.h) and closed at its times ('reconciled-slurmdbd').
 *   2. on_exhausted: cancel. The running jobs (open intervals on this cluster) of a project or
 *      AI Factory whose budget is exhausted in a current period, under the policy "cancel",
 *      get a request in aif.cancellations (once per job: not_before = now + grace); requests
 *      that are due are carried out with slurm_kill_job() when the budget is still exhausted,
 *      and their done_at and outcome recorded. Killing others' jobs takes SlurmUser or a
 *      Slurm operator.
 *   3. Jobs that wait (holds.h): those held that started or are gone are forgotten, those
 *      that fit now released; then the caller's jobs_seen (pending.h) with the pass's jobs.
 *
 * Nothing here is on the request path: a slurmctld that is down or slow only delays this
 * thread (each libslurm call waits up to its own timeouts; slurmdbd's up to 15 s a pass, its
 * lookups running in a thread of their own), and PostgreSQL going away makes
 * it reconnect with a capped backoff. Failures are logged and the pass is tried again at the
 * next interval.
 */
#ifndef AIFD_RECONCILE_H
#define AIFD_RECONCILE_H

#include <slurm/slurm.h>

#include "db.h"

struct reconcile_options {
	const char *conninfo; /* the aif database (libpq conninfo) */
	const char *cluster;  /* this cluster's Slurm ClusterName, as usage is recorded */
	unsigned interval_ms; /* between the starts of two passes */
	/*
	 * Called at the end of each pass with slurmctld's jobs of that pass and the thread's
	 * connection, when slurmctld answered (the pending jobs that wait: pending.h), or NULL.
	 */
	void (*jobs_seen)(void *arg, struct db *db, const char *cluster, const job_info_msg_t *jobs);
	void *jobs_seen_arg;
};

struct reconcile;

/*
 * Initialise libslurm (slurm_init(NULL): SLURM_CONF or slurm.conf's default place), connect
 * to the database, check its schema and start the thread. Call it from the main thread, once
 * per process. Returns NULL (logged) when slurm.conf or the database cannot be used.
 */
struct reconcile *reconcile_start(const struct reconcile_options *opts);

/* A new interval (SIGHUP); the next pass is due interval_ms after the start of the last. */
void reconcile_set_interval(struct reconcile *r, unsigned interval_ms);

/* Stop the thread (waiting for a libslurm call in progress), close and free everything. */
void reconcile_stop(struct reconcile *r);

#endif
