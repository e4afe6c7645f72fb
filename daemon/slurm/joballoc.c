/* joballoc: what slurmctld allocated to a running job, node by node (joballoc.h). */
#include "joballoc.h"

#include <stdlib.h>
#include <string.h>

#include "aif_gres.h"

struct job_alloc *job_alloc_retain(struct job_alloc *a)
{
	if (a)
		__atomic_add_fetch(&a->refs, 1, __ATOMIC_RELAXED);
	return a;
}

void job_alloc_release(struct job_alloc *a)
{
	if (!a || __atomic_sub_fetch(&a->refs, 1, __ATOMIC_ACQ_REL))
		return;
	for (size_t i = 0; i < a->n_nodes; i++)
		free(a->nodes[i].name);
	free(a);
}

struct job_alloc *job_alloc_of(const slurm_job_info_t *info)
{
	struct hostlist *hl;
	struct job_alloc *a;
	int64_t nodes;
	char *name;

	if (!info->nodes || !info->nodes[0] || !info->tres_alloc_str)
		return NULL;
	hl = slurm_hostlist_create(info->nodes);
	if (!hl)
		return NULL;
	nodes = slurm_hostlist_count(hl);
	a = nodes > 0 ? calloc(1, sizeof(*a) + (size_t)nodes * sizeof(a->nodes[0])) : NULL;
	if (!a || aif_tres_value(info->tres_alloc_str, "cpu", &a->cpus) < 0) {
		free(a);
		slurm_hostlist_destroy(hl);
		return NULL;
	}
	/* Without memory enforcement (CR_Core) or billing weights, a job may have neither. */
	if (aif_tres_value(info->tres_alloc_str, "mem", &a->memory_mb) < 0)
		a->memory_mb = -1;
	if (aif_tres_value(info->tres_alloc_str, "billing", &a->billing) < 0)
		a->billing = -1;
	a->refs = 1;
	while (a->n_nodes < (size_t)nodes && (name = slurm_hostlist_shift(hl))) {
		size_t i = a->n_nodes++;
		const char *detail = i < info->gres_detail_cnt && info->gres_detail_str ?
					     info->gres_detail_str[i] : NULL;

		a->nodes[i].name = strdup(name);
		free(name);
		/* No detail is not "no GPU": slurmctld did not say (a count short of the nodes). */
		a->nodes[i].known = a->nodes[i].name && detail &&
				    aif_gres_models(detail, a->nodes[i].models,
						    sizeof(a->nodes[i].models)) >= 0;
	}
	slurm_hostlist_destroy(hl);
	return a;
}
