/*
 * aif-store-load: for tests and measurements, the usage writer (daemon/usage/store.c) under load.
 *
 *   aif-store-load [options] CONNINFO
 *
 * Starts a store on CONNINFO and submits M usage records in batches of B from K threads, each
 * thread keeping at most W batches unacknowledged (W = 1: a client waiting for its answer).
 * Waits for every answer, then prints one line:
 *
 *   acked N refused R batches_refused X elapsed S rate Q groups G reconnects C queue_full F
 *
 * (rate: acknowledged records per second). Record i (0 <= i < M) is fully determined by i,
 * so that a test can recompute it in SQL:
 *
 *   job = JOB_BASE + i, node = 'n' || i % 4, restart = i % 2, gpus = 1 + i % 8,
 *   start = TIME_BASE + i, end = start + 60 + i % 3600, uid = 1000 + i % 5,
 *   user = NULL when i % 7 = 0, else ('alice', 'bob', 'o"brien\x', 'd,e{f} g')[i % 4],
 *   project/sector = the (i % P)-th pair of --projects.
 *
 * Modes: start (start records), end (end records carrying their start), end-nostart (end
 * records without a start time), pair (a start and its end, in the same batch: 2 records per
 * i). --bad-every N: every N-th batch (batch index % N == N - 1) names the project
 * "no-such-project" instead. --acked-out FILE: the job ids of every acknowledged record.
 * --max-queued-bytes N: the store's bound on queued bytes; queue_full counts the submissions
 * it refused as full (each is retried a millisecond later).
 * Exit status: 0, or 1 when the store could not start, 2 on bad usage.
 */
#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store.h"

enum mode { MODE_START, MODE_END, MODE_END_NOSTART, MODE_PAIR };

struct load {
	struct store *store;
	enum mode mode;
	size_t m, batch, threads, window, bad_every;
	uint32_t job_base;
	int64_t time_base;
	const char *cluster;
	char **projects, **sectors;
	size_t nprojects;
};

struct worker {
	const struct load *load;
	size_t id;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	size_t inflight;
	size_t acked, refused, refused_batches;
	size_t queue_full; /* submissions the store refused as too many queued (then retried) */
	size_t *acked_batches; /* indices of acknowledged batches */
	size_t nacked_batches;
	struct aif_diag first_refusal;
	bool failed;
};

struct pending {
	struct worker *w;
	size_t batch, records;
};

static const char *const USERS[] = {"alice", "bob", "o\"brien\\x", "d,e{f} g"};

static void fill(const struct load *l, size_t i, bool bad, enum usage_event ev,
		 struct usage_record *r)
{
	memset(r, 0, sizeof(*r));
	r->event = ev;
	r->cluster = l->cluster;
	r->job = l->job_base + (uint32_t)i;
	r->node = (const char *[]){"n0", "n1", "n2", "n3"}[i % 4];
	r->restart = (uint32_t)(i % 2);
	r->gpus = (uint32_t)(1 + i % 8);
	r->start = l->time_base + (int64_t)i;
	r->end = r->start + 60 + (int64_t)(i % 3600);
	if (l->mode == MODE_END_NOSTART)
		r->start = USAGE_TIME_UNKNOWN;
	r->project = bad ? "no-such-project" : l->projects[i % l->nprojects];
	r->sector = l->sectors[i % l->nprojects];
	r->uid = (uint32_t)(1000 + i % 5);
	r->user = i % 7 == 0 ? NULL : USERS[i % 4];
}

static void done(void *arg, int status, const struct aif_diag *diag)
{
	struct pending *p = arg;
	struct worker *w = p->w;

	pthread_mutex_lock(&w->lock);
	if (status == 0) {
		w->acked += p->records;
		w->acked_batches[w->nacked_batches++] = p->batch;
	} else {
		if (!w->refused_batches)
			w->first_refusal = *diag;
		w->refused += p->records;
		w->refused_batches++;
	}
	w->inflight--;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
	free(p);
}

static void *work(void *arg)
{
	struct worker *w = arg;
	const struct load *l = w->load;
	size_t nbatches = (l->m + l->batch - 1) / l->batch;
	struct usage_record *recs = calloc(2 * l->batch, sizeof(*recs));

	if (!recs) {
		w->failed = true;
		return NULL;
	}
	for (size_t bi = w->id; bi < nbatches; bi += l->threads) {
		bool bad = l->bad_every && bi % l->bad_every == l->bad_every - 1;
		size_t n = 0;
		struct pending *p;
		struct aif_diag diag;

		for (size_t i = bi * l->batch; i < l->m && i < (bi + 1) * l->batch; i++) {
			if (l->mode == MODE_PAIR || l->mode == MODE_START)
				fill(l, i, bad, USAGE_START, &recs[n++]);
			if (l->mode != MODE_START)
				fill(l, i, bad, USAGE_END, &recs[n++]);
		}
		pthread_mutex_lock(&w->lock);
		while (w->inflight >= l->window)
			pthread_cond_wait(&w->cond, &w->lock);
		w->inflight++;
		pthread_mutex_unlock(&w->lock);
		p = malloc(sizeof(*p));
		if (!p) {
			w->failed = true;
			break;
		}
		p->w = w;
		p->batch = bi;
		p->records = n;
		while (store_submit(l->store, recs, n, done, p, &diag) < 0) {
			if (!strstr(diag.message, "too many")) {
				fprintf(stderr, "aif-store-load: %s\n", diag.message);
				free(p);
				w->failed = true;
				goto out;
			}
			w->queue_full++;
			nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
		}
	}
out:
	pthread_mutex_lock(&w->lock);
	if (w->failed)
		w->inflight--; /* the batch that was never submitted */
	while (w->inflight > 0)
		pthread_cond_wait(&w->cond, &w->lock);
	pthread_mutex_unlock(&w->lock);
	free(recs);
	return NULL;
}

static int write_acked(const char *path, const struct load *l, struct worker *ws)
{
	FILE *f = fopen(path, "w");

	if (!f) {
		perror(path);
		return -1;
	}
	for (size_t t = 0; t < l->threads; t++)
		for (size_t k = 0; k < ws[t].nacked_batches; k++) {
			size_t bi = ws[t].acked_batches[k];
			for (size_t i = bi * l->batch; i < l->m && i < (bi + 1) * l->batch; i++)
				fprintf(f, "%u\n", l->job_base + (uint32_t)i);
		}
	if (fclose(f) != 0) {
		perror(path);
		return -1;
	}
	return 0;
}

/* "p1:s1,p2:s2" into l->projects and l->sectors (pointing into text, modified). */
static int parse_projects(struct load *l, char *text)
{
	size_t n = 1;
	char *save = NULL;

	for (const char *c = text; *c; c++)
		n += *c == ',';
	l->projects = calloc(n, sizeof(char *));
	l->sectors = calloc(n, sizeof(char *));
	if (!l->projects || !l->sectors)
		return -1;
	for (char *tok = strtok_r(text, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(tok, ':');
		if (!colon)
			return -1;
		*colon = '\0';
		l->projects[l->nprojects] = tok;
		l->sectors[l->nprojects++] = colon + 1;
	}
	return l->nprojects ? 0 : -1;
}

static void usage(void)
{
	fprintf(stderr, "usage: aif-store-load [-n RECORDS] [-k THREADS] [-b BATCH] [-w WINDOW]\n"
			"         [--mode start|end|end-nostart|pair] [--job-base J] [--time-base T]\n"
			"         [--cluster C] [--projects P:S,...] [--bad-every N] [--flush-ms MS]\n"
			"         [--acked-out FILE] CONNINFO\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"mode", required_argument, NULL, 'm'},   {"job-base", required_argument, NULL, 'j'},
		{"time-base", required_argument, NULL, 't'}, {"cluster", required_argument, NULL, 'c'},
		{"projects", required_argument, NULL, 'p'}, {"bad-every", required_argument, NULL, 'x'},
		{"flush-ms", required_argument, NULL, 'f'}, {"acked-out", required_argument, NULL, 'o'},
		{"max-queued-bytes", required_argument, NULL, 'q'},
		{NULL, 0, NULL, 0},
	};
	struct load l = {.mode = MODE_START, .m = 10000, .batch = 1, .threads = 8, .window = 1,
			 .job_base = 1, .time_base = 1767225600, .cluster = "aiftest"};
	char default_projects[] = "genomics-eu:health";
	char *projects = default_projects;
	const char *acked_out = NULL;
	struct store_options opts;
	struct worker *ws;
	struct store_stats stats;
	struct aif_diag diag;
	struct timespec t0, t1;
	size_t acked = 0, refused = 0, refused_batches = 0, queue_full = 0;
	double elapsed;
	int c, rc = 0;

	store_options_init(&opts);
	while ((c = getopt_long(argc, argv, "n:k:b:w:", longopts, NULL)) != -1) {
		switch (c) {
		case 'n': l.m = strtoul(optarg, NULL, 10); break;
		case 'k': l.threads = strtoul(optarg, NULL, 10); break;
		case 'b': l.batch = strtoul(optarg, NULL, 10); break;
		case 'w': l.window = strtoul(optarg, NULL, 10); break;
		case 'j': l.job_base = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 't': l.time_base = strtoll(optarg, NULL, 10); break;
		case 'c': l.cluster = optarg; break;
		case 'p': projects = optarg; break;
		case 'x': l.bad_every = strtoul(optarg, NULL, 10); break;
		case 'f': opts.rollup_flush_interval_ms = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'o': acked_out = optarg; break;
		case 'q': opts.max_queued_bytes = strtoul(optarg, NULL, 10); break;
		case 'm':
			if (strcmp(optarg, "start") == 0)
				l.mode = MODE_START;
			else if (strcmp(optarg, "end") == 0)
				l.mode = MODE_END;
			else if (strcmp(optarg, "end-nostart") == 0)
				l.mode = MODE_END_NOSTART;
			else if (strcmp(optarg, "pair") == 0)
				l.mode = MODE_PAIR;
			else
				c = '?';
			break;
		default: c = '?'; break;
		}
		if (c == '?') {
			usage();
			return 2;
		}
	}
	if (optind != argc - 1 || !l.m || !l.threads || !l.batch || !l.window ||
	    parse_projects(&l, projects) < 0) {
		usage();
		free(l.projects);
		free(l.sectors);
		return 2;
	}
	if (store_start_opts(argv[optind], &opts, &l.store, &diag) < 0) {
		char buf[1200];
		fprintf(stderr, "aif-store-load: %s\n", aif_diag_format(&diag, buf, sizeof(buf)));
		free(l.projects);
		free(l.sectors);
		return 1;
	}
	ws = calloc(l.threads, sizeof(*ws));
	if (!ws) {
		store_stop(l.store);
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (size_t t = 0; t < l.threads; t++) {
		ws[t].load = &l;
		ws[t].id = t;
		ws[t].acked_batches = calloc(l.m / l.batch + 1, sizeof(size_t));
		pthread_mutex_init(&ws[t].lock, NULL);
		pthread_cond_init(&ws[t].cond, NULL);
		if (!ws[t].acked_batches || pthread_create(&ws[t].thread, NULL, work, &ws[t]) != 0) {
			fprintf(stderr, "aif-store-load: could not start thread %zu\n", t);
			return 1;
		}
	}
	for (size_t t = 0; t < l.threads; t++)
		pthread_join(ws[t].thread, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	store_get_stats(l.store, &stats);
	store_stop(l.store);
	elapsed = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;

	for (size_t t = 0; t < l.threads; t++) {
		acked += ws[t].acked;
		refused += ws[t].refused;
		if (ws[t].refused_batches && !refused_batches) {
			char buf[1200];
			fprintf(stderr, "aif-store-load: refused: %s\n",
				aif_diag_format(&ws[t].first_refusal, buf, sizeof(buf)));
		}
		refused_batches += ws[t].refused_batches;
		queue_full += ws[t].queue_full;
		if (ws[t].failed)
			rc = 1;
	}
	printf("acked %zu refused %zu batches_refused %zu elapsed %.3f rate %.0f groups %llu "
	       "reconnects %llu queue_full %zu\n",
	       acked, refused, refused_batches, elapsed, elapsed > 0 ? (double)acked / elapsed : 0.0,
	       (unsigned long long)stats.groups, (unsigned long long)stats.reconnects, queue_full);
	if (acked_out && write_acked(acked_out, &l, ws) < 0)
		rc = 1;
	for (size_t t = 0; t < l.threads; t++) {
		free(ws[t].acked_batches);
		pthread_mutex_destroy(&ws[t].lock);
		pthread_cond_destroy(&ws[t].cond);
	}
	free(ws);
	free(l.projects);
	free(l.sectors);
	return rc;
}
