/*
 * jobtimes: slurmctld's StartTime and EndTime for usage records (jobtimes.h).
 *
 * libslurm's RPCs wait as long as slurm.conf's MessageTimeout, and a hung slurmctld must not
 * hold usage back. So the RPCs run in a thread of their own: the caller (the store's settling
 * thread) queues the jobs it needs, waits for the answers at most JOBTIMES_WAIT_MS, and then
 * reads what there is; while an RPC has been hanging for longer than that, it does not wait.
 *
 * The answers of the last second are cached per job (a small direct-mapped table), because
 * the prologs, and then the epilogs, of a job's nodes report within milliseconds of each
 * other: one RPC serves them all. The last round's answers are also kept whole, sorted, for
 * the round that asked: a round naming more jobs than the table has slots would otherwise
 * evict its own answers. One mutex guards the cache, the last round and the queue.
 */
#include "jobtimes.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <slurm/slurm.h>
#include <slurm/slurm_errno.h>

#include "aif_clock.h"
#include "aif_diag.h"
#include "joballoc.h"
#include "log.h"
#include "slurmctld.h"

#define CACHE_SLOTS 1024
/* An answer serves the records of the same job that arrive within this time. */
#define FRESH_MS 1000
/* After slurmctld did not answer, records keep their node's times this long without asking. */
#define JOBTIMES_PAUSE_MS 10000
/*
 * Jobs asked for together are answered by one slurm_load_jobs() rather than one slurm_load_job()
 * each when they are more than ALONE_MAX and either more than SINGLES_MAX (the RPCs one by one
 * would not fit in JOBTIMES_WAIT_MS) or more than one in JOBS_PER_RPC of the jobs slurmctld
 * held at the last such load: that one RPC packs every job slurmctld holds (MinJobAge keeps
 * the ended ones), which costs slurmctld about as much as one RPC per JOBS_PER_RPC jobs.
 */
#define ALONE_MAX 4
#define SINGLES_MAX 32
#define JOBS_PER_RPC 100

/* What slurmctld said of one job. */
struct answer {
	uint32_t job;
	bool valid; /* a cache slot in use */
	bool known; /* slurmctld knows the job */
	bool ended; /* its run is over: end is final */
	uint32_t uid, restart;
	time_t start, end;
	int64_t at_ms; /* when it was asked */
	struct job_alloc *alloc; /* a reference, or NULL */
};

/* One job of a request: what its records need, and the answer. */
struct wanted {
	uint32_t job;
	bool needs_end; /* an end record: an answer from before the job ended will not do */
	bool have;
	struct answer answer;
};

struct jobtimes {
	pthread_mutex_t lock;
	pthread_cond_t asked;    /* to the thread: queue not empty, or stopping */
	pthread_cond_t answered; /* to the caller: answered_gen moved */
	struct answer cache[CACHE_SLOTS];
	struct wanted *last;     /* the last round's jobs and answers, by job */
	size_t last_n;
	struct wanted *queue;    /* jobs to ask for, without answers (repeats allowed) */
	size_t queued, queue_cap;
	uint64_t asked_gen, answered_gen; /* the queue's batches, and the last one answered */
	int64_t busy_since_ms;   /* the thread's RPCs began then; 0 when idle */
	int64_t paused_until_ms;
	size_t jobs_held;        /* jobs in the thread's last slurm_load_jobs(): its cost */
	bool down;               /* the last RPC failed: said once, and when it answers again */
	bool stopping;
	pthread_t thread;
};

static void answer_from(struct answer *a, uint32_t job, const slurm_job_info_t *info, int64_t now)
{
	memset(a, 0, sizeof(*a));
	a->job = job;
	a->valid = true;
	a->at_ms = now;
	if (!info)
		return;
	a->known = true;
	/* Ended, or ending (epilogs running): EndTime is final. A running job's is its limit. */
	a->ended = (info->job_state & JOB_STATE_BASE) >= JOB_COMPLETE ||
		   (info->job_state & JOB_COMPLETING);
	a->uid = info->user_id;
	a->restart = info->restart_cnt;
	a->start = info->start_time;
	a->end = info->end_time;
	/* An ended job's record keeps no GRES per node (scontrol -d shows "GRES=" then). */
	a->alloc = a->ended ? NULL : job_alloc_of(info);
}

static bool fresh_enough(const struct answer *a, const struct wanted *w, int64_t now)
{
	return a->valid && a->job == w->job && now - a->at_ms < FRESH_MS &&
	       (!w->needs_end || !a->known || a->ended);
}

/* slurmctld did not answer: no RPC for a while. Called with the lock held. */
static void pause_asking(struct jobtimes *jt, const char *what, int64_t now)
{
	int err = slurm_compat_errno();
	struct aif_diag d;

	jt->paused_until_ms = now + JOBTIMES_PAUSE_MS;
	if (jt->down)
		return;
	jt->down = true;
	aif_diag_clear(&d);
	aif_diag_message(&d, "%s", what);
	aif_diag_detail(&d, "slurmctld: %s.", slurm_strerror(err));
	aif_diag_hint(&d, "Usage is recorded at the nodes' times meanwhile (exact = false); aifd "
			  "asks again in %d s.", JOBTIMES_PAUSE_MS / 1000);
	log_diag(LOG_LEVEL_WARNING, NULL, &d);
}

static void answered(struct jobtimes *jt)
{
	if (jt->down)
		log_info("slurmctld answers again; usage gets its start and end times");
	jt->down = false;
}

/* A cache slot takes a (referenced) copy of an answer. Lock held. */
static void cache_put(struct jobtimes *jt, const struct answer *a)
{
	struct answer *slot = &jt->cache[a->job % CACHE_SLOTS];

	job_alloc_release(slot->alloc);
	*slot = *a;
	job_alloc_retain(slot->alloc);
}

static void release_answers(struct wanted *w, size_t n)
{
	for (size_t i = 0; w && i < n; i++)
		job_alloc_release(w[i].answer.alloc);
}

/* The thread: ask slurmctld for w[0..n), all without an answer; the cache gets the answers. */
static void ask(struct jobtimes *jt, struct wanted *w, size_t n)
{
	job_info_msg_t *msg = NULL;
	int64_t now = aif_clock_ms();

	if (n > ALONE_MAX && (n > SINGLES_MAX || n * JOBS_PER_RPC > jt->jobs_held)) {
		slurm_job_info_t **index;

		if (slurm_load_jobs(0, &msg, SLURMCTLD_SHOW | SHOW_DETAIL) != 0) {
			pthread_mutex_lock(&jt->lock);
			pause_asking(jt, "could not load the jobs from slurmctld for their times", now);
			pthread_mutex_unlock(&jt->lock);
			return;
		}
		jt->jobs_held = msg->record_count; /* the thread's alone */
		index = slurmctld_index(msg);
		for (size_t i = 0; i < n; i++)
			if (index || !msg->record_count) {
				answer_from(&w[i].answer, w[i].job,
					    slurmctld_find(index, msg->record_count, w[i].job), now);
				w[i].have = true;
			}
		free(index);
		slurm_free_job_info_msg(msg);
	} else {
		for (size_t i = 0; i < n; i++) {
			if (slurm_compat_load_job(&msg, w[i].job, SLURMCTLD_SHOW | SHOW_DETAIL) == 0) {
				answer_from(&w[i].answer, w[i].job, slurmctld_job_of(msg, w[i].job), now);
				slurm_free_job_info_msg(msg);
				msg = NULL;
			} else if (slurm_compat_errno() == ESLURM_INVALID_JOB_ID) {
				answer_from(&w[i].answer, w[i].job, NULL, now);
			} else {
				pthread_mutex_lock(&jt->lock);
				pause_asking(jt, "could not load a job from slurmctld for its times", now);
				pthread_mutex_unlock(&jt->lock);
				return;
			}
			w[i].have = true;
		}
	}
	pthread_mutex_lock(&jt->lock);
	answered(jt);
	for (size_t i = 0; i < n; i++)
		if (w[i].have)
			cache_put(jt, &w[i].answer);
	pthread_mutex_unlock(&jt->lock);
}

static int by_job(const void *a, const void *b)
{
	uint32_t x = ((const struct wanted *)a)->job, y = ((const struct wanted *)b)->job;

	return (x > y) - (x < y);
}

/* Sort w[0..n) by job and merge the repeats; returns how many distinct jobs remain. */
static size_t distinct(struct wanted *w, size_t n)
{
	size_t m = 0;

	qsort(w, n, sizeof(*w), by_job);
	for (size_t i = 0; i < n; i++) {
		if (m && w[m - 1].job == w[i].job)
			w[m - 1].needs_end |= w[i].needs_end;
		else
			w[m++] = w[i];
	}
	return m;
}

static void *jobtimes_thread(void *arg)
{
	struct jobtimes *jt = arg;

	pthread_mutex_lock(&jt->lock);
	for (;;) {
		struct wanted *w;
		size_t n;
		uint64_t gen;

		while (!jt->queued && !jt->stopping)
			pthread_cond_wait(&jt->asked, &jt->lock);
		if (jt->stopping)
			break;
		n = jt->queued;
		gen = jt->asked_gen;
		w = malloc(n * sizeof(*w));
		if (w)
			memcpy(w, jt->queue, n * sizeof(*w));
		jt->queued = 0;
		jt->busy_since_ms = aif_clock_ms();
		pthread_mutex_unlock(&jt->lock);
		if (w) {
			n = distinct(w, n);
			ask(jt, w, n);
		} else {
			log_warning("out of memory: usage recorded at the nodes' times");
		}
		pthread_mutex_lock(&jt->lock);
		release_answers(jt->last, jt->last_n);
		free(jt->last);
		jt->last = w;
		jt->last_n = w ? n : 0;
		jt->busy_since_ms = 0;
		jt->answered_gen = gen;
		pthread_cond_broadcast(&jt->answered);
	}
	pthread_mutex_unlock(&jt->lock);
	return NULL;
}

struct jobtimes *jobtimes_new(void)
{
	struct jobtimes *jt;
	pthread_condattr_t attr;
	int e;

	if (slurmctld_acquire() < 0)
		return NULL;
	jt = calloc(1, sizeof(*jt));
	if (!jt) {
		log_error("out of memory");
		slurmctld_release();
		return NULL;
	}
	pthread_mutex_init(&jt->lock, NULL);
	pthread_cond_init(&jt->asked, NULL);
	/* Workers wait on the monotonic clock, as aif_clock_ms() counts. */
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&jt->answered, &attr);
	pthread_condattr_destroy(&attr);
	e = pthread_create(&jt->thread, NULL, jobtimes_thread, jt);
	if (e) {
		log_error("could not start the job times thread: %s", strerror(e));
		pthread_cond_destroy(&jt->answered);
		pthread_cond_destroy(&jt->asked);
		pthread_mutex_destroy(&jt->lock);
		free(jt);
		slurmctld_release();
		return NULL;
	}
	return jt;
}

/* Waits for an RPC in flight, at most slurm.conf's MessageTimeout. */
void jobtimes_free(struct jobtimes *jt)
{
	if (!jt)
		return;
	pthread_mutex_lock(&jt->lock);
	jt->stopping = true;
	pthread_cond_signal(&jt->asked);
	pthread_mutex_unlock(&jt->lock);
	pthread_join(jt->thread, NULL);
	pthread_cond_destroy(&jt->answered);
	pthread_cond_destroy(&jt->asked);
	pthread_mutex_destroy(&jt->lock);
	free(jt->queue);
	release_answers(jt->last, jt->last_n);
	free(jt->last);
	for (size_t i = 0; i < CACHE_SLOTS; i++)
		job_alloc_release(jt->cache[i].alloc);
	free(jt);
	slurmctld_release();
}

/* Queue the jobs of w[0..m) without an answer; false when out of memory. Lock held. */
static bool enqueue(struct jobtimes *jt, const struct wanted *w, size_t m, size_t missing)
{
	if (jt->queued + missing > jt->queue_cap) {
		size_t cap = (jt->queued + missing) * 2;
		struct wanted *q = realloc(jt->queue, cap * sizeof(*q));

		if (!q)
			return false;
		jt->queue = q;
		jt->queue_cap = cap;
	}
	for (size_t i = 0; i < m; i++)
		if (!w[i].have)
			jt->queue[jt->queued++] = w[i]; /* have false, answer empty */
	return true;
}

static long long distance(time_t a, int64_t b)
{
	long long d = (long long)a - (long long)b;

	return d < 0 ? -d : d;
}

/* What slurmctld allocated on r's node, when a names it. */
static void apply_alloc(struct job_alloc *a, struct usage_record *r)
{
	for (size_t i = 0; a && i < a->n_nodes; i++)
		if (a->nodes[i].known && strcmp(a->nodes[i].name, r->node) == 0) {
			struct job_alloc *earlier = r->alloc; /* an earlier round's, perhaps a */

			r->alloc = job_alloc_retain(a);
			job_alloc_release(earlier);
			r->alloc_node = i;
			return;
		}
}

/* Slurm's times into r when they are r's run (jobtimes.h). */
static void apply(const struct answer *a, struct usage_record *r)
{
	if (!a->known || a->uid != r->uid || a->restart != r->restart || a->start <= 0)
		return;
	if (r->event == USAGE_START) {
		if (distance(a->start, r->start) > USAGE_CLOCK_TOLERANCE)
			return;
		r->start = a->start;
		apply_alloc(a->alloc, r);
	} else {
		if (!a->ended || a->end < a->start || distance(a->end, r->end) > USAGE_CLOCK_TOLERANCE)
			return;
		r->start = a->start;
		r->end = a->end;
	}
	r->exact = true;
}

/*
 * Take the answers that do for w[0..m), from the cache or the last round; returns how many
 * jobs lack one. Lock held.
 */
static size_t known_answers(struct jobtimes *jt, struct wanted *w, size_t m, int64_t now)
{
	size_t missing = 0;

	for (size_t i = 0; i < m; i++) {
		const struct answer *a = &jt->cache[w[i].job % CACHE_SLOTS];
		const struct wanted *got;

		if (!fresh_enough(a, &w[i], now) && jt->last_n &&
		    (got = bsearch(&w[i], jt->last, jt->last_n, sizeof(*w), by_job)))
			a = &got->answer;
		w[i].have = fresh_enough(a, &w[i], now);
		if (w[i].have) {
			job_alloc_release(w[i].answer.alloc); /* an earlier look's */
			w[i].answer = *a;
			job_alloc_retain(w[i].answer.alloc);
		} else {
			missing++;
		}
	}
	return missing;
}

void jobtimes_settle(struct jobtimes *jt, struct usage_record *const *recs, size_t n)
{
	struct wanted *w = calloc(n, sizeof(*w));
	size_t m, missing;
	int64_t now = aif_clock_ms();
	bool late;

	if (!w) {
		log_warning("out of memory: usage recorded at the nodes' times");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		w[i].job = recs[i]->job;
		w[i].needs_end = recs[i]->event == USAGE_END;
	}
	m = distinct(w, n);
	pthread_mutex_lock(&jt->lock);
	missing = known_answers(jt, w, m, now);
	/* Not while slurmctld is known not to answer, or an RPC already hangs. */
	if (missing && now >= jt->paused_until_ms &&
	    !(jt->busy_since_ms && now - jt->busy_since_ms >= JOBTIMES_WAIT_MS) &&
	    enqueue(jt, w, m, missing)) {
		uint64_t gen = ++jt->asked_gen;
		struct timespec until = aif_clock_timespec(now + JOBTIMES_WAIT_MS);

		pthread_cond_signal(&jt->asked);
		while (jt->answered_gen < gen && !jt->stopping &&
		       pthread_cond_timedwait(&jt->answered, &jt->lock, &until) == 0)
			;
		known_answers(jt, w, m, aif_clock_ms());
	}
	/* Paused (slurmctld did not answer an RPC): the nodes' times, no waiting for it. */
	late = aif_clock_ms() >= jt->paused_until_ms;
	pthread_mutex_unlock(&jt->lock);
	for (size_t i = 0; i < n; i++) {
		struct wanted key = {.job = recs[i]->job};
		const struct wanted *found = bsearch(&key, w, m, sizeof(*w), by_job);

		recs[i]->unanswered = late && !(found && found->have);
		recs[i]->forgotten = found && found->have && !found->answer.known;
		if (found && found->have)
			apply(&found->answer, recs[i]);
	}
	release_answers(w, m);
	free(w);
}
