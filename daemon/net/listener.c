#include "listener.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"

/*
 * Out of file descriptors, accept() fails and the listener stays readable: the loop would
 * spin. This fd is given up to accept and close one connection, so that the client at least
 * sees it refused, and taken again. The loop thread's, like the listeners.
 */
static int spare_fd = -1;

/* Accepted per readiness of a listener: a flood of connections must not starve the others. */
#define ACCEPT_BATCH 64

void listener_init(struct listener *l)
{
	memset(l, 0, sizeof(*l));
	l->watch.fd = -1;
}

static void refuse_one(struct listener *l)
{
	int fd;

	if (spare_fd < 0)
		return;
	close(spare_fd);
	fd = accept4(l->watch.fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd >= 0)
		close(fd);
	spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void listener_ready(struct watch *watch, uint32_t events)
{
	struct listener *l = (struct listener *)((char *)watch - offsetof(struct listener, watch));

	(void)events;
	for (int accepted = 0; accepted < ACCEPT_BATCH;) {
		int fd = accept4(l->watch.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0) {
			l->accepted(l->arg, fd, l);
			accepted++;
			continue;
		}
		switch (errno) {
		case EAGAIN:
			return;
		case EINTR:
		case ECONNABORTED: /* the client gave up before we accepted */
			continue;
		case EMFILE:
		case ENFILE:
			log_warning("out of file descriptors; refusing a connection on %s", l->name);
			refuse_one(l);
			return;
		default:
			log_error("could not accept a connection on %s: %s", l->name, strerror(errno));
			return;
		}
	}
}

int listener_start(struct listener *l, struct loop *loop, listener_accept_fn accepted, void *arg)
{
	if (l->watch.fd < 0)
		return 0;
	if (spare_fd < 0)
		spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	l->accepted = accepted;
	l->arg = arg;
	l->watch.ready = listener_ready;
	if (loop_watch(loop, &l->watch, EPOLLIN) < 0)
		return -1;
	l->loop = loop;
	return 0;
}

int listener_resolve_tcp(const char *text, struct addrinfo **res, struct aif_diag *diag)
{
	struct addrinfo hints = {
		.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV,
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
	};
	char host[128];
	const char *host_start, *port, *colon;
	size_t host_len;
	unsigned long number;
	char *end;
	int rc;

	aif_diag_clear(diag);
	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (!close || close[1] != ':')
			goto syntax;
		host_start = text + 1;
		host_len = (size_t)(close - host_start);
		colon = close + 1;
	} else {
		colon = strchr(text, ':');
		if (!colon || strchr(colon + 1, ':')) /* an IPv6 address needs its brackets */
			goto syntax;
		host_start = text;
		host_len = (size_t)(colon - text);
	}
	if (host_len == 0 || host_len >= sizeof(host))
		goto syntax;
	memcpy(host, host_start, host_len);
	host[host_len] = '\0';
	port = colon + 1;
	number = strtoul(port, &end, 10);
	if (port[0] < '0' || port[0] > '9' || *end || number < 1 || number > 65535) {
		aif_diag_message(diag, "bad port \"%s\"", port);
		aif_diag_detail(diag, "The port must be a number from 1 to 65535.");
		return -1;
	}
	rc = getaddrinfo(host, port, &hints, res);
	if (rc != 0) {
		aif_diag_message(diag, "bad address \"%s\"", host);
		aif_diag_detail(diag, "%s.", gai_strerror(rc));
		aif_diag_hint(diag, "Give a numeric IPv4 or IPv6 address, such as 0.0.0.0 or [::].");
		return -1;
	}
	return 0;
syntax:
	aif_diag_message(diag, "\"%s\" is not an address and port", text);
	aif_diag_hint(diag, "Write ADDRESS:PORT, [IPV6-ADDRESS]:PORT, or none for no TCP listener.");
	return -1;
}

int listener_open_tcp(struct listener *l, const char *text)
{
	struct addrinfo *res;
	struct aif_diag diag;
	int fd, one = 1;

	snprintf(l->name, sizeof(l->name), "tcp %s", text);
	if (listener_resolve_tcp(text, &res, &diag) < 0) {
		log_diag(LOG_LEVEL_ERROR, "listen", &diag);
		return -1;
	}
	fd = socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, res->ai_protocol);
	if (fd < 0) {
		log_error("could not create a socket for %s: %s", l->name, strerror(errno));
		freeaddrinfo(res);
		return -1;
	}
	/* A restarted aifd must not wait for the old one's connections in TIME_WAIT. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, SOMAXCONN) < 0) {
		aif_diag_clear(&diag);
		aif_diag_message(&diag, "could not listen on %s: %s", l->name, strerror(errno));
		if (errno == EADDRINUSE)
			aif_diag_hint(&diag, "Is another aifd running? Otherwise change \"listen\" in the "
					     "config file.");
		log_diag(LOG_LEVEL_ERROR, NULL, &diag);
		close(fd);
		freeaddrinfo(res);
		return -1;
	}
	freeaddrinfo(res);
	l->watch.fd = fd;
	log_info("listening on %s", l->name);
	return 0;
}

/* Whether someone accepts connections on the Unix socket at path (an aifd still running). */
static int socket_in_use(const char *path, bool *in_use)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0) {
		*in_use = true;
	} else if (errno == ECONNREFUSED) {
		*in_use = false;
	} else {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	close(fd);
	return 0;
}

static int make_socket_dir(const char *path, uid_t owner, gid_t group)
{
	char copy[sizeof(((struct listener *)0)->path)];
	const char *dir;
	struct stat st;

	snprintf(copy, sizeof(copy), "%s", path);
	dir = dirname(copy);
	if (stat(dir, &st) == 0)
		return 0;
	if (errno != ENOENT || mkdir(dir, 0755) < 0) {
		log_error("could not create the socket directory \"%s\": %s", dir, strerror(errno));
		return -1;
	}
	/* mkdir() obeys the umask; the socket must be reachable by every local user. */
	if (chmod(dir, 0755) < 0 ||
	    ((owner != (uid_t)-1 || group != (gid_t)-1) && chown(dir, owner, group) < 0)) {
		log_error("could not set the owner and mode of the socket directory \"%s\": %s", dir,
			  strerror(errno));
		return -1;
	}
	log_info("created the socket directory \"%s\"", dir);
	return 0;
}

/* Make path free for bind(): nothing there, or a socket no one listens on any more. */
static int clear_stale_socket(const char *path)
{
	struct aif_diag diag;
	struct stat st;
	bool in_use;

	aif_diag_clear(&diag);
	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		log_error("could not stat \"%s\": %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		aif_diag_message(&diag, "\"%s\" exists and is not a socket; aifd does not remove it", path);
		aif_diag_hint(&diag, "Remove it, or change \"socket\" in the config file.");
		log_diag(LOG_LEVEL_ERROR, NULL, &diag);
		return -1;
	}
	if (socket_in_use(path, &in_use) < 0) {
		log_error("could not check whether the socket \"%s\" is in use: %s", path, strerror(errno));
		return -1;
	}
	if (in_use) {
		aif_diag_message(&diag, "another process is listening on the socket \"%s\"", path);
		aif_diag_hint(&diag, "Is another aifd running? Stop it first.");
		log_diag(LOG_LEVEL_ERROR, NULL, &diag);
		return -1;
	}
	if (unlink(path) < 0) {
		log_error("could not remove the stale socket \"%s\": %s", path, strerror(errno));
		return -1;
	}
	log_info("removed the stale socket \"%s\"", path);
	return 0;
}

int listener_open_unix(struct listener *l, const char *path, uid_t owner, gid_t group)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	struct stat st;
	int fd;

	snprintf(l->name, sizeof(l->name), "%s", path);
	if (strlen(path) >= sizeof(addr.sun_path)) { /* the config's buffer has that size */
		log_error("the socket path \"%s\" is too long", path);
		return -1;
	}
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	if (make_socket_dir(path, owner, group) < 0 || clear_stale_socket(path) < 0)
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_error("could not create a socket for \"%s\": %s", path, strerror(errno));
		return -1;
	}
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		log_error("could not bind the socket \"%s\": %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	/* From here on the path is ours: remove it on every error. */
	if (chmod(path, 0666) < 0 || listen(fd, SOMAXCONN) < 0 || stat(path, &st) < 0) {
		log_error("could not listen on the socket \"%s\": %s", path, strerror(errno));
		unlink(path);
		close(fd);
		return -1;
	}
	snprintf(l->path, sizeof(l->path), "%s", path);
	l->dev = st.st_dev;
	l->ino = st.st_ino;
	l->watch.fd = fd;
	log_info("listening on the socket \"%s\"", path);
	return 0;
}

void listener_close(struct listener *l)
{
	struct stat st;

	if (l->watch.fd < 0)
		return;
	if (l->loop)
		loop_unwatch(l->loop, &l->watch);
	close(l->watch.fd);
	l->watch.fd = -1;
	if (!l->path[0])
		return;
	/* Someone may have put another socket there since (a second aifd after a forced start). */
	if (stat(l->path, &st) == 0 && st.st_dev == l->dev && st.st_ino == l->ino) {
		if (unlink(l->path) < 0)
			log_warning("could not remove the socket \"%s\": %s", l->path, strerror(errno));
	}
	l->path[0] = '\0';
}
