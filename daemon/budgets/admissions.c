#include "admissions.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

#include "admission_memory.h"
#include "aif_clock.h"
#include "aif_db.h"
#include "log.h"

/*
 * Only the current admission of the job: the same uid, recent (aif.admission_current(), sql/
 * 009): a job id repeats after MaxJobId wraps or a slurmctld state reset, and an earlier job's
 * decision must neither answer nor charge a later job of another user. Unreserved (the last
 * column): a reserving project's admission without a reservation of that project (none, or
 * another project's: a hold by an AdminComment, an earlier job of the id, a racing admit).
 */
static const char RECALL_SQL[] =
	"SELECT verdict, coalesce(project_id, ''), coalesce(sector_id, ''), message, detail, hint,"
	" reason, coalesce((SELECT p.admission = 'reserve' FROM aif.projects p WHERE p.id = a.project_id)"
	"  AND NOT EXISTS (SELECT 1 FROM aif.reservations r"
	"                  WHERE r.cluster = a.cluster AND r.job_id = a.job_id"
	"                    AND r.project_id = a.project_id), false)"
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

/* A statement that failed: logged, and the admission is decided without the job's history. */
static void failed(const struct db *db, const char *what, const PGresult *res,
		   const struct aif_diag *lost)
{
	struct aif_diag d;

	if (!res || db_outcome(db, res) == DB_RETRY) {
		log_diag(LOG_LEVEL_DEBUG, NULL, lost); /* db.c warned, once per outage */
		return;
	}
	aif_db_diag(&d, db->conn, res, what);
	aif_diag_hint(&d, "The admission is decided without the job's earlier decisions.");
	log_diag(LOG_LEVEL_WARNING, NULL, &d);
}

/* What is found is remembered (admission_memory.h); what is not, forgotten. */
int admissions_recall(struct db *db, const char *cluster, uint32_t job, uint32_t uid,
		      struct admission *out)
{
	static const char what[] = "could not read a job's admission";
	char id[16], uid_text[16];
	const char *params[] = {cluster, id, uid_text};
	struct aif_diag lost;
	PGresult *res;
	int rc = 0;

	snprintf(id, sizeof(id), "%u", job);
	snprintf(uid_text, sizeof(uid_text), "%u", uid);
	res = db_exec(db, what, RECALL_SQL, 3, params, &lost);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		failed(db, what, res, &lost);
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
		out->unreserved = PQgetvalue(res, 0, 7)[0] == 't';
		admission_memory_put(cluster, job, uid, out, aif_clock_ms());
		rc = 1;
	} else {
		admission_memory_forget(cluster, job, uid);
	}
	PQclear(res);
	return rc;
}

bool admissions_remembered(const char *cluster, uint32_t job, uint32_t uid)
{
	struct admission adm;

	return admission_memory_get(cluster, job, uid, &adm, aif_clock_ms());
}

int admissions_recall_charging(struct db *db, const char *cluster, uint32_t job, uint32_t uid,
			       struct admission *out)
{
	if (admission_memory_get(cluster, job, uid, out, aif_clock_ms()))
		return 1;
	return admissions_recall(db, cluster, job, uid, out);
}

int admissions_keep(struct db *db, const char *cluster, uint32_t job, uint32_t uid,
		    struct admission *decided)
{
	static const char what[] = "could not keep a job's admission";
	char id[16], uid_text[16];
	const char *params[] = {cluster, id, uid_text, decided->verdict, decided->project,
				decided->sector, decided->diag.message, decided->diag.detail,
				decided->diag.hint, decided->reason};
	struct aif_diag lost;
	PGresult *res;
	int rc = -1;

	snprintf(id, sizeof(id), "%u", job);
	snprintf(uid_text, sizeof(uid_text), "%u", uid);
	res = db_exec(db, what, KEEP_SQL, 10, params, &lost);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		failed(db, what, res, &lost);
	} else if (strcmp(PQcmdTuples(res), "1") == 0) {
		admission_memory_put(cluster, job, uid, decided, aif_clock_ms());
		rc = 1;
	} else { /* decided first elsewhere (another node's request, another aifd) */
		rc = admissions_recall(db, cluster, job, uid, decided) == 1 ? 0 : -1;
	}
	PQclear(res);
	return rc;
}
