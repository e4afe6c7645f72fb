#include "refresh.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aif_clock.h"
#include "aif_db.h"
#include "db.h"
#include "log.h"
#include "wakeup.h"

/*
 * A load may take at most one part in LOAD_SHARE of the time between loads: with a million
 * open intervals one takes half a second (snapshot.c), and reloading every refresh_interval
 * (down to 100 ms) would keep a core busy. Only a budget change (aifctl apply) is loaded at
 * once, whatever the last load took.
 */
#define LOAD_SHARE 5

/* The longest one statement of a load may take before the connection is dropped. */
#define REFRESH_STATEMENT_MS 20000

struct refresh {
	struct db db;                 /* the thread's alone once it runs */
	unsigned min_interval_ms;
	atomic_uint interval_ms;
	pthread_rwlock_t lock;        /* readers: decisions; writer: the swap */
	struct snapshot *current;
	struct waker waker;           /* the thread: poked or stopping */
	atomic_bool poked;
};

/* db_setup_fn: every connection of the refresh listens for budget changes. */
static int listen_config(struct db *db, void *arg, struct aif_diag *diag)
{
	PGresult *res = db_result(db, "could not LISTEN for budget changes",
				  PQsendQuery(db->conn, "LISTEN aif_config"), diag);
	int ok = PQresultStatus(res) == PGRES_COMMAND_OK;

	(void)arg;
	if (res && !ok)
		aif_db_diag(diag, db->conn, res, "could not LISTEN for budget changes");
	PQclear(res);
	return ok ? 0 : -1;
}

/* Load a snapshot and make it current. Returns 0, or -1 (logged). */
static int load(struct refresh *r, const char *why)
{
	struct snapshot *fresh, *old;
	struct aif_diag diag;

	aif_diag_clear(&diag);
	if (snapshot_load(&r->db, &fresh, &diag) < 0) {
		if (r->db.conn) /* else db_lost() logged it */
			log_diag(LOG_LEVEL_WARNING, NULL, &diag);
		return -1;
	}
	pthread_rwlock_wrlock(&r->lock);
	old = r->current;
	r->current = fresh;
	pthread_rwlock_unlock(&r->lock);
	snapshot_free(old);
	log_msg(strcmp(why, "budgets changed") == 0 ? LOG_LEVEL_INFO : LOG_LEVEL_DEBUG,
		"budgets and usage loaded (%s): %zu periods, %zu AI Factories, %zu projects", why,
		fresh->n_periods, fresh->n_factories, fresh->n_projects);
	return 0;
}

/*
 * Wait for a notification, a poke or the timeout; true when budgets changed. Without a
 * connection (the database lost), only for a poke or the timeout.
 */
static bool wait_for_change(struct refresh *r, int64_t deadline_ms)
{
	PGconn *conn = r->db.conn;
	struct pollfd fds[2] = {{r->waker.fd, POLLIN, 0}, {conn ? PQsocket(conn) : -1, POLLIN, 0}};
	int64_t left = deadline_ms - aif_clock_ms();
	bool changed = false;
	PGnotify *n;

	if (left > 0 && poll(fds, conn ? 2 : 1, (int)left) > 0 && (fds[0].revents & POLLIN))
		wakeup_drain(r->waker.fd);
	if (!conn)
		return false;
	if (PQconsumeInput(conn) == 0) {
		db_lost(&r->db, NULL); /* gone: the next load connects again, after the backoff */
		return false;
	}
	while ((n = PQnotifies(conn))) {
		changed = true;
		PQfreemem(n);
	}
	return changed;
}

static void *refresh_thread(void *arg)
{
	struct refresh *r = arg;
	int64_t last = aif_clock_ms(), load_ms = 0;

	while (!waker_stopping(&r->waker)) {
		int64_t now = aif_clock_ms();
		int64_t spacing = load_ms * (LOAD_SHARE - 1);
		int64_t due = last + atomic_load(&r->interval_ms);
		const char *why = NULL;

		if (atomic_load(&r->poked) && last + r->min_interval_ms < due)
			due = last + r->min_interval_ms;
		if (due < last + spacing)
			due = last + spacing;
		if (due < db_retry_at(&r->db))
			due = db_retry_at(&r->db); /* the database failed: not before its backoff */
		if (now < due && wait_for_change(r, due))
			why = "budgets changed";
		if (waker_stopping(&r->waker))
			break;
		if (!why && aif_clock_ms() < due)
			continue; /* woken early by a poke: wait for min_interval */
		if (!why)
			why = !r->db.conn ? "reconnected" : atomic_load(&r->poked) ? "usage recorded"
										    : "periodic";
		atomic_store(&r->poked, false);
		now = aif_clock_ms();
		if (load(r, why) < 0 && !r->db.conn)
			continue; /* lost: again after the backoff */
		last = aif_clock_ms();
		load_ms = last - now;
		if (load_ms * (LOAD_SHARE - 1) > (int64_t)atomic_load(&r->interval_ms))
			log_debug("the budget snapshot took %lld ms to load: the next in %lld ms at the earliest",
				  (long long)load_ms, (long long)(load_ms * (LOAD_SHARE - 1)));
	}
	return NULL;
}

/* Everything but the thread, which is stopped first (or never started). */
static void refresh_free(struct refresh *r)
{
	snapshot_free(r->current);
	pthread_rwlock_destroy(&r->lock);
	db_close(&r->db);
	free(r);
}

struct refresh *refresh_start(PGconn *conn, const struct refresh_options *opts)
{
	struct refresh *r = calloc(1, sizeof(*r));
	pthread_rwlockattr_t attr;
	struct aif_diag diag;

	if (!r || db_init(&r->db, opts->conninfo, "aifd", "budget refresh", REFRESH_STATEMENT_MS) < 0) {
		log_error("out of memory");
		if (r)
			db_close(&r->db);
		free(r);
		PQfinish(conn);
		return NULL;
	}
	db_set_setup(&r->db, listen_config, NULL);
	r->min_interval_ms = opts->min_interval_ms;
	atomic_init(&r->interval_ms, opts->interval_ms);
	atomic_init(&r->poked, false);
	waker_init(&r->waker);
	/* A steady stream of decisions must not starve the swap. */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&r->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	if (db_adopt(&r->db, conn, &diag) < 0 || load(r, "start-up") < 0) {
		if (diag.message[0])
			log_diag(LOG_LEVEL_ERROR, NULL, &diag);
		log_error("could not load the budgets from the database; not starting");
		goto fail;
	}
	if (waker_start(&r->waker, refresh_thread, r, "the budget refresh thread") < 0)
		goto fail;
	return r;
fail:
	waker_stop(&r->waker);
	refresh_free(r);
	return NULL;
}

const struct snapshot *refresh_hold(struct refresh *r)
{
	pthread_rwlock_rdlock(&r->lock);
	return r->current;
}

void refresh_release(struct refresh *r)
{
	pthread_rwlock_unlock(&r->lock);
}

void refresh_poke(struct refresh *r)
{
	if (!atomic_exchange(&r->poked, true))
		waker_poke(&r->waker);
}

void refresh_set_interval(struct refresh *r, unsigned interval_ms)
{
	atomic_store(&r->interval_ms, interval_ms);
	waker_poke(&r->waker);
}

void refresh_stop(struct refresh *r)
{
	if (!r)
		return;
	waker_stop(&r->waker);
	refresh_free(r);
}
