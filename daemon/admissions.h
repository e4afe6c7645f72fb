/*
 * admissions: each job's start-time admission, decided once and kept in PostgreSQL
 * (aif.admissions, sql/006_admissions.sql), so that every later "admit" of the same job
 * (the other nodes, later srun steps, another aifd, after a restart) gets the same answer.
 *
 * One connection, shared by the workers under a mutex: admissions are one per job step start,
 * far fewer than checks and usage records. When the database is unreachable the caller decides
 * without memory (and says so in the log); nothing waits longer than the connect timeout.
 */
#ifndef AIFD_ADMISSIONS_H
#define AIFD_ADMISSIONS_H

#include <stdint.h>

#include "aif_diag.h"

struct admission {
	char verdict[8];   /* "ok", "warn", "refuse" */
	char reason[32];   /* decide_reason_name(): which check decided */
	char project[128]; /* "" when refused before the project was resolved */
	char sector[128];
	struct aif_diag diag;
};

struct admissions;

struct admissions *admissions_open(const char *conninfo);
void admissions_close(struct admissions *a);

/*
 * The job's current admission for uid: 1 with *out, 0 when none yet (or only an earlier job's
 * of the same id: another uid, or older than any job runs), -1 when the database failed
 * (logged).
 */
int admissions_recall(struct admissions *a, const char *cluster, uint32_t job, uint32_t uid,
		      struct admission *out);

/*
 * Keep *decided as the job's admission unless one is kept already: then *decided becomes that
 * one (the first decision wins). Returns 0, or -1 when the database failed (logged).
 */
int admissions_keep(struct admissions *a, const char *cluster, uint32_t job, uint32_t uid,
		    struct admission *decided);

#endif
