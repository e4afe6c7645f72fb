/*
 * conn: one client connection: the plugin on a node, or aifctl. Each has a small struct,
 * owned by the struct aifd's list; its fd is non-blocking and watched by the loop.
 *
 * Request handling is not written yet (it arrives with the protocol layer, lib/aif_proto.h):
 * today a connection is closed as soon as it is readable, so a client sees the connection
 * closed without an answer. conn_ready() is where reading requests will start.
 */
#ifndef AIFD_CONN_H
#define AIFD_CONN_H

#include <stdint.h>

#include "loop.h"

struct listener;

struct conn {
	struct watch watch;
	struct conn *prev, *next;   /* in aifd->conns, then aifd->closed */
	uint64_t id;                /* for messages: "connection 17" */
	char peer[96];              /* for messages: address and port, or uid and pid */
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

/* Close the fd now; the struct moves to aifd->closed until the loop's round of events ends. */
void conn_close(struct aifd *aifd, struct conn *conn, const char *why);

/* Free the connections closed in the last round; close and free all with conn_close_all. */
void conn_free_closed(struct aifd *aifd);
void conn_close_all(struct aifd *aifd, const char *why);

#endif
