/* slurm_models: the GPU models of this cluster's nodes, from Slurm's commands (slurm_models.h). */
#include "slurm_models.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "aif_gres.h"
#include "aifctl.h"

/*
 * The commands, fixed: nothing of the caller's goes into a shell. sinfo: every node (--all:
 * hidden partitions and those the caller may not use too; the caller's SINFO_PARTITION or
 * SLURM_CLUSTERS would narrow it), one per line, its GRES as wide as any node's needs (sinfo
 * truncates to the width given).
 */
static const char SCONTROL[] = "scontrol show config";
static const char SINFO[] = "env -u SINFO_PARTITION -u SLURM_CLUSTERS sinfo --all --Node --noheader "
			    "--format=%4000G";

/* Run cmd, each line of its output to fn(line, arg); 0, or -1 with the error printed. */
static int each_line(const char *cmd, int (*fn)(char *line, void *arg), void *arg)
{
	char line[4096];
	FILE *in = popen(cmd, "r");
	int rc = 0, status;

	if (!in) {
		aifctl_error("could not run \"%s\": %s", cmd, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), in))
		if (rc == 0 && fn(line, arg) < 0)
			rc = -1;
	status = pclose(in);
	if (rc == 0 && (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
		aifctl_error("\"%s\" failed (exit status %d): --slurm needs Slurm's commands and "
			     "slurmctld", cmd, status == -1 || !WIFEXITED(status) ? -1 : WEXITSTATUS(status));
		rc = -1;
	}
	return rc;
}

static int cluster_line(char *line, void *arg)
{
	struct slurm_models *m = arg;
	char name[256];

	if (sscanf(line, " ClusterName = %255s", name) == 1)
		snprintf(m->cluster, sizeof(m->cluster), "%s", name);
	return 0;
}

static int add_model(struct slurm_models *m, const char *model, size_t len)
{
	char **grown;

	for (size_t i = 0; i < m->n; i++)
		if (strlen(m->models[i]) == len && strncmp(m->models[i], model, len) == 0)
			return 0;
	if (!(grown = realloc(m->models, (m->n + 1) * sizeof(*grown))) ||
	    !((m->models = grown)[m->n] = strndup(model, len))) {
		aifctl_error("out of memory");
		return -1;
	}
	m->n++;
	return 0;
}

/* One line of sinfo: "gpu:h100:4(S:0-1),gpu:a100:2(S:0)", "gpu:4", "(null)". */
static int gres_line(char *line, void *arg)
{
	char models[4096];

	line[strcspn(line, " \n")] = '\0';
	if (aif_gres_models(line, models, sizeof(models)) < 0) {
		aifctl_error("could not read the GRES \"%s\" that sinfo gives a node", line);
		return -1;
	}
	for (char *p = models; *p;) { /* "a100:2,h100:4"; untyped ":4" has no model */
		size_t len = strcspn(p, ":");

		if (len && add_model(arg, p, len) < 0)
			return -1;
		p += strcspn(p, ",");
		p += *p == ',';
	}
	return 0;
}

int slurm_models_read(struct slurm_models *out)
{
	memset(out, 0, sizeof(*out));
	if (each_line(SCONTROL, cluster_line, out) < 0)
		return -1;
	if (!out->cluster[0]) {
		aifctl_error("\"%s\" gave no ClusterName", SCONTROL);
		return -1;
	}
	if (each_line(SINFO, gres_line, out) < 0) {
		slurm_models_free(out);
		return -1;
	}
	out->view.cluster = out->cluster;
	out->view.models = (const char *const *)out->models;
	out->view.n_models = out->n;
	return 0;
}

void slurm_models_free(struct slurm_models *m)
{
	for (size_t i = 0; i < m->n; i++)
		free(m->models[i]);
	free(m->models);
	memset(m, 0, sizeof(*m));
}
