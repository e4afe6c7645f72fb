/*
 * loop: a reactor. One thread, one epoll instance; it knows file descriptors and the callbacks
 * of their owners, nothing of what they are. aifd.c runs it, between its own duties (the
 * connections' deadlines, the signals it watches through a signalfd).
 */
#ifndef AIFD_LOOP_H
#define AIFD_LOOP_H

#include <stdint.h>

struct loop {
	int epoll_fd; /* -1: not open */
};

/*
 * One file descriptor the loop waits on, embedded in whatever owns the fd (a listener, a
 * connection, the signalfd), which finds itself from the watch (container_of). ready() is
 * called with the epoll events. An owner that closes its fd sets fd to -1: events already
 * fetched for it in the same round are then skipped.
 */
struct watch {
	int fd;
	void (*ready)(struct watch *watch, uint32_t events);
};

/* 0, or -1 (logged). loop_close() on a loop that is not open does nothing. */
int loop_open(struct loop *loop);
void loop_close(struct loop *loop);

/* Start and stop waiting for events on watch->fd. loop_watch returns 0, or -1 (logged). */
int loop_watch(struct loop *loop, struct watch *watch, uint32_t events);
void loop_unwatch(struct loop *loop, struct watch *watch);
/* Change the events of a watched fd (0: only hang-ups and errors). 0, or -1 (logged). */
int loop_modify(struct loop *loop, struct watch *watch, uint32_t events);

/*
 * Wait for events up to timeout_ms (-1: no limit) and call the ready() of each watch that has
 * some. Returns 0 (also when a signal interrupted the wait), or -1 (logged) when epoll fails.
 */
int loop_run_once(struct loop *loop, int timeout_ms);

#endif
