/* aif_names: what an id and a cluster name are, for the budgets file and aifd's config alike. */
#ifndef AIF_NAMES_H
#define AIF_NAMES_H

#include <stdbool.h>

/*
 * The id of a sector, AI Factory, project or period: 1 to 63 of a-z 0-9 . _ -, starting with
 * a letter or a digit.
 */
bool aif_name_valid_id(const char *id);

/* A Slurm ClusterName as aif accepts it: 1 to 63 of a-z 0-9 _ -, starting with a letter or a digit. */
bool aif_name_valid_cluster(const char *name);

/*
 * A job's project in its Slurm AdminComment, "aif project=NAME": written at submission by
 * slurmctld's job_submit/aif (plugin/job_submit.c), read by aifd for jobs that are pending.
 */
#define AIF_ADMIN_COMMENT_PREFIX "aif project="

#endif
