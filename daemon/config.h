/*
 * config: aifd's config file (default /etc/aif/aifd.conf), "key = value" lines read with
 * lib/aif_settings. docs/aifd.md describes every key.
 */
#ifndef AIFD_CONFIG_H
#define AIFD_CONFIG_H

#include <stdbool.h>
#include <sys/types.h>
#include <sys/un.h>

#include "log.h"

#define AIFD_DEFAULT_CONFIG "/etc/aif/aifd.conf"

/* The largest Unix socket path, with its terminating NUL. */
#define AIFD_SOCKET_PATH_SIZE sizeof(((struct sockaddr_un *)0)->sun_path)

struct aifd_config {
	/* Set from the file (or the defaults). */
	char cluster[64];                          /* this cluster's Slurm ClusterName */
	char db[1024];                             /* libpq conninfo */
	char listen[128];                          /* "ADDRESS:PORT", "[IPV6]:PORT" or "none" */
	char socket[AIFD_SOCKET_PATH_SIZE];        /* Unix socket path */
	char munge_socket[AIFD_SOCKET_PATH_SIZE];  /* "" = libmunge's default */
	char user[64];                             /* whom to run as when started as root */
	char slurm_user[64];                       /* Slurm's SlurmUser: trusted like root */
	int log_level;                             /* enum log_level */
	bool syslog;
	unsigned long workers;                     /* threads decoding and answering requests */
	unsigned long refresh_interval_ms;         /* longest use of one budget snapshot */
	unsigned long flush_interval_ms;           /* how often usage is folded into the rollups */
	unsigned long reconcile_interval_ms;       /* how often to reconcile with slurmctld */

	/* Resolved through NSS while validating. */
	uid_t user_uid;
	gid_t user_gid;
	uid_t slurm_uid;
};

/*
 * Read and validate the config file at path into *config (defaults first). Every error is
 * logged with the file and line it is about (line 0 when it is about no line, such as a
 * missing required key). Returns the number of errors: 0 when *config is good to use.
 */
int config_load(const char *path, struct aifd_config *config);

/*
 * SIGHUP: load path again. With errors, log them and keep *running as it is (returns -1).
 * Otherwise apply the settings that can change while aifd runs, log each change, and log the
 * ones that need a restart, which keep their running values (returns 0).
 */
int config_reload(const char *path, struct aifd_config *running);

#endif
