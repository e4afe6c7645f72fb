/*
 * A fake aifd for unit tests of the client side (test_proto, test_spool): a thread that accepts
 * connections on a Unix or TCP socket, one at a time, and hands each to the test's serve(),
 * which reads requests and answers them with the helpers below. No munged: clients use
 * fake_encode(), which the server reads back.
 */
#ifndef AIF_TEST_FAKE_SERVER_H
#define AIF_TEST_FAKE_SERVER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "aif_diag.h"
#include "aif_proto.h"

struct fake_server {
	int listen_fd;
	int port;                /* TCP when nonzero */
	char dir[64], path[128]; /* the Unix socket and its private directory */
	char address[160];       /* aif_client_options.server for this server */
	int connections;
	void (*serve)(void *arg, int fd); /* one connection, until it ends */
	void *arg;
	pthread_t thread;
};

/* Listen (TCP on 127.0.0.1, else a Unix socket in a new directory) and start the thread. */
void fake_server_start(struct fake_server *s, bool tcp, void (*serve)(void *arg, int fd), void *arg);
/* Stop accepting and join the thread. Call after the clients are freed (their connections end). */
void fake_server_stop(struct fake_server *s);

/* The client's "credential": "CRED:" then the request message. */
int fake_encode(void *arg, const char *payload, size_t len, char **cred, struct aif_diag *diag);

/*
 * Read one request as aifd would: the frame, the "CRED:" of fake_encode(), the message decoded
 * and valid, into *req (free it). The message text goes to text (of size, if not NULL).
 * Returns 1; 0 when the client closed the connection; -1 when the request is not what a client
 * must send (nothing to free).
 */
int fake_server_read(int fd, struct aif_proto_msg *req, char *text, size_t size);
/* Send m as a response frame: 0, or -1. */
int fake_server_reply(int fd, const struct aif_proto_msg *m);

#endif
