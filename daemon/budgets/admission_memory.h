/*
 * admission_memory: the admissions this aifd kept or read lately, in memory, so that a usage
 * record's charge (the project of its job's admission: handler.c) does not read
 * aif.admissions again: otherwise the end of each node of a job costs a statement, two of the
 * three a two-node job's admission and usage read from aif.admissions.
 *
 * Remembered: what PostgreSQL held when aifd kept or read it, for an hour at most, and until a
 * later job of the same slot (job id modulo the slots: 4096 later jobs) takes its place. A
 * kept admission changes only when a later job of its id is admitted (another uid, or one
 * decided more than 30 days ago: aif.admission_current()); admitted by this aifd, the later
 * one replaces the earlier here too. What this cannot see (the later job admitted by another
 * aifd of the cluster, a worker's read racing another's replacement, an operator's edit) is a
 * later job of another uid: the earlier job's late end is then charged to the project that job
 * was admitted for, as it would have been before the later job came, never to one its user was
 * not admitted to; the later job's records, of its own uid, read the database. An admission's
 * `unreserved` is not remembered (it changes with the job's runs): an admit reads the database.
 *
 * Bounded: about 1.5 MiB, one mutex held for a copy, nothing to expire but by age and slot.
 */
#ifndef AIFD_ADMISSION_MEMORY_H
#define AIFD_ADMISSION_MEMORY_H

#include <stdbool.h>
#include <stdint.h>

#include "admissions.h"

#define ADMISSION_MEMORY_SLOTS 4096
#define ADMISSION_MEMORY_MS (3600 * 1000)

/*
 * Remember adm (its verdict, reason, project and sector) as job's admission for uid, at now_ms
 * (aif_clock_ms(): a parameter, so that the tests can age it).
 */
void admission_memory_put(const char *cluster, uint32_t job, uint32_t uid,
			  const struct admission *adm, int64_t now_ms);

/* The database holds no current admission of job for uid: forget the one remembered. */
void admission_memory_forget(const char *cluster, uint32_t job, uint32_t uid);

/*
 * The admission remembered for job and uid, less than ADMISSION_MEMORY_MS old at now_ms: true
 * with *out (its diag empty, unreserved false), or false.
 */
bool admission_memory_get(const char *cluster, uint32_t job, uint32_t uid, struct admission *out,
			  int64_t now_ms);

#endif
