/*
 * aif_budgets: the operators' budgets file (YAML, schema version 1 or 2), loaded with libyaml and
 * validated as a whole. Every problem in a file is reported, each with its line and column;
 * a model is returned only when there is no error (warnings allowed).
 *
 * The model holds effective values: a project's warn_at, on_exhausted, grace and admission are
 * its own when the file sets them, otherwise its factory's; a factory's are the documented defaults
 * when unset. Consumers (aifctl plan/apply, tests) never resolve inheritance themselves.
 */
#ifndef AIF_BUDGETS_H
#define AIF_BUDGETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The newest schema version this aif reads; every older one is read too, meaning what it did. */
#define AIF_BUDGETS_SCHEMA_VERSION 2
#define AIF_WARN_AT_MAX 8

enum aif_on_exhausted {
	AIF_ON_EXHAUSTED_DENY,   /* running jobs finish, new ones are refused (default) */
	AIF_ON_EXHAUSTED_CANCEL, /* running jobs are cancelled after the grace period */
};

enum aif_admission {
	AIF_ADMISSION_USED,    /* a job is admitted while used so far is below the budget (default) */
	AIF_ADMISSION_RESERVE, /* only when its maximum cost fits what is left; it is reserved */
};

/* The words of the budgets file (and of the database) for each value, in enum order. */
extern const char *const aif_on_exhausted_names[2];
extern const char *const aif_admission_names[2];

struct aif_period {
	char *id;
	char start[11], end[11]; /* "YYYY-MM-DD", UTC midnight; [start, end) */
	int64_t start_epoch, end_epoch;
};

struct aif_budget {
	char *period_id;
	double gpu_hours; /* > 0 */
};

struct aif_policy {
	int warn_at[AIF_WARN_AT_MAX]; /* percent, strictly increasing, 1..100 */
	size_t n_warn_at;
	enum aif_on_exhausted on_exhausted;
	unsigned long grace_seconds; /* before cancelling, with AIF_ON_EXHAUSTED_CANCEL */
	enum aif_admission admission;
};

/* What one GPU-hour of a GPU model costs on a cluster, in its factory's budget unit. */
struct aif_gpu_rate {
	char *model; /* a Slurm GRES type: "h100", a MIG profile "1g.10gb" */
	double rate; /* >= 0 */
};

enum aif_charge_by {
	AIF_CHARGE_GPUS,    /* the GPUs of each node at their model's rate (default) */
	AIF_CHARGE_BILLING, /* Slurm's billing TRES of the job (TRESBillingWeights) */
};
extern const char *const aif_charge_by_names[2];

/*
 * How the usage of one cluster is charged to its factory (docs/budgets-yaml.md, "Charging").
 * A schema version 1 file, and a cluster given by name only: every GPU costs 1 per hour.
 */
struct aif_charging {
	enum aif_charge_by by;
	struct aif_gpu_rate *rates; /* sorted by model, distinct */
	size_t n_rates;
	double unrated; /* a GPU without a type, or of a model without a rate */
	/* The node share (by gpus only): 0 = not counted. */
	uint32_t cpus_per_gpu;
	uint64_t memory_per_gpu_mb; /* MiB, as Slurm counts memory */
};

struct aif_project {
	char *id;
	char *name; /* NULL when the file gives none */
	char **sectors; /* at least one; the first is the default */
	size_t n_sectors;
	struct aif_budget *budgets;
	size_t n_budgets;
	char **users;
	size_t n_users;
	char **groups;
	size_t n_groups;
	struct aif_policy policy; /* effective */
};

struct aif_factory {
	char *id;
	char *name; /* NULL when the file gives none */
	char **clusters; /* Slurm ClusterName values */
	size_t n_clusters;
	struct aif_charging *charging; /* [n_clusters], clusters[i]'s */
	struct aif_budget *budgets;
	size_t n_budgets;
	bool allow_overcommit; /* project budgets may add up to more than the factory's */
	struct aif_policy policy; /* effective */
	struct aif_project *projects;
	size_t n_projects;
};

struct aif_budgets {
	int version;
	char **sectors;
	size_t n_sectors;
	struct aif_period *periods;
	size_t n_periods;
	struct aif_factory *factories;
	size_t n_factories;
};

/* One finding. line and column are 1-based; 0 when the finding concerns the whole file. */
struct aif_budgets_issue {
	const char *file; /* the name given to the loader */
	unsigned line, column;
	bool warning; /* a warning does not make the file invalid */
	char message[512];
};

typedef void (*aif_budgets_report_fn)(const struct aif_budgets_issue *issue, void *arg);

/* The GPU models (GRES types: "h100", "1g.10gb") Slurm gives the nodes of one cluster. */
struct aif_cluster_models {
	const char *cluster;
	const char *const *models;
	size_t n_models;
};

/*
 * How members are resolved; NULL functions mean NSS (getpwnam_r / getgrnam_r). With
 * cluster_models (aifctl check --slurm), a cluster that charges by GPUs with rates must give
 * one to each of its models there: a model without is an error.
 */
struct aif_budgets_options {
	bool (*user_exists)(const char *name, void *arg);
	bool (*group_exists)(const char *name, void *arg);
	void *arg;
	const struct aif_cluster_models *cluster_models;
	size_t n_cluster_models;
};

/*
 * Parse and validate len bytes of YAML named file (used only in reports). Every error and
 * warning goes to report() in file order. Returns the number of errors; when it is 0, *out
 * holds the model (free with aif_budgets_free), otherwise *out is NULL.
 */
int aif_budgets_parse(const char *file, const char *text, size_t len,
		      const struct aif_budgets_options *options, struct aif_budgets **out,
		      aif_budgets_report_fn report, void *arg);

/* Read the file at path, then as aif_budgets_parse; an unreadable file is one error (line 0). */
int aif_budgets_load(const char *path, const struct aif_budgets_options *options,
		     struct aif_budgets **out, aif_budgets_report_fn report, void *arg);

void aif_budgets_free(struct aif_budgets *budgets);

/* "error" or "warning", then "file:line:column: " as compilers print it; for aifctl check. */
const char *aif_budgets_issue_format(const struct aif_budgets_issue *issue, char *buf, size_t size);

/*
 * Whether a name can be a Unix user or group of a project's members: 1 to 255 bytes, no
 * space, control character, ':' or '/'. Names vary by site (LDAP, AD): only what can never
 * be one is refused.
 */
bool aif_budgets_valid_member(const char *name);

#endif
