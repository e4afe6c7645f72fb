#include "db.h"

#include <stdio.h>

#include "aif_client.h"
#include "aif_db.h"
#include "log.h"
#include "wakeup.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

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

void db_log_failure(enum log_level level, const char *what, PGconn *conn)
{
	struct aif_diag d;

	aif_diag_clear(&d);
	aif_diag_message(&d, "%s", what);
	aif_diag_detail(&d, "%s", conn ? PQerrorMessage(conn) : "out of memory");
	log_diag(level, NULL, &d);
}

PGconn *db_reconnect(PGconn *old, const char *conninfo, const char *application_name,
		     const char *who, int wake_fd, atomic_bool *stopping, int (*setup)(PGconn *conn))
{
	unsigned backoff = BACKOFF_MIN_MS;
	PGconn *conn = old;
	char what[128];

	log_warning("%s lost its database connection; reconnecting", who);
	snprintf(what, sizeof(what), "%s could not reconnect to the database", who);
	while (!atomic_load(stopping)) {
		PQfinish(conn);
		conn = aif_db_connect(conninfo, application_name);
		if (PQstatus(conn) == CONNECTION_OK && (!setup || setup(conn) == 0)) {
			log_info("%s reconnected to the database", who);
			return conn;
		}
		if (PQstatus(conn) != CONNECTION_OK)
			db_log_failure(LOG_LEVEL_WARNING, what, conn);
		wakeup_wait(wake_fd, aif_clock_ms() + backoff); /* stopping wakes it */
		backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
	}
	PQfinish(conn);
	return NULL;
}
