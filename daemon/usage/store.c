/*
 * store: group commit of usage records (store.h has the contract).
 *
 * The writer thread owns the connection and the queue's consumer side; store_submit() is the
 * producer side (one mutex). Each group is written by ONE call of aif.record_usage() (usage.h),
 * run on its own, so that a group costs one round trip whatever its size.
 *
 * When the statement fails on the data (SQLSTATE classes 22, 23 and 54, and 55000 from the usage
 * triggers), some batch of the group is bad: the group is written again in one transaction,
 * bisected under savepoints (each half in a savepoint; a half that fails is split again) down
 * to the single batches that fail, which are refused; the others commit. A bad batch costs
 * the group about 2 log2(batches) statements, once.
 */
#include "store.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "aif_clock.h"
#include "aif_db.h"
#include "db.h"

/*
 * A database that stops answering (stopped, a network black hole: TCP keepalives do not see a
 * stopped server) must not hold the writer for ever: a statement not answered within
 * STATEMENT_MS drops the connection, and the group is written again on a new one (the writes
 * are idempotent). While one group has been writing for STALL_MS, new usage is answered
 * "error" at once: the senders spool it, rather than wait for their own timeouts.
 */
#define STATEMENT_MS 20000
#define STALL_MS 10000

struct batch {
	struct batch *next;
	store_done_fn done;
	void *arg;
	size_t n;
	size_t bytes; /* what it holds in memory, for max_queued_bytes */
	bool refused;
	struct aif_diag diag; /* why, when refused */
	struct usage_record recs[]; /* then the strings they point to */
};

/* A queue of batches, first in first out. */
struct batch_list {
	struct batch *head, *tail;
};

static void list_append(struct batch_list *l, struct batch *b)
{
	b->next = NULL;
	if (l->tail)
		l->tail->next = b;
	else
		l->head = b;
	l->tail = b;
}

enum outcome {
	OUTCOME_OK,
	OUTCOME_DATA,  /* the data of some batch: bisect */
	OUTCOME_RETRY, /* the connection or the server's state: reconnect, write the group again */
	OUTCOME_FAIL,  /* neither: answer the group -1 */
};

struct store {
	struct store_options opts;
	struct db db; /* writer thread only, after start */
	pthread_t thread;

	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct batch_list queue;
	size_t queued;             /* records in the queue */
	size_t queued_bytes;       /* and the bytes they hold */
	int64_t writing_since_ms;  /* aif_clock_ms() when the group being written was taken; 0: idle */
	bool stopping;
	struct store_stats stats;

	/* Writer thread only. */
	struct usage_params params;
	struct timespec last_flush;
	bool dirty;     /* closed intervals may wait for a rollup flush */
	bool gave_up;   /* stopping and the database stayed unreachable */
	struct timespec stop_deadline;
};

void store_options_init(struct store_options *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->rollup_flush_interval_ms = 5000;
	opts->max_group_records = 20000;
	opts->max_queued_records = 1000000;
	opts->max_queued_bytes = 64u << 20;
	opts->stop_timeout_ms = 15000;
}

static void now(struct timespec *ts)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
}

static long long ms_between(const struct timespec *a, const struct timespec *b)
{
	return (long long)(b->tv_sec - a->tv_sec) * 1000 + (b->tv_nsec - a->tv_nsec) / 1000000;
}

static void add_ms(struct timespec *ts, unsigned ms)
{
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void store_log(struct store *s, int is_error, const struct aif_diag *diag)
{
	if (s->opts.log)
		s->opts.log(s->opts.log_arg, is_error, diag);
}

/* ---- array parameters ---- */

/* The parameters of batches[lo, hi); NULL when out of memory. */
static const char *const *build_params(struct store *s, struct batch **batches, size_t lo, size_t hi)
{
	/* Without a settler, an end closes at once; with one, it goes to the inbox. */
	bool final = !s->opts.written;

	usage_params_start(&s->params);
	for (size_t bi = lo; bi < hi; bi++)
		for (size_t i = 0; i < batches[bi]->n; i++)
			usage_params_add(&s->params, &batches[bi]->recs[i], final);
	return usage_params_end(&s->params);
}

/* ---- talking to PostgreSQL ---- */

/* Which way a statement went: db_outcome()'s, in the writer's terms. */
static enum outcome classify(const struct store *s, const PGresult *res)
{
	static const enum outcome map[] = {[DB_OK] = OUTCOME_OK, [DB_DATA] = OUTCOME_DATA,
					   [DB_RETRY] = OUTCOME_RETRY, [DB_FAIL] = OUTCOME_FAIL};

	return map[db_outcome(&s->db, res)];
}

/* The result of a statement sent with PQsend*() on the writer's connection (db_result()). */
static PGresult *result_by(struct store *s, int sent, const char *what, struct aif_diag *diag)
{
	return db_result(&s->db, what, sent, diag);
}

/* Run a statement without parameters; the outcome, diag on failure. */
static enum outcome run(struct store *s, const char *sql, struct aif_diag *diag)
{
	PGresult *res = result_by(s, PQsendQuery(s->db.conn, sql), sql, diag);
	enum outcome o;

	if (!res)
		return OUTCOME_RETRY;
	o = classify(s, res);

	if (o != OUTCOME_OK)
		aif_db_diag(diag, s->db.conn, res, sql);
	PQclear(res);
	return o;
}

static enum outcome write_range(struct store *s, struct batch **batches, size_t lo, size_t hi,
				struct aif_diag *diag)
{
	const char *const *values = build_params(s, batches, lo, hi);
	PGresult *res;
	enum outcome o;

	if (!values) {
		aif_diag_clear(diag);
		aif_diag_message(diag, "could not write usage: out of memory");
		return OUTCOME_FAIL;
	}
	/* prepared on the connection at its first run (db.h): planning it cost as much as running
	 * it for the small groups of a steady job stream */
	res = db_run(&s->db, "could not write usage", usage_write_sql, USAGE_WRITE_NPARAMS, values, diag);
	if (!res)
		return OUTCOME_RETRY;
	o = classify(s, res);
	if (o != OUTCOME_OK)
		aif_db_diag(diag, s->db.conn, res, "could not write usage");
	PQclear(res);
	return o;
}

/*
 * Inside a transaction: write batches[lo, hi) under a savepoint; when their data fails, split
 * them, down to single batches, which are marked refused. known_bad: this range is known to
 * fail, do not try it whole again. Returns OK, RETRY or FAIL (then the transaction is lost).
 */
static enum outcome bisect(struct store *s, struct batch **batches, size_t lo, size_t hi,
			   bool known_bad, struct aif_diag *diag)
{
	enum outcome o;
	size_t mid;

	if (!known_bad) {
		o = run(s, "SAVEPOINT aif_store", diag);
		if (o != OUTCOME_OK)
			return o == OUTCOME_DATA ? OUTCOME_FAIL : o;
		o = write_range(s, batches, lo, hi, diag);
		if (o == OUTCOME_OK)
			return run(s, "RELEASE SAVEPOINT aif_store", diag);
		if (o != OUTCOME_DATA)
			return o;
		o = run(s, "ROLLBACK TO SAVEPOINT aif_store", diag);
		if (o == OUTCOME_OK)
			o = run(s, "RELEASE SAVEPOINT aif_store", diag);
		if (o != OUTCOME_OK)
			return o == OUTCOME_DATA ? OUTCOME_FAIL : o;
		if (hi - lo == 1) {
			batches[lo]->refused = true;
			batches[lo]->diag = *diag;
			return OUTCOME_OK;
		}
	}
	mid = lo + (hi - lo) / 2;
	o = bisect(s, batches, lo, mid, false, diag);
	if (o == OUTCOME_OK)
		o = bisect(s, batches, mid, hi, false, diag);
	return o;
}

static enum outcome write_bisected(struct store *s, struct batch **batches, size_t nb,
				   struct aif_diag *diag)
{
	enum outcome o = run(s, "BEGIN", diag);

	if (o == OUTCOME_OK)
		o = bisect(s, batches, 0, nb, true, diag);
	if (o == OUTCOME_OK)
		o = run(s, "COMMIT", diag);
	if (o == OUTCOME_DATA)
		o = OUTCOME_FAIL;
	return o;
}

/* The writer's connection, made if need be; false (diag) when the database cannot be reached now. */
static bool ensure_connected(struct store *s, struct aif_diag *diag)
{
	bool ok = db_get(&s->db, diag) != NULL;

	pthread_mutex_lock(&s->lock);
	s->stats.reconnects = s->db.reconnects;
	pthread_mutex_unlock(&s->lock);
	return ok;
}

/* After a RETRY outcome: keep a healthy connection (out of any transaction), else drop it. */
static void recover(struct store *s, const struct aif_diag *why)
{
	if (s->db.conn && PQstatus(s->db.conn) == CONNECTION_OK &&
	    PQtransactionStatus(s->db.conn) != PQTRANS_IDLE) {
		struct aif_diag ignored;
		PGresult *res = result_by(s, PQsendQuery(s->db.conn, "ROLLBACK"), "ROLLBACK", &ignored);

		if (res && PQresultStatus(res) != PGRES_COMMAND_OK)
			db_lost(&s->db, why);
		PQclear(res);
	}
	if (s->db.conn && PQstatus(s->db.conn) != CONNECTION_OK)
		db_lost(&s->db, why);
}

static bool stop_expired(struct store *s)
{
	struct timespec t;
	bool stopping;

	pthread_mutex_lock(&s->lock);
	stopping = s->stopping;
	pthread_mutex_unlock(&s->lock);
	if (!stopping)
		return false;
	now(&t);
	return ms_between(&s->stop_deadline, &t) >= 0;
}

/* Wait out the database's backoff before the group is written again (db.h). */
static void backoff(struct store *s)
{
	/* db_result() backed off: the connection lost, or the server asked for a retry */
	int64_t wait = db_retry_at(&s->db) - aif_clock_ms();

	if (wait > 0)
		sleep_ms((unsigned)wait);
}

/*
 * Write one group until it is decided: every batch with a done gets it exactly once, after the
 * decision (committed, refused or failed).
 */
static void write_group(struct store *s, struct batch **batches, size_t nb)
{
	struct aif_diag diag;
	enum outcome o;
	size_t records = 0, refused = 0;

	aif_diag_clear(&diag);
	for (;;) {
		for (size_t i = 0; i < nb; i++)
			batches[i]->refused = false;
		if (s->gave_up) {
			o = OUTCOME_FAIL;
			aif_diag_message(&diag, "usage not written: the aif database was unreachable "
						"when aifd stopped");
			break;
		}
		if (!ensure_connected(s, &diag)) {
			o = OUTCOME_RETRY;
		} else {
			o = write_range(s, batches, 0, nb, &diag);
			if (o == OUTCOME_DATA && nb == 1) { /* nothing written: refuse it */
				batches[0]->refused = true;
				batches[0]->diag = diag;
				o = OUTCOME_OK;
			} else if (o == OUTCOME_DATA) {
				o = write_bisected(s, batches, nb, &diag);
			}
		}
		if (o != OUTCOME_RETRY)
			break;
		recover(s, &diag);
		if (stop_expired(s)) {
			s->gave_up = true;
			store_log(s, 1, &diag);
			continue;
		}
		backoff(s);
	}
	if (o == OUTCOME_FAIL) {
		store_log(s, 1, &diag);
		recover(s, &diag);
	}
	for (size_t i = 0; i < nb; i++) {
		struct batch *b = batches[i];
		int status = o == OUTCOME_FAIL ? -1 : b->refused ? STORE_REFUSED : 0;

		if (status == STORE_REFUSED)
			store_log(s, 1, &b->diag);
		if (status == 0) {
			records += b->n;
			if (s->opts.written) /* to the settler */
				s->opts.written(s->opts.written_arg, b->recs, b->n);
		} else {
			refused++;
		}
		b->done(b->arg, status, status == STORE_REFUSED ? &b->diag : status ? &diag : NULL);
	}
	pthread_mutex_lock(&s->lock);
	if (o == OUTCOME_OK)
		s->stats.groups++;
	s->stats.records += records;
	s->stats.refused += refused;
	pthread_mutex_unlock(&s->lock);
	if (records)
		s->dirty = true;
}

/* aif.rollup_flush() when due (or forced), on a healthy connection; failures are logged only. */
static void maybe_flush(struct store *s, bool force)
{
	struct aif_diag diag;
	struct timespec t;

	if (!s->dirty || !s->opts.rollup_flush_interval_ms || s->gave_up)
		return;
	now(&t);
	if (!force && ms_between(&s->last_flush, &t) < (long long)s->opts.rollup_flush_interval_ms)
		return;
	s->last_flush = t; /* also when it fails: try again one interval later */
	if (!ensure_connected(s, &diag)) {
		store_log(s, 1, &diag);
		return;
	}
	if (run(s, "SELECT aif.rollup_flush()", &diag) != OUTCOME_OK) {
		store_log(s, 1, &diag);
		recover(s, &diag);
		return;
	}
	s->dirty = false;
	pthread_mutex_lock(&s->lock);
	s->stats.flushes++;
	pthread_mutex_unlock(&s->lock);
}

/* Append b to the queue (lock held). */
static void enqueue(struct store *s, struct batch *b)
{
	list_append(&s->queue, b);
	s->queued += b->n;
	s->queued_bytes += b->bytes;
	pthread_cond_signal(&s->wake);
}

static void *writer(void *arg)
{
	struct store *s = arg;
	struct batch **group = NULL;
	size_t group_cap = 0;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		size_t nb = 0, records = 0, bytes = 0;
		struct batch *b;

		while (!s->queue.head && !s->stopping) {
			if (s->dirty && s->opts.rollup_flush_interval_ms) {
				struct timespec due = s->last_flush;

				add_ms(&due, s->opts.rollup_flush_interval_ms);
				if (pthread_cond_timedwait(&s->wake, &s->lock, &due) == ETIMEDOUT) {
					pthread_mutex_unlock(&s->lock);
					maybe_flush(s, false);
					pthread_mutex_lock(&s->lock);
				}
			} else {
				pthread_cond_wait(&s->wake, &s->lock);
			}
		}
		if (!s->queue.head)
			break; /* stopping, all written */
		/* Whole batches, up to the cap (a larger batch goes alone). */
		for (b = s->queue.head; b && (nb == 0 || records + b->n <= s->opts.max_group_records);
		     b = b->next) {
			if (nb == group_cap) {
				size_t cap = group_cap ? group_cap * 2 : 64;
				struct batch **g = realloc(group, cap * sizeof(*g));

				if (!g)
					break;
				group = g;
				group_cap = cap;
			}
			group[nb++] = b;
			records += b->n;
			bytes += b->bytes;
		}
		if (nb == 0) { /* out of memory for the group array: wait and try again */
			pthread_mutex_unlock(&s->lock);
			sleep_ms(100);
			pthread_mutex_lock(&s->lock);
			continue;
		}
		s->queue.head = b;
		if (!b)
			s->queue.tail = NULL;
		s->queued -= records;
		s->queued_bytes -= bytes;
		s->writing_since_ms = aif_clock_ms();
		pthread_mutex_unlock(&s->lock);

		write_group(s, group, nb);
		pthread_mutex_lock(&s->lock);
		s->writing_since_ms = 0;
		pthread_mutex_unlock(&s->lock);
		for (size_t i = 0; i < nb; i++)
			free(group[i]);
		maybe_flush(s, false);
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	maybe_flush(s, true);
	free(group);
	return NULL;
}

/* ---- the public side ---- */

int store_start_opts(const char *conninfo, const struct store_options *opts, struct store **out,
		     struct aif_diag *diag)
{
	struct store *s;
	pthread_condattr_t attr;
	int err;

	aif_diag_clear(diag);
	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s || db_init(&s->db, conninfo, "aifd-store", "the usage writer", STATEMENT_MS) < 0) {
		if (s)
			db_close(&s->db);
		free(s);
		aif_diag_message(diag, "could not start the usage writer: out of memory");
		return -1;
	}
	if (opts)
		s->opts = *opts;
	else
		store_options_init(&s->opts);
	if (!s->opts.max_group_records)
		s->opts.max_group_records = 1;
	/* The schema was checked at start-up (db.h); the first connection is made now. */
	if (!db_get(&s->db, diag))
		goto fail;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&s->wake, &attr);
	pthread_condattr_destroy(&attr);
	pthread_mutex_init(&s->lock, NULL);
	now(&s->last_flush);
	err = pthread_create(&s->thread, NULL, writer, s);
	if (err) {
		aif_diag_message(diag, "could not start the usage writer: %s", strerror(err));
		pthread_cond_destroy(&s->wake);
		pthread_mutex_destroy(&s->lock);
		goto fail;
	}
	*out = s;
	return 0;
fail:
	db_close(&s->db);
	free(s);
	return -1;
}

static size_t str_size(const char *v)
{
	return v ? strlen(v) + 1 : 0;
}

static const char *copy_str(char **pool, const char *v)
{
	size_t len;
	char *copy;

	if (!v)
		return NULL;
	len = strlen(v) + 1;
	copy = memcpy(*pool, v, len);
	*pool += len;
	return copy;
}

/*
 * A batch of copies of recs[0..n) (valid: aif_proto_validate_request() checked what a record
 * may hold); NULL with diag.
 */
static struct batch *make_batch(const struct usage_record *recs, size_t n, struct aif_diag *diag)
{
	struct batch *b;
	size_t strings = 0, size;
	char *pool;

	if (n == 0) {
		aif_diag_message(diag, "no usage records to store");
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		const struct usage_record *r = &recs[i];

		strings += str_size(r->cluster) + str_size(r->node) + str_size(r->project) +
			   str_size(r->sector) + str_size(r->user) + str_size(r->unattributed);
	}
	size = sizeof(*b) + n * sizeof(b->recs[0]) + strings;
	b = calloc(1, size);
	if (!b) {
		aif_diag_message(diag, "could not queue usage records: out of memory");
		return NULL;
	}
	b->n = n;
	b->bytes = size;
	pool = (char *)&b->recs[n];
	for (size_t i = 0; i < n; i++) {
		struct usage_record *r = &b->recs[i];

		*r = recs[i];
		r->cluster = copy_str(&pool, recs[i].cluster);
		r->node = copy_str(&pool, recs[i].node);
		r->project = copy_str(&pool, recs[i].project);
		r->sector = copy_str(&pool, recs[i].sector);
		r->user = copy_str(&pool, recs[i].user);
		r->unattributed = copy_str(&pool, recs[i].unattributed);
		r->unanswered = false;
		if (r->event == USAGE_START)
			r->end = 0;
	}
	return b;
}

int store_submit(struct store *s, const struct usage_record *recs, size_t n, store_done_fn done,
		 void *arg, struct aif_diag *diag)
{
	struct batch *b;
	int64_t stalled;

	aif_diag_clear(diag);
	b = make_batch(recs, n, diag);
	if (!b)
		return -1;
	b->done = done;
	b->arg = arg;
	pthread_mutex_lock(&s->lock);
	/* Bounded in records and in bytes (names make a record up to about 1.3 kB); a batch
	 * larger than the byte bound still goes when nothing else waits. */
	stalled = s->writing_since_ms ? aif_clock_ms() - s->writing_since_ms : 0;
	if (s->stopping || stalled > STALL_MS || s->queued + n > s->opts.max_queued_records ||
	    (s->queued_bytes && s->queued_bytes + b->bytes > s->opts.max_queued_bytes)) {
		bool stopping = s->stopping;
		size_t records = s->queued, bytes = s->queued_bytes;

		pthread_mutex_unlock(&s->lock);
		free(b);
		if (stopping) {
			aif_diag_message(diag, "aifd is stopping");
		} else if (stalled > STALL_MS) {
			aif_diag_message(diag, "the aif database has not taken usage for %lld s",
					 (long long)(stalled / 1000));
			aif_diag_hint(diag, "Send the records again later; aifd keeps trying the database.");
		} else {
			aif_diag_message(diag, "too many usage records waiting to be written");
			aif_diag_detail(diag, "%zu records (%zu bytes) are queued for the database; the limits are %zu records and %zu bytes.",
					records, bytes, s->opts.max_queued_records, s->opts.max_queued_bytes);
			aif_diag_hint(diag, "Send them again later; the database may be slow or unreachable.");
		}
		return -1;
	}
	enqueue(s, b);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

void store_stop(struct store *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	now(&s->stop_deadline);
	add_ms(&s->stop_deadline, s->opts.stop_timeout_ms);
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);

	db_close(&s->db);
	usage_params_free(&s->params);
	pthread_cond_destroy(&s->wake);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

void store_get_stats(struct store *s, struct store_stats *stats)
{
	pthread_mutex_lock(&s->lock);
	*stats = s->stats;
	pthread_mutex_unlock(&s->lock);
}
