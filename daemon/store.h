/*
 * store: aifd's usage writer. One PostgreSQL connection and one thread that writes the usage
 * records of many requests in one statement (group commit), so that throughput does not
 * depend on one round trip per message.
 *
 * store_submit() queues a batch (the records of one request) and returns at once; the writer
 * thread takes everything queued (up to max_group_records, whole batches only), writes it with
 * ONE parameterized statement (the records travel as array parameters, never as SQL text),
 * and after the commit calls each batch's done(arg, 0, NULL). A batch is all-or-nothing and
 * its done is called exactly once:
 *
 *   - committed: done(arg, 0, NULL), only after the commit returned;
 *   - refused: done(arg, STORE_REFUSED, diag) when the batch itself cannot be written however often it
 *     is retried (a record names an unknown project or sector, a value out of range). The
 *     other batches of the group are written without it (see store.c: the group is bisected
 *     under savepoints), so one bad client cannot block the others;
 *   - not written: done(arg, -1, diag) when the database refuses the statement for a reason
 *     that is not the batch's (no schema, no rights), or it was still unreachable when
 *     store_stop() gave up. Nothing of the batch is acknowledged; the sender keeps the
 *     records and sends them again (they are idempotent).
 *
 * A lost connection (PostgreSQL restarting, network) is not an answer: the writer reconnects
 * after db.h's backoff and writes the same group again. The writes are
 * idempotent, so a group whose COMMIT was in flight when the connection broke is simply
 * written again, and acknowledged once.
 *
 * Semantics per interval key (cluster, job, node, restart), for the records of one group in
 * any order, and across groups:
 *   - a start inserts an open interval (nothing when the key is already stored);
 *   - an end closes the open interval (ended_at = its time, end_source 'epilog'; an exact end
 *     also sets started_at to its start, slurmctld's, and the interval's exact to true; an end
 *     that is not exact sets exact to false: one of the two times is the node's); when no
 *     interval is stored and no start is in the group, it inserts the interval closed, with
 *     started_at = the end record's own start time (see struct usage_record), end_source
 *     'epilog'; without a start time it stores a zero-length interval with end_source
 *     'epilog-no-start' (GPU-hours unknown: visible, never invented);
 *   - an end of a closed interval, and any record stored before, change nothing;
 *   - a start and its end in the same group give the closed interval [start, end].
 *   An end earlier than the stored start closes the interval at its start (zero length):
 *   a closed interval can never be corrected later (docs/database.md).
 *
 * Settling (when options.settle is set): the records are acknowledged with the nodes' times,
 * and settled afterwards, so that no prolog or epilog waits for slurmctld. A start is stored
 * at once, at the node's time, and is not settled: its end's settlement gives its interval
 * slurmctld's start too. An end is not closed at once but kept in aif.usage_end_inbox, in the
 * statement that acknowledges it (a closed interval cannot change: docs/database.md); a
 * thread of the store's own then settles the ends of each round (options.settle, which may
 * wait for slurmctld; a round at most every second, so that one serves many jobs under load)
 * and queues them again as final: each closes its interval and leaves the inbox. The ends an
 * earlier aifd left in the inbox (it stopped meanwhile) are settled and closed when the store
 * starts. Without options.settle an end closes at once.
 *
 * At most every rollup_flush_interval_ms, after commits, the writer calls aif.rollup_flush().
 */
#ifndef AIFD_STORE_H
#define AIFD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aif_diag.h"

enum usage_event {
	USAGE_START,
	USAGE_END,
};

/* start of an end record whose allocation start time is not known. */
#define USAGE_TIME_UNKNOWN ((int64_t)-1)

/*
 * One usage record (docs/protocol.md, "usage"). Times are Unix seconds, UTC. An end record
 * may carry the allocation's start time too, from a sender that knows it, so that an end alone
 * is a complete interval when its start never arrived (aif.so's epilog does not know it: a
 * settled end takes slurmctld's StartTime instead). The strings are copied by store_submit().
 */
struct usage_record {
	enum usage_event event;
	const char *cluster; /* Slurm ClusterName */
	uint32_t job;
	const char *node;
	uint32_t restart; /* SLURM_JOB_RESTART_COUNT */
	uint32_t gpus;    /* GPUs of the job on this node */
	int64_t start;    /* allocation start; required for a start, USAGE_TIME_UNKNOWN allowed for an end */
	int64_t end;      /* allocation end; required for an end, ignored for a start */
	const char *project; /* resolved: the store does not resolve defaults */
	const char *sector;
	uint32_t uid;
	const char *user; /* may be NULL */
	/*
	 * NULL, or why no project can be charged (decide_reason_name(): "no-project", ...): the
	 * record goes to aif.unattributed_intervals, project (may be NULL) is only what it named.
	 */
	const char *unattributed;
	/*
	 * start (and end, for an end record) are slurmctld's StartTime (and EndTime) of this run
	 * (daemon/jobtimes.h), not the node's clock: an exact end also settles the stored start.
	 */
	bool exact;
	/*
	 * Set by the settle function: slurmctld was asked for this record's job and has not
	 * answered yet (it is slow, not down). The record is settled again in the next round,
	 * for at most STORE_SETTLE_PATIENCE_MS; then it keeps the nodes' times.
	 */
	bool unanswered;
};

/* How long a batch waits for slurmctld's late answers before its ends close at the nodes' times. */
#define STORE_SETTLE_PATIENCE_MS 15000

/* The status of a batch that can never be written as it is (see "refused" above). */
#define STORE_REFUSED (-2)

/*
 * Called once per batch, from the writer thread: status 0 = committed; STORE_REFUSED = the
 * batch itself is bad; -1 = not written this time; diag says why (valid only during the call). It must not block for long and must not call
 * store_stop(); it may call store_submit().
 */
typedef void (*store_done_fn)(void *arg, int status, const struct aif_diag *diag);

/* Things worth a log line (connection lost or back, a batch refused, a failed rollup flush). */
typedef void (*store_log_fn)(void *arg, int is_error, const struct aif_diag *diag);

/*
 * Called by the store's settling thread with the end records of each round, after they were
 * acknowledged; may change their start, end, exact and unanswered (jobtimes.h), and may wait
 * (for slurmctld) as long as it must.
 */
typedef void (*store_settle_fn)(void *arg, struct usage_record *const *recs, size_t n);

struct store_options {
	unsigned rollup_flush_interval_ms; /* 0: never flush; default 5000 */
	size_t max_group_records;          /* records per statement (whole batches); default 20000 */
	size_t max_queued_records;         /* store_submit refuses beyond; default 1000000 */
	size_t max_queued_bytes;           /* and beyond these bytes queued; default 64 MiB */
	unsigned stop_timeout_ms;          /* store_stop keeps retrying a lost database so long; default 15000 */
	store_log_fn log;                  /* may be NULL */
	void *log_arg;
	store_settle_fn settle;            /* may be NULL: the records' own times, ends close at once */
	void *settle_arg;
	const char *cluster;               /* whose inbox ends the store settles when it starts; NULL: all */
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
 * Queue n >= 1 records as one batch; thread-safe, never waits for the database. Returns 0
 * (done will be called exactly once), or, with diag, and done is never called: STORE_REFUSED
 * when a record can never be stored (diag names it: no node, a name over 255 bytes, a time
 * past 9999, a start after its end), -1 when the queue is full or the store is stopping.
 */
int store_submit(struct store *s, const struct usage_record *recs, size_t n, store_done_fn done,
		 void *arg, struct aif_diag *diag);

/*
 * Stop accepting, write everything queued (retrying a lost database for stop_timeout_ms, then
 * answering the rest -1), join the threads, close the connection and free the store. Ends not
 * yet settled stay in the inbox, for the next start.
 */
void store_stop(struct store *s);

struct store_stats {
	uint64_t groups;       /* statements committed */
	uint64_t records;      /* records committed (acknowledged) */
	uint64_t settled;      /* records written again once settled */
	uint64_t refused;      /* batches refused (done -1) */
	uint64_t reconnects;   /* connections made after the first */
	uint64_t flushes;      /* successful aif.rollup_flush() calls */
};

void store_get_stats(struct store *s, struct store_stats *stats);

#endif
