/*
 * slurmdbd: what Slurm's accounting recorded of jobs that slurmctld has forgotten (MinJobAge
 * passed, or aifd was down for long), so that reconciliation closes their intervals at Slurm's
 * own end time rather than at the last time aifd saw them (docs/aifd.md, "Reconciliation").
 * Only where slurm.conf says AccountingStorageType=accounting_storage/slurmdbd.
 */
#ifndef AIFD_SLURMDBD_H
#define AIFD_SLURMDBD_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "aif_diag.h"

/* One run of a job: asked by job id and a time within the run, answered with its times. */
struct slurmdbd_run {
	uint32_t job;
	time_t within; /* in: the run's first interval start (aif's prolog time) */
	time_t start;  /* out: slurmdbd's start and end of that run; 0 when it has no ended record */
	time_t end;
	uint32_t state; /* out: slurmdbd's job state of that run */
};

enum slurmdbd_answer {
	SLURMDBD_NONE,     /* slurm.conf names no slurmdbd: nothing to ask */
	SLURMDBD_ANSWERED, /* every run looked up (found or not) */
	SLURMDBD_FAILED,   /* slurmctld or slurmdbd did not answer: why says so */
};

/*
 * Look the runs up in slurmdbd, for this cluster, in one request. A run's record is the one of
 * its job id that started last at or before `within` (an earlier run of a requeued job, or an
 * older job of the same id, started earlier still), and only one that has ended counts.
 * Call only after slurmctld_acquire().
 */
enum slurmdbd_answer slurmdbd_lookup(const char *cluster, struct slurmdbd_run *runs, size_t n,
				     struct aif_diag *why);

#endif
