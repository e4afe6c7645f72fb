#include "snapshot.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aif_db.h"

/*
 * The queries, each read in full in one REPEATABLE READ READ ONLY transaction. Ids are sorted
 * with COLLATE "C" so that the lists match strcmp() (decide() looks projects up with bsearch)
 * and the rows of one owner are contiguous. No SQL is built from data; the only parameter is
 * the snapshot's time.
 */
enum q {
	Q_NOW,
	Q_PERIODS,
	Q_FACTORIES,
	Q_CLUSTERS,
	Q_FACTORY_BUDGETS,
	Q_PROJECTS,
	Q_SECTORS,
	Q_MEMBERS,
	Q_PROJECT_BUDGETS,
	Q_USAGE,
	Q_COUNT
};

static const char *const queries[Q_COUNT] = {
	[Q_NOW] = "SELECT floor(extract(epoch FROM now()))::bigint",
	[Q_PERIODS] = "SELECT id, extract(epoch FROM starts_on::timestamp AT TIME ZONE 'UTC')::bigint,"
		      " extract(epoch FROM ends_on::timestamp AT TIME ZONE 'UTC')::bigint"
		      " FROM aif.periods ORDER BY starts_on, id COLLATE \"C\"",
	[Q_FACTORIES] = "SELECT id, name, on_exhausted, grace_seconds, array_to_string(warn_at, ','),"
			" retired_at IS NOT NULL, admission FROM aif.factories ORDER BY id COLLATE \"C\"",
	[Q_CLUSTERS] = "SELECT factory_id, cluster FROM aif.factory_clusters"
		       " ORDER BY factory_id COLLATE \"C\", cluster COLLATE \"C\"",
	/* The thresholds in warn_at's order, as the policy lists them. */
	[Q_FACTORY_BUDGETS] = "SELECT b.factory_id, b.period_id, b.gpu_hours::float8, t.exhausted_us,"
			      " array_to_string(t.warn_us, ',')"
			      " FROM aif.factory_budgets b JOIN aif.factories f ON f.id = b.factory_id,"
			      " aif_report.budget_thresholds(b.gpu_hours, f.warn_at) t"
			      " ORDER BY b.factory_id COLLATE \"C\", b.period_id COLLATE \"C\"",
	[Q_PROJECTS] = "SELECT id, factory_id, on_exhausted, grace_seconds, array_to_string(warn_at, ','),"
		       " retired_at IS NOT NULL, admission FROM aif.projects ORDER BY id COLLATE \"C\"",
	[Q_SECTORS] = "SELECT project_id, sector_id FROM aif.project_sectors"
		      " ORDER BY project_id COLLATE \"C\", position",
	[Q_MEMBERS] = "SELECT project_id, kind, name FROM aif.project_members"
		      " ORDER BY project_id COLLATE \"C\", kind, name COLLATE \"C\"",
	[Q_PROJECT_BUDGETS] = "SELECT b.project_id, b.period_id, b.gpu_hours::float8, t.exhausted_us,"
			      " array_to_string(t.warn_us, ',')"
			      " FROM aif.project_budgets b JOIN aif.projects p ON p.id = b.project_id,"
			      " aif_report.budget_thresholds(b.gpu_hours, p.warn_at) t"
			      " ORDER BY b.project_id COLLATE \"C\", b.period_id COLLATE \"C\"",
	/*
	 * Per period and project: charged GPU-microseconds used up to $1 (folded rollups + the
	 * queue + open intervals up to $1, as aif_report.budget_status computes them up to now(),
	 * each interval's share of a period as aif_report.charged_us_within() defines it; with
	 * fractional rates, open intervals may differ from it by their rounding, under a
	 * microsecond each), and the charged GPUs of the intervals open at $1, summed and then
	 * rounded up, for the periods not over at $1.
	 * The open intervals (a busy cluster's many) are summed first per project, span of
	 * start times between consecutive period bounds, $1 and $1 + 1 microsecond
	 * (width_bucket()) and charged GPUs, in integers (a numeric product per interval made
	 * the load 40 % slower; they are grouped by the stored charge, mostly NULL:
	 * aif.charged_gpus_stored()). A span lies wholly before $1, at $1 or after it, so
	 * whether its intervals count is decided once per span, not by a filter on each of them
	 * (6 % of the load). Then per project and span, each charge times its intervals'
	 * summed time: every interval of a span starts before a period, or within it and before
	 * its end, so a period's share of a span is its GPUs times a common length, or its GPUs'
	 * summed time to $1 less the time after the period's end. One cheap pass over them, not
	 * one row per interval and period (1 M open intervals: 0.5 s instead of 1.6 s here).
	 * Last, what is committed: the closed usage and the reservations (aif.committed_us()
	 * computes the same for one budget), for the submit-time check of projects that reserve.
	 * Rows of nothing are left out: decide() reads them all.
	 */
	[Q_USAGE] =
		"WITH t AS (SELECT to_timestamp($1::bigint) AS t),"
		" per AS (SELECT id, starts_on::timestamp AT TIME ZONE 'UTC' AS t0,"
		"  ends_on::timestamp AT TIME ZONE 'UTC' AS t1 FROM aif.periods),"
		" xs AS (SELECT array_agg(x ORDER BY x) AS xs FROM ("
		"  SELECT t0 AS x FROM per UNION SELECT t1 FROM per UNION SELECT t FROM t"
		"  UNION SELECT t + interval '1 microsecond' FROM t) b),"
		" oc AS (SELECT i.project_id, width_bucket(i.started_at, xs.xs) AS k,"
		"  coalesce(i.charged_gpus, i.gpus) AS c, count(*) AS n,"
		"  sum(round(date_part('epoch', t.t - i.started_at) * 1000000)::bigint) AS us"
		"  FROM aif.usage_intervals i, xs, t WHERE i.ended_at IS NULL"
		"  GROUP BY i.project_id, 2, i.gpus, i.charged_gpus),"
		" o AS (SELECT oc.project_id, oc.k,"
		"  sum(oc.c * oc.n) FILTER (WHERE oc.k = 0 OR xs.xs[oc.k] < t.t) AS g,"
		"  sum(round(oc.c * oc.us)) FILTER (WHERE oc.k = 0 OR xs.xs[oc.k] < t.t) AS g_us,"
		"  sum(oc.c * oc.n) FILTER (WHERE oc.k = 0 OR xs.xs[oc.k] <= t.t) AS g_now"
		"  FROM oc, xs, t GROUP BY 1, 2)"
		" SELECT x.period_id, x.project_id, sum(x.gpu_us)::bigint, ceil(sum(x.gpus))::bigint,"
		"  sum(x.committed_us)::bigint FROM ("
		"  SELECT r.period_id, r.project_id, r.charged_us AS gpu_us, 0 AS gpus, r.charged_us AS committed_us"
		"  FROM aif.usage_period_rollup r"
		"  UNION ALL"
		"  SELECT q.id, q.project_id, q.gpu_us, 0, q.gpu_us FROM ("
		"   SELECT per.id, u.project_id,"
		"    aif_report.charged_us_within(coalesce(u.charged_gpus, u.gpus), u.started_at, u.ended_at,"
		"     per.t0, per.t1) AS gpu_us"
		"   FROM aif.usage_queue u JOIN per ON u.started_at < per.t1 AND u.ended_at > per.t0"
		"    AND u.ended_at > u.started_at) q"
		"  UNION ALL"
		"  SELECT r.period_id, r.project_id, 0, 0, r.gpu_us FROM aif.reserved_totals r"
		"  WHERE r.gpu_us <> 0"
		"  UNION ALL"
		"  SELECT per.id, o.project_id,"
		"   CASE WHEN per.t0 >= t.t OR o.g IS NULL OR (o.k > 0 AND xs.xs[o.k] >= least(t.t, per.t1))"
		"    THEN 0"
		"    WHEN o.k = 0 OR xs.xs[o.k + 1] <= per.t0"
		"    THEN round(o.g * round(date_part('epoch', least(t.t, per.t1) - per.t0) * 1000000)::bigint)"
		"    ELSE o.g_us - round(o.g * round(date_part('epoch', t.t - least(t.t, per.t1)) * 1000000)::bigint)"
		"   END,"
		"   CASE WHEN per.t1 > t.t THEN coalesce(o.g_now, 0) ELSE 0 END, 0"
		"  FROM o, xs, t, per"
		" ) x GROUP BY x.period_id, x.project_id"
		" HAVING sum(x.gpu_us) <> 0 OR sum(x.gpus) <> 0 OR sum(x.committed_us) <> 0",
};

/* The snapshot and what it points into: the results' strings stay where libpq put them. */
struct owned {
	struct snapshot s;
	PGresult *res[Q_COUNT];
	void *arrays[16];
	size_t n_arrays;
};

static void *owned_calloc(struct owned *o, size_t n, size_t size)
{
	void *p;
	if (o->n_arrays == sizeof(o->arrays) / sizeof(o->arrays[0]))
		return NULL;
	p = calloc(n ? n : 1, size);
	if (p)
		o->arrays[o->n_arrays++] = p;
	return p;
}

static void owned_free(struct owned *o)
{
	if (!o)
		return;
	for (size_t i = 0; i < Q_COUNT; i++)
		PQclear(o->res[i]);
	for (size_t i = 0; i < o->n_arrays; i++)
		free(o->arrays[i]);
	free(o);
}

void snapshot_free(struct snapshot *s)
{
	owned_free((struct owned *)s);
}

static int parse_i64(const char *text, int64_t *out)
{
	char *end;
	long long v;
	errno = 0;
	v = strtoll(text, &end, 10);
	if (errno || end == text || *end)
		return -1;
	*out = v;
	return 0;
}

/* "1,2,3" (array_to_string()) into out[SNAP_MAX_WARN_AT]: the count, or -1. */
static int parse_list(const char *text, int64_t *out)
{
	const char *p = text;
	int n = 0;

	while (*p) {
		char *end;
		long long v;

		errno = 0;
		v = strtoll(p, &end, 10);
		if (errno || end == p || (*end && *end != ',') || n == SNAP_MAX_WARN_AT)
			return -1;
		out[n++] = v;
		p = *end == ',' ? end + 1 : end;
	}
	return n;
}

/* The policy in row of r: on_exhausted, grace_seconds, warn_at (columns 2-4), admission (6). */
static int parse_policy(struct snap_policy *pol, const PGresult *r, int row)
{
	int64_t pct[SNAP_MAX_WARN_AT];
	const char *grace = PQgetvalue(r, row, 3);
	int n = parse_list(PQgetvalue(r, row, 4), pct);

	pol->on_exhausted = strcmp(PQgetvalue(r, row, 2), "cancel") == 0 ? SNAP_CANCEL : SNAP_DENY;
	pol->reserve = strcmp(PQgetvalue(r, row, 6), "reserve") == 0;
	if (n < 0 || parse_i64(grace, &pol->grace_seconds) < 0)
		return -1;
	for (int i = 0; i < n; i++) {
		if (pct[i] < 1 || pct[i] > 100)
			return -1;
		pol->warn_at[i] = (int)pct[i];
	}
	pol->n_warn_at = (size_t)n;
	return 0;
}

static int cmp_factory(const void *key, const void *elem)
{
	return strcmp(key, ((const struct snap_factory *)elem)->id);
}

static int cmp_project(const void *key, const void *elem)
{
	return strcmp(key, ((const struct snap_project *)elem)->id);
}

static long factory_index(const struct snapshot *s, const char *id)
{
	const struct snap_factory *f;
	if (!s->n_factories)
		return -1;
	f = bsearch(id, s->factories, s->n_factories, sizeof(s->factories[0]), cmp_factory);
	return f ? f - s->factories : -1;
}

static long project_index(const struct snapshot *s, const char *id)
{
	const struct snap_project *p;
	if (!s->n_projects)
		return -1;
	p = bsearch(id, s->projects, s->n_projects, sizeof(s->projects[0]), cmp_project);
	return p ? p - s->projects : -1;
}

static long period_index(const struct snapshot *s, const char *id)
{
	for (size_t i = 0; i < s->n_periods; i++)
		if (strcmp(s->periods[i].id, id) == 0)
			return (long)i;
	return -1;
}

static int build_periods(struct owned *o, struct snap_period *periods)
{
	const PGresult *r = o->res[Q_PERIODS];
	for (int i = 0; i < PQntuples(r); i++) {
		periods[i].id = PQgetvalue(r, i, 0);
		if (parse_i64(PQgetvalue(r, i, 1), &periods[i].start) < 0 ||
		    parse_i64(PQgetvalue(r, i, 2), &periods[i].end) < 0)
			return -1;
	}
	return 0;
}

/* Budgets of owners (rows ordered by owner): each owner's slice of one array. */
static int build_budgets(struct owned *o, enum q q, struct snap_factory *factories,
			 struct snap_project *projects, struct snap_budget *all)
{
	const PGresult *r = o->res[q];
	const struct snapshot *s = &o->s;
	bool of_projects = projects != NULL;
	for (int i = 0; i < PQntuples(r); i++) {
		const char *owner = PQgetvalue(r, i, 0);
		long k = of_projects ? project_index(s, owner) : factory_index(s, owner);
		long per = period_index(s, PQgetvalue(r, i, 1));
		char *end;
		const struct snap_budget **slice;
		size_t *n;

		if (k < 0 || per < 0)
			return -1;
		all[i].period = (size_t)per;
		all[i].gpu_hours = strtod(PQgetvalue(r, i, 2), &end);
		if (*end || parse_i64(PQgetvalue(r, i, 3), &all[i].exhausted_us) < 0 ||
		    parse_list(PQgetvalue(r, i, 4), all[i].warn_us) < 0)
			return -1;
		if (of_projects) {
			slice = &projects[k].budgets;
			n = &projects[k].n_budgets;
		} else {
			slice = &factories[k].budgets;
			n = &factories[k].n_budgets;
		}
		if (!*n)
			*slice = &all[i];
		else if (*slice + *n != &all[i])
			return -1; /* not contiguous: cannot happen with the ORDER BY */
		(*n)++;
	}
	return 0;
}

/* Append names[i] to an owner's slice, which must end right before it. */
static int add_to_slice(const char *const **slice, size_t *n, const char **names, int i)
{
	if (!*n)
		*slice = &names[i];
	else if (*slice + *n != &names[i])
		return -1;
	(*n)++;
	return 0;
}

static int build(struct owned *o)
{
	struct snapshot *s = &o->s;
	const PGresult *r;
	struct snap_period *periods;
	struct snap_factory *factories;
	struct snap_project *projects;
	struct snap_budget *fb, *pb;
	struct snap_usage *usage;
	const char **clusters, **sectors, **members;

	if (parse_i64(PQgetvalue(o->res[Q_NOW], 0, 0), &s->taken_at) < 0)
		return -1;

	s->n_periods = (size_t)PQntuples(o->res[Q_PERIODS]);
	s->n_factories = (size_t)PQntuples(o->res[Q_FACTORIES]);
	s->n_projects = (size_t)PQntuples(o->res[Q_PROJECTS]);
	s->n_usage = (size_t)PQntuples(o->res[Q_USAGE]);
	periods = owned_calloc(o, s->n_periods, sizeof(*periods));
	factories = owned_calloc(o, s->n_factories, sizeof(*factories));
	projects = owned_calloc(o, s->n_projects, sizeof(*projects));
	fb = owned_calloc(o, (size_t)PQntuples(o->res[Q_FACTORY_BUDGETS]), sizeof(*fb));
	pb = owned_calloc(o, (size_t)PQntuples(o->res[Q_PROJECT_BUDGETS]), sizeof(*pb));
	usage = owned_calloc(o, s->n_usage, sizeof(*usage));
	clusters = owned_calloc(o, (size_t)PQntuples(o->res[Q_CLUSTERS]), sizeof(*clusters));
	sectors = owned_calloc(o, (size_t)PQntuples(o->res[Q_SECTORS]), sizeof(*sectors));
	members = owned_calloc(o, (size_t)PQntuples(o->res[Q_MEMBERS]), sizeof(*members));
	if (!periods || !factories || !projects || !fb || !pb || !usage || !clusters || !sectors ||
	    !members)
		return -2;
	s->periods = periods;
	s->factories = factories;
	s->projects = projects;
	s->usage = usage;

	if (build_periods(o, periods) < 0)
		return -1;

	r = o->res[Q_FACTORIES];
	for (int i = 0; i < PQntuples(r); i++) {
		factories[i].id = PQgetvalue(r, i, 0);
		factories[i].name = PQgetisnull(r, i, 1) ? NULL : PQgetvalue(r, i, 1);
		factories[i].retired = PQgetvalue(r, i, 5)[0] == 't';
		if (parse_policy(&factories[i].policy, r, i) < 0)
			return -1;
	}
	r = o->res[Q_CLUSTERS];
	for (int i = 0; i < PQntuples(r); i++) {
		long k = factory_index(s, PQgetvalue(r, i, 0));
		clusters[i] = PQgetvalue(r, i, 1);
		if (k < 0 || add_to_slice(&factories[k].clusters, &factories[k].n_clusters, clusters, i) < 0)
			return -1;
	}

	r = o->res[Q_PROJECTS];
	for (int i = 0; i < PQntuples(r); i++) {
		long f = factory_index(s, PQgetvalue(r, i, 1));
		if (f < 0)
			return -1;
		projects[i].id = PQgetvalue(r, i, 0);
		projects[i].factory = (size_t)f;
		projects[i].retired = PQgetvalue(r, i, 5)[0] == 't';
		if (parse_policy(&projects[i].policy, r, i) < 0)
			return -1;
	}
	r = o->res[Q_SECTORS];
	for (int i = 0; i < PQntuples(r); i++) {
		long k = project_index(s, PQgetvalue(r, i, 0));
		sectors[i] = PQgetvalue(r, i, 1);
		if (k < 0 || add_to_slice(&projects[k].sectors, &projects[k].n_sectors, sectors, i) < 0)
			return -1;
	}
	/* Members: rows ordered by project, then kind ("group" before "user"). */
	r = o->res[Q_MEMBERS];
	for (int i = 0; i < PQntuples(r); i++) {
		long k = project_index(s, PQgetvalue(r, i, 0));
		bool user = strcmp(PQgetvalue(r, i, 1), "user") == 0;
		members[i] = PQgetvalue(r, i, 2);
		if (k < 0)
			return -1;
		if (user ? add_to_slice(&projects[k].users, &projects[k].n_users, members, i) < 0
			 : add_to_slice(&projects[k].groups, &projects[k].n_groups, members, i) < 0)
			return -1;
	}

	if (build_budgets(o, Q_FACTORY_BUDGETS, factories, NULL, fb) < 0 ||
	    build_budgets(o, Q_PROJECT_BUDGETS, NULL, projects, pb) < 0)
		return -1;

	r = o->res[Q_USAGE];
	for (int i = 0; i < PQntuples(r); i++) {
		long per = period_index(s, PQgetvalue(r, i, 0));
		long k = project_index(s, PQgetvalue(r, i, 1));
		if (per < 0 || k < 0 || parse_i64(PQgetvalue(r, i, 2), &usage[i].used_us) < 0 ||
		    parse_i64(PQgetvalue(r, i, 3), &usage[i].running_gpus) < 0 ||
		    parse_i64(PQgetvalue(r, i, 4), &usage[i].committed_us) < 0)
			return -1;
		usage[i].period = (size_t)per;
		usage[i].project = (size_t)k;
	}
	return 0;
}

/* sql without parameters; connect: on a new connection if need be (db_exec()), else only on
 * the one the transaction runs on (db_run()). */
static int exec_simple(struct db *db, bool connect, const char *sql, struct aif_diag *diag)
{
	PGresult *res = (connect ? db_exec : db_run)(db, "could not load the budgets", sql, 0, NULL, diag);
	int ok = PQresultStatus(res) == PGRES_COMMAND_OK;

	if (res && !ok)
		aif_db_diag(diag, db->conn, res, "could not load the budgets");
	PQclear(res);
	return ok ? 0 : -1;
}

int snapshot_load(struct db *db, struct snapshot **out, struct aif_diag *diag)
{
	struct owned *o;
	char taken[24];
	const char *params[1] = {taken};
	int rc;

	aif_diag_clear(diag);
	o = calloc(1, sizeof(*o));
	if (!o) {
		aif_diag_message(diag, "could not load the budgets: out of memory");
		return -1;
	}
	if (exec_simple(db, true, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", diag) < 0) {
		owned_free(o);
		return -1;
	}
	for (int q = 0; q < Q_COUNT; q++) {
		int with_time = q == Q_USAGE;
		if (with_time)
			snprintf(taken, sizeof(taken), "%s", PQgetvalue(o->res[Q_NOW], 0, 0));
		o->res[q] = db_run(db, "could not load the budgets", queries[q], with_time,
				   with_time ? params : NULL, diag);
		if (PQresultStatus(o->res[q]) != PGRES_TUPLES_OK) {
			if (o->res[q]) {
				struct aif_diag ignored;

				aif_db_diag(diag, db->conn, o->res[q], "could not load the budgets");
				PQclear(db_run(db, "ROLLBACK", "ROLLBACK", 0, NULL, &ignored));
			}
			owned_free(o);
			return -1;
		}
	}
	if (exec_simple(db, false, "COMMIT", diag) < 0) {
		owned_free(o);
		return -1;
	}
	rc = build(o);
	if (rc < 0) {
		if (rc == -2)
			aif_diag_message(diag, "could not load the budgets: out of memory");
		else
			aif_diag_message(diag, "could not load the budgets: unexpected data in the database");
		owned_free(o);
		return -1;
	}
	*out = &o->s;
	return 0;
}
