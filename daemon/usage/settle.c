/* settle: ends acknowledged, settled with slurmctld's times, then closed (settle.h). */
#include "settle.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "aif_clock.h"
#include "aif_db.h"
#include "allocations.h"
#include "db.h"
#include "joballoc.h"
#include "log.h"
#include "slurmdbd.h"
#include "wakeup.h"

#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

/* The longest one statement may take before the connection is dropped. */
#define SETTLE_STATEMENT_MS 20000
/* Without a poke, the inbox is looked at this often all the same. */
#define SETTLE_IDLE_MS 60000
/* A round that fails again and again says so this often. */
#define SETTLE_LOG_EVERY_MS 60000

static const char READ_SQL[] =
	"SELECT cluster, job_id, node, restart_count, project_id, sector_id, uid, user_name, gpus,"
	" extract(epoch FROM started_at)::bigint, extract(epoch FROM ended_at)::bigint,"
	" (extract(epoch FROM now() - received_at) * 1000)::bigint"
	" FROM aif.usage_end_inbox WHERE cluster = $1 ORDER BY received_at LIMIT " STRINGIFY(SETTLE_ROUND_MAX);

/* An end that cannot be closed: its interval is left to reconciliation. */
static const char DROP_SQL[] =
	"DELETE FROM aif.usage_end_inbox WHERE cluster = $1 AND job_id = $2 AND node = $3"
	" AND restart_count = $4";

struct settle {
	char *cluster;
	struct jobtimes *jobtimes;
	void (*closed)(void *arg);
	void *closed_arg;
	struct db db;             /* the thread's alone */
	struct usage_params params;
	struct waker waker;       /* the thread: records written, or stopping */
	bool ends_written;        /* __atomic: set by settle_written(), taken by the thread */
	struct allocations *allocations; /* the starts to ask slurmctld's allocation of */
	bool said_left;           /* the ends an earlier aifd left were logged */
	struct log_limit failures; /* one warning a minute while rounds fail */
	struct slurmdbd_lookup *dbd; /* a lookup not answered in its round, still going on */
	struct slurmdbd_run *dbd_runs; /* what it was asked (its answers), sorted by job and end */
	size_t dbd_n;
	int64_t dbd_since_ms;     /* when it started */
	bool dbd_said_slow;       /* that it is slow was logged */
	int64_t dbd_quiet_until_ms; /* not asked before then: none named, or it failed or lacked runs */
	bool dbd_none;            /* ... because slurm.conf names none: nothing to wait for */
	struct log_limit dbd_failures;
};

static int64_t field_i64(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? USAGE_TIME_UNKNOWN
					  : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* The inbox rows as end records, pointing into res. */
static void read_ends(const PGresult *res, struct usage_record *recs, int64_t *age_ms)
{
	for (int i = 0; i < PQntuples(res); i++) {
		struct usage_record *r = &recs[i];

		memset(r, 0, sizeof(*r));
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
		r->start = field_i64(res, i, 9);
		r->end = field_i64(res, i, 10);
		age_ms[i] = field_i64(res, i, 11);
	}
}

/* Close recs[0..n) (final ends) in one statement: its outcome, diag when not DB_OK. */
static enum db_outcome close_ends(struct settle *s, struct usage_record *const *recs, size_t n,
				  struct aif_diag *diag)
{
	const char *const *values;
	PGresult *res;
	enum db_outcome o;

	usage_params_start(&s->params);
	for (size_t i = 0; i < n; i++)
		usage_params_add(&s->params, recs[i], true);
	values = usage_params_end(&s->params);
	if (!values) {
		aif_diag_clear(diag);
		aif_diag_message(diag, "could not close usage intervals: out of memory");
		return DB_RETRY;
	}
	res = db_exec(&s->db, "could not close usage intervals", usage_write_sql,
		      USAGE_WRITE_NPARAMS, values, diag);
	o = db_outcome(&s->db, res);
	if (res && o != DB_OK)
		aif_db_diag(diag, s->db.conn, res, "could not close usage intervals");
	PQclear(res);
	return o;
}

/*
 * The database refused a group for its data: each end alone, so that one cannot hold back the
 * others. One refused alone for its data is left to reconciliation (its inbox row removed);
 * any other failure stops here and keeps the rest for a later round. False when stopped early.
 */
static bool close_one_by_one(struct settle *s, struct usage_record *const *recs, size_t n)
{
	for (size_t i = 0; i < n && !waker_stopping(&s->waker); i++) {
		const struct usage_record *r = recs[i];
		char job[16], restart[16];
		const char *key[] = {r->cluster, job, r->node, restart};
		struct aif_diag d;
		enum db_outcome o = close_ends(s, &recs[i], 1, &d);

		if (o == DB_OK)
			continue;
		if (o != DB_DATA)
			return false;
		aif_diag_hint(&d, "Reconciliation closes the interval of job %u on node %s at slurmctld's "
				  "end time instead.", r->job, r->node);
		log_diag(LOG_LEVEL_WARNING, NULL, &d);
		snprintf(job, sizeof(job), "%u", r->job);
		snprintf(restart, sizeof(restart), "%u", r->restart);
		PQclear(db_exec(&s->db, "could not drop an end from the inbox", DROP_SQL, 4, key, &d));
	}
	return true;
}

/*
 * A round's failure that is not the data's: logged at most every SETTLE_LOG_EVERY_MS (db.c
 * backs off the database when that is what failed).
 */
static void round_failed(struct settle *s, const struct aif_diag *d)
{
	if (d->message[0] && log_limit_pass(&s->failures, aif_clock_ms()))
		log_diag(LOG_LEVEL_WARNING, NULL, d);
}

/*
 * An end step 3 asks slurmdbd for (settle.h): slurmctld forgot its job. Not a requeued run's:
 * a run whose own record slurmdbd lacks yet could be taken for the run before it.
 */
static bool for_slurmdbd(const struct usage_record *r)
{
	return r->forgotten && !r->exact && r->restart == 0;
}

static int by_job_end(const void *a, const void *b)
{
	const struct slurmdbd_run *x = a, *y = b;

	if (x->job != y->job)
		return (x->job > y->job) - (x->job < y->job);
	return (x->first > y->first) - (x->first < y->first);
}

/*
 * Apply a lookup's answer (runs[0..m), sorted by job and end) to the ends of recs[0..n) it
 * was asked for: slurmdbd's start and end where they are the run's (its record's user is the
 * end's, and it ended by the epilog's time). An end it has no such record for, or all of them
 * when slurmdbd failed, waits (wait[i]) while younger than SETTLE_SLURMDBD_PATIENCE_MS:
 * slurmctld may still be sending slurmdbd what it queued; so does one it was not asked for
 * (it came while the lookup went on). Returns how many ends took times.
 */
static size_t take_answer(struct settle *s, enum slurmdbd_answer answer, struct aif_diag *why,
			  const struct slurmdbd_run *runs, size_t m, struct usage_record *recs,
			  size_t n, const int64_t *age_ms, bool *wait)
{
	int64_t now = aif_clock_ms();
	size_t took = 0, no_start = 0, missing = 0;

	if (answer == SLURMDBD_NONE) { /* slurm.conf names none: nothing to wait for */
		s->dbd_none = true;
		s->dbd_quiet_until_ms = now + SETTLE_SLURMDBD_PATIENCE_MS;
		return 0;
	}
	s->dbd_none = false;
	for (size_t i = 0; i < n; i++) {
		struct usage_record *r = &recs[i];
		struct slurmdbd_run key = {.job = r->job, .first = (time_t)r->end};
		const struct slurmdbd_run *run;

		if (!for_slurmdbd(r))
			continue;
		if (!(run = bsearch(&key, runs, m, sizeof(*runs), by_job_end))) {
			/* come since the lookup began: the next lookup's */
			wait[i] = age_ms[i] < SETTLE_SLURMDBD_PATIENCE_MS;
			continue;
		}
		if (answer == SLURMDBD_ANSWERED && run->start > 0 && run->end >= run->start &&
		    run->end <= r->end + 1 && run->uid == r->uid) {
			no_start += r->start == USAGE_TIME_UNKNOWN;
			r->start = run->start;
			r->end = run->end;
			r->exact = true;
			took++;
		} else {
			missing++;
			wait[i] = age_ms[i] < SETTLE_SLURMDBD_PATIENCE_MS;
		}
	}
	if (missing) /* ask again, not at every round */
		s->dbd_quiet_until_ms = now + SETTLE_SLURMDBD_PAUSE_MS;
	if (answer == SLURMDBD_FAILED && log_limit_pass(&s->dbd_failures, now)) {
		aif_diag_hint(why, "The ends of jobs slurmctld no longer knows wait for slurmdbd up to "
				   "%d s, then close at the nodes' times.",
			      SETTLE_SLURMDBD_PATIENCE_MS / 1000);
		log_diag(LOG_LEVEL_WARNING, NULL, why);
	}
	if (took)
		log_info("closing %zu usage ends of jobs slurmctld no longer knows at slurmdbd's start "
			 "and end of their runs (%zu of them without a start record)", took, no_start);
	return took;
}

/* The lookup still going on is done, or has waited long (said once); ends wait for it. */
static void lookup_going_on(struct settle *s, int64_t now)
{
	if (!s->dbd_said_slow && now - s->dbd_since_ms >= SETTLE_SLURMDBD_SLOW_MS) {
		s->dbd_said_slow = true;
		log_warning("slurmdbd has not answered a lookup of %zu runs for %d s; the ends of jobs "
			    "slurmctld no longer knows wait for it", s->dbd_n, SETTLE_SLURMDBD_SLOW_MS / 1000);
	}
}

static void lookup_forget(struct settle *s)
{
	slurmdbd_lookup_drop(s->dbd); /* freed by its thread when it is still going on */
	s->dbd = NULL;
	free(s->dbd_runs);
	s->dbd_runs = NULL;
	s->dbd_n = 0;
}

/*
 * Step 3 (settle.h): slurmdbd's times for the ends of recs[0..n) whose job slurmctld forgot.
 * Sets wait[i] for those that wait for slurmdbd (slow, failed, or without their record yet);
 * the others close now, exact where slurmdbd had the run. One lookup at a time, as
 * reconciliation's: one not answered within SETTLE_SLURMDBD_WAIT_MS goes on, keeps what it
 * was asked, and its answer serves the round that finds it done.
 */
static void ask_slurmdbd(struct settle *s, struct usage_record *recs, size_t n,
			 const int64_t *age_ms, bool *wait)
{
	int64_t now = aif_clock_ms();
	enum slurmdbd_answer answer;
	struct aif_diag why;
	size_t m = 0;

	for (size_t i = 0; i < n; i++)
		m += for_slurmdbd(&recs[i]);
	if (m == 0 || (s->dbd_none && now < s->dbd_quiet_until_ms))
		return;
	if (s->dbd && !slurmdbd_lookup_done(s->dbd)) {
		lookup_going_on(s, now);
		goto waiting;
	}
	if (s->dbd) { /* done: its answer, for the ends it was asked */
		answer = slurmdbd_lookup_wait(s->dbd, now, s->dbd_runs, &why);
		take_answer(s, answer, &why, s->dbd_runs, s->dbd_n, recs, n, age_ms, wait);
		lookup_forget(s);
		return;
	}
	if (now < s->dbd_quiet_until_ms)
		goto waiting;
	if (!(s->dbd_runs = calloc(m, sizeof(*s->dbd_runs))))
		return; /* out of memory: they close as without slurmdbd */
	for (size_t i = 0; i < n; i++)
		if (for_slurmdbd(&recs[i]))
			s->dbd_runs[s->dbd_n++] = (struct slurmdbd_run){.job = recs[i].job,
				.first = (time_t)recs[i].end,
				.seen = (time_t)(recs[i].end - USAGE_CLOCK_TOLERANCE)};
	qsort(s->dbd_runs, s->dbd_n, sizeof(*s->dbd_runs), by_job_end);
	if (!(s->dbd = slurmdbd_lookup_start(s->cluster, s->dbd_runs, s->dbd_n))) {
		lookup_forget(s);
		return;
	}
	s->dbd_since_ms = now;
	s->dbd_said_slow = false;
	answer = slurmdbd_lookup_wait(s->dbd, now + SETTLE_SLURMDBD_WAIT_MS, s->dbd_runs, &why);
	if (answer == SLURMDBD_PENDING)
		goto waiting;
	take_answer(s, answer, &why, s->dbd_runs, s->dbd_n, recs, n, age_ms, wait);
	lookup_forget(s);
	return;
waiting:
	for (size_t i = 0; i < n; i++)
		wait[i] |= for_slurmdbd(&recs[i]) && age_ms[i] < SETTLE_SLURMDBD_PATIENCE_MS;
}

/* A round of the ends: true when ends are left for the next round (or the database failed). */
static bool close_round(struct settle *s)
{
	const char *params[] = {s->cluster};
	struct aif_diag d;
	PGresult *res = db_exec(&s->db, "could not read the usage ends to settle", READ_SQL, 1,
				params, &d);
	struct usage_record *recs = NULL, **settle = NULL, **closing = NULL;
	int64_t *age_ms = NULL;
	bool *wait = NULL;
	size_t n, m = 0;
	bool left;

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		if (res) /* else db_exec() said why */
			aif_db_diag(&d, s->db.conn, res, "could not read the usage ends to settle");
		round_failed(s, &d);
		PQclear(res);
		return true;
	}
	n = (size_t)PQntuples(res);
	if (n && !s->said_left)
		log_info("closing %zu usage intervals whose ends an earlier aifd acknowledged", n);
	s->said_left = true;
	left = n == SETTLE_ROUND_MAX;
	if (n == 0)
		goto out;
	recs = calloc(n, sizeof(*recs));
	settle = calloc(n, sizeof(*settle));
	closing = calloc(n, sizeof(*closing));
	age_ms = calloc(n, sizeof(*age_ms));
	wait = calloc(n, sizeof(*wait));
	if (!recs || !settle || !closing || !age_ms || !wait) {
		log_warning("out of memory: usage ends left in the inbox for the next round");
		left = true;
		goto out;
	}
	read_ends(res, recs, age_ms);
	for (size_t i = 0; i < n; i++)
		settle[i] = &recs[i];
	jobtimes_settle(s->jobtimes, settle, n);
	ask_slurmdbd(s, recs, n, age_ms, wait);
	for (size_t i = 0; i < n; i++) {
		if ((recs[i].unanswered && age_ms[i] < USAGE_SETTLE_PATIENCE_MS) || wait[i])
			left = true; /* slurmctld or slurmdbd is late: the next round */
		else
			closing[m++] = &recs[i];
	}
	if (m) {
		enum db_outcome o = close_ends(s, closing, m, &d);

		if (o == DB_DATA && close_one_by_one(s, closing, m))
			o = DB_OK;
		if (o != DB_OK) {
			round_failed(s, &d); /* the ends stay in the inbox */
			left = true;
		} else if (s->closed) {
			s->closed(s->closed_arg);
		}
	}
out:
	for (size_t i = 0; recs && i < n; i++) /* (ends get none: jobtimes.h) */
		job_alloc_release(recs[i].alloc);
	free(wait);
	free(age_ms);
	free(closing);
	free(settle);
	free(recs);
	PQclear(res);
	return left;
}

static void *settle_thread(void *arg)
{
	struct settle *s = arg;
	int64_t next_round = 0, next_look = 0;
	bool ends = true; /* what an earlier aifd left */

	while (!waker_stopping(&s->waker)) {
		int64_t now = aif_clock_ms();
		bool allocations = allocations_pending(s->allocations);

		/* The inbox when ends were written, and every SETTLE_IDLE_MS in any case. */
		if (__atomic_exchange_n(&s->ends_written, false, __ATOMIC_ACQ_REL) || now >= next_look)
			ends = true;
		if (!ends && !allocations) {
			waker_wait(&s->waker, next_look);
			continue;
		}
		if (next_round < db_retry_at(&s->db)) /* backing off the database */
			next_round = db_retry_at(&s->db);
		if (now < next_round) { /* one round per SETTLE_ROUND_MS: it serves many records */
			waker_wait(&s->waker, next_round);
			continue;
		}
		next_round = now + SETTLE_ROUND_MS;
		if (ends) {
			next_look = now + SETTLE_IDLE_MS;
			ends = close_round(s);
		}
		/* (a failure is logged by db.h; the starts stay queued for the next round) */
		if (allocations)
			allocations_round(s->allocations, &s->db, s->jobtimes, s->cluster);
	}
	return NULL;
}

/* Everything settle_start() took, the thread stopped first. */
static void settle_free(struct settle *s)
{
	waker_stop(&s->waker);
	lookup_forget(s); /* one still waiting for slurmdbd finishes on its own */
	usage_params_free(&s->params);
	allocations_free(s->allocations);
	db_close(&s->db);
	free(s->cluster);
	free(s);
}

struct settle *settle_start(const char *conninfo, const char *cluster, struct jobtimes *jt,
			    void (*closed)(void *arg), void *closed_arg)
{
	struct settle *s = calloc(1, sizeof(*s));

	if (!s) {
		log_error("out of memory");
		return NULL;
	}
	s->jobtimes = jt;
	s->closed = closed;
	s->closed_arg = closed_arg;
	waker_init(&s->waker);
	log_limit_init(&s->failures, "settling rounds that failed", SETTLE_LOG_EVERY_MS);
	log_limit_init(&s->dbd_failures, "slurmdbd lookups that failed", SETTLE_LOG_EVERY_MS);
	if (db_init(&s->db, conninfo, "aifd-settle", "the settler", SETTLE_STATEMENT_MS) < 0 ||
	    !(s->cluster = strdup(cluster)) || !(s->allocations = allocations_new())) {
		log_error("out of memory");
		settle_free(s);
		return NULL;
	}
	if (waker_start(&s->waker, settle_thread, s, "the settling thread") < 0) {
		settle_free(s);
		return NULL;
	}
	return s;
}

void settle_written(struct settle *s, const struct usage_record *recs, size_t n)
{
	bool ends = false;

	for (size_t i = 0; i < n && !ends; i++)
		ends = recs[i].event == USAGE_END;
	if (ends)
		__atomic_store_n(&s->ends_written, true, __ATOMIC_RELEASE);
	if (allocations_started(s->allocations, recs, n) || ends)
		waker_poke(&s->waker);
}

void settle_stop(struct settle *s)
{
	if (s)
		settle_free(s); /* the thread first */
}
