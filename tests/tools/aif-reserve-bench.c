/*
 * aif-reserve-bench: for tests/bench/bench_reserve.sh, the latency of the two steps an
 * admission that reserves adds (docs/aifd.md, "Reservations"), each beside its floor.
 *
 *   aif-reserve-bench sql CONNINFO CLIENTS N PROJECT
 *       CLIENTS threads, each with its own connection, each N times: aif.reserve() of 1 GPU
 *       for an hour for project PROJECT (cluster "bench"), committed, as aifd calls it; then,
 *       untimed, the reservation deleted again, so that the number of reservations stays what
 *       the caller set up. Floor, the same way: one durable INSERT into a plain table
 *       (aif_bench_floor, made here). Prints reserve_p50_ms, reserve_p99_ms, floor_p50_ms,
 *       floor_p99_ms, and fits (how many calls fitted). As a role that may delete reservations.
 *   aif-reserve-bench slurm JOB UID N
 *       N times what aifd asks slurmctld for a job (jobcost_load(), daemon/slurm/jobcost.c),
 *       one after the other. Prints rpc_p50_ms, rpc_p99_ms, gpus, seconds (the time limit).
 *
 * Exit status 0, 1 on a failure (on stderr), 2 on bad usage.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "aif_clock.h"
#include "jobcost.h"
#include "slurmctld.h"

struct client {
	const char *conninfo, *project;
	int id, n, fits;
	double *reserve_ms, *floor_ms;
	char error[256];
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double pct(double *v, int n, double p)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return v[(int)(p * (n - 1))];
}

static int exec_ok(PGconn *c, PGresult *r, struct client *cl, ExecStatusType want)
{
	int ok = PQresultStatus(r) == want;

	if (!ok)
		snprintf(cl->error, sizeof(cl->error), "%s", PQerrorMessage(c));
	PQclear(r);
	return ok;
}

static void *run_client(void *arg)
{
	struct client *cl = arg;
	PGconn *c = PQconnectdb(cl->conninfo);
	char job[24];
	const char *p[2] = {job, cl->project};

	if (PQstatus(c) != CONNECTION_OK) {
		snprintf(cl->error, sizeof(cl->error), "%s", PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	for (int i = 0; i < cl->n && !cl->error[0]; i++) {
		int64_t t0;
		PGresult *r;

		snprintf(job, sizeof(job), "%d", 1000000000 + cl->id * 10000000 + i);
		t0 = aif_clock_ns();
		r = PQexecParams(c, "SELECT fits FROM aif.reserve('bench', $1, $2, 1, now(),"
				    " now() + interval '1 hour', true)", 2, NULL, p, NULL, NULL, 0);
		cl->reserve_ms[i] = (double)(aif_clock_ns() - t0) / 1e6;
		if (PQresultStatus(r) == PGRES_TUPLES_OK && PQgetvalue(r, 0, 0)[0] == 't')
			cl->fits++;
		if (!exec_ok(c, r, cl, PGRES_TUPLES_OK) ||
		    !exec_ok(c, PQexecParams(c, "DELETE FROM aif.reservations WHERE cluster = 'bench'"
						" AND job_id = $1", 1, NULL, p, NULL, NULL, 0),
			     cl, PGRES_COMMAND_OK))
			break;
		t0 = aif_clock_ns();
		r = PQexecParams(c, "INSERT INTO aif_bench_floor VALUES ($1)", 1, NULL, p, NULL, NULL, 0);
		cl->floor_ms[i] = (double)(aif_clock_ns() - t0) / 1e6;
		if (!exec_ok(c, r, cl, PGRES_COMMAND_OK) ||
		    !exec_ok(c, PQexecParams(c, "DELETE FROM aif_bench_floor WHERE job = $1", 1, NULL, p,
					     NULL, NULL, 0), cl, PGRES_COMMAND_OK))
			break;
	}
	PQfinish(c);
	return NULL;
}

static int bench_sql(const char *conninfo, int clients, int n, const char *project)
{
	struct client cl[16];
	pthread_t t[16];
	double *all_r = calloc((size_t)(clients * n), sizeof(double));
	double *all_f = calloc((size_t)(clients * n), sizeof(double));
	PGconn *c = PQconnectdb(conninfo);
	int fits = 0, rc = 0;

	if (!all_r || !all_f || PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "aif-reserve-bench: %s", PQerrorMessage(c));
		return 1;
	}
	PQclear(PQexec(c, "DROP TABLE IF EXISTS aif_bench_floor"));
	PQclear(PQexec(c, "CREATE TABLE aif_bench_floor (job bigint PRIMARY KEY)"));
	for (int i = 0; i < clients; i++) {
		cl[i] = (struct client){.conninfo = conninfo, .project = project, .id = i, .n = n,
				       .reserve_ms = all_r + i * n, .floor_ms = all_f + i * n};
		pthread_create(&t[i], NULL, run_client, &cl[i]);
	}
	for (int i = 0; i < clients; i++) {
		pthread_join(t[i], NULL);
		fits += cl[i].fits;
		if (cl[i].error[0]) {
			fprintf(stderr, "aif-reserve-bench: client %d: %s", i, cl[i].error);
			rc = 1;
		}
	}
	PQclear(PQexec(c, "DROP TABLE aif_bench_floor"));
	PQfinish(c);
	if (rc == 0)
		printf("reserve_p50_ms=%.3f reserve_p99_ms=%.3f floor_p50_ms=%.3f floor_p99_ms=%.3f fits=%d\n",
		       pct(all_r, clients * n, 0.5), pct(all_r, clients * n, 0.99),
		       pct(all_f, clients * n, 0.5), pct(all_f, clients * n, 0.99), fits);
	free(all_r);
	free(all_f);
	return rc;
}

static int bench_slurm(uint32_t job, uint32_t uid, int n)
{
	double *ms = calloc((size_t)n, sizeof(double));
	struct job_cost cost = {0};
	struct aif_diag why;

	if (!ms || slurmctld_acquire() < 0)
		return 1;
	for (int i = 0; i < n; i++) {
		int64_t t0 = aif_clock_ns();
		jobcost_free(&cost);
		if (jobcost_load(job, uid, &cost, &why) < 0) {
			fprintf(stderr, "aif-reserve-bench: %s\n", why.message);
			return 1;
		}
		ms[i] = (double)(aif_clock_ns() - t0) / 1e6;
	}
	printf("rpc_p50_ms=%.3f rpc_p99_ms=%.3f gpus=%lld seconds=%lld\n", pct(ms, n, 0.5),
	       pct(ms, n, 0.99), (long long)cost.gpus, (long long)(cost.end - cost.start));
	jobcost_free(&cost);
	free(ms);
	slurmctld_release();
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 6 && strcmp(argv[1], "sql") == 0 && atoi(argv[3]) >= 1 && atoi(argv[3]) <= 16 &&
	    atoi(argv[4]) >= 1)
		return bench_sql(argv[2], atoi(argv[3]), atoi(argv[4]), argv[5]);
	if (argc == 5 && strcmp(argv[1], "slurm") == 0 && atoi(argv[4]) >= 1)
		return bench_slurm((uint32_t)strtoul(argv[2], NULL, 10),
				   (uint32_t)strtoul(argv[3], NULL, 10), atoi(argv[4]));
	fprintf(stderr, "usage: aif-reserve-bench sql CONNINFO CLIENTS(1-16) N PROJECT\n"
			"       aif-reserve-bench slurm JOB UID N\n");
	return 2;
}
