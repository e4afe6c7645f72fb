#include "aif_db.h"
#include "aif_clock.h"

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STR_(x) #x
#define STR(x) STR_(x)

/* Drop the newline (and blanks) that libpq puts at the end of its messages. */
static void chomp(char *s)
{
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
		s[--n] = '\0';
}

void aif_db_diag(struct aif_diag *diag, PGconn *conn, const PGresult *res, const char *what)
{
	const char *primary = NULL, *detail = NULL, *hint = NULL;

	aif_diag_clear(diag);
	if (res) {
		primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
		hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
		if (!primary || !*primary)
			primary = PQresultErrorMessage(res);
	}
	if ((!primary || !*primary) && conn)
		primary = PQerrorMessage(conn);
	if (!primary || !*primary)
		primary = "unknown error";
	aif_diag_message(diag, "%s: %s", what, primary);
	chomp(diag->message);
	if (detail)
		aif_diag_detail(diag, "%s", detail);
	if (hint)
		aif_diag_hint(diag, "%s", hint);
}

/* A statement without parameters and without rows of interest. */
static int command(PGconn *conn, const char *sql, const char *what, struct aif_diag *diag)
{
	PGresult *res = PQexecParams(conn, sql, 0, NULL, NULL, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(res);
	int rc = 0;

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		aif_db_diag(diag, conn, res, what);
		rc = -1;
	}
	PQclear(res);
	return rc;
}

/* Leave a failed transaction; the diag already tells what went wrong. */
static void rollback(PGconn *conn)
{
	PQclear(PQexec(conn, "ROLLBACK"));
}

static int parse_int(const char *s, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0 || v > 1000000)
		return -1;
	*out = (int)v;
	return 0;
}

int aif_db_schema_version(PGconn *conn, struct aif_diag *diag)
{
	static const char what[] = "cannot read the aif schema version";
	PGresult *res;
	bool present;
	int version = 0;

	/*
	 * The catalog itself, not to_regclass(): that one may answer from a cache not yet told
	 * about another migrator's commit (seen in the concurrency test).
	 */
	res = PQexecParams(conn, "SELECT EXISTS (SELECT FROM pg_catalog.pg_class c "
			   "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
			   "WHERE n.nspname = 'aif' AND c.relname = 'schema_migrations')",
			   0, NULL, NULL, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		aif_db_diag(diag, conn, res, what);
		PQclear(res);
		return -1;
	}
	present = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (!present)
		return 0;

	res = PQexecParams(conn, "SELECT coalesce(max(version), 0) FROM aif.schema_migrations",
			   0, NULL, NULL, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		aif_db_diag(diag, conn, res, what);
		PQclear(res);
		return -1;
	}
	if (parse_int(PQgetvalue(res, 0, 0), &version) < 0) {
		aif_diag_clear(diag);
		aif_diag_message(diag, "%s: unexpected value \"%s\"", what, PQgetvalue(res, 0, 0));
		version = -1;
	}
	PQclear(res);
	return version;
}

/* The schema version, or -1 with diag also when it is newer than this program can use. */
static int known_schema_version(PGconn *conn, struct aif_diag *diag)
{
	int version = aif_db_schema_version(conn, diag);

	if (version > AIF_SCHEMA_VERSION) {
		aif_diag_clear(diag);
		aif_diag_message(diag, "the database's aif schema (version %d) is newer than this program's (version %d)",
				 version, AIF_SCHEMA_VERSION);
		aif_diag_hint(diag, "Upgrade aif on this host.");
		return -1;
	}
	return version;
}

static bool ident_char(char c)
{
	return isalnum((unsigned char)c) || c == '_' || c == '$' || (unsigned char)c >= 0x80;
}

/* Past a -- comment or a (nested) block comment at p. */
static const char *skip_comment(const char *p)
{
	int depth = 1;

	if (p[0] == '-')
		return p + strcspn(p, "\n");
	for (p += 2; *p && depth > 0;) {
		if (p[0] == '/' && p[1] == '*') {
			depth++;
			p += 2;
		} else if (p[0] == '*' && p[1] == '/') {
			depth--;
			p += 2;
		} else {
			p++;
		}
	}
	return p;
}

static bool at_comment(const char *p)
{
	return (p[0] == '-' && p[1] == '-') || (p[0] == '/' && p[1] == '*');
}

/* Past white space and comments. */
static const char *skip_blank(const char *p)
{
	for (;;) {
		if (isspace((unsigned char)*p))
			p++;
		else if (at_comment(p))
			p = skip_comment(p);
		else
			return p;
	}
}

/*
 * The end of the SQL statement that starts at s: just past its ';', or the end of the text.
 * Knows what may hide a ';': '...' (E'...' with backslash escapes), "...", $tag$...$tag$ and
 * comments. Migrations are our own files; this is no general SQL lexer.
 */
static const char *statement_end(const char *s)
{
	const char *p = s;

	while (*p) {
		if (*p == ';') {
			return p + 1;
		} else if (at_comment(p)) {
			p = skip_comment(p);
		} else if (*p == '\'' || *p == '"') {
			char quote = *p;
			bool escapes = quote == '\'' && p > s && (p[-1] == 'E' || p[-1] == 'e') &&
				       (p - 1 == s || !ident_char(p[-2]));

			for (p++; *p; p++) {
				if (escapes && *p == '\\' && p[1])
					p++;
				else if (*p == quote && p[1] == quote)
					p++;
				else if (*p == quote)
					break;
			}
			if (*p)
				p++;
		} else if (*p == '$' && (p == s || !ident_char(p[-1])) && !isdigit((unsigned char)p[1])) {
			const char *t = p + 1, *close;
			size_t len;

			while (*t && *t != '$' && ident_char(*t))
				t++;
			if (*t != '$') {
				p++;
				continue;
			}
			len = (size_t)(t - p) + 1; /* the tag with both dollars */
			for (close = t + 1; *close && strncmp(close, p, len) != 0; close++)
				;
			p = *close ? close + len : close;
		} else {
			p++;
		}
	}
	return p;
}

/* The number of newlines in text before 1-based character position pos (server counts characters). */
static int newlines_before(const char *text, long pos)
{
	long chars = 0;
	int n = 0;

	for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
		if ((*p & 0xc0) != 0x80 && ++chars >= pos)
			break;
		if (*p == '\n')
			n++;
	}
	return n;
}

static int newlines_between(const char *from, const char *to)
{
	int n = 0;

	for (; from < to; from++)
		n += *from == '\n';
	return n;
}

/* A failed statement of a migration: the server's message, and the file and line. */
static void migration_failed(struct aif_diag *diag, PGconn *conn, const PGresult *res,
			     const struct aif_migration *m, const char *stmt, int line)
{
	char what[128];
	const char *pos = PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION);
	size_t n;

	snprintf(what, sizeof(what), "migration %s failed", m->name);
	aif_db_diag(diag, conn, res, what);
	if (pos)
		line += newlines_before(stmt, strtol(pos, NULL, 10));
	n = strlen(diag->detail);
	snprintf(diag->detail + n, sizeof(diag->detail) - n, "%sAt line %d of sql/%s.sql.",
		 n ? " " : "", line, m->name);
}

/* Run a migration's statements one by one, so that an error can tell its line. */
static int run_statements(PGconn *conn, const struct aif_migration *m, struct aif_diag *diag)
{
	char *text = strdup(m->sql);
	const char *p, *counted;
	int line = 1, rc = 0;

	if (!text) {
		aif_diag_message(diag, "migration %s: out of memory", m->name);
		return -1;
	}
	counted = text;
	for (p = skip_blank(text); *p && rc == 0; p = skip_blank(p)) {
		char *end = text + (statement_end(p) - text), saved = *end;
		PGresult *res;
		ExecStatusType st;

		line += newlines_between(counted, p);
		counted = p;
		*end = '\0';
		/* Our own embedded text, not data: the simple query protocol, no parameters. */
		res = PQexec(conn, p);
		st = PQresultStatus(res);
		if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
			migration_failed(diag, conn, res, m, p, line);
			rc = -1;
		}
		PQclear(res);
		*end = saved;
		p = end;
	}
	free(text);
	return rc;
}

/* BEGIN a migration's transaction and take the migration lock; -1 (rolled back) with diag. */
static int begin_migration(PGconn *conn, struct aif_diag *diag)
{
	static const char *const lock[] = {STR(AIF_DB_LOCK_CLASS), STR(AIF_DB_LOCK_MIGRATE)};
	PGresult *res;

	if (command(conn, "BEGIN", "cannot start a migration", diag) < 0)
		return -1;
	/* IF NOT EXISTS notices are expected; names in migrations are schema-qualified. */
	if (command(conn, "SET LOCAL client_min_messages = warning", "cannot start a migration", diag) < 0 ||
	    command(conn, "SET LOCAL search_path = pg_catalog, pg_temp", "cannot start a migration", diag) < 0) {
		rollback(conn);
		return -1;
	}
	res = PQexecParams(conn, "SELECT pg_advisory_xact_lock($1::int4, $2::int4)", 2, NULL, lock,
			   NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		aif_db_diag(diag, conn, res, "cannot take the migration lock");
		PQclear(res);
		rollback(conn);
		return -1;
	}
	PQclear(res);
	return 0;
}

/* One migration in its own transaction, unless another migrator was first. */
static int migrate_one(PGconn *conn, const struct aif_migration *m, int *applied,
		       struct aif_diag *diag)
{
	int version;

	if (begin_migration(conn, diag) < 0)
		return -1;
	version = known_schema_version(conn, diag);
	if (version < 0)
		goto fail;
	if (version >= m->version) {
		rollback(conn); /* another migrator was first */
		return 0;
	}

	if (run_statements(conn, m, diag) < 0)
		goto fail;

	version = aif_db_schema_version(conn, diag);
	if (version < 0)
		goto fail;
	if (version < m->version) {
		aif_diag_clear(diag);
		aif_diag_message(diag, "migration %s did not record itself", m->name);
		aif_diag_detail(diag, "After it, aif.schema_migrations holds version %d.", version);
		aif_diag_hint(diag, "Every migration ends by inserting its version into aif.schema_migrations.");
		goto fail;
	}
	if (command(conn, "COMMIT", "cannot commit a migration", diag) < 0)
		goto fail;
	(*applied)++;
	return 0;
fail:
	rollback(conn);
	return -1;
}

/* The SHA-256 of the repeatable files the database last ran: 1 with it, 0 none yet, -1 error. */
static int repeatable_sha(PGconn *conn, char *out, size_t size, struct aif_diag *diag)
{
	PGresult *res = PQexecParams(conn, "SELECT sha256 FROM aif.schema_repeatable", 0, NULL, NULL,
				     NULL, NULL, 0);
	int rc = 0;

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		aif_db_diag(diag, conn, res, "cannot read which functions and views the database has");
		rc = -1;
	} else if (PQntuples(res) == 1) {
		snprintf(out, size, "%s", PQgetvalue(res, 0, 0));
		rc = 1;
	}
	PQclear(res);
	return rc;
}

/* The repeatable files, in one transaction under the migration lock, unless the database has them. */
static int migrate_repeatables(PGconn *conn, struct aif_diag *diag)
{
	const char *sha[] = {AIF_SCHEMA_REPEATABLE_SHA256};
	char have[80];
	PGresult *res;
	int rc;

	if (begin_migration(conn, diag) < 0)
		return -1;
	rc = repeatable_sha(conn, have, sizeof(have), diag);
	if (rc < 0)
		goto fail;
	if (rc == 1 && strcmp(have, sha[0]) == 0) {
		rollback(conn); /* up to date, or another migrator was first */
		return 0;
	}
	for (size_t i = 0; i < aif_n_repeatables; i++)
		if (run_statements(conn, &aif_repeatables[i], diag) < 0)
			goto fail;
	res = PQexecParams(conn, "INSERT INTO aif.schema_repeatable (sha256) VALUES ($1)"
			   " ON CONFLICT (id) DO UPDATE SET sha256 = excluded.sha256, applied_at = now()",
			   1, NULL, sha, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		aif_db_diag(diag, conn, res, "cannot record the functions and views");
		PQclear(res);
		goto fail;
	}
	PQclear(res);
	if (command(conn, "COMMIT", "cannot commit a migration", diag) < 0)
		goto fail;
	return 0;
fail:
	rollback(conn);
	return -1;
}

int aif_db_migrate(PGconn *conn, int *applied, struct aif_diag *diag)
{
	int version, server = PQserverVersion(conn);

	*applied = 0;
	aif_diag_clear(diag);
	if (PQstatus(conn) != CONNECTION_OK) {
		aif_db_diag(diag, conn, NULL, "cannot migrate the aif schema");
		return -1;
	}
	if (server < AIF_DB_MIN_SERVER_VERSION) {
		aif_diag_message(diag, "PostgreSQL %d.%d is too old for aif", server / 10000, server % 10000);
		aif_diag_detail(diag, "aif's schema needs PostgreSQL %d or later.",
				AIF_DB_MIN_SERVER_VERSION / 10000);
		return -1;
	}
	if (PQtransactionStatus(conn) != PQTRANS_IDLE) {
		aif_diag_message(diag, "cannot migrate the aif schema inside a transaction");
		aif_diag_hint(diag, "Each migration runs in its own transaction; call this outside one.");
		return -1;
	}

	/* Migrations: only those not applied (a transaction and the lock each); then the
	 * repeatable files, under the lock, when the database does not have this build's. */
	version = known_schema_version(conn, diag);
	if (version < 0)
		return -1;
	for (size_t i = 0; i < aif_n_migrations && version < AIF_SCHEMA_VERSION; i++) {
		if (aif_migrations[i].version <= version)
			continue;
		if (migrate_one(conn, &aif_migrations[i], applied, diag) < 0)
			return -1;
	}
	return migrate_repeatables(conn, diag);
}

/*
 * Keywords before "dbname" are defaults: the expanded conninfo overrides them. TCP keepalives
 * and tcp_user_timeout let the kernel notice a peer that vanished (a network black hole)
 * within a minute instead of hours, on every connection of aif's.
 */
static const char *const connect_keywords[] = {
	"connect_timeout", "fallback_application_name", "options", "keepalives", "keepalives_idle",
	"keepalives_interval", "keepalives_count", "tcp_user_timeout", "dbname", NULL};

static void connect_values(const char **values, const char *conninfo, const char *application_name)
{
	const char *v[] = {"10", application_name, "-c jit=off", "1", "30", "10", "3", "60000",
			   conninfo, NULL};

	memcpy(values, v, sizeof(v));
}

PGconn *aif_db_connect(const char *conninfo, const char *application_name)
{
	const char *values[sizeof(connect_keywords) / sizeof(connect_keywords[0])];

	connect_values(values, conninfo, application_name);
	return PQconnectdbParams(connect_keywords, values, 1);
}

/* Wait until fd is ready for events or deadline_ms; true when ready. */
static bool wait_ready(int fd, short events, int64_t deadline_ms)
{
	return aif_clock_wait_fd(fd, events, deadline_ms) == 0;
}

PGconn *aif_db_connect_by(const char *conninfo, const char *application_name, int64_t deadline_ms)
{
	const char *values[sizeof(connect_keywords) / sizeof(connect_keywords[0])];
	PGconn *conn;
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;

	connect_values(values, conninfo, application_name);
	conn = PQconnectStartParams(connect_keywords, values, 1);
	if (!conn || PQstatus(conn) == CONNECTION_BAD)
		return conn;
	while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
		if (!wait_ready(PQsocket(conn), st == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline_ms)) {
			PQfinish(conn);
			return NULL;
		}
		st = PQconnectPoll(conn);
	}
	return conn;
}

PGresult *aif_db_result_by(PGconn *conn, int sent, int64_t deadline_ms)
{
	PGresult *last = NULL, *res;
	int flushed;

	if (!sent)
		return NULL;
	while ((flushed = PQflush(conn)) == 1)
		if (!wait_ready(PQsocket(conn), POLLIN | POLLOUT, deadline_ms) || !PQconsumeInput(conn))
			return NULL;
	if (flushed < 0)
		return NULL;
	for (;;) {
		while (PQisBusy(conn))
			if (!wait_ready(PQsocket(conn), POLLIN, deadline_ms) || !PQconsumeInput(conn)) {
				PQclear(last);
				return NULL;
			}
		res = PQgetResult(conn);
		if (!res)
			return last;
		PQclear(last);
		last = res;
	}
}

int aif_db_check_schema(PGconn *conn, struct aif_diag *diag)
{
	char have[80];
	int version, rc;

	aif_diag_clear(diag);
	version = known_schema_version(conn, diag);
	if (version < 0)
		return -1;
	if (version < AIF_SCHEMA_VERSION) {
		if (version == 0)
			aif_diag_message(diag, "the database has no aif schema");
		else
			aif_diag_message(diag, "the database's aif schema (version %d) is older than this program's (version %d)",
					 version, AIF_SCHEMA_VERSION);
		aif_diag_hint(diag, "Run \"aifctl db migrate\".");
		return -1;
	}
	have[0] = '\0';
	rc = repeatable_sha(conn, have, sizeof(have), diag);
	if (rc < 0)
		return -1;
	if (strcmp(have, AIF_SCHEMA_REPEATABLE_SHA256) != 0) {
		aif_diag_message(diag, "the database's aif functions and views are not this program's");
		aif_diag_detail(diag, "The database has those of sql/repeatable/ with SHA-256 %.12s, this "
				      "program those with SHA-256 %.12s.",
				have[0] ? have : "(none)", AIF_SCHEMA_REPEATABLE_SHA256);
		aif_diag_hint(diag, "Run \"aifctl db migrate\" with the newer aif, and that same aif "
				    "everywhere on this database.");
		return -1;
	}
	return 0;
}
