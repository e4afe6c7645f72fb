#include "loop.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "aifd.h"
#include "conn.h"
#include "log.h"

#define MAX_EVENTS 64

int loop_watch(struct aifd *aifd, struct watch *watch, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = watch};

	if (epoll_ctl(aifd->epoll_fd, EPOLL_CTL_ADD, watch->fd, &ev) < 0) {
		log_error("could not watch file descriptor %d: %s", watch->fd, strerror(errno));
		return -1;
	}
	return 0;
}

void loop_unwatch(struct aifd *aifd, struct watch *watch)
{
	/* Also called for what was never watched (start-up failed before the loop): harmless. */
	if (aifd->epoll_fd >= 0 && watch->fd >= 0)
		epoll_ctl(aifd->epoll_fd, EPOLL_CTL_DEL, watch->fd, NULL);
}

/*
 * Out of file descriptors, accept() fails and the listener stays readable: the loop would
 * spin. The spare fd is given up to accept and close one connection, so that the client at
 * least sees it refused, and taken again.
 */
static void refuse_one(struct aifd *aifd, struct listener *l)
{
	int fd;

	if (aifd->spare_fd < 0)
		return;
	close(aifd->spare_fd);
	fd = accept4(l->watch.fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd >= 0)
		close(fd);
	aifd->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void listener_ready(struct aifd *aifd, struct watch *watch, uint32_t events)
{
	struct listener *l = (struct listener *)((char *)watch - offsetof(struct listener, watch));

	(void)events;
	for (;;) {
		int fd = accept4(l->watch.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			conn_open(aifd, fd, l);
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
			log_warning("out of file descriptors with %lu connections open; refusing a connection on %s",
				    aifd->conns.count, l->name);
			refuse_one(aifd, l);
			return;
		default:
			log_error("could not accept a connection on %s: %s", l->name, strerror(errno));
			return;
		}
	}
}

static void stop_accepting(struct aifd *aifd)
{
	listener_close(aifd, &aifd->unix_listener);
	listener_close(aifd, &aifd->tcp_listener);
}

static void signal_ready(struct aifd *aifd, struct watch *watch, uint32_t events)
{
	struct signalfd_siginfo info;

	(void)events;
	while (read(watch->fd, &info, sizeof(info)) == (ssize_t)sizeof(info)) {
		switch (info.ssi_signo) {
		case SIGHUP:
			log_info("received SIGHUP; reloading configuration file \"%s\"", aifd->config_path);
			config_reload(aifd->config_path, &aifd->config);
			break;
		case SIGTERM:
		case SIGINT:
			if (aifd->stopping)
				break;
			log_info("received %s; no longer accepting connections, stopping",
				 info.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
			aifd->stopping = true;
			stop_accepting(aifd);
			break;
		}
	}
}

/*
 * Before exiting on SIGTERM: the hook where the work already received is finished. Once
 * usage recording exists, this commits the usage messages received but not yet committed and
 * answers their senders, so that everything acknowledged is in PostgreSQL and nothing
 * received is lost. Today nothing is ever pending.
 */
static void finish_received_work(struct aifd *aifd)
{
	(void)aifd;
}

static int open_signal_fd(struct aifd *aifd)
{
	sigset_t mask;

	/* SIGHUP was blocked since start-up (aifd.c); SIGTERM and SIGINT only from now on: until
	 * the loop runs there is nothing to finish, so their default action is the right one. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) {
		log_error("could not block signals: %s", strerror(errno));
		return -1;
	}
	aifd->signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (aifd->signal_fd < 0) {
		log_error("could not create a signalfd: %s", strerror(errno));
		return -1;
	}
	return 0;
}

int loop_run(struct aifd *aifd)
{
	struct watch signals = {-1, signal_ready};
	struct epoll_event events[MAX_EVENTS];

	aifd->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (aifd->epoll_fd < 0) {
		log_error("could not create an epoll instance: %s", strerror(errno));
		return 1;
	}
	aifd->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (open_signal_fd(aifd) < 0)
		return 1;
	signals.fd = aifd->signal_fd;
	if (loop_watch(aifd, &signals, EPOLLIN) < 0)
		return 1;
	if (aifd->unix_listener.watch.fd >= 0) {
		aifd->unix_listener.watch.ready = listener_ready;
		if (loop_watch(aifd, &aifd->unix_listener.watch, EPOLLIN) < 0)
			return 1;
	}
	if (aifd->tcp_listener.watch.fd >= 0) {
		aifd->tcp_listener.watch.ready = listener_ready;
		if (loop_watch(aifd, &aifd->tcp_listener.watch, EPOLLIN) < 0)
			return 1;
	}
	log_info("aifd is ready (cluster \"%s\")", aifd->config.cluster);

	while (!aifd->stopping) {
		int n = epoll_wait(aifd->epoll_fd, events, MAX_EVENTS, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_error("epoll_wait failed: %s", strerror(errno));
			return 1;
		}
		for (int i = 0; i < n; i++) {
			struct watch *watch = events[i].data.ptr;
			if (watch->fd >= 0) /* not closed earlier in this round */
				watch->ready(aifd, watch, events[i].events);
		}
		conn_free_closed(aifd);
	}

	finish_received_work(aifd);
	conn_close_all(aifd, "aifd is stopping");
	return 0;
}
