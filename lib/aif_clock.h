/* aif_clock: the monotonic clock every deadline of aif's is on. */
#ifndef AIF_CLOCK_H
#define AIF_CLOCK_H

#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC in milliseconds: a step of the wall clock moves no deadline. */
int64_t aif_clock_ms(void);
/* The same in nanoseconds, for measuring. */
int64_t aif_clock_ns(void);

/*
 * Such a deadline as the absolute time of a wait on CLOCK_MONOTONIC (pthread_cond_timedwait
 * with a monotonic condattr, pthread_mutex_clocklock).
 */
struct timespec aif_clock_timespec(int64_t deadline_ms);

/* Wait with poll() until fd is ready for events, or deadline_ms: 0, or -1 with errno (ETIMEDOUT). */
int aif_clock_wait_fd(int fd, short events, int64_t deadline_ms);

#endif
