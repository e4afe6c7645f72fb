/*
 * aifctl check [--slurm] FILE: validate a budgets file without touching any database; with
 * --slurm, also against the GPU models of this cluster's nodes (slurm_models.h).
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "aifctl.h"
#include "budgets_file.h"
#include "slurm_models.h"

/* Whether a factory of model lists cluster. */
static bool lists_cluster(const struct aif_budgets *model, const char *cluster)
{
	for (size_t i = 0; i < model->n_factories; i++)
		for (size_t j = 0; j < model->factories[i].n_clusters; j++)
			if (strcmp(model->factories[i].clusters[j], cluster) == 0)
				return true;
	return false;
}

int aifctl_cmd_check(const struct aifctl *ctl)
{
	struct budgets_file f;
	struct slurm_models slurm = {0};
	struct aif_budgets_options options = {0};
	bool as_lines = ctl->format == AIFCTL_FORMAT_TABLE;
	int rc;

	if (ctl->slurm) {
		if (slurm_models_read(&slurm) < 0)
			return AIFCTL_FAILURE;
		options.cluster_models = &slurm.view;
		options.n_cluster_models = 1;
	}
	rc = budgets_file_load(&f, ctl->args[0], as_lines ? stdout : NULL, &options);
	if (ctl->slurm && f.model && !lists_cluster(f.model, slurm.cluster)) {
		struct aif_diag d;

		aif_diag_clear(&d);
		aif_diag_message(&d, "no factory of \"%s\" lists cluster \"%s\"", ctl->args[0],
				 slurm.cluster);
		aif_diag_detail(&d, "--slurm checked the GPU models of this host's cluster (its "
				    "ClusterName) against nothing.");
		aifctl_report("WARNING", &d);
	}
	slurm_models_free(&slurm);

	if (rc == AIFCTL_FAILURE) {
		budgets_file_free(&f);
		return rc;
	}
	if (!as_lines) {
		output_table_print(f.issues, ctl->format, stdout);
	} else if (rc == AIFCTL_OK) {
		size_t projects = 0;
		for (size_t i = 0; i < f.model->n_factories; i++)
			projects += f.model->factories[i].n_projects;
		printf("%s: valid: %zu %s, %zu %s, %zu %s, %zu %s; %d %s\n", f.path,
		       f.model->n_factories, f.model->n_factories == 1 ? "factory" : "factories",
		       projects, projects == 1 ? "project" : "projects",
		       f.model->n_periods, f.model->n_periods == 1 ? "period" : "periods",
		       f.model->n_sectors, f.model->n_sectors == 1 ? "sector" : "sectors",
		       f.warnings, f.warnings == 1 ? "warning" : "warnings");
	} else {
		printf("%s: invalid: %d %s, %d %s\n", f.path, f.errors, f.errors == 1 ? "error" : "errors",
		       f.warnings, f.warnings == 1 ? "warning" : "warnings");
	}
	budgets_file_free(&f);
	return rc;
}
