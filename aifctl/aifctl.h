/* What the aifctl commands share: the parsed command line, exit codes, the database. */
#ifndef AIFCTL_H
#define AIFCTL_H

#include <stdbool.h>

#include <libpq-fe.h>

#include "aif_diag.h"

/* Exit codes, as documented in aifctl --help. */
enum {
	AIFCTL_OK = 0,
	AIFCTL_FAILURE = 1, /* the database or the system failed */
	AIFCTL_INVALID = 2, /* the command line or the budgets file is invalid */
};

enum aifctl_format { AIFCTL_FORMAT_TABLE, AIFCTL_FORMAT_CSV, AIFCTL_FORMAT_JSON };

struct aifctl {
	const char *db_option;     /* --db CONNINFO */
	const char *server_option; /* --server ADDRESS (of aifd) */
	const char *cluster_option; /* --cluster NAME */
	const char *spool_dir_option; /* --spool-dir DIR */
	const char *config_path;   /* --config FILE, or NULL for the default file if present */
	enum aifctl_format format;
	const char *by;            /* report --by */
	const char *period;        /* status/report --period */
	bool slurm;                /* check --slurm */
	char **args;               /* the command's positional arguments */
	int n_args;
};

/* The config file: what --db, --server and --cluster default to. */
struct aifctl_config {
	char db[1024];
	char server[256];
	char cluster[64];
	char munge_socket[256];
	char spool_dir[256];
};

/* Read --config, or the default config file when it exists (else all empty). 0, or -1 (printed). */
int aifctl_read_config(const struct aifctl *ctl, struct aifctl_config *config);

/* Print "aifctl: ERROR:  message" plus DETAIL and HINT lines, PostgreSQL style. */
void aifctl_report_error(const struct aif_diag *diag);
/* The same with another severity ("WARNING"). */
void aifctl_report(const char *severity, const struct aif_diag *diag);
void aifctl_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Connect using --db, else the config file's "db" setting, else libpq's environment
 * (PGHOST, PGDATABASE, ...). With need_schema, also require the schema version this
 * aifctl was built for. Returns NULL after printing the error.
 */
PGconn *aifctl_connect(const struct aifctl *ctl, int need_schema);

/* Run SQL that returns no rows; on failure print the server's error and return -1. */
int aifctl_exec(PGconn *conn, const char *sql);
/* Print a failed result's error (message, detail, hint) and clear it. */
void aifctl_report_pg_error(PGresult *res);
/* Under a table of budgets: what their hours are (docs/budgets-yaml.md, "Charging"). */
#define AIFCTL_CHARGED_NOTE \
	"Hours are charged GPU-hours: each GPU-hour at its GPU model's rate on its cluster."

/* Run a query with text parameters and print its rows in ctl->format, with note (or NULL)
 * under a text table; returns an exit code. */
int aifctl_print_query(const struct aifctl *ctl, PGconn *conn, const char *note, const char *sql,
		       int n_params, const char *const *params);
/* AIFCTL_OK when the budget period exists; otherwise print why and return the exit code. */
int aifctl_check_period(PGconn *conn, const char *period);

int aifctl_cmd_check(const struct aifctl *ctl);
int aifctl_cmd_plan(const struct aifctl *ctl);
int aifctl_cmd_apply(const struct aifctl *ctl);
int aifctl_cmd_status(const struct aifctl *ctl);
int aifctl_cmd_report(const struct aifctl *ctl);
int aifctl_cmd_db(const struct aifctl *ctl);
int aifctl_cmd_projects(const struct aifctl *ctl);
int aifctl_cmd_spool(const struct aifctl *ctl);

#endif
