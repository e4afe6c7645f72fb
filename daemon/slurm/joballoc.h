/*
 * joballoc: what slurmctld allocated to a running job, node by node: its GPUs by model
 * (gres_detail_str[], SHOW_DETAIL) and the job's CPUs, memory and billing (tres_alloc_str).
 * The usage records' allocation (jobtimes.h) and a reservation's charge (jobcost.h) both take
 * it from here. Reference-counted: the answers that copy it share one, freed with the last.
 */
#ifndef AIFD_JOBALLOC_H
#define AIFD_JOBALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <slurm/slurm.h>

#include "usage.h"

struct job_alloc {
	int refs; /* __atomic */
	int64_t cpus, memory_mb, billing; /* the job's; memory and billing -1 when it has none */
	size_t n_nodes;
	struct {
		char *name;
		char models[USAGE_MODELS_MAX]; /* "a100:1,h100:2" (aif_gres_models()) */
		bool known;                    /* its GRES detail could be read */
	} nodes[];
};

/*
 * The allocation of a running job's info (loaded with SHOW_DETAIL), one reference, or NULL
 * when it cannot be read: its nodes in the order of its node list.
 */
struct job_alloc *job_alloc_of(const slurm_job_info_t *info);
struct job_alloc *job_alloc_retain(struct job_alloc *a); /* another reference; NULL is NULL */
void job_alloc_release(struct job_alloc *a);             /* NULL does nothing */

#endif
