/*
 * job_submit/aif (job_submit_aif.so): slurmctld's job_submit plugin that tells the user, at
 * submission, the most the job can cost in GPU-hours: its GPUs x its time limit, from what
 * slurmctld received (the submit-time check in sbatch cannot know them: SPANK gives a plugin
 * there neither --time nor the GPUs). sbatch, salloc and srun print the line, as they print a
 * job_submit/lua plugin's slurm.user_msg():
 *
 *   sbatch: aif: this job can cost up to 4 GPU-hours: 2 GPUs x 2:00:00 (its time limit)
 *
 * Only for jobs that the SPANK plugin tagged (AIF_PROJECT in the job control environment). It
 * never refuses, changes or delays a job: the start decides (docs/slurm.md, "job_submit/aif").
 * It runs inside slurmctld with its job locks held, so it does no I/O, allocates nothing but
 * the message, and reads the user's strings with bounded parsers.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <slurm/slurm.h>
#include <slurm/slurm_errno.h>

#include "aif_gres.h"
#include "plugin.h"

const char plugin_name[] = "aif: a job's most GPU-hours, told at submission";
const char plugin_type[] = "job_submit/aif";
const uint32_t plugin_version = SLURM_VERSION_NUMBER;

/* What slurmctld looks up in a job_submit plugin (its type for the job is internal: void *). */
int init(void);
int fini(void);
int job_submit(job_desc_msg_t *job_desc, uint32_t submit_uid, char **err_msg);
int job_modify(job_desc_msg_t *job_desc, void *job_ptr, uint32_t submit_uid, char **err_msg);

/* Slurm's own allocator (libslurmfull, loaded by slurmctld): slurmctld xfree()s the message. */
extern void slurm_xstrcat(char **str1, const char *str2);

int init(void)
{
	return SLURM_SUCCESS;
}

int fini(void)
{
	return SLURM_SUCCESS;
}

static bool tagged(const job_desc_msg_t *d)
{
	for (uint32_t i = 0; d->spank_job_env && i < d->spank_job_env_size; i++)
		if (d->spank_job_env[i] && strncmp(d->spank_job_env[i], "AIF_PROJECT=", 12) == 0)
			return true;
	return false;
}

/* a x b, both >= 0, at most 2^40: a count past that is absurd, and must not overflow. */
static int64_t times(int64_t a, int64_t b)
{
	const int64_t most = (int64_t)1 << 40;

	return a == 0 || b == 0 ? 0 : a > most / b ? most : a * b > most ? most : a * b;
}

static bool set32(uint32_t v)
{
	return v != NO_VAL && v != INFINITE && v != 0;
}

/*
 * The most GPUs the job can hold on all its nodes: the largest of what it asks per job, per
 * node x its nodes, per task x its tasks, per socket x its sockets (Slurm makes them agree).
 * Nodes, when only a minimum is given, are that minimum (Slurm allocates the fewest that do);
 * not given at all, one. -1 when a GPU count cannot be read, or per socket without sockets.
 */
static int64_t most_gpus(const job_desc_msg_t *d)
{
	int64_t job = aif_gres_gpus(d->tres_per_job), node = aif_gres_gpus(d->tres_per_node),
		task = aif_gres_gpus(d->tres_per_task), socket = aif_gres_gpus(d->tres_per_socket);
	int64_t nodes = set32(d->max_nodes) ? d->max_nodes : set32(d->min_nodes) ? d->min_nodes : 1;
	int64_t tasks = set32(d->num_tasks) ? d->num_tasks
			: (d->ntasks_per_node != NO_VAL16 && d->ntasks_per_node)
				? times(nodes, d->ntasks_per_node)
				: nodes;
	int64_t most = job;

	if (job < 0 || node < 0 || task < 0 || socket < 0)
		return -1;
	if (times(node, nodes) > most)
		most = times(node, nodes);
	if (times(task, tasks) > most)
		most = times(task, tasks);
	if (socket > 0) {
		if (d->sockets_per_node == NO_VAL16 || d->sockets_per_node == 0)
			return -1;
		if (times(times(socket, d->sockets_per_node), nodes) > most)
			most = times(times(socket, d->sockets_per_node), nodes);
	}
	return most;
}

/* What the line says of a job's cost, into buf; "" for a job without GPUs (it costs nothing). */
static void cost_line(const job_desc_msg_t *d, char *buf, size_t len)
{
	const char *who = d->array_inx ? "each job of this array" : "this job";
	int64_t gpus = most_gpus(d);
	uint32_t minutes = d->time_limit;
	char hours[32], limit[32];

	buf[0] = '\0';
	if (gpus == 0)
		return;
	if (gpus < 0) {
		snprintf(buf, len, "aif: %s's GPUs, and so what it can cost, are known when it starts", who);
	} else if (minutes == NO_VAL) {
		snprintf(buf, len, "aif: %s can cost up to %" PRId64 " GPU%s x its partition's default "
			 "time limit (set --time to know and bound it)", who, gpus, gpus == 1 ? "" : "s");
	} else if (minutes == INFINITE) {
		snprintf(buf, len, "aif: %s has no time limit: what its %" PRId64 " GPUs can cost has no "
			 "bound (set --time)", who, gpus);
	} else {
		hours_text(hours, sizeof(hours), (double)gpus * minutes / 60.0);
		if (minutes >= 1440)
			snprintf(limit, sizeof(limit), "%" PRIu32 "-%02" PRIu32 ":%02" PRIu32 ":00",
				 minutes / 1440, minutes / 60 % 24, minutes % 60);
		else
			snprintf(limit, sizeof(limit), "%" PRIu32 ":%02" PRIu32 ":00", minutes / 60, minutes % 60);
		snprintf(buf, len, "aif: %s can cost up to %s GPU-hours: %" PRId64 " GPU%s x %s (its time "
			 "limit)", who, hours, gpus, gpus == 1 ? "" : "s", limit);
	}
}

int job_submit(job_desc_msg_t *job_desc, uint32_t submit_uid, char **err_msg)
{
	char line[256];

	(void)submit_uid;
	if (!job_desc || !err_msg || !tagged(job_desc))
		return SLURM_SUCCESS;
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
