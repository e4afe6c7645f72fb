/* slurmdbd: Slurm's accounting record of jobs slurmctld has forgotten (slurmdbd.h). */
#include "slurmdbd.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <slurm/slurm.h>
#include <slurm/slurmdb.h>

#include "aif_clock.h"
#include "log.h"
#include "slurmctld.h"

/* Job ids per request: slurmdbd turns each into a term of one SQL condition. */
#define IDS_PER_REQUEST 1000


struct slurmdbd_lookup {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done, dropped;
	enum slurmdbd_answer answer;
	struct aif_diag why;
	char *cluster;
	struct slurmdbd_run *runs;
	size_t n;
};

/* Whether slurm.conf stores accounting in slurmdbd; -1 when slurmctld did not answer. */
static int uses_slurmdbd(struct aif_diag *why)
{
	slurm_conf_t *conf = NULL;
	int yes;

	if (slurm_load_ctl_conf(0, &conf) != 0) {
		aif_diag_message(why, "could not load slurmctld's configuration");
		aif_diag_detail(why, "slurmctld: %s.", slurm_strerror(slurm_compat_errno()));
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

/* The records of jobs[0..n) appended to *recs; -1 (why) when slurmdbd did not answer. */
static int fetch(const char *cluster, const struct slurmdbd_run *runs, size_t n,
		 struct slurmdbd_record **recs, size_t *n_recs, struct aif_diag *why)
{
	slurmdb_job_cond_t cond;
	struct xlist *jobs;
	void *conn;
	int rc = 0;

	if (!build_cond(&cond, cluster, runs, n)) {
		free_cond(&cond);
		aif_diag_message(why, "could not ask slurmdbd: out of memory");
		return -1;
	}
	errno = 0;
	if (!(conn = slurmdb_connection_get(NULL))) {
		free_cond(&cond);
		aif_diag_message(why, "slurmdbd did not answer");
		aif_diag_detail(why, "Connecting to it: %s.", slurm_strerror(slurm_compat_errno()));
		return -1;
	}
	errno = 0;
	if (!(jobs = slurmdb_jobs_get(conn, &cond))) {
		aif_diag_message(why, "slurmdbd did not answer");
		aif_diag_detail(why, "Listing jobs: %s.",
				errno ? slurm_strerror(slurm_compat_errno()) : "no list returned");
		rc = -1;
	} else {
		size_t count = (size_t)slurm_list_count(jobs);
		struct slurmdbd_record *more = realloc(*recs, (*n_recs + count + 1) * sizeof(**recs));

		if (!more) {
			aif_diag_message(why, "could not read slurmdbd's answer: out of memory");
			rc = -1;
		} else {
			struct listIterator *it = slurm_list_iterator_create(jobs);
			const slurmdb_job_rec_t *rec;

			*recs = more;
			while ((rec = slurm_list_next(it)) && count--)
				(*recs)[(*n_recs)++] = (struct slurmdbd_record){
					.job = rec->jobid, .state = rec->state, .start = rec->start,
					.end = rec->end, .uid = rec->uid};
			slurm_list_iterator_destroy(it);
		}
		slurm_list_destroy(jobs);
	}
	slurmdb_connection_close(&conn);
	free_cond(&cond);
	return rc;
}

static int by_job(const void *a, const void *b)
{
	const struct slurmdbd_record *x = a, *y = b;

	return (x->job > y->job) - (x->job < y->job);
}

/*
 * One second of slack: aif's times have microseconds, slurmdbd's are whole seconds. Only an
 * ended run counts: its state is final, or it was requeued or resized (slurmdbd keeps that
 * run's record with JOB_REQUEUE or JOB_RESIZING over a pending state).
 */
void slurmdbd_match(struct slurmdbd_run *run, const struct slurmdbd_record *recs, size_t n,
		    time_t now)
{
	struct slurmdbd_record key = {.job = run->job};
	const struct slurmdbd_record *hit = bsearch(&key, recs, n, sizeof(*recs), by_job);
	const struct slurmdbd_record *best = NULL;
	time_t after = run->seen ? run->seen : run->first;

	run->start = run->end = 0;
	run->state = run->uid = 0;
	if (!hit)
		return;
	while (hit > recs && hit[-1].job == run->job)
		hit--;
	for (; hit < recs + n && hit->job == run->job; hit++)
		if (hit->start > 0 && hit->start <= run->first + 1 && (!best || hit->start > best->start))
			best = hit;
	if (best && best->end >= best->start && best->end + 1 >= after && best->end <= now + 1) {
		uint32_t base = best->state & JOB_STATE_BASE;

		if ((base != JOB_PENDING && base != JOB_RUNNING && base != JOB_SUSPENDED) ||
		    (best->state & (JOB_REQUEUE | JOB_RESIZING))) {
			run->start = best->start;
			run->end = best->end;
			run->state = best->state;
			run->uid = best->uid;
		}
	}
}

static enum slurmdbd_answer lookup(const char *cluster, struct slurmdbd_run *runs, size_t n,
				   struct aif_diag *why)
{
	struct slurmdbd_record *recs = NULL;
	size_t n_recs = 0;
	int uses = uses_slurmdbd(why);
	time_t now = time(NULL);

	if (uses <= 0)
		return uses < 0 ? SLURMDBD_FAILED : SLURMDBD_NONE;
	for (size_t i = 0; i < n; i += IDS_PER_REQUEST)
		if (fetch(cluster, runs + i, n - i < IDS_PER_REQUEST ? n - i : IDS_PER_REQUEST, &recs,
			  &n_recs, why) < 0) {
			free(recs);
			return SLURMDBD_FAILED;
		}
	if (n_recs)
		qsort(recs, n_recs, sizeof(*recs), by_job);
	for (size_t i = 0; i < n; i++)
		slurmdbd_match(&runs[i], recs, n_recs, now);
	free(recs);
	return SLURMDBD_ANSWERED;
}

static void lookup_free(struct slurmdbd_lookup *l)
{
	pthread_mutex_destroy(&l->lock);
	pthread_cond_destroy(&l->cond);
	free(l->cluster);
	free(l->runs);
	free(l);
}

/* The lookup's thread: it holds libslurm (slurmctld_acquire) until it is done. */
static void *lookup_thread(void *arg)
{
	struct slurmdbd_lookup *l = arg;
	struct aif_diag why;
	enum slurmdbd_answer answer;
	bool dropped;

	aif_diag_clear(&why);
	answer = lookup(l->cluster, l->runs, l->n, &why);
	slurmctld_release();
	pthread_mutex_lock(&l->lock);
	l->answer = answer;
	l->why = why;
	l->done = true;
	dropped = l->dropped;
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
	if (dropped)
		lookup_free(l);
	return NULL;
}

struct slurmdbd_lookup *slurmdbd_lookup_start(const char *cluster, const struct slurmdbd_run *runs,
					      size_t n)
{
	struct slurmdbd_lookup *l = calloc(1, sizeof(*l));
	pthread_condattr_t attr;
	pthread_attr_t tattr;
	pthread_t tid;
	int err;

	if (!l)
		return NULL;
	l->cluster = strdup(cluster);
	l->runs = calloc(n ? n : 1, sizeof(*runs));
	if (!l->cluster || !l->runs) {
		free(l->cluster);
		free(l->runs);
		free(l);
		return NULL;
	}
	memcpy(l->runs, runs, n * sizeof(*runs));
	l->n = n;
	pthread_mutex_init(&l->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&l->cond, &attr);
	pthread_condattr_destroy(&attr);
	if (slurmctld_acquire() < 0) {
		lookup_free(l);
		return NULL;
	}
	pthread_attr_init(&tattr);
	pthread_attr_setdetachstate(&tattr, PTHREAD_CREATE_DETACHED);
	err = pthread_create(&tid, &tattr, lookup_thread, l);
	pthread_attr_destroy(&tattr);
	if (err) {
		log_warning("could not start a thread to ask slurmdbd: %s", strerror(err));
		slurmctld_release();
		lookup_free(l);
		return NULL;
	}
	return l;
}

enum slurmdbd_answer slurmdbd_lookup_wait(struct slurmdbd_lookup *l, int64_t deadline_ms,
					  struct slurmdbd_run *runs, struct aif_diag *why)
{
	struct timespec until = aif_clock_timespec(deadline_ms);
	enum slurmdbd_answer answer = SLURMDBD_PENDING;

	aif_diag_clear(why);
	pthread_mutex_lock(&l->lock);
	while (!l->done && pthread_cond_timedwait(&l->cond, &l->lock, &until) != ETIMEDOUT)
		;
	if (l->done) {
		answer = l->answer;
		*why = l->why;
		memcpy(runs, l->runs, l->n * sizeof(*runs));
	}
	pthread_mutex_unlock(&l->lock);
	return answer;
}

bool slurmdbd_lookup_done(struct slurmdbd_lookup *l)
{
	bool done;

	pthread_mutex_lock(&l->lock);
	done = l->done;
	pthread_mutex_unlock(&l->lock);
	return done;
}

void slurmdbd_lookup_drop(struct slurmdbd_lookup *l)
{
	bool done;

	if (!l)
		return;
	pthread_mutex_lock(&l->lock);
	done = l->done;
	l->dropped = true;
	pthread_mutex_unlock(&l->lock);
	if (done)
		lookup_free(l);
}
