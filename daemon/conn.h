/*
 * conn: one client connection: the plugin on a node, aifctl, a benchmark. Each has a small
 * struct, owned by the struct aifd's list; its fd is non-blocking and watched by the loop.
 *
 * A connection reads one frame (a request), hands it to the worker pool and stops reading
 * until the answer is sent: requests on one connection are answered in order, one at a time
 * (docs/protocol.md: no pipelining). A connection idle for CONN_IDLE_MS is closed.
 */
#ifndef AIFD_CONN_H
#define AIFD_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"

#define CONN_IDLE_MS (5 * 60 * 1000)

struct listener;
struct request;

enum conn_state {
	CONN_READING, /* waiting for (the rest of) a request frame */
	CONN_BUSY,    /* a worker has the request */
	CONN_WRITING, /* sending the answer */
};

struct conn {
	struct watch watch;
	struct conn *prev, *next;   /* in aifd->conns, then aifd->closed */
	uint64_t id;                /* for messages: "connection 17" */
	char peer[96];              /* for messages: address and port, or uid and pid */
	enum conn_state state;
	int64_t active_ms;          /* last progress, for the idle timeout */
	unsigned char header[4];    /* the frame length being read */
	size_t header_got;
	char *body;                 /* the frame body being read (NUL-terminated when complete) */
	size_t body_len, body_got;
	char *out;                  /* the answer frame being written */
	size_t out_len, out_sent;
	struct request *req;        /* while CONN_BUSY */
};

struct conn_list {
	struct conn *head;
	unsigned long count;
};

/*
 * Take over fd, just accepted on listener: watch it, link it into aifd->conns. Returns the
 * connection, or NULL (logged; fd is closed).
 */
struct conn *conn_open(struct aifd *aifd, int fd, const struct listener *listener);

/* A worker answered req: send the answer on its connection, or drop it if that is closed. */
void conn_answered(struct aifd *aifd, struct request *req);

/* Close the fd now; the struct moves to aifd->closed until the loop's round of events ends. */
void conn_close(struct aifd *aifd, struct conn *conn, const char *why);

/* Close connections idle for CONN_IDLE_MS, or, when stopping, all that wait for a request. */
void conn_sweep(struct aifd *aifd, int64_t now_ms, bool stopping);

/* Free the connections closed in the last round; close and free all with conn_close_all. */
void conn_free_closed(struct aifd *aifd);
void conn_close_all(struct aifd *aifd, const char *why);

#endif
