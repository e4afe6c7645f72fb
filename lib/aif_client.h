/*
 * aif_client: talking aif protocol 1 (docs/protocol.md) to aifd, for the SPANK plugin, aifctl
 * and the benchmarks. Safe inside slurmstepd: no global state, no signals (MSG_NOSIGNAL), never
 * exits, and every wait of ours is bounded by the request's deadline.
 *
 * A client is one connection, opened on the first request and kept for the next ones. One
 * thread at a time per client; clients in different threads are independent. It is used by
 * the process that made it; a child that shares its memory but not its descriptors
 * (clone(CLONE_VM), as Slurm's contain_spank runs SPANK callbacks) may only read an answer and
 * end the connection (for both); the client is freed by its process. Not for a fork()ed
 * child: what it ends, it ends for its parent too.
 */
#ifndef AIF_CLIENT_H
#define AIF_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "aif_diag.h"
#include "aif_clock.h"
#include "aif_proto.h"

#define AIF_CLIENT_DEFAULT_TIMEOUT_MS 5000

/*
 * Turns a request message into the frame body: a malloc()ed, NUL-terminated credential.
 * Returns 0, or -1 with diag. The default is munge_encode(); tests substitute their own.
 */
typedef int (*aif_client_encode_fn)(void *arg, const char *payload, size_t len, char **cred,
				    struct aif_diag *diag);

struct aif_client_options {
	/*
	 * Where aifd listens: an absolute Unix socket path ("/run/aif/aifd.sock"), or a TCP
	 * "host", "host:port", "[IPv6]:port" (port 6823 by default). NULL: AIF_PROTO_DEFAULT_SOCKET.
	 */
	const char *server;
	unsigned long timeout_ms;    /* bound on each request, connecting included; 0: 5000 */
	const char *munge_socket;    /* munged's socket; NULL: libmunge's default */
	aif_client_encode_fn encode; /* NULL: MUNGE */
	void *encode_arg;
};

struct aif_client;

/* Checks the options (nothing is connected yet). NULL with diag on a bad address or ENOMEM. */
struct aif_client *aif_client_new(const struct aif_client_options *opts, struct aif_diag *diag);
void aif_client_free(struct aif_client *c);

/*
 * Send one request and wait for its response, within the client's timeout. The client adds the
 * nonce (unless the request has one), encodes, wraps the message in a MUNGE credential, sends
 * it framed, reads the framed response, decodes it into *response (initialized here; free it in
 * every case), checks it against docs/protocol.md and checks that it echoes the nonce.
 * A kept connection that aifd closed meanwhile is reopened once, with a new credential (every
 * protocol 1 request is idempotent).
 *
 * Returns 0 when aifd answered, whatever the answer: look at response->kind (ok, warn, refuse,
 * error) and aif_proto_response_diag(). Returns -1 with diag when it did not (cannot connect,
 * timeout, MUNGE, invalid response); a connection that failed, or answered wrong, is dropped.
 */
int aif_client_request(struct aif_client *c, const struct aif_proto_msg *request,
		       struct aif_proto_msg *response, struct aif_diag *diag);

/*
 * The same, done by deadline_ms (aif_clock_ms()) when that comes before the client's timeout:
 * for callers with a budget of their own, such as a prolog flushing the node's spool.
 */
int aif_client_request_by(struct aif_client *c, const struct aif_proto_msg *request,
			  struct aif_proto_msg *response, int64_t deadline_ms, struct aif_diag *diag);

/*
 * aif_client_request_by() in two halves, for a caller with work of its own to do while aifd
 * answers (slurmstepd sets up the step meanwhile). aif_client_send_by() sends the request:
 * 0, or -1 with diag (nothing in flight). aif_client_receive() waits for its response, by the
 * deadline given to the send (a response already received is read whatever the time), and
 * returns as aif_client_request_by() does. One request in flight per client; a send forgets an
 * earlier one that was never received.
 */
int aif_client_send_by(struct aif_client *c, const struct aif_proto_msg *request,
		       int64_t deadline_ms, struct aif_diag *diag);
int aif_client_receive(struct aif_client *c, struct aif_proto_msg *response, struct aif_diag *diag);

/* Ends the connection now, and forgets a request in flight (the owner's next request opens another). */
void aif_client_disconnect(struct aif_client *c);

#endif
