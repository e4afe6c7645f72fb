/*
 * slurmctld: aifd's use of libslurm, shared by reconciliation (reconcile.c) and the job times
 * of usage records (jobtimes.c).
 *
 * libslurm's configuration is global to the process: the first slurmctld_acquire() loads it,
 * the last slurmctld_release() frees it. The libslurm calls aifd makes in between
 * (slurm_load_job(s), slurm_kill_job, slurm_load_ctl_conf) are RPCs that may run in several
 * threads at once.
 */
#ifndef AIFD_SLURMCTLD_H
#define AIFD_SLURMCTLD_H

#include <stddef.h>
#include <stdint.h>

#include <slurm/slurm.h>

#include "slurm_compat.h" /* what differs between Slurm releases */

/*
 * Load libslurm's configuration (slurm.conf) for one more user. Returns 0, or -1 (logged) when
 * no slurm.conf can be read: slurm_init() would otherwise exit the process.
 */
int slurmctld_acquire(void);
void slurmctld_release(void);

/*
 * The show_flags of aifd's slurm_load_job(s): ended jobs too, and only this cluster's
 * slurmctld (aifd serves one cluster; without SHOW_LOCAL, libslurm asks for the federation
 * first, one more RPC each time).
 */
#define SLURMCTLD_SHOW (SHOW_ALL | SHOW_LOCAL)

/* The jobs of msg sorted by job id, for slurmctld_find(); NULL when msg has none or no memory. */
slurm_job_info_t **slurmctld_index(const job_info_msg_t *msg);

/* The job with this id in index (msg's record_count entries), or NULL. */
const slurm_job_info_t *slurmctld_find(slurm_job_info_t *const *index, uint32_t count, uint32_t job);

/*
 * The job with this id in msg, or NULL: an array job's id answers slurm_load_job() with all its
 * tasks, and the job asked for is the one whose job_id it is.
 */
const slurm_job_info_t *slurmctld_job_of(const job_info_msg_t *msg, uint32_t job);

/* "RUNNING", "COMPLETED", ...: the base state, as squeue names it. */
const char *slurmctld_state_name(uint32_t state);

#endif
