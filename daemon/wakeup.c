#include "wakeup.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "aif_clock.h"
#include "log.h"

int wakeup_open(void)
{
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

	if (fd < 0)
		log_error("could not create an eventfd: %s", strerror(errno));
	return fd;
}

void wakeup_signal(int fd)
{
	uint64_t one = 1;

	/* EAGAIN: the counter is full, so the waiter is woken anyway. */
	if (write(fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_error("could not wake a thread: %s", strerror(errno));
}

void wakeup_drain(int fd)
{
	uint64_t count;

	if (read(fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		log_error("could not read an eventfd: %s", strerror(errno));
}

bool wakeup_wait(int fd, int64_t deadline_ms)
{
	struct pollfd pfd = {fd, POLLIN, 0};
	int64_t left = deadline_ms - aif_clock_ms();

	if (left <= 0 || poll(&pfd, 1, left > INT32_MAX ? INT32_MAX : (int)left) <= 0)
		return false;
	wakeup_drain(fd);
	return true;
}

void waker_init(struct waker *w)
{
	w->fd = -1;
	w->running = false;
	atomic_init(&w->stopping, false);
}

int waker_start(struct waker *w, void *(*fn)(void *), void *arg, const char *what)
{
	int e;

	w->fd = wakeup_open();
	if (w->fd < 0)
		return -1;
	e = pthread_create(&w->thread, NULL, fn, arg);
	if (e) {
		log_error("could not start %s: %s", what, strerror(e));
		return -1;
	}
	w->running = true;
	return 0;
}

bool waker_stopping(struct waker *w)
{
	return atomic_load(&w->stopping);
}

bool waker_wait(const struct waker *w, int64_t deadline_ms)
{
	return wakeup_wait(w->fd, deadline_ms);
}

void waker_poke(const struct waker *w)
{
	wakeup_signal(w->fd);
}

void waker_stop(struct waker *w)
{
	atomic_store(&w->stopping, true);
	if (w->running) {
		wakeup_signal(w->fd);
		pthread_join(w->thread, NULL);
		w->running = false;
	}
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
}
