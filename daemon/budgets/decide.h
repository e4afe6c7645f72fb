/*
 * decide: aifd's admission decision, a pure function of a snapshot (snapshot.h) and a request.
 * No I/O, no clock, no NSS: the caller passes "now" and the user's group names (resolved with
 * getgrouplist), so that every decision can be table-tested.
 *
 * The checks, in order; the first one that fails is the answer, because each one makes the
 * ones after it meaningless or would give advice that cannot work:
 *
 *   1. the project:
 *      given:  it exists (else "unknown project"); it is not retired (a retired project has
 *              no members, so the membership check would blame the user); the user, or one
 *              of the user's groups, is a member (before the cluster: a non-member cannot use
 *              it anywhere); its factory serves this cluster;
 *      absent: the user's only active project usable on this cluster, else a refusal that
 *              lists the candidates (several) or says there is none;
 *   2. the sector: given, it must be one of the project's; absent, the project's default;
 *   3. the budget, in every period that contains now (periods may overlap; each one must have
 *      room), periods in order of start:
 *      a. some period contains now, and the factory has a budget for each one (a factory
 *         without a budget for a period has no GPU-hours there; a project without one is
 *         limited only by its factory's);
 *      b. the project is not exhausted (used >= its budget) in any of them;
 *      c. the factory is not exhausted in any of them (the project's exhaustion comes first:
 *         its figures are the ones the user sees in "aifctl projects");
 *   4. a warning (verdict warn, still admitted): the project's used percentage is at or above
 *      one of its warn_at thresholds in some period (the highest threshold reached is named,
 *      with the GPU-hours that remain); else the factory's, against the factory's warn_at.
 *
 * Both kinds (check at submit time, admit at start time) run the same checks; the kind is in
 * the request for the caller's logs. Used GPU-hours count running jobs up to req->now (see
 * struct snap_usage).
 */
#ifndef AIFD_DECIDE_H
#define AIFD_DECIDE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "aif_diag.h"
#include "snapshot.h"

enum decide_kind {
	DECIDE_CHECK, /* submit time, by the user */
	DECIDE_ADMIT, /* start time, from slurmstepd */
};

enum decide_verdict {
	DECIDE_OK,
	DECIDE_WARN,
	DECIDE_REFUSE,
};

/* Which check gave the verdict: for logs and tests (the diag is for the user). */
enum decide_reason {
	DECIDE_R_OK,
	DECIDE_R_UNKNOWN_PROJECT,
	DECIDE_R_RETIRED,
	DECIDE_R_NOT_MEMBER,
	DECIDE_R_WRONG_CLUSTER,
	DECIDE_R_NO_PROJECT,     /* none given, and no candidate */
	DECIDE_R_AMBIGUOUS,      /* none given, and several candidates */
	DECIDE_R_BAD_SECTOR,
	DECIDE_R_NO_BUDGET,
	DECIDE_R_PROJECT_EXHAUSTED,
	DECIDE_R_FACTORY_EXHAUSTED,
	DECIDE_R_PROJECT_WARNING,
	DECIDE_R_FACTORY_WARNING,
	/* An admission that reserves (reserve.h), after the checks above: */
	DECIDE_R_PROJECT_CANNOT_AFFORD, /* the job's maximum cost exceeds what the project has left */
	DECIDE_R_FACTORY_CANNOT_AFFORD, /* likewise its factory */
	DECIDE_R_NO_TIME_LIMIT,         /* no finite time limit: no maximum cost */
};

struct decide_request {
	enum decide_kind kind;
	const char *cluster;
	uid_t uid;
	const char *user; /* the user's name; NULL when it has none (then only groups count) */
	const char *const *groups; /* the user's group names, primary included */
	size_t n_groups;
	const char *project; /* NULL or "": resolve the user's default project */
	const char *sector;  /* NULL or "": the project's default sector */
	int64_t now;         /* Unix seconds */
};

struct decision {
	enum decide_verdict verdict;
	enum decide_reason reason;
	const char *project; /* resolved: points into the snapshot, NULL when unresolved */
	const char *sector;  /* likewise */
	bool reserve;        /* the project admits by reserving: an admission stands only once
				aif.reserve() (sql/repeatable/35_reserve.sql) found the job's cost fits */
	int64_t left_us;     /* reserve: GPU-microseconds not committed (used or reserved) in the
				current period and budget that leave the least, and that period
				(NULL unless reserve and not refused) */
	const char *left_period;
	int64_t most_us;     /* reserve: the least of those budgets whole (a job that costs more
				never fits); INT64_MAX when no period contains now */
	struct aif_diag diag; /* empty on ok */
};

/* Fill *out; returns out->verdict. Never fails. */
int decide(const struct snapshot *s, const struct decide_request *req, struct decision *out);

/*
 * One line of a "status" answer: a project's budget in one period that contains now. When
 * the project has no budget of its own there, the figures are its factory's (scope
 * "factory"), since that is what limits it.
 */
struct project_status {
	const char *project, *factory, *period; /* point into the snapshot */
	const char *scope;                       /* "project" or "factory" */
	double budget_gpu_hours, used_gpu_hours;
	const char *state;                       /* "ok", "warning", "exhausted" */
};

/*
 * The status of the projects on req->cluster that req's user (or groups) is a member of, or
 * of every active one when all is set (root and SlurmUser), in every period that contains now,
 * by project id, then period. fn is called once per line; returns the number of lines.
 */
size_t decide_status(const struct snapshot *s, const struct decide_request *req, int all,
		     void (*fn)(void *arg, const struct project_status *st), void *arg);

/*
 * Whether a decision for this reason names a project and sector its user may use, and so be
 * charged for: every reason but the refusals before the budget checks (step 1 and 2 above).
 */
bool decide_reason_charges(enum decide_reason r);
/* The same for a reason by its decide_reason_name() (as kept in aif.admissions). */
bool decide_reason_name_charges(const char *name);
/*
 * The names of the reasons that charge, as a PostgreSQL array literal ("{ok,...}"), for SQL
 * that reads aif.admissions (store.c). Returns 0, or -1 when it does not fit in size.
 */
int decide_charging_reasons(char *buf, size_t size);

const char *decide_verdict_name(enum decide_verdict v); /* "ok", "warn", "refuse" */
const char *decide_reason_name(enum decide_reason r);   /* "unknown-project", ... */

/*
 * GPU-hours as a protocol field: 2 decimals, more for a value below 0.01 (up to 6), so that a
 * tiny budget does not read as 0. buf: at least 32 bytes.
 */
const char *decide_hours_field(char *buf, size_t size, double h);

#endif
