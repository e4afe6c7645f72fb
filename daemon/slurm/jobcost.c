/* jobcost: the most a running job can cost, from slurmctld (jobcost.h). */
#include "jobcost.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <slurm/slurm.h>

#include "slurmctld.h"

int64_t jobcost_gpus(const char *gres_total)
{
	int64_t gpus = 0;

	/* Entries "NAME[:TYPE]:COUNT", comma-separated (slurmctld's gres_ctld_job_build_details()). */
	for (const char *p = gres_total; p && *p;) {
		const char *end = strchr(p, ','), *count = NULL;
		size_t len = end ? (size_t)(end - p) : strlen(p);

		for (const char *c = p; c < p + len; c++)
			if (*c == ':')
				count = c + 1;
		if (len > 4 && strncmp(p, "gpu:", 4) == 0) {
			char *stop;
			long long n = strtoll(count, &stop, 10);
			if (stop == p + len && n > 0 && n <= INT32_MAX)
				gpus += n;
		}
		p = end ? end + 1 : NULL;
	}
	return gpus;
}

int jobcost_load(uint32_t job, uint32_t uid, struct job_cost *out, struct aif_diag *why)
{
	job_info_msg_t *msg = NULL;
	const slurm_job_info_t *info;
	int rc = -1;

	aif_diag_clear(why);
	if (slurm_compat_load_job(&msg, job, SLURMCTLD_SHOW) != 0) {
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
		out->gpus = jobcost_gpus(info->gres_total);
		out->start = (int64_t)info->start_time;
		out->unlimited = info->time_limit == INFINITE || info->time_limit == NO_VAL;
		out->end = out->unlimited ? out->start : out->start + (int64_t)info->time_limit * 60;
		rc = 0;
	}
	slurm_free_job_info_msg(msg);
	return rc;
}
