/*
 * admission_memory: the admissions this aifd kept or read in the last hour, in memory, so that
 * a usage record's charge (the project of its job's admission: handler.c) does not read
 * aif.admissions again: otherwise the end of each node of a job costs a statement, two of the
 * three a two-node job's admission and usage read from aif.admissions.
 *
 * Only what PostgreSQL holds is remembered, and it stays true for as long as it is remembered:
 * a kept admission changes only when a later job of the same id is admitted (another uid, or
 * one decided more than 30 days ago: aif.admission_current()), and every admission of this
 * cluster passes through this aifd, which then remembers the later one instead. An hour is far
 * inside those 30 days; and a job that ends is current anyway (reconciliation saw it run). The
 * hour bounds the cost of the rare case this cannot see: an operator's hand in aif.admissions.
 * An admission's `unreserved` is not remembered (it changes with the job's runs): an admit
 * always reads the database.
 *
 * One slot per job id modulo the slots, replaced by any later job of the slot: bounded memory
 * (about 1.3 MB), one mutex held for a copy, nothing to expire but by age.
 */
#ifndef AIFD_ADMISSION_MEMORY_H
#define AIFD_ADMISSION_MEMORY_H

#include <stdbool.h>
#include <stdint.h>

#include "admissions.h"

#define ADMISSION_MEMORY_SLOTS 4096
#define ADMISSION_MEMORY_MS (3600 * 1000)

/* Remember adm (its verdict, reason, project and sector) as job's admission for uid. */
void admission_memory_put(const char *cluster, uint32_t job, uint32_t uid,
			  const struct admission *adm);

/* The database holds no current admission of job for uid: forget the one remembered. */
void admission_memory_forget(const char *cluster, uint32_t job, uint32_t uid);

/*
 * The admission remembered for job and uid, at most ADMISSION_MEMORY_MS old: true with *out
 * (its diag empty, unreserved false), or false.
 */
bool admission_memory_get(const char *cluster, uint32_t job, uint32_t uid, struct admission *out);

#endif
