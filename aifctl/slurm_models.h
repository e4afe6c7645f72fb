/*
 * slurm_models: the GPU models (GRES types) the nodes of the Slurm cluster this host belongs to
 * have, as slurmctld knows them: ClusterName from "scontrol show config", the nodes' GRES from
 * "sinfo" (aifctl check --slurm; docs/aifctl.md). Untyped GPUs have no model and are left out.
 */
#ifndef AIFCTL_SLURM_MODELS_H
#define AIFCTL_SLURM_MODELS_H

#include <stddef.h>

#include "aif_budgets.h"

struct slurm_models {
	char cluster[256];
	char **models; /* distinct, in the order found */
	size_t n;
	struct aif_cluster_models view; /* for aif_budgets_options */
};

/* Ask Slurm; 0, or -1 with the error printed (nothing to free). */
int slurm_models_read(struct slurm_models *out);
void slurm_models_free(struct slurm_models *m);

#endif
