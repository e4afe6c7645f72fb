/* slurmdbd: Slurm's accounting record of jobs slurmctld has forgotten (slurmdbd.h). */
#include "slurmdbd.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <slurm/slurm.h>
#include <slurm/slurmdb.h>

#include "slurm_compat.h"

/* Whether slurm.conf stores accounting in slurmdbd; -1 when slurmctld did not answer. */
static int uses_slurmdbd(struct aif_diag *why)
{
	slurm_conf_t *conf = NULL;
	int yes;

	if (slurm_load_ctl_conf(0, &conf) != 0) {
		aif_diag_message(why, "could not load slurmctld's configuration: %s",
				 slurm_strerror(slurm_compat_errno()));
		return -1;
	}
	yes = conf->accounting_storage_type &&
	      strstr(conf->accounting_storage_type, "slurmdbd") != NULL;
	slurm_compat_free_conf(conf);
	return yes;
}

/*
 * The query: these job ids (each with every record of the id: requeued runs and reused ids,
 * JOBCOND_FLAG_DUP), on this cluster, without steps; whole times (NO_TRUNC), and no time
 * window (slurmdbd's default for a query by job id: from the epoch to now). The lists own
 * what they hold, allocated here with malloc and freed with free.
 */
static bool build_cond(slurmdb_job_cond_t *cond, const char *cluster,
		       const struct slurmdbd_run *runs, size_t n)
{
	char *name = strdup(cluster);

	memset(cond, 0, sizeof(*cond));
	cond->flags = JOBCOND_FLAG_DUP | JOBCOND_FLAG_NO_STEP | JOBCOND_FLAG_NO_TRUNC;
	cond->db_flags = SLURMDB_JOB_FLAG_NOTSET;
	cond->cluster_list = slurm_list_create(free);
	cond->step_list = slurm_list_create(free);
	if (!name) /* slurm_list_create() cannot fail: it aborts */
		return false;
	slurm_list_append(cond->cluster_list, name);
	for (size_t i = 0; i < n; i++) {
		slurm_selected_step_t *step = calloc(1, sizeof(*step));

		if (!step)
			return false;
		step->array_task_id = NO_VAL; /* the job id is the task's own */
		step->het_job_offset = NO_VAL;
		step->step_id.job_id = runs[i].job;
		step->step_id.step_id = NO_VAL;
		step->step_id.step_het_comp = NO_VAL;
		slurm_list_append(cond->step_list, step);
	}
	return true;
}

static void free_cond(slurmdb_job_cond_t *cond)
{
	slurm_list_destroy(cond->cluster_list);
	slurm_list_destroy(cond->step_list);
}

/* The run's record: of its job id, the one that started last at or before the run's first
 * interval (one second of slack: aif's start has microseconds, slurmdbd's is whole seconds). */
static void match(struct slurmdbd_run *run, struct xlist *jobs)
{
	struct listIterator *it = slurm_list_iterator_create(jobs);
	const slurmdb_job_rec_t *rec, *best = NULL;

	while ((rec = slurm_list_next(it)))
		if (rec->jobid == run->job && rec->start > 0 && rec->start <= run->within + 1 &&
		    (!best || rec->start > best->start))
			best = rec;
	slurm_list_iterator_destroy(it);
	run->start = run->end = 0;
	run->state = 0;
	if (best && best->end >= best->start && best->end > 0) {
		uint32_t base = best->state & JOB_STATE_BASE;

		if (base != JOB_PENDING && base != JOB_RUNNING && base != JOB_SUSPENDED) {
			run->start = best->start;
			run->end = best->end;
			run->state = best->state;
		}
	}
}

enum slurmdbd_answer slurmdbd_lookup(const char *cluster, struct slurmdbd_run *runs, size_t n,
				     struct aif_diag *why)
{
	slurmdb_job_cond_t cond;
	struct xlist *jobs;
	void *conn;
	int uses;
	bool answered;

	aif_diag_clear(why);
	if (n == 0)
		return SLURMDBD_ANSWERED;
	if ((uses = uses_slurmdbd(why)) <= 0)
		return uses < 0 ? SLURMDBD_FAILED : SLURMDBD_NONE;
	if (!build_cond(&cond, cluster, runs, n)) {
		free_cond(&cond);
		aif_diag_message(why, "could not ask slurmdbd: out of memory");
		return SLURMDBD_FAILED;
	}
	errno = 0;
	if (!(conn = slurmdb_connection_get(NULL))) {
		free_cond(&cond);
		aif_diag_message(why, "slurmdbd did not answer");
		aif_diag_detail(why, "Connecting to it: %s.", slurm_strerror(slurm_compat_errno()));
		return SLURMDBD_FAILED;
	}
	errno = 0;
	jobs = slurmdb_jobs_get(conn, &cond);
	answered = jobs != NULL;
	if (!answered) {
		aif_diag_message(why, "slurmdbd did not answer");
		aif_diag_detail(why, "Listing jobs: %s. slurmdbd lists no jobs to a user that is "
				     "neither an administrator (root, SlurmUser) nor in an association.",
				errno ? slurm_strerror(slurm_compat_errno()) : "no list returned");
	} else {
		for (size_t i = 0; i < n; i++)
			match(&runs[i], jobs);
		slurm_list_destroy(jobs);
	}
	slurmdb_connection_close(&conn);
	free_cond(&cond);
	return answered ? SLURMDBD_ANSWERED : SLURMDBD_FAILED;
}
