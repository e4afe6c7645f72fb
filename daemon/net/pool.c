#include "pool.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "request.h"
#include "wakeup.h"

struct queue {
	struct request *head, *tail;
};

struct pool {
	struct pool_ops ops;
	pthread_mutex_t lock;
	pthread_cond_t work;     /* signalled when todo grows or stopping is set */
	struct queue todo;       /* received, not yet taken by a worker */
	struct queue done;       /* answered, not yet taken by the loop */
	bool stopping;
	int event_fd;
	pthread_t *threads;
	unsigned n_threads;
};

static void push(struct queue *q, struct request *req)
{
	req->next = NULL;
	if (q->tail)
		q->tail->next = req;
	else
		q->head = req;
	q->tail = req;
}

static struct request *pop(struct queue *q)
{
	struct request *req = q->head;

	if (req) {
		q->head = req->next;
		if (!q->head)
			q->tail = NULL;
		req->next = NULL;
	}
	return req;
}

static void *worker(void *arg)
{
	struct pool *pool = arg;
	void *state = pool->ops.thread_start(pool->ops.arg);

	for (;;) {
		struct request *req;

		pthread_mutex_lock(&pool->lock);
		while (!pool->todo.head && !pool->stopping)
			pthread_cond_wait(&pool->work, &pool->lock);
		req = pop(&pool->todo);
		pthread_mutex_unlock(&pool->lock);
		if (!req)
			break; /* stopping, and the queue is empty */
		if (request_abandoned(req))
			pool_done(pool, req); /* nobody to answer: back to free its connection's place */
		else
			pool->ops.handle(pool->ops.arg, state, req);
	}
	if (state)
		pool->ops.thread_stop(pool->ops.arg, state);
	return NULL;
}

struct pool *pool_start(unsigned n, const struct pool_ops *ops)
{
	struct pool *pool = calloc(1, sizeof(*pool));

	if (!pool || !(pool->threads = calloc(n, sizeof(*pool->threads)))) {
		log_error("out of memory for %u worker threads", n);
		free(pool);
		return NULL;
	}
	pool->ops = *ops;
	pthread_mutex_init(&pool->lock, NULL);
	pthread_cond_init(&pool->work, NULL);
	pool->event_fd = wakeup_open();
	if (pool->event_fd < 0) {
		pool_stop(pool);
		return NULL;
	}
	for (unsigned i = 0; i < n; i++) {
		int e = pthread_create(&pool->threads[i], NULL, worker, pool);
		if (e) {
			log_error("could not start worker thread %u: %s", i + 1, strerror(e));
			pool_stop(pool);
			return NULL;
		}
		pool->n_threads++;
	}
	return pool;
}

void pool_submit(struct pool *pool, struct request *req)
{
	pthread_mutex_lock(&pool->lock);
	push(&pool->todo, req);
	pthread_cond_signal(&pool->work);
	pthread_mutex_unlock(&pool->lock);
}

void pool_done(struct pool *pool, struct request *req)
{
	bool was_empty;

	pthread_mutex_lock(&pool->lock);
	was_empty = !pool->done.head;
	push(&pool->done, req);
	pthread_mutex_unlock(&pool->lock);
	/* One wake-up per batch the loop has not taken yet. */
	if (was_empty)
		wakeup_signal(pool->event_fd);
}

int pool_fd(const struct pool *pool)
{
	return pool->event_fd;
}

struct request *pool_take_done(struct pool *pool)
{
	struct request *list;

	/* Drain first: a pool_done() after this signals again, so none is missed. */
	wakeup_drain(pool->event_fd);
	pthread_mutex_lock(&pool->lock);
	list = pool->done.head;
	pool->done.head = pool->done.tail = NULL;
	pthread_mutex_unlock(&pool->lock);
	return list;
}

void pool_join(struct pool *pool)
{
	if (!pool)
		return;
	pthread_mutex_lock(&pool->lock);
	pool->stopping = true;
	pthread_cond_broadcast(&pool->work);
	pthread_mutex_unlock(&pool->lock);
	for (unsigned i = 0; i < pool->n_threads; i++)
		pthread_join(pool->threads[i], NULL);
	pool->n_threads = 0;
}

void pool_stop(struct pool *pool)
{
	struct request *req;

	if (!pool)
		return;
	pool_join(pool);
	while ((req = pop(&pool->done)))
		request_free(req);
	if (pool->event_fd >= 0)
		close(pool->event_fd);
	pthread_cond_destroy(&pool->work);
	pthread_mutex_destroy(&pool->lock);
	free(pool->threads);
	free(pool);
}
