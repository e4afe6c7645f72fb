/*
 * refresh: the budget snapshot that decisions read (snapshot.h), kept fresh by a thread with
 * its own PostgreSQL connection:
 *   - at once when budgets change: it LISTENs on aif_config, which aif.apply() notifies;
 *   - soon after this aifd recorded usage (refresh_poke), at most every min_interval_ms;
 *   - every interval_ms in any case, so that the usage other aifds record (other clusters on
 *     the same database) is seen within that time.
 * While PostgreSQL is unreachable the last snapshot stays in use (running jobs still count up
 * to now) and the thread reconnects with a capped backoff.
 */
#ifndef AIFD_REFRESH_H
#define AIFD_REFRESH_H

#include <libpq-fe.h>

#include "snapshot.h"

/*
 * How soon decisions see the usage this aifd recorded: at once after a quiet second, under load
 * once a second. A reload reads every budget's usage, and a busy cluster records usage ten
 * times a second (four reloads a second at 250 ms, 1.5 per job of a throughput benchmark).
 * Meanwhile decisions lose little: a job's GPUs count up to each decision's now from its
 * start on, and a job that ended counts until the reload, a second of its GPUs too many.
 */
#define REFRESH_AFTER_USAGE_MS 1000

struct refresh_options {
	const char *conninfo;        /* for reconnecting */
	unsigned interval_ms;        /* the longest a snapshot is used */
	unsigned min_interval_ms;    /* the shortest time between two loads after pokes */
};

struct refresh;

/*
 * Take over conn (connected, schema checked), LISTEN, load the first snapshot and start the
 * thread. Returns NULL (logged; conn is closed) when the first snapshot cannot be loaded.
 */
struct refresh *refresh_start(PGconn *conn, const struct refresh_options *opts);

/* The current snapshot, valid until refresh_release(); hold it briefly (it blocks a swap). */
const struct snapshot *refresh_hold(struct refresh *r);
void refresh_release(struct refresh *r);

/* Usage was recorded here: load again soon. Any thread; never blocks on the database. */
void refresh_poke(struct refresh *r);

/* New intervals (SIGHUP). */
void refresh_set_interval(struct refresh *r, unsigned interval_ms);

void refresh_stop(struct refresh *r);

#endif
