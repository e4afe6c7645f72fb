/*
 * pending: jobs that wait before they first start (docs/aifd.md, "Jobs that wait"). A pending
 * job whose project slurmctld's job_submit/aif wrote in its AdminComment ("aif project=NAME"),
 * of a project that reserves, whose most cost (what it asks of GPUs, per slurmctld's record,
 * x its time limit) does not fit what the project and its factory have neither used nor
 * reserved (the budget snapshot's figures, as the submit-time check answers them), is held
 * (holds.h) with a comment saying why, and released by holds_pass() once it fits. Jobs aifd
 * holds or released already (aif.waiting) are left alone.
 *
 * The snapshot's figures only pick the jobs to weigh; each is then weighed alone, exactly, by
 * aif.reserve_trial() (the admission's arithmetic, under its lock, rolled back): a job is held
 * only when it would not fit if it started now. Jobs are taken by priority, at most 100
 * trials a pass. A courtesy, not the guard: the start-time admission stays authoritative, and
 * a job that starts before a pass sees it is held at its start as before. The AdminComment is the
 * user's claim (job_submit/aif copies it from the job control environment), so the project
 * is decided as for the user's own check: a member, on this cluster, or nothing is done.
 */
#ifndef AIFD_PENDING_H
#define AIFD_PENDING_H

#include <slurm/slurm.h>

#include "db.h"
#include "refresh.h"

/* One pass over jobs (slurmctld's, loaded by the caller). Logged; errors wait for the next. */
void pending_hold(struct refresh *refresh, struct db *db, const char *cluster,
		  const job_info_msg_t *jobs);

#endif
