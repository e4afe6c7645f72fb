#include "conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "aif_client.h"
#include "aif_proto.h"
#include "aifd.h"
#include "log.h"
#include "pool.h"
#include "request.h"

static void list_push(struct conn_list *list, struct conn *conn)
{
	conn->prev = NULL;
	conn->next = list->head;
	if (list->head)
		list->head->prev = conn;
	list->head = conn;
	list->count++;
}

static void list_remove(struct conn_list *list, struct conn *conn)
{
	if (conn->prev)
		conn->prev->next = conn->next;
	else
		list->head = conn->next;
	if (conn->next)
		conn->next->prev = conn->prev;
	conn->prev = conn->next = NULL;
	list->count--;
}

/* The peer for messages; for the Unix socket what the kernel says, not yet what MUNGE says. */
static void describe_peer(int fd, char *buf, size_t size)
{
	struct sockaddr_storage addr;
	socklen_t len = sizeof(addr);
	char host[INET6_ADDRSTRLEN];

	if (getpeername(fd, (struct sockaddr *)&addr, &len) < 0) {
		snprintf(buf, size, "unknown peer");
		return;
	}
	if (addr.ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&addr;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		snprintf(buf, size, "%s:%u", host, ntohs(in->sin_port));
	} else if (addr.ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&addr;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		snprintf(buf, size, "[%s]:%u", host, ntohs(in6->sin6_port));
	} else {
		struct ucred cred;
		socklen_t cred_len = sizeof(cred);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) == 0)
			snprintf(buf, size, "local uid %u pid %ld", (unsigned)cred.uid, (long)cred.pid);
		else
			snprintf(buf, size, "local peer");
	}
}

static struct conn *conn_of(struct watch *watch)
{
	return (struct conn *)((char *)watch - offsetof(struct conn, watch));
}

/* Read what is there of the frame; returns 1 when it is complete, 0 to wait, -1 closed. */
static int read_frame(struct aifd *aifd, struct conn *conn)
{
	for (;;) {
		ssize_t n;
		bool in_header = conn->header_got < sizeof(conn->header);

		if (in_header)
			n = read(conn->watch.fd, conn->header + conn->header_got,
				 sizeof(conn->header) - conn->header_got);
		else
			n = read(conn->watch.fd, conn->body + conn->body_got,
				 conn->body_len - conn->body_got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n < 0) {
			conn_close(aifd, conn, strerror(errno));
			return -1;
		}
		if (n == 0) {
			conn_close(aifd, conn, conn->header_got ? "the client closed the connection in the middle of a request"
								: "closed by the client");
			return -1;
		}
		if (in_header) {
			uint32_t len;
			conn->header_got += (size_t)n;
			if (conn->header_got < sizeof(conn->header))
				continue;
			len = aif_proto_frame_length(conn->header);
			if (len == 0 || len > AIF_PROTO_MAX_FRAME) {
				log_warning("connection %llu from %s: frame of %lu bytes (allowed: 1 to %u); closing",
					    (unsigned long long)conn->id, conn->peer, (unsigned long)len,
					    AIF_PROTO_MAX_FRAME);
				conn_close(aifd, conn, "invalid frame length");
				return -1;
			}
			conn->body = malloc((size_t)len + 1);
			if (!conn->body) {
				conn_close(aifd, conn, "out of memory");
				return -1;
			}
			conn->body_len = len;
			conn->body_got = 0;
			continue;
		}
		conn->body_got += (size_t)n;
		if (conn->body_got == conn->body_len) {
			conn->body[conn->body_len] = '\0'; /* munge_decode() takes a string */
			return 1;
		}
	}
}

static int set_events(struct aifd *aifd, struct conn *conn, uint32_t events)
{
	if (loop_modify(aifd, &conn->watch, events) < 0) {
		conn_close(aifd, conn, "could not change the events watched");
		return -1;
	}
	return 0;
}

/* A complete frame: to the workers, and stop reading until it is answered. */
static void dispatch(struct aifd *aifd, struct conn *conn)
{
	struct request *req = request_new(conn->body, conn->body_len);

	conn->body = NULL;
	conn->header_got = 0;
	if (!req) {
		conn_close(aifd, conn, "out of memory");
		return;
	}
	if (set_events(aifd, conn, 0) < 0) {
		request_free(req);
		return;
	}
	req->conn = conn;
	req->conn_id = conn->id;
	memcpy(req->peer, conn->peer, sizeof(req->peer));
	req->received_ms = aif_clock_ms();
	conn->req = req;
	conn->state = CONN_BUSY;
	aifd->inflight++;
	pool_submit(aifd->pool, req);
}

/* Send what is left of the answer; back to reading when it is all sent. */
static void write_answer(struct aifd *aifd, struct conn *conn)
{
	while (conn->out_sent < conn->out_len) {
		ssize_t n = send(conn->watch.fd, conn->out + conn->out_sent,
				 conn->out_len - conn->out_sent, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (conn->state != CONN_WRITING) {
				conn->state = CONN_WRITING;
				set_events(aifd, conn, EPOLLOUT);
			}
			return;
		}
		if (n < 0) {
			conn_close(aifd, conn, strerror(errno));
			return;
		}
		conn->out_sent += (size_t)n;
		conn->active_ms = aif_clock_ms();
	}
	free(conn->out);
	conn->out = NULL;
	conn->state = CONN_READING;
	set_events(aifd, conn, EPOLLIN | EPOLLRDHUP);
}

static void conn_ready(struct aifd *aifd, struct watch *watch, uint32_t events)
{
	struct conn *conn = conn_of(watch);

	switch (conn->state) {
	case CONN_READING:
		conn->active_ms = aif_clock_ms();
		if (read_frame(aifd, conn) == 1)
			dispatch(aifd, conn);
		break;
	case CONN_BUSY:
		/* Not watching input; only a hang-up or an error is reported here. */
		if (events & (EPOLLHUP | EPOLLERR))
			conn_close(aifd, conn, "the connection failed while its request was handled");
		break;
	case CONN_WRITING:
		write_answer(aifd, conn);
		break;
	}
}

void conn_answered(struct aifd *aifd, struct request *req)
{
	struct conn *conn = req->conn;

	aifd->inflight--;
	if (log_enabled(LOG_LEVEL_DEBUG))
		log_debug("connection %llu from %s: answered in %lld ms", (unsigned long long)req->conn_id,
			  req->peer, (long long)(aif_clock_ms() - req->received_ms));
	if (!conn) {
		request_free(req); /* the client went away meanwhile */
		return;
	}
	conn->req = NULL;
	if (!req->response) {
		request_free(req);
		conn_close(aifd, conn, "out of memory for the answer");
		return;
	}
	conn->out = malloc(req->response_len + 4);
	if (!conn->out) {
		request_free(req);
		conn_close(aifd, conn, "out of memory for the answer");
		return;
	}
	aif_proto_frame_header((uint32_t)req->response_len, (unsigned char *)conn->out);
	memcpy(conn->out + 4, req->response, req->response_len);
	conn->out_len = req->response_len + 4;
	conn->out_sent = 0;
	request_free(req);
	write_answer(aifd, conn);
}

void conn_sweep(struct aifd *aifd, int64_t now_ms, bool stopping)
{
	struct conn *conn = aifd->conns.head;

	while (conn) {
		struct conn *next = conn->next;
		if (conn->state == CONN_READING) {
			if (stopping)
				conn_close(aifd, conn, "aifd is stopping");
			else if (now_ms - conn->active_ms > CONN_IDLE_MS)
				conn_close(aifd, conn, "idle");
		}
		conn = next;
	}
}

struct conn *conn_open(struct aifd *aifd, int fd, const struct listener *listener)
{
	static uint64_t last_id;
	struct conn *conn = calloc(1, sizeof(*conn));

	if (!conn) {
		log_error("out of memory for a connection on %s", listener->name);
		close(fd);
		return NULL;
	}
	conn->id = ++last_id;
	conn->watch.fd = fd;
	conn->watch.ready = conn_ready;
	conn->state = CONN_READING;
	conn->active_ms = aif_clock_ms();
	describe_peer(fd, conn->peer, sizeof(conn->peer));
	if (loop_watch(aifd, &conn->watch, EPOLLIN | EPOLLRDHUP) < 0) {
		close(fd);
		free(conn);
		return NULL;
	}
	list_push(&aifd->conns, conn);
	log_debug("connection %llu from %s on %s", (unsigned long long)conn->id, conn->peer,
		  listener->name);
	return conn;
}

void conn_close(struct aifd *aifd, struct conn *conn, const char *why)
{
	if (conn->watch.fd < 0)
		return;
	log_debug("closing connection %llu from %s: %s", (unsigned long long)conn->id, conn->peer, why);
	loop_unwatch(aifd, &conn->watch);
	close(conn->watch.fd);
	conn->watch.fd = -1;
	if (conn->req)
		conn->req->conn = NULL; /* answered later into the void */
	conn->req = NULL;
	free(conn->body);
	free(conn->out);
	conn->body = conn->out = NULL;
	list_remove(&aifd->conns, conn);
	list_push(&aifd->closed, conn);
}

void conn_free_closed(struct aifd *aifd)
{
	struct conn *conn;

	while ((conn = aifd->closed.head)) {
		list_remove(&aifd->closed, conn);
		free(conn);
	}
}

void conn_close_all(struct aifd *aifd, const char *why)
{
	while (aifd->conns.head)
		conn_close(aifd, aifd->conns.head, why);
	conn_free_closed(aifd);
}
