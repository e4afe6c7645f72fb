/*
 * aif_db: aif's PostgreSQL schema, from this program's side. The migrations sql/NNN_name.sql
 * are embedded at build time (lib/embed_sql.cmake), so that a binary always carries the
 * exact schema it was built for; no file is read at run time.
 *
 * The schema version of a database is the highest version in aif.schema_migrations. Every
 * migration is idempotent and runs in its own transaction; concurrent migrators of the same
 * database are serialized by pg_advisory_xact_lock(1634297344, 1). docs/database.md describes
 * the schema.
 *
 * Every function takes an open connection, sends SQL with parameters only (the embedded
 * migrations excepted), and on error returns -1 with diag in PostgreSQL's style: the server's
 * primary message (prefixed with what was being done), its detail and its hint.
 */
#ifndef AIF_DB_H
#define AIF_DB_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "aif_diag.h"
#include "aif_schema_version.h" /* generated: #define AIF_SCHEMA_VERSION N */

/* The oldest PostgreSQL the schema supports (PQserverVersion form). */
#define AIF_DB_MIN_SERVER_VERSION 150000

/* First key of aif's two-key advisory locks ('aif\0'); the second: */
#define AIF_DB_LOCK_CLASS 1634297344
#define AIF_DB_LOCK_MIGRATE 1 /* aif_db_migrate() */
#define AIF_DB_LOCK_APPLY 2   /* aif.apply() */
#define AIF_DB_LOCK_ROLLUP 3  /* aif.rollup_flush() and friends */

struct aif_migration {
	int version; /* 1, 2, 3, ... */
	const char *name; /* "001_core": the file name without .sql */
	const char *sql; /* the file's text: statements without BEGIN/COMMIT */
};

/* All migrations, in version order; aif_migrations[i].version == i + 1. */
extern const struct aif_migration aif_migrations[];
extern const size_t aif_n_migrations;

/*
 * The repeatable files sql/repeatable/NN_name.sql (version 0), in name order: the current
 * definitions of the functions and views, run again after the migrations whenever the
 * database's record of them (aif.schema_repeatable) is not AIF_SCHEMA_REPEATABLE_SHA256.
 */
extern const struct aif_migration aif_repeatables[];
extern const size_t aif_n_repeatables;

/* The database's schema version: 0 when aif's schema is absent, -1 on error. */
int aif_db_schema_version(PGconn *conn, struct aif_diag *diag);

/*
 * Bring the database up to AIF_SCHEMA_VERSION: apply each pending migration in its own
 * transaction, under the migration lock, re-checking the version under the lock (another
 * migrator may have been first); then, when the database does not have this build's, the
 * repeatable files, all in one transaction under the same lock. *applied is the number this call applied (0 when the schema
 * was up to date). Returns 0, or -1 with diag: a migration failed (that one is rolled back,
 * the ones before it stay), or the database is newer than this program, or the server is
 * older than PostgreSQL 15.
 */
int aif_db_migrate(PGconn *conn, int *applied, struct aif_diag *diag);

/*
 * Connect a long-lived connection of aifd (never NULL; check PQstatus). Defaults that the
 * conninfo may override: connect_timeout=10 (an unreachable host would otherwise hold the
 * caller for the kernel's TCP timeouts), fallback_application_name (for pg_stat_activity),
 * jit=off (JIT compiling aifd's short queries costs more than running them), and TCP
 * keepalives with tcp_user_timeout=60s (a peer behind a network black hole is noticed).
 */
PGconn *aif_db_connect(const char *conninfo, const char *application_name);

/*
 * The same, given up at deadline_ms (aif_clock_ms()): a server that accepts the connection and
 * then says nothing (stopped, a network black hole) must not hold the caller longer. NULL when
 * the deadline passed (or out of memory); else check PQstatus().
 */
PGconn *aif_db_connect_by(const char *conninfo, const char *application_name, int64_t deadline_ms);

/*
 * The result of a query sent with libpq's PQsend*() functions (sent: what that returned),
 * given up at deadline_ms (aif_clock_ms()). NULL when the server did not answer in time or the
 * connection failed: the connection is then in an unknown state, and the caller must drop it.
 * E.g. aif_db_result_by(conn, PQsendQueryPrepared(conn, ...), deadline).
 */
PGresult *aif_db_result_by(PGconn *conn, int sent, int64_t deadline_ms);

/*
 * 0 when the database's schema is exactly AIF_SCHEMA_VERSION and its functions and views are
 * this build's (AIF_SCHEMA_REPEATABLE_SHA256); otherwise -1 with a diag that says which side
 * to upgrade (for aifd and aifctl at startup).
 */
int aif_db_check_schema(PGconn *conn, struct aif_diag *diag);

/*
 * Fill diag from a failed result (res may be NULL: then from the connection's last error).
 * The primary message becomes "<what>: <server's message>".
 */
void aif_db_diag(struct aif_diag *diag, PGconn *conn, const PGresult *res, const char *what);

#endif
