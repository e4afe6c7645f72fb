/*
 * libFuzzer target for the budgets YAML loader (lib/aif_budgets*.c): each input is a budgets
 * file given to aif_budgets_parse() (the buffer aif_budgets_load() reads a file into, not
 * NUL-terminated). See tests/fuzz/run and README.md, "Fuzzing".
 *
 * Besides what AddressSanitizer and UBSan catch, it checks the loader's promises
 * (lib/aif_budgets.h, docs/budgets-yaml.md): issues come in file order, the count it returns is
 * the errors it reported, and a model is handed out only without errors, and then holds only
 * valid values: ids and names by their rules, references that resolve, budgets in range,
 * periods that end after they start, project budgets within the factory's unless overcommit.
 * Any broken promise aborts, which libFuzzer reports as a crash.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aif_budgets.h"
#include "aif_names.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                               \
	do {                                                                                      \
		if (!(cond)) {                                                                    \
			fprintf(stderr, "fuzz_budgets: %s:%d: check failed: %s\n", __FILE__,      \
				__LINE__, #cond);                                                 \
			abort();                                                                  \
		}                                                                                 \
	} while (0)

static const char file_name[] = "fuzz.yaml";

/* NSS stand-ins: deterministic, and both answers happen. */
static bool user_exists(const char *name, void *arg)
{
	(void)arg;
	return strlen(name) % 2 == 1;
}

static bool group_exists(const char *name, void *arg)
{
	(void)arg;
	return name[0] != 'x';
}

/* And the GPU models Slurm gives two clusters' nodes (aifctl check --slurm). */
static const char *const jean_zay_models[] = {"h100", "a100", "1g.10gb"};
static const char *const adastra_models[] = {"mi250x"};
static const struct aif_cluster_models slurm_models[] = {{"jean-zay", jean_zay_models, 3},
							 {"adastra", adastra_models, 1}};
static const struct aif_budgets_options fake_nss = {user_exists, group_exists, NULL, slurm_models, 2};

static bool everyone_exists(const char *name, void *arg)
{
	(void)name;
	(void)arg;
	return true;
}

static const struct aif_budgets_options everyone = {everyone_exists, everyone_exists, NULL, slurm_models, 2};

struct seen {
	size_t issues;
	int errors;
	unsigned line, column;
	bool summary; /* "N more issues not shown" came, and must be last */
};

static void on_issue(const struct aif_budgets_issue *issue, void *arg)
{
	struct seen *s = arg;
	char small[24], big[700];
	size_t len = strnlen(issue->message, sizeof(issue->message));

	CHECK(!s->summary);
	CHECK(len > 0 && len < sizeof(issue->message));
	CHECK(issue->file == file_name);
	if (strstr(issue->message, "more issues not shown") && s->issues >= 1000) {
		s->summary = true;
		return;
	}
	/* In file order: by line, then column (issues of the whole file, line 0, first). */
	CHECK(issue->line > s->line || (issue->line == s->line && issue->column >= s->column));
	CHECK(issue->line || !issue->column);
	s->line = issue->line;
	s->column = issue->column;
	s->issues++;
	s->errors += !issue->warning;
	CHECK(aif_budgets_issue_format(issue, small, sizeof(small)) == small);
	CHECK(strlen(small) < sizeof(small));
	aif_budgets_issue_format(issue, big, sizeof(big));
	CHECK(strstr(big, issue->message) != NULL);
}

static bool id_ok(const char *s, const char *charset)
{
	size_t len = strlen(s);
	return len >= 1 && len <= 63 && ((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')) &&
	       strspn(s, charset) == len;
}

#define ID_CHARS "abcdefghijklmnopqrstuvwxyz0123456789._-"


static bool in(const char *const *list, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i], s) == 0)
			return true;
	return false;
}

static bool unique(const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (in(list, i, list[i]))
			return false;
	return true;
}

static long period_index(const struct aif_budgets *b, const char *id)
{
	for (size_t i = 0; i < b->n_periods; i++)
		if (strcmp(b->periods[i].id, id) == 0)
			return (long)i;
	return -1;
}

static void check_policy(const struct aif_policy *p)
{
	CHECK(p->n_warn_at <= AIF_WARN_AT_MAX);
	for (size_t i = 0; i < p->n_warn_at; i++) {
		CHECK(p->warn_at[i] >= 1 && p->warn_at[i] <= 100);
		CHECK(i == 0 || p->warn_at[i] > p->warn_at[i - 1]);
	}
	CHECK(p->on_exhausted == AIF_ON_EXHAUSTED_DENY || p->on_exhausted == AIF_ON_EXHAUSTED_CANCEL);
}

/* Budgets of one owner; adds each to sums[period] when sums is given. */
static void check_budget_list(const struct aif_budgets *b, const struct aif_budget *list, size_t n,
			      double *sums)
{
	for (size_t i = 0; i < n; i++) {
		long p = period_index(b, list[i].period_id);
		CHECK(p >= 0);
		CHECK(list[i].gpu_hours > 0 && list[i].gpu_hours <= 1e12);
		for (size_t j = 0; j < i; j++)
			CHECK(strcmp(list[j].period_id, list[i].period_id) != 0);
		if (sums)
			sums[p] += list[i].gpu_hours;
	}
}

static void check_model(const struct aif_budgets *b)
{
	const char **project_ids = NULL;
	size_t n_project_ids = 0;

	CHECK(b->version >= 1 && b->version <= AIF_BUDGETS_SCHEMA_VERSION);
	CHECK(b->n_sectors >= 1 && unique((const char *const *)b->sectors, b->n_sectors));
	for (size_t i = 0; i < b->n_sectors; i++)
		CHECK(id_ok(b->sectors[i], ID_CHARS));
	CHECK(b->n_periods >= 1);
	for (size_t i = 0; i < b->n_periods; i++) {
		const struct aif_period *p = &b->periods[i];
		CHECK(id_ok(p->id, ID_CHARS));
		CHECK(period_index(b, p->id) == (long)i);
		CHECK(strlen(p->start) == 10 && strlen(p->end) == 10);
		CHECK(p->start_epoch < p->end_epoch);
		CHECK(p->start_epoch % 86400 == 0 && p->end_epoch % 86400 == 0);
	}
	CHECK(b->n_factories >= 1);
	for (size_t i = 0; i < b->n_factories; i++) {
		const struct aif_factory *f = &b->factories[i];
		double *own = calloc(b->n_periods, sizeof(double));
		double *sum = calloc(b->n_periods, sizeof(double));

		CHECK(own && sum);
		CHECK(f->id && id_ok(f->id, ID_CHARS));
		for (size_t j = 0; j < i; j++)
			CHECK(strcmp(b->factories[j].id, f->id) != 0);
		CHECK(!f->name || f->name[0]);
		CHECK(f->n_clusters >= 1 && unique((const char *const *)f->clusters, f->n_clusters));
		for (size_t j = 0; j < f->n_clusters; j++) {
			const struct aif_charging *c = &f->charging[j];

			CHECK(aif_name_valid_cluster(f->clusters[j]));
			/* Version 1: every GPU-hour costs 1; rates sorted, distinct, within 0..1000. */
			CHECK(b->version == 2 || (c->by == AIF_CHARGE_GPUS && !c->n_rates &&
						  c->unrated == 1 && !c->cpus_per_gpu &&
						  !c->memory_per_gpu_mb));
			CHECK(c->unrated >= 0 && c->unrated <= 1000);
			CHECK(c->by == AIF_CHARGE_GPUS || (!c->n_rates && !c->cpus_per_gpu &&
							  !c->memory_per_gpu_mb));
			for (size_t k = 0; k < c->n_rates; k++) {
				CHECK(c->rates[k].model && c->rates[k].model[0]);
				CHECK(c->rates[k].rate >= 0 && c->rates[k].rate <= 1000);
				CHECK(!k || strcmp(c->rates[k - 1].model, c->rates[k].model) < 0);
			}
		}
		check_budget_list(b, f->budgets, f->n_budgets, own);
		check_policy(&f->policy);
		for (size_t j = 0; j < f->n_projects; j++) {
			const struct aif_project *p = &f->projects[j];
			const char **grown;

			CHECK(p->id && id_ok(p->id, ID_CHARS));
			CHECK(!in(project_ids, n_project_ids, p->id));
			grown = realloc(project_ids, (n_project_ids + 1) * sizeof(*grown));
			CHECK(grown);
			project_ids = grown;
			project_ids[n_project_ids++] = p->id;
			CHECK(!p->name || p->name[0]);
			CHECK(p->n_sectors >= 1 && unique((const char *const *)p->sectors, p->n_sectors));
			for (size_t k = 0; k < p->n_sectors; k++)
				CHECK(in((const char *const *)b->sectors, b->n_sectors, p->sectors[k]));
			check_budget_list(b, p->budgets, p->n_budgets, sum);
			CHECK(unique((const char *const *)p->users, p->n_users));
			CHECK(unique((const char *const *)p->groups, p->n_groups));
			for (size_t k = 0; k < p->n_users; k++)
				CHECK(aif_budgets_valid_member(p->users[k]));
			for (size_t k = 0; k < p->n_groups; k++)
				CHECK(aif_budgets_valid_member(p->groups[k]));
			check_policy(&p->policy);
		}
		/* Projects have a budget only in periods where their factory has one, within it. */
		for (size_t k = 0; k < b->n_periods; k++) {
			CHECK(!(sum[k] > 0) || own[k] > 0);
			CHECK(f->allow_overcommit || sum[k] <= own[k] * (1 + 1e-12));
		}
		free(own);
		free(sum);
	}
	free(project_ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct aif_budgets *model = (struct aif_budgets *)&model; /* must be reset */
	struct seen seen = {0};
	int errors;

	errors = aif_budgets_parse(file_name, (const char *)data, size, &fake_nss, &model, on_issue,
				   &seen);
	CHECK(errors >= 0);
	if (seen.summary)
		CHECK(seen.errors <= errors);
	else
		CHECK(seen.errors == errors);
	if (errors) {
		CHECK(model == NULL);
	} else {
		CHECK(model != NULL);
		check_model(model);
		aif_budgets_free(model);
	}

	/*
	 * Counting only, as aifctl check --quiet does, and with other NSS answers: the same
	 * number of errors, since a member that does not resolve is only a warning.
	 */
	CHECK(aif_budgets_parse(file_name, (const char *)data, size, &everyone, NULL, NULL, NULL) ==
	      errors);
	return 0;
}
