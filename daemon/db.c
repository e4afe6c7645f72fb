#include "db.h"

#include "aif_db.h"
#include "log.h"

PGconn *db_connect(const struct aifd_config *config)
{
	struct aif_diag diag;
	PGconn *conn = aif_db_connect(config->db, "aifd");

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
