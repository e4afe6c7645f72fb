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
#define NODES_MAX 65536 /* node names kept: a cluster's nodes, with room to spare */

/* A start to ask slurmctld about: its interval's key, its node by number (nodes[]). */
struct started {
	uint32_t job, restart, uid, node;
	int64_t start;
};

struct allocations {
	pthread_mutex_t lock;
	struct started *queue; /* lock: [head, n) queued, oldest first */
	size_t head, n, cap;   /* lock */
	uint64_t appended;     /* lock: starts the writer queued, ever */
	bool rescan;           /* lock: the next round reads the database */
	/*
	 * lock: each node name queued, once (a start costs the queue 24 bytes, not a copy of
	 * its name). Only the settler's thread forgets them, after its round (put_back()), so
	 * that it reads the names it took under the lock after it. by_name: 1 + a name's
	 * number, 0 empty; open addressing.
	 */
	char **nodes;
	uint32_t n_nodes, nodes_cap, *by_name, by_name_cap;
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

/* Forget the node names, which nothing queued refers to. Lock held, no round's names in use. */
static void forget_nodes(struct allocations *a)
{
	for (uint32_t i = 0; i < a->n_nodes; i++)
		free(a->nodes[i]);
	a->n_nodes = 0;
	if (a->by_name)
		memset(a->by_name, 0, a->by_name_cap * sizeof(*a->by_name));
}

void allocations_free(struct allocations *a)
{
	if (!a)
		return;
	forget_nodes(a);
	free(a->nodes);
	free(a->by_name);
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

/* The slot of by_name[] that holds name, or the empty one where it goes. Lock held. */
static uint32_t *name_slot(struct allocations *a, const char *name)
{
	uint32_t i = name_hash(name) & (a->by_name_cap - 1);

	while (a->by_name[i] && strcmp(a->nodes[a->by_name[i] - 1], name) != 0)
		i = (i + 1) & (a->by_name_cap - 1);
	return &a->by_name[i];
}

/* name's number in nodes[], added if new; false when out of room (the database has the start). */
static bool node_number(struct allocations *a, const char *name, uint32_t *number)
{
	uint32_t *slot = a->by_name_cap ? name_slot(a, name) : NULL;

	if (slot && *slot) {
		*number = *slot - 1;
		return true;
	}
	if (2 * (a->n_nodes + 1) > a->by_name_cap) { /* at most half full */
		uint32_t cap = a->by_name_cap ? 2 * a->by_name_cap : 64;
		uint32_t *old = a->by_name, old_cap = a->by_name_cap;

		if (a->n_nodes >= NODES_MAX || !(a->by_name = calloc(cap, sizeof(*a->by_name)))) {
			a->by_name = old;
			return false;
		}
		a->by_name_cap = cap;
		for (uint32_t i = 0; i < old_cap; i++)
			if (old[i])
				*name_slot(a, a->nodes[old[i] - 1]) = old[i];
		free(old);
	}
	if (a->n_nodes == a->nodes_cap) {
		uint32_t cap = a->nodes_cap ? 2 * a->nodes_cap : 32;
		char **nodes = realloc(a->nodes, cap * sizeof(*nodes));

		if (!nodes)
			return false;
		a->nodes = nodes;
		a->nodes_cap = cap;
	}
	if (!(a->nodes[a->n_nodes] = strdup(name)))
		return false;
	*name_slot(a, name) = ++a->n_nodes; /* (the slot was empty: name was not there) */
	*number = a->n_nodes - 1;
	return true;
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
		struct started s = {r->job, r->restart, r->uid, 0, r->start};

		/* (an unattributed interval is charged to no budget) */
		if (r->event != USAGE_START || r->unattributed)
			continue;
		if (node_number(a, r->node, &s.node) && append_locked(a, s))
			a->appended++;
		else /* the next round reads the database, which has it */
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
 * Read outside the lock; the writer waits only while the rows' nodes are numbered (the first
 * round, and one after an overflow). The database holds every start committed before the
 * read, so the entries queued before it are dropped: an overflowing queue keeps the newest
 * starts, not the oldest.
 */
static bool read_unasked(struct allocations *a, struct db *db, const char *cluster)
{
	const char *params[] = {cluster};
	struct started *q, *old = NULL;
	PGresult *res;
	uint64_t mark;
	size_t rows, tail;
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
	pthread_mutex_lock(&a->lock);
	/* The writer's starts since the read began are the queue's last entries. */
	tail = a->appended - mark < a->n - a->head ? (size_t)(a->appended - mark) : a->n - a->head;
	q = malloc((rows + tail > 0 ? rows + tail : 1) * sizeof(*q));
	if (!q) {
		whole = false;
	} else {
		size_t m = 0;

		for (size_t i = rows; i-- > 0;) { /* oldest first */
			struct started s = {(uint32_t)strtoul(PQgetvalue(res, (int)i, 0), NULL, 10),
					    (uint32_t)strtoul(PQgetvalue(res, (int)i, 2), NULL, 10),
					    (uint32_t)strtoul(PQgetvalue(res, (int)i, 3), NULL, 10), 0,
					    strtoll(PQgetvalue(res, (int)i, 4), NULL, 10)};

			if (node_number(a, PQgetvalue(res, (int)i, 1), &s.node))
				q[m++] = s;
			else
				whole = false;
		}
		if (tail)
			memcpy(q + m, a->queue + a->n - tail, tail * sizeof(*q));
		old = a->queue;
		a->queue = q;
		a->head = 0;
		a->n = a->cap = m + tail;
	}
	if (!whole)
		a->rescan = true;
	pthread_mutex_unlock(&a->lock);
	PQclear(res);
	free(old);
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
	if (a->n == a->head && a->n_nodes > NODES_MAX / 2)
		forget_nodes(a);
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
	pthread_mutex_lock(&a->lock); /* for nodes[], which the writer may grow */
	for (size_t i = 0; i < n; i++) {
		struct usage_record *r = &recs[i];

		if (batch[i].start < oldest) /* too long ago: slurmctld's answer would be late */
			continue;
		keep[i] = true;
		r->event = USAGE_START;
		r->cluster = cluster;
		r->job = batch[i].job;
		r->node = a->nodes[batch[i].node]; /* kept until put_back() */
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
