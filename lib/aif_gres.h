/*
 * aif_gres: how many GPUs a Slurm GRES or TRES list names. One parser for what slurmctld
 * allocated (a running job's GRES totals, "gpu:h100:2,nic:1") and what a job asks for (the
 * tres_per_job/node/task/socket of its submission, "gres:gpu:2", "gres/gpu:a100:1", "cpu=2").
 */
#ifndef AIF_GRES_H
#define AIF_GRES_H

#include <stddef.h>
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

/*
 * A node's GPUs by model, from slurmctld's record of an allocation: one entry of a job's
 * gres_detail_str[] (SHOW_DETAIL), "gpu:h100:2(IDX:0-1),gpu:a100:1(IDX:2),nic:1(IDX:0)".
 * Writes the canonical form to out: "MODEL:COUNT" per model, sorted by model, joined by ','
 * ("a100:1,h100:2"; a GPU without a type has the empty model: ":2"); "" for no GPU. Returns
 * the GPUs, or -1 when an entry cannot be read or out is too small (out is then "").
 */
int64_t aif_gres_models(const char *detail, char *out, size_t size);

/*
 * The value of TRES name in a TRES list as slurmctld writes a job's ("cpu=8,mem=16G,node=2,
 * billing=8,gres/gpu=4"): memory in MiB (its M, G, T or P suffix read), others as they are.
 * Returns 0 and *out, or -1 when name is not there or its value cannot be read.
 */
int aif_tres_value(const char *tres, const char *name, int64_t *out);

#endif
