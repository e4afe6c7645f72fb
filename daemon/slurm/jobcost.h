/*
 * jobcost: the most a running job can cost, from slurmctld's record of its allocation (never
 * from what the user asked or claims): its GPUs on all its nodes, node by node with their
 * models, CPUs, memory and billing (joballoc.h), from its StartTime to the end of its time
 * limit (docs/aifd.md, "Reservations").
 */
#ifndef AIFD_JOBCOST_H
#define AIFD_JOBCOST_H

#include <stdbool.h>
#include <stdint.h>

#include "aif_diag.h"

struct job_alloc;

struct job_cost {
	int64_t gpus;   /* allocated, all nodes together */
	struct job_alloc *alloc; /* per node, or NULL when slurmctld's detail could not be read */
	int64_t start;  /* slurmctld's StartTime, Unix seconds */
	int64_t restarts; /* slurmctld's restart count: which run this is */
	int64_t end;    /* start + the time limit; meaningless when unlimited */
	bool unlimited; /* the job has no finite time limit */
	char *comment;  /* its comment in slurmctld (malloc'ed; NULL: none), which a hold keeps */
};

/*
 * Ask slurmctld for job (an RPC; libslurm is aifd's already: slurmctld.h). Returns 0 and *out
 * when slurmctld knows the job as running for uid, else -1 and why (not known, another user's,
 * not running, slurmctld not answering).
 */
int jobcost_load(uint32_t job, uint32_t uid, struct job_cost *out, struct aif_diag *why);
/* Free what jobcost_load() gave *cost (its allocation and comment); one it did not fill is zeroed. */
void jobcost_free(struct job_cost *cost);

#endif
