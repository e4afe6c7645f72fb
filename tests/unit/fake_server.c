/* A fake aifd for unit tests: see fake_server.h. */
#include "fake_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>

#include <cmocka.h>

#include "aif_client.h"

#define CRED "CRED:"

static void *server_main(void *arg)
{
	struct fake_server *s = arg;
	for (;;) {
		struct pollfd p = {.fd = s->listen_fd, .events = POLLIN};
		int fd;
		if (poll(&p, 1, 10000) <= 0)
			return NULL;
		fd = accept(s->listen_fd, NULL, NULL);
		if (fd < 0)
			return NULL;
		s->connections++;
		s->serve(s->arg, fd);
		close(fd);
	}
}

void fake_server_start(struct fake_server *s, bool tcp, void (*serve)(void *arg, int fd), void *arg)
{
	memset(s, 0, sizeof(*s));
	s->serve = serve;
	s->arg = arg;
	if (tcp) {
		struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		socklen_t slen = sizeof(sin);
		s->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
		assert_true(s->listen_fd >= 0);
		assert_int_equal(bind(s->listen_fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
		assert_int_equal(getsockname(s->listen_fd, (struct sockaddr *)&sin, &slen), 0);
		s->port = ntohs(sin.sin_port);
		snprintf(s->address, sizeof(s->address), "127.0.0.1:%d", s->port);
	} else {
		struct sockaddr_un sun = {.sun_family = AF_UNIX};
		strcpy(s->dir, "/tmp/aif-test-server.XXXXXX");
		assert_non_null(mkdtemp(s->dir));
		snprintf(s->path, sizeof(s->path), "%s/aifd.sock", s->dir);
		strcpy(sun.sun_path, s->path);
		s->listen_fd = socket(AF_UNIX, SOCK_STREAM, 0);
		assert_true(s->listen_fd >= 0);
		assert_int_equal(bind(s->listen_fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
		snprintf(s->address, sizeof(s->address), "%s", s->path);
	}
	assert_int_equal(listen(s->listen_fd, 8), 0);
	assert_int_equal(pthread_create(&s->thread, NULL, server_main, s), 0);
}

void fake_server_stop(struct fake_server *s)
{
	shutdown(s->listen_fd, SHUT_RDWR);
	pthread_join(s->thread, NULL);
	close(s->listen_fd);
	if (s->path[0]) {
		unlink(s->path);
		rmdir(s->dir);
	}
}

int fake_encode(void *arg, const char *payload, size_t len, char **cred, struct aif_diag *diag)
{
	(void)arg;
	(void)diag;
	*cred = malloc(len + sizeof(CRED));
	memcpy(*cred, CRED, strlen(CRED));
	memcpy(*cred + strlen(CRED), payload, len);
	(*cred)[len + strlen(CRED)] = '\0';
	return 0;
}

int fake_server_read(int fd, struct aif_proto_msg *req, char *text, size_t size)
{
	struct aif_diag d;
	char *body;
	size_t len;
	int rc = aif_proto_read_frame(fd, &body, &len, AIF_PROTO_MAX_FRAME, aif_clock_ms() + 10000,
				      "client", &d);

	if (rc <= 0)
		return rc;
	if (len < strlen(CRED) || memcmp(body, CRED, strlen(CRED)) != 0) {
		free(body);
		return -1;
	}
	if (text)
		snprintf(text, size, "%s", body + strlen(CRED));
	rc = aif_proto_decode(body + strlen(CRED), len - strlen(CRED), req, &d);
	free(body);
	if (rc < 0 || aif_proto_validate_request(req, &d) < 0) {
		aif_proto_msg_free(req);
		return -1;
	}
	return 1;
}

int fake_server_reply(int fd, const struct aif_proto_msg *m)
{
	struct aif_diag d;
	char *text;
	size_t len;
	int rc;

	if (aif_proto_encode(m, &text, &len) < 0)
		return -1;
	rc = aif_proto_write_frame(fd, text, len, aif_clock_ms() + 5000, "client", &d);
	free(text);
	return rc;
}
