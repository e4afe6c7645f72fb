/* allocations: what slurmctld allocated to running jobs, for charging (allocations.h). */
#include "allocations.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aif_db.h"
#include "joballoc.h"
#include "log.h"
#include "pgarray.h"

#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

/*
 * What an earlier aifd, or an overflowing queue, left to ask about: the newest first, as many
 * as the queue holds (older ones stay charged at the unrated rate), of the form started_of()
 * takes.
 */
static const char READ_SQL[] =
	"SELECT job_id, node, restart_count, uid, extract(epoch FROM started_at)::bigint"
	" FROM aif.usage_intervals WHERE cluster = $1 AND ended_at IS NULL AND allocation_at IS NULL"
	" AND started_at > now() - interval '" STRINGIFY(ALLOCATIONS_RECENT_S) " seconds'"
	" AND restart_count <= " STRINGIFY(UINT16_MAX) " AND uid IS NOT NULL"
	" ORDER BY started_at DESC LIMIT " STRINGIFY(ALLOCATIONS_QUEUE_MAX);

static const char WRITE_SQL[] =
	"SELECT changed, unrated FROM aif.record_allocations($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

#define NARRAYS 10
#define SAID_MAX 64 /* unrated models said; past that, no more is said */
#define NODES_MAX 65536 /* node names kept: a cluster's nodes, with room to spare */

/*
 * Node names by number, each once: a cluster's nodes are few, and a start queued costs 16
 * bytes, not a copy of its name. by_name: 1 + a name's number, 0 empty; open addressing, at
 * most half full.
 */
struct node_names {
	char **v;
	uint32_t n, cap, *by_name, by_name_cap;
};

/*
 * A start to ask slurmctld about, in 16 bytes (a burst queues many): its interval's key, its
 * node by number (node_names: below NODES_MAX) and its start in seconds since the epoch.
 */
struct started {
	uint32_t job, uid, start;
	uint16_t restart, node;
};
_Static_assert(sizeof(struct started) == 16, "a queued start is 16 bytes (docs/aifd.md)");

/*
 * The start of run restart of job, its node still to number (node_names numbers below
 * NODES_MAX, which 16 bits hold), or false when it has no such form: Slurm counts a job's
 * restarts in 16 bits, so only a forged record says more, and a start before 1970 or after
 * 2106 is none slurmctld has. Such a start is not asked about.
 */
static bool started_of(uint32_t job, uint64_t restart, uint32_t uid, int64_t start, struct started *s)
{
	if (restart > UINT16_MAX || start < 0 || start > (int64_t)UINT32_MAX)
		return false;
	*s = (struct started){job, uid, (uint32_t)start, (uint16_t)restart, 0};
	return true;
}

struct allocations {
	pthread_mutex_t lock;
	struct started *queue; /* lock: [head, n) queued, oldest first */
	size_t head, n, cap;   /* lock */
	uint64_t appended;     /* lock: starts the writer queued, ever */
	bool rescan;           /* lock: the next round reads the database */
	/*
	 * lock: the queued starts' nodes. Only the settler's thread forgets them, after its
	 * round (put_back()), so that it reads the names it took under the lock after it.
	 */
	struct node_names nodes;
	/* The settler's thread alone: the "cluster/model" charged at an unrated rate said so of. */
	char *said[SAID_MAX];
	size_t n_said;
};

static void names_free(struct node_names *t);

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
	names_free(&a->nodes);
	for (size_t i = 0; i < a->n_said; i++)
		free(a->said[i]);
	free(a->queue);
	pthread_mutex_destroy(&a->lock);
	free(a);
}

static uint32_t name_hash(const char *name)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (; *name; name++)
		h = (h ^ (unsigned char)*name) * 16777619u;
	return h;
}

/* The slot of by_name[] that holds name, or the empty one where it goes. */
static uint32_t *name_slot(struct node_names *t, const char *name)
{
	uint32_t i = name_hash(name) & (t->by_name_cap - 1);

	while (t->by_name[i] && strcmp(t->v[t->by_name[i] - 1], name) != 0)
		i = (i + 1) & (t->by_name_cap - 1);
	return &t->by_name[i];
}

/* name's number, added if new; false when out of room (the database has the start). */
static bool names_number(struct node_names *t, const char *name, uint32_t *number)
{
	uint32_t *slot = t->by_name_cap ? name_slot(t, name) : NULL;

	if (slot && *slot) {
		*number = *slot - 1;
		return true;
	}
	if (2 * (t->n + 1) > t->by_name_cap) {
		uint32_t cap = t->by_name_cap ? 2 * t->by_name_cap : 64;
		uint32_t *old = t->by_name, old_cap = t->by_name_cap;

		if (t->n >= NODES_MAX || !(t->by_name = calloc(cap, sizeof(*t->by_name)))) {
			t->by_name = old;
			return false;
		}
		t->by_name_cap = cap;
		for (uint32_t i = 0; i < old_cap; i++)
			if (old[i])
				*name_slot(t, t->v[old[i] - 1]) = old[i];
		free(old);
	}
	if (t->n == t->cap) {
		uint32_t cap = t->cap ? 2 * t->cap : 32;
		char **v = realloc(t->v, cap * sizeof(*v));

		if (!v)
			return false;
		t->v = v;
		t->cap = cap;
	}
	if (!(t->v[t->n] = strdup(name)))
		return false;
	*name_slot(t, name) = ++t->n; /* (the slot was empty: name was not there) */
	*number = t->n - 1;
	return true;
}

/* Forget every name (the table keeps its room). */
static void names_forget(struct node_names *t)
{
	for (uint32_t i = 0; i < t->n; i++)
		free(t->v[i]);
	t->n = 0;
	if (t->by_name)
		memset(t->by_name, 0, t->by_name_cap * sizeof(*t->by_name));
}

static void names_free(struct node_names *t)
{
	names_forget(t);
	free(t->v);
	free(t->by_name);
}

/* Append s under the lock; false when full: the database has it. */
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

		if (cap > ALLOCATIONS_QUEUE_MAX)
			cap = ALLOCATIONS_QUEUE_MAX;
		if (a->n >= ALLOCATIONS_QUEUE_MAX || !(q = realloc(a->queue, cap * sizeof(*q))))
			return false;
		a->queue = q;
		a->cap = cap;
	}
	a->queue[a->n++] = s;
	return true;
}

bool allocations_started(struct allocations *a, const struct usage_record *recs, size_t n)
{
	bool idle;

	pthread_mutex_lock(&a->lock);
	idle = a->n == a->head && !a->rescan;
	for (size_t i = 0; i < n; i++) {
		const struct usage_record *r = &recs[i];
		struct started s;
		uint32_t node;

		/* (an unattributed interval is charged to no budget) */
		if (r->event != USAGE_START || r->unattributed)
			continue;
		/* (none slurmctld has: its node is not numbered either) */
		if (!started_of(r->job, r->restart, r->uid, r->start, &s))
			continue;
		if (!names_number(&a->nodes, r->node, &node)) {
			a->rescan = true; /* the next round reads the database, which has it */
			continue;
		}
		s.node = (uint16_t)node; /* (< NODES_MAX) */
		if (append_locked(a, s))
			a->appended++;
		else
			a->rescan = true;
	}
	idle = idle && (a->n > a->head || a->rescan);
	pthread_mutex_unlock(&a->lock);
	return idle;
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
 * Built outside the lock, the rows' nodes numbered in a table of the read's own; under it,
 * only the few distinct names go to the queue's table: the writer never waits long. The
 * database holds every start committed before the read, so the entries queued before it are
 * dropped: an overflowing queue keeps the newest starts, not the oldest.
 */
static bool read_unasked(struct allocations *a, struct db *db, const char *cluster)
{
	const char *params[] = {cluster};
	struct node_names local = {0};
	struct started *q = NULL, *old = NULL;
	uint32_t *renumber = NULL;
	PGresult *res;
	uint64_t mark;
	size_t rows, m = 0, tail;
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
	rows = (size_t)PQntuples(res);
	if (!(q = malloc((rows ? rows : 1) * sizeof(*q))))
		whole = false;
	for (size_t i = rows; q && i-- > 0;) { /* oldest first */
		uint32_t node;

		if (!names_number(&local, PQgetvalue(res, (int)i, 1), &node))
			whole = false;
		else if (started_of((uint32_t)strtoul(PQgetvalue(res, (int)i, 0), NULL, 10),
				    strtoull(PQgetvalue(res, (int)i, 2), NULL, 10),
				    (uint32_t)strtoul(PQgetvalue(res, (int)i, 3), NULL, 10),
				    strtoll(PQgetvalue(res, (int)i, 4), NULL, 10), &q[m]))
			q[m++].node = (uint16_t)node; /* (< NODES_MAX) */
	}
	PQclear(res);
	if (local.n && !(renumber = malloc(local.n * sizeof(*renumber)))) {
		whole = false;
		m = 0;
	}
	pthread_mutex_lock(&a->lock);
	for (uint32_t i = 0; renumber && i < local.n; i++)
		if (!names_number(&a->nodes, local.v[i], &renumber[i])) {
			renumber[i] = UINT32_MAX; /* its starts are dropped: read again later */
			whole = false;
		}
	/* The writer's starts since the read began are the queue's last entries. */
	tail = a->appended - mark < a->n - a->head ? (size_t)(a->appended - mark) : a->n - a->head;
	if (q && tail) { /* (realloc under the lock: at most a copy of the queue, rare) */
		struct started *grown = realloc(q, (m + tail) * sizeof(*q));

		if (!grown) { /* the queue stays as it is */
			free(q);
			whole = false;
		}
		q = grown;
	}
	if (q) {
		size_t k = 0;

		for (size_t i = 0; i < m; i++)
			if (renumber[q[i].node] != UINT32_MAX) {
				q[k] = q[i];
				q[k++].node = (uint16_t)renumber[q[i].node]; /* (< NODES_MAX) */
			}
		if (tail)
			memcpy(q + k, a->queue + a->n - tail, tail * sizeof(*q));
		old = a->queue;
		a->queue = q;
		a->head = 0;
		a->n = a->cap = k + tail;
		q = NULL;
	}
	if (!whole)
		a->rescan = true;
	pthread_mutex_unlock(&a->lock);
	free(q);
	free(old);
	free(renumber);
	names_free(&local);
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
		const struct job_alloc *j = r->alloc;

		if (!j) /* not this run's answer, or it gave none */
			continue;
		any = true;
		pg_array_text(&arrays[0], cluster);
		pg_array_int(&arrays[1], r->job);
		pg_array_text(&arrays[2], r->node);
		pg_array_int(&arrays[3], r->restart);
		pg_array_int(&arrays[4], r->uid);
		pg_array_text(&arrays[5], j->nodes[r->alloc_node].models);
		/* The job's CPUs, memory and billing, and its nodes: libslurm gives no per-node
		 * CPUs since 24.11, so aif.node_share() divides the job's by its nodes. */
		pg_array_int(&arrays[6], j->cpus);
		put_count(&arrays[7], j->memory_mb);
		put_count(&arrays[8], j->billing);
		pg_array_int(&arrays[9], (int64_t)j->n_nodes);
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

/*
 * Put back the starts of batch that keep[] says, at the end of a round. A queue left empty
 * with many names forgets them: names only grow, and a full table would send every start
 * to the database.
 */
static void put_back(struct allocations *a, const struct started *batch, const bool *keep, size_t n)
{
	pthread_mutex_lock(&a->lock);
	for (size_t i = 0; i < n; i++)
		if (keep[i] && !append_locked(a, batch[i]))
			a->rescan = true;
	if (a->n == a->head && a->nodes.n > NODES_MAX / 2)
		names_forget(&a->nodes);
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
	pthread_mutex_lock(&a->lock); /* for a->nodes, which the writer may grow */
	for (size_t i = 0; i < n; i++) {
		struct usage_record *r = &recs[i];

		if (batch[i].start < oldest) /* too long ago: slurmctld's answer would be late */
			continue;
		keep[i] = true;
		r->event = USAGE_START;
		r->cluster = cluster;
		r->job = batch[i].job;
		r->node = a->nodes.v[batch[i].node]; /* kept until put_back() */
		r->restart = batch[i].restart;
		r->uid = batch[i].uid;
		r->start = batch[i].start;
		settle[m++] = r;
	}
	pthread_mutex_unlock(&a->lock);
	jobtimes_settle(jt, settle, m);
	ok = write_allocations(a, db, cluster, recs, n);
	/* Answered for (slurmctld's allocation, or it does not know the job): done. */
	for (size_t i = 0; i < n && ok; i++)
		keep[i] = keep[i] && !recs[i].exact && !recs[i].forgotten;
out:
	for (size_t i = 0; recs && i < n; i++)
		job_alloc_release(recs[i].alloc);
	if (keep)
		put_back(a, batch, keep, n);
	else /* the database has them */
		want_rescan(a);
	free(keep);
	free(settle);
	free(recs);
	free(batch);
}
