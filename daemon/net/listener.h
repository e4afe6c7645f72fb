/*
 * listener: aifd's listening sockets, the Unix socket for local clients and the TCP one for
 * the other nodes. Both are non-blocking; once started, each accepts what the loop finds ready
 * (at most 64 a round) and hands every connection to its accept function.
 */
#ifndef AIFD_LISTENER_H
#define AIFD_LISTENER_H

#include <stdbool.h>
#include <sys/types.h>

#include <sys/un.h>

#include "aif_diag.h"
#include "loop.h"

struct addrinfo;
struct listener;

/* Called with each connection accepted (non-blocking, close-on-exec), which it owns from then on. */
typedef void (*listener_accept_fn)(void *arg, int fd, const struct listener *l);

struct listener {
	struct watch watch;     /* watch.fd < 0: not open */
	char name[160];         /* for messages: the socket's path, or "tcp ADDRESS:PORT" */
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* Unix socket: to remove when closing */
	dev_t dev;              /* Unix socket: what was bound at path, to remove only that */
	ino_t ino;
	struct loop *loop;      /* NULL until started */
	listener_accept_fn accepted;
	void *arg;
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

/* Accept on l (when it is open) from now on, in loop. 0, or -1 (logged). */
int listener_start(struct listener *l, struct loop *loop, listener_accept_fn accepted, void *arg);

/* Close; a Unix socket's path is removed if it is still the socket this listener bound. */
void listener_close(struct listener *l);

#endif
