/*
 * jobcost: the most a running job can cost, from slurmctld's record of its allocation (never
 * from what the user asked or claims): its GPUs on all its nodes, from its StartTime to the end
 * of its time limit (docs/aifd.md, "Reservations").
 */
#ifndef AIFD_JOBCOST_H
#define AIFD_JOBCOST_H

#include <stdbool.h>
#include <stdint.h>

#include "aif_diag.h"

struct job_cost {
	int64_t gpus;   /* allocated, all nodes together */
	int64_t start;  /* slurmctld's StartTime, Unix seconds */
	int64_t end;    /* start + the time limit; meaningless when unlimited */
	bool unlimited; /* the job has no finite time limit */
};

/*
 * Ask slurmctld for job (an RPC; libslurm is aifd's already: slurmctld.h). Returns 0 and *out
 * when slurmctld knows the job as running for uid, else -1 and why (not known, another user's,
 * not running, slurmctld not answering).
 */
int jobcost_load(uint32_t job, uint32_t uid, struct job_cost *out, struct aif_diag *why);

#endif
