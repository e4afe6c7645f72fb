/*
 * Unit tests for lib/aif_spool.c (the node's durable spool of usage records), flushing to a
 * small fake aifd: a server thread in this process answering ok, error or refuse, or nothing.
 * No munged: the client's encode is replaced.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "aif_client.h"
#include "aif_proto.h"
#include "aif_spool.h"
#include "fake_server.h"

/* ---- a fake aifd ---- */

enum mode {
	ANSWER_OK,
	ANSWER_ERROR,
	ANSWER_REFUSE,      /* refuses every request with a record of project "nope", naming it as aifd does */
	ANSWER_REFUSE_VAGUE, /* the same, without saying which record */
	ANSWER_NOTHING,     /* reads requests, never answers */
};

#define MAX_SEEN 2000

struct fake_aifd {
	enum mode mode;
	struct fake_server net;
	bool failed; /* cmocka's asserts belong to the main thread: the server only records */
	int requests;
	int records_per_request[64];
	int stored; /* records of requests answered ok */
	unsigned stored_jobs[MAX_SEEN];
};

/* The answer to one valid usage request. */
static void answer(struct fake_aifd *s, const struct aif_proto_msg *req, struct aif_proto_msg *ans)
{
	size_t refused = 0;

	for (size_t i = 0; i < req->nrecords && !refused; i++) {
		const char *p = aif_proto_get(&req->records[i], "project");
		if (p && strcmp(p, "nope") == 0)
			refused = i + 1;
	}
	aif_proto_msg_init(ans, AIF_PROTO_OK);
	if (s->mode == ANSWER_ERROR) {
		ans->kind = AIF_PROTO_ERROR;
		aif_proto_set(&ans->header, "message", "could not store usage records: the database is unavailable");
	} else if (refused && s->mode == ANSWER_REFUSE) {
		ans->kind = AIF_PROTO_REFUSE;
		aif_proto_setf(&ans->header, "message", "usage record %zu (job %s, node %s): unknown project \"nope\"",
			       refused, aif_proto_get(&req->records[refused - 1], "job"),
			       aif_proto_get(&req->records[refused - 1], "node"));
	} else if (refused && s->mode == ANSWER_REFUSE_VAGUE) {
		ans->kind = AIF_PROTO_REFUSE;
		aif_proto_set(&ans->header, "message", "something in this request is wrong");
	}
	aif_proto_set(&ans->header, "nonce", aif_proto_get(&req->header, "nonce"));
	aif_proto_set_u64(&ans->header, "acked", ans->kind == AIF_PROTO_OK ? req->nrecords : 0);
	if (ans->kind != AIF_PROTO_OK)
		return;
	for (size_t i = 0; i < req->nrecords; i++) {
		uint64_t job;
		aif_proto_get_u64(&req->records[i], "job", UINT32_MAX, &job, NULL);
		if (s->stored < MAX_SEEN)
			s->stored_jobs[s->stored] = (unsigned)job;
		s->stored++;
	}
}

static void serve_connection(void *arg, int fd)
{
	struct fake_aifd *s = arg;

	for (;;) {
		struct aif_proto_msg req, ans;
		int rc = fake_server_read(fd, &req, NULL, 0);
		if (rc > 0 && req.kind != AIF_PROTO_USAGE) {
			aif_proto_msg_free(&req);
			rc = -1;
		}
		if (rc < 0)
			s->failed = true;
		if (rc <= 0)
			return;
		if (s->requests < 64)
			s->records_per_request[s->requests] = (int)req.nrecords;
		s->requests++;
		if (s->mode == ANSWER_NOTHING) {
			aif_proto_msg_free(&req);
			continue; /* until the client gives up and closes */
		}
		answer(s, &req, &ans);
		rc = fake_server_reply(fd, &ans);
		aif_proto_msg_free(&req);
		aif_proto_msg_free(&ans);
		if (rc < 0)
			return;
	}
}

static void server_start(struct fake_aifd *s, enum mode mode)
{
	memset(s, 0, sizeof(*s));
	s->mode = mode;
	fake_server_start(&s->net, false, serve_connection, s);
}

/* Call after the client is freed: the server thread then sees the connection end. */
static void server_stop(struct fake_aifd *s)
{
	fake_server_stop(&s->net);
	assert_false(s->failed);
}

static struct aif_client *client_for(const char *address, unsigned long timeout_ms)
{
	struct aif_client_options o = {.server = address, .timeout_ms = timeout_ms, .encode = fake_encode};
	struct aif_diag d;
	struct aif_client *c = aif_client_new(&o, &d);
	if (!c)
		fail_msg("aif_client_new: %s", d.message);
	return c;
}

/* ---- the spool directory ---- */

struct spool {
	char base[64]; /* a private parent, so that the spool itself can be created by put */
	char dir[96];
};

/* On tmpfs when there is one: fsync() costs nothing there, and the tests put hundreds of files. */
static int setup(void **state)
{
	struct spool *sp = calloc(1, sizeof(*sp));
	if (!sp)
		return -1;
	strcpy(sp->base, "/dev/shm/aif-test-spool.XXXXXX");
	if (!mkdtemp(sp->base)) {
		strcpy(sp->base, "/tmp/aif-test-spool.XXXXXX");
		if (!mkdtemp(sp->base)) {
			free(sp);
			return -1;
		}
	}
	snprintf(sp->dir, sizeof(sp->dir), "%s/spool", sp->base);
	*state = sp;
	return 0;
}

static void remove_tree(const char *path)
{
	DIR *d = opendir(path);
	const struct dirent *de;

	if (!d) {
		unlink(path);
		return;
	}
	while ((de = readdir(d))) {
		char sub[512];
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
		remove_tree(sub);
	}
	closedir(d);
	rmdir(path);
}

static int teardown(void **state)
{
	struct spool *sp = *state;
	remove_tree(sp->base);
	free(sp);
	return 0;
}

/* The names in dir ending with suffix (NULL: every name but "." and ".."), sorted, one per line. */
static char *names(const char *dir, const char *suffix)
{
	static char out[8192];
	char *list[512];
	size_t n = 0, pos = 0;
	const struct dirent *de;
	DIR *d = opendir(dir);

	out[0] = '\0';
	if (!d)
		return out;
	while ((de = readdir(d)) && n < 512) {
		size_t len = strlen(de->d_name);
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (suffix && (len < strlen(suffix) || strcmp(de->d_name + len - strlen(suffix), suffix) != 0))
			continue;
		list[n++] = strdup(de->d_name);
	}
	closedir(d);
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			if (strcmp(list[j], list[i]) < 0) {
				char *t = list[i];
				list[i] = list[j];
				list[j] = t;
			}
	for (size_t i = 0; i < n; i++) {
		pos += (size_t)snprintf(out + pos, sizeof(out) - pos, "%s%s", i ? "\n" : "", list[i]);
		free(list[i]);
	}
	return out;
}

static size_t count(const char *dir, const char *suffix)
{
	const char *s = names(dir, suffix);
	size_t n = *s ? 1 : 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* A usage record: job, node and event as given, the other required fields fixed. */
static void make_record(struct aif_proto_block *b, unsigned job, const char *node, const char *event,
			const char *project)
{
	memset(b, 0, sizeof(*b));
	assert_int_equal(aif_proto_set(b, "event", event), 0);
	assert_int_equal(aif_proto_setf(b, "job", "%u", job), 0);
	assert_int_equal(aif_proto_set(b, "node", node), 0);
	assert_int_equal(aif_proto_set(b, "restart", "0"), 0);
	assert_int_equal(aif_proto_set(b, "gpus", "4"), 0);
	assert_int_equal(aif_proto_set(b, "time", "1767225600"), 0);
	assert_int_equal(aif_proto_set(b, "uid", "1001"), 0);
	if (project)
		assert_int_equal(aif_proto_set(b, "project", project), 0);
}

/* Free a block made by make_record (through a message, which owns blocks). */
static void block_free(struct aif_proto_block *b)
{
	struct aif_proto_msg m;
	aif_proto_msg_init(&m, AIF_PROTO_USAGE);
	m.header = *b;
	aif_proto_msg_free(&m);
	memset(b, 0, sizeof(*b));
}

static void put(const char *dir, const char *cluster, unsigned job, const char *node, const char *event,
		const char *project)
{
	struct aif_proto_block b;
	struct aif_diag d;
	make_record(&b, job, node, event, project);
	if (aif_spool_put(dir, cluster, &b, &d) != 0)
		fail_msg("aif_spool_put: %s (%s)", d.message, d.detail);
	block_free(&b);
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static char *read_text(const char *path)
{
	static char buf[8192];
	FILE *f = fopen(path, "r");
	size_t n;
	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* Make path's modification time seconds ago: "older" in the spool's oldest-first order. */
static void age(const char *path, int seconds)
{
	struct timespec t[2];
	clock_gettime(CLOCK_REALTIME, &t[0]);
	t[0].tv_sec -= seconds;
	t[1] = t[0];
	assert_int_equal(utimensat(AT_FDCWD, path, t, 0), 0);
}

static int flush(const char *dir, const char *address, int64_t deadline_ms, size_t max,
		 struct aif_spool_stats *st, struct aif_diag *d)
{
	struct aif_client *c = client_for(address, 2000);
	int rc = aif_spool_flush(dir, c, max, deadline_ms, st, d);
	aif_client_free(c);
	return rc;
}

/* ---- put ---- */

static void test_put_one_file_per_record(void **state)
{
	struct spool *sp = *state;
	struct stat st;
	struct aif_proto_msg m;
	struct aif_proto_block b;
	struct aif_diag d;
	char path[256], *text;

	put(sp->dir, "jean-zay", 7, "r7i3n2", "start", "genomics-eu");
	assert_int_equal(stat(sp->dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	/* the same record again (even as job "007"): the same file, replaced */
	make_record(&b, 7, "r7i3n2", "start", "genomics-eu");
	assert_int_equal(aif_proto_set(&b, "job", "007"), 0);
	assert_int_equal(aif_spool_put(sp->dir, "jean-zay", &b, &d), 0);
	block_free(&b);
	assert_string_equal(names(sp->dir, NULL), "jean-zay.7.0.r7i3n2.start.usage");
	/* another event, node or cluster: another file; '.' and '/' in names are escaped */
	put(sp->dir, "jean-zay", 7, "r7i3n2", "end", "genomics-eu");
	put(sp->dir, "jean-zay", 7, "n1.example/x", "start", "genomics-eu");
	put(sp->dir, "adastra", 7, "r7i3n2", "start", "genomics-eu");
	assert_string_equal(names(sp->dir, NULL), "adastra.7.0.r7i3n2.start.usage\n"
						  "jean-zay.7.0.n1%2Eexample%2Fx.start.usage\n"
						  "jean-zay.7.0.r7i3n2.end.usage\n"
						  "jean-zay.7.0.r7i3n2.start.usage");
	snprintf(path, sizeof(path), "%s/jean-zay.7.0.r7i3n2.start.usage", sp->dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	text = read_text(path);
	/* the record's text as given (the later put replaced the file) */
	assert_string_equal(text, "AIF/1 usage\ncluster=jean-zay\n\nevent=start\njob=007\nnode=r7i3n2\nrestart=0\n"
				  "gpus=4\ntime=1767225600\nuid=1001\nproject=genomics-eu\n");
	assert_int_equal(aif_proto_decode(text, strlen(text), &m, &d), 0);
	aif_proto_msg_free(&m);
}

static void test_put_long_names_hashed(void **state)
{
	const struct spool *sp = *state;
	char node[256]; /* the longest name aifd takes: a file name of more than 255 bytes */
	const char *list;

	memset(node, 'n', sizeof(node) - 1);
	node[sizeof(node) - 1] = '\0';
	put(sp->dir, "lumi", 12, node, "end", NULL);
	put(sp->dir, "lumi", 12, node, "end", NULL);
	node[0] = 'm';
	put(sp->dir, "lumi", 12, node, "end", NULL);
	list = names(sp->dir, NULL);
	assert_int_equal(count(sp->dir, NULL), 2);
	assert_int_equal(strncmp(list, "h-", 2), 0);
	assert_non_null(strstr(list, ".12.0.end.usage\n"));
}

static void test_put_invalid(void **state)
{
	struct spool *sp = *state;
	struct aif_proto_block b;
	struct aif_diag d;

	make_record(&b, 1, "n1", "start", NULL);
	assert_int_equal(aif_proto_set(&b, "gpus", "four"), 0);
	assert_int_equal(aif_spool_put(sp->dir, "lumi", &b, &d), -1);
	assert_string_equal(d.message, "invalid usage record: record 1: invalid value for field \"gpus\": \"four\"");
	assert_int_equal(aif_spool_put(sp->dir, "", &b, &d), -1);
	block_free(&b);
	assert_int_equal(access(sp->dir, F_OK), -1); /* nothing created */

	/* a spool directory someone else could write into is refused */
	put(sp->dir, "lumi", 1, "n1", "start", NULL);
	assert_int_equal(chmod(sp->dir, 0777), 0);
	make_record(&b, 2, "n1", "start", NULL);
	assert_int_equal(aif_spool_put(sp->dir, "lumi", &b, &d), -1);
	assert_non_null(strstr(d.message, "unsafe spool directory \""));
	block_free(&b);
}

/* ---- flush ---- */

static void test_flush_ok_removes_sent(void **state)
{
	const struct spool *sp = *state;
	struct fake_aifd s;
	struct aif_spool_stats st;
	struct aif_diag d;
	char path[256];

	/* three records of different ages, and a file that is not ours */
	put(sp->dir, "lumi", 3, "n1", "start", NULL);
	put(sp->dir, "lumi", 1, "n1", "start", NULL);
	put(sp->dir, "lumi", 2, "n1", "start", NULL);
	snprintf(path, sizeof(path), "%s/lumi.1.0.n1.start.usage", sp->dir);
	age(path, 30);
	snprintf(path, sizeof(path), "%s/lumi.2.0.n1.start.usage", sp->dir);
	age(path, 20);
	snprintf(path, sizeof(path), "%s/lumi.3.0.n1.start.usage", sp->dir);
	age(path, 10);
	snprintf(path, sizeof(path), "%s/README", sp->dir);
	write_text(path, "not a record\n");

	server_start(&s, ANSWER_OK);
	/* at most two: the two oldest, in one request */
	assert_int_equal(flush(sp->dir, s.net.path, aif_clock_ms() + 5000, 2, &st, &d), 0);
	assert_int_equal(st.sent, 2);
	assert_int_equal(st.kept, 1);
	assert_int_equal(st.bad, 0);
	assert_false(st.busy);
	assert_string_equal(names(sp->dir, NULL), "README\nlumi.3.0.n1.start.usage");
	/* then the rest; then nothing */
	assert_int_equal(flush(sp->dir, s.net.path, aif_clock_ms() + 5000, 0, &st, &d), 0);
	assert_int_equal(st.sent, 1);
	assert_int_equal(st.kept, 0);
	assert_int_equal(flush(sp->dir, s.net.path, aif_clock_ms() + 5000, 0, &st, &d), 0);
	assert_int_equal(st.sent + st.kept + st.bad, 0);
	server_stop(&s);
	assert_int_equal(s.requests, 2);
	assert_int_equal(s.records_per_request[0], 2);
	assert_int_equal(s.stored, 3);
	assert_int_equal(s.stored_jobs[0], 1);
	assert_int_equal(s.stored_jobs[1], 2);
	assert_int_equal(s.stored_jobs[2], 3);
	assert_string_equal(names(sp->dir, NULL), "README");
}

static void test_flush_missing_dir(void **state)
{
	struct spool *sp = *state;
	struct aif_spool_stats st;
	struct aif_diag d;

	/* never spooled: nothing to do, and nothing created (no aifd is asked) */
	assert_int_equal(flush(sp->dir, "/nonexistent/aifd.sock", aif_clock_ms() + 1000, 0, &st, &d), 0);
	assert_int_equal(st.sent + st.kept + st.bad, 0);
	assert_int_equal(access(sp->dir, F_OK), -1);
}

static void test_flush_error_keeps_all(void **state)
{
	const struct spool *sp = *state;
	struct fake_aifd s;
	struct aif_spool_stats st;
	struct aif_diag d;

	put(sp->dir, "lumi", 1, "n1", "start", NULL);
	put(sp->dir, "lumi", 1, "n1", "end", NULL);
	server_start(&s, ANSWER_ERROR);
	assert_int_equal(flush(sp->dir, s.net.path, aif_clock_ms() + 5000, 0, &st, &d), -1);
	assert_string_equal(d.message, "could not store usage records: the database is unavailable");
	assert_int_equal(st.sent, 0);
	assert_int_equal(st.kept, 2);
	server_stop(&s);
	assert_int_equal(s.requests, 1);
	assert_int_equal(count(sp->dir, ".usage"), 2);

	/* aifd not running at all: the same */
	assert_int_equal(flush(sp->dir, s.net.path, aif_clock_ms() + 5000, 0, &st, &d), -1);
	assert_non_null(strstr(d.message, "could not connect to aifd at "));
	assert_int_equal(st.kept, 2);
	assert_int_equal(count(sp->dir, ".usage"), 2);
}

static void refused_to_bad(const struct spool *sp, enum mode mode)
{
	struct fake_aifd s;
	struct aif_spool_stats st;
	struct aif_diag d;
	char path[256];

	for (unsigned job = 1; job <= 9; job++)
		put(sp->dir, "lumi", job, "n1", "start", job == 4 || job == 7 ? "nope" : "proja");
	server_start(&s, mode);
	assert_int_equal(flush(sp->dir, s.net.path, aif_clock_ms() + 5000, 0, &st, &d), 0);
	assert_int_equal(st.sent, 7);
	assert_int_equal(st.bad, 2);
	assert_int_equal(st.kept, 0);
	server_stop(&s);
	assert_int_equal(s.stored, 7);
	assert_int_equal(count(sp->dir, ".usage"), 0);
	snprintf(path, sizeof(path), "%s/bad", sp->dir);
	assert_string_equal(names(path, NULL), "lumi.4.0.n1.start.usage\nlumi.4.0.n1.start.usage.why\n"
					       "lumi.7.0.n1.start.usage\nlumi.7.0.n1.start.usage.why");
	if (mode == ANSWER_REFUSE) {
		assert_non_null(strstr(st.bad_diag.message, "unknown project \"nope\""));
		snprintf(path, sizeof(path), "%s/bad/lumi.7.0.n1.start.usage.why", sp->dir);
		assert_string_equal(read_text(path), "usage record 1 (job 7, node n1): unknown project \"nope\"\n");
	}
	assert_non_null(strstr(st.bad_diag.hint, "/bad/lumi.4.0.n1.start.usage"));
}

static void test_flush_refused_to_bad(void **state)
{
	refused_to_bad(*state, ANSWER_REFUSE);
}

static void test_flush_refused_vague_to_bad(void **state)
{
	refused_to_bad(*state, ANSWER_REFUSE_VAGUE);
}

static void test_flush_corrupt_to_bad(void **state)
{
	const struct spool *sp = *state;
	struct fake_aifd s;
	struct aif_spool_stats st;
	struct aif_diag d;
	char path[320], bad[256], *text;

	put(sp->dir, "lumi", 1, "n1", "start", NULL);
	put(sp->dir, "lumi", 2, "n1", "start", NULL);
	/* truncated in the middle of a line; garbage; valid but two records; an empty file */
	snprintf(path, sizeof(path), "%s/lumi.2.0.n1.start.usage", sp->dir);
	text = read_text(path);
	text[strlen(text) - 3] = '\0';
	write_text(path, text);
	snprintf(path, sizeof(path), "%s/garbage.usage", sp->dir);
	write_text(path, "\x01\x02 not a message");
	snprintf(path, sizeof(path), "%s/two.usage", sp->dir);
	write_text(path, "AIF/1 usage\ncluster=lumi\n\nevent=start\njob=5\nnode=n1\nrestart=0\ngpus=1\ntime=1\nuid=1\n"
			 "\nevent=end\njob=5\nnode=n1\nrestart=0\ngpus=1\ntime=2\nuid=1\n");
	snprintf(path, sizeof(path), "%s/empty.usage", sp->dir);
	write_text(path, "");
	/* a record moved back from bad/ under another name is sent under its own */
	snprintf(path, sizeof(path), "%s/lumi.3.0.n1.start~1.usage", sp->dir);
	write_text(path, "AIF/1 usage\ncluster=lumi\n\nevent=start\njob=3\nnode=n1\nrestart=0\ngpus=1\ntime=1\nuid=1\n");
	server_start(&s, ANSWER_OK);
	assert_int_equal(flush(sp->dir, s.net.path, aif_clock_ms() + 5000, 0, &st, &d), 0);
	server_stop(&s);
	assert_int_equal(st.sent, 2);
	assert_int_equal(st.bad, 4);
	assert_int_equal(s.stored, 2);
	assert_int_equal(s.stored_jobs[0] + s.stored_jobs[1], 4);
	assert_int_equal(count(sp->dir, ".usage"), 0);
	snprintf(bad, sizeof(bad), "%s/bad", sp->dir);
	assert_string_equal(names(bad, ".usage"), "empty.usage\ngarbage.usage\nlumi.2.0.n1.start.usage\ntwo.usage");
	snprintf(path, sizeof(path), "%s/lumi.2.0.n1.start.usage.why", bad);
	assert_string_equal(read_text(path), "invalid spool file \"lumi.2.0.n1.start.usage\": line 10: missing "
					     "newline at the end of the message\n");
	/* the same name again in bad/: kept beside the first, never over it */
	snprintf(path, sizeof(path), "%s/empty.usage", sp->dir);
	write_text(path, "");
	assert_int_equal(flush(sp->dir, "/nonexistent/aifd.sock", aif_clock_ms() + 5000, 0, &st, &d), 0);
	assert_int_equal(st.bad, 1);
	assert_string_equal(names(bad, ".usage"), "empty.usage\nempty~1.usage\ngarbage.usage\n"
						   "lumi.2.0.n1.start.usage\ntwo.usage");
}

static void test_flush_temp_files(void **state)
{
	const struct spool *sp = *state;
	struct fake_aifd s;
	struct aif_spool_stats st;
	struct aif_diag d;
	char fresh[256], stale[256];
	const char *record = "AIF/1 usage\ncluster=lumi\n\nevent=start\njob=9\nnode=n1\nrestart=0\ngpus=1\ntime=1\nuid=1\n";

	put(sp->dir, "lumi", 1, "n1", "start", NULL);
	/* puts in progress (complete or not): never sent; one that died long ago goes to bad/ */
	snprintf(fresh, sizeof(fresh), "%s/.tmp-lumi.9.0.n1.start.usage.AbCdEf", sp->dir);
	write_text(fresh, record);
	snprintf(stale, sizeof(stale), "%s/.tmp-lumi.8.0.n1.start.usage.XyZ123", sp->dir);
	write_text(stale, record);
	age(stale, 7200);
	server_start(&s, ANSWER_OK);
	assert_int_equal(flush(sp->dir, s.net.path, aif_clock_ms() + 5000, 0, &st, &d), 0);
	server_stop(&s);
	assert_int_equal(st.sent, 1);
	assert_int_equal(st.bad, 1);
	assert_int_equal(s.stored, 1);
	assert_int_equal(s.stored_jobs[0], 1);
	assert_int_equal(access(fresh, F_OK), 0);
	assert_string_equal(st.bad_diag.message,
			    "spooled usage record moved aside: temporary spool file of a put that never finished");
}

static void test_flush_deadline(void **state)
{
	const struct spool *sp = *state;
	struct fake_aifd s;
	struct aif_spool_stats st;
	struct aif_diag d;
	struct aif_client *c;
	int64_t t0, elapsed;

	put(sp->dir, "lumi", 1, "n1", "start", NULL);
	put(sp->dir, "lumi", 2, "n1", "start", NULL);
	server_start(&s, ANSWER_NOTHING);
	/* an aifd that never answers: the flush ends at its deadline, not the client's 5 s */
	c = client_for(s.net.path, 5000);
	t0 = aif_clock_ms();
	assert_int_equal(aif_spool_flush(sp->dir, c, 0, t0 + 300, &st, &d), -1);
	elapsed = aif_clock_ms() - t0; /* (cmocka's assert_in_range is deprecated in sid's) */
	assert_true(elapsed >= 250 && elapsed <= 1500);
	assert_non_null(strstr(d.message, "timed out after "));
	assert_non_null(strstr(d.message, " ms waiting for aifd at "));
	aif_client_free(c);
	assert_int_equal(st.kept, 2);
	/* a deadline already passed: nothing is sent, nothing is wrong */
	c = client_for(s.net.path, 5000);
	assert_int_equal(aif_spool_flush(sp->dir, c, 0, aif_clock_ms() - 1, &st, &d), 0);
	assert_int_equal(st.kept, 2);
	aif_client_free(c);
	server_stop(&s);
	assert_int_equal(s.requests, 1);
	assert_int_equal(count(sp->dir, ".usage"), 2);
}

static void test_flush_busy(void **state)
{
	struct spool *sp = *state;
	struct fake_aifd s;
	struct aif_spool_stats st;
	struct aif_diag d;
	int fd;

	put(sp->dir, "lumi", 1, "n1", "start", NULL);
	put(sp->dir, "lumi", 2, "n1", "start", NULL);
	/* the lock is the directory itself: no file to create on a full file system */
	fd = open(sp->dir, O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	assert_int_equal(flock(fd, LOCK_EX), 0);
	server_start(&s, ANSWER_OK);
	/* another flusher holds the lock: skip, at once */
	assert_int_equal(flush(sp->dir, s.net.path, aif_clock_ms() + 5000, 0, &st, &d), 0);
	assert_true(st.busy);
	assert_int_equal(st.kept, 2);
	assert_int_equal(st.sent, 0);
	close(fd);
	assert_int_equal(flush(sp->dir, s.net.path, aif_clock_ms() + 5000, 0, &st, &d), 0);
	assert_false(st.busy);
	assert_int_equal(st.sent, 2);
	server_stop(&s);
	assert_int_equal(s.requests, 1);
}

static void test_flush_batches(void **state)
{
	const struct spool *sp = *state;
	struct fake_aifd s;
	struct aif_spool_stats st;
	struct aif_diag d;
	char big[251], key[8];
	int total = 0;

	/* ~4 KiB records (fields aifd ignores: 16 of 250 bytes): 200 of them do not fit one
	 * request (768 KiB - 4 KiB) */
	memset(big, 'u', 250);
	big[250] = '\0';
	for (unsigned job = 1; job <= 200; job++) {
		struct aif_proto_block b;
		make_record(&b, job, "n1", "end", NULL);
		for (int k = 0; k < 16; k++) {
			snprintf(key, sizeof(key), "x%d", k);
			assert_int_equal(aif_proto_set(&b, key, big), 0);
		}
		assert_int_equal(aif_spool_put(sp->dir, "lumi", &b, &d), 0);
		block_free(&b);
	}
	/* and one record of another cluster: a request of its own */
	put(sp->dir, "adastra", 1, "n1", "end", NULL);
	server_start(&s, ANSWER_OK);
	assert_int_equal(flush(sp->dir, s.net.path, aif_clock_ms() + 10000, 0, &st, &d), 0);
	server_stop(&s);
	assert_int_equal(st.sent, 201);
	assert_int_equal(s.requests, 3);
	for (int i = 0; i < s.requests; i++)
		total += s.records_per_request[i];
	assert_int_equal(total, 201);
	assert_true(s.records_per_request[0] > 150);
	assert_int_equal(count(sp->dir, ".usage"), 0);
}

static void test_flush_unsafe_dir(void **state)
{
	struct spool *sp = *state;
	struct aif_spool_stats st;
	struct aif_diag d;

	put(sp->dir, "lumi", 1, "n1", "start", NULL);
	assert_int_equal(chmod(sp->dir, 0770), 0);
	assert_int_equal(flush(sp->dir, "/nonexistent/aifd.sock", aif_clock_ms() + 1000, 0, &st, &d), -1);
	assert_non_null(strstr(d.message, "unsafe spool directory"));
	assert_non_null(strstr(d.detail, "mode 0770"));
	/* someone else's spool: not ours to send (giving it away takes root) */
	assert_int_equal(chmod(sp->dir, 0700), 0);
	if (geteuid() != 0)
		return;
	assert_int_equal(chown(sp->dir, 12345, 12345), 0);
	assert_int_equal(flush(sp->dir, "/nonexistent/aifd.sock", aif_clock_ms() + 1000, 0, &st, &d), -1);
	assert_non_null(strstr(d.message, "\" belongs to uid 12345, not to uid 0"));
}

/* ---- the spool's path: every component checked, no link of another user followed ---- */

#define OTHER_UID 12345 /* an ordinary user, for the tests that need root */

/* aif_spool_put of one record into dir: 0, or -1 with d. */
static int try_put(const char *dir, struct aif_diag *d)
{
	struct aif_proto_block b;
	int rc;

	make_record(&b, 1, "n1", "start", NULL);
	rc = aif_spool_put(dir, "lumi", &b, d);
	block_free(&b);
	return rc;
}

static void test_path_parents(void **state)
{
	const struct spool *sp = *state;
	struct aif_diag d;
	char parent[128], dir[160], expect[200];

	/* a parent that group or others may write into, not sticky: refused, nothing created */
	snprintf(parent, sizeof(parent), "%s/shared", sp->base);
	snprintf(dir, sizeof(dir), "%s/spool", parent);
	assert_int_equal(mkdir(parent, 0755), 0);
	assert_int_equal(chmod(parent, 0777), 0);
	assert_int_equal(try_put(dir, &d), -1);
	snprintf(expect, sizeof(expect), "unsafe spool directory \"%s\"", dir);
	assert_string_equal(d.message, expect);
	assert_int_equal(access(dir, F_OK), -1);
	assert_non_null(strstr(d.detail, "/shared\" on its path is writable by group or others without the sticky bit (mode 0777)"));
	assert_non_null(strstr(d.hint, "such as /var/spool/aif"));
	assert_int_equal(chmod(parent, 0775), 0);
	assert_int_equal(try_put(dir, &d), -1);
	/* sticky, as /tmp: nobody can rename what is ours there */
	assert_int_equal(chmod(parent, 01777), 0);
	assert_int_equal(try_put(dir, &d), 0);
	/* a flush and a listing check the same path */
	assert_int_equal(chmod(parent, 0777), 0);
	{
		struct aif_spool_stats st;
		assert_int_equal(flush(dir, "/nonexistent/aifd.sock", aif_clock_ms() + 1000, 0, &st, &d), -1);
		assert_non_null(strstr(d.message, "unsafe spool directory"));
	}
	assert_int_equal(chmod(parent, 0755), 0);
	if (geteuid() != 0)
		return;
	/* a parent of another user's: they could rename the spool away and put theirs there */
	assert_int_equal(chown(parent, OTHER_UID, OTHER_UID), 0);
	assert_int_equal(try_put(dir, &d), -1);
	assert_non_null(strstr(d.detail, "/shared\" on its path belongs to uid 12345"));
}

static void test_path_links(void **state)
{
	const struct spool *sp = *state;
	struct aif_diag d;
	char real[128], link[128], dir[256], target[192];

	snprintf(real, sizeof(real), "%s/real", sp->base);
	assert_int_equal(mkdir(real, 0755), 0);
	/* a link of ours (or root's) is followed, relative or absolute, also as the spool itself */
	snprintf(link, sizeof(link), "%s/link", sp->base);
	assert_int_equal(symlink("real", link), 0);
	snprintf(dir, sizeof(dir), "%s/spool", link);
	assert_int_equal(try_put(dir, &d), 0);
	snprintf(target, sizeof(target), "%s/real/spool/lumi.1.0.n1.start.usage", sp->base);
	assert_int_equal(access(target, F_OK), 0);
	snprintf(link, sizeof(link), "%s/alias", sp->base);
	snprintf(target, sizeof(target), "%s/real/spool", sp->base);
	assert_int_equal(symlink(target, link), 0);
	assert_int_equal(try_put(link, &d), 0);
	/* a loop */
	snprintf(link, sizeof(link), "%s/loop", sp->base);
	assert_int_equal(symlink("loop", link), 0);
	assert_int_equal(try_put(link, &d), -1);
	assert_non_null(strstr(d.message, "Too many levels of symbolic links"));
	/* not a directory on the way */
	snprintf(target, sizeof(target), "%s/file", sp->base);
	write_text(target, "x\n");
	snprintf(dir, sizeof(dir), "%s/spool", target);
	assert_int_equal(try_put(dir, &d), -1);
	assert_non_null(strstr(d.message, "/file\" is not a directory"));
}

/* A link planted by an ordinary user (in a sticky directory, say): never followed. */
static void test_path_user_link(void **state)
{
	const struct spool *sp = *state;
	struct aif_diag d;
	char real[128], link[128], dir[256];

	if (geteuid() != 0)
		skip();
	snprintf(real, sizeof(real), "%s/real", sp->base);
	assert_int_equal(mkdir(real, 0755), 0);
	snprintf(link, sizeof(link), "%s/planted", sp->base);
	assert_int_equal(symlink("real", link), 0);
	assert_int_equal(lchown(link, OTHER_UID, OTHER_UID), 0);
	snprintf(dir, sizeof(dir), "%s/spool", link);
	assert_int_equal(try_put(dir, &d), -1);
	assert_non_null(strstr(d.detail, "/planted\" on its path is a symbolic link that belongs to uid 12345"));
	assert_int_equal(try_put(link, &d), -1); /* as the spool itself */
	{
		struct aif_spool_stats st;
		assert_int_equal(flush(dir, "/nonexistent/aifd.sock", aif_clock_ms() + 1000, 0, &st, &d), -1);
		assert_non_null(strstr(d.message, "unsafe spool directory"));
	}
	assert_int_equal(count(real, NULL), 0); /* nothing written through it */
}

/* ---- bad/: refused records kept ---- */

static void test_put_bad(void **state)
{
	struct spool *sp = *state;
	struct aif_proto_block b;
	struct aif_spool_stats st;
	struct fake_aifd s;
	struct aif_diag why, d;
	char where[512], bad[160], path[512];

	aif_diag_clear(&why);
	aif_diag_message(&why, "usage record 1 (job 5, node n1): cannot be stored");
	aif_diag_detail(&why, "A detail.");
	make_record(&b, 5, "n1", "end", NULL);
	/* kept durably in bad/ with its reason; the same record again is kept beside it */
	assert_int_equal(aif_spool_put_bad(sp->dir, "lumi", &b, &why, where, sizeof(where), &d), 0);
	snprintf(bad, sizeof(bad), "%s/bad", sp->dir);
	snprintf(path, sizeof(path), "%s/lumi.5.0.n1.end.usage", bad);
	assert_string_equal(where, path);
	assert_int_equal(aif_spool_put_bad(sp->dir, "lumi", &b, &why, where, sizeof(where), &d), 0);
	assert_non_null(strstr(where, "/bad/lumi.5.0.n1.end~1.usage"));
	assert_string_equal(names(bad, NULL), "lumi.5.0.n1.end.usage\nlumi.5.0.n1.end.usage.why\n"
					      "lumi.5.0.n1.end~1.usage\nlumi.5.0.n1.end~1.usage.why");
	assert_string_equal(read_text(path), "AIF/1 usage\ncluster=lumi\n\nevent=end\njob=5\nnode=n1\nrestart=0\n"
					     "gpus=4\ntime=1767225600\nuid=1001\n");
	snprintf(path, sizeof(path), "%s/lumi.5.0.n1.end.usage.why", bad);
	assert_string_equal(read_text(path), "usage record 1 (job 5, node n1): cannot be stored\nDETAIL:  A detail.\n");
	/* even a record that is not valid is kept, under a name of its own */
	assert_int_equal(aif_proto_set(&b, "gpus", "four"), 0);
	assert_int_equal(aif_spool_put_bad(sp->dir, "lumi", &b, &why, where, sizeof(where), &d), 0);
	assert_non_null(strstr(where, "/bad/invalid.usage"));
	block_free(&b);
	/* never sent: a flush sees an empty spool */
	server_start(&s, ANSWER_OK);
	assert_int_equal(flush(sp->dir, s.net.path, aif_clock_ms() + 5000, 0, &st, &d), 0);
	server_stop(&s);
	assert_int_equal(st.sent + st.kept + st.bad, 0);
	assert_int_equal(s.requests, 0);
	assert_int_equal(count(bad, ".usage"), 3);
	/* an unsafe spool: refused, said so */
	assert_int_equal(chmod(sp->dir, 0777), 0);
	make_record(&b, 6, "n1", "end", NULL);
	assert_int_equal(aif_spool_put_bad(sp->dir, "lumi", &b, &why, where, sizeof(where), &d), -1);
	block_free(&b);
	assert_non_null(strstr(d.message, "unsafe spool directory"));
}

struct listing {
	char text[4096];
	size_t len;
};

static void list_one(void *arg, const struct aif_spool_item *item)
{
	struct listing *l = arg;

	l->len += (size_t)snprintf(l->text + l->len, sizeof(l->text) - l->len, "%s%s|%s;", item->bad ? "bad/" : "",
				   item->name, item->why ? item->why : "-");
}

static void test_list(void **state)
{
	struct spool *sp = *state;
	struct listing l = {0};
	struct fake_aifd s;
	struct aif_spool_stats st;
	struct aif_diag d;
	char path[256];

	/* a missing spool is an empty one */
	assert_int_equal(aif_spool_list(sp->dir, list_one, &l, &d), 0);
	assert_string_equal(l.text, "");
	put(sp->dir, "lumi", 2, "n1", "start", NULL);
	put(sp->dir, "lumi", 4, "n1", "start", "nope");
	server_start(&s, ANSWER_REFUSE);
	assert_int_equal(flush(sp->dir, s.net.path, aif_clock_ms() + 5000, 0, &st, &d), 0);
	server_stop(&s);
	put(sp->dir, "lumi", 3, "n1", "end", NULL);
	put(sp->dir, "lumi", 1, "n1", "end", NULL);
	/* a file in bad/ without its .why (an operator removed it) */
	snprintf(path, sizeof(path), "%s/bad/other.usage", sp->dir);
	write_text(path, "x");
	assert_int_equal(aif_spool_list(sp->dir, list_one, &l, &d), 0);
	assert_string_equal(l.text, "lumi.1.0.n1.end.usage|-;lumi.3.0.n1.end.usage|-;"
				    "bad/lumi.4.0.n1.start.usage|usage record 1 (job 4, node n1): unknown project \"nope\"\n;"
				    "bad/other.usage|-;");
	assert_int_equal(chmod(sp->dir, 0777), 0);
	assert_int_equal(aif_spool_list(sp->dir, list_one, &l, &d), -1);
	assert_non_null(strstr(d.message, "unsafe spool directory"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_put_one_file_per_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_long_names_hashed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_invalid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_ok_removes_sent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_missing_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_error_keeps_all, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_refused_to_bad, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_refused_vague_to_bad, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_corrupt_to_bad, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_temp_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_deadline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_busy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_batches, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_unsafe_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_path_parents, setup, teardown),
		cmocka_unit_test_setup_teardown(test_path_links, setup, teardown),
		cmocka_unit_test_setup_teardown(test_path_user_link, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_bad, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
