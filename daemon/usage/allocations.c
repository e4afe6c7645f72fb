/* allocations: what slurmctld allocated to running jobs, for charging (allocations.h). */
#include "allocations.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aif_db.h"
#include "log.h"
#include "pgarray.h"
#include "usage.h"

#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

static const char READ_SQL[] =
	"SELECT job_id, node, restart_count, uid, extract(epoch FROM started_at)::bigint"
	" FROM aif.usage_intervals WHERE cluster = $1 AND ended_at IS NULL AND allocation_at IS NULL"
	" AND started_at > now() - interval '" STRINGIFY(ALLOCATIONS_RECENT_S) " seconds'"
	" AND uid IS NOT NULL ORDER BY started_at LIMIT " STRINGIFY(ALLOCATIONS_ROUND_MAX);

static const char WRITE_SQL[] =
	"SELECT changed, unrated FROM aif.record_allocations($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

#define NARRAYS 10
#define SAID_MAX 64 /* unrated models said; past that, no more is said */

/* The "cluster/model" charged at an unrated rate that this aifd said so of: once each. */
static char *said[SAID_MAX];
static size_t n_said;

/* Say once of each model in the array literal unrated ("{c/m,...}") that it has no rate. */
static void say_unrated(const char *unrated)
{
	char buf[1024], *save = NULL;

	if (!unrated || snprintf(buf, sizeof(buf), "%s", unrated) >= (int)sizeof(buf))
		return;
	for (char *e = strtok_r(buf, "{},\"", &save); e; e = strtok_r(NULL, "{},\"", &save)) {
		size_t i;
		char *slash = strchr(e, '/');

		for (i = 0; i < n_said && strcmp(said[i], e) != 0; i++)
			;
		if (i < n_said || n_said == SAID_MAX || !slash || !(said[n_said] = strdup(e)))
			continue;
		n_said++;
		*slash = '\0';
		log_warning("GPU model \"%s\" on cluster %s has no rate in the budgets file; it is "
			    "charged at the cluster's unrated rate (docs/budgets-yaml.md, \"Charging\")",
			    slash + 1, e);
	}
}

/* A count of the job, NULL when its TRES have none (< 0). */
static void put_count(struct pg_array *a, int64_t v)
{
	if (v < 0)
		pg_array_null(a);
	else
		pg_array_int(a, v);
}

static bool write_allocations(struct db *db, const char *cluster, const struct usage_record *recs,
			      size_t n)
{
	struct pg_array arrays[NARRAYS] = {0}; /* empty: pg_array_start() reuses what one holds */
	const char *values[NARRAYS];
	PGresult *res;
	bool ok = true, any = false;

	for (int j = 0; j < NARRAYS; j++)
		pg_array_start(&arrays[j]);
	for (size_t i = 0; i < n; i++) {
		const struct usage_record *r = &recs[i];

		/*
		 * Asked only when slurmctld answered for this run (exact) or said it does not know
		 * the job: not while it is late or paused after a failure, nor for another run.
		 */
		if (!r->exact && !r->forgotten)
			continue;
		any = true;
		pg_array_text(&arrays[0], cluster);
		pg_array_int(&arrays[1], r->job);
		pg_array_text(&arrays[2], r->node);
		pg_array_int(&arrays[3], r->restart);
		pg_array_int(&arrays[4], r->uid);
		if (r->alloc.known) {
			pg_array_text(&arrays[5], r->alloc.gpu_models);
			pg_array_int(&arrays[6], r->alloc.job_cpus);
			put_count(&arrays[7], r->alloc.job_memory_mb);
			put_count(&arrays[8], r->alloc.job_billing);
			pg_array_int(&arrays[9], r->alloc.job_nodes);
		} else {
			for (int j = 5; j < NARRAYS; j++)
				pg_array_null(&arrays[j]);
		}
	}
	for (int j = 0; j < NARRAYS; j++)
		ok = (values[j] = pg_array_end(&arrays[j])) != NULL && ok;
	if (!ok) {
		log_warning("out of memory: the allocations of jobs are asked for again later");
	} else if (any) {
		res = db_exec_want(db, "could not record the allocations of jobs", WRITE_SQL, NARRAYS,
				   values, PGRES_TUPLES_OK);
		ok = res != NULL;
		if (res && PQntuples(res) == 1)
			say_unrated(PQgetvalue(res, 0, 1));
		PQclear(res);
	}
	for (int j = 0; j < NARRAYS; j++)
		pg_array_free(&arrays[j]);
	return ok;
}

bool allocations_round(struct db *db, struct jobtimes *jt, const char *cluster)
{
	const char *params[] = {cluster};
	PGresult *res = db_exec_want(db, "could not read the intervals whose allocation is not known",
				     READ_SQL, 1, params, PGRES_TUPLES_OK);
	struct usage_record *recs = NULL, **settle = NULL;
	size_t n;
	bool left;

	if (!res)
		return true;
	n = (size_t)PQntuples(res);
	left = n == ALLOCATIONS_ROUND_MAX;
	if (n == 0)
		goto out;
	recs = calloc(n, sizeof(*recs));
	settle = calloc(n, sizeof(*settle));
	if (!recs || !settle) {
		log_warning("out of memory: the allocations of jobs are asked for again later");
		left = true;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct usage_record *r = &recs[i];

		r->event = USAGE_START;
		r->cluster = cluster;
		r->job = (uint32_t)strtoul(PQgetvalue(res, (int)i, 0), NULL, 10);
		r->node = PQgetvalue(res, (int)i, 1);
		r->restart = (uint32_t)strtoul(PQgetvalue(res, (int)i, 2), NULL, 10);
		r->uid = (uint32_t)strtoul(PQgetvalue(res, (int)i, 3), NULL, 10);
		r->start = strtoll(PQgetvalue(res, (int)i, 4), NULL, 10);
		settle[i] = r;
	}
	jobtimes_settle(jt, settle, n);
	if (!write_allocations(db, cluster, recs, n))
		left = true;
	for (size_t i = 0; i < n && !left; i++) /* not answered for: the next round */
		left = !recs[i].exact && !recs[i].forgotten;
out:
	free(settle);
	free(recs);
	PQclear(res);
	return left;
}
