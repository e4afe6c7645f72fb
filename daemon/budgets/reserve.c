/* reserve: an admission's reservation (reserve.h). */
#include "reserve.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "aif_db.h"
#include "aif_units.h"
#include "decide.h"
#include "holds.h"
#include "joballoc.h"
#include "jobcost.h"
#include "pgarray.h"

static const char RESERVE_SQL[] =
	"SELECT fits, coalesce(period_id, ''), coalesce(scope, ''), coalesce(owner, ''),"
	" coalesce(budget_us, 0), coalesce(committed_us, 0), coalesce(cost_us, 0), waits, charged,"
	" charging_version"
	" FROM aif.reserve($1, $2, $3, $4, to_timestamp($5), to_timestamp($6), true, $7, $8, $9, $10,"
	"  restarts => $11)";

/*
 * The GPUs by model of each node of a as an array literal into arr; NULL when a node's are not
 * known (the reservation then charges every GPU at the cluster's highest rate) or memory runs
 * out.
 */
static const char *models_array(struct pg_array *arr, const struct job_alloc *a)
{
	for (size_t i = 0; i < a->n_nodes; i++)
		if (!a->nodes[i].known)
			return NULL;
	pg_array_start(arr);
	for (size_t i = 0; i < a->n_nodes; i++)
		pg_array_text(arr, a->nodes[i].models);
	return pg_array_end(arr);
}

/* GPU-microseconds as GPU-hours, at most two decimals: "12", "0.5", "1234.57". */
static const char *hours(char *buf, size_t size, long long us)
{
	return aif_hours_text(buf, size, (double)us / 3.6e9);
}

void reserve_waiting_comment(char *buf, size_t size, long long need_us, const char *scope,
			     const char *owner, long long left_us)
{
	char need[32], left[32];

	snprintf(buf, size, "aif: waiting for GPU-hours: may cost %s charged, %s %s has %s left",
		 hours(need, sizeof(need), need_us), scope, owner, hours(left, sizeof(left), left_us));
}

static void refuse(struct admission *adm, enum decide_reason reason)
{
	snprintf(adm->verdict, sizeof(adm->verdict), "refuse");
	snprintf(adm->reason, sizeof(adm->reason), "%s", decide_reason_name(reason));
}

/*
 * The reservation did not fit: the refusal names the budget, the cost and what is left. A job
 * whose cost is within the budget waits, held in slurmctld (holds.h): RESERVE_HELD; it fits
 * once running jobs end, more GPU-hours are granted or a new period begins, as Slurm's own
 * limits keep such a job pending.
 */
static int cannot_afford(struct db *db, const char *cluster, uint32_t job, struct admission *adm,
			 const PGresult *res, const struct job_cost *cost)
{
	const char *period = PQgetvalue(res, 0, 1), *scope = PQgetvalue(res, 0, 2),
		   *owner = PQgetvalue(res, 0, 3);
	long long budget = strtoll(PQgetvalue(res, 0, 4), NULL, 10);
	long long committed = strtoll(PQgetvalue(res, 0, 5), NULL, 10);
	long long need = strtoll(PQgetvalue(res, 0, 6), NULL, 10);
	long long left = budget > committed ? budget - committed : 0;
	bool factory = strcmp(scope, "factory") == 0, waits = PQgetvalue(res, 0, 7)[0] == 't';
	char h_need[32], h_left[32], h_budget[32], tl[32], comment[256];
	struct aif_diag why;

	refuse(adm, factory ? DECIDE_R_FACTORY_CANNOT_AFFORD : DECIDE_R_PROJECT_CANNOT_AFFORD);
	hours(h_need, sizeof(h_need), need);
	hours(h_left, sizeof(h_left), left);
	hours(h_budget, sizeof(h_budget), budget);
	aif_duration_text(tl, sizeof(tl), cost->end - cost->start);
	aif_diag_clear(&adm->diag);
	aif_diag_detail(&adm->diag, "%" PRId64 " GPUs for its time limit of %s, at this cluster's "
			"rates: %s charged GPU-hours in period \"%s\", where %s \"%s\" has %s of its %s "
			"left after what is used and what running jobs reserve.", cost->gpus, tl, h_need,
			period, scope, owner, h_left, h_budget);
	reserve_waiting_comment(comment, sizeof(comment), need, scope, owner, left);
	/* (recorded with its charged GPUs an hour, which its release reserves: holds.h) */
	if (waits && holds_hold(db, cluster, job, adm->project, cost->gpus, PQgetvalue(res, 0, 8),
				PQgetvalue(res, 0, 9), cost->end - cost->start, comment, cost->comment,
				&why) == 0) {
		aif_diag_message(&adm->diag, "job held: it may cost %s charged GPU-hours, and %s \"%s\" "
					     "has %s left", h_need, scope, owner, h_left);
		aif_diag_hint(&adm->diag, "It waits in the queue, held, and runs once its cost fits "
					  "(running jobs end, more GPU-hours are granted, or a new period "
					  "begins); scancel it to give up.");
		return RESERVE_HELD;
	}
	aif_diag_message(&adm->diag, "job refused: it may cost %s charged GPU-hours, and %s \"%s\" has "
			 "%s left", h_need, scope, owner, h_left);
	if (waits)
		aif_diag_hint(&adm->diag, "It could not wait (%s). Submit it again when its cost "
					  "fits, or with less time (--time) or fewer GPUs.", why.message);
	else
		aif_diag_hint(&adm->diag, "Ask for less time (--time) or fewer GPUs%s.",
			      factory ? "" : ", or for more GPU-hours for the project");
	return 0;
}

int reserve_admission(struct db *db, const char *cluster, uint32_t job, uint32_t uid,
		      struct admission *adm, struct aif_diag *why)
{
	static const char what[] = "could not reserve a job's cost";
	struct job_cost cost;
	char id[16], gpus[24], start[24], end[24], cpus[24], memory[24], billing[24], restarts[24];
	struct pg_array models = {0};
	/* models, cpus, memory and billing (params[6..9]) when slurmctld's detail was read */
	const char *params[] = {cluster, id, adm->project, gpus, start, end, NULL, NULL, NULL, NULL,
				restarts};
	struct aif_diag lost;
	PGresult *res;
	int rc = -1;

	if (jobcost_load(job, uid, &cost, why) < 0)
		return -1;
	if (cost.gpus == 0) { /* nothing to charge: no GPU-hours, no reservation */
		jobcost_free(&cost);
		return 0;
	}
	if (cost.unlimited) {
		jobcost_free(&cost);
		refuse(adm, DECIDE_R_NO_TIME_LIMIT);
		aif_diag_clear(&adm->diag);
		aif_diag_message(&adm->diag, "job refused: it has no time limit, and project \"%s\" "
					     "reserves what each job may cost", adm->project);
		aif_diag_detail(&adm->diag, "A job is admitted only when its GPUs for its whole time "
					    "limit fit the project's budget.");
		aif_diag_hint(&adm->diag, "Submit it with a time limit, e.g. --time=2:00:00.");
		return 0;
	}
	snprintf(id, sizeof(id), "%" PRIu32, job);
	snprintf(gpus, sizeof(gpus), "%" PRId64, cost.gpus);
	snprintf(start, sizeof(start), "%" PRId64, cost.start);
	snprintf(end, sizeof(end), "%" PRId64, cost.end);
	snprintf(restarts, sizeof(restarts), "%" PRId64, cost.restarts);
	/* What each node is charged, as its usage will be (aif.charged_gpus()). */
	if (cost.alloc && (params[6] = models_array(&models, cost.alloc))) {
		snprintf(cpus, sizeof(cpus), "%" PRId64, cost.alloc->cpus);
		params[7] = cpus;
		if (cost.alloc->memory_mb >= 0) {
			snprintf(memory, sizeof(memory), "%" PRId64, cost.alloc->memory_mb);
			params[8] = memory;
		}
		if (cost.alloc->billing >= 0) {
			snprintf(billing, sizeof(billing), "%" PRId64, cost.alloc->billing);
			params[9] = billing;
		}
	}
	res = db_exec(db, what, RESERVE_SQL, 11, params, &lost);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		if (!res || db_outcome(db, res) == DB_RETRY)
			*why = lost;
		else
			aif_db_diag(why, db->conn, res, what);
	} else {
		rc = PQgetvalue(res, 0, 0)[0] == 't' ? 0 : cannot_afford(db, cluster, job, adm, res, &cost);
	}
	PQclear(res);
	pg_array_free(&models);
	jobcost_free(&cost);
	return rc;
}
