/* allocations: what slurmctld allocated to running jobs, for charging (allocations.h). */
#include "allocations.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aif_db.h"
#include "log.h"
#include "pgarray.h"

#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

/* What an earlier aifd, or an overflowing queue, left to ask about: the newest first. */
static const char READ_SQL[] =
	"SELECT job_id, node, restart_count, uid, extract(epoch FROM started_at)::bigint"
	" FROM aif.usage_intervals WHERE cluster = $1 AND ended_at IS NULL AND allocation_at IS NULL"
	" AND started_at > now() - interval '" STRINGIFY(ALLOCATIONS_RECENT_S) " seconds'"
	" AND uid IS NOT NULL ORDER BY started_at DESC LIMIT " STRINGIFY(ALLOCATIONS_QUEUE_MAX);

static const char WRITE_SQL[] =
	"SELECT changed, unrated FROM aif.record_allocations($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

#define NARRAYS 10
#define SAID_MAX 64 /* unrated models said; past that, no more is said */

/* A start to ask slurmctld about: its interval's key. */
struct started {
	uint32_t job, restart, uid;
	int64_t start;
	char *node;
};

struct allocations {
	pthread_mutex_t lock;
	struct started *queue; /* lock: [head, n) queued, oldest first */
	size_t head, n, cap;   /* lock */
	uint64_t appended;     /* lock: starts the writer queued, ever */
	bool rescan;           /* lock: the next round reads the database */
	/* The settler's thread alone: the "cluster/model" charged at an unrated rate said so of. */
	char *said[SAID_MAX];
	size_t n_said;
};

struct allocations *allocations_new(void)
{
	struct allocations *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	pthread_mutex_init(&a->lock, NULL);
	a->rescan = true; /* what an earlier aifd left */
	return a;
}

void allocations_free(struct allocations *a)
{
	if (!a)
		return;
	for (size_t i = a->head; i < a->n; i++)
		free(a->queue[i].node);
	for (size_t i = 0; i < a->n_said; i++)
		free(a->said[i]);
	free(a->queue);
	pthread_mutex_destroy(&a->lock);
	free(a);
}

/* Append s (its node taken) under the lock; false when full: the database has it. */
static bool append_locked(struct allocations *a, struct started s)
{
	if (a->n == a->cap && a->head) { /* the room that rounds took */
		memmove(a->queue, a->queue + a->head, (a->n - a->head) * sizeof(*a->queue));
		a->n -= a->head;
		a->head = 0;
	}
	if (a->n == a->cap) {
		size_t cap = a->cap ? 2 * a->cap : 256;
		struct started *q;

		if (a->n >= ALLOCATIONS_QUEUE_MAX || !(q = realloc(a->queue, cap * sizeof(*q))))
			return false;
		a->queue = q;
		a->cap = cap;
	}
	a->queue[a->n++] = s;
	return true;
}

void allocations_started(struct allocations *a, const struct usage_record *recs, size_t n)
{
	pthread_mutex_lock(&a->lock);
	for (size_t i = 0; i < n; i++) {
		const struct usage_record *r = &recs[i];
		struct started s;

		/* (an unattributed interval is charged to no budget) */
		if (r->event != USAGE_START || r->unattributed)
			continue;
		s = (struct started){r->job, r->restart, r->uid, r->start, strdup(r->node)};
		if (s.node && append_locked(a, s)) {
			a->appended++;
		} else { /* the next round reads the database, which has it */
			free(s.node);
			a->rescan = true;
		}
	}
	pthread_mutex_unlock(&a->lock);
}

/* What the queue lost, the next round reads from the database. */
static void want_rescan(struct allocations *a)
{
	pthread_mutex_lock(&a->lock);
	a->rescan = true;
	pthread_mutex_unlock(&a->lock);
}

bool allocations_pending(struct allocations *a)
{
	bool pending;

	pthread_mutex_lock(&a->lock);
	pending = a->n > a->head || a->rescan;
	pthread_mutex_unlock(&a->lock);
	return pending;
}

/*
 * The queue becomes the open intervals of cluster whose allocation is not known (the newest
 * ALLOCATIONS_QUEUE_MAX, oldest first), and the starts the writer queued while they were read.
 * Built outside the lock: the writer never waits for it. The database holds every start
 * committed before the read, so the entries queued before it are dropped: an overflowing queue
 * keeps the newest starts, not the oldest.
 */
static bool read_unasked(struct allocations *a, struct db *db, const char *cluster)
{
	const char *params[] = {cluster};
	struct started *fresh = NULL, *q, *old = NULL;
	PGresult *res;
	uint64_t mark;
	size_t m = 0, tail, old_head = 0, old_end = 0;
	bool whole = true;

	pthread_mutex_lock(&a->lock);
	a->rescan = false;
	mark = a->appended;
	pthread_mutex_unlock(&a->lock);
	res = db_exec_want(db, "could not read the intervals whose allocation is not known",
			   READ_SQL, 1, params, PGRES_TUPLES_OK);
	if (!res) {
		want_rescan(a);
		return false;
	}
	if (PQntuples(res) && !(fresh = malloc((size_t)PQntuples(res) * sizeof(*fresh))))
		whole = false;
	for (int i = PQntuples(res) - 1; fresh && i >= 0; i--) { /* oldest first */
		struct started s = {(uint32_t)strtoul(PQgetvalue(res, i, 0), NULL, 10),
				    (uint32_t)strtoul(PQgetvalue(res, i, 2), NULL, 10),
				    (uint32_t)strtoul(PQgetvalue(res, i, 3), NULL, 10),
				    strtoll(PQgetvalue(res, i, 4), NULL, 10),
				    strdup(PQgetvalue(res, i, 1))};

		if (s.node)
			fresh[m++] = s;
		else
			whole = false;
	}
	PQclear(res);
	pthread_mutex_lock(&a->lock);
	/* The writer's starts since the read began are the queue's last entries. */
	tail = a->appended - mark < a->n - a->head ? (size_t)(a->appended - mark) : a->n - a->head;
	q = malloc((m + tail > 0 ? m + tail : 1) * sizeof(*q));
	if (!q) {
		whole = false;
	} else { /* the entries before the tail are freed after the lock */
		old = a->queue;
		old_head = a->head;
		old_end = a->n - tail;
		if (m)
			memcpy(q, fresh, m * sizeof(*q));
		if (tail)
			memcpy(q + m, a->queue + a->n - tail, tail * sizeof(*q));
		a->queue = q;
		a->head = 0;
		a->n = a->cap = m + tail;
		m = 0; /* taken */
	}
	if (!whole)
		a->rescan = true;
	pthread_mutex_unlock(&a->lock);
	for (size_t i = old_head; i < old_end; i++)
		free(old[i].node);
	free(old);
	for (size_t i = 0; i < m; i++)
		free(fresh[i].node);
	free(fresh);
	return true;
}

/* Say once of each model in the array literal unrated ("{c/m,...}") that it has no rate. */
static void say_unrated(struct allocations *a, const char *unrated)
{
	char buf[1024], *save = NULL;

	if (!unrated || snprintf(buf, sizeof(buf), "%s", unrated) >= (int)sizeof(buf))
		return;
	for (char *e = strtok_r(buf, "{},\"", &save); e; e = strtok_r(NULL, "{},\"", &save)) {
		size_t i;
		char *slash = strchr(e, '/');

		for (i = 0; i < a->n_said && strcmp(a->said[i], e) != 0; i++)
			;
		if (i < a->n_said || a->n_said == SAID_MAX || !slash || !(a->said[a->n_said] = strdup(e)))
			continue;
		a->n_said++;
		*slash = '\0';
		log_warning("GPU model \"%s\" on cluster %s has no rate in the budgets file; it is "
			    "charged at the cluster's unrated rate (docs/budgets-yaml.md, \"Charging\")",
			    slash + 1, e);
	}
}

/* A count of the job, NULL when its TRES have none (< 0). */
static void put_count(struct pg_array *arr, int64_t v)
{
	if (v < 0)
		pg_array_null(arr);
	else
		pg_array_int(arr, v);
}

/* The allocations slurmctld gave of recs, in one call; false when the database failed. */
static bool write_allocations(struct allocations *a, struct db *db, const char *cluster,
			      const struct usage_record *recs, size_t n)
{
	struct pg_array arrays[NARRAYS] = {0}; /* empty: pg_array_start() reuses what one holds */
	const char *values[NARRAYS];
	PGresult *res;
	bool ok = true, any = false;

	for (int j = 0; j < NARRAYS; j++)
		pg_array_start(&arrays[j]);
	for (size_t i = 0; i < n; i++) {
		const struct usage_record *r = &recs[i];

		if (!r->alloc.known) /* not this run's answer, or it gave none */
			continue;
		any = true;
		pg_array_text(&arrays[0], cluster);
		pg_array_int(&arrays[1], r->job);
		pg_array_text(&arrays[2], r->node);
		pg_array_int(&arrays[3], r->restart);
		pg_array_int(&arrays[4], r->uid);
		pg_array_text(&arrays[5], r->alloc.gpu_models);
		pg_array_int(&arrays[6], r->alloc.job_cpus);
		put_count(&arrays[7], r->alloc.job_memory_mb);
		put_count(&arrays[8], r->alloc.job_billing);
		pg_array_int(&arrays[9], r->alloc.job_nodes);
	}
	for (int j = 0; j < NARRAYS; j++)
		ok = (values[j] = pg_array_end(&arrays[j])) != NULL && ok;
	if (!ok) {
		log_warning("out of memory: the allocations of jobs are asked for again later");
	} else if (any) {
		res = db_exec_want(db, "could not record the allocations of jobs", WRITE_SQL, NARRAYS,
				   values, PGRES_TUPLES_OK);
		ok = res != NULL;
		if (res && PQntuples(res) == 1)
			say_unrated(a, PQgetvalue(res, 0, 1));
		PQclear(res);
	}
	for (int j = 0; j < NARRAYS; j++)
		pg_array_free(&arrays[j]);
	return ok;
}

/* Take the oldest starts, at most ALLOCATIONS_ROUND_MAX, into *out (malloc'd); how many. */
static size_t take(struct allocations *a, struct started **out)
{
	size_t n;

	*out = NULL;
	pthread_mutex_lock(&a->lock);
	n = a->n - a->head < ALLOCATIONS_ROUND_MAX ? a->n - a->head : ALLOCATIONS_ROUND_MAX;
	if (n && !(*out = malloc(n * sizeof(**out)))) {
		n = 0;
	} else if (n) {
		memcpy(*out, a->queue + a->head, n * sizeof(**out));
		a->head += n;
		if (a->head == a->n)
			a->head = a->n = 0;
	}
	pthread_mutex_unlock(&a->lock);
	return n;
}

/* Put back the starts of batch that keep[] says, free the others' nodes. */
static void put_back(struct allocations *a, struct started *batch, const bool *keep, size_t n)
{
	pthread_mutex_lock(&a->lock);
	for (size_t i = 0; i < n; i++)
		if (!keep[i] || !append_locked(a, batch[i])) {
			if (keep[i])
				a->rescan = true;
			free(batch[i].node);
		}
	pthread_mutex_unlock(&a->lock);
}

void allocations_round(struct allocations *a, struct db *db, struct jobtimes *jt,
		       const char *cluster)
{
	int64_t oldest = (int64_t)time(NULL) - ALLOCATIONS_RECENT_S;
	struct started *batch = NULL;
	struct usage_record *recs = NULL, **settle = NULL;
	bool *keep = NULL, rescan, ok = true;
	size_t n, m = 0;

	pthread_mutex_lock(&a->lock);
	rescan = a->rescan;
	pthread_mutex_unlock(&a->lock);
	if ((rescan && !read_unasked(a, db, cluster)) || !(n = take(a, &batch)))
		return;
	recs = calloc(n, sizeof(*recs));
	settle = calloc(n, sizeof(*settle));
	keep = calloc(n, sizeof(*keep));
	if (!recs || !settle || !keep) {
		log_warning("out of memory: the allocations of jobs are asked for again later");
		for (size_t i = 0; keep && i < n; i++)
			keep[i] = true;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct usage_record *r = &recs[i];

		if (batch[i].start < oldest) /* too long ago: slurmctld's answer would be late */
			continue;
		keep[i] = true;
		r->event = USAGE_START;
		r->cluster = cluster;
		r->job = batch[i].job;
		r->node = batch[i].node;
		r->restart = batch[i].restart;
		r->uid = batch[i].uid;
		r->start = batch[i].start;
		settle[m++] = r;
	}
	jobtimes_settle(jt, settle, m);
	ok = write_allocations(a, db, cluster, recs, n);
	/* Answered for (slurmctld's allocation, or it does not know the job): done. */
	for (size_t i = 0; i < n && ok; i++)
		keep[i] = keep[i] && !recs[i].exact && !recs[i].forgotten;
out:
	if (keep) {
		put_back(a, batch, keep, n);
	} else { /* the database has them */
		for (size_t i = 0; i < n; i++)
			free(batch[i].node);
		want_rescan(a);
	}
	free(keep);
	free(settle);
	free(recs);
	free(batch);
}
