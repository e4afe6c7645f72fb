#include "request.h"

#include <stdlib.h>

struct request *request_new(char *frame, size_t frame_len)
{
	struct request *req = calloc(1, sizeof(*req));

	if (!req) {
		free(frame);
		return NULL;
	}
	req->frame = frame;
	req->frame_len = frame_len;
	return req;
}

void request_free(struct request *req)
{
	if (req) {
		free(req->frame);
		free(req->response);
		free(req);
	}
}

void request_abandon(struct request *req)
{
	__atomic_store_n(&req->abandoned, true, __ATOMIC_RELAXED);
}

bool request_abandoned(const struct request *req)
{
	return __atomic_load_n(&req->abandoned, __ATOMIC_RELAXED);
}
