/* aif_frame: aif's length-prefixed frames (docs/protocol.md) on a connected stream socket. */
#include "aif_proto.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "aif_clock.h"

static const char *errstr(int err, char *buf, size_t size)
{
	return strerror_r(err, buf, size); /* the GNU strerror_r (_GNU_SOURCE) */
}

int aif_proto_write_frame(int fd, const char *body, size_t len, int64_t deadline_ms,
			  const char *peer, struct aif_diag *diag)
{
	unsigned char header[4];
	struct iovec iov[2];
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
	char ebuf[128];

	aif_diag_clear(diag);
	if (len > AIF_PROTO_MAX_FRAME) {
		aif_diag_message(diag, "message to %s too large", peer);
		aif_diag_detail(diag, "The message has %zu bytes; the limit is %u.", len,
				AIF_PROTO_MAX_FRAME);
		errno = EMSGSIZE;
		return -1;
	}
	aif_proto_frame_header((uint32_t)len, header);
	iov[0].iov_base = header;
	iov[0].iov_len = sizeof(header);
	iov[1].iov_base = (void *)body;
	iov[1].iov_len = len;
	while (mh.msg_iovlen > 0) {
		ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				if (aif_clock_wait_fd(fd, POLLOUT, deadline_ms) == 0)
					continue;
			}
			if (errno == ETIMEDOUT) {
				aif_diag_message(diag, "timed out waiting for %s", peer);
				return -1;
			}
			int err = errno;
			aif_diag_message(diag, "could not send to %s: %s", peer,
					 errstr(err, ebuf, sizeof(ebuf)));
			errno = err;
			return -1;
		}
		while (mh.msg_iovlen > 0 && (size_t)n >= mh.msg_iov->iov_len) {
			n -= (ssize_t)mh.msg_iov->iov_len;
			mh.msg_iov++;
			mh.msg_iovlen--;
		}
		if (mh.msg_iovlen > 0) {
			mh.msg_iov->iov_base = (char *)mh.msg_iov->iov_base + n;
			mh.msg_iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

/* Read exactly len bytes: 1, 0 at EOF before the first byte, or -1 (EPROTO: EOF later). */
static int read_full(int fd, void *buf, size_t len, bool first, int64_t deadline_ms)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = recv(fd, (char *)buf + got, len - got, MSG_DONTWAIT);
		if (n > 0) {
			got += (size_t)n;
		} else if (n == 0) {
			if (first && got == 0)
				return 0;
			errno = EPROTO;
			return -1;
		} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
			if (aif_clock_wait_fd(fd, POLLIN, deadline_ms) < 0)
				return -1;
		} else if (errno != EINTR) {
			return -1;
		}
	}
	return 1;
}

int aif_proto_read_frame(int fd, char **body, size_t *len, uint32_t max, int64_t deadline_ms,
			 const char *peer, struct aif_diag *diag)
{
	unsigned char header[4];
	uint32_t n;
	char *buf;
	int rc, err;
	char ebuf[128];

	aif_diag_clear(diag);
	if (max > AIF_PROTO_MAX_FRAME)
		max = AIF_PROTO_MAX_FRAME;
	rc = read_full(fd, header, sizeof(header), true, deadline_ms);
	if (rc == 0) {
		aif_diag_message(diag, "%s closed the connection", peer);
		return 0;
	}
	if (rc < 0)
		goto fail;
	n = aif_proto_frame_length(header);
	if (n > max) {
		aif_diag_message(diag, "message from %s too large", peer);
		aif_diag_detail(diag, "The frame announces %" PRIu32 " bytes; the limit is %" PRIu32 ".",
				n, max);
		errno = EMSGSIZE;
		return -1;
	}
	buf = malloc((size_t)n + 1);
	if (!buf) {
		aif_diag_message(diag, "out of memory");
		errno = ENOMEM;
		return -1;
	}
	rc = read_full(fd, buf, n, false, deadline_ms);
	if (rc < 0) {
		err = errno;
		free(buf);
		errno = err;
		goto fail;
	}
	buf[n] = '\0';
	*body = buf;
	*len = n;
	return 1;
fail:
	err = errno;
	if (err == ETIMEDOUT)
		aif_diag_message(diag, "timed out waiting for %s", peer);
	else if (err == EPROTO)
		aif_diag_message(diag, "%s closed the connection in the middle of a message", peer);
	else
		aif_diag_message(diag, "could not read from %s: %s", peer,
				 errstr(err, ebuf, sizeof(ebuf)));
	errno = err;
	return -1;
}
