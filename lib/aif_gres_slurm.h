/*
 * aif_gres_slurm: an aif_gres_request (aif_gres.h) from Slurm's record of what a job asks for,
 * a submission (job_desc_msg_t, slurmctld's job_submit/aif) or a pending job
 * (slurm_job_info_t, aifd): the same fields, but for the minimum of nodes, whose name differs.
 * Slurm's "not given" (NO_VAL, NO_VAL16, INFINITE) becomes 0.
 */
#ifndef AIF_GRES_SLURM_H
#define AIF_GRES_SLURM_H

#include <stdint.h>

#include <slurm/slurm.h>

#include "aif_gres.h"

static inline uint32_t aif_gres_given32(uint32_t v)
{
	return v == NO_VAL || v == INFINITE ? 0 : v;
}

static inline uint32_t aif_gres_given16(uint16_t v)
{
	return v == NO_VAL16 || v == INFINITE16 ? 0 : v;
}

#define AIF_GRES_REQUEST(j, min_nodes_field)                                    \
	((struct aif_gres_request){                                              \
		.per_job = (j)->tres_per_job,                                    \
		.per_node = (j)->tres_per_node,                                  \
		.per_task = (j)->tres_per_task,                                  \
		.per_socket = (j)->tres_per_socket,                              \
		.min_nodes = aif_gres_given32((j)->min_nodes_field),             \
		.max_nodes = aif_gres_given32((j)->max_nodes),                   \
		.tasks = aif_gres_given32((j)->num_tasks),                       \
		.tasks_per_node = aif_gres_given16((j)->ntasks_per_node),        \
		.sockets_per_node = aif_gres_given16((j)->sockets_per_node),     \
	})

#endif
