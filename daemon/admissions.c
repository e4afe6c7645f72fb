#include "admissions.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "aif_client.h"
#include "aif_db.h"
#include "log.h"

/*
 * Every worker shares the one connection, so a database that stops answering (stopped, a
 * network black hole) must not hold them: one call waits at most ADMISSIONS_WAIT_MS for the
 * lock and the database together, and after a call that timed out the database is left alone
 * for ADMISSIONS_SICK_MS (admissions are decided without their history meanwhile, as when it
 * is down). A job start then costs at most that wait, well inside the plugin's timeout.
 */
#define ADMISSIONS_WAIT_MS 500
#define ADMISSIONS_SICK_MS 5000

struct admissions {
	pthread_mutex_t lock;
	char *conninfo;
	PGconn *conn;          /* NULL or bad: connect at the next call */
	int64_t sick_until_ms; /* aif_clock_ms(): no database until then */
};

/*
 * Only the current admission of the job: the same uid, recent (aif.admission_current(), sql/
 * 009): a job id repeats after MaxJobId wraps or a slurmctld state reset, and an earlier job's
 * decision must neither answer nor charge a later job of another user.
 */
static const char RECALL_SQL[] =
	"SELECT verdict, coalesce(project_id, ''), coalesce(sector_id, ''), message, detail, hint,"
	" reason"
	" FROM aif.admissions a WHERE cluster = $1 AND job_id = $2 AND aif.admission_current(a, $3)";

/* The first decision wins, unless the kept one is an earlier job's: then it is replaced. */
static const char KEEP_SQL[] =
	"INSERT INTO aif.admissions AS a (cluster, job_id, uid, verdict, project_id, sector_id,"
	" message, detail, hint, reason) VALUES ($1, $2, $3, $4, nullif($5, ''), nullif($6, ''),"
	" $7, $8, $9, $10)"
	" ON CONFLICT (cluster, job_id) DO UPDATE SET uid = excluded.uid, verdict = excluded.verdict,"
	"  project_id = excluded.project_id, sector_id = excluded.sector_id,"
	"  message = excluded.message, detail = excluded.detail, hint = excluded.hint,"
	"  reason = excluded.reason, decided_at = now()"
	" WHERE NOT aif.admission_current(a, excluded.uid)";

struct admissions *admissions_open(const char *conninfo)
{
	struct admissions *a = calloc(1, sizeof(*a));

	if (!a || !(a->conninfo = strdup(conninfo))) {
		free(a);
		log_error("out of memory");
		return NULL;
	}
	pthread_mutex_init(&a->lock, NULL);
	return a;
}

void admissions_close(struct admissions *a)
{
	if (!a)
		return;
	PQfinish(a->conn);
	pthread_mutex_destroy(&a->lock);
	free(a->conninfo);
	free(a);
}

static void failed(struct admissions *a, const char *what, const PGresult *res)
{
	struct aif_diag d;

	aif_db_diag(&d, a->conn, res, what);
	aif_diag_hint(&d, "The admission is decided without the job's earlier decisions.");
	log_diag(LOG_LEVEL_WARNING, NULL, &d);
	if (PQstatus(a->conn) != CONNECTION_OK) { /* down: leave it alone a while, as timed_out() */
		PQfinish(a->conn);
		a->conn = NULL;
		a->sick_until_ms = aif_clock_ms() + ADMISSIONS_SICK_MS;
	}
}

/* Under the lock: the database did not answer by the deadline. Drop it for a while (logged). */
static void timed_out(struct admissions *a, const char *what)
{
	struct aif_diag d;

	PQfinish(a->conn);
	a->conn = NULL;
	a->sick_until_ms = aif_clock_ms() + ADMISSIONS_SICK_MS;
	aif_diag_clear(&d);
	aif_diag_message(&d, "%s: the aif database did not answer within %d ms", what, ADMISSIONS_WAIT_MS);
	aif_diag_detail(&d, "Admissions are decided without the jobs' earlier decisions for the next %d s.",
			ADMISSIONS_SICK_MS / 1000);
	aif_diag_hint(&d, "Check that PostgreSQL is running and reachable from aifd's host.");
	log_diag(LOG_LEVEL_WARNING, NULL, &d);
}

/*
 * Take the lock by deadline, unless the database was found sick lately; false: go on without
 * it. Returns with the lock held only when true.
 */
static bool enter(struct admissions *a, int64_t deadline_ms)
{
	/* On the monotonic clock: a step of the wall clock does not move the deadline. */
	struct timespec until = aif_clock_timespec(deadline_ms);

	if (pthread_mutex_clocklock(&a->lock, CLOCK_MONOTONIC, &until) != 0)
		return false; /* another worker is waiting for the database */
	if (aif_clock_ms() < a->sick_until_ms) {
		pthread_mutex_unlock(&a->lock);
		return false;
	}
	return true;
}

/* Under the lock: a working connection, or false (logged). */
static bool connected(struct admissions *a, int64_t deadline_ms)
{
	if (a->conn && PQstatus(a->conn) == CONNECTION_OK)
		return true;
	PQfinish(a->conn);
	a->conn = aif_db_connect_by(a->conninfo, "aifd-admissions", deadline_ms);
	if (!a->conn) {
		timed_out(a, "could not connect to the aif database for admissions");
		return false;
	}
	if (PQstatus(a->conn) == CONNECTION_OK)
		return true;
	failed(a, "could not connect to the aif database for admissions", NULL);
	return false;
}

/* Under the lock: 1 found, 0 none, -1 failed. */
static int recall(struct admissions *a, const char *cluster, const char *job, const char *uid,
		  struct admission *out, int64_t deadline_ms)
{
	const char *params[] = {cluster, job, uid};
	PGresult *res = aif_db_exec_by(a->conn, RECALL_SQL, 3, params, deadline_ms);
	int rc = 0;

	if (!res) {
		timed_out(a, "could not read a job's admission");
		rc = -1;
	} else if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		failed(a, "could not read a job's admission", res);
		rc = -1;
	} else if (PQntuples(res) == 1) {
		memset(out, 0, sizeof(*out));
		snprintf(out->verdict, sizeof(out->verdict), "%s", PQgetvalue(res, 0, 0));
		snprintf(out->project, sizeof(out->project), "%s", PQgetvalue(res, 0, 1));
		snprintf(out->sector, sizeof(out->sector), "%s", PQgetvalue(res, 0, 2));
		snprintf(out->diag.message, sizeof(out->diag.message), "%s", PQgetvalue(res, 0, 3));
		snprintf(out->diag.detail, sizeof(out->diag.detail), "%s", PQgetvalue(res, 0, 4));
		snprintf(out->diag.hint, sizeof(out->diag.hint), "%s", PQgetvalue(res, 0, 5));
		snprintf(out->reason, sizeof(out->reason), "%s", PQgetvalue(res, 0, 6));
		rc = 1;
	}
	PQclear(res);
	return rc;
}

int admissions_recall(struct admissions *a, const char *cluster, uint32_t job, uint32_t uid,
		      struct admission *out)
{
	char id[16], uid_text[16];
	int64_t deadline = aif_clock_ms() + ADMISSIONS_WAIT_MS;
	int rc = -1;

	snprintf(id, sizeof(id), "%u", job);
	snprintf(uid_text, sizeof(uid_text), "%u", uid);
	if (!enter(a, deadline))
		return -1;
	if (connected(a, deadline))
		rc = recall(a, cluster, id, uid_text, out, deadline);
	pthread_mutex_unlock(&a->lock);
	return rc;
}

/* Under the lock, connected: 0 kept (or decided before: *decided is that), -1 failed. */
static int keep(struct admissions *a, const char *cluster, const char *id, uint32_t uid,
		struct admission *decided, int64_t deadline_ms)
{
	char uid_text[16];
	const char *params[] = {cluster, id, uid_text, decided->verdict, decided->project,
				decided->sector, decided->diag.message, decided->diag.detail,
				decided->diag.hint, decided->reason};
	PGresult *res;
	int rc = -1;

	snprintf(uid_text, sizeof(uid_text), "%u", uid);
	res = aif_db_exec_by(a->conn, KEEP_SQL, 10, params, deadline_ms);
	if (!res)
		timed_out(a, "could not keep a job's admission");
	else if (PQresultStatus(res) != PGRES_COMMAND_OK)
		failed(a, "could not keep a job's admission", res);
	else if (strcmp(PQcmdTuples(res), "1") == 0)
		rc = 0;
	else /* decided first elsewhere (another node's request, another aifd) */
		rc = recall(a, cluster, id, uid_text, decided, deadline_ms) == 1 ? 0 : -1;
	PQclear(res);
	return rc;
}

int admissions_keep(struct admissions *a, const char *cluster, uint32_t job, uint32_t uid,
		    struct admission *decided)
{
	char id[16];
	int64_t deadline = aif_clock_ms() + ADMISSIONS_WAIT_MS;
	int rc = -1;

	snprintf(id, sizeof(id), "%u", job);
	if (!enter(a, deadline))
		return -1;
	if (connected(a, deadline))
		rc = keep(a, cluster, id, uid, decided, deadline);
	pthread_mutex_unlock(&a->lock);
	return rc;
}
