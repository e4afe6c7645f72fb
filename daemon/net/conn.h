/*
 * conn: one client connection: the plugin on a node, aifctl, a benchmark. Each has a small
 * struct, owned by the struct conns it was opened in; its fd is non-blocking and watched by
 * the loop. A complete frame goes to the worker pool; the answer comes back through
 * conn_answered().
 *
 * A connection reads one frame (a request), hands it to the worker pool and stops reading
 * until the answer is sent: requests on one connection are answered in order, one at a time
 * (docs/protocol.md: no pipelining).
 *
 * Until a frame is complete and MUNGE has vouched for it, nothing is known of its sender (over
 * TCP not even a uid), so every unauthenticated byte gets bounded work and memory
 * (docs/aifd.md, "Limits"):
 * - a frame's body grows with the bytes received, never to its announced length at once;
 * - a frame must be complete CONN_FRAME_MS after its first byte, and a new connection must
 *   send its first one within CONN_FRAME_MS; between requests a connection may stay idle
 *   for CONN_IDLE_MS. Bytes that trickle in do not extend either;
 * - an answer must be read within CONN_WRITE_MS (CONN_STOP_WRITE_MS once aifd is stopping);
 * - at most max_conns connections, from the open-file limit aifd gets; when they are all
 *   open, the oldest one without a request being handled (one still sending its request,
 *   idle, or not reading its answer) is closed to make room, so that old slow connections
 *   lose to a fresh request;
 * - at most max_per_uid connections of one uid on the Unix socket (root and SlurmUser are
 *   not limited); more are refused;
 * - at most CONN_BUFFER_BUDGET bytes of frames received and not yet answered; beyond it the
 *   connection with the oldest incomplete frame is closed.
 */
#ifndef AIFD_CONN_H
#define AIFD_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "log.h"
#include "loop.h"
#include "pool.h"

#define CONN_IDLE_MS (5 * 60 * 1000)
#define CONN_FRAME_MS (10 * 1000)        /* twice the plugin's own timeout */
#define CONN_WRITE_MS (10 * 1000)
#define CONN_STOP_WRITE_MS 1000
#define CONN_FD_RESERVE 256              /* fds kept for PostgreSQL, munged, slurmctld, NSS */
#define CONN_MAX_CEILING 65536           /* whatever the open-file limit */
#define CONN_MAX_PER_UID 64
#define CONN_BUFFER_BUDGET ((size_t)64 << 20)
#define CONN_LOG_EVERY_MS (10 * 1000)    /* one warning of a kind, then a count */

struct listener;
struct request;

enum conn_state {
	CONN_READING, /* new, or receiving a request frame: CONN_FRAME_MS */
	CONN_IDLE,    /* between requests: CONN_IDLE_MS */
	CONN_BUSY,    /* a worker has the request */
	CONN_WRITING, /* sending the answer: CONN_WRITE_MS */
};

struct conn;
struct conn_queue;

/* A place in a queue ordered by age: the oldest at the head. */
struct conn_link {
	struct conn_link *prev, *next;
	struct conn *conn;
	struct conn_queue *queue;   /* NULL: in none */
};

struct conn_queue {
	struct conn_link *head, *tail;
	unsigned long count;
};

struct conns;

struct conn {
	struct watch watch;
	struct conns *owner;
	struct conn *prev, *next;   /* in conns.all, then conns.closed */
	struct conn_link by_state;  /* in conns.reading, .idle or .writing, by since_ms */
	struct conn_link by_body;   /* in conns.bodies while body holds bytes of a frame */
	uint64_t id;                /* for messages: "connection 17" */
	char peer[96];              /* for messages: address and port, or uid and pid */
	bool local;                 /* on the Unix socket: uid is the kernel's (SO_PEERCRED) */
	bool uid_counted;           /* counted against max_per_uid */
	uid_t uid;
	enum conn_state state;
	int64_t since_ms;           /* when the state's deadline started */
	unsigned char header[4];    /* the frame length being read */
	size_t header_got;
	char *body;                 /* the frame body being read (NUL-terminated when complete) */
	size_t body_len, body_got, body_cap;
	char *out;                  /* the answer frame being written */
	size_t out_len, out_sent;
	struct request *req;        /* while CONN_BUSY, also once closed: until the workers give it back */
	bool released;              /* out of conns.all: in conns.closed, to be freed */
};

struct conn_list {
	struct conn *head;
	unsigned long count;
};

enum conn_log_kind {
	CONN_LOG_EVICTED,  /* closed to make room for a new connection */
	CONN_LOG_FULL,     /* refused: a worker handles every connection's request */
	CONN_LOG_PER_UID,  /* refused: the uid holds max_per_uid */
	CONN_LOG_BUDGET,   /* closed: CONN_BUFFER_BUDGET reached */
	CONN_LOG_FRAME,    /* closed: its frame was not complete in time */
	CONN_LOG_WRITE,    /* closed: its answer was not read in time */
	CONN_LOG_LENGTH,   /* closed: an invalid frame length */
	CONN_LOG_KINDS
};

#define CONN_UID_BUCKETS 256

struct conn_uid_count;

/* Every connection of aifd, and the limits on them. */
struct conns {
	struct loop *loop;          /* where the connections are watched */
	struct pool *pool;          /* where their requests go */
	struct watch answers;       /* pool_fd(): answers are ready */
	unsigned long inflight;     /* requests received and not yet answered */
	struct conn_list all;       /* open connections */
	struct conn_list closed;    /* closed in this round of events; freed after it */
	struct conn_queue reading, idle, writing, bodies;
	size_t buffered;            /* bytes of frames received and not yet answered */
	unsigned long max_conns, max_per_uid;
	unsigned long nofile;       /* RLIMIT_NOFILE's soft limit at start-up */
	uid_t slurm_uid;            /* not limited per uid, as root */
	struct conn_uid_count *uids[CONN_UID_BUCKETS];
	int64_t stop_ms;            /* when aifd began stopping; 0 before */
	struct log_limit logs[CONN_LOG_KINDS]; /* one warning of a kind per CONN_LOG_EVERY_MS */
};

/*
 * Empty, with the limits derived from the open-file limit aifd runs with (logged): requests go
 * to pool, whose answers, like the connections, are watched by loop; slurm_uid, as root, is
 * not limited per uid. 0, or -1 (logged).
 */
int conn_init(struct conns *cs, struct loop *loop, struct pool *pool, uid_t slurm_uid);

/*
 * The listeners' accept function (listener_accept_fn; conns is the struct conns): take over
 * fd, just accepted on listener: within the limits (which may close another connection to make
 * room), watch it and link it into conns; else close it (logged when a limit refused it).
 */
void conn_accept(void *conns, int fd, const struct listener *listener);

/* Close the fd now; the struct moves to conns.closed until the loop's round of events ends. */
void conn_close(struct conns *cs, struct conn *conn, const char *why);

/*
 * Close the connections past their deadline (and, once stopping, all that wait for or send a
 * request, and the writers past CONN_STOP_WRITE_MS). Returns the milliseconds until the next
 * deadline, at most max_wait_ms.
 */
int conn_sweep(struct conns *cs, int64_t now_ms, int max_wait_ms);

/* aifd is stopping: from now on answers get CONN_STOP_WRITE_MS to be read. */
void conn_stop(struct conns *cs, int64_t now_ms);

/* Free the connections closed in the last round; close and free all with conn_close_all. */
void conn_free_closed(struct conns *cs);
void conn_close_all(struct conns *cs, const char *why);

#endif
