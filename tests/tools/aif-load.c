/*
 * aif-load: for tests and benchmarks, a concurrent load on aifd over protocol 1 with real MUNGE
 * (lib/aif_client). One thread per client, each with its own connection and MUNGE context,
 * each sending its next request once the previous one is answered (as the plugin does).
 *
 *   aif-load --server=S [--munge-socket=M] [--cluster=C] [--clients=N]
 *            [--mode=check|usage|munge-decode] [--requests=N | --duration=SECONDS]
 *            [--records=R] [--event=start|end|both] [--project=P] [--sector=S]
 *            [--first-job=J] [--time-base=T] [--gpus=G] [--acked-log=FILE]
 *            [--retry-for=SECONDS] [--timeout=MS]
 *
 * check: submit-time checks of project P (sector S, if given) by the MUNGE uid of aif-load.
 * usage: R usage records per request. Request i of client c is job J + c + N * i (so that the
 *   job ids of every request are unique; a run uses [J, J + N * requests)), on nodes n0, n1,
 *   ...: one node per record, or per start/end pair with --event=both (R even: each request
 *   carries the start and the end of R/2 intervals). restart=0, gpus=G, uid and user of
 *   aif-load; start = T + job % 1800, end = start + 1800 (T: an hour ago by default); end
 *   records carry start= too, so that an end alone is a whole interval.
 *   --acked-log: after each ok answer, one line per acknowledged record, "job node restart
 *   event", written with one write() per request: what a durability test may trust.
 * munge-decode: no aifd. Encodes 2N credentials of a check request's size (N = --requests,
 *   with --clients threads), then decodes N of them with 1 thread and the other N with
 *   --clients threads, through the same munged: the floor of aifd's request rate. Last, N
 *   more are encoded and decoded one after the other by --clients threads: MUNGE's share of
 *   a request when the clients run on aifd's host (the credential is made there too).
 *
 * A request that gets no answer, or an error or refuse answer, counts as an error, unless
 * --retry-for is given: then the same records are sent again with a new credential (and a new
 * nonce) every 50 ms, for up to that many seconds from the first failure.
 *
 * Prints one line of key=value: requests (answered ok or warn), records_acked, errors (given
 * up), retries, elapsed (s), request_rate and record_rate (per second), last_job; for check,
 * the latency percentiles in ms of the whole request (p50_ms, p99_ms, max_ms, credential
 * included) and of aifd's part (aifd_p50_ms, aifd_p99_ms: from the credential made to the
 * answer read). munge-decode prints encode_rate, decode_rate_1, decode_rate_N and
 * encode_decode_rate_N (per second, N = --clients). The first failure seen goes to stderr.
 *
 * Exit status: 0 when every request was answered ok or warn (usage: ok, every record
 * acknowledged), if need be after retries; 1 otherwise; 2 on bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <munge.h>

#include "aif_client.h"
#include "aif_clock.h"
#include "aif_proto.h"

#define RETRY_PAUSE_MS 50
#define INTERVAL_SECONDS 1800

enum mode { MODE_CHECK, MODE_USAGE, MODE_MUNGE_DECODE };
enum event { EVENT_START, EVENT_END, EVENT_BOTH };

struct settings {
	const char *server, *munge_socket, *cluster, *project, *sector, *acked_log;
	enum mode mode;
	enum event event;
	unsigned clients;
	uint64_t requests;     /* per client; 0 with a duration */
	int64_t deadline_ns;   /* with --duration; 0 otherwise */
	unsigned records;      /* per usage request */
	uint32_t first_job;
	uint64_t time_base;
	unsigned gpus;
	int64_t retry_for_ns;
	unsigned long timeout_ms;
	uid_t uid;
	char user[64];
	int acked_fd;
	char **creds; /* munge-decode: 3 * requests credentials */
};

struct client {
	const struct settings *s;
	unsigned index;
	pthread_t thread;
	munge_ctx_t munge;
	int64_t encoded_ns; /* when the credential of the current attempt was made */
	uint64_t requests, records_acked, errors, retries;
	uint32_t last_job;
	uint64_t *latency_ns, *aifd_ns; /* per answered check */
	size_t nlatencies, caplatencies;
	size_t from, to; /* munge-decode: this thread's slice of s->creds */
	char first_error[1200];
	bool failed; /* could not go on (setup, --acked-log, job ids used up) */
};

static void sleep_ms(long ms)
{
	nanosleep(&(struct timespec){.tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000}, NULL);
}

/* Keep the first error of a client, to report it at the end. */
static void note_error(struct client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note_error(struct client *c, const char *fmt, ...)
{
	va_list ap;

	if (c->first_error[0])
		return;
	va_start(ap, fmt);
	vsnprintf(c->first_error, sizeof(c->first_error), fmt, ap);
	va_end(ap);
}

static munge_ctx_t munge_context(const char *socket, char *err, size_t errsize)
{
	munge_ctx_t ctx = munge_ctx_create();

	if (!ctx) {
		snprintf(err, errsize, "munge: could not create a context");
		return NULL;
	}
	if (socket && munge_ctx_set(ctx, MUNGE_OPT_SOCKET, socket) != EMUNGE_SUCCESS) {
		snprintf(err, errsize, "munge: %s", munge_ctx_strerror(ctx));
		munge_ctx_destroy(ctx);
		return NULL;
	}
	return ctx;
}

/* The client's encoder: munge_encode() on the thread's context, noting when it was done. */
static int encode_credential(void *arg, const char *payload, size_t len, char **cred,
			     struct aif_diag *diag)
{
	struct client *c = arg;
	munge_err_t e = munge_encode(cred, c->munge, payload, (int)len);

	if (e != EMUNGE_SUCCESS) {
		const char *why = munge_ctx_strerror(c->munge);
		aif_diag_clear(diag);
		aif_diag_message(diag, "munge: %s", why ? why : munge_strerror(e));
		return -1;
	}
	c->encoded_ns = aif_clock_ns();
	return 0;
}

static int keep_latency(struct client *c, uint64_t total_ns, uint64_t aifd_ns)
{
	if (c->nlatencies == c->caplatencies) {
		size_t cap = c->caplatencies ? 2 * c->caplatencies : 1024;
		uint64_t *t = realloc(c->latency_ns, cap * sizeof(*t));
		if (!t)
			return -1;
		c->latency_ns = t;
		t = realloc(c->aifd_ns, cap * sizeof(*t));
		if (!t)
			return -1;
		c->aifd_ns = t;
		c->caplatencies = cap;
	}
	c->latency_ns[c->nlatencies] = total_ns;
	c->aifd_ns[c->nlatencies++] = aifd_ns;
	return 0;
}

/* Request i of this client: its job id, or 0 when the 32-bit job ids are used up. */
static uint32_t job_of(const struct client *c, uint64_t i)
{
	uint64_t job = c->s->first_job + c->index + (uint64_t)c->s->clients * i;
	return job > UINT32_MAX ? 0 : (uint32_t)job;
}

static int add_usage_record(struct aif_proto_msg *m, const struct settings *s, uint32_t job,
			    unsigned node, bool end)
{
	struct aif_proto_block *r = aif_proto_add_record(m);
	uint64_t start = s->time_base + job % INTERVAL_SECONDS;

	if (!r || aif_proto_set(r, "event", end ? "end" : "start") < 0 ||
	    aif_proto_set_u64(r, "job", job) < 0 || aif_proto_setf(r, "node", "n%u", node) < 0 ||
	    aif_proto_set(r, "restart", "0") < 0 || aif_proto_set_u64(r, "gpus", s->gpus) < 0 ||
	    aif_proto_set_u64(r, "time", end ? start + INTERVAL_SECONDS : start) < 0 ||
	    (end && aif_proto_set_u64(r, "start", start) < 0) ||
	    aif_proto_set(r, "project", s->project) < 0 ||
	    (s->sector && aif_proto_set(r, "sector", s->sector) < 0) ||
	    aif_proto_set_u64(r, "uid", s->uid) < 0 ||
	    (s->user[0] && aif_proto_set(r, "user", s->user) < 0))
		return -1;
	return 0;
}

/* The request: a check, or the usage records of job (a node per record or per pair). */
static int build_request(const struct settings *s, uint32_t job, struct aif_proto_msg *m)
{
	aif_proto_msg_init(m, s->mode == MODE_CHECK ? AIF_PROTO_CHECK : AIF_PROTO_USAGE);
	if (aif_proto_set(&m->header, "cluster", s->cluster) < 0)
		return -1;
	if (s->mode == MODE_CHECK) {
		if ((s->project && aif_proto_set(&m->header, "project", s->project) < 0) ||
		    (s->sector && aif_proto_set(&m->header, "sector", s->sector) < 0))
			return -1;
		return 0;
	}
	for (unsigned k = 0; k < s->records; k++) {
		bool end = s->event == EVENT_END || (s->event == EVENT_BOTH && k % 2 == 1);
		unsigned node = s->event == EVENT_BOTH ? k / 2 : k;
		if (add_usage_record(m, s, job, node, end) < 0)
			return -1;
	}
	return 0;
}

/* "job node restart event" per record, in one write(), so that a line is never half there. */
static int log_acked(const struct settings *s, const struct aif_proto_msg *m)
{
	size_t size = m->nrecords * 96 + 1, len = 0;
	char *buf = malloc(size);
	ssize_t n;

	if (!buf)
		return -1;
	for (size_t i = 0; i < m->nrecords; i++)
		len += (size_t)snprintf(buf + len, size - len, "%s %s %s %s\n",
					aif_proto_get(&m->records[i], "job"),
					aif_proto_get(&m->records[i], "node"),
					aif_proto_get(&m->records[i], "restart"),
					aif_proto_get(&m->records[i], "event"));
	n = write(s->acked_fd, buf, len);
	free(buf);
	return n == (ssize_t)len ? 0 : -1;
}

/* Is this answer a success? For usage: ok, with every record acknowledged. */
static bool answered_well(const struct aif_proto_msg *req, const struct aif_proto_msg *res)
{
	uint64_t acked;

	if (req->kind == AIF_PROTO_CHECK)
		return res->kind == AIF_PROTO_OK || res->kind == AIF_PROTO_WARN;
	return res->kind == AIF_PROTO_OK &&
	       aif_proto_get_u64(&res->header, "acked", AIF_PROTO_MAX_RECORDS, &acked, NULL) == 0 &&
	       acked == req->nrecords;
}

/* Send one request until it is answered well, or retrying is over. true: answered well. */
static bool send_request(struct client *c, struct aif_client *ac, const struct aif_proto_msg *req)
{
	const struct settings *s = c->s;
	int64_t started = aif_clock_ns(), first_failure = 0;

	for (;;) {
		struct aif_proto_msg res;
		struct aif_diag diag;
		int rc = aif_client_request(ac, req, &res, &diag);
		int64_t answered = aif_clock_ns();
		bool well = rc == 0 && answered_well(req, &res);

		if (well && req->kind == AIF_PROTO_CHECK &&
		    keep_latency(c, (uint64_t)(answered - started), (uint64_t)(answered - c->encoded_ns)) < 0) {
			note_error(c, "%s", "out of memory");
			c->failed = true;
		}
		if (!well) {
			char buf[1200];
			if (rc == 0)
				aif_proto_response_diag(&res, &diag);
			note_error(c, "%s", aif_diag_format(&diag, buf, sizeof(buf)));
		}
		aif_proto_msg_free(&res);
		if (well)
			return true;
		if (!first_failure)
			first_failure = answered;
		if (answered - first_failure >= s->retry_for_ns)
			return false;
		c->retries++;
		sleep_ms(RETRY_PAUSE_MS);
	}
}

static bool more_requests(const struct client *c, uint64_t i)
{
	const struct settings *s = c->s;
	return s->deadline_ns ? aif_clock_ns() < s->deadline_ns : i < s->requests;
}

static void *run_client(void *arg)
{
	struct client *c = arg;
	const struct settings *s = c->s;
	struct aif_client_options opts = {.server = s->server, .timeout_ms = s->timeout_ms,
					  .encode = encode_credential, .encode_arg = c};
	struct aif_client *ac;
	struct aif_diag diag;

	ac = aif_client_new(&opts, &diag);
	if (!ac) {
		char buf[1200];
		note_error(c, "%s", aif_diag_format(&diag, buf, sizeof(buf)));
		c->failed = true;
		return NULL;
	}
	for (uint64_t i = 0; more_requests(c, i) && !c->failed; i++) {
		struct aif_proto_msg req;
		uint32_t job = s->mode == MODE_USAGE ? job_of(c, i) : 0;

		if (s->mode == MODE_USAGE && job == 0) {
			note_error(c, "%s", "job ids exhausted: use a lower --first-job or fewer requests");
			c->failed = true;
			break;
		}
		if (build_request(s, job, &req) < 0) {
			note_error(c, "could not build a request: %s", strerror(errno));
			c->failed = true;
		} else if (!send_request(c, ac, &req)) {
			c->errors++;
		} else {
			c->requests++;
			c->records_acked += req.nrecords;
			if (job)
				c->last_job = job;
			if (s->acked_fd >= 0 && log_acked(s, &req) < 0) {
				note_error(c, "could not write to the --acked-log file: %s", strerror(errno));
				c->failed = true;
			}
		}
		aif_proto_msg_free(&req);
	}
	aif_client_free(ac);
	return NULL;
}

/* Encode credential i, with the payload of a check request. */
static void encode_one(struct client *c, size_t i)
{
	char payload[256];
	int len = snprintf(payload, sizeof(payload),
			   "AIF/1 check\nnonce=0123456789abcdef\ncluster=%s\nproject=%s\n",
			   c->s->cluster, c->s->project ? c->s->project : "p");
	munge_err_t e = munge_encode(&c->s->creds[i], c->munge, payload, len);

	if (e != EMUNGE_SUCCESS) {
		note_error(c, "munge: %s", munge_strerror(e));
		c->failed = true;
	}
}

/* munge-decode, first step: encode this thread's slice of the credentials. */
static void *encode_slice(void *arg)
{
	struct client *c = arg;

	for (size_t i = c->from; i < c->to && !c->failed; i++)
		encode_one(c, i);
	return NULL;
}

/* Decode one credential as aifd's workers do; count it as decoded or failed. */
static void decode_one(struct client *c, const char *cred)
{
	void *payload = NULL;
	int len;
	uid_t uid;
	gid_t gid;
	munge_err_t e = munge_decode(cred, c->munge, &payload, &len, &uid, &gid);

	if (e == EMUNGE_SUCCESS && uid == c->s->uid) {
		c->requests++;
	} else {
		note_error(c, "munge: %s", e == EMUNGE_SUCCESS ? "wrong uid" : munge_strerror(e));
		c->errors++;
	}
	free(payload);
}

/* munge-decode, then: decode this thread's slice of the credentials made before. */
static void *decode_slice(void *arg)
{
	struct client *c = arg;

	for (size_t i = c->from; i < c->to; i++)
		decode_one(c, c->s->creds[i]);
	return NULL;
}

/* munge-decode, last: encode and decode, as a client and aifd on one host do per request. */
static void *encode_decode_slice(void *arg)
{
	struct client *c = arg;

	for (size_t i = c->from; i < c->to && !c->failed; i++) {
		encode_one(c, i);
		if (!c->failed)
			decode_one(c, c->s->creds[i]);
	}
	return NULL;
}

/* Run fn on the first n clients, each on the slice [from, to) of count items. */
static double run_threads(struct client *cs, unsigned n, size_t offset, size_t count,
			  void *(*fn)(void *))
{
	int64_t t0 = aif_clock_ns();
	unsigned started;

	for (started = 0; started < n; started++) {
		cs[started].from = offset + count * started / n;
		cs[started].to = offset + count * (started + 1) / n;
		if (pthread_create(&cs[started].thread, NULL, fn, &cs[started]) != 0) {
			note_error(&cs[started], "%s", "could not start a thread");
			cs[started].failed = true;
			break;
		}
	}
	for (unsigned i = 0; i < started; i++)
		pthread_join(cs[i].thread, NULL);
	return (double)(aif_clock_ns() - t0) / 1e9;
}

static int compare_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* The q-quantile of n sorted values, in ms. */
static double quantile_ms(const uint64_t *sorted, size_t n, double q)
{
	size_t k = (size_t)(q * (double)n);
	return n ? (double)sorted[k < n ? k : n - 1] / 1e6 : 0.0;
}

/* Every client's latencies of one kind (total or aifd's part), sorted. NULL on ENOMEM. */
static uint64_t *sorted_latencies(const struct client *cs, unsigned n, bool aifd_part, size_t *count)
{
	size_t total = 0, k = 0;
	uint64_t *all;

	for (unsigned i = 0; i < n; i++)
		total += cs[i].nlatencies;
	all = malloc((total ? total : 1) * sizeof(*all));
	if (!all)
		return NULL;
	for (unsigned i = 0; i < n; i++) {
		if (!cs[i].nlatencies)
			continue; /* no array to copy from */
		memcpy(all + k, aifd_part ? cs[i].aifd_ns : cs[i].latency_ns,
		       cs[i].nlatencies * sizeof(*all));
		k += cs[i].nlatencies;
	}
	qsort(all, total, sizeof(*all), compare_u64);
	*count = total;
	return all;
}

static int print_latencies(const struct client *cs, unsigned n)
{
	size_t count;
	uint64_t *total = sorted_latencies(cs, n, false, &count);
	uint64_t *aifd = total ? sorted_latencies(cs, n, true, &count) : NULL;

	if (!aifd) {
		free(total);
		return -1;
	}
	printf(" p50_ms=%.3f p99_ms=%.3f max_ms=%.3f aifd_p50_ms=%.3f aifd_p99_ms=%.3f",
	       quantile_ms(total, count, 0.50), quantile_ms(total, count, 0.99),
	       count ? (double)total[count - 1] / 1e6 : 0.0, quantile_ms(aifd, count, 0.50),
	       quantile_ms(aifd, count, 0.99));
	free(total);
	free(aifd);
	return 0;
}

/* Report the first error seen; true when any client failed or gave up on a request. */
static bool report_errors(const struct client *cs, unsigned n)
{
	bool any = false;

	for (unsigned i = 0; i < n; i++) {
		bool failed = cs[i].failed || cs[i].errors > 0;
		if (failed && !any)
			fprintf(stderr, "aif-load: client %u: %s\n", i, cs[i].first_error);
		any |= failed;
	}
	/* Failures that retrying got past: the first one, for the record. */
	for (unsigned i = 0; i < n && !any; i++)
		if (cs[i].first_error[0]) {
			fprintf(stderr, "aif-load: client %u, retried after: %s\n", i, cs[i].first_error);
			break;
		}
	return any;
}

static int run_munge_decode(struct settings *s, struct client *cs)
{
	size_t n = (size_t)s->requests;
	double t_encode;
	int rc;

	s->creds = calloc(3 * n, sizeof(char *));
	if (!s->creds) {
		fprintf(stderr, "aif-load: out of memory\n");
		return 1;
	}
	t_encode = run_threads(cs, s->clients, 0, 2 * n, encode_slice);
	rc = report_errors(cs, s->clients) ? 1 : 0;
	if (rc == 0) {
		/* Different credentials in each pass: munged refuses a credential decoded before. */
		double t_one = run_threads(cs, 1, 0, n, decode_slice);
		double t_many = run_threads(cs, s->clients, n, n, decode_slice);
		double t_both = run_threads(cs, s->clients, 2 * n, n, encode_decode_slice);
		uint64_t decoded = 0;

		for (unsigned i = 0; i < s->clients; i++)
			decoded += cs[i].requests;
		rc = report_errors(cs, s->clients) ? 1 : 0;
		printf("mode=munge-decode credentials=%zu decoded=%llu encode_rate=%.0f "
		       "decode_rate_1=%.0f decode_rate_%u=%.0f encode_decode_rate_%u=%.0f\n",
		       3 * n, (unsigned long long)decoded, (double)(2 * n) / t_encode,
		       (double)n / t_one, s->clients, (double)n / t_many, s->clients,
		       (double)n / t_both);
	}
	for (size_t i = 0; i < 3 * n; i++)
		free(s->creds[i]);
	free(s->creds);
	return rc;
}

static int run_load(const struct settings *s, struct client *cs)
{
	uint64_t requests = 0, acked = 0, errors = 0, retries = 0;
	uint32_t last_job = 0;
	double elapsed = run_threads(cs, s->clients, 0, 0, run_client);
	int rc = report_errors(cs, s->clients) ? 1 : 0;

	for (unsigned i = 0; i < s->clients; i++) {
		requests += cs[i].requests;
		acked += s->mode == MODE_USAGE ? cs[i].records_acked : 0;
		errors += cs[i].errors;
		retries += cs[i].retries;
		last_job = cs[i].last_job > last_job ? cs[i].last_job : last_job;
	}
	printf("mode=%s clients=%u requests=%llu records_acked=%llu errors=%llu retries=%llu "
	       "elapsed=%.3f request_rate=%.0f record_rate=%.0f last_job=%lu",
	       s->mode == MODE_CHECK ? "check" : "usage", s->clients, (unsigned long long)requests,
	       (unsigned long long)acked, (unsigned long long)errors, (unsigned long long)retries,
	       elapsed, (double)requests / elapsed, (double)acked / elapsed, (unsigned long)last_job);
	if (s->mode == MODE_CHECK && print_latencies(cs, s->clients) < 0) {
		fprintf(stderr, "aif-load: out of memory\n");
		rc = 1;
	}
	printf("\n");
	return rc;
}

static int usage(const char *why)
{
	if (why)
		fprintf(stderr, "aif-load: %s\n", why);
	fprintf(stderr,
		"usage: aif-load --server=S [--munge-socket=M] [--cluster=C] [--clients=N]\n"
		"                [--mode=check|usage|munge-decode] [--requests=N | --duration=SECONDS]\n"
		"                [--records=R] [--event=start|end|both] [--project=P] [--sector=S]\n"
		"                [--first-job=J] [--time-base=T] [--gpus=G] [--acked-log=FILE]\n"
		"                [--retry-for=SECONDS] [--timeout=MS]\n"
		"  --requests is per client (default 1000); --records is per usage request (default 1;\n"
		"  even with --event=both). munge-decode needs no --server. See the source for more.\n");
	return 2;
}

static bool parse_number(const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
	return aif_proto_parse_u64(text, max, out) == 0 && *out >= min;
}

static bool parse_seconds(const char *text, int64_t *out_ns)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(text, &end);
	if (errno || end == text || *end || !(v >= 0 && v <= 86400.0 * 365))
		return false;
	*out_ns = (int64_t)(v * 1e9);
	return true;
}

static bool parse_word(const char *text, const char *const *words, size_t n, unsigned *out)
{
	for (unsigned i = 0; i < n; i++)
		if (strcmp(text, words[i]) == 0) {
			*out = i;
			return true;
		}
	return false;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"server", required_argument, NULL, 's'},    {"munge-socket", required_argument, NULL, 'm'},
		{"cluster", required_argument, NULL, 'c'},   {"clients", required_argument, NULL, 'n'},
		{"mode", required_argument, NULL, 'M'},      {"requests", required_argument, NULL, 'r'},
		{"duration", required_argument, NULL, 'd'},  {"records", required_argument, NULL, 'R'},
		{"event", required_argument, NULL, 'e'},     {"project", required_argument, NULL, 'p'},
		{"sector", required_argument, NULL, 'S'},    {"first-job", required_argument, NULL, 'j'},
		{"time-base", required_argument, NULL, 'T'}, {"gpus", required_argument, NULL, 'g'},
		{"acked-log", required_argument, NULL, 'a'}, {"retry-for", required_argument, NULL, 'x'},
		{"timeout", required_argument, NULL, 't'},   {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	static const char *const modes[] = {"check", "usage", "munge-decode"};
	static const char *const events[] = {"start", "end", "both"};
	struct settings s = {.cluster = "aiftest", .clients = 1, .records = 1, .first_job = 1,
			     .gpus = 4, .acked_fd = -1};
	const struct passwd *pw;
	struct client *cs;
	int64_t duration_ns = 0;
	uint64_t v = 0;
	unsigned word = 0;
	bool ok = true;
	int ch, rc, longindex = 0;

	s.time_base = (uint64_t)time(NULL) - 3600;
	while ((ch = getopt_long(argc, argv, "", longopts, &longindex)) != -1) {
		switch (ch) {
		case 's': s.server = optarg; break;
		case 'm': s.munge_socket = optarg; break;
		case 'c': s.cluster = optarg; break;
		case 'p': s.project = optarg; break;
		case 'S': s.sector = optarg; break;
		case 'a': s.acked_log = optarg; break;
		case 'n': ok = parse_number(optarg, 1, 4096, &v); s.clients = (unsigned)v; break;
		case 'r': ok = parse_number(optarg, 1, UINT32_MAX, &s.requests); break;
		case 'R': ok = parse_number(optarg, 1, AIF_PROTO_MAX_RECORDS, &v); s.records = (unsigned)v; break;
		case 'j': ok = parse_number(optarg, 1, UINT32_MAX, &v); s.first_job = (uint32_t)v; break;
		case 'T': ok = parse_number(optarg, 0, UINT32_MAX, &s.time_base); break;
		case 'g': ok = parse_number(optarg, 0, UINT32_MAX, &v); s.gpus = (unsigned)v; break;
		case 't': ok = parse_number(optarg, 1, 3600000, &v); s.timeout_ms = (unsigned long)v; break;
		case 'd': ok = parse_seconds(optarg, &duration_ns) && duration_ns > 0; break;
		case 'x': ok = parse_seconds(optarg, &s.retry_for_ns); break;
		case 'M': ok = parse_word(optarg, modes, 3, &word); s.mode = (enum mode)word; break;
		case 'e': ok = parse_word(optarg, events, 3, &word); s.event = (enum event)word; break;
		case 'h': usage(NULL); return 0;
		default: return usage(NULL);
		}
		if (!ok) {
			fprintf(stderr, "aif-load: invalid value for --%s: \"%s\"\n",
				longopts[longindex].name, optarg);
			return usage(NULL);
		}
	}
	if (optind != argc)
		return usage("unexpected arguments");
	if (s.mode != MODE_MUNGE_DECODE && !s.server)
		return usage("--server is required");
	if (s.requests && duration_ns)
		return usage("give --requests or --duration, not both");
	if (s.mode == MODE_MUNGE_DECODE && duration_ns)
		return usage("munge-decode takes --requests, not --duration");
	if (s.mode == MODE_USAGE && !s.project)
		return usage("usage needs --project");
	if (s.mode == MODE_USAGE && s.event == EVENT_BOTH && s.records % 2)
		return usage("--event=both needs an even --records (a start and an end per interval)");
	if (s.acked_log && s.mode != MODE_USAGE)
		return usage("--acked-log is for --mode=usage");
	if (!s.requests && !duration_ns)
		s.requests = 1000;
	if (s.mode == MODE_USAGE && s.requests &&
	    s.first_job + (uint64_t)s.clients * s.requests - 1 > UINT32_MAX)
		return usage("job ids would go beyond 4294967295: lower --first-job or --requests");

	s.uid = getuid();
	pw = getpwuid(s.uid); /* before any thread starts */
	if (pw)
		snprintf(s.user, sizeof(s.user), "%s", pw->pw_name);
	if (s.acked_log) {
		s.acked_fd = open(s.acked_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (s.acked_fd < 0) {
			fprintf(stderr, "aif-load: could not open file \"%s\": %s\n", s.acked_log,
				strerror(errno));
			return 1;
		}
	}
	cs = calloc(s.clients, sizeof(*cs));
	if (!cs) {
		fprintf(stderr, "aif-load: out of memory\n");
		return 1;
	}
	rc = 0;
	for (unsigned i = 0; i < s.clients && rc == 0; i++) {
		cs[i].s = &s;
		cs[i].index = i;
		cs[i].munge = munge_context(s.munge_socket, cs[i].first_error, sizeof(cs[i].first_error));
		if (!cs[i].munge) {
			fprintf(stderr, "aif-load: %s\n", cs[i].first_error);
			rc = 1;
		}
	}
	if (rc == 0) {
		if (duration_ns)
			s.deadline_ns = aif_clock_ns() + duration_ns;
		rc = s.mode == MODE_MUNGE_DECODE ? run_munge_decode(&s, cs) : run_load(&s, cs);
	}
	for (unsigned i = 0; i < s.clients; i++) {
		if (cs[i].munge)
			munge_ctx_destroy(cs[i].munge);
		free(cs[i].latency_ns);
		free(cs[i].aifd_ns);
	}
	free(cs);
	if (s.acked_fd >= 0 && close(s.acked_fd) < 0) {
		fprintf(stderr, "aif-load: could not write file \"%s\": %s\n", s.acked_log,
			strerror(errno));
		rc = 1;
	}
	return rc;
}
