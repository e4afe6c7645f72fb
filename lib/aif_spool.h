/*
 * aif_spool: a node's durable spool of usage records (docs/protocol.md, "usage"), for the
 * records that the prolog and epilog could not deliver to aifd, sent later by the next prolog
 * or epilog on the node and by "aifctl spool flush".
 *
 * A spool is a directory (0700, owned by its user: root on compute nodes) of one file per
 * record, named from the record's identity (cluster, job, node, restart, event), so that the
 * same record spooled twice is one file. A file is an "AIF/1 usage" message with the cluster
 * in its header and the one record, written to a temporary file, fsync()ed and renamed into
 * place: a record file is either complete or absent. Files that can never be sent (corrupt, or
 * refused by aifd) are moved to the subdirectory bad/, next to a NAME.why file that says why;
 * an operator who fixed the cause moves them back. A record aifd refused at once (the prolog's
 * or epilog's own) is put straight into bad/ (aif_spool_put_bad): kept, never sent again.
 *
 * The path is checked, as MUNGE checks its own (src/munged/path.c): every directory from / to
 * the spool's parent belongs to root or to us and is writable by nobody else unless sticky
 * (/tmp); a symbolic link on it is followed only when it belongs to root or to us; the spool
 * itself is ours and 0700 (no group or other write). The walk goes down one directory fd at a
 * time (O_PATH, O_NOFOLLOW), and every file is opened relative to the spool's fd, never by
 * path, so that nobody can swap a component between the check and the use.
 *
 * Plugin-safe: no global state, no signals, never exits; the flush is bounded by a deadline
 * (and the file system's own waits). Putting needs no lock (rename is atomic); flushing takes
 * a non-blocking lock (flock() of the spool directory itself: nothing to create when the file
 * system is full), so that of concurrent flushers (the prolog of one job, the epilog of
 * another, the systemd timer) one flushes and the others skip.
 */
#ifndef AIF_SPOOL_H
#define AIF_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aif_client.h"
#include "aif_diag.h"
#include "aif_proto.h"

#define AIF_SPOOL_DEFAULT_DIR "/var/spool/aif"
/* Records one flush reads at most (0 given to aif_spool_flush): a few requests' worth. */
#define AIF_SPOOL_FLUSH_MAX 10000

/*
 * Open the spool dir (O_RDONLY | O_DIRECTORY) after checking its path (above); if create, its
 * last component is created (0700) when missing. Returns the fd, or -1 with diag (*missing when
 * the spool, or a directory above it, does not exist).
 */
int aif_spool_open(const char *dir, bool create, bool *missing, struct aif_diag *diag);
/* Open sub, a subdirectory of the spool dirfd (at path dir), checked as the spool; -1 with diag. */
int aif_spool_open_sub(int dirfd, const char *dir, const char *sub, bool create, struct aif_diag *diag);

/*
 * Spool one usage record of cluster (the record's fields as in a "usage" request) durably in
 * dir, creating dir (mode 0700) when it is missing. Replaces the file of the same record
 * (cluster, job, node, restart, event) if there is one. Returns 0 once the record is on disk
 * (file and directory fsync()ed), or -1 with diag (invalid record, file system error).
 */
int aif_spool_put(const char *dir, const char *cluster, const struct aif_proto_block *record,
		  struct aif_diag *diag);

/*
 * Keep a record aifd refused (why: its answer) durably in dir/bad/, next to a .why file, as a
 * flush moves its refused records there: never sent again, never lost. A record that is not
 * even valid is kept too, as "invalid.usage" (its copies as invalid~N.usage). where gets the
 * record file's path (or bad/'s, on failure). Returns 0, or -1 with diag.
 */
int aif_spool_put_bad(const char *dir, const char *cluster, const struct aif_proto_block *record,
		      const struct aif_diag *why, char *where, size_t where_size, struct aif_diag *diag);

struct aif_spool_stats {
	size_t sent;  /* records aifd acknowledged, removed from the spool */
	size_t kept;  /* records left in the spool (unsent, unanswered, or beyond max_records) */
	size_t bad;   /* files moved to bad/ by this flush */
	bool busy;    /* another process was flushing: this one did nothing */
	bool unusable; /* the spool itself could not be opened (unsafe, unreadable): none of it read */
	struct aif_diag bad_diag; /* why the first of the bad files was moved aside */
};

/*
 * Send the spooled records, oldest first, at most max_records of them (0: AIF_SPOOL_FLUSH_MAX),
 * in as few "usage" requests as fit (one cluster per request), and remove exactly the files of
 * the requests aifd answered "ok" with every record acknowledged. On "error" or no answer the
 * flush stops and keeps the files; a request refused is split until the refused records are
 * alone, and those go to bad/. Nothing is started after deadline_ms (aif_clock_ms()), and no
 * request waits beyond it.
 *
 * Returns 0 when every record read was sent or moved aside, or the deadline came; -1 with diag
 * when aifd could not take them now (the rest is kept) or the spool could not be read. A missing
 * dir is an empty spool. stats is filled in both cases; when another flusher holds the lock,
 * returns 0 with stats->busy and nothing done.
 */
int aif_spool_flush(const char *dir, struct aif_client *client, size_t max_records,
		    int64_t deadline_ms, struct aif_spool_stats *stats, struct aif_diag *diag);

/* One file of a spool, for aif_spool_list. */
struct aif_spool_item {
	const char *name; /* its file name, in the spool or in bad/ */
	bool bad;         /* in bad/: never sent */
	const char *why;  /* bad/ only: its .why file's text, NULL when it has none */
};
typedef void aif_spool_list_fn(void *arg, const struct aif_spool_item *item);

/*
 * Call fn for each record waiting in the spool dir, then for each file of dir/bad/, both sorted
 * by name. Reads only (no lock: a flush may be removing them). A missing dir is an empty spool.
 * Returns 0, or -1 with diag (an unsafe path, an unreadable directory).
 */
int aif_spool_list(const char *dir, aif_spool_list_fn *fn, void *arg, struct aif_diag *diag);

#endif
