/* db: aifd's connection to PostgreSQL. */
#ifndef AIFD_DB_H
#define AIFD_DB_H

#include <stdatomic.h>

#include <libpq-fe.h>

#include "config.h"
#include "log.h"

/*
 * Connect with config->db and check that the database has aif's schema at this program's
 * version. Returns the connection, or NULL (logged, with what to do).
 */
PGconn *db_connect(const struct aifd_config *config);

/* Log that connecting failed: what, then libpq's reason as DETAIL. */
void db_log_failure(enum log_level level, const char *what, PGconn *conn);

/*
 * For a thread whose own connection was lost (old, freed here): connect again as often as it
 * takes, with a capped exponential backoff whose waits wake_fd cuts short, until *stopping.
 * setup (NULL: none) runs on each new connection, such as a LISTEN; when it fails (it logs),
 * the connection counts as failed. Logs as "<who> lost its database connection; ...".
 * Returns the connection, or NULL once stopping.
 */
PGconn *db_reconnect(PGconn *old, const char *conninfo, const char *application_name,
		     const char *who, int wake_fd, atomic_bool *stopping, int (*setup)(PGconn *conn));

#endif
