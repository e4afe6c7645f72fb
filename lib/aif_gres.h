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

#endif
