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

/* ---- the directory and its path ---- */

/* Symbolic links followed on the spool's path at most: the kernel's own limit (MAXSYMLINKS). */
#define MAX_LINKS 40

/*
 * Who may own what lies on the spool's path: root and the user running us, as MUNGE's
 * src/munged/path.c. Whoever else owned a directory or a symbolic link of the path could rename
 * it and put a spool of their own in the spool's place, whose records we would send as ours.
 */
static bool trusted_owner(uid_t uid)
{
	return uid == 0 || uid == geteuid();
}

static void diag_unsafe(struct aif_diag *diag, const char *dir)
{
	aif_diag_clear(diag);
	aif_diag_message(diag, "unsafe spool directory \"%s\"", dir);
}

/*
 * The spool itself must be ours and writable by us alone: records in it are sent with our
 * MUNGE credential (root's on compute nodes), so whoever could write into it could charge
 * usage to any project.
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
		diag_unsafe(diag, path);
		aif_diag_detail(diag, "It is writable by others than its owner (mode %04o); its records are sent as its owner's.",
				(unsigned)(st.st_mode & 07777));
		aif_diag_hint(diag, "chmod 0700 \"%s\"", path);
	}
	return -1;
}

/* A directory above the spool: trusted owner, and writable by nobody else unless sticky (/tmp). */
static int check_parent(const struct stat *st, const char *dir, const char *seen, struct aif_diag *diag)
{
	if (trusted_owner(st->st_uid) && (!(st->st_mode & (S_IWGRP | S_IWOTH)) || (st->st_mode & S_ISVTX)))
		return 0;
	diag_unsafe(diag, dir);
	if (!trusted_owner(st->st_uid))
		aif_diag_detail(diag, "\"%s\" on its path belongs to uid %lu, who could put another directory in the spool's place.",
				seen, (unsigned long)st->st_uid);
	else
		aif_diag_detail(diag, "\"%s\" on its path is writable by group or others without the sticky bit (mode %04o): they could put another directory in the spool's place.",
				seen, (unsigned)(st->st_mode & 07777));
	aif_diag_hint(diag, "Use a spool directory whose every parent belongs to root and is writable by root alone, such as " AIF_SPOOL_DEFAULT_DIR ".");
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

/* A walk down the spool's path, one checked directory at a time (O_PATH fds). */
struct walk {
	const char *dir;     /* as configured, for messages */
	char seen[PATH_MAX]; /* the path walked so far, symbolic links expanded: for messages */
	char rest[PATH_MAX]; /* what is left to walk */
	int fd;              /* the last directory reached, checked */
	int links;
};

/* Start (again) at "/". */
static int walk_root(struct walk *w, struct aif_diag *diag)
{
	struct stat st;

	if (w->fd >= 0)
		close(w->fd);
	w->seen[0] = '\0';
	w->fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (w->fd < 0 || fstat(w->fd, &st) < 0) {
		diag_errno(diag, errno, "could not open spool directory \"%s\"", w->dir);
		return -1;
	}
	return check_parent(&st, w->dir, "/", diag);
}

/* Take rest's next component (not empty, not ".") into name; false at the end. */
static bool walk_next(struct walk *w, char name[NAME_MAX + 1])
{
	char *s = w->rest;
	size_t n;

	for (;;) {
		s += strspn(s, "/");
		n = strcspn(s, "/");
		if (n == 0) {
			w->rest[0] = '\0';
			return false;
		}
		if (!(n == 1 && s[0] == '.'))
			break;
		s += n;
	}
	snprintf(name, NAME_MAX + 1, "%.*s", (int)(n > NAME_MAX ? NAME_MAX : n), s);
	memmove(w->rest, s + n, strlen(s + n) + 1);
	return true;
}

/* Whether rest holds no more components: the one just taken is the spool itself. */
static bool walk_last(const struct walk *w)
{
	const char *s = w->rest;

	for (;;) {
		size_t n;
		s += strspn(s, "/");
		n = strcspn(s, "/");
		if (n == 0)
			return true;
		if (!(n == 1 && s[0] == '.'))
			return false;
		s += n;
	}
}

/* Follow the symbolic link lfd (with st) by putting its target in front of what is left. */
static int walk_link(struct walk *w, int lfd, const struct stat *st, struct aif_diag *diag)
{
	char target[PATH_MAX];
	ssize_t n;

	if (!trusted_owner(st->st_uid)) {
		diag_unsafe(diag, w->dir);
		aif_diag_detail(diag, "\"%s\" on its path is a symbolic link that belongs to uid %lu, who could point it elsewhere.",
				w->seen, (unsigned long)st->st_uid);
		aif_diag_hint(diag, "Use a spool directory whose every parent belongs to root and is writable by root alone, such as " AIF_SPOOL_DEFAULT_DIR ".");
		return -1;
	}
	if (++w->links > MAX_LINKS) {
		diag_errno(diag, ELOOP, "could not open spool directory \"%s\"", w->dir);
		return -1;
	}
	n = readlinkat(lfd, "", target, sizeof(target));
	if (n < 0 || (size_t)n >= sizeof(target) || (size_t)n + 1 + strlen(w->rest) >= sizeof(w->rest)) {
		diag_errno(diag, n < 0 ? errno : ENAMETOOLONG, "could not open spool directory \"%s\"", w->dir);
		return -1;
	}
	target[n] = '\0';
	memmove(w->rest + n + 1, w->rest, strlen(w->rest) + 1);
	memcpy(w->rest, target, (size_t)n);
	w->rest[n] = '/';
	if (target[0] == '/')
		return walk_root(w, diag);
	*strrchr(w->seen, '/') = '\0'; /* relative to the link's directory */
	return 0;
}

/*
 * One step down to name: a directory (checked as a parent unless last), or a symbolic link
 * (followed). Creates the last one (0700) when missing if create.
 */
static int walk_step(struct walk *w, const char *name, bool create, bool *missing, struct aif_diag *diag)
{
	size_t len = strlen(w->seen);
	bool last = walk_last(w);
	struct stat st;
	int fd = openat(w->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0 && errno == ENOENT && create && last) {
		int pfd;
		if (mkdirat(w->fd, name, 0700) < 0 && errno != EEXIST) {
			diag_errno(diag, errno, "could not create spool directory \"%s\"", w->dir);
			return -1;
		}
		/* the new directory's own name must last too */
		pfd = openat(w->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (pfd >= 0) {
			fsync(pfd);
			close(pfd);
		}
		fd = openat(w->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	}
	if (fd < 0 || fstat(fd, &st) < 0) {
		*missing = errno == ENOENT;
		diag_errno(diag, errno, "could not open spool directory \"%s\"", w->dir);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	snprintf(w->seen + len, sizeof(w->seen) - len, "/%s", name);
	if (S_ISLNK(st.st_mode)) {
		int rc = walk_link(w, fd, &st, diag);
		close(fd);
		return rc;
	}
	if (!S_ISDIR(st.st_mode)) {
		close(fd);
		aif_diag_clear(diag);
		aif_diag_message(diag, "could not open spool directory \"%s\": \"%s\" is not a directory", w->dir, w->seen);
		return -1;
	}
	close(w->fd);
	w->fd = fd;
	return last ? 0 : check_parent(&st, w->dir, w->seen, diag);
}

int aif_spool_open(const char *dir, bool create, bool *missing, struct aif_diag *diag)
{
	struct walk w = {.dir = dir, .fd = -1};
	char name[NAME_MAX + 1];
	int fd = -1;

	*missing = false;
	aif_diag_clear(diag);
	if (dir[0] != '/' || strlen(dir) >= sizeof(w.rest)) {
		aif_diag_message(diag, "invalid spool directory \"%s\": not an absolute path of at most %d bytes", dir,
				 PATH_MAX - 1);
		return -1;
	}
	strcpy(w.rest, dir);
	if (walk_root(&w, diag) < 0)
		goto out;
	while (walk_next(&w, name))
		if (walk_step(&w, name, create, missing, diag) < 0)
			goto out;
	fd = openat(w.fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		diag_errno(diag, errno, "could not open spool directory \"%s\"", dir);
	else if (check_owner(fd, dir, diag) < 0) {
		close(fd);
		fd = -1;
	}
out:
	if (w.fd >= 0)
		close(w.fd);
	return fd;
}

int aif_spool_open_sub(int dirfd, const char *dir, const char *sub, bool create, struct aif_diag *diag)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, sub);
	if (create && mkdirat(dirfd, sub, 0700) < 0 && errno != EEXIST) {
		diag_errno(diag, errno, "could not create directory \"%s\"", path);
		return -1;
	}
	fd = openat(dirfd, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		diag_errno(diag, errno, "could not open directory \"%s\"", path);
		return -1;
	}
	if (check_owner(fd, path, diag) < 0) {
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

/* diag for a file of the spool not written: what was lost (nothing else) and, when full, what to do. */
static void diag_write(struct aif_diag *diag, int err, const char *dir, const char *name)
{
	diag_errno(diag, err, "could not write spool file \"%s/%s\"", dir, name);
	aif_diag_detail(diag, "The files already in \"%s\" are unchanged.", dir);
	if (err == ENOSPC || err == EDQUOT)
		aif_diag_hint(diag, "Free space on the file system of \"%s\".", dir);
}

/*
 * text in a new temporary file of dirfd (TMP_PREFIX name .RANDOM, never a link: O_EXCL),
 * fsync()ed; its name in tmp. Returns 0, or -1 with diag (nothing left behind).
 */
static int write_tmp(int dirfd, const char *dir, const char *name, const char *text, size_t len,
		     char tmp[NAME_MAX + 1], struct aif_diag *diag)
{
	struct timespec ts;
	int fd = -1, err;

	clock_gettime(CLOCK_REALTIME, &ts);
	for (unsigned i = 0; i < 100 && fd < 0; i++) {
		snprintf(tmp, NAME_MAX + 1, TMP_PREFIX "%.200s.%08lx%02x", name,
			 (unsigned long)((unsigned long)ts.tv_nsec ^ ((unsigned long)getpid() << 12)), i);
		fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0 && errno != EEXIST)
			break;
	}
	if (fd < 0) {
		diag_write(diag, errno, dir, name);
		return -1;
	}
	if (write_all(fd, text, len) < 0 || fsync(fd) < 0) {
		err = errno;
		close(fd);
		goto fail;
	}
	if (close(fd) < 0) {
		err = errno;
		goto fail;
	}
	return 0;
fail:
	unlinkat(dirfd, tmp, 0);
	diag_write(diag, err, dir, name);
	return -1;
}

/*
 * Write text durably as dirfd/name: into a temporary file of the same directory, fsync()ed,
 * renamed over name, then the directory fsync()ed. Returns 0, or -1 with diag (no temporary
 * file left behind, an earlier dirfd/name unchanged).
 */
static int write_file(int dirfd, const char *dir, const char *name, const char *text, size_t len,
		      struct aif_diag *diag)
{
	char tmp[NAME_MAX + 1];

	if (write_tmp(dirfd, dir, name, text, len, tmp, diag) < 0)
		return -1;
	if (renameat(dirfd, tmp, dirfd, name) < 0) {
		int err = errno;
		unlinkat(dirfd, tmp, 0);
		diag_write(diag, err, dir, name);
		return -1;
	}
	return sync_dir(dirfd, dir, diag);
}

/*
 * The text of a spool file holding record of cluster (*text, *len, to free) and its file name.
 * Returns 0, or -1 with diag: *text is then set only when the record could be encoded but is
 * not valid (name then "invalid.usage").
 */
static int encode_record(const char *cluster, const struct aif_proto_block *record, char **text,
			 size_t *len, char name[NAME_MAX + 1], struct aif_diag *diag)
{
	struct aif_proto_msg m;
	struct aif_proto_block *r;
	int rc = -1;

	*text = NULL;
	*len = 0;
	aif_diag_clear(diag);
	aif_proto_msg_init(&m, AIF_PROTO_USAGE);
	if (aif_proto_set(&m.header, "cluster", cluster) < 0 || !(r = aif_proto_add_record(&m)) ||
	    copy_block(r, record) < 0) {
		aif_diag_message(diag, "%s", errno == ENOMEM ? "out of memory" : "invalid cluster name or record field");
		goto out;
	}
	/* the file's text has no nonce: each sending gets a new one */
	if (aif_proto_encode(&m, text, len) < 0) {
		*text = NULL;
		aif_diag_message(diag, "could not encode the usage record");
		goto out;
	}
	if (check_message(&m, name, diag) < 0) {
		char why[sizeof(diag->message)];
		snprintf(why, sizeof(why), "%s", diag->message);
		aif_diag_message(diag, "invalid usage record: %s", why);
		snprintf(name, NAME_MAX + 1, "invalid" SUFFIX);
		goto out;
	}
	rc = 0;
out:
	aif_proto_msg_free(&m);
	return rc;
}

int aif_spool_put(const char *dir, const char *cluster, const struct aif_proto_block *record,
		  struct aif_diag *diag)
{
	char name[NAME_MAX + 1], *text;
	size_t len;
	bool missing;
	int dirfd, rc = -1;

	if (encode_record(cluster, record, &text, &len, name, diag) < 0)
		goto out;
	dirfd = aif_spool_open(dir, true, &missing, diag);
	if (dirfd < 0)
		goto out;
	rc = write_file(dirfd, dir, name, text, len, diag);
	close(dirfd);
out:
	free(text);
	return rc;
}

/* ---- bad/: what can never be sent ---- */

/*
 * Rename fromfd/from into bad/ as name, else as name~N (before the suffix), never over a file
 * there (RENAME_NOREPLACE: a plugin and a flusher may put there at once). The name taken is
 * left in target. Returns 0, or -1 with diag.
 */
static int place_bad(int fromfd, const char *from, int badfd, const char *badpath, const char *name,
		     char target[NAME_MAX + 1], struct aif_diag *diag)
{
	size_t stem = has_suffix(name, SUFFIX) ? strlen(name) - strlen(SUFFIX) : strlen(name);
	struct stat st;

	for (int copy = 0; copy <= BAD_COPIES; copy++) {
		int rc;
		if (copy == 0)
			snprintf(target, NAME_MAX + 1, "%s", name);
		else
			snprintf(target, NAME_MAX + 1, "%.*s~%d%s", (int)(stem < NAME_MAX - 16 ? stem : NAME_MAX - 16),
				 name, copy, name + stem);
		rc = renameat2(fromfd, from, badfd, target, RENAME_NOREPLACE);
		if (rc < 0 && errno == EINVAL && fstatat(badfd, target, &st, AT_SYMLINK_NOFOLLOW) < 0)
			rc = renameat(fromfd, from, badfd, target); /* a file system without NOREPLACE */
		else if (rc < 0 && errno == EINVAL)
			errno = EEXIST;
		if (rc == 0)
			return 0;
		if (errno != EEXIST) {
			diag_errno(diag, errno, "could not move spool file \"%s\" to \"%s\"", from, badpath);
			return -1;
		}
	}
	aif_diag_clear(diag);
	aif_diag_message(diag, "could not move \"%s\" to \"%s\": %d copies are there already", name, badpath,
			 BAD_COPIES);
	aif_diag_hint(diag, "Remove the copies of \"%s\" in \"%s\" once their cause is fixed.", name, badpath);
	return -1;
}

/* bad/target.why, durably: why target is there. Returns 0, or -1 with diag. */
static int write_why(int badfd, const char *badpath, const char *target, const struct aif_diag *why,
		     struct aif_diag *diag)
{
	char whyname[NAME_MAX + 1], text[1200];

	snprintf(whyname, sizeof(whyname), "%.*s%s", NAME_MAX - 4, target, WHY_SUFFIX);
	aif_diag_format(why, text, sizeof(text) - 1);
	strcat(text, "\n"); /* room kept above */
	return write_file(badfd, badpath, whyname, text, strlen(text), diag);
}

int aif_spool_put_bad(const char *dir, const char *cluster, const struct aif_proto_block *record,
		      const struct aif_diag *why, char *where, size_t where_size, struct aif_diag *diag)
{
	char name[NAME_MAX + 1], target[NAME_MAX + 1], tmp[NAME_MAX + 1], badpath[PATH_MAX], *text;
	size_t len;
	bool missing;
	int dirfd, badfd = -1, rc = -1;

	snprintf(where, where_size, "%s/" BAD_DIR, dir);
	/* an invalid record is kept all the same (as "invalid.usage"): aifd's word is what counts */
	if (encode_record(cluster, record, &text, &len, name, diag) < 0 && !text)
		return -1;
	snprintf(badpath, sizeof(badpath), "%s/" BAD_DIR, dir);
	dirfd = aif_spool_open(dir, true, &missing, diag);
	if (dirfd < 0)
		goto out;
	badfd = aif_spool_open_sub(dirfd, dir, BAD_DIR, true, diag);
	if (badfd < 0 || write_tmp(badfd, badpath, name, text, len, tmp, diag) < 0)
		goto out;
	if (place_bad(badfd, tmp, badfd, badpath, name, target, diag) < 0) {
		unlinkat(badfd, tmp, 0);
		goto out;
	}
	snprintf(where, where_size, "%s/%s", badpath, target);
	if (sync_dir(badfd, badpath, diag) < 0 || sync_dir(dirfd, dir, diag) < 0 ||
	    write_why(badfd, badpath, target, why, diag) < 0)
		goto out;
	rc = 0;
out:
	if (badfd >= 0)
		close(badfd);
	if (dirfd >= 0)
		close(dirfd);
	free(text);
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
 * then stays where it is. A .why that could not be written is recorded in f too; the record
 * is in bad/ all the same (never sent again, and the log says why).
 */
static int move_bad(struct flush *f, const char *name, const struct aif_diag *why)
{
	char target[NAME_MAX + 1], badpath[PATH_MAX];
	struct aif_diag d;

	snprintf(badpath, sizeof(badpath), "%s/" BAD_DIR, f->dir);
	if (f->badfd < 0 && (f->badfd = aif_spool_open_sub(f->dirfd, f->dir, BAD_DIR, true, &d)) < 0) {
		fail(f, &d);
		return -1;
	}
	if (place_bad(f->dirfd, name, f->badfd, badpath, name, target, &d) < 0) {
		fail(f, &d);
		return -1;
	}
	if (sync_dir(f->badfd, badpath, &d) < 0 || sync_dir(f->dirfd, f->dir, &d) < 0 ||
	    write_why(f->badfd, badpath, target, why, &d) < 0)
		fail(f, &d);
	if (!f->stats->bad) {
		d = *why;
		aif_diag_message(&d, "spooled usage record moved aside: %s", why->message);
		aif_diag_hint(&d, "It is now %s/%s. Once the cause is fixed, move it back into %s to send it again.",
			      badpath, target, f->dir);
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

	memset(stats, 0, sizeof(*stats));
	aif_diag_clear(diag);
	if (max_records == 0)
		max_records = AIF_SPOOL_FLUSH_MAX;
	f.dirfd = aif_spool_open(dir, false, &missing, diag);
	if (f.dirfd < 0) {
		if (!missing) {
			stats->unusable = true;
			return -1;
		}
		aif_diag_clear(diag);
		return 0; /* nothing was ever spooled here */
	}
	/* the directory itself is the lock: no file to create, even on a full file system */
	while (flock(f.dirfd, LOCK_EX | LOCK_NB) < 0) {
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
	close(f.dirfd); /* releases the lock */
	return f.failed ? -1 : 0;
}

/* ---- listing ---- */

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * The names of fd's entries, sorted (*names, *n; free each and the array): in the spool, its
 * record files; in bad/, every file but the .why files. Returns 0, or -1 (errno).
 */
static int sorted_names(int fd, bool bad, char ***names, size_t *n)
{
	size_t cap = 0;
	const struct dirent *de;
	DIR *dp;
	int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	*names = NULL;
	*n = 0;
	if (dfd < 0 || !(dp = fdopendir(dfd))) {
		if (dfd >= 0)
			close(dfd);
		return -1;
	}
	while ((de = readdir(dp))) {
		bool wanted = bad ? strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0 &&
					    !has_suffix(de->d_name, WHY_SUFFIX)
				  : de->d_name[0] != '.' && has_suffix(de->d_name, SUFFIX);
		if (!wanted)
			continue;
		if (*n == cap) {
			char **grown = realloc(*names, (cap = cap ? cap * 2 : 16) * sizeof(**names));
			if (!grown)
				break;
			*names = grown;
		}
		if (!((*names)[*n] = strdup(de->d_name)))
			break;
		(*n)++;
	}
	closedir(dp);
	if (*n)
		qsort(*names, *n, sizeof(**names), cmp_name);
	return 0;
}

/* bad/name.why's text (at most size - 1 bytes), or NULL when there is none. */
static const char *read_why(int badfd, const char *name, char *buf, size_t size)
{
	char whyname[NAME_MAX + 1];
	ssize_t got;
	int fd;

	snprintf(whyname, sizeof(whyname), "%.*s%s", NAME_MAX - 4, name, WHY_SUFFIX);
	fd = openat(badfd, whyname, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	got = read(fd, buf, size - 1);
	close(fd);
	if (got < 0)
		return NULL;
	buf[got] = '\0';
	return buf;
}

/* Call fn for each name of fd (bad: with its .why). Returns 0, or -1 with diag. */
static int list_dir(int fd, const char *path, bool bad, aif_spool_list_fn *fn, void *arg, struct aif_diag *diag)
{
	char **names, why[2048];
	size_t n;

	if (sorted_names(fd, bad, &names, &n) < 0) {
		diag_errno(diag, errno, "could not read spool directory \"%s\"", path);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		struct aif_spool_item item = {.name = names[i], .bad = bad};
		if (bad)
			item.why = read_why(fd, names[i], why, sizeof(why));
		fn(arg, &item);
		free(names[i]);
	}
	free(names);
	return 0;
}

int aif_spool_list(const char *dir, aif_spool_list_fn *fn, void *arg, struct aif_diag *diag)
{
	char badpath[PATH_MAX];
	bool missing;
	int rc, badfd, dirfd = aif_spool_open(dir, false, &missing, diag);

	if (dirfd < 0) {
		if (!missing)
			return -1;
		aif_diag_clear(diag);
		return 0;
	}
	rc = list_dir(dirfd, dir, false, fn, arg, diag);
	snprintf(badpath, sizeof(badpath), "%s/" BAD_DIR, dir);
	badfd = openat(dirfd, BAD_DIR, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (rc == 0 && badfd >= 0) {
		close(badfd);
		badfd = aif_spool_open_sub(dirfd, dir, BAD_DIR, false, diag);
		rc = badfd < 0 ? -1 : list_dir(badfd, badpath, true, fn, arg, diag);
	} else if (rc == 0 && errno != ENOENT) {
		diag_errno(diag, errno, "could not open directory \"%s\"", badpath);
		rc = -1;
	}
	if (badfd >= 0)
		close(badfd);
	close(dirfd);
	return rc;
}
