/*
 * aif-db-exec: for tests, aifd's way of running a statement (daemon/db.c, db_exec()) on one
 * connection, one statement per line of standard input (no parameters, no newline inside; of
 * any length).
 *
 *   aif-db-exec CONNINFO < STATEMENTS
 *
 * For each line, one line out: the rows, fields separated by '|' and rows by ';' ("" for
 * none); "ERROR SQLSTATE" when the server refused it; "LOST" when the connection was lost (the
 * next line waits for db.c's backoff, then reconnects). Exit status 0, or 2 on bad usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aif_clock.h"
#include "db.h"

static void print_rows(const PGresult *res)
{
	for (int r = 0; r < PQntuples(res); r++) {
		if (r)
			putchar(';');
		for (int c = 0; c < PQnfields(res); c++)
			printf("%s%s", c ? "|" : "", PQgetvalue(res, r, c));
	}
	putchar('\n');
}

/* Until db.c's backoff after a failure has passed. */
static void wait_retry(const struct db *db)
{
	int64_t ms = db_retry_at(db) - aif_clock_ms();

	if (ms > 0)
		nanosleep(&(struct timespec){ms / 1000, (ms % 1000) * 1000000L}, NULL);
}

int main(int argc, char **argv)
{
	char *line = NULL;
	size_t cap = 0;
	struct aif_diag diag;
	struct db db;

	if (argc != 2) {
		fprintf(stderr, "usage: %s CONNINFO < STATEMENTS\n", argv[0]);
		return 2;
	}
	if (db_init(&db, argv[1], "aif-db-exec", "aif-db-exec", 5000) < 0) {
		fprintf(stderr, "aif-db-exec: out of memory\n");
		return 2;
	}
	while (getline(&line, &cap, stdin) >= 0) {
		PGresult *res;

		line[strcspn(line, "\n")] = '\0';
		wait_retry(&db);
		res = db_exec(&db, "aif-db-exec", line, 0, NULL, &diag);
		if (!res)
			printf("LOST\n");
		else if (PQresultStatus(res) == PGRES_TUPLES_OK || PQresultStatus(res) == PGRES_COMMAND_OK)
			print_rows(res);
		else
			printf("ERROR %s\n", PQresultErrorField(res, PG_DIAG_SQLSTATE));
		fflush(stdout);
		PQclear(res);
	}
	db_close(&db);
	free(line);
	return 0;
}
