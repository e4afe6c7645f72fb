/* The aif protocol 1 client and framed I/O: see aif_client.h and docs/protocol.md. */
#include "aif_client.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <munge.h>

struct aif_client {
	int fd;
	bool is_unix;
	struct sockaddr_un sun;
	char host[256];
	char port[8];
	char peer[300]; /* "aifd at X", for messages */
	unsigned long timeout_ms;
	unsigned long wait_ms; /* the bound of the current request, for messages */
	aif_client_encode_fn encode;
	void *encode_arg;
	munge_ctx_t munge;
	uint64_t requests; /* mixed into the nonce if getrandom() fails */
	pid_t owner;       /* the process that made the client: only it opens and closes its fd */
	/* The request sent and not yet answered (aif_client_send_by() to aif_client_receive()). */
	struct {
		bool pending;
		bool reused;  /* over a connection kept from an earlier request */
		bool retried; /* sent again once over a new connection */
		enum aif_proto_kind kind;
		char nonce[AIF_PROTO_NONCE_LEN + 1];
		char *payload;
		size_t len;
		int64_t deadline_ms;
	} sent;
};

static const char *errstr(int err, char *buf, size_t size)
{
	return strerror_r(err, buf, size); /* the GNU strerror_r (_GNU_SOURCE) */
}

/* ---- the client ---- */

static int parse_server(struct aif_client *c, const char *server)
{
	const char *host = server, *port = NULL, *colon;
	size_t hlen;
	uint64_t number;

	if (server[0] == '/') {
		if (strlen(server) >= sizeof(c->sun.sun_path))
			return -1;
		c->is_unix = true;
		c->sun.sun_family = AF_UNIX;
		memcpy(c->sun.sun_path, server, strlen(server) + 1);
		return 0;
	}
	if (server[0] == '[') {
		const char *close = strchr(server, ']');
		if (!close || (close[1] && close[1] != ':'))
			return -1;
		host = server + 1;
		hlen = (size_t)(close - host);
		if (close[1] == ':')
			port = close + 2;
	} else if ((colon = strchr(server, ':')) && !strchr(colon + 1, ':')) {
		hlen = (size_t)(colon - server);
		port = colon + 1;
	} else {
		hlen = strlen(server); /* a host name, or a bare IPv6 address */
	}
	if (hlen == 0 || hlen >= sizeof(c->host))
		return -1;
	memcpy(c->host, host, hlen);
	c->host[hlen] = '\0';
	if (!port) {
		snprintf(c->port, sizeof(c->port), "%d", AIF_PROTO_DEFAULT_PORT);
		return 0;
	}
	if (aif_proto_parse_u64(port, 65535, &number) < 0 || number == 0)
		return -1;
	snprintf(c->port, sizeof(c->port), "%u", (unsigned)(uint16_t)number); /* checked: 1..65535 */
	return 0;
}

struct aif_client *aif_client_new(const struct aif_client_options *opts, struct aif_diag *diag)
{
	const char *server = opts->server && opts->server[0] ? opts->server : AIF_PROTO_DEFAULT_SOCKET;
	struct aif_client *c = calloc(1, sizeof(*c));

	aif_diag_clear(diag);
	if (!c) {
		aif_diag_message(diag, "out of memory");
		return NULL;
	}
	c->fd = -1;
	c->owner = getpid();
	c->timeout_ms = opts->timeout_ms ? opts->timeout_ms : AIF_CLIENT_DEFAULT_TIMEOUT_MS;
	c->encode = opts->encode;
	c->encode_arg = opts->encode_arg;
	snprintf(c->peer, sizeof(c->peer), "aifd at %s", server);
	if (parse_server(c, server) < 0) {
		aif_diag_message(diag, "invalid aifd address \"%s\"", server);
		aif_diag_hint(diag, "Use an absolute Unix socket path, or host, host:port or "
				    "[IPv6]:port for TCP.");
		free(c);
		return NULL;
	}
	if (!c->encode) {
		c->munge = munge_ctx_create();
		if (!c->munge) {
			aif_diag_message(diag, "munge: could not create a context");
			free(c);
			return NULL;
		}
		if (opts->munge_socket &&
		    munge_ctx_set(c->munge, MUNGE_OPT_SOCKET, opts->munge_socket) != EMUNGE_SUCCESS) {
			aif_diag_message(diag, "munge: %s", munge_ctx_strerror(c->munge));
			munge_ctx_destroy(c->munge);
			free(c);
			return NULL;
		}
	}
	return c;
}

/* Forgets the request in flight, if any. */
static void sent_clear(struct aif_client *c)
{
	free(c->sent.payload);
	c->sent.payload = NULL;
	c->sent.pending = false;
}

/*
 * Ends the connection. Used by another process that shares the client's memory but not its
 * descriptors (a clone(CLONE_VM) child: Slurm's contain_spank), it shuts the connection down
 * for both and leaves c->fd, which that memory holds for the owner, for the owner to close.
 */
static void disconnect(struct aif_client *c)
{
	if (c->fd < 0)
		return;
	if (getpid() != c->owner) {
		shutdown(c->fd, SHUT_RDWR);
		return;
	}
	close(c->fd);
	c->fd = -1;
}

void aif_client_disconnect(struct aif_client *c)
{
	disconnect(c);
	sent_clear(c);
}

void aif_client_free(struct aif_client *c)
{
	if (!c)
		return;
	sent_clear(c);
	disconnect(c);
	if (c->munge)
		munge_ctx_destroy(c->munge);
	free(c);
}

/* Non-blocking connect of one address, bounded by the deadline: the fd, or -1 with errno. */
static int connect_one(int family, const struct sockaddr *sa, socklen_t salen, int64_t deadline_ms)
{
	int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int err = 0;
	socklen_t errlen = sizeof(err);

	if (fd < 0)
		return -1;
	for (;;) {
		if (connect(fd, sa, salen) == 0)
			return fd;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN && family == AF_UNIX) {
			/* the listen backlog is full: try again shortly */
			int64_t left = deadline_ms - aif_clock_ms();
			if (left <= 0) {
				errno = ETIMEDOUT;
				break;
			}
			poll(NULL, 0, left < 10 ? (int)left : 10);
			continue;
		}
		if (errno != EINPROGRESS)
			break;
		if (aif_clock_wait_fd(fd, POLLOUT, deadline_ms) < 0)
			break;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &errlen) < 0)
			break;
		if (err == 0)
			return fd;
		errno = err;
		break;
	}
	err = errno;
	close(fd);
	errno = err;
	return -1;
}

static int client_connect(struct aif_client *c, int64_t deadline_ms, struct aif_diag *diag)
{
	char ebuf[128];
	int err;

	aif_diag_clear(diag);
	if (c->is_unix) {
		c->fd = connect_one(AF_UNIX, (const struct sockaddr *)&c->sun, sizeof(c->sun),
				    deadline_ms);
		err = errno;
	} else {
		struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
		struct addrinfo *list, *ai;
		int rc = getaddrinfo(c->host, c->port, &hints, &list);
		if (rc != 0) {
			aif_diag_message(diag, "could not resolve aifd host \"%s\": %s", c->host,
					 rc == EAI_SYSTEM ? errstr(errno, ebuf, sizeof(ebuf))
							  : gai_strerror(rc));
			return -1;
		}
		err = EHOSTUNREACH;
		for (ai = list; ai && c->fd < 0; ai = ai->ai_next) {
			c->fd = connect_one(ai->ai_family, ai->ai_addr, ai->ai_addrlen, deadline_ms);
			err = errno;
			if (c->fd < 0 && err == ETIMEDOUT)
				break;
		}
		freeaddrinfo(list);
		if (c->fd >= 0) {
			int one = 1;
			setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		}
	}
	if (c->fd >= 0)
		return 0;
	if (err == ETIMEDOUT)
		aif_diag_message(diag, "could not connect to %s: timed out after %lu ms", c->peer,
				 c->wait_ms);
	else
		aif_diag_message(diag, "could not connect to %s: %s", c->peer,
				 errstr(err, ebuf, sizeof(ebuf)));
	aif_diag_hint(diag, "Check that aifd is running and listening there.");
	return -1;
}

static int munge_payload(struct aif_client *c, const char *payload, size_t len, char **cred,
			 struct aif_diag *diag)
{
	munge_err_t e;

	if (c->encode)
		return c->encode(c->encode_arg, payload, len, cred, diag);
	e = munge_encode(cred, c->munge, payload, (int)len);
	if (e != EMUNGE_SUCCESS) {
		const char *why = munge_ctx_strerror(c->munge);
		aif_diag_clear(diag);
		aif_diag_message(diag, "munge: %s", why ? why : munge_strerror(e));
		aif_diag_hint(diag, "Check that munged is running: munge -n | unmunge");
		return -1;
	}
	return 0;
}

static void make_nonce(const struct aif_client *c, char out[AIF_PROTO_NONCE_LEN + 1])
{
	uint64_t v;
	ssize_t n;

	do
		n = getrandom(&v, sizeof(v), GRND_NONBLOCK);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(v)) {
		/* no entropy yet (early boot): unique is enough, MUNGE provides the security */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		v = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
		v ^= (uint64_t)getpid() << 40 ^ (uint64_t)(uintptr_t)c ^ c->requests * 0x9E3779B97F4A7C15u;
	}
	snprintf(out, AIF_PROTO_NONCE_LEN + 1, "%016" PRIx64, v);
}

/*
 * The request's text, with nonce= as the header's first field unless it has one already.
 * Returns 0, or -1 with diag.
 */
static int build_payload(const struct aif_client *c, const struct aif_proto_msg *request,
			 char nonce[AIF_PROTO_NONCE_LEN + 1], char **out, size_t *outlen,
			 struct aif_diag *diag)
{
	const char *given = aif_proto_get(&request->header, "nonce");
	char *text, *full;
	size_t len;

	aif_diag_clear(diag);
	if (!aif_proto_kind_is_request(request->kind)) {
		aif_diag_message(diag, "internal error: not a request");
		return -1;
	}
	if (aif_proto_encode(request, &text, &len) < 0) {
		char ebuf[128];
		aif_diag_message(diag, "could not encode the request: %s",
				 errstr(errno, ebuf, sizeof(ebuf)));
		return -1;
	}
	if (given) {
		snprintf(nonce, AIF_PROTO_NONCE_LEN + 1, "%s", given);
		*out = text;
		*outlen = len;
	} else {
		size_t first;

		make_nonce(c, nonce);
		first = (size_t)((char *)memchr(text, '\n', len) - text) + 1;
		full = malloc(len + AIF_PROTO_NONCE_LEN + 8);
		if (!full) {
			free(text);
			aif_diag_message(diag, "out of memory");
			return -1;
		}
		memcpy(full, text, first);
		len = first + (size_t)sprintf(full + first, "nonce=%s\n", nonce);
		memcpy(full + len, text + first, strlen(text + first) + 1);
		len += strlen(text + first);
		free(text);
		*out = full;
		*outlen = len;
	}
	if (*outlen > AIF_PROTO_MAX_REQUEST) {
		aif_diag_message(diag, "request too large");
		aif_diag_detail(diag, "The request has %zu bytes; the limit is %u.", *outlen,
				AIF_PROTO_MAX_REQUEST);
		aif_diag_hint(diag, "Send fewer records per request.");
		free(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}

/*
 * The request in flight failed on its connection, which is dropped; a timeout is said as
 * "timed out after N ms". Returns whether it is worth sending again over a new connection:
 * aifd may close idle connections, so a kept one that failed at once (ECONNRESET, EPIPE) is
 * tried once more (every protocol 1 request is idempotent).
 */
static bool connection_failed(struct aif_client *c, struct aif_diag *diag)
{
	int err = errno;
	bool retry = c->sent.reused && !c->sent.retried && (err == ECONNRESET || err == EPIPE);

	if (err == ETIMEDOUT) {
		aif_diag_clear(diag);
		aif_diag_message(diag, "timed out after %lu ms waiting for %s", c->wait_ms, c->peer);
	}
	disconnect(c);
	return retry;
}

/* Sends the request in flight, over the kept connection or a new one: 0, or -1 (*retry). */
static int send_once(struct aif_client *c, bool *retry, struct aif_diag *diag)
{
	bool reused = c->fd >= 0;
	char *cred = NULL;
	int rc;

	*retry = false;
	c->sent.reused = reused;
	if (getpid() != c->owner) {
		/* a descriptor it opened would exist in this process only, its number in the memory
		 * both share (disconnect()) */
		aif_diag_clear(diag);
		aif_diag_message(diag, "internal error: the client of process %d cannot send from process %d",
				 (int)c->owner, (int)getpid());
		return -1;
	}
	if (munge_payload(c, c->sent.payload, c->sent.len, &cred, diag) < 0)
		return -1;
	if (!reused && client_connect(c, c->sent.deadline_ms, diag) < 0) {
		free(cred);
		return -1;
	}
	rc = aif_proto_write_frame(c->fd, cred, strlen(cred), c->sent.deadline_ms, c->peer, diag);
	free(cred);
	if (rc == 0)
		return 0;
	*retry = connection_failed(c, diag);
	return -1;
}

/* The one more try of connection_failed(), over a new connection: 0, or -1. */
static int send_again(struct aif_client *c, struct aif_diag *diag)
{
	bool retry;

	c->sent.retried = true;
	return send_once(c, &retry, diag);
}

int aif_client_send_by(struct aif_client *c, const struct aif_proto_msg *request,
		       int64_t deadline_ms, struct aif_diag *diag)
{
	int64_t now = aif_clock_ms();
	bool retry;
	int rc;

	if (c->sent.pending)
		disconnect(c); /* its response, should it come, must not pass for this one's */
	sent_clear(c);
	if (deadline_ms - now > (int64_t)c->timeout_ms)
		deadline_ms = now + (int64_t)c->timeout_ms;
	c->wait_ms = deadline_ms > now ? (unsigned long)(deadline_ms - now) : 0;
	c->requests++;
	if (build_payload(c, request, c->sent.nonce, &c->sent.payload, &c->sent.len, diag) < 0)
		return -1;
	c->sent.kind = request->kind;
	c->sent.deadline_ms = deadline_ms;
	c->sent.retried = false;
	rc = send_once(c, &retry, diag);
	if (rc < 0 && retry)
		rc = send_again(c, diag);
	if (rc < 0) {
		sent_clear(c);
		return -1;
	}
	c->sent.pending = true;
	return 0;
}

/* The response's body: 1, or -1 (*retry). */
static int read_once(struct aif_client *c, char **body, size_t *blen, bool *retry,
		     struct aif_diag *diag)
{
	int rc = aif_proto_read_frame(c->fd, body, blen, AIF_PROTO_MAX_FRAME, c->sent.deadline_ms,
				      c->peer, diag);

	*retry = false;
	if (rc == 1)
		return 1;
	if (rc == 0) {
		aif_diag_message(diag, "%s closed the connection without answering", c->peer);
		errno = ECONNRESET;
	}
	*retry = connection_failed(c, diag);
	return -1;
}

/* The response's body, after one more try when connection_failed() says so: 1, or -1. */
static int receive_body(struct aif_client *c, char **body, size_t *blen, struct aif_diag *diag)
{
	bool retry;
	int rc = read_once(c, body, blen, &retry, diag);

	if (rc < 0 && retry && send_again(c, diag) == 0)
		rc = read_once(c, body, blen, &retry, diag);
	return rc;
}

int aif_client_receive(struct aif_client *c, struct aif_proto_msg *response, struct aif_diag *diag)
{
	char *body = NULL;
	size_t blen = 0;
	struct aif_diag inner;
	const char *echo;
	int rc;

	aif_proto_msg_init(response, AIF_PROTO_NONE);
	if (!c->sent.pending) {
		aif_diag_clear(diag);
		aif_diag_message(diag, "internal error: no request sent to %s", c->peer);
		return -1;
	}
	rc = receive_body(c, &body, &blen, diag);
	if (rc < 0) {
		sent_clear(c);
		return -1;
	}
	rc = aif_proto_decode(body, blen, response, &inner);
	free(body);
	if (rc == 0)
		rc = aif_proto_validate_response(response, c->sent.kind, &inner);
	if (rc < 0) {
		aif_diag_clear(diag);
		aif_diag_message(diag, "invalid response from %s", c->peer);
		aif_diag_detail(diag, "%s", inner.message);
		aif_proto_msg_free(response);
		disconnect(c);
		sent_clear(c);
		return -1;
	}
	echo = aif_proto_get(&response->header, "nonce");
	if (echo && strcmp(echo, c->sent.nonce) != 0) {
		aif_diag_clear(diag);
		aif_diag_message(diag, "response from %s does not match the request", c->peer);
		aif_diag_detail(diag, "The request's nonce is %s, the response's %s.", c->sent.nonce, echo);
		aif_proto_msg_free(response);
		disconnect(c);
		sent_clear(c);
		return -1;
	}
	sent_clear(c);
	aif_diag_clear(diag);
	return 0;
}

int aif_client_request(struct aif_client *c, const struct aif_proto_msg *request,
		       struct aif_proto_msg *response, struct aif_diag *diag)
{
	return aif_client_request_by(c, request, response, INT64_MAX, diag);
}

int aif_client_request_by(struct aif_client *c, const struct aif_proto_msg *request,
			  struct aif_proto_msg *response, int64_t deadline_ms, struct aif_diag *diag)
{
	if (aif_client_send_by(c, request, deadline_ms, diag) < 0) {
		aif_proto_msg_init(response, AIF_PROTO_NONE);
		return -1;
	}
	return aif_client_receive(c, response, diag);
}
