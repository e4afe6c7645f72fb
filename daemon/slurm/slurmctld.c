/* slurmctld: aifd's use of libslurm (slurmctld.h). */
#include "slurmctld.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aif_diag.h"
#include "log.h"

static pthread_mutex_t slurm_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned slurm_users;

/*
 * slurm_init() exits the process when it finds no slurm.conf, after retrying for a minute:
 * look in its places first (SLURM_CONF, else the default and slurmd's configless cache), so
 * that aifd refuses to start with a message instead.
 */
static int check_slurm_conf(void)
{
	static const char *const places[] = {"/etc/slurm/slurm.conf", "/run/slurm/conf/slurm.conf"};
	const char *env = getenv("SLURM_CONF");
	struct aif_diag d;

	aif_diag_clear(&d);
	if (env && *env) {
		if (access(env, R_OK) == 0)
			return 0;
		aif_diag_message(&d, "could not read the Slurm configuration file \"%s\": %s", env,
				 strerror(errno));
		aif_diag_detail(&d, "SLURM_CONF names it; aifd needs it to reach slurmctld.");
	} else {
		for (size_t i = 0; i < sizeof(places) / sizeof(places[0]); i++)
			if (access(places[i], R_OK) == 0)
				return 0;
		aif_diag_message(&d, "no Slurm configuration file found");
		aif_diag_detail(&d, "SLURM_CONF is not set and neither %s nor %s can be read; aifd "
				    "needs slurm.conf to reach slurmctld.", places[0], places[1]);
	}
	aif_diag_hint(&d, "Set SLURM_CONF in aifd's environment to the path of slurm.conf, readable "
			  "by the user aifd runs as.");
	log_diag(LOG_LEVEL_ERROR, NULL, &d);
	return -1;
}

int slurmctld_acquire(void)
{
	int rc = 0;

	pthread_mutex_lock(&slurm_lock);
	if (slurm_users == 0 && check_slurm_conf() < 0)
		rc = -1;
	else if (slurm_users++ == 0)
		slurm_init(NULL);
	pthread_mutex_unlock(&slurm_lock);
	return rc;
}

void slurmctld_release(void)
{
	pthread_mutex_lock(&slurm_lock);
	if (--slurm_users == 0)
		slurm_fini();
	pthread_mutex_unlock(&slurm_lock);
}

static int by_job_id(const void *a, const void *b)
{
	uint32_t x = (*(slurm_job_info_t *const *)a)->job_id;
	uint32_t y = (*(slurm_job_info_t *const *)b)->job_id;

	return (x > y) - (x < y);
}

static int job_id_is(const void *key, const void *elem)
{
	uint32_t x = *(const uint32_t *)key;
	uint32_t y = (*(slurm_job_info_t *const *)elem)->job_id;

	return (x > y) - (x < y);
}

slurm_job_info_t **slurmctld_index(const job_info_msg_t *msg)
{
	slurm_job_info_t **index;

	if (!msg->record_count || !(index = calloc(msg->record_count, sizeof(*index))))
		return NULL;
	for (uint32_t i = 0; i < msg->record_count; i++)
		index[i] = &msg->job_array[i];
	qsort(index, msg->record_count, sizeof(*index), by_job_id);
	return index;
}

const slurm_job_info_t *slurmctld_find(slurm_job_info_t *const *index, uint32_t count, uint32_t job)
{
	slurm_job_info_t *const *found;

	if (!index)
		return NULL;
	found = bsearch(&job, index, count, sizeof(*index), job_id_is);
	return found ? *found : NULL;
}

const slurm_job_info_t *slurmctld_job_of(const job_info_msg_t *msg, uint32_t job)
{
	for (uint32_t i = 0; i < msg->record_count; i++)
		if (msg->job_array[i].job_id == job)
			return &msg->job_array[i];
	return NULL;
}

const char *slurmctld_state_name(uint32_t state)
{
	static const char *const names[] = {
		[JOB_PENDING] = "PENDING",     [JOB_RUNNING] = "RUNNING",
		[JOB_SUSPENDED] = "SUSPENDED", [JOB_COMPLETE] = "COMPLETED",
		[JOB_CANCELLED] = "CANCELLED", [JOB_FAILED] = "FAILED",
		[JOB_TIMEOUT] = "TIMEOUT",     [JOB_NODE_FAIL] = "NODE_FAIL",
		[JOB_PREEMPTED] = "PREEMPTED", [JOB_BOOT_FAIL] = "BOOT_FAIL",
		[JOB_DEADLINE] = "DEADLINE",   [JOB_OOM] = "OUT_OF_MEMORY",
	};
	uint32_t base = state & JOB_STATE_BASE;

	return base < JOB_END ? names[base] : "UNKNOWN";
}
