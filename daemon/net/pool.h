/*
 * pool: the worker threads that turn a received frame into a response. The loop thread does
 * all socket I/O; decoding a MUNGE credential is a blocking round trip to munged, so it and
 * everything after it run here, several requests at once.
 *
 * A request goes in with pool_submit() and comes back, answered, through the pool's eventfd:
 * the loop watches pool_fd() and calls pool_take_done(). A handler that cannot answer at once
 * (usage waits for its commit) returns and calls pool_done() later, from any thread.
 */
#ifndef AIFD_POOL_H
#define AIFD_POOL_H

#include <stddef.h>

struct request;

struct pool_ops {
	/* Per-thread state (a MUNGE context): made when a worker starts; NULL is a failure. */
	void *(*thread_start)(void *arg);
	void (*thread_stop)(void *arg, void *thread_state);
	/* Handle req; it must end in exactly one pool_done(req), now or later. */
	void (*handle)(void *arg, void *thread_state, struct request *req);
	void *arg;
};

struct pool;

/* Start n worker threads. Returns the pool, or NULL (logged). */
struct pool *pool_start(unsigned n, const struct pool_ops *ops);

/* Queue a request for a worker; never blocks. */
void pool_submit(struct pool *pool, struct request *req);

/* A request is answered: hand it back to the loop. Any thread. */
void pool_done(struct pool *pool, struct request *req);

/* The fd that is readable while answered requests wait; and take them all (a list by ->next). */
int pool_fd(const struct pool *pool);
struct request *pool_take_done(struct pool *pool);

/* Let the workers finish the queue and join them; pool_done() still works after it. */
void pool_join(struct pool *pool);
/* pool_join() if not done yet, then free the pool. Answered requests not taken are freed with
 * request_free(). */
void pool_stop(struct pool *pool);

#endif
