/* jobcost: the most a running job can cost, from slurmctld (jobcost.h). */
#include "jobcost.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <slurm/slurm.h>

#include "aif_gres.h"
#include "joballoc.h"
#include "slurmctld.h"

int jobcost_load(uint32_t job, uint32_t uid, struct job_cost *out, struct aif_diag *why)
{
	job_info_msg_t *msg = NULL;
	const slurm_job_info_t *info;
	int rc = -1;

	aif_diag_clear(why);
	out->alloc = NULL;
	out->comment = NULL;
	if (slurm_compat_load_job(&msg, job, SLURMCTLD_SHOW | SHOW_DETAIL) != 0) {
		aif_diag_message(why, "slurmctld did not tell job %" PRIu32 "'s allocation: %s", job,
				 slurm_strerror(slurm_compat_errno()));
		return -1;
	}
	if (!(info = slurmctld_job_of(msg, job)))
		aif_diag_message(why, "slurmctld does not know job %" PRIu32, job);
	else if (info->user_id != uid)
		aif_diag_message(why, "job %" PRIu32 " is uid %" PRIu32 "'s in slurmctld, not uid %" PRIu32 "'s",
				 job, info->user_id, uid);
	else if ((info->job_state & JOB_STATE_BASE) != JOB_RUNNING || info->start_time <= 0)
		aif_diag_message(why, "job %" PRIu32 " is %s in slurmctld, not running", job,
				 slurmctld_state_name(info->job_state));
	else {
		/* slurmctld's own totals ("gpu:h100:2,nic:1"): never malformed, but never trusted below 0 */
		out->gpus = aif_gres_gpus(info->gres_total);
		if (out->gpus < 0)
			out->gpus = 0;
		out->start = (int64_t)info->start_time;
		out->restarts = (int64_t)info->restart_cnt;
		out->unlimited = info->time_limit == INFINITE || info->time_limit == NO_VAL;
		out->end = out->unlimited ? out->start : out->start + (int64_t)info->time_limit * 60;
		out->alloc = job_alloc_of(info);
		if (info->comment && !(out->comment = strdup(info->comment))) {
			aif_diag_message(why, "out of memory");
			jobcost_free(out);
		} else {
			rc = 0;
		}
	}
	slurm_free_job_info_msg(msg);
	return rc;
}

void jobcost_free(struct job_cost *cost)
{
	job_alloc_release(cost->alloc);
	cost->alloc = NULL;
	free(cost->comment);
	cost->comment = NULL;
}
