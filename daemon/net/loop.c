#include "loop.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "log.h"

#define MAX_EVENTS 64

int loop_open(struct loop *loop)
{
	loop->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epoll_fd < 0) {
		log_error("could not create an epoll instance: %s", strerror(errno));
		return -1;
	}
	return 0;
}

void loop_close(struct loop *loop)
{
	if (loop->epoll_fd >= 0)
		close(loop->epoll_fd);
	loop->epoll_fd = -1;
}

static int control(struct loop *loop, int op, struct watch *watch, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = watch};

	if (epoll_ctl(loop->epoll_fd, op, watch->fd, &ev) < 0) {
		log_error("could not watch file descriptor %d: %s", watch->fd, strerror(errno));
		return -1;
	}
	return 0;
}

int loop_watch(struct loop *loop, struct watch *watch, uint32_t events)
{
	return control(loop, EPOLL_CTL_ADD, watch, events);
}

int loop_modify(struct loop *loop, struct watch *watch, uint32_t events)
{
	return control(loop, EPOLL_CTL_MOD, watch, events);
}

void loop_unwatch(struct loop *loop, struct watch *watch)
{
	/* Also called for what was never watched (start-up failed before the loop): harmless. */
	if (loop->epoll_fd >= 0 && watch->fd >= 0)
		epoll_ctl(loop->epoll_fd, EPOLL_CTL_DEL, watch->fd, NULL);
}

int loop_run_once(struct loop *loop, int timeout_ms)
{
	struct epoll_event events[MAX_EVENTS];
	int n = epoll_wait(loop->epoll_fd, events, MAX_EVENTS, timeout_ms);

	if (n < 0) {
		if (errno == EINTR)
			return 0;
		log_error("epoll_wait failed: %s", strerror(errno));
		return -1;
	}
	for (int i = 0; i < n; i++) {
		struct watch *watch = events[i].data.ptr;

		if (watch->fd >= 0) /* not closed earlier in this round */
			watch->ready(watch, events[i].events);
	}
	return 0;
}
