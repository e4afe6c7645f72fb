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
