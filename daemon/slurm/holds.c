/* holds: jobs that wait for GPU-hours (holds.h). */
#include "holds.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>
#include <slurm/slurm.h>
#include <slurm/slurm_errno.h>

#include "log.h"
#include "slurmctld.h"

static const char ADD_SQL[] =
	"INSERT INTO aif.waiting (cluster, job_id, project_id, gpus, seconds, charged, charging_version)"
	" VALUES ($1, $2, $3, $4, $5, $6, $7)"
	" ON CONFLICT (cluster, job_id) DO UPDATE SET project_id = excluded.project_id,"
	"  gpus = excluded.gpus, seconds = excluded.seconds, charged = excluded.charged,"
	"  charging_version = excluded.charging_version, held_at = now(), released_at = NULL";
/* A pending job is recorded once: one already waiting (held, or released to start) is aifd's. */
static const char ADD_PENDING_SQL[] =
	"INSERT INTO aif.waiting (cluster, job_id, project_id, gpus, seconds)"
	" VALUES ($1, $2, $3, $4, $5)"
	" ON CONFLICT (cluster, job_id) DO NOTHING RETURNING job_id";
static const char FORGET_SQL[] = "DELETE FROM aif.waiting WHERE cluster = $1 AND job_id = $2";
/* The pass's: the record as it listed it, not one a new hold made meanwhile. */
static const char FORGET_LISTED_SQL[] = "SELECT aif.waiting_forget($1, $2, $3)";
/*
 * With each: released; released more than 10 minutes ago with a reservation (and not started:
 * the reservation, from then for its time limit, covers ever less of a run that starts now:
 * aif.waiting_release(); one released unreserved, whose cost can no longer fit, holds nothing
 * and is left released, for its admission to decide); held more than a minute ago (before
 * that, a running job may not be requeued yet).
 */
static const char LIST_SQL[] =
	"SELECT w.job_id, w.released_at IS NOT NULL, w.released_at < now() - interval '10 minutes'"
	"  AND EXISTS (SELECT 1 FROM aif.reservations r WHERE r.cluster = w.cluster AND r.job_id = w.job_id),"
	" w.held_at < now() - interval '1 minute', w.held_at"
	" FROM aif.waiting w WHERE w.cluster = $1 ORDER BY w.held_at, w.job_id";
static const char REHOLD_SQL[] =
	"UPDATE aif.waiting SET released_at = NULL WHERE cluster = $1 AND job_id = $2";
/* A job released but gone before it started: its reservation (no interval ever opened) too. */
static const char GONE_SQL[] = "SELECT aif.reservations_release(ARRAY[$1], ARRAY[$2::bigint])";
static const char RELEASE_SQL[] = "SELECT job_id, reserved FROM aif.waiting_release($1)";

/* One statement whose result is not needed: true when it gave want (else logged). */
static bool run(struct db *db, const char *what, const char *sql, int n, const char *const *params,
		ExecStatusType want)
{
	PGresult *res = db_exec_want(db, what, sql, n, params, want);

	PQclear(res);
	return res != NULL;
}

/*
 * Whether job was requeued and slurmctld delays its start: by its credentials' lifetime (20
 * minutes by default) so that no credential of its last run is reused. A job held while
 * pending keeps its own begin time (sbatch --begin).
 */
static bool delayed_requeue(uint32_t job)
{
	job_info_msg_t *msg = NULL;
	const slurm_job_info_t *info;
	bool delayed = false;

	if (slurm_compat_load_job(&msg, job, SLURMCTLD_SHOW) != 0)
		return false;
	if ((info = slurmctld_job_of(msg, job)))
		delayed = info->restart_cnt > 0; /* its own begin time, if any, passed when it ran */
	slurm_free_job_info_msg(msg);
	return delayed;
}

/*
 * slurm_update_job() of job: its comment, and when release, released (priority INFINITE), to
 * start now if it was requeued (the job waited a pass at least). With hold, held (priority 0);
 * with unhold, a running job's priority set back (an operator's priority 0 would hold it again
 * if it were requeued).
 */
enum update_kind { UPDATE_COMMENT, UPDATE_RELEASE, UPDATE_HOLD, UPDATE_UNHOLD };

static int update(uint32_t job, const char *comment, enum update_kind kind)
{
	job_array_resp_msg_t *resp = NULL;
	job_desc_msg_t d;
	char id[16];
	int rc;

	snprintf(id, sizeof(id), "%" PRIu32, job);
	slurm_init_job_desc_msg(&d);
	d.job_id_str = id; /* (26.05 has no job_id here) */
	d.comment = (char *)comment;
	if (kind == UPDATE_RELEASE) {
		d.priority = INFINITE;
		if (delayed_requeue(job))
			d.begin_time = time(NULL);
	} else if (kind == UPDATE_HOLD) {
		d.priority = 0;
	} else if (kind == UPDATE_UNHOLD) { /* a running job's: its priority as slurmctld sets it */
		d.priority = INFINITE;
	}
	/* slurm_update_job() logs an error to stderr for every job_id_str; a job of an array
	 * answers with an error per task. */
	if ((rc = slurm_update_job2(&d, &resp)) == 0 && resp)
		for (uint32_t i = 0; i < resp->job_array_count && rc == 0; i++)
			if (resp->error_code[i]) {
				rc = -1;
				errno = (int)resp->error_code[i];
			}
	slurm_free_job_array_resp(resp);
	return rc ? -1 : 0;
}

/*
 * What slurmctld says of a waiting job: gone (or ended), running, held, or pending; and
 * whether it was requeued (else it never started: held while pending).
 */
enum seen { SEEN_GONE, SEEN_STARTED, SEEN_HELD, SEEN_PENDING, SEEN_UNKNOWN };

/*
 * The job's comment, which aif's replaces while it waits: the user's own follows aif's, after
 * USER_COMMENT, so that it comes back as it was when the job is released. A comment that
 * does not start with WAITING_COMMENT is not aif's: the user's (set while it waited, too).
 */
#define WAITING_COMMENT "aif: waiting for GPU-hours"
#define USER_COMMENT " (your comment: "

/* The user's comment within current (NULL: none): its length in *len. */
static const char *users_comment(const char *current, size_t *len)
{
	const char *mine;

	*len = 0;
	if (!current)
		return "";
	if (strncmp(current, WAITING_COMMENT, strlen(WAITING_COMMENT)) != 0) {
		*len = strlen(current);
		return current;
	}
	if (!(mine = strstr(current, USER_COMMENT)))
		return "";
	mine += strlen(USER_COMMENT);
	*len = strlen(mine);
	if (*len && mine[*len - 1] == ')')
		(*len)--;
	return mine;
}

/* aif's comment for a waiting job: message, then the user's own (malloc'ed; NULL: none). */
static char *waiting_comment(const char *message, const char *current)
{
	size_t len;
	const char *mine = users_comment(current, &len);
	char *comment;

	if (!len)
		return strdup(message);
	if (asprintf(&comment, "%s" USER_COMMENT "%.*s)", message, (int)len, mine) < 0)
		return NULL;
	return comment;
}

/* The comment a released job gets back: the user's (malloc'ed), or NULL where aif's is not
 * there any more (the user set another meanwhile): then it is left as it is. */
static char *released_comment(const char *current)
{
	size_t len;
	const char *mine;

	if (!current || strncmp(current, WAITING_COMMENT, strlen(WAITING_COMMENT)) != 0)
		return NULL;
	mine = users_comment(current, &len);
	return strndup(mine, len);
}

/* What slurmctld says of job; with comment, its comment too (malloc'ed, or NULL). */
static enum seen look(uint32_t job, bool *requeued, char **comment)
{
	job_info_msg_t *msg = NULL;
	const slurm_job_info_t *info;
	enum seen seen = SEEN_GONE;

	if (comment)
		*comment = NULL;
	if (slurm_compat_load_job(&msg, job, SLURMCTLD_SHOW) != 0)
		return slurm_compat_errno() == ESLURM_INVALID_JOB_ID ? SEEN_GONE : SEEN_UNKNOWN;
	if ((info = slurmctld_job_of(msg, job))) {
		uint32_t base = info->job_state & JOB_STATE_BASE;

		if (comment && info->comment)
			*comment = strdup(info->comment);
		if (requeued)
			*requeued = info->restart_cnt > 0;
		if (base != JOB_PENDING)
			seen = base == JOB_RUNNING || base == JOB_SUSPENDED ? SEEN_STARTED : SEEN_GONE;
		else
			seen = info->priority == 0 ? SEEN_HELD : SEEN_PENDING;
	}
	slurm_free_job_info_msg(msg);
	return seen;
}

int holds_hold(struct db *db, const char *cluster, uint32_t job, const char *project,
	       int64_t gpus, const char *charged, const char *charging_version, int64_t seconds,
	       const char *comment, const char *current, struct aif_diag *why)
{
	char id[16], g[24], s[24], *waiting;
	const char *params[] = {cluster, id, project, g, s, charged && *charged ? charged : NULL,
				charging_version && *charging_version ? charging_version : NULL};

	aif_diag_clear(why);
	snprintf(id, sizeof(id), "%" PRIu32, job);
	snprintf(g, sizeof(g), "%" PRId64, gpus);
	snprintf(s, sizeof(s), "%" PRId64, seconds > 0 ? seconds : 1);
	/* Recorded first: a job held with nobody to release it would wait for ever. */
	if (!run(db, "could not record a waiting job", ADD_SQL, 7, params, PGRES_COMMAND_OK)) {
		aif_diag_message(why, "the database did not record it as waiting");
		return -1;
	}
	/* The comment first: the job is never seen held without it. (The user's own is the one
	 * the admission read with the job's cost: no second RPC, which could fail and lose it.) */
	waiting = waiting_comment(comment, current);
	if (update(job, waiting ? waiting : comment, UPDATE_COMMENT) != 0)
		log_warning("job %" PRIu32 " waits, but its comment could not be set: %s", job,
			    slurm_strerror(slurm_compat_errno()));
	free(waiting);
	if (slurm_compat_requeue(job, JOB_REQUEUE_HOLD) != 0) {
		aif_diag_message(why, "slurmctld would not requeue it held: %s",
				 slurm_strerror(slurm_compat_errno()));
		update(job, current ? current : "", UPDATE_COMMENT); /* its own back */
		run(db, "could not forget a waiting job", FORGET_SQL, 2, params, PGRES_COMMAND_OK);
		return -1;
	}
	return 0;
}

static const char IDS_SQL[] = "SELECT job_id FROM aif.waiting WHERE cluster = $1 ORDER BY job_id";

uint32_t *holds_waiting_ids(struct db *db, const char *cluster, size_t *n)
{
	const char *params[] = {cluster};
	PGresult *res;
	uint32_t *ids;

	*n = 0;
	if (!(res = db_exec_want(db, "could not read the waiting jobs", IDS_SQL, 1, params,
				 PGRES_TUPLES_OK)))
		return NULL;
	/* one more: never a zero-sized allocation */
	if ((ids = calloc((size_t)PQntuples(res) + 1, sizeof(*ids))))
		for (int i = 0; i < PQntuples(res); i++)
			ids[(*n)++] = (uint32_t)strtoul(PQgetvalue(res, i, 0), NULL, 10);
	PQclear(res);
	return ids;
}

int holds_hold_pending(struct db *db, const char *cluster, uint32_t job, const char *project,
		       int64_t gpus, int64_t seconds, const char *comment)
{
	char id[16], g[24], s[24], *current, *waiting;
	const char *params[] = {cluster, id, project, g, s};
	PGresult *res;
	bool added;
	int rc;

	snprintf(id, sizeof(id), "%" PRIu32, job);
	snprintf(g, sizeof(g), "%" PRId64, gpus);
	snprintf(s, sizeof(s), "%" PRId64, seconds > 0 ? seconds : 1);
	/* Recorded first: a job held with nobody to release it would wait for ever. */
	if (!(res = db_exec_want(db, "could not record a waiting job", ADD_PENDING_SQL, 5, params,
				 PGRES_TUPLES_OK)))
		return -1;
	added = PQntuples(res) == 1;
	PQclear(res);
	if (!added)
		return 1;
	/* The pass's list of jobs may be seconds old: still pending, and not held since? */
	if (look(job, NULL, &current) != SEEN_PENDING) {
		free(current);
		run(db, "could not forget a waiting job", FORGET_SQL, 2, params, PGRES_COMMAND_OK);
		return 1;
	}
	waiting = waiting_comment(comment, current);
	rc = update(job, waiting ? waiting : comment, UPDATE_HOLD);
	free(waiting);
	free(current);
	if (rc != 0) {
		int err = slurm_compat_errno();

		log_warning("could not hold pending job %" PRIu32 ": %s", job, slurm_strerror(err));
		/* Forgotten only when surely not held: slurmctld may have held it and not answered in
		 * time, and a hold nobody releases would last for ever. Kept, it is released (or
		 * forgotten once it started or is gone) by holds_pass(). */
		if (err == ESLURM_INVALID_JOB_ID || err == ESLURM_JOB_FINISHED ||
		    err == ESLURM_ACCESS_DENIED || err == ESLURM_JOB_NOT_PENDING)
			run(db, "could not forget a waiting job", FORGET_SQL, 2, params, PGRES_COMMAND_OK);
		return -1;
	}
	return 0;
}

/* Forget the listed record of a waiting job (params: cluster, job, held_at as listed); false when
 * it was not deleted: a new hold recorded the job since (then it is that one's), or it failed. */
static bool forget_listed(struct db *db, const char *const *params)
{
	PGresult *res = db_exec_want(db, "could not forget a waiting job", FORGET_LISTED_SQL, 3,
				     params, PGRES_TUPLES_OK);
	bool gone = res && PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't';

	PQclear(res);
	return gone;
}

void holds_pass(struct db *db, const char *cluster)
{
	const char *params[] = {cluster, NULL, NULL};
	PGresult *res;

	if (!(res = db_exec_want(db, "could not read the waiting jobs", LIST_SQL, 1, params,
				 PGRES_TUPLES_OK)))
		return;
	for (int i = 0; i < PQntuples(res); i++) {
		uint32_t job = (uint32_t)strtoul(PQgetvalue(res, i, 0), NULL, 10);
		bool released = PQgetvalue(res, i, 1)[0] == 't', stale = PQgetvalue(res, i, 2)[0] == 't',
		     old = PQgetvalue(res, i, 3)[0] == 't';
		bool requeued = true;
		char *current;
		enum seen seen = look(job, &requeued, &current);
		char *restored = released_comment(current);

		params[1] = PQgetvalue(res, i, 0);
		params[2] = PQgetvalue(res, i, 4);
		if (seen == SEEN_UNKNOWN) {
			free(restored);
			free(current);
			PQclear(res);
			return; /* slurmctld does not answer: the next pass */
		}
		if (seen == SEEN_GONE) {
			/* Its reservation first (it never started: no interval releases it). */
			if (!released || run(db, "could not release a reservation", GONE_SQL, 2, params,
					     PGRES_TUPLES_OK))
				forget_listed(db, params);
		} else if (seen == SEEN_STARTED) {
			/* Not before it was requeued: a job is running when it is first held. One that
			 * started unreleased (it started as aifd held it pending, or an administrator
			 * released it) gets its user's comment back instead of the one that says it waits. */
			if ((released || old) && forget_listed(db, params) && !released)
				update(job, restored, UPDATE_UNHOLD);
		} else if (released && stale && !requeued) {
			/* Held while pending, released, and still waiting for nodes: its reservation
			 * goes, and so does its record, so that it waits unheld (a hold would cost it
			 * its priority's age) and is weighed again at the next pass. Not while it is
			 * still held (its release failed): nothing else would release it. */
			if ((seen == SEEN_PENDING || update(job, restored, UPDATE_RELEASE) == 0) &&
			    run(db, "could not release a reservation", GONE_SQL, 2, params, PGRES_TUPLES_OK))
				forget_listed(db, params);
		} else if (released && stale) {
			/* Released, but not started since: it waits again, and its reservation goes. */
			char *again = waiting_comment(WAITING_COMMENT " again: did not start once released",
						      current);

			if (again && update(job, again, UPDATE_HOLD) == 0 &&
			    run(db, "could not release a reservation", GONE_SQL, 2, params, PGRES_TUPLES_OK))
				run(db, "could not hold a waiting job again", REHOLD_SQL, 2, params,
				    PGRES_COMMAND_OK);
			free(again);
		} else if (seen == SEEN_HELD && released && update(job, restored, UPDATE_RELEASE) != 0) {
			log_warning("could not release job %" PRIu32 ": %s", job,
				    slurm_strerror(slurm_compat_errno()));
		}
		free(restored);
		free(current);
	}
	PQclear(res);
	if (!(res = db_exec_want(db, "could not release waiting jobs", RELEASE_SQL, 1, params,
				 PGRES_TUPLES_OK)))
		return;
	for (int i = 0; i < PQntuples(res); i++) {
		uint32_t job = (uint32_t)strtoul(PQgetvalue(res, i, 0), NULL, 10);
		bool reserved = PQgetvalue(res, i, 1)[0] == 't';
		char *current, *restored;
		int rc;

		look(job, NULL, &current);
		restored = released_comment(current);
		rc = update(job, restored, UPDATE_RELEASE);
		free(restored);
		free(current);
		if (rc == 0 && reserved)
			log_info("job %" PRIu32 " released: its cost fits its budgets now, and is reserved", job);
		else if (rc == 0)
			log_info("job %" PRIu32 " released: its cost is more than its whole budget now; "
				 "its admission decides at its start, and says why if it refuses it", job);
		else
			log_warning("could not release job %" PRIu32 ": %s; trying again at the next pass",
				    job, slurm_strerror(slurm_compat_errno()));
	}
	PQclear(res);
}
