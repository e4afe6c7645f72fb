/*
 * store: group commit of usage records (store.h has the contract).
 *
 * The writer thread owns the connection. The settling thread (store.h) takes the written
 * batches that are not final, settles them and queues them again; the two queues are the
 * only shared state (one mutex).
 * Each group is written by ONE statement (below), run on its own, so that a group costs one
 * round trip whatever its size. The statement merges the records per interval key first
 * (starts and ends of the same key, duplicates), so that its result does not depend on the
 * order of the records, and so that an INSERT ... ON CONFLICT never touches a row twice.
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
#include "decide.h"
#include "jobtimes.h" /* JOBTIMES_TOLERANCE */

/* The largest time to_timestamp() takes without error: 9999-12-31 23:59:59 UTC. */
#define STORE_MAX_TIME 253402300799LL
/*
 * The longest name (cluster, node, project, sector, user) stored: far above any Slurm name
 * (node names are host names, at most 64 bytes), far below what a B-tree entry holds.
 */
#define STORE_MAX_NAME 255

/*
 * A database that stops answering (stopped, a network black hole: TCP keepalives do not see a
 * stopped server) must not hold the writer for ever: a statement not answered within
 * STATEMENT_MS drops the connection, and the group is written again on a new one (the writes
 * are idempotent). While one group has been writing for STALL_MS, new usage is answered
 * "error" at once: the senders spool it, rather than wait for their own timeouts.
 */
#define STATEMENT_MS 20000
#define STALL_MS 10000

/* Settling rounds start at most this often (settler()). */
#define SETTLE_ROUND_MS 1000

#define STORE_NPARAMS 15                      /* the records' arrays */
#define WRITE_NPARAMS (STORE_NPARAMS + 2)     /* the reasons of admissions that charge, the tolerance */

/*
 * $1 is_end, $2 cluster, $3 job, $4 node, $5 restart, $6 project, $7 sector, $8 uid, $9 user,
 * $10 gpus, $11 start (NULL: unknown), $12 end (NULL for starts), $13 exact, $14 final, $15
 * unattributed (why no project can be charged, NULL when one is); $16 the reasons of an
 * admission that charges its project (decide_charging_reasons()); $17 how far a node's clock
 * may be from slurmctld's (JOBTIMES_TOLERANCE).
 * Each row goes to its key's run (sql/010_job_runs.sql, aif.usage_run()): the latest when the
 * record is that job's (a repeat, or the run is open), else the next: a job id used again.
 * An unattributed record goes to aif.unattributed_intervals (start and end merged per key,
 * the nodes' times, never settled), unless its key is an interval of the same uid stored for
 * a project already: then it is that interval's, with its project (a start charged, an end
 * that no longer can be). Another uid's interval is an earlier job of a reused id; while it
 * is open (its end not yet arrived), a record of another uid cannot be its next run (one run
 * of a key is open at a time) nor merged into it: it is unattributed, "job-id-in-use", and
 * moves to its own run when its charged end comes (mv) after the earlier run closed. A final end
 * that is charged moves an open unattributed row of its key and uid into its interval (mv:
 * the row's start serves when the end has none): the job's admission came after its start.
 * An end that is not final (not settled yet) only goes to aif.usage_end_inbox; a final end
 * closes its interval and leaves the inbox (store.h). Per key the first start and the first
 * final end of the group count (WITH ORDINALITY keeps the order of arrival). The start record
 * gives project, sector, uid, user and gpus; an end alone gives its own. An exact end (a
 * settled one) gives the interval's start too (slurmctld's), whatever the start record said.
 * The project and sector are the job's current admission's wherever it has one that charges
 * ($16, aif.admission_current(): the same uid): a job is charged to what it was admitted for,
 * and the close re-tags an interval opened before the admission. An end whose start nobody
 * knows (no start record, slurmctld has forgotten the job) starts at the job's admission: the
 * job was running then, on all its nodes. Not for a requeued run (the admission is the first
 * run's) nor a reused id (it may be the earlier job's: the key has a run, or the job id an
 * interval that ended well before this end): those start at their end.
 * Integers travel as bigint and are cast where stored, so that an out-of-range value is a data
 * error (22003).
 */
static const char WRITE_SQL[] =
	"WITH r0 AS ("
	" SELECT * FROM unnest($1::boolean[], $2::text[], $3::bigint[], $4::text[], $5::bigint[],"
	"  $6::text[], $7::text[], $8::bigint[], $9::text[], $10::bigint[], $11::bigint[],"
	"  $12::bigint[], $13::boolean[], $14::boolean[], $15::text[]) WITH ORDINALITY"
	"  AS r(is_end, cluster, job_id, node, restart_count, project_id, sector_id, uid,"
	"   user_name, gpus, st, en, exact, final, why, i)"
	"), r1 AS (" /* the key's latest run; a record of another uid while it is open clashes */
	" SELECT r0.is_end, r0.cluster, r0.job_id, r0.node, r0.restart_count, r0.project_id,"
	"  r0.sector_id, r0.uid, r0.user_name, r0.gpus, r0.st, r0.en, r0.exact, r0.final, r0.i,"
	"  CASE WHEN r0.why IS NULL AND l.run IS NOT NULL AND l.ended_at IS NULL"
	"   AND l.uid IS DISTINCT FROM r0.uid THEN 'job-id-in-use' ELSE r0.why END AS why,"
	"  l.uid = r0.uid AND aif.usage_run(l.run, l.started_at, l.ended_at, l.uid, r0.uid,"
	"   to_timestamp(coalesce(r0.st, r0.en)), $17::interval) = l.run AS of_latest,"
	"  l.project_id AS l_project, l.sector_id AS l_sector,"
	"  l.run AS l_run, l.started_at AS l_start, l.ended_at AS l_end, l.uid AS l_uid"
	" FROM r0 LEFT JOIN LATERAL (SELECT run, started_at, ended_at, uid, project_id, sector_id"
	"  FROM aif.usage_intervals l WHERE l.cluster = r0.cluster AND l.job_id = r0.job_id"
	"  AND l.node = r0.node AND l.restart_count = r0.restart_count"
	"  ORDER BY l.run DESC LIMIT 1) l ON true"
	"), ru AS ("
	" SELECT r1.*, CASE WHEN of_latest THEN l_project END AS o_project,"
	"  CASE WHEN of_latest THEN l_sector END AS o_sector FROM r1 WHERE why IS NOT NULL"
	"), un AS ("
	" INSERT INTO aif.unattributed_intervals AS x (cluster, job_id, node, restart_count, run,"
	"  reason, project_asked, uid, user_name, gpus, started_at, ended_at)"
	" SELECT g.cluster, g.job_id, g.node, g.restart_count::int,"
	"  aif.usage_run(l.run, l.started_at, l.ended_at, l.uid, g.uid, to_timestamp(g.st), $17::interval),"
	"  g.why, g.project_id, g.uid, g.user_name, g.gpus::int, to_timestamp(g.st),"
	"  CASE WHEN g.en IS NULL THEN NULL ELSE to_timestamp(greatest(g.en, g.st)) END"
	" FROM (SELECT cluster, job_id, node, restart_count, min(why) AS why,"
	"   min(project_id) AS project_id, max(uid) AS uid, min(user_name) AS user_name,"
	"   max(gpus) AS gpus, min(en) AS en,"
	"   coalesce(min(st) FILTER (WHERE NOT is_end), min(st), min(en)) AS st"
	"  FROM ru WHERE o_project IS NULL GROUP BY cluster, job_id, node, restart_count) g"
	" LEFT JOIN LATERAL (SELECT run, started_at, ended_at, uid FROM aif.unattributed_intervals l"
	"  WHERE l.cluster = g.cluster AND l.job_id = g.job_id AND l.node = g.node"
	"  AND l.restart_count = g.restart_count ORDER BY l.run DESC LIMIT 1) l ON true"
	" ON CONFLICT (cluster, job_id, node, restart_count, run) DO UPDATE SET ended_at = excluded.ended_at"
	" WHERE x.ended_at IS NULL AND excluded.ended_at IS NOT NULL"
	"), r AS ("
	" SELECT is_end, cluster, job_id, node, restart_count, project_id, sector_id, uid, user_name,"
	"  gpus, st, en, exact, final, i, l_run, l_start, l_end, l_uid FROM r1 WHERE why IS NULL"
	" UNION ALL"
	" SELECT is_end, cluster, job_id, node, restart_count, o_project, o_sector, uid, user_name,"
	"  gpus, st, en, exact, final, i, l_run, l_start, l_end, l_uid FROM ru WHERE o_project IS NOT NULL"
	"), inbox AS ("
	" INSERT INTO aif.usage_end_inbox (cluster, job_id, node, restart_count, project_id,"
	"  sector_id, uid, user_name, gpus, started_at, ended_at)"
	" SELECT DISTINCT ON (cluster, job_id, node, restart_count) cluster, job_id, node,"
	"  restart_count::int, project_id, sector_id, uid, user_name, gpus::int,"
	"  to_timestamp(st), to_timestamp(en)"
	" FROM r WHERE is_end AND NOT final ORDER BY cluster, job_id, node, restart_count, i"
	" ON CONFLICT DO NOTHING"
	"), settled AS ("
	" DELETE FROM aif.usage_end_inbox x USING r WHERE r.is_end AND r.final"
	"  AND x.cluster = r.cluster AND x.job_id = r.job_id AND x.node = r.node"
	"  AND x.restart_count = r.restart_count"
	"), s AS ("
	" SELECT DISTINCT ON (cluster, job_id, node, restart_count) * FROM r WHERE NOT is_end"
	" ORDER BY cluster, job_id, node, restart_count, i"
	"), e AS ("
	" SELECT DISTINCT ON (cluster, job_id, node, restart_count) * FROM r WHERE is_end AND final"
	" ORDER BY cluster, job_id, node, restart_count, i"
	"), mv AS ("
	" DELETE FROM aif.unattributed_intervals x USING e"
	" WHERE x.cluster = e.cluster AND x.job_id = e.job_id AND x.node = e.node"
	"  AND x.restart_count = e.restart_count AND x.uid = e.uid AND x.ended_at IS NULL"
	" RETURNING x.cluster, x.job_id, x.node, x.restart_count,"
	"  extract(epoch FROM x.started_at)::bigint AS st"
	"), k AS ("
	" SELECT coalesce(s.cluster, e.cluster) AS cluster, coalesce(s.job_id, e.job_id) AS job_id,"
	"  coalesce(s.node, e.node) AS node,"
	"  coalesce(s.restart_count, e.restart_count) AS restart_count,"
	"  CASE WHEN s.i IS NULL THEN e.project_id ELSE s.project_id END AS project_id,"
	"  CASE WHEN s.i IS NULL THEN e.sector_id ELSE s.sector_id END AS sector_id,"
	"  CASE WHEN s.i IS NULL THEN e.uid ELSE s.uid END AS uid,"
	"  CASE WHEN s.i IS NULL THEN e.user_name ELSE s.user_name END AS user_name,"
	"  CASE WHEN s.i IS NULL THEN e.gpus ELSE s.gpus END AS gpus,"
	"  CASE WHEN s.i IS NULL THEN e.l_run ELSE s.l_run END AS l_run," /* r1's lookup, per key */
	"  CASE WHEN s.i IS NULL THEN e.l_start ELSE s.l_start END AS l_start,"
	"  CASE WHEN s.i IS NULL THEN e.l_end ELSE s.l_end END AS l_end,"
	"  CASE WHEN s.i IS NULL THEN e.l_uid ELSE s.l_uid END AS l_uid,"
	"  CASE WHEN e.exact THEN e.st ELSE coalesce(s.st, e.st, mv.st, e.en) END AS st, e.en,"
	"  coalesce(e.exact, false) AS exact,"
	"  CASE WHEN e.i IS NULL THEN NULL"
	"   WHEN coalesce(s.st, e.st, mv.st) IS NULL THEN 'epilog-no-start' ELSE 'epilog' END AS src"
	" FROM s FULL JOIN e ON e.cluster = s.cluster AND e.job_id = s.job_id"
	"  AND e.node = s.node AND e.restart_count = s.restart_count"
	" LEFT JOIN mv ON mv.cluster = e.cluster AND mv.job_id = e.job_id AND mv.node = e.node"
	"  AND mv.restart_count = e.restart_count"
	")"
	" INSERT INTO aif.usage_intervals AS u (cluster, job_id, node, restart_count, run, project_id,"
	"  sector_id, uid, user_name, gpus, started_at, ended_at, end_source, exact)"
	" SELECT k.cluster, k.job_id, k.node, k.restart_count::int,"
	"  aif.usage_run(k.l_run, k.l_start, k.l_end, k.l_uid, k.uid, to_timestamp(k.st), $17::interval),"
	"  coalesce(a.project_id, k.project_id), coalesce(a.sector_id, k.sector_id), k.uid,"
	"  k.user_name, k.gpus::int,"
	"  CASE WHEN k.src = 'epilog-no-start' AND k.restart_count = 0 AND k.l_run IS NULL"
	"   AND a.decided_at < to_timestamp(k.en) AND NOT EXISTS (SELECT 1 FROM aif.usage_intervals o"
	"    WHERE o.cluster = k.cluster AND o.job_id = k.job_id"
	"    AND o.ended_at < to_timestamp(k.en) - $17::interval)"
	"   THEN a.decided_at ELSE to_timestamp(k.st) END,"
	"  CASE WHEN k.en IS NULL THEN NULL ELSE to_timestamp(greatest(k.en, k.st)) END, k.src, k.exact"
	" FROM k LEFT JOIN aif.admissions a ON a.cluster = k.cluster AND a.job_id = k.job_id"
	"  AND a.sector_id IS NOT NULL AND a.reason = ANY ($16::text[])"
	"  AND aif.admission_current(a, k.uid)"
	" ORDER BY k.cluster, k.job_id, k.node, k.restart_count"
	" ON CONFLICT (cluster, job_id, node, restart_count, run) DO UPDATE"
	" SET project_id = excluded.project_id, sector_id = excluded.sector_id,"
	"  started_at = CASE WHEN excluded.exact THEN excluded.started_at ELSE u.started_at END,"
	"  ended_at = greatest(excluded.ended_at,"
	"   CASE WHEN excluded.exact THEN excluded.started_at ELSE u.started_at END),"
	"  end_source = 'epilog', exact = excluded.exact"
	" WHERE u.ended_at IS NULL AND excluded.ended_at IS NOT NULL";

#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)
#define TOLERANCE_TEXT STRINGIFY(JOBTIMES_TOLERANCE) " seconds" /* $17 */

#define WRITE_NAME "aif_store_write" /* WRITE_SQL, prepared on each connection */

struct batch {
	struct batch *next;
	store_done_fn done; /* NULL for a settled batch: acknowledged before */
	void *arg;
	size_t n;
	size_t bytes; /* what it holds in memory, for max_queued_bytes */
	bool final;   /* settled, or nothing to settle: its ends close their intervals */
	int64_t settling_since_ms; /* aif_clock_ms() of its first settling round; 0 before */
	bool written; /* committed (not refused), by the last write_group() */
	bool refused;
	struct aif_diag diag; /* why, when refused */
	struct usage_record recs[]; /* then the strings they point to */
};

/* A growing text buffer for one array parameter. */
struct buf {
	char *data;
	size_t len, cap;
	bool failed; /* out of memory */
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
	char *cluster; /* opts.cluster's copy */
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

	/* The settling thread's: written batches to settle (store.h), under the same lock. */
	pthread_t settler;
	bool settler_started;
	pthread_cond_t settle_wake;
	struct batch_list settling; /* written, not final */
	bool settle_stopping;

	char charging_reasons[512]; /* $16, decide_charging_reasons() */

	/* Writer thread only. */
	struct buf params[STORE_NPARAMS];
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

static void buf_reserve(struct buf *b, size_t more)
{
	size_t cap;
	char *data;

	if (b->failed || b->len + more + 1 <= b->cap)
		return;
	cap = b->cap ? b->cap : 4096;
	while (cap < b->len + more + 1)
		cap *= 2;
	data = realloc(b->data, cap);
	if (!data) {
		b->failed = true;
		return;
	}
	b->data = data;
	b->cap = cap;
}

static void buf_put(struct buf *b, const char *text, size_t len)
{
	buf_reserve(b, len);
	if (b->failed)
		return;
	memcpy(b->data + b->len, text, len);
	b->len += len;
	b->data[b->len] = '\0';
}

static void buf_char(struct buf *b, char c)
{
	buf_put(b, &c, 1);
}

/* An array element: NULL, or a double-quoted string with " and \ escaped (array syntax). */
static void put_text(struct buf *b, const char *text)
{
	const char *p;

	if (!text) {
		buf_put(b, "NULL", 4);
		return;
	}
	buf_char(b, '"');
	for (p = text; *p; p++) {
		if (*p == '"' || *p == '\\')
			buf_char(b, '\\');
		buf_char(b, *p);
	}
	buf_char(b, '"');
}

/* An integer element; negative means NULL (the only negative value is USAGE_TIME_UNKNOWN). */
static void put_int(struct buf *b, int64_t v)
{
	char text[24];
	int len;

	if (v < 0) {
		buf_put(b, "NULL", 4);
		return;
	}
	len = snprintf(text, sizeof(text), "%lld", (long long)v);
	buf_put(b, text, (size_t)len);
}

/* The record arrays of batches[lo, hi); false when out of memory. */
static bool build_params(struct store *s, struct batch **batches, size_t lo, size_t hi)
{
	struct buf *p = s->params;
	bool first = true;

	for (int j = 0; j < STORE_NPARAMS; j++) {
		p[j].len = 0;
		p[j].failed = false;
		buf_char(&p[j], '{');
	}
	for (size_t bi = lo; bi < hi; bi++) {
		const struct batch *b = batches[bi];
		bool final = b->final || !s->opts.settle;

		for (size_t i = 0; i < b->n; i++) {
			const struct usage_record *r = &b->recs[i];
			bool is_end = r->event == USAGE_END;

			if (!first)
				for (int j = 0; j < STORE_NPARAMS; j++)
					buf_char(&p[j], ',');
			first = false;
			buf_char(&p[0], is_end ? 't' : 'f');
			put_text(&p[1], r->cluster);
			put_int(&p[2], r->job);
			put_text(&p[3], r->node);
			put_int(&p[4], r->restart);
			put_text(&p[5], r->project);
			put_text(&p[6], r->sector);
			put_int(&p[7], r->uid);
			put_text(&p[8], r->user);
			put_int(&p[9], r->gpus);
			put_int(&p[10], r->start);
			put_int(&p[11], is_end ? r->end : -1);
			buf_char(&p[12], r->exact ? 't' : 'f');
			buf_char(&p[13], final ? 't' : 'f');
			put_text(&p[14], r->unattributed);
		}
	}
	for (int j = 0; j < STORE_NPARAMS; j++) {
		buf_char(&p[j], '}');
		if (p[j].failed)
			return false;
	}
	return true;
}

/* ---- talking to PostgreSQL ---- */

static enum outcome classify(PGconn *conn, const PGresult *res)
{
	ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	const char *code;

	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return OUTCOME_OK;
	if (PQstatus(conn) == CONNECTION_BAD)
		return OUTCOME_RETRY;
	code = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	if (!code)
		return OUTCOME_RETRY; /* libpq's own error: the connection */
	/* Connection, transaction rollback (deadlock, serialization), operator intervention
	 * (shutdown, cancel), resources, system errors, lock not available. */
	if (strncmp(code, "08", 2) == 0 || strncmp(code, "40", 2) == 0 ||
	    strncmp(code, "57", 2) == 0 || strncmp(code, "53", 2) == 0 ||
	    strncmp(code, "58", 2) == 0 || strcmp(code, "55P03") == 0)
		return OUTCOME_RETRY;
	/* The data: out of range, unknown project or sector, a closed interval, a value beyond
	 * the server's limits (an index row too large: 54000). */
	if (strncmp(code, "22", 2) == 0 || strncmp(code, "23", 2) == 0 ||
	    strncmp(code, "54", 2) == 0 || strcmp(code, "55000") == 0)
		return OUTCOME_DATA;
	return OUTCOME_FAIL;
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
	o = classify(s->db.conn, res);

	if (o != OUTCOME_OK)
		aif_db_diag(diag, s->db.conn, res, sql);
	PQclear(res);
	return o;
}

static enum outcome write_range(struct store *s, struct batch **batches, size_t lo, size_t hi,
				struct aif_diag *diag)
{
	const char *values[WRITE_NPARAMS];
	PGresult *res;
	enum outcome o;

	if (!build_params(s, batches, lo, hi)) {
		aif_diag_clear(diag);
		aif_diag_message(diag, "could not write usage: out of memory");
		return OUTCOME_FAIL;
	}
	for (int j = 0; j < STORE_NPARAMS; j++)
		values[j] = s->params[j].data;
	values[STORE_NPARAMS] = s->charging_reasons;
	values[STORE_NPARAMS + 1] = TOLERANCE_TEXT;
	res = result_by(s, PQsendQueryPrepared(s->db.conn, WRITE_NAME, WRITE_NPARAMS, values, NULL, NULL, 0),
			"could not write usage", diag);
	if (!res)
		return OUTCOME_RETRY;
	o = classify(s->db.conn, res);
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

/*
 * db_setup_fn: prepare WRITE_SQL on each connection. Planning it (a few CTEs over unnest)
 * cost as much as running it for the small groups of a steady job stream.
 */
static int prepare(struct db *db, void *arg, struct aif_diag *diag)
{
	static const char what[] = "could not prepare the usage statement";
	PGresult *res = db_result(db, what,
				  PQsendPrepare(db->conn, WRITE_NAME, WRITE_SQL, WRITE_NPARAMS, NULL),
				  diag);
	bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;

	(void)arg;
	if (res && !ok)
		aif_db_diag(diag, db->conn, res, what);
	PQclear(res);
	return ok ? 0 : -1;
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
	int64_t wait;

	if (s->db.conn) /* the server asked for a retry (a deadlock, a shutdown) */
		db_backoff(&s->db);
	wait = db_retry_at(&s->db) - aif_clock_ms();
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
	size_t records = 0, settled = 0, refused = 0;

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

		b->written = status == 0;
		if (status == STORE_REFUSED)
			store_log(s, 1, &b->diag);
		if (status == 0)
			*(b->done ? &records : &settled) += b->n;
		else if (b->done)
			refused++;
		if (b->done)
			b->done(b->arg, status, status == STORE_REFUSED ? &b->diag : status ? &diag : NULL);
	}
	pthread_mutex_lock(&s->lock);
	if (o == OUTCOME_OK)
		s->stats.groups++;
	s->stats.records += records;
	s->stats.settled += settled;
	s->stats.refused += refused;
	pthread_mutex_unlock(&s->lock);
	if (records || settled)
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

/* ---- settling (store.h) ---- */

/* Append b to the queue (lock held). */
static void enqueue(struct store *s, struct batch *b)
{
	list_append(&s->queue, b);
	s->queued += b->n;
	s->queued_bytes += b->bytes;
	pthread_cond_signal(&s->wake);
}

/* Keep b's ends, to close their intervals; its starts are written already. Returns how many. */
static size_t keep_ends(struct batch *b)
{
	size_t n = 0;

	for (size_t i = 0; i < b->n; i++)
		if (b->recs[i].event == USAGE_END)
			b->recs[n++] = b->recs[i];
	return n;
}

/*
 * After write_group(): the ends of a written batch that is not final go to the settling
 * thread; only ends are settled (store.h).
 */
static void to_settle(struct store *s, struct batch *b)
{
	if (s->opts.settle && !b->final && b->written)
		b->n = keep_ends(b);
	else
		b->n = 0;
	if (!b->n) {
		free(b);
		return;
	}
	pthread_mutex_lock(&s->lock);
	list_append(&s->settling, b);
	pthread_cond_signal(&s->settle_wake);
	pthread_mutex_unlock(&s->lock);
}

/*
 * The settling thread: each round takes the ends of every written batch not yet settled
 * (to_settle(), load_inbox()), settles them (which may wait for slurmctld) and queues them
 * again, final and without done.
 * A round starts at most every SETTLE_ROUND_MS, so that under load one round (one RPC to
 * slurmctld) serves the ends of many jobs; the first end after a quiet spell goes at once.
 */
static void *settler(void *arg)
{
	struct store *s = arg;
	struct usage_record **recs = NULL;
	size_t cap = 0;
	struct timespec next_round;

	now(&next_round);
	pthread_mutex_lock(&s->lock);
	for (;;) {
		struct batch *round, *b, *next;
		size_t n = 0;

		while (!s->settling.head && !s->settle_stopping)
			pthread_cond_wait(&s->settle_wake, &s->lock);
		while (!s->settle_stopping &&
		       pthread_cond_timedwait(&s->settle_wake, &s->lock, &next_round) == 0)
			; /* woken before the round is due: more ends, or stopping */
		if (s->settle_stopping)
			break; /* the ends wait in the inbox for the next start */
		round = s->settling.head;
		s->settling.head = s->settling.tail = NULL;
		pthread_mutex_unlock(&s->lock);
		now(&next_round);
		add_ms(&next_round, SETTLE_ROUND_MS);

		for (b = round; b; b = b->next)
			n += b->n;
		if (n > cap) {
			struct usage_record **r = realloc(recs, n * sizeof(*r));

			if (r) {
				recs = r;
				cap = n;
			}
		}
		if (n <= cap) { /* else out of memory: the nodes' times */
			n = 0;
			for (b = round; b; b = b->next)
				for (size_t i = 0; i < b->n; i++)
					recs[n++] = &b->recs[i];
			s->opts.settle(s->opts.settle_arg, recs, n);
		}

		pthread_mutex_lock(&s->lock);
		for (b = round; b; b = next) {
			int64_t t = aif_clock_ms();
			bool again = false;

			next = b->next;
			if (!b->settling_since_ms)
				b->settling_since_ms = t;
			for (size_t i = 0; i < b->n && !again; i++)
				again = b->recs[i].unanswered;
			if (again && t - b->settling_since_ms < STORE_SETTLE_PATIENCE_MS) {
				list_append(&s->settling, b); /* slurmctld is late: the next round */
				continue;
			}
			b->final = true;
			b->done = NULL;
			enqueue(s, b);
		}
	}
	pthread_mutex_unlock(&s->lock);
	free(recs);
	return NULL;
}

/* Stop the settling thread, if it runs; the ends it holds stay in the inbox. */
static void stop_settler(struct store *s)
{
	if (!s->settler_started)
		return;
	pthread_mutex_lock(&s->lock);
	s->settle_stopping = true;
	pthread_cond_signal(&s->settle_wake);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->settler, NULL);
	s->settler_started = false;
}

static void free_batches(struct batch *b)
{
	while (b) {
		struct batch *next = b->next;

		free(b);
		b = next;
	}
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
			to_settle(s, group[i]);
		maybe_flush(s, false);
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	maybe_flush(s, true);
	free(group);
	return NULL;
}

/* ---- the public side ---- */

static int load_inbox(struct store *s, struct aif_diag *diag);

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
	db_set_setup(&s->db, prepare, NULL);
	if (decide_charging_reasons(s->charging_reasons, sizeof(s->charging_reasons)) < 0) {
		db_close(&s->db);
		free(s);
		aif_diag_message(diag, "could not start the usage writer: reason names too long");
		return -1;
	}
	if (opts)
		s->opts = *opts;
	else
		store_options_init(&s->opts);
	if (s->opts.cluster && !(s->cluster = strdup(s->opts.cluster))) {
		db_close(&s->db);
		free(s);
		aif_diag_message(diag, "could not start the usage writer: out of memory");
		return -1;
	}
	if (!s->opts.max_group_records)
		s->opts.max_group_records = 1;
	/* The schema was checked at start-up (db.h); the first connection is made now. */
	if (!db_get(&s->db, diag))
		goto fail;

	if (s->opts.settle && load_inbox(s, diag) < 0)
		goto fail;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&s->wake, &attr);
	pthread_cond_init(&s->settle_wake, &attr);
	pthread_condattr_destroy(&attr);
	pthread_mutex_init(&s->lock, NULL);
	now(&s->last_flush);
	err = s->opts.settle ? pthread_create(&s->settler, NULL, settler, s) : 0;
	s->settler_started = err == 0 && s->opts.settle;
	if (!err)
		err = pthread_create(&s->thread, NULL, writer, s);
	if (err) {
		aif_diag_message(diag, "could not start the usage writer: %s", strerror(err));
		stop_settler(s);
		pthread_cond_destroy(&s->settle_wake);
		pthread_cond_destroy(&s->wake);
		pthread_mutex_destroy(&s->lock);
		goto fail;
	}
	*out = s;
	return 0;
fail:
	free_batches(s->settling.head);
	db_close(&s->db);
	free(s->cluster);
	free(s);
	return -1;
}

static bool valid_name(const char *v)
{
	return v && v[0] != '\0' && strlen(v) <= STORE_MAX_NAME;
}

static bool valid_time(int64_t t)
{
	return t >= 0 && t <= STORE_MAX_TIME;
}

/* NULL when the record can be stored, else why not. */
static const char *check_record(const struct usage_record *r)
{
	if (r->event != USAGE_START && r->event != USAGE_END)
		return "unknown event";
	if (!valid_name(r->cluster))
		return "no cluster";
	if (!valid_name(r->node))
		return "no node";
	if (r->unattributed ? !valid_name(r->unattributed) : !valid_name(r->project))
		return "no project";
	if (!r->unattributed && !valid_name(r->sector))
		return "no sector";
	if (r->user && strlen(r->user) > STORE_MAX_NAME)
		return "user name too long";
	if (r->event == USAGE_START)
		return valid_time(r->start) ? NULL : "invalid start time";
	if (!valid_time(r->end))
		return "invalid end time";
	if (r->start != USAGE_TIME_UNKNOWN && (!valid_time(r->start) || r->start > r->end))
		return "invalid start time";
	return NULL;
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
 * A batch of copies of recs[0..n), after checking them; NULL with diag (*invalid set when a
 * record can never be stored, may be NULL).
 */
static struct batch *make_batch(const struct usage_record *recs, size_t n, bool *invalid,
				struct aif_diag *diag)
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
		const char *why = check_record(r);

		if (why) {
			if (invalid)
				*invalid = true;
			aif_diag_message(diag, "invalid usage record %zu: %s", i + 1, why);
			aif_diag_detail(diag, "Job %u, node %s, restart %u.", r->job,
					r->node ? r->node : "(none)", r->restart);
			return NULL;
		}
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
		r->unanswered = false; /* the settle function's to say */
		if (r->event == USAGE_START)
			r->end = 0;
	}
	return b;
}

/*
 * The ends an earlier aifd acknowledged and did not close (it stopped meanwhile): to the
 * settling thread, as if just written. Before the threads start. 0, or -1 with diag.
 */
static int load_inbox(struct store *s, struct aif_diag *diag)
{
	static const char sql[] =
		"SELECT cluster, job_id, node, restart_count, project_id, sector_id, uid, user_name,"
		" gpus, extract(epoch FROM started_at)::bigint, extract(epoch FROM ended_at)::bigint"
		" FROM aif.usage_end_inbox WHERE $1::text IS NULL OR cluster = $1"
		" ORDER BY received_at";
	const char *values[1] = {s->cluster};
	PGresult *res = db_exec(&s->db, "could not read the unsettled usage ends", sql, 1, values, diag);
	struct usage_record *recs = NULL;
	struct batch *b = NULL;
	int rows, rc = -1;

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		aif_db_diag(diag, s->db.conn, res, "could not read the unsettled usage ends");
		goto out;
	}
	rows = PQntuples(res);
	if (rows == 0) {
		rc = 0;
		goto out;
	}
	recs = calloc((size_t)rows, sizeof(*recs));
	if (!recs) {
		aif_diag_message(diag, "could not read the unsettled usage ends: out of memory");
		goto out;
	}
	for (int i = 0; i < rows; i++) {
		struct usage_record *r = &recs[i];

		r->event = USAGE_END;
		r->cluster = PQgetvalue(res, i, 0);
		r->job = (uint32_t)strtoul(PQgetvalue(res, i, 1), NULL, 10);
		r->node = PQgetvalue(res, i, 2);
		r->restart = (uint32_t)strtoul(PQgetvalue(res, i, 3), NULL, 10);
		r->project = PQgetvalue(res, i, 4);
		r->sector = PQgetvalue(res, i, 5);
		r->uid = (uint32_t)strtoul(PQgetvalue(res, i, 6), NULL, 10);
		r->user = PQgetisnull(res, i, 7) ? NULL : PQgetvalue(res, i, 7);
		r->gpus = (uint32_t)strtoul(PQgetvalue(res, i, 8), NULL, 10);
		r->start = PQgetisnull(res, i, 9) ? USAGE_TIME_UNKNOWN
						  : strtoll(PQgetvalue(res, i, 9), NULL, 10);
		r->end = strtoll(PQgetvalue(res, i, 10), NULL, 10);
	}
	b = make_batch(recs, (size_t)rows, NULL, diag);
	if (!b) {
		aif_diag_message(diag, "could not read the unsettled usage ends");
		goto out;
	}
	b->written = true;
	list_append(&s->settling, b);
	if (s->opts.log) {
		struct aif_diag info;

		aif_diag_clear(&info);
		aif_diag_message(&info, "closing %d usage intervals whose ends an earlier aifd acknowledged", rows);
		store_log(s, 0, &info);
	}
	rc = 0;
out:
	free(recs);
	PQclear(res);
	return rc;
}

int store_submit(struct store *s, const struct usage_record *recs, size_t n, store_done_fn done,
		 void *arg, struct aif_diag *diag)
{
	struct batch *b;
	bool invalid = false;
	int64_t stalled;

	aif_diag_clear(diag);
	b = make_batch(recs, n, &invalid, diag);
	if (!b)
		return invalid ? STORE_REFUSED : -1;
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
	/* The settling thread first: what it queues, the writer still writes. */
	stop_settler(s);
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	now(&s->stop_deadline);
	add_ms(&s->stop_deadline, s->opts.stop_timeout_ms);
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);

	db_close(&s->db);
	for (int j = 0; j < STORE_NPARAMS; j++)
		free(s->params[j].data);
	free_batches(s->settling.head); /* their ends are in the inbox */
	pthread_cond_destroy(&s->settle_wake);
	pthread_cond_destroy(&s->wake);
	pthread_mutex_destroy(&s->lock);
	free(s->cluster);
	free(s);
}

void store_get_stats(struct store *s, struct store_stats *stats)
{
	pthread_mutex_lock(&s->lock);
	*stats = s->stats;
	pthread_mutex_unlock(&s->lock);
}
