/*
 * wakeup: an eventfd that one thread waits on and others signal (a new interval, stopping,
 * answers ready). Signals coalesce: one wake-up may stand for several.
 */
#ifndef AIFD_WAKEUP_H
#define AIFD_WAKEUP_H

#include <pthread.h>
#include <stdatomic.h>
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

/*
 * A thread of its own that waits on its eventfd between rounds (the budget refresh,
 * reconciliation, the settler): waker_poke() wakes it, waker_stop() stops it.
 */
struct waker {
	int fd;               /* the eventfd; -1: not open */
	atomic_bool stopping;
	pthread_t thread;
	bool running;
};

/* Not started: waker_stop() on it does nothing. */
void waker_init(struct waker *w);
/* Open the eventfd and start fn(arg). 0, or -1 (logged: "could not start <what>: ..."). */
int waker_start(struct waker *w, void *(*fn)(void *), void *arg, const char *what);
/* From the thread: whether to stop; wait until deadline_ms or a poke (true when poked). */
bool waker_stopping(struct waker *w);
bool waker_wait(const struct waker *w, int64_t deadline_ms);
/* Any thread; never blocks. */
void waker_poke(const struct waker *w);
/* Tell the thread to stop, wake it, join it and close the eventfd. */
void waker_stop(struct waker *w);

#endif
