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
