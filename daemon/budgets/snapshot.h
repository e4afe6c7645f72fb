/*
 * snapshot: everything aifd needs to decide admissions, in memory: the budget periods, the
 * AI Factories and their projects (sectors, members, policy, budgets) and the GPU-hours used
 * per period and project. Loaded from PostgreSQL in one consistent read (snapshot_load) and
 * read by decide() (decide.h), which does no I/O.
 *
 * Indexes instead of pointers between the parts, so that a test can build a snapshot by hand
 * with static arrays. All strings are NUL-terminated; lists are sorted as noted.
 */
#ifndef AIFD_SNAPSHOT_H
#define AIFD_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aif_diag.h"
#include "db.h"

#define SNAP_MAX_WARN_AT 8

enum snap_on_exhausted {
	SNAP_DENY,
	SNAP_CANCEL,
};

/* A budget period: [start, end) in Unix seconds, UTC (whole days). */
struct snap_period {
	const char *id;
	int64_t start;
	int64_t end;
};

/*
 * GPU-hours granted for one period: periods[period], and the budget's thresholds in
 * GPU-microseconds of usage, as aif.budget_thresholds() (sql/repeatable/30_budget.sql) gives
 * them: the one definition of a budget's state. Usage (whole microseconds) is exhausted at
 * exhausted_us, and reaches its owner's policy.warn_at[i] percent at warn_us[i].
 */
struct snap_budget {
	size_t period;
	double gpu_hours;
	int64_t exhausted_us;
	int64_t warn_us[SNAP_MAX_WARN_AT];
};

/* Effective policy (a project's is already inherited from its factory by aif.apply). */
struct snap_policy {
	int warn_at[SNAP_MAX_WARN_AT]; /* percents, strictly increasing */
	size_t n_warn_at;
	enum snap_on_exhausted on_exhausted;
	int64_t grace_seconds;
	bool reserve; /* admission: reserve (sql/012_reservations.sql) */
};

struct snap_factory {
	const char *id;
	const char *name; /* may be NULL */
	const char *const *clusters; /* sorted */
	size_t n_clusters;
	bool retired;
	struct snap_policy policy;
	const struct snap_budget *budgets;
	size_t n_budgets;
};

struct snap_project {
	const char *id;
	size_t factory; /* factories[factory] */
	const char *const *sectors; /* the default first, then in the file's order */
	size_t n_sectors;
	const char *const *users; /* member user names */
	size_t n_users;
	const char *const *groups; /* member group names */
	size_t n_groups;
	bool retired;
	struct snap_policy policy;
	const struct snap_budget *budgets;
	size_t n_budgets;
};

/*
 * GPU-hours used by projects[project] in periods[period], as GPU-microseconds (exact, like
 * the rollups): closed intervals plus running ones up to the snapshot's taken_at.
 * running_gpus is the number of GPUs of the project's intervals open at taken_at that overlap
 * the period (whatever their start): decide() adds running_gpus x the time from taken_at to
 * its own "now" inside the period, so a snapshot stays exact while no interval opens or closes.
 * Only pairs with usage or reservations are listed; absent pairs used nothing.
 */
struct snap_usage {
	size_t period;
	size_t project;
	int64_t used_us;
	int64_t running_gpus;
	int64_t committed_us; /* closed usage plus reservations (aif.committed_us()), at taken_at */
};

struct snapshot {
	int64_t taken_at; /* the database's now() for the read, Unix seconds */
	const struct snap_period *periods; /* sorted by start, then id */
	size_t n_periods;
	const struct snap_factory *factories; /* sorted by id */
	size_t n_factories;
	const struct snap_project *projects; /* sorted by id, retired ones included */
	size_t n_projects;
	const struct snap_usage *usage;
	size_t n_usage;
};

/*
 * Read the whole configuration and the usage of every period and project over db (db.h: each
 * statement within its timeout) in one REPEATABLE READ READ ONLY transaction (one consistent
 * view, also of usage that other aifds record meanwhile). The connection must be idle (no
 * transaction open); it is left idle, or dropped when it failed. Returns 0 and *out (free
 * with snapshot_free), or -1 with diag (*out untouched).
 */
int snapshot_load(struct db *db, struct snapshot **out, struct aif_diag *diag);

/* Free a snapshot from snapshot_load; NULL is fine. Never pass a hand-built snapshot. */
void snapshot_free(struct snapshot *s);

#endif
