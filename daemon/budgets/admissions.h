/*
 * admissions: each job's start-time admission, decided once and kept in PostgreSQL
 * (aif.admissions, sql/006_admissions.sql), so that every later "admit" of the same job
 * (the other nodes, later srun steps, another aifd, after a restart) gets the same answer.
 *
 * Over the calling worker's own connection (db.h; ADMISSIONS_TIMEOUT_MS): no worker waits for
 * another's database. When the database is unreachable, or does not answer within that
 * timeout, the caller decides without memory (and the log says so): a job start never waits
 * for a sick database longer than that, well inside the plugin's timeout.
 */
#ifndef AIFD_ADMISSIONS_H
#define AIFD_ADMISSIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "aif_diag.h"
#include "db.h"

/* The bound on each admission statement, connecting included. */
#define ADMISSIONS_TIMEOUT_MS 500

struct admission {
	char verdict[8];   /* "ok", "warn", "refuse" */
	char reason[32];   /* decide_reason_name(): which check decided */
	char project[128]; /* "" when refused before the project was resolved */
	char sector[128];
	struct aif_diag diag;
	bool unreserved;   /* recalled: its project reserves, and the job holds no reservation
			      of that project (it was requeued, and its last run's ended:
			      reserve.h; or the one it holds is another project's) */
};

/*
 * The job's current admission for uid: 1 with *out, 0 when none yet (or only an earlier job's
 * of the same id: another uid, or older than any job runs), -1 when the database failed
 * (logged). What it finds is remembered, what it does not, forgotten (admission_memory.h).
 */
int admissions_recall(struct db *db, const char *cluster, uint32_t job, uint32_t uid,
		      struct admission *out);

/*
 * The same for charging a usage record: from memory when this aifd kept or read it lately
 * (admission_memory.h), else from the database; only its verdict, reason, project and sector.
 */
int admissions_recall_charging(struct db *db, const char *cluster, uint32_t job, uint32_t uid,
			       struct admission *out);

/* Whether this aifd remembers job's admission for uid: one is likely kept (admission_memory.h). */
bool admissions_remembered(const char *cluster, uint32_t job, uint32_t uid);

/*
 * Keep *decided as the job's admission unless one is kept already: then *decided becomes that
 * one (the first decision wins). Returns 1 when *decided was kept, 0 when it became the one
 * kept first, -1 when the database failed (logged).
 */
int admissions_keep(struct db *db, const char *cluster, uint32_t job, uint32_t uid,
		    struct admission *decided);

#endif
