/*
 * loop: aifd's main loop. One thread, one epoll instance; signals arrive through a signalfd,
 * so that SIGHUP (reload) and SIGTERM/SIGINT (stop) are handled between events, never inside
 * a signal handler.
 */
#ifndef AIFD_LOOP_H
#define AIFD_LOOP_H

#include <stdint.h>

struct aifd;

/*
 * One file descriptor the loop waits on, embedded in whatever owns the fd (a listener, a
 * connection, the signalfd). ready() is called with the epoll events. An owner that closes
 * its fd sets fd to -1: events already fetched for it in the same round are then skipped.
 */
struct watch {
	int fd;
	void (*ready)(struct aifd *aifd, struct watch *watch, uint32_t events);
};

/* Start and stop waiting for events on watch->fd. loop_watch returns 0, or -1 (logged). */
int loop_watch(struct aifd *aifd, struct watch *watch, uint32_t events);
void loop_unwatch(struct aifd *aifd, struct watch *watch);
/* Change the events of a watched fd (0: only hang-ups and errors). 0, or -1 (logged). */
int loop_modify(struct aifd *aifd, struct watch *watch, uint32_t events);

/*
 * Serve until SIGTERM or SIGINT: then stop accepting (the listeners are closed), answer every
 * request already received (usage only once committed), close the connections and return 0. Returns 1 when the loop cannot
 * run at all (logged).
 */
int loop_run(struct aifd *aifd);

#endif
