/* aifctl db migrate: create or upgrade the database schema to the one this aifctl carries. */
#include <stdio.h>
#include <string.h>

#include "aif_db.h"
#include "aifctl.h"

int aifctl_cmd_db(const struct aifctl *ctl)
{
	struct aif_diag diag;
	PGconn *conn;
	int before, applied = 0;

	if (strcmp(ctl->args[0], "migrate") != 0) {
		fprintf(stderr, "aifctl: unknown db command \"%s\"; expected \"migrate\"\n", ctl->args[0]);
		return AIFCTL_INVALID;
	}
	if (!(conn = aifctl_connect(ctl, 0)))
		return AIFCTL_FAILURE;
	if ((before = aif_db_schema_version(conn, &diag)) < 0 || aif_db_migrate(conn, &applied, &diag) < 0) {
		aifctl_report_error(&diag);
		PQfinish(conn);
		return AIFCTL_FAILURE;
	}
	if (applied)
		printf("Migrated the aif schema from version %d to %d (%d %s applied).\n", before,
		       AIF_SCHEMA_VERSION, applied, applied == 1 ? "migration" : "migrations");
	else
		printf("The aif schema is up to date (version %d).\n", AIF_SCHEMA_VERSION);
	PQfinish(conn);
	return AIFCTL_OK;
}
