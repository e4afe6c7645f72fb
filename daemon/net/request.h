/*
 * request: one request in flight between the loop thread (which read its frame and will send
 * its response) and the worker that handles it. The loop thread alone touches ->conn.
 */
#ifndef AIFD_REQUEST_H
#define AIFD_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conn;

struct request {
	struct request *next;   /* in the pool's queues */
	struct conn *conn;      /* loop thread only: NULL once the connection is closed */
	uint64_t conn_id;       /* for messages */
	char peer[96];          /* for messages: the connection's peer */
	char *frame;            /* the received frame body (a MUNGE credential), frame_len bytes */
	size_t frame_len;
	size_t held;            /* bytes counted in conns.buffered until the answer (loop thread) */
	char *response;         /* the response body to send, response_len bytes */
	size_t response_len;
	int64_t received_ms;    /* monotonic, for the debug log's timing */
	bool abandoned;         /* __atomic: its client went away before the answer */
	/* The handler's, while the request waits for the database (usage). */
	char nonce[17];
	size_t records;
	void *handler;
};

/* A request owning frame (malloc()ed); NULL when out of memory (frame is then freed). */
struct request *request_new(char *frame, size_t frame_len);
void request_free(struct request *req);
/* The loop thread: the request's connection closed; the workers need not handle it. */
void request_abandon(struct request *req);
bool request_abandoned(const struct request *req);

#endif
