/*
 * job_submit/aif (job_submit_aif.so): slurmctld's job_submit plugin that tells the user, at
 * submission, the most the job can cost in GPU-hours: its GPUs x its time limit, from what
 * slurmctld received (the submit-time check in sbatch cannot know them: SPANK gives a plugin
 * there neither --time nor the GPUs). sbatch, salloc and srun print the line, as they print a
 * job_submit/lua plugin's slurm.user_msg():
 *
 *   sbatch: aif: this job can cost up to 4 GPU-hours: 2 GPUs x 2:00:00 (its time limit)
 *
 * Only for jobs that the SPANK plugin tagged (AIF_PROJECT in the job control environment), whose
 * project it also writes in the AdminComment, for aifd. It never refuses or delays a job: aifd
 * and the job's start decide (docs/slurm.md, "job_submit/aif").
 * It runs inside slurmctld with its job locks held, so it does no I/O, allocates nothing but
 * the message, and reads the user's strings with bounded parsers.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <slurm/slurm.h>
#include <slurm/slurm_errno.h>

#include "aif_gres_slurm.h"
#include "aif_names.h"
#include "aif_units.h"

const char plugin_name[] = "aif: a job's most GPU-hours, told at submission";
const char plugin_type[] = "job_submit/aif";
const uint32_t plugin_version = SLURM_VERSION_NUMBER;

/* What slurmctld looks up in a job_submit plugin (its type for the job is internal: void *). */
int init(void);
int fini(void);
int job_submit(job_desc_msg_t *job_desc, uint32_t submit_uid, char **err_msg);
int job_modify(job_desc_msg_t *job_desc, void *job_ptr, uint32_t submit_uid, char **err_msg);

/* Slurm's own allocator (libslurmfull, loaded by slurmctld), which frees what is set here. */
extern void slurm_xstrcat(char **str1, const char *str2);
extern void slurm_xfree_ptr(void *ptr); /* xfree() of ptr itself, NULL too */

int init(void)
{
	return SLURM_SUCCESS;
}

int fini(void)
{
	return SLURM_SUCCESS;
}

/*
 * The project the SPANK plugin put in the job control environment, or NULL: not an aif job.
 * *sole: it is the only one, which the prolog sees too (the user, who controls this, may add
 * another, or a SPANK_AIF_PROJECT that Slurm passes to the prolog as it is).
 */
static const char *project_of(const job_desc_msg_t *d, bool *sole)
{
	const char *project = NULL;
	unsigned n = 0;

	for (uint32_t i = 0; d->spank_job_env && i < d->spank_job_env_size; i++) {
		const char *e = d->spank_job_env[i];

		if (e && strncmp(e, "AIF_PROJECT=", 12) == 0) {
			project = project ? project : e + 12;
			n++;
		} else if (e && strncmp(e, "SPANK_AIF_PROJECT=", 18) == 0) {
			n++;
		}
	}
	*sole = n == 1;
	return project;
}

/*
 * The project, for aifd to hold the job while it is pending should it not fit (docs/slurm.md,
 * "job_submit/aif"): in the job's AdminComment, "aif project=NAME", which only Slurm's
 * administrators can change afterwards. A claim the user made (the job control environment is
 * the user's), checked by aifd before it acts on it. Left alone when the AdminComment is set
 * already (by another job_submit plugin) or the name is not a project id.
 */
static void stamp(job_desc_msg_t *d, const char *project)
{
	/* (only with a sole project: project_of) */
	if ((d->admin_comment && d->admin_comment[0]) || !aif_name_valid_id(project))
		return;
	slurm_xfree_ptr(d->admin_comment); /* "" (it takes the memory, as a list destructor) */
	d->admin_comment = NULL;
	slurm_xstrcat(&d->admin_comment, AIF_ADMIN_COMMENT_PREFIX);
	slurm_xstrcat(&d->admin_comment, project);
}

static int64_t most_gpus(const job_desc_msg_t *d)
{
	const struct aif_gres_request r = AIF_GRES_REQUEST(d, min_nodes);

	return aif_gres_most_gpus(&r);
}

/* What the line says of a job's cost, into buf; "" for a job without GPUs (it costs nothing). */
static void cost_line(const job_desc_msg_t *d, char *buf, size_t len)
{
	const char *who = d->array_inx ? "each job of this array" : "this job";
	int64_t gpus = most_gpus(d);
	uint32_t minutes = d->time_limit;

	buf[0] = '\0';
	if (gpus == 0)
		return;
	if (gpus < 0) {
		snprintf(buf, len, "aif: %s's GPUs, and so what it can cost, are known when it starts",
			 who);
	} else if (minutes == NO_VAL) {
		snprintf(buf, len, "aif: %s can cost up to %" PRId64 " GPU%s x its partition's default "
			 "time limit (set --time to know and bound it)", who, gpus, gpus == 1 ? "" : "s");
	} else if (minutes == INFINITE) {
		snprintf(buf, len, "aif: %s has no time limit: what its %" PRId64 " GPU%s can cost has no "
			 "bound (set --time)", who, gpus, gpus == 1 ? "" : "s");
	} else {
		char hours[32], limit[32];

		aif_hours_text(hours, sizeof(hours), (double)gpus * minutes / 60.0);
		aif_duration_text(limit, sizeof(limit), (int64_t)minutes * 60);
		snprintf(buf, len, "aif: %s can use up to %s GPU-hours: %" PRId64 " GPU%s x %s (its time "
			 "limit), charged at the cluster's rates", who, hours, gpus, gpus == 1 ? "" : "s",
			 limit);
	}
}

int job_submit(job_desc_msg_t *job_desc, uint32_t submit_uid, char **err_msg)
{
	const char *project;
	char line[256];
	bool sole;

	(void)submit_uid;
	if (!job_desc || !err_msg || !(project = project_of(job_desc, &sole)))
		return SLURM_SUCCESS;
	if (sole)
		stamp(job_desc, project);
	cost_line(job_desc, line, sizeof(line));
	if (!line[0])
		return SLURM_SUCCESS;
	/* After another plugin's message, if any (JobSubmitPlugins=lua,aif). */
	if (*err_msg && **err_msg)
		slurm_xstrcat(err_msg, "\n");
	slurm_xstrcat(err_msg, line);
	return SLURM_SUCCESS;
}

/* scontrol update: nothing to tell. */
int job_modify(job_desc_msg_t *job_desc, void *job_ptr, uint32_t submit_uid, char **err_msg)
{
	(void)job_desc;
	(void)job_ptr;
	(void)submit_uid;
	(void)err_msg;
	return SLURM_SUCCESS;
}
