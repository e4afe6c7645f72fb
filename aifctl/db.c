/* aifctl's connection to PostgreSQL and its error reporting. */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "aif_db.h"
#include "aifctl.h"
#include "output.h"

void aifctl_report_error(const struct aif_diag *diag)
{
	aifctl_report("ERROR", diag);
}

void aifctl_report(const char *severity, const struct aif_diag *diag)
{
	fprintf(stderr, "aifctl: %s:  %s\n", severity, diag->message);
	if (diag->detail[0])
		fprintf(stderr, "DETAIL:  %s\n", diag->detail);
	if (diag->hint[0])
		fprintf(stderr, "HINT:  %s\n", diag->hint);
}

void aifctl_error(const char *fmt, ...)
{
	va_list ap;
	fputs("aifctl: ERROR:  ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void aifctl_report_pg_error(PGresult *res)
{
	const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
	const char *hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
	const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

	fprintf(stderr, "aifctl: ERROR:  %s\n", primary ? primary : PQresultErrorMessage(res));
	if (detail)
		fprintf(stderr, "DETAIL:  %s\n", detail);
	if (hint)
		fprintf(stderr, "HINT:  %s\n", hint);
	PQclear(res);
}

int aifctl_exec(PGconn *conn, const char *sql)
{
	PGresult *res = PQexec(conn, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
		aifctl_report_pg_error(res);
		return -1;
	}
	PQclear(res);
	return 0;
}

PGconn *aifctl_connect(const struct aifctl *ctl, int need_schema)
{
	struct aifctl_config config;
	const char *conninfo = ctl->db_option;
	struct aif_diag diag;
	PGconn *conn;

	if (!conninfo) {
		if (aifctl_read_config(ctl, &config) < 0)
			return NULL;
		if (config.db[0])
			conninfo = config.db;
	}
	conn = PQconnectdb(conninfo ? conninfo : "");
	if (PQstatus(conn) != CONNECTION_OK) {
		aif_diag_clear(&diag);
		aif_diag_message(&diag, "could not connect to the aif database");
		aif_diag_detail(&diag, "%s", PQerrorMessage(conn));
		/* libpq's message ends with a newline */
		diag.detail[strcspn(diag.detail, "\n")] = '\0';
		aif_diag_hint(&diag, "Give a connection string with --db, \"db\" in %s, or the PG* "
				     "environment variables.", AIFCTL_DEFAULT_CONFIG);
		aifctl_report_error(&diag);
		PQfinish(conn);
		return NULL;
	}
	if (need_schema && aif_db_check_schema(conn, &diag) < 0) {
		aifctl_report_error(&diag);
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

int aifctl_print_query(const struct aifctl *ctl, PGconn *conn, const char *note, const char *sql,
		       int n_params, const char *const *params)
{
	PGresult *res = PQexecParams(conn, sql, n_params, NULL, params, NULL, NULL, 0);
	struct output_table *t;
	int rc;

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		aifctl_report_pg_error(res);
		return AIFCTL_FAILURE;
	}
	t = output_table_from_result(res);
	PQclear(res);
	if (!t) {
		aifctl_error("out of memory");
		return AIFCTL_FAILURE;
	}
	if (note)
		output_table_note(t, note);
	rc = output_table_print(t, ctl->format, stdout) == 0 ? AIFCTL_OK : AIFCTL_FAILURE;
	output_table_free(t);
	return rc;
}

int aifctl_check_period(PGconn *conn, const char *period)
{
	const char *params[] = {period};
	PGresult *res = PQexecParams(conn, "SELECT 1 FROM aif.periods WHERE id = $1", 1, NULL, params, NULL, NULL, 0);
	int rc;

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		aifctl_report_pg_error(res);
		return AIFCTL_FAILURE;
	}
	rc = PQntuples(res) == 1 ? AIFCTL_OK : AIFCTL_INVALID;
	PQclear(res);
	if (rc != AIFCTL_OK) {
		struct aif_diag diag;
		aif_diag_clear(&diag);
		aif_diag_message(&diag, "unknown period \"%s\"", period);
		aif_diag_hint(&diag, "Periods are defined in the budgets file; \"aifctl status\" lists them.");
		aifctl_report_error(&diag);
	}
	return rc;
}
