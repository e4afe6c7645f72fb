/*
 * reserve: what an admission of a project that reserves stands on (docs/aifd.md,
 * "Reservations"): the job's maximum cost from slurmctld (jobcost.h), reserved by
 * aif.reserve() (sql/repeatable/35_reserve.sql) against the project's and its factory's budgets
 * in one step for every aifd on the database. A job whose cost does not fit is refused, told
 * what it would cost and what is left.
 */
#ifndef AIFD_RESERVE_H
#define AIFD_RESERVE_H

#include <stddef.h>
#include <stdint.h>

#include "admissions.h"
#include "aif_diag.h"
#include "db.h"

/* The job does not fit now, but waits, held (holds.h): refused now, and decided again later. */
#define RESERVE_HELD 1

/*
 * The comment of a job that waits, as squeue shows it: "aif: waiting for GPU-hours: may cost
 * 0.67, project small has 0.5 left" (GPU-microseconds in, GPU-hours out; scope "project" or
 * "factory", owner its id).
 */
void reserve_waiting_comment(char *buf, size_t size, long long need_us, const char *scope,
			     const char *owner, long long left_us);

/*
 * Reserve for job (uid's, on cluster) admitted by *adm (ok or warn, its project resolved).
 * Returns 0 when *adm stands (reserved now or before) or was turned into a refusal;
 * RESERVE_HELD when it was turned into a refusal but the job waits, to be decided again (so
 * not to be kept); -1 with why when neither could be decided (slurmctld or the database did
 * not answer): then there is no admission, and no reservation.
 */
int reserve_admission(struct db *db, const char *cluster, uint32_t job, uint32_t uid,
		      struct admission *adm, struct aif_diag *why);

#endif
