/* db: aifd's connection to PostgreSQL. */
#ifndef AIFD_DB_H
#define AIFD_DB_H

#include <libpq-fe.h>

#include "config.h"

/*
 * Connect with config->db and check that the database has aif's schema at this program's
 * version. Returns the connection, or NULL (logged, with what to do).
 */
PGconn *db_connect(const struct aifd_config *config);

#endif
