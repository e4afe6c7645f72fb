/* The node's durable spool of usage records: see aif_spool.h. */
#include "aif_spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SUFFIX ".usage"      /* record files; anything else in the spool is not ours to send */
#define TMP_PREFIX ".tmp-"   /* puts in progress: never read as records */
#define LOCK_NAME ".lock"    /* flock()ed by the one flusher */
#define BAD_DIR "bad"
#define WHY_SUFFIX ".why"
/* Longest readable name part: past it, the name carries a hash of cluster and node instead. */
#define NAME_ROOM 160
/* A temporary file this old belongs to a put that died: moved aside, never sent as is. */
#define STALE_TMP_SECONDS 3600
/* Copies of the same name in bad/ before giving up (NAME~1.usage, NAME~2.usage, ...). */
#define BAD_COPIES 100
/* A request's own text besides its records: first line, nonce, cluster (at most a value). */
#define REQUEST_OVERHEAD (64 + AIF_PROTO_MAX_VALUE)

/* Validation of a spooled message wants a nonce, which the client adds only when sending. */
#define PLACEHOLDER_NONCE "0000000000000000"

static const char *errstr(int err, char *buf, size_t size)
{
	return strerror_r(err, buf, size); /* the GNU strerror_r (_GNU_SOURCE) */
}

/* diag = "WHAT: strerror(err)"; errno is kept. */
__attribute__((format(printf, 3, 4))) static void diag_errno(struct aif_diag *diag, int err,
							   const char *fmt, ...)
{
	char ebuf[128], what[PATH_MAX + 64];
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	aif_diag_clear(diag);
	aif_diag_message(diag, "%s: %s", what, errstr(err, ebuf, sizeof(ebuf)));
	errno = saved;
}

/* ---- names ---- */

/*
 * Append s to name (of size NAME_MAX + 1) at *pos, escaped (all but [A-Za-z0-9_-] as %XX) if
 * escape. Stops short of NAME_MAX; the caller checks *pos against NAME_ROOM.
 */
static void name_add(char *name, size_t *pos, const char *s, bool escape)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s && *pos + 4 < NAME_MAX; s++) {
		unsigned char c = (unsigned char)*s;
		if (!escape || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '_' || c == '-') {
			name[(*pos)++] = (char)c;
		} else {
			name[(*pos)++] = '%';
			name[(*pos)++] = hex[c >> 4];
			name[(*pos)++] = hex[c & 15];
		}
	}
	name[*pos] = '\0';
}

static uint64_t fnv1a(uint64_t h, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 0x100000001b3u;
	return h;
}

/*
 * A record's file name, from its identity only (cluster, job, node, restart, event), so that
 * the same record spooled twice is one file: "CLUSTER.JOB.RESTART.NODE.EVENT.usage", every byte
 * of cluster and node but [A-Za-z0-9_-] escaped as %XX (so '.' only separates). Where that
 * would be too long for a file name: "h-HASH.JOB.RESTART.EVENT.usage", HASH a 64-bit FNV-1a of
 * cluster and node. The record must be valid (aif_proto_validate_request).
 */
static void record_name(const char *cluster, const struct aif_proto_block *r, char name[NAME_MAX + 1])
{
	const char *node = aif_proto_get(r, "node");
	char numbers[48];
	uint64_t job = 0, restart = 0;
	size_t pos = 0;

	/* numbers as numbers: "007" and "7" are the same job to aifd */
	aif_proto_get_u64(r, "job", UINT32_MAX, &job, NULL);
	aif_proto_get_u64(r, "restart", UINT32_MAX, &restart, NULL);
	snprintf(numbers, sizeof(numbers), ".%" PRIu64 ".%" PRIu64 ".", job, restart);
	name_add(name, &pos, cluster, true);
	name_add(name, &pos, numbers, false);
	name_add(name, &pos, node, true);
	if (pos > NAME_ROOM) {
		char hash[24];
		uint64_t h = fnv1a(0xcbf29ce484222325u, cluster, strlen(cluster) + 1); /* its NUL separates */

		h = fnv1a(h, node, strlen(node));
		snprintf(hash, sizeof(hash), "h-%016" PRIx64, h);
		pos = 0;
		name_add(name, &pos, hash, false);
		name_add(name, &pos, numbers, false);
		pos--; /* the event follows the numbers' own '.' */
	}
	/* NAME_ROOM leaves room for the rest: never cut */
	name_add(name, &pos, ".", false);
	name_add(name, &pos, aif_proto_get(r, "event"), false);
	name_add(name, &pos, SUFFIX, false);
}

static bool has_suffix(const char *name, const char *suffix)
{
	size_t n = strlen(name), s = strlen(suffix);
	return n > s && strcmp(name + n - s, suffix) == 0;
}

/*
 * Check a spool message (decoded from a file, or about to be written): a valid "usage" request
 * of exactly one record. Sets its file name. Returns 0, or -1 with diag.
 */
static int check_message(struct aif_proto_msg *m, char name[NAME_MAX + 1], struct aif_diag *diag)
{
	aif_diag_clear(diag);
	if (m->kind != AIF_PROTO_USAGE || m->nrecords != 1) {
		aif_diag_message(diag, "not one usage record");
		aif_diag_detail(diag, "A spool file holds an \"AIF/1 usage\" message of one record; this is a \"%s\" message of %zu records.",
				aif_proto_kind_name(m->kind) ? aif_proto_kind_name(m->kind) : "(none)",
				m->nrecords);
		return -1;
	}
	if (!aif_proto_get(&m->header, "nonce") &&
	    aif_proto_set(&m->header, "nonce", PLACEHOLDER_NONCE) < 0) {
		aif_diag_message(diag, "out of memory");
		return -1;
	}
	if (aif_proto_validate_request(m, diag) < 0)
		return -1;
	record_name(aif_proto_get(&m->header, "cluster"), &m->records[0], name);
	return 0;
}

/* A copy of every field of src in dst (unknown ones too: a newer plugin may add fields). */
static int copy_block(struct aif_proto_block *dst, const struct aif_proto_block *src)
{
	for (size_t i = 0; i < src->n; i++)
		if (aif_proto_set(dst, src->fields[i].key, src->fields[i].value) < 0)
			return -1;
	return 0;
}

/* ---- the directory ---- */

/*
 * The spool is root's: records in it are sent with root's MUNGE credential, so whoever could
 * write into it could charge usage to any project. It must be ours and writable by us alone.
 */
static int check_owner(int fd, const char *path, struct aif_diag *diag)
{
	struct stat st;

	if (fstat(fd, &st) < 0) {
		diag_errno(diag, errno, "could not stat spool directory \"%s\"", path);
		return -1;
	}
	if (S_ISDIR(st.st_mode) && st.st_uid == geteuid() && !(st.st_mode & (S_IWGRP | S_IWOTH)))
		return 0;
	aif_diag_clear(diag);
	if (!S_ISDIR(st.st_mode)) {
		aif_diag_message(diag, "spool directory \"%s\" is not a directory", path);
	} else if (st.st_uid != geteuid()) {
		aif_diag_message(diag, "spool directory \"%s\" belongs to uid %lu, not to uid %lu", path,
				 (unsigned long)st.st_uid, (unsigned long)geteuid());
		aif_diag_hint(diag, "The spool is used by its owner only: run this as root for the plugin's spool.");
	} else {
		aif_diag_message(diag, "unsafe spool directory \"%s\"", path);
		aif_diag_detail(diag, "It is writable by others than its owner (mode %04o); its records are sent as its owner's.",
				(unsigned)(st.st_mode & 07777));
		aif_diag_hint(diag, "chmod 0700 \"%s\"", path);
	}
	return -1;
}

/* fsync() a directory so that the names created, renamed or removed in it last. */
static int sync_dir(int fd, const char *path, struct aif_diag *diag)
{
	if (fsync(fd) == 0)
		return 0;
	diag_errno(diag, errno, "could not fsync spool directory \"%s\"", path);
	return -1;
}

/*
 * Open dir, creating it (0700) when missing if create. Returns the fd, or -1 with diag; *missing
 * tells a directory that does not exist (and was not to be created) from other failures.
 */
static int open_spool(const char *dir, bool create, bool *missing, struct aif_diag *diag)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	*missing = fd < 0 && errno == ENOENT && !create;

	if (fd < 0 && errno == ENOENT && create) {
		char parent[PATH_MAX];
		char *slash;
		int pfd;

		if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
			diag_errno(diag, errno, "could not create spool directory \"%s\"", dir);
			return -1;
		}
		/* the new directory's own name must last too */
		snprintf(parent, sizeof(parent), "%s", dir);
		slash = strrchr(parent, '/');
		if (slash)
			*(slash == parent ? slash + 1 : slash) = '\0';
		pfd = open(slash ? parent : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (pfd >= 0) {
			fsync(pfd);
			close(pfd);
		}
		fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (fd < 0) {
		diag_errno(diag, errno, "could not open spool directory \"%s\"", dir);
		return -1;
	}
	if (check_owner(fd, dir, diag) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Write text durably as dirfd/name: into a temporary file of the same directory, fsync()ed,
 * renamed over name, then the directory fsync()ed. Returns 0, or -1 with diag (no temporary
 * file left behind).
 */
static int write_file(int dirfd, const char *dir, const char *name, const char *text, size_t len,
		      struct aif_diag *diag)
{
	char tmp[PATH_MAX];
	const char *rel;
	int fd, err;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s/%s%s.XXXXXX", dir, TMP_PREFIX, name) >= sizeof(tmp)) {
		aif_diag_clear(diag);
		aif_diag_message(diag, "spool directory path too long: \"%s\"", dir);
		return -1;
	}
	rel = tmp + strlen(dir) + 1;
	fd = mkostemp(tmp, O_CLOEXEC); /* mode 0600 */
	if (fd < 0) {
		diag_errno(diag, errno, "could not create a file in spool directory \"%s\"", dir);
		return -1;
	}
	if (write_all(fd, text, len) < 0 || fsync(fd) < 0) {
		err = errno;
		close(fd);
		goto fail;
	}
	if (close(fd) < 0 || renameat(dirfd, rel, dirfd, name) < 0) {
		err = errno;
		goto fail;
	}
	return sync_dir(dirfd, dir, diag);
fail:
	unlinkat(dirfd, rel, 0);
	diag_errno(diag, err, "could not write spool file \"%s\"", tmp);
	return -1;
}

int aif_spool_put(const char *dir, const char *cluster, const struct aif_proto_block *record,
		  struct aif_diag *diag)
{
	struct aif_proto_msg m;
	struct aif_proto_block *r;
	char name[NAME_MAX + 1], *text = NULL;
	size_t len = 0;
	bool missing;
	int dirfd, rc = -1;

	aif_diag_clear(diag);
	aif_proto_msg_init(&m, AIF_PROTO_USAGE);
	if (aif_proto_set(&m.header, "cluster", cluster) < 0 || !(r = aif_proto_add_record(&m)) ||
	    copy_block(r, record) < 0) {
		aif_diag_message(diag, "%s", errno == ENOMEM ? "out of memory" : "invalid cluster name or record field");
		goto out;
	}
	/* the file's text has no nonce: each sending gets a new one */
	if (aif_proto_encode(&m, &text, &len) < 0) {
		aif_diag_message(diag, "could not encode the usage record");
		goto out;
	}
	if (check_message(&m, name, diag) < 0) {
		char why[sizeof(diag->message)];
		snprintf(why, sizeof(why), "%s", diag->message);
		aif_diag_message(diag, "invalid usage record: %s", why);
		goto out;
	}
	dirfd = open_spool(dir, true, &missing, diag);
	if (dirfd < 0)
		goto out;
	rc = write_file(dirfd, dir, name, text, len, diag);
	close(dirfd);
out:
	free(text);
	aif_proto_msg_free(&m);
	return rc;
}

/* ---- flushing ---- */

enum entry_state {
	ENTRY_LISTED, /* in the spool; not read */
	ENTRY_READY,  /* read and valid: msg holds it */
	ENTRY_SENT,   /* acknowledged and removed */
	ENTRY_GONE,   /* moved to bad/, or vanished */
};

struct entry {
	char *name;
	struct timespec mtime;
	off_t size;
	enum entry_state state;
	bool taken; /* in a request group already */
	struct aif_proto_msg msg;
};

struct flush {
	const char *dir;
	int dirfd;
	int badfd; /* -1 until bad/ is needed */
	struct aif_client *client;
	int64_t deadline_ms;
	struct aif_spool_stats *stats;
	struct aif_diag *diag; /* the first failure: records kept */
	bool failed;           /* something was kept for a reason other than the deadline */
	bool stop;             /* send nothing more: aifd did not answer, or the deadline came */
	bool cluster_failed;   /* aifd answered "error" for the current cluster */
};

static void fail(struct flush *f, const struct aif_diag *d)
{
	if (!f->failed)
		*f->diag = *d;
	f->failed = true;
}

static bool past_deadline(struct flush *f)
{
	if (aif_clock_ms() < f->deadline_ms)
		return false;
	f->stop = true;
	return true;
}

/*
 * Move dirfd/name to bad/ (as name, else name~N before the suffix, never over an earlier one),
 * with a NAME.why file next to it that says why. Returns 0, or -1 (recorded in f): the file
 * then stays where it is.
 */
static int move_bad(struct flush *f, const char *name, const struct aif_diag *why)
{
	char target[NAME_MAX + 1], whyname[NAME_MAX + 1];
	struct aif_diag d;
	struct stat st;
	int fd, copy = 0;

	if (f->badfd < 0) {
		if (mkdirat(f->dirfd, BAD_DIR, 0700) < 0 && errno != EEXIST) {
			diag_errno(&d, errno, "could not create directory \"%s/" BAD_DIR "\"", f->dir);
			fail(f, &d);
			return -1;
		}
		f->badfd = openat(f->dirfd, BAD_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		if (f->badfd < 0) {
			diag_errno(&d, errno, "could not open directory \"%s/" BAD_DIR "\"", f->dir);
			fail(f, &d);
			return -1;
		}
	}
	snprintf(target, sizeof(target), "%s", name);
	/* only the lock holder moves files here: what fstatat() sees stays true */
	while (fstatat(f->badfd, target, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		size_t stem = has_suffix(name, SUFFIX) ? strlen(name) - strlen(SUFFIX) : strlen(name);
		if (++copy > BAD_COPIES) {
			aif_diag_clear(&d);
			aif_diag_message(&d, "could not move \"%s\" to \"%s/" BAD_DIR "\": %d copies are there already",
					 name, f->dir, BAD_COPIES);
			fail(f, &d);
			return -1;
		}
		snprintf(target, sizeof(target), "%.*s~%d%s", (int)(stem < NAME_MAX - 16 ? stem : NAME_MAX - 16),
			 name, copy, name + stem);
	}
	if (renameat(f->dirfd, name, f->badfd, target) < 0) {
		diag_errno(&d, errno, "could not move spool file \"%s\" to bad/", name);
		fail(f, &d);
		return -1;
	}
	snprintf(whyname, sizeof(whyname), "%.*s%s", NAME_MAX - 4, target, WHY_SUFFIX);
	fd = openat(f->badfd, whyname, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd >= 0) {
		char text[1200];
		aif_diag_format(why, text, sizeof(text) - 1);
		strcat(text, "\n"); /* room kept above */
		if (write_all(fd, text, strlen(text)) == 0)
			fsync(fd);
		close(fd);
	}
	fsync(f->badfd);
	fsync(f->dirfd);
	if (!f->stats->bad) {
		d = *why;
		aif_diag_message(&d, "spooled usage record moved aside: %s", why->message);
		aif_diag_hint(&d, "It is now %s/" BAD_DIR "/%s. Once the cause is fixed, move it back into %s to send it again.",
			      f->dir, target, f->dir);
		f->stats->bad_diag = d;
	}
	f->stats->bad++;
	return 0;
}

static int cmp_entry(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;

	if (x->mtime.tv_sec != y->mtime.tv_sec)
		return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
	if (x->mtime.tv_nsec != y->mtime.tv_nsec)
		return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
	return strcmp(x->name, y->name);
}

/*
 * The spool's record files, oldest first (*entries, *n). When locked, temporary files of puts
 * that died long ago and record names that are not files go to bad/ on the way. Files of other
 * names (bad/, the lock, foreign files) are left alone. Returns 0, or -1 with f's diag.
 */
static int scan(struct flush *f, bool locked, struct entry **entries, size_t *n)
{
	struct entry *list = NULL;
	size_t count = 0, cap = 0;
	struct timespec now;
	struct dirent *de;
	struct aif_diag d;
	DIR *dp;
	int fd = openat(f->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	*entries = NULL;
	*n = 0;
	if (fd < 0 || !(dp = fdopendir(fd))) {
		diag_errno(&d, errno, "could not read spool directory \"%s\"", f->dir);
		if (fd >= 0)
			close(fd);
		fail(f, &d);
		return -1;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	while ((de = readdir(dp))) {
		struct stat st;
		bool tmp = strncmp(de->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) == 0;

		if (!tmp && (de->d_name[0] == '.' || !has_suffix(de->d_name, SUFFIX)))
			continue;
		if (fstatat(f->dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue; /* removed meanwhile: a put renamed its temporary file */
		if (tmp) {
			if (locked && S_ISREG(st.st_mode) && st.st_mtim.tv_sec < now.tv_sec - STALE_TMP_SECONDS) {
				aif_diag_clear(&d);
				aif_diag_message(&d, "temporary spool file of a put that never finished");
				aif_diag_detail(&d, "The file was last written %lld seconds ago; it may be incomplete.",
						(long long)(now.tv_sec - st.st_mtim.tv_sec));
				move_bad(f, de->d_name, &d);
			}
			continue;
		}
		if (!S_ISREG(st.st_mode)) {
			aif_diag_clear(&d);
			aif_diag_message(&d, "not a regular file");
			if (locked)
				move_bad(f, de->d_name, &d);
			continue;
		}
		if (count == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			struct entry *grown = realloc(list, ncap * sizeof(*list));
			if (!grown)
				break; /* what we have is sent; the rest waits */
			list = grown;
			cap = ncap;
		}
		memset(&list[count], 0, sizeof(list[count]));
		list[count].name = strdup(de->d_name);
		if (!list[count].name)
			break;
		list[count].mtime = st.st_mtim;
		list[count].size = st.st_size;
		count++;
	}
	closedir(dp);
	if (count)
		qsort(list, count, sizeof(*list), cmp_entry);
	*entries = list;
	*n = count;
	return 0;
}

/*
 * Read and check one record file. A file that can never be sent (not a regular file, too large,
 * corrupt, not one valid record) goes to bad/; one that vanished (a put replaced it) is
 * forgotten; on a failure of ours (memory, an I/O error) the flush stops and keeps it.
 */
static void load(struct flush *f, struct entry *e)
{
	char name[NAME_MAX + 1], *buf = NULL;
	struct aif_diag d;
	struct stat st;
	size_t got = 0;
	int fd = openat(f->dirfd, e->name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);

	aif_diag_clear(&d);
	if (fd < 0 && errno == ENOENT) {
		e->state = ENTRY_GONE;
		return;
	}
	if (fd < 0 && errno != ELOOP) {
		diag_errno(&d, errno, "could not open spool file \"%s\"", e->name);
		goto failed;
	}
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		aif_diag_message(&d, "not a regular file");
		goto bad;
	}
	if (st.st_size > (off_t)(AIF_PROTO_MAX_REQUEST - REQUEST_OVERHEAD)) {
		aif_diag_message(&d, "file too large");
		aif_diag_detail(&d, "It has %lld bytes; one record takes less than %u.", (long long)st.st_size,
				AIF_PROTO_MAX_REQUEST - REQUEST_OVERHEAD);
		goto bad;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		aif_diag_message(&d, "out of memory");
		goto failed;
	}
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			diag_errno(&d, errno, "could not read spool file \"%s\"", e->name);
			goto failed;
		}
		if (r == 0)
			break; /* shorter than fstat() said: the decoder tells what is missing */
		got += (size_t)r;
	}
	e->size = (off_t)got;
	if (aif_proto_decode(buf, got, &e->msg, &d) < 0 || check_message(&e->msg, name, &d) < 0)
		goto bad;
	close(fd);
	free(buf);
	e->state = ENTRY_READY;
	if (strcmp(name, e->name) != 0 && renameat(f->dirfd, e->name, f->dirfd, name) == 0) {
		/* an operator moved it back from bad/ as NAME~N: one file per record again */
		char *renamed = strdup(name);
		if (renamed) {
			free(e->name);
			e->name = renamed;
		}
	}
	return;
bad:
	{
		char why[sizeof(d.message)];
		snprintf(why, sizeof(why), "%s", d.message);
		aif_diag_message(&d, "invalid spool file \"%s\": %s", e->name, why);
	}
	if (move_bad(f, e->name, &d) == 0)
		e->state = ENTRY_GONE;
	goto out;
failed:
	fail(f, &d);
	f->stop = true;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	aif_proto_msg_free(&e->msg);
}

/* The record number a "usage" refusal names ("usage record 2 (job 11, node n2): ..."), or 0. */
static size_t refused_record(const struct aif_proto_msg *answer, size_t n)
{
	const char *message = aif_proto_get(&answer->header, "message");
	unsigned long k;
	int end = 0;

	if (message && sscanf(message, "usage record %lu%n", &k, &end) == 1 && end > 0 && k >= 1 && k <= n)
		return (size_t)k;
	return 0;
}

/* Remove the files of records aifd acknowledged; a file that stays is sent again (harmless). */
static void remove_sent(struct flush *f, struct entry **es, size_t n)
{
	struct aif_diag d;

	for (size_t i = 0; i < n; i++) {
		if (unlinkat(f->dirfd, es[i]->name, 0) < 0 && errno != ENOENT) {
			diag_errno(&d, errno, "could not remove spool file \"%s\"", es[i]->name);
			fail(f, &d);
			continue;
		}
		es[i]->state = ENTRY_SENT;
		f->stats->sent++;
	}
	if (sync_dir(f->dirfd, f->dir, &d) < 0)
		fail(f, &d);
}

/*
 * Send one request of these records (all of one cluster). Returns 0 when they are done with
 * (sent, moved to bad/, or kept after a failure recorded in f), or the number of records of
 * a first part to send on its own when aifd refused the request: the refused record alone,
 * or the records before it, or half of them when the refusal does not say which.
 */
static size_t send_once(struct flush *f, struct entry **es, size_t n)
{
	struct aif_proto_msg req, answer;
	struct aif_diag d;
	uint64_t acked;
	size_t split = 0;

	aif_proto_msg_init(&req, AIF_PROTO_USAGE);
	aif_proto_msg_init(&answer, AIF_PROTO_NONE);
	/* cluster only: the client adds a new nonce each time */
	if (aif_proto_set(&req.header, "cluster", aif_proto_get(&es[0]->msg.header, "cluster")) < 0) {
		aif_diag_clear(&d);
		aif_diag_message(&d, "out of memory");
		fail(f, &d);
		f->stop = true;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct aif_proto_block *r = aif_proto_add_record(&req);
		if (!r || copy_block(r, &es[i]->msg.records[0]) < 0) {
			aif_diag_clear(&d);
			aif_diag_message(&d, "out of memory");
			fail(f, &d);
			f->stop = true;
			goto out;
		}
	}
	if (aif_client_request_by(f->client, &req, &answer, f->deadline_ms, &d) < 0) {
		fail(f, &d); /* aifd unreachable: nothing more to try now */
		f->stop = true;
		goto out;
	}
	switch (answer.kind) {
	case AIF_PROTO_OK:
	case AIF_PROTO_WARN:
		if (aif_proto_get_u64(&answer.header, "acked", AIF_PROTO_MAX_RECORDS, &acked, NULL) == 0 &&
		    acked == n) {
			remove_sent(f, es, n);
			break;
		}
		aif_diag_clear(&d);
		aif_diag_message(&d, "aifd acknowledged %s of %zu usage records",
				 aif_proto_get(&answer.header, "acked") ? aif_proto_get(&answer.header, "acked") : "none",
				 n);
		aif_diag_detail(&d, "The request is all or nothing: the records are kept and sent again.");
		fail(f, &d);
		f->cluster_failed = true;
		break;
	case AIF_PROTO_REFUSE:
		if (n == 1) {
			aif_proto_response_diag(&answer, &d);
			if (move_bad(f, es[0]->name, &d) == 0)
				es[0]->state = ENTRY_GONE;
			break;
		}
		split = refused_record(&answer, n);
		split = split == 0 ? n / 2 : split == 1 ? 1 : split - 1;
		break;
	default: /* error: aifd cannot store them now (its database, another cluster): keep */
		aif_proto_response_diag(&answer, &d);
		fail(f, &d);
		f->cluster_failed = true;
		break;
	}
out:
	aif_proto_msg_free(&answer);
	aif_proto_msg_free(&req);
	return split;
}

/*
 * Send these records of one cluster, splitting the request wherever aifd refuses one, until the
 * refused records are alone (then they go to bad/). Recursion only on first parts, which are
 * at most half (or a refused record alone), so its depth stays logarithmic.
 */
static void send_records(struct flush *f, struct entry **es, size_t n)
{
	while (n > 0 && !f->stop && !f->cluster_failed && !past_deadline(f)) {
		size_t first = send_once(f, es, n);
		if (first == 0)
			return;
		send_records(f, es, first);
		es += first;
		n -= first;
	}
}

/* The READY records of es[0]'s cluster, oldest first, in requests that fit the protocol. */
static void send_cluster(struct flush *f, struct entry *es, size_t n, struct entry **batch)
{
	const char *cluster = aif_proto_get(&es[0].msg.header, "cluster");
	size_t count = 0, bytes = 0;

	f->cluster_failed = false;
	for (size_t i = 0; i < n && !f->stop && !f->cluster_failed; i++) {
		struct entry *e = &es[i];
		if (e->state != ENTRY_READY || e->taken ||
		    strcmp(aif_proto_get(&e->msg.header, "cluster"), cluster) != 0)
			continue;
		e->taken = true;
		/* the file's size bounds the record's share of the request */
		if (count == AIF_PROTO_MAX_RECORDS ||
		    (count && bytes + (size_t)e->size > AIF_PROTO_MAX_REQUEST - REQUEST_OVERHEAD)) {
			send_records(f, batch, count);
			count = bytes = 0;
		}
		batch[count++] = e;
		bytes += (size_t)e->size;
	}
	send_records(f, batch, count);
}

int aif_spool_flush(const char *dir, struct aif_client *client, size_t max_records,
		    int64_t deadline_ms, struct aif_spool_stats *stats, struct aif_diag *diag)
{
	struct flush f = {.dir = dir, .badfd = -1, .client = client, .deadline_ms = deadline_ms,
			  .stats = stats, .diag = diag};
	struct entry *entries = NULL, **batch = NULL;
	size_t n = 0, limit;
	bool missing;
	int lockfd = -1;

	memset(stats, 0, sizeof(*stats));
	aif_diag_clear(diag);
	if (max_records == 0)
		max_records = AIF_SPOOL_FLUSH_MAX;
	f.dirfd = open_spool(dir, false, &missing, diag);
	if (f.dirfd < 0) {
		if (!missing)
			return -1;
		aif_diag_clear(diag);
		return 0; /* nothing was ever spooled here */
	}
	lockfd = openat(f.dirfd, LOCK_NAME, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (lockfd < 0) {
		diag_errno(diag, errno, "could not open the lock file of spool directory \"%s\"", dir);
		close(f.dirfd);
		return -1;
	}
	while (flock(lockfd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EINTR)
			continue;
		if (errno != EWOULDBLOCK) {
			diag_errno(diag, errno, "could not lock spool directory \"%s\"", dir);
			f.failed = true;
		} else {
			stats->busy = true; /* the other flusher sends them; count them only */
			scan(&f, false, &entries, &n);
		}
		goto out;
	}
	if (scan(&f, true, &entries, &n) < 0)
		goto out;
	limit = n < max_records ? n : max_records;
	for (size_t i = 0; i < limit && !past_deadline(&f); i++)
		load(&f, &entries[i]);
	batch = limit ? malloc(limit * sizeof(*batch)) : NULL;
	if (limit && !batch) {
		aif_diag_clear(diag);
		aif_diag_message(diag, "out of memory");
		f.failed = true;
		goto out;
	}
	for (size_t i = 0; i < limit && !f.stop; i++)
		if (entries[i].state == ENTRY_READY && !entries[i].taken)
			send_cluster(&f, entries + i, limit - i, batch);
out:
	for (size_t i = 0; i < n; i++) {
		if (entries[i].state == ENTRY_LISTED || entries[i].state == ENTRY_READY)
			stats->kept++;
		aif_proto_msg_free(&entries[i].msg);
		free(entries[i].name);
	}
	free(entries);
	free(batch);
	if (f.badfd >= 0)
		close(f.badfd);
	if (lockfd >= 0)
		close(lockfd); /* releases the lock */
	close(f.dirfd);
	return f.failed ? -1 : 0;
}
