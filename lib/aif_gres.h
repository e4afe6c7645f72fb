/*
 * aif_gres: how many GPUs a Slurm GRES or TRES list names. One parser for what slurmctld
 * allocated (a running job's GRES totals, "gpu:h100:2,nic:1") and what a job asks for (the
 * tres_per_job/node/task/socket of its submission, "gres:gpu:2", "gres/gpu:a100:1", "cpu=2").
 */
#ifndef AIF_GRES_H
#define AIF_GRES_H

#include <stdint.h>

/*
 * The GPUs in list: the sum over its entries "[gres:|gres/]gpu[:TYPE][:COUNT|=COUNT]", separated
 * by ',' or ';' (a missing count is 1, as Slurm reads it); other entries count nothing. NULL or
 * "" is 0. -1 when a GPU entry's count is not a plain number below 2^31 (e.g. "gpu:2k"): the
 * caller does not know.
 */
int64_t aif_gres_gpus(const char *list);

/*
 * What a job asks for, as slurmctld has it (a submission, or a pending job's record): its
 * tres_per_* lists and counts, 0 for a count not given (Slurm's NO_VAL, NO_VAL16, INFINITE).
 */
struct aif_gres_request {
	const char *per_job, *per_node, *per_task, *per_socket;
	uint32_t min_nodes, max_nodes, tasks, tasks_per_node, sockets_per_node;
};

/*
 * The most GPUs the job can hold on all its nodes: the largest of what it asks per job, per
 * node x its nodes, per task x its tasks, per socket x its sockets (Slurm makes them agree).
 * Its nodes are its maximum, else its minimum (Slurm allocates the fewest that do), else one;
 * its tasks, when not given, its tasks per node (else one) per node. Counts saturate at 2^40.
 * -1 when a GPU count cannot be read, or GPUs per socket come without sockets per node.
 */
int64_t aif_gres_most_gpus(const struct aif_gres_request *r);

#endif
