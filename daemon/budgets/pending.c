/* pending: jobs held before they first start, when they cannot fit (pending.h). */
#include "pending.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aif_gres_slurm.h"
#include "aif_names.h"
#include "decide.h"
#include "holds.h"
#include "identity.h"
#include "log.h"
#include "reserve.h"

/* At most so many pending jobs weighed exactly (and held) a pass: each takes a statement, and
 * a hold an RPC to slurmctld; the rest wait for the next pass. */
#define PENDING_TRIALS_PER_PASS 100

static const char TRIAL_SQL[] =
	"SELECT fits, coalesce(period_id, ''), coalesce(scope, ''), coalesce(owner, ''),"
	" coalesce(budget_us, 0), coalesce(committed_us, 0), coalesce(cost_us, 0), waits"
	" FROM aif.reserve_trial($1, $2, $3, $4, $5)";

static int64_t most_gpus(const slurm_job_info_t *j)
{
	const struct aif_gres_request r = AIF_GRES_REQUEST(j, num_nodes);

	return aif_gres_most_gpus(&r);
}

/*
 * The project job_submit/aif wrote for a job aifd may hold, or NULL. Only one that waits for
 * nothing but its turn or nodes (Slurm's reasons None, Priority, Resources): released, one
 * that waits for a dependency, its --begin or a limit would reserve its cost while it cannot
 * start; once it waits for its turn it is weighed (or held at its start).
 */
static const char *candidate(const slurm_job_info_t *j)
{
	const size_t n = sizeof(AIF_ADMIN_COMMENT_PREFIX) - 1;

	if ((j->job_state & JOB_STATE_BASE) != JOB_PENDING || j->priority == 0 ||
	    (j->state_reason != WAIT_NO_REASON && j->state_reason != WAIT_PRIORITY &&
	     j->state_reason != WAIT_RESOURCES) ||
	    j->array_job_id != 0 || j->het_job_id != 0 || !j->admin_comment ||
	    strncmp(j->admin_comment, AIF_ADMIN_COMMENT_PREFIX, n) != 0 ||
	    !aif_name_valid_id(j->admin_comment + n) || j->time_limit == NO_VAL ||
	    j->time_limit == INFINITE)
		return NULL;
	return j->admin_comment + n;
}

/* Higher priority first (slurmctld starts those first), then older. */
static int by_priority(const void *a, const void *b)
{
	const slurm_job_info_t *x = *(const slurm_job_info_t *const *)a,
			       *y = *(const slurm_job_info_t *const *)b;

	if (x->priority != y->priority)
		return x->priority > y->priority ? -1 : 1;
	if (x->submit_time != y->submit_time)
		return x->submit_time < y->submit_time ? -1 : 1;
	return x->job_id < y->job_id ? -1 : x->job_id > y->job_id;
}

/* What the snapshot says of job's project for its user: whether it reserves, and how much. */
struct weighed {
	bool reserves; /* a member's project that reserves, on this cluster */
	int64_t left_us, most_us;
};

static struct weighed weigh(struct refresh *refresh, const char *cluster,
			    const slurm_job_info_t *j, const char *project)
{
	/* As its admission would: a reserving budget used up leaves the job waiting, not refused. */
	struct decide_request req = {.kind = DECIDE_ADMIT, .cluster = cluster, .uid = j->user_id,
				     .project = project, .now = (int64_t)time(NULL)};
	struct weighed w = {false, 0, 0};
	struct identity id;
	struct decision dec;

	identity_lookup((uid_t)j->user_id, (gid_t)j->group_id, &id);
	req.user = id.user;
	req.groups = id.groups;
	req.n_groups = id.n_groups;
	decide(refresh_hold(refresh), &req, &dec);
	if (dec.reserve && dec.verdict != DECIDE_REFUSE && dec.left_period)
		w = (struct weighed){true, dec.left_us, dec.most_us};
	refresh_release(refresh);
	identity_free(&id);
	return w;
}

/*
 * The admission's own arithmetic, exact and under its lock (aif.reserve_trial()): hold the job
 * when it does not fit but could (its cost is within the budget). Returns true when held.
 */
static bool try_hold(struct db *db, const char *cluster, const slurm_job_info_t *j,
		     const char *project, int64_t gpus)
{
	char id[16], g[24], secs[24];
	const char *params[] = {cluster, id, project, g, secs};
	PGresult *res;
	bool held = false;

	snprintf(id, sizeof(id), "%" PRIu32, j->job_id);
	snprintf(g, sizeof(g), "%" PRId64, gpus);
	snprintf(secs, sizeof(secs), "%" PRId64, (int64_t)j->time_limit * 60);
	if (!(res = db_exec_want(db, "could not weigh a pending job", TRIAL_SQL, 5, params,
				 PGRES_TUPLES_OK)))
		return false;
	if (PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 'f' && PQgetvalue(res, 0, 7)[0] == 't') {
		long long budget = strtoll(PQgetvalue(res, 0, 4), NULL, 10),
			  committed = strtoll(PQgetvalue(res, 0, 5), NULL, 10),
			  need = strtoll(PQgetvalue(res, 0, 6), NULL, 10);
		char comment[256];

		reserve_waiting_comment(comment, sizeof(comment), need, PQgetvalue(res, 0, 2),
					PQgetvalue(res, 0, 3), budget > committed ? budget - committed : 0);
		if (holds_hold_pending(db, cluster, j->job_id, project, gpus,
				       (int64_t)j->time_limit * 60, comment) == 0) {
			log_info("job %" PRIu32 " of project \"%s\" held while pending: %s", j->job_id,
				 project, comment);
			held = true;
		}
	}
	PQclear(res);
	return held;
}

static int by_id(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

void pending_hold(struct refresh *refresh, struct db *db, const char *cluster,
		  const job_info_msg_t *jobs)
{
	const slurm_job_info_t **order;
	uint32_t *waiting;
	size_t n = 0, tried = 0, n_waiting;

	if (!jobs->record_count)
		return;
	/* Those aifd holds or released already are its own (and reserved, once released). */
	if (!(waiting = holds_waiting_ids(db, cluster, &n_waiting)))
		return;
	if (!(order = calloc(jobs->record_count, sizeof(*order)))) {
		log_warning("could not weigh the pending jobs: out of memory");
		free(waiting);
		return;
	}
	for (uint32_t i = 0; i < jobs->record_count; i++)
		if (candidate(&jobs->job_array[i]) &&
		    !bsearch(&jobs->job_array[i].job_id, waiting, n_waiting, sizeof(*waiting), by_id))
			order[n++] = &jobs->job_array[i];
	qsort(order, n, sizeof(*order), by_priority);
	for (size_t i = 0; i < n && tried < PENDING_TRIALS_PER_PASS && db->conn; i++) {
		const slurm_job_info_t *j = order[i];
		const char *project = candidate(j);
		int64_t gpus = most_gpus(j), cost_us;
		struct weighed w;

		/* A cost past what any budget holds is simply "too much": saturate. */
		if (gpus <= 0 ||
		    __builtin_mul_overflow(gpus, (int64_t)j->time_limit * 60 * 1000000, &cost_us))
			cost_us = gpus <= 0 ? 0 : INT64_MAX;
		/* The snapshot first, in memory: most jobs fit, or never will (their start refuses
		 * them and says why); the rest are weighed exactly. */
		if (cost_us == 0 || !(w = weigh(refresh, cluster, j, project)).reserves ||
		    cost_us <= w.left_us || cost_us > w.most_us)
			continue;
		tried++;
		try_hold(db, cluster, j, project, gpus);
	}
	free(order);
	free(waiting);
}
