/*
 * wakeup: an eventfd that one thread waits on and others signal (a new interval, stopping,
 * answers ready). Signals coalesce: one wake-up may stand for several.
 */
#ifndef AIFD_WAKEUP_H
#define AIFD_WAKEUP_H

#include <stdbool.h>
#include <stdint.h>

/* A new non-blocking eventfd, or -1 (logged). */
int wakeup_open(void);

/* Wake the waiter. Any thread; never blocks. */
void wakeup_signal(int fd);

/* Consume pending wake-ups, without waiting. */
void wakeup_drain(int fd);

/* Wait until deadline_ms (aif_clock_ms()) or a wake-up; true when woken (consumed). */
bool wakeup_wait(int fd, int64_t deadline_ms);

#endif
