#include "loop.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "aif_client.h"
#include "aifd.h"
#include "pool.h"
#include "reconcile.h"
#include "refresh.h"
#include "request.h"
#include "conn.h"
#include "handler.h"
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

int loop_modify(struct aifd *aifd, struct watch *watch, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = watch};

	if (epoll_ctl(aifd->epoll_fd, EPOLL_CTL_MOD, watch->fd, &ev) < 0) {
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

/* Accepted per readiness of a listener: a flood of connections must not starve the others. */
#define ACCEPT_BATCH 64

static void listener_ready(struct aifd *aifd, struct watch *watch, uint32_t events)
{
	struct listener *l = (struct listener *)((char *)watch - offsetof(struct listener, watch));

	(void)events;
	for (int accepted = 0; accepted < ACCEPT_BATCH;) {
		int fd = accept4(l->watch.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			conn_open(aifd, fd, l);
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
			log_warning("out of file descriptors with %lu connections open; refusing a connection on %s",
				    aifd->conns.all.count, l->name);
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
			if (config_reload(aifd->config_path, &aifd->config) == 0) {
				refresh_set_interval(aifd->refresh,
						     (unsigned)aifd->config.refresh_interval_ms);
				reconcile_set_interval(aifd->reconcile,
						       (unsigned)aifd->config.reconcile_interval_ms);
			}
			break;
		case SIGTERM:
		case SIGINT:
			if (aifd->stopping)
				break;
			log_info("received %s; no longer accepting connections, stopping",
				 info.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
			aifd->stopping = true;
			stop_accepting(aifd);
			conn_stop(aifd, aif_clock_ms());
			break;
		}
	}
}

/* Answers from the workers (and from the store, for usage). */
static void answers_ready(struct aifd *aifd, struct watch *watch, uint32_t events)
{
	struct request *req = pool_take_done(aifd->pool);

	(void)watch;
	(void)events;
	while (req) {
		struct request *next = req->next;
		conn_answered(aifd, req);
		req = next;
	}
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

/*
 * Once stopping: how long to wait for the answers to requests already received. The store
 * keeps retrying a lost database for its stop_timeout; this is a last resort beyond it.
 * Answers that are not read get CONN_STOP_WRITE_MS (conn.c).
 */
#define STOP_WAIT_MS (60 * 1000)
#define WAIT_MAX_MS 10000
#define STOP_POLL_MS 100

int loop_run(struct aifd *aifd)
{
	struct watch signals = {-1, signal_ready};
	struct watch answers = {-1, answers_ready};
	struct epoll_event events[MAX_EVENTS];
	int64_t stop_deadline = 0;

	aifd->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (aifd->epoll_fd < 0) {
		log_error("could not create an epoll instance: %s", strerror(errno));
		return 1;
	}
	aifd->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (open_signal_fd(aifd) < 0)
		return 1;
	signals.fd = aifd->signal_fd;
	answers.fd = pool_fd(aifd->pool);
	if (loop_watch(aifd, &signals, EPOLLIN) < 0 || loop_watch(aifd, &answers, EPOLLIN) < 0)
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
	conn_limits_init(aifd);
	log_info("aifd is ready (cluster \"%s\")", aifd->config.cluster);

	for (;;) {
		int64_t now;
		int wait_ms;
		int n;

		/* Deadlines first: the wait below lasts until the next one. */
		now = aif_clock_ms();
		wait_ms = conn_sweep(aifd, now, aifd->stopping ? STOP_POLL_MS : WAIT_MAX_MS);
		wait_ms = (int)(handler_log_flush(aifd->handler, now, now + wait_ms) - now);
		conn_free_closed(aifd);
		if (aifd->stopping) {
			if (!stop_deadline) {
				stop_deadline = aif_clock_ms() + STOP_WAIT_MS;
				if (aifd->inflight)
					log_info("answering %lu requests already received", aifd->inflight);
			}
			if (!aifd->inflight && !aifd->conns.writing.count)
				break;
			if (aif_clock_ms() > stop_deadline) {
				log_error("stopping with %lu requests unanswered after %d s; their senders will send them again",
					  aifd->inflight, STOP_WAIT_MS / 1000);
				break;
			}
		}
		n = epoll_wait(aifd->epoll_fd, events, MAX_EVENTS, wait_ms);
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

	conn_close_all(aifd, "aifd is stopping");
	return 0;
}
