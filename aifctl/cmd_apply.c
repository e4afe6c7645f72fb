/*
 * aifctl plan FILE / apply FILE. Both validate the file, stage its model into the session's
 * temporary tables made by aif.begin_staging(), and let the database compute the difference
 * (aif.plan) or apply it (aif.apply: serialized, audited, one transaction). Plan rolls back.
 * The staging contract is documented in sql/ and docs/database.md.
 */
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aifctl.h"
#include "budgets_file.h"


static int stage(PGconn *conn, const char *sql, int n, const char *const *values)
{
	PGresult *res = PQexecParams(conn, sql, n, NULL, values, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		aifctl_report_pg_error(res);
		return -1;
	}
	PQclear(res);
	return 0;
}

/* "{80,95}": a PostgreSQL array literal of the thresholds. */
static void format_warn_at(const struct aif_policy *p, char *buf, size_t size)
{
	size_t used = (size_t)snprintf(buf, size, "{");
	for (size_t i = 0; i < p->n_warn_at && used < size; i++)
		used += (size_t)snprintf(buf + used, size - used, "%s%d", i ? "," : "", p->warn_at[i]);
	if (used < size)
		snprintf(buf + used, size - used, "}");
}

static int stage_budgets(PGconn *conn, const char *sql, const char *owner,
			 const struct aif_budget *budgets, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char hours[64];
		snprintf(hours, sizeof(hours), "%.15g", budgets[i].gpu_hours);
		const char *v[] = {owner, budgets[i].period_id, hours};
		if (stage(conn, sql, 3, v) < 0)
			return -1;
	}
	return 0;
}

static int stage_names(PGconn *conn, const char *sql, const char *owner, const char *kind,
		       char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char position[24];
		snprintf(position, sizeof(position), "%zu", i);
		/* Sectors are staged with their position (0 is the default), members with their kind. */
		const char *v[] = {owner, names[i], kind ? kind : position};
		if (stage(conn, sql, 3, v) < 0)
			return -1;
	}
	return 0;
}

static int stage_project(PGconn *conn, const char *factory_id, const struct aif_project *p)
{
	char warn_at[64], grace[32];
	format_warn_at(&p->policy, warn_at, sizeof(warn_at));
	snprintf(grace, sizeof(grace), "%lu", p->policy.grace_seconds);
	const char *v[] = {p->id, factory_id, p->name, aif_on_exhausted_names[p->policy.on_exhausted],
			   grace, warn_at, aif_admission_names[p->policy.admission]};

	if (stage(conn, "INSERT INTO stage_projects (id, factory_id, name, on_exhausted, grace_seconds, "
			"warn_at, admission) VALUES ($1, $2, $3, $4, $5, $6, $7)", 7, v) < 0 ||
	    stage_names(conn, "INSERT INTO stage_project_sectors (project_id, sector_id, position) "
			      "VALUES ($1, $2, $3)", p->id, NULL, p->sectors, p->n_sectors) < 0 ||
	    stage_names(conn, "INSERT INTO stage_project_members (project_id, name, kind) VALUES ($1, $2, $3)",
			p->id, "user", p->users, p->n_users) < 0 ||
	    stage_names(conn, "INSERT INTO stage_project_members (project_id, name, kind) VALUES ($1, $2, $3)",
			p->id, "group", p->groups, p->n_groups) < 0 ||
	    stage_budgets(conn, "INSERT INTO stage_project_budgets (project_id, period_id, gpu_hours) "
				"VALUES ($1, $2, $3)", p->id, p->budgets, p->n_budgets) < 0)
		return -1;
	return 0;
}

/* A cluster of a factory, how it is charged and its rates; NULL for a value not given. */
static int stage_cluster(PGconn *conn, const char *factory_id, const char *cluster,
			 const struct aif_charging *c)
{
	char unrated[32], cpus[16], memory[32], rate[32];
	snprintf(unrated, sizeof(unrated), "%.15g", c->unrated);
	snprintf(cpus, sizeof(cpus), "%u", c->cpus_per_gpu);
	snprintf(memory, sizeof(memory), "%llu", (unsigned long long)c->memory_per_gpu_mb);
	const char *v[] = {factory_id, cluster, aif_charge_by_names[c->by], unrated,
			   c->cpus_per_gpu ? cpus : NULL, c->memory_per_gpu_mb ? memory : NULL};

	if (stage(conn, "INSERT INTO stage_factory_clusters (factory_id, cluster, charge_by, "
			"unrated_rate, cpus_per_gpu, memory_per_gpu_mb) VALUES ($1, $2, $3, $4, $5, $6)",
		  6, v) < 0)
		return -1;
	for (size_t i = 0; i < c->n_rates; i++) {
		snprintf(rate, sizeof(rate), "%.15g", c->rates[i].rate);
		const char *r[] = {factory_id, cluster, c->rates[i].model, rate};
		if (stage(conn, "INSERT INTO stage_gpu_rates (factory_id, cluster, model, rate) "
				"VALUES ($1, $2, $3, $4)", 4, r) < 0)
			return -1;
	}
	return 0;
}

static int stage_factory(PGconn *conn, const struct aif_factory *f)
{
	char warn_at[64], grace[32];
	format_warn_at(&f->policy, warn_at, sizeof(warn_at));
	snprintf(grace, sizeof(grace), "%lu", f->policy.grace_seconds);
	const char *v[] = {f->id, f->name, aif_on_exhausted_names[f->policy.on_exhausted], grace,
			   warn_at, f->allow_overcommit ? "true" : "false",
			   aif_admission_names[f->policy.admission]};

	if (stage(conn, "INSERT INTO stage_factories (id, name, on_exhausted, grace_seconds, warn_at, "
			"allow_overcommit, admission) VALUES ($1, $2, $3, $4, $5, $6, $7)", 7, v) < 0)
		return -1;
	for (size_t i = 0; i < f->n_clusters; i++)
		if (stage_cluster(conn, f->id, f->clusters[i], &f->charging[i]) < 0)
			return -1;
	if (stage_budgets(conn, "INSERT INTO stage_factory_budgets (factory_id, period_id, gpu_hours) "
				"VALUES ($1, $2, $3)", f->id, f->budgets, f->n_budgets) < 0)
		return -1;
	for (size_t i = 0; i < f->n_projects; i++)
		if (stage_project(conn, f->id, &f->projects[i]) < 0)
			return -1;
	return 0;
}

static int stage_model(PGconn *conn, const struct aif_budgets *m)
{
	if (aifctl_exec(conn, "SELECT aif.begin_staging()") < 0)
		return -1;
	for (size_t i = 0; i < m->n_sectors; i++) {
		const char *v[] = {m->sectors[i]};
		if (stage(conn, "INSERT INTO stage_sectors (id) VALUES ($1)", 1, v) < 0)
			return -1;
	}
	for (size_t i = 0; i < m->n_periods; i++) {
		const char *v[] = {m->periods[i].id, m->periods[i].start, m->periods[i].end};
		if (stage(conn, "INSERT INTO stage_periods (id, starts_on, ends_on) VALUES ($1, $2, $3)", 3, v) < 0)
			return -1;
	}
	for (size_t i = 0; i < m->n_factories; i++)
		if (stage_factory(conn, &m->factories[i]) < 0)
			return -1;
	return 0;
}

/* Who applies, for the audit log: the OS user, and the one behind sudo if any. */
static void applied_by(char *buf, size_t size)
{
	const struct passwd *pw = getpwuid(getuid());
	const char *sudo_user = getenv("SUDO_USER");
	int n;

	if (pw)
		n = snprintf(buf, size, "%s", pw->pw_name);
	else
		n = snprintf(buf, size, "uid %u", (unsigned)getuid());
	if (sudo_user && getuid() == 0 && n >= 0 && (size_t)n < size)
		snprintf(buf + n, size - (size_t)n, " (sudo by %s)", sudo_user);
}

static int plan_or_apply(const struct aifctl *ctl, bool apply)
{
	struct budgets_file f;
	PGconn *conn = NULL;
	PGresult *res = NULL;
	struct output_table *changes = NULL;
	int rc = budgets_file_load(&f, ctl->args[0], stderr, NULL);

	if (rc != AIFCTL_OK) {
		if (rc == AIFCTL_INVALID)
			fprintf(stderr, "aifctl: %s is invalid; nothing was %s\n", f.path, apply ? "applied" : "planned");
		goto out;
	}
	rc = AIFCTL_FAILURE;
	if (!(conn = aifctl_connect(ctl, 1)))
		goto out;
	if (aifctl_exec(conn, "BEGIN") < 0 || stage_model(conn, f.model) < 0)
		goto out;
	if (apply) {
		char by[256];
		applied_by(by, sizeof(by));
		const char *values[] = {f.path, f.text, by};
		const int lengths[] = {0, (int)f.len, 0};
		const int formats[] = {0, 1, 0}; /* the file's bytes go as binary: the digest is of them */
		res = PQexecParams(conn, "SELECT * FROM aif.apply($1, sha256($2::bytea), $3)", 3, NULL,
				   values, lengths, formats, 0);
	} else {
		res = PQexec(conn, "SELECT * FROM aif.plan()");
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		aifctl_report_pg_error(res);
		res = NULL;
		goto out;
	}
	if (aifctl_exec(conn, apply ? "COMMIT" : "ROLLBACK") < 0)
		goto out;
	if (!(changes = output_table_from_result(res))) {
		aifctl_error("out of memory");
		goto out;
	}
	if (ctl->format != AIFCTL_FORMAT_TABLE)
		output_table_print(changes, ctl->format, stdout);
	else if (output_table_rows(changes) == 0)
		printf("No changes: the database already matches %s.\n", f.path);
	else {
		output_table_print(changes, ctl->format, stdout);
		if (!apply)
			printf("Run \"aifctl apply %s\" to make these changes.\n", f.path);
	}
	rc = AIFCTL_OK;
out:
	output_table_free(changes);
	PQclear(res);
	PQfinish(conn); /* an open transaction rolls back */
	budgets_file_free(&f);
	return rc;
}

int aifctl_cmd_plan(const struct aifctl *ctl)
{
	return plan_or_apply(ctl, false);
}

int aifctl_cmd_apply(const struct aifctl *ctl)
{
	return plan_or_apply(ctl, true);
}
