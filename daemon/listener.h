/*
 * listener: aifd's listening sockets, the Unix socket for local clients and the TCP one for
 * the other nodes. Both are non-blocking; the loop accepts on them.
 */
#ifndef AIFD_LISTENER_H
#define AIFD_LISTENER_H

#include <stdbool.h>
#include <sys/types.h>

#include "aif_diag.h"
#include "config.h"
#include "loop.h"

struct addrinfo;

struct listener {
	struct watch watch;     /* watch.fd < 0: not open */
	char name[160];         /* for messages: the socket's path, or "tcp ADDRESS:PORT" */
	char path[AIFD_SOCKET_PATH_SIZE]; /* Unix socket: the path to remove when closing */
	dev_t dev;              /* Unix socket: what was bound at path, to remove only that */
	ino_t ino;
};

/* A listener that is not open; listener_close() on it does nothing. */
void listener_init(struct listener *l);

/*
 * Resolve the listen setting ("ADDRESS:PORT" or "[IPV6]:PORT", numeric addresses only, so
 * that starting does not wait for DNS). Returns 0 with *res to freeaddrinfo(), or -1 with diag.
 */
int listener_resolve_tcp(const char *text, struct addrinfo **res, struct aif_diag *diag);

int listener_open_tcp(struct listener *l, const char *text);

/*
 * Bind the Unix socket at path, mode 0666 so that any local user can connect (MUNGE, not the
 * socket's mode, says who a client is). Creates the directory (mode 0755) when it is missing,
 * owned by owner/group unless they are -1, so that aifd can remove its socket after giving up
 * root. Removes a socket left at path only when no one listens on it. Returns 0 or -1 (logged).
 */
int listener_open_unix(struct listener *l, const char *path, uid_t owner, gid_t group);

/* Close; a Unix socket's path is removed if it is still the socket this listener bound. */
void listener_close(struct aifd *aifd, struct listener *l);

#endif
