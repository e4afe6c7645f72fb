/* pending: jobs held before they first start, when they cannot fit (pending.h). */
#include "pending.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aif_gres.h"
#include "aif_names.h"
#include "aif_units.h"
#include "decide.h"
#include "holds.h"
#include "identity.h"
#include "log.h"

/* What a pending job's record says it asks for (0: not given). */
static uint32_t given32(uint32_t v)
{
	return v == NO_VAL || v == INFINITE ? 0 : v;
}

static uint32_t given16(uint16_t v)
{
	return v == NO_VAL16 || v == INFINITE16 ? 0 : v;
}

static int64_t most_gpus(const slurm_job_info_t *j)
{
	const struct aif_gres_request r = {
		.per_job = j->tres_per_job,
		.per_node = j->tres_per_node,
		.per_task = j->tres_per_task,
		.per_socket = j->tres_per_socket,
		.min_nodes = given32(j->num_nodes),
		.max_nodes = given32(j->max_nodes),
		.tasks = given32(j->num_tasks),
		.tasks_per_node = given16(j->ntasks_per_node),
		.sockets_per_node = given16(j->sockets_per_node),
	};

	return aif_gres_most_gpus(&r);
}

/* The project job_submit/aif wrote for a job aifd may hold, or NULL. */
static const char *candidate(const slurm_job_info_t *j)
{
	const size_t n = sizeof(AIF_ADMIN_COMMENT_PREFIX) - 1;

	if ((j->job_state & JOB_STATE_BASE) != JOB_PENDING || j->priority == 0 ||
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

/* What the jobs of this pass that fit are counted as having taken, per project. */
struct claims {
	struct claim {
		const char *project;
		int64_t us;
	} *v;
	size_t n;
};

static int64_t *claimed(struct claims *c, const char *project)
{
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->v[i].project, project) == 0)
			return &c->v[i].us;
	c->v[c->n] = (struct claim){project, 0}; /* room for every candidate */
	return &c->v[c->n++].us;
}

/* What decide() says of job's project for its user. */
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

static void hold(struct db *db, const char *cluster, const slurm_job_info_t *j,
		 const char *project, int64_t gpus, int64_t cost_us, int64_t left_us)
{
	char need[32], left[32], comment[256];
	int rc;

	aif_hours_text(need, sizeof(need), (double)cost_us / 3.6e9);
	aif_hours_text(left, sizeof(left), (double)left_us / 3.6e9);
	snprintf(comment, sizeof(comment), "aif: waiting for GPU-hours: may cost %s, project %s has %s left",
		 need, project, left);
	rc = holds_hold_pending(db, cluster, j->job_id, project, gpus, (int64_t)j->time_limit * 60,
				comment);
	if (rc == 0)
		log_info("job %" PRIu32 " of project \"%s\" held while pending: it may cost %s "
			 "GPU-hours, and %s are left", j->job_id, project, need, left);
}

void pending_hold(struct refresh *refresh, struct db *db, const char *cluster,
		  const job_info_msg_t *jobs)
{
	const slurm_job_info_t **order;
	struct claims claims = {NULL, 0};
	size_t n = 0;

	if (!jobs->record_count)
		return;
	order = calloc(jobs->record_count, sizeof(*order));
	claims.v = calloc(jobs->record_count, sizeof(*claims.v));
	if (!order || !claims.v) {
		log_warning("could not weigh the pending jobs: out of memory");
		goto out;
	}
	for (uint32_t i = 0; i < jobs->record_count; i++)
		if (candidate(&jobs->job_array[i]))
			order[n++] = &jobs->job_array[i];
	qsort(order, n, sizeof(*order), by_priority);
	for (size_t i = 0; i < n && db->conn; i++) {
		const slurm_job_info_t *j = order[i];
		const char *project = candidate(j);
		int64_t gpus = most_gpus(j), cost_us, *taken;
		struct weighed w;

		/* A cost past what any budget holds is simply "too much": saturate. */
		if (gpus <= 0 ||
		    __builtin_mul_overflow(gpus, (int64_t)j->time_limit * 60 * 1000000, &cost_us))
			cost_us = gpus <= 0 ? 0 : INT64_MAX;
		if (cost_us == 0 || !(w = weigh(refresh, cluster, j, project)).reserves)
			continue;
		/* One that can never fit is left to its start, which refuses it and says why. */
		if (cost_us > w.most_us)
			continue;
		taken = claimed(&claims, project);
		if (cost_us <= w.left_us - *taken)
			*taken += cost_us;
		else
			hold(db, cluster, j, project, gpus, cost_us,
			     w.left_us > *taken ? w.left_us - *taken : 0);
	}
out:
	free(order);
	free(claims.v);
}
