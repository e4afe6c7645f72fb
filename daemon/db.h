/*
 * db: the one way aifd holds a PostgreSQL connection (docs/aifd.md, "Database connections").
 *
 * Every owner of a connection (the usage writer, the budget refresh, reconciliation, each
 * worker for admissions) has its own struct db, used by its own thread alone: no lock guards
 * it, so nobody ever waits for another thread's database. The rule is the same for all:
 *
 *   - the schema version is checked once, at start-up (db_connect_checked()); a connection
 *     made later is the same database's and is not checked again;
 *   - connecting, and every statement, is given up after the owner's timeout_ms: a database
 *     that stops answering (stopped, a network black hole) holds nobody longer than that;
 *   - the server gives up a statement after the same timeout (statement_timeout), so that a
 *     statement the client stopped waiting for does not go on holding a backend and its locks;
 *   - a connection that failed or did not answer in time is dropped (its state is unknown),
 *     and no new one is tried before a backoff of 100 ms, doubled up to 5 s, has passed; the
 *     backoff is reset only by a statement that worked, not by a connection that was made;
 *     db_get() says "not now" at once meanwhile, and the owner decides what to do (wait for
 *     db_retry_at(), or go on without the database);
 *   - an error of the server's state rather than the statement's (its statement_timeout, a
 *     deadlock, too many connections: db_outcome() DB_RETRY) keeps the connection but backs
 *     off too;
 *   - the first failure of an outage is a warning ("<who> lost its database connection", or
 *     "<who>: the database does not answer as it should"), the first statement that works
 *     again an info line; those between are at debug.
 */
#ifndef AIFD_DB_H
#define AIFD_DB_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "aif_diag.h"

#define DB_BACKOFF_MIN_MS 100
#define DB_BACKOFF_MAX_MS 5000

struct db;

/* Run on every new connection before it is used (prepare a statement, LISTEN); 0 or -1 with diag. */
typedef int (*db_setup_fn)(struct db *db, void *arg, struct aif_diag *diag);

/* How many of an owner's statements db_exec() keeps prepared on its connection. */
#define DB_PREPARED_MAX 32

struct db {
	char *conninfo;
	const char *app; /* application_name, for pg_stat_activity: "aifd-store" */
	const char *who; /* for the log: "the usage writer" */
	unsigned timeout_ms; /* bound on connecting, and on each statement */
	db_setup_fn setup;
	void *setup_arg;
	PGconn *conn;          /* NULL: none now */
	unsigned backoff_ms;   /* the wait after the next failure */
	int64_t retry_at_ms;   /* aif_clock_ms(): no connection is tried before */
	bool lost;             /* an outage is under way: logged once */
	bool dropped;          /* and the connection was dropped in it */
	uint64_t reconnects;   /* connections made after a loss */
	char *prepared[DB_PREPARED_MAX]; /* db_exec()'s statements prepared on conn, by number */
	unsigned nprepared;
	unsigned prepared_generation; /* in their names: a schema change retires a generation */
};

/* app and who are kept as pointers (string literals). 0, or -1 when out of memory. */
int db_init(struct db *db, const char *conninfo, const char *app, const char *who,
	    unsigned timeout_ms);
void db_set_setup(struct db *db, db_setup_fn setup, void *arg);

/* Close the connection and free what db_init() took. */
void db_close(struct db *db);

/*
 * Connect with the aifd defaults (aif_db_connect()) and check that the database has aif's
 * schema at this program's version: start-up's one check. The connection, or NULL (logged as
 * an error, with what to do).
 */
PGconn *db_connect_checked(const char *conninfo);

/*
 * Take a connection made by db_connect_checked() as db's own, prepared as db_get() prepares
 * its own (the statement timeout, then setup). 0, or -1 with diag (then db has none).
 */
int db_adopt(struct db *db, PGconn *conn, struct aif_diag *diag);

/*
 * The connection, connected now if need be; NULL with diag when there is none: backing off
 * after a failure, or the attempt failed (then backing off).
 */
PGconn *db_get(struct db *db, struct aif_diag *diag);

/*
 * When the next attempt may be made (aif_clock_ms()); in the past when at once. After a
 * failure the owner waits for it by its own means (a condition, an eventfd).
 */
int64_t db_retry_at(const struct db *db);

/*
 * The server answered, but asks for the statement to be run again later (a deadlock, a
 * shutdown under way): the connection is kept, the next attempt waits for the backoff.
 */
void db_backoff(struct db *db);

/*
 * Run sql with text parameters (NULL for SQL NULL) on db's connection, connecting first if
 * need be. The result when the server answered (check its status: a statement's error leaves
 * the connection usable); NULL with diag ("<what>: ...") when there was no connection, it
 * failed, or the server did not answer within timeout_ms: the connection is then dropped
 * (db_lost()).
 * The first DB_PREPARED_MAX statements (by their text) are prepared on the connection at
 * their first run, as "aifd_G_N", so that a statement run at every admission or refresh is
 * not parsed and planned again each time (PostgreSQL keeps a generic plan once it is no
 * worse than the custom ones).
 */
PGresult *db_exec(struct db *db, const char *what, const char *sql, int nparams,
		  const char *const *params, struct aif_diag *diag);

/*
 * db_exec() on the connection db has now, never a new one: for a statement inside a
 * transaction, which a new connection would run outside it. NULL with diag when db has none.
 */
PGresult *db_run(struct db *db, const char *what, const char *sql, int nparams,
		 const char *const *params, struct aif_diag *diag);

/*
 * db_exec() for an owner that only logs failures: the result when it has status want, else
 * NULL, the statement's error logged as a warning (a lost connection db_lost() logged).
 */
PGresult *db_exec_want(struct db *db, const char *what, const char *sql, int nparams,
		       const char *const *params, ExecStatusType want);

/*
 * The same for a statement sent with libpq's PQsend*() on db->conn (sent: what that
 * returned), e.g. a prepared one, or several statements in one string.
 */
PGresult *db_result(struct db *db, const char *what, int sent, struct aif_diag *diag);

/*
 * The connection failed or is in an unknown state: drop it and back off. why (may be NULL)
 * is logged as the warning when this starts an outage.
 */
void db_lost(struct db *db, const struct aif_diag *why);

/* Whether the last statement's error was the connection's rather than the statement's. */
bool db_broken(const struct db *db);

/* What a statement's result means for its owner. */
enum db_outcome {
	DB_OK,
	DB_DATA,  /* the data sent: a value out of range, a unique or check violation, a closed interval */
	DB_RETRY, /* the connection or the server's state (a deadlock, a shutdown, no resources): later */
	DB_FAIL,  /* neither: no schema, no rights */
};

/* The outcome of res (NULL: the connection failed or did not answer) on db's connection. */
enum db_outcome db_outcome(const struct db *db, const PGresult *res);

#endif
