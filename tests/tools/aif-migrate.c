/*
 * aif-migrate: for tests only, the schema migration of lib/aif_db.c on a database.
 *
 *   aif-migrate CONNINFO           migrate; prints "applied N version V"
 *   aif-migrate --version CONNINFO prints the database's schema version
 *
 * Errors go to stderr in PostgreSQL's style; the exit status is 1 then. aifctl db migrate is
 * the operators' command on top of the same library function.
 */
#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

#include "aif_db.h"

int main(int argc, char **argv)
{
	struct aif_diag diag;
	char buf[1200];
	const char *conninfo;
	PGconn *conn;
	int applied = 0, version, rc = 0;
	int only_version = argc == 3 && strcmp(argv[1], "--version") == 0;

	if (argc != 2 && !only_version) {
		fprintf(stderr, "usage: aif-migrate [--version] CONNINFO\n");
		return 2;
	}
	conninfo = argv[argc - 1];
	conn = PQconnectdb(conninfo);
	if (PQstatus(conn) != CONNECTION_OK) {
		aif_db_diag(&diag, conn, NULL, "cannot connect");
		fprintf(stderr, "aif-migrate: %s\n", aif_diag_format(&diag, buf, sizeof(buf)));
		PQfinish(conn);
		return 1;
	}
	if (!only_version && aif_db_migrate(conn, &applied, &diag) < 0) {
		fprintf(stderr, "aif-migrate: %s\n", aif_diag_format(&diag, buf, sizeof(buf)));
		rc = 1;
	} else if ((version = aif_db_schema_version(conn, &diag)) < 0) {
		fprintf(stderr, "aif-migrate: %s\n", aif_diag_format(&diag, buf, sizeof(buf)));
		rc = 1;
	} else if (only_version) {
		printf("%d\n", version);
	} else {
		printf("applied %d version %d\n", applied, version);
	}
	PQfinish(conn);
	return rc;
}
