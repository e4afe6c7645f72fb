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

#include "aifd.h"
#include "log.h"

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

/*
 * A connection became readable (or was hung up). Here the protocol layer will read and
 * answer requests; until then aifd answers nothing and closes.
 */
static void conn_ready(struct aifd *aifd, struct watch *watch, uint32_t events)
{
	struct conn *conn = (struct conn *)((char *)watch - offsetof(struct conn, watch));
	char discard[512];

	(void)events;
	/* Closing with unread input would send the client a reset instead of an end of file. */
	while (read(watch->fd, discard, sizeof(discard)) > 0)
		;
	conn_close(aifd, conn, "request handling is not implemented yet");
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
