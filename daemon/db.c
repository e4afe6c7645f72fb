/* db: the one way aifd holds a PostgreSQL connection (db.h has the rule). */
#include "db.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aif_clock.h"
#include "aif_db.h"
#include "log.h"

int db_init(struct db *db, const char *conninfo, const char *app, const char *who,
	    unsigned timeout_ms)
{
	memset(db, 0, sizeof(*db));
	db->conninfo = strdup(conninfo);
	db->app = app;
	db->who = who;
	db->timeout_ms = timeout_ms;
	db->backoff_ms = DB_BACKOFF_MIN_MS;
	return db->conninfo ? 0 : -1;
}

void db_set_setup(struct db *db, db_setup_fn setup, void *arg)
{
	db->setup = setup;
	db->setup_arg = arg;
}

/* The connection's prepared statements die with it (or were retired): none known. */
static void forget_prepared(struct db *db)
{
	for (unsigned i = 0; i < db->nprepared; i++)
		free(db->prepared[i]);
	db->nprepared = 0;
}

/* conn (NULL: none) replaces db's connection, whose prepared statements go with it. */
static void set_conn(struct db *db, PGconn *conn)
{
	PQfinish(db->conn);
	db->conn = conn;
	forget_prepared(db);
}

void db_close(struct db *db)
{
	set_conn(db, NULL);
	free(db->conninfo);
	db->conninfo = NULL;
}

PGconn *db_connect_checked(const char *conninfo)
{
	struct aif_diag diag;
	PGconn *conn = aif_db_connect(conninfo, "aifd");

	if (!conn) {
		log_error("could not connect to the aif database: out of memory");
		return NULL;
	}
	if (PQstatus(conn) != CONNECTION_OK) {
		aif_diag_clear(&diag);
		aif_diag_message(&diag, "could not connect to the aif database");
		aif_diag_detail(&diag, "%s", PQerrorMessage(conn));
		aif_diag_hint(&diag, "Check \"db\" in the config file, and that PostgreSQL is running "
				     "and accepts aifd's connections.");
		log_diag(LOG_LEVEL_ERROR, NULL, &diag);
		PQfinish(conn);
		return NULL;
	}
	if (aif_db_check_schema(conn, &diag) < 0) {
		log_diag(LOG_LEVEL_ERROR, NULL, &diag);
		PQfinish(conn);
		return NULL;
	}
	log_info("connected to database \"%s\" on %s, schema version %d", PQdb(conn),
		 PQhost(conn) ? PQhost(conn) : "the default host", AIF_SCHEMA_VERSION);
	return conn;
}

void db_backoff(struct db *db)
{
	db->retry_at_ms = aif_clock_ms() + db->backoff_ms;
	db->backoff_ms = db->backoff_ms * 2 > DB_BACKOFF_MAX_MS ? DB_BACKOFF_MAX_MS
								  : db->backoff_ms * 2;
}

/* An outage: its first failure a warning (what, then why), the others at debug; back off. */
static void outage(struct db *db, const char *what, const struct aif_diag *why)
{
	db_backoff(db);
	if (!db->lost) {
		db->lost = true;
		if (why && why->message[0])
			log_diag(LOG_LEVEL_WARNING, what, why);
		else
			log_warning("%s", what);
	} else if (why && why->message[0]) {
		log_diag(LOG_LEVEL_DEBUG, what, why);
	}
}

void db_lost(struct db *db, const struct aif_diag *why)
{
	char what[160];

	set_conn(db, NULL);
	db->dropped = true;
	snprintf(what, sizeof(what), "%s lost its database connection; reconnecting", db->who);
	outage(db, what, why);
}

/* The server answered, but not as it can (db_result()): the connection is kept. */
static void sick(struct db *db, const struct aif_diag *why)
{
	char what[160];

	snprintf(what, sizeof(what), "%s: the database does not answer as it should; waiting",
		 db->who);
	outage(db, what, why);
}

int64_t db_retry_at(const struct db *db)
{
	return db->retry_at_ms;
}

bool db_broken(const struct db *db)
{
	return !db->conn || PQstatus(db->conn) != CONNECTION_OK;
}

/* "500 ms", "20 s": a bound as the config file writes it. */
static const char *duration(char *buf, size_t size, unsigned ms)
{
	if (ms % 1000 == 0)
		snprintf(buf, size, "%u s", ms / 1000);
	else
		snprintf(buf, size, "%u ms", ms);
	return buf;
}

/*
 * The session's settings, in one round trip: the server gives a statement up after the owner's
 * timeout too; and a commit is durable before it returns. aifd acknowledges usage, and keeps an
 * admission, only once committed: with synchronous_commit off (a role's or the server's
 * setting, for speed) a crash of the server would lose what aifd already acknowledged, for good.
 * 'local', 'remote_write', 'remote_apply' and 'on' are left as they are. 0, or -1 with diag.
 */
static int set_session(struct db *db, struct aif_diag *diag)
{
	static atomic_bool said_durable;
	char sql[256];
	PGresult *res;
	int ok;

	snprintf(sql, sizeof(sql),
		 "WITH was AS MATERIALIZED (SELECT current_setting('synchronous_commit') AS sc)"
		 " SELECT set_config('statement_timeout', '%u', false), was.sc,"
		 "  CASE WHEN was.sc = 'off' THEN set_config('synchronous_commit', 'on', false) END"
		 " FROM was", db->timeout_ms);
	res = aif_db_result_by(db->conn, PQsendQuery(db->conn, sql), aif_clock_ms() + db->timeout_ms);
	ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
	if (!ok)
		aif_db_diag(diag, db->conn, res, "could not set the session's statement timeout and durability");
	else if (strcmp(PQgetvalue(res, 0, 1), "off") == 0 && !atomic_exchange(&said_durable, true)) {
		struct aif_diag off;

		aif_diag_clear(&off);
		aif_diag_message(&off, "synchronous_commit is off for aifd's database sessions; aifd "
				       "sets it on for its own");
		aif_diag_detail(&off, "aifd acknowledges usage and keeps admissions only once they are "
				      "durable.");
		aif_diag_hint(&off, "Leave it on for aifd's role and database (ALTER ROLE or ALTER "
				    "DATABASE ... RESET synchronous_commit; postgresql.conf) to silence "
				    "this.");
		log_diag(LOG_LEVEL_WARNING, NULL, &off);
	}
	PQclear(res);
	return ok ? 0 : -1;
}

/*
 * Non-blocking: libpq then sends a statement by PQflush() within the owner's deadline
 * (aif_db_result_by()). In blocking mode PQsend*() itself writes the whole statement, with no
 * time limit: a server that stops reading (stopped, a backend hung) held the sender for ever
 * once the statement was larger than the socket's buffer (a usage group of a few thousand
 * records), and statement_timeout cannot help a statement the server never received.
 */
static int set_nonblocking(struct db *db, struct aif_diag *diag)
{
	if (PQsetnonblocking(db->conn, 1) == 0)
		return 0;
	aif_db_diag(diag, db->conn, NULL, "could not make the database connection non-blocking");
	return -1;
}

/* What every connection gets before its first statement, however it was made. */
static int prepare(struct db *db, struct aif_diag *diag)
{
	if (set_nonblocking(db, diag) < 0 || set_session(db, diag) < 0 ||
	    (db->setup && db->setup(db, db->setup_arg, diag) < 0)) {
		db_lost(db, diag);
		return -1;
	}
	return 0;
}

int db_adopt(struct db *db, PGconn *conn, struct aif_diag *diag)
{
	aif_diag_clear(diag);
	set_conn(db, conn);
	return prepare(db, diag);
}

PGconn *db_get(struct db *db, struct aif_diag *diag)
{
	aif_diag_clear(diag);
	if (db->conn && PQstatus(db->conn) != CONNECTION_OK) {
		aif_db_diag(diag, db->conn, NULL, "the database connection failed");
		db_lost(db, diag);
	}
	if (aif_clock_ms() < db->retry_at_ms) { /* backing off, with or without a connection */
		aif_diag_message(diag, "the aif database failed lately");
		aif_diag_detail(diag, "%s tries it again in %lld ms.", db->who,
				(long long)(db->retry_at_ms - aif_clock_ms()));
		return NULL;
	}
	if (db->conn)
		return db->conn;
	set_conn(db, aif_db_connect_by(db->conninfo, db->app, aif_clock_ms() + db->timeout_ms));
	if (!db->conn) {
		char within[32];

		aif_diag_message(diag, "could not connect to the aif database: it did not answer within %s",
				 duration(within, sizeof(within), db->timeout_ms));
		db_lost(db, diag);
		return NULL;
	}
	if (PQstatus(db->conn) != CONNECTION_OK) {
		aif_db_diag(diag, db->conn, NULL, "could not connect to the aif database");
		db_lost(db, diag);
		return NULL;
	}
	if (db->lost)
		db->reconnects++; /* before the setup, whose statement may end the outage */
	return prepare(db, diag) < 0 ? NULL : db->conn;
}

PGresult *db_result(struct db *db, const char *what, int sent, struct aif_diag *diag)
{
	int64_t deadline_ms = aif_clock_ms() + db->timeout_ms;
	PGresult *res = aif_db_result_by(db->conn, sent, deadline_ms);
	int64_t late = aif_clock_ms() - deadline_ms;
	char within[32];

	if (res && PQstatus(db->conn) == CONNECTION_OK) {
		if (PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK) {
			db->backoff_ms = DB_BACKOFF_MIN_MS; /* the database works */
			if (db->lost)
				log_info(db->dropped ? "%s reconnected to the database"
						     : "%s: the database answers again", db->who);
			db->lost = db->dropped = false;
		} else if (db_outcome(db, res) == DB_RETRY) {
			/* The server's state, not the statement's (its statement_timeout, a
			 * deadlock, too many connections): the connection stays, the owner waits. */
			aif_db_diag(diag, db->conn, res, what);
			sick(db, diag);
		}
		return res;
	}
	if (res) { /* the connection broke under the statement */
		aif_db_diag(diag, db->conn, res, what);
		PQclear(res);
	} else if (late >= 0) {
		aif_diag_clear(diag);
		aif_diag_message(diag, "%s: the aif database did not answer within %s", what,
				 duration(within, sizeof(within), db->timeout_ms));
	} else {
		aif_db_diag(diag, db->conn, NULL, what);
	}
	db_lost(db, diag);
	return NULL;
}

/* Statement i of the connection's current generation (retire_prepared()). */
static void prepared_name(const struct db *db, char *buf, size_t size, unsigned i)
{
	snprintf(buf, size, "aifd_%u_%u", db->prepared_generation, i);
}

/*
 * A prepared statement whose plan no longer fits the schema (a migration changed a table's
 * columns under it: "cached plan must not change result type") must not be run again: the
 * statements are prepared anew under new names. The old ones stay on the server, unused (at
 * most DB_PREPARED_MAX per such change), since a transaction that failed cannot deallocate.
 */
static void retire_prepared(struct db *db, const PGresult *res)
{
	const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	if (!code || strcmp(code, "0A000") != 0)
		return;
	forget_prepared(db);
	db->prepared_generation++;
}

/*
 * sql's number among the statements prepared on db's connection, preparing it now if there is
 * room; -1 when it is run unprepared, or when preparing failed: then *failed is the server's
 * answer, or NULL with diag when the connection was lost.
 */
static int prepared_index(struct db *db, const char *what, const char *sql, int nparams,
			  PGresult **failed, struct aif_diag *diag)
{
	char name[40];
	PGresult *res;
	char *copy;

	*failed = NULL;
	for (unsigned i = 0; i < db->nprepared; i++)
		if (strcmp(db->prepared[i], sql) == 0)
			return (int)i;
	if (db->nprepared == DB_PREPARED_MAX || !(copy = strdup(sql)))
		return -1;
	prepared_name(db, name, sizeof(name), db->nprepared);
	res = db_result(db, what, PQsendPrepare(db->conn, name, sql, nparams, NULL), diag);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		free(copy);
		*failed = res;
		return -1;
	}
	PQclear(res);
	db->prepared[db->nprepared] = copy;
	return (int)db->nprepared++;
}

PGresult *db_run(struct db *db, const char *what, const char *sql, int nparams,
		 const char *const *params, struct aif_diag *diag)
{
	PGresult *res, *failed;
	char name[40];
	int i;

	if (!db->conn) {
		aif_diag_clear(diag);
		aif_diag_message(diag, "%s: no connection to the aif database", what);
		return NULL;
	}
	i = prepared_index(db, what, sql, nparams, &failed, diag);
	if (failed || !db->conn) /* the server refused the statement, or the connection is gone */
		return failed;
	if (i < 0)
		return db_result(db, what,
				 PQsendQueryParams(db->conn, sql, nparams, NULL, params, NULL, NULL, 0), diag);
	prepared_name(db, name, sizeof(name), (unsigned)i);
	res = db_result(db, what, PQsendQueryPrepared(db->conn, name, nparams, params, NULL, NULL, 0), diag);
	if (res && db->conn && PQresultStatus(res) == PGRES_FATAL_ERROR)
		retire_prepared(db, res);
	return res;
}

PGresult *db_exec(struct db *db, const char *what, const char *sql, int nparams,
		  const char *const *params, struct aif_diag *diag)
{
	struct aif_diag why;

	if (!db_get(db, &why)) {
		aif_diag_clear(diag);
		aif_diag_message(diag, "%s: %s", what, why.message);
		aif_diag_detail(diag, "%s", why.detail);
		return NULL;
	}
	return db_run(db, what, sql, nparams, params, diag);
}

PGresult *db_exec_want(struct db *db, const char *what, const char *sql, int nparams,
		       const char *const *params, ExecStatusType want)
{
	struct aif_diag d;
	PGresult *res = db_exec(db, what, sql, nparams, params, &d);

	if (PQresultStatus(res) == want)
		return res;
	if (res) { /* else db_lost() logged it */
		aif_db_diag(&d, db->conn, res, what);
		log_diag(LOG_LEVEL_WARNING, NULL, &d);
	}
	PQclear(res);
	return NULL;
}

enum db_outcome db_outcome(const struct db *db, const PGresult *res)
{
	ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	const char *code;

	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return DB_OK;
	if (!res || db_broken(db))
		return DB_RETRY;
	code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	if (!code)
		return DB_RETRY; /* libpq's own error: the connection */
	/* Connection, transaction rollback (deadlock, serialization), operator intervention
	 * (shutdown, cancel, statement timeout), resources, system errors, lock not available,
	 * a read-only server (a standby being promoted). */
	if (strncmp(code, "08", 2) == 0 || strncmp(code, "40", 2) == 0 ||
	    strncmp(code, "57", 2) == 0 || strncmp(code, "53", 2) == 0 ||
	    strncmp(code, "58", 2) == 0 || strcmp(code, "55P03") == 0 || strcmp(code, "25006") == 0)
		return DB_RETRY;
	/* The data: out of range, unknown project or sector, a closed interval, a value beyond
	 * the server's limits (an index row too large: 54000). */
	if (strncmp(code, "22", 2) == 0 || strncmp(code, "23", 2) == 0 ||
	    strncmp(code, "54", 2) == 0 || strcmp(code, "55000") == 0)
		return DB_DATA;
	return DB_FAIL;
}
