/*
 * store: aifd's usage writer. One PostgreSQL connection and one thread that writes the usage
 * records of many requests in one statement (group commit), so that throughput does not
 * depend on one round trip per message.
 *
 * store_submit() queues a batch (the records of one request) and returns at once; the writer
 * thread takes everything queued (up to max_group_records, whole batches only), writes it with
 * ONE call of aif.record_usage() (usage.h: the records travel as array parameters, never as
 * SQL text), and after the commit calls each batch's done(arg, 0, NULL). A batch is
 * all-or-nothing and its done is called exactly once:
 *
 *   - committed: done(arg, 0, NULL), only after the commit returned;
 *   - refused: done(arg, STORE_REFUSED, diag) when the database refuses the batch itself
 *     however often it is retried (a value out of range). The other batches of the group are
 *     written without it (see store.c: the group is bisected under savepoints), so one bad
 *     client cannot block the others;
 *   - not written: done(arg, -1, diag) when the database refuses the statement for a reason
 *     that is not the batch's (no schema, no rights), or it was still unreachable when
 *     store_stop() gave up. Nothing of the batch is acknowledged; the sender keeps the
 *     records and sends them again (they are idempotent).
 *
 * A lost connection (PostgreSQL restarting, network) is not an answer: the writer reconnects
 * after db.h's backoff and writes the same group again. The writes are idempotent, so a group
 * whose COMMIT was in flight when the connection broke is simply written again, and
 * acknowledged once.
 *
 * What a group does per interval key is aif.record_usage()'s (sql/repeatable/20_usage.sql):
 * a start opens its interval; an end goes to aif.usage_end_inbox when options.written is
 * set (the settler, settle.h, closes it with slurmctld's times and calls it after the commit),
 * else it closes its interval at once.
 *
 * At most every rollup_flush_interval_ms, after commits, the writer calls aif.rollup_flush().
 */
#ifndef AIFD_STORE_H
#define AIFD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aif_diag.h"
#include "usage.h"

/* The status of a batch that can never be written as it is (see "refused" above). */
#define STORE_REFUSED (-2)

/*
 * Called once per batch, from the writer thread: status 0 = committed; STORE_REFUSED = the
 * batch itself is bad; -1 = not written this time; diag says why (valid only during the call).
 * It must not block for long and must not call store_stop(); it may call store_submit().
 */
typedef void (*store_done_fn)(void *arg, int status, const struct aif_diag *diag);

/* Things worth a log line (connection lost or back, a batch refused, a failed rollup flush). */
typedef void (*store_log_fn)(void *arg, int is_error, const struct aif_diag *diag);

struct store_options {
	unsigned rollup_flush_interval_ms; /* 0: never flush; default 5000 */
	size_t max_group_records;          /* records per statement (whole batches); default 20000 */
	size_t max_queued_records;         /* store_submit refuses beyond; default 1000000 */
	size_t max_queued_bytes;           /* and beyond these bytes queued; default 64 MiB */
	unsigned stop_timeout_ms;          /* store_stop keeps retrying a lost database so long; default 15000 */
	store_log_fn log;                  /* may be NULL */
	void *log_arg;
	/*
	 * NULL: an end closes its interval at once, at its own times. Else ends go to the inbox,
	 * and this is called (from the writer thread, never blocking) after a commit, once per
	 * batch committed, with its records: the settler closes the ends and learns the
	 * allocations of the starts (settle.h).
	 */
	void (*written)(void *arg, const struct usage_record *recs, size_t n);
	void *written_arg;
};

/* The defaults above. */
void store_options_init(struct store_options *opts);

struct store;

/*
 * Connect (conninfo as libpq takes it) and start the writer thread; the connection is held
 * by db.h's rule (its schema checked at start-up by the caller). Returns 0, or -1 with diag
 * (nothing to free).
 */
int store_start_opts(const char *conninfo, const struct store_options *opts, struct store **out,
		     struct aif_diag *diag);

/*
 * Queue n >= 1 records as one batch (valid: aif_proto_validate_request() checked what a
 * record may hold; the project is the one charged); thread-safe, never waits for the
 * database. Returns 0 (done will be called exactly once), or -1 with diag, and done is never
 * called: the queue is full, the database has not taken usage for a while, or the store is
 * stopping.
 */
int store_submit(struct store *s, const struct usage_record *recs, size_t n, store_done_fn done,
		 void *arg, struct aif_diag *diag);

/*
 * Stop accepting, write everything queued (retrying a lost database for stop_timeout_ms, then
 * answering the rest -1), join the thread, close the connection and free the store.
 */
void store_stop(struct store *s);

struct store_stats {
	uint64_t groups;       /* statements committed */
	uint64_t records;      /* records committed (acknowledged) */
	uint64_t refused;      /* batches refused (done -1) */
	uint64_t reconnects;   /* connections made after the first */
	uint64_t flushes;      /* successful aif.rollup_flush() calls */
};

void store_get_stats(struct store *s, struct store_stats *stats);

#endif
