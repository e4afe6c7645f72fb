/*
 * aif-hostile: for tests only, what a hostile client does to aifd before any credential is
 * checked (tests/integration/aifd_hostile.sh). No MUNGE: nothing here is ever authenticated.
 *
 *   aif-hostile --server=S hold --count=N [--announce=BYTES] [--send=BYTES] [--trickle-ms=MS]
 *               [--reconnect] [--duration=SECONDS] [--ready-file=FILE]
 *       N connections. Each sends a frame length of BYTES (none with 0: a silent connection),
 *       then --send bytes of its body at once, then one more byte every MS (never with 0) so
 *       that it is never idle. With --reconnect a connection aifd closes is opened again at
 *       once. --ready-file is written once every connection was tried and its bytes sent.
 *   aif-hostile --server=S headers
 *       Sends each invalid frame header (length 0, 1 MiB + 1, 0xFFFFFFFF, "GET / HTTP/1.0")
 *       on a connection of its own; each must be closed by aifd within 2 s.
 *   aif-hostile --server=S abandon --count=N [--frame-file=FILE] [--duration=SECONDS]
 *       N times, one after the other, as fast as it can: a connection, one whole request (the
 *       contents of FILE, e.g. a credential of the user's replayed; by default a bogus one),
 *       closed at once without waiting for the answer.
 *   aif-hostile --server=S noread --count=N [--duration=SECONDS]
 *       One connection with a small receive buffer: N bogus requests in a row, and their
 *       answers never read, until aifd closes it or the duration ends.
 *
 * S is an absolute Unix socket path or IPV4:PORT. At the end (--duration, SIGTERM or SIGINT)
 * prints one line of key=value counts: opened, closed_by_aifd, connect_failed, open (hold:
 * still open at the end), before it requests_sent= (abandon, noread).
 * Exit status: 0; 1 when a check failed (headers); 2 on bad usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct settings {
	const char *server, *ready_file, *frame_file;
	unsigned long count, announce, send, trickle_ms, duration_s;
	bool reconnect;
};

struct hconn {
	int fd;
	size_t sent;           /* of the prefix: length, then --send bytes */
	int64_t next_trickle;  /* ms */
};

static volatile sig_atomic_t stop;
static unsigned long opened, closed_by_aifd, connect_failed, still_open;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A connected socket (blocking connect, at most a second), then non-blocking; -1 on failure. */
static int dial(const char *server, int rcvbuf)
{
	struct sockaddr_storage ss = {0};
	socklen_t len;
	struct timeval tv = {1, 0};
	int fd;

	if (server[0] == '/') {
		struct sockaddr_un *un = (struct sockaddr_un *)&ss;
		un->sun_family = AF_UNIX;
		snprintf(un->sun_path, sizeof(un->sun_path), "%s", server);
		len = sizeof(*un);
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		char host[64];
		const char *colon = strrchr(server, ':');
		if (!colon || (size_t)(colon - server) >= sizeof(host))
			return -1;
		memcpy(host, server, (size_t)(colon - server));
		host[colon - server] = '\0';
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)strtoul(colon + 1, NULL, 10));
		if (inet_pton(AF_INET, host, &in->sin_addr) != 1)
			return -1;
		len = sizeof(*in);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (rcvbuf)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
		close(fd);
		return -1;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

static void put_length(unsigned char *p, uint32_t len)
{
	p[0] = (unsigned char)(len >> 24);
	p[1] = (unsigned char)(len >> 16);
	p[2] = (unsigned char)(len >> 8);
	p[3] = (unsigned char)len;
}

/* ---- hold ---- */

static void hold_open(const struct settings *s, struct hconn *c, int64_t now)
{
	c->fd = dial(s->server, 0);
	c->sent = 0;
	c->next_trickle = now + (int64_t)s->trickle_ms;
	if (c->fd < 0)
		connect_failed++;
	else
		opened++;
}

/* Send what is left of the prefix (length and --send bytes); false when aifd closed it. */
static bool hold_send(const struct settings *s, struct hconn *c)
{
	static char fill[64 * 1024];
	size_t total = s->announce ? 4 + s->send : 0;

	while (c->sent < total) {
		unsigned char len[4];
		const void *from;
		size_t n;
		ssize_t w;

		put_length(len, (uint32_t)s->announce);
		if (c->sent < 4) {
			from = len + c->sent;
			n = 4 - c->sent;
		} else {
			memset(fill, 'A', sizeof(fill));
			from = fill;
			n = total - c->sent < sizeof(fill) ? total - c->sent : sizeof(fill);
		}
		w = send(c->fd, from, n, MSG_NOSIGNAL);
		if (w < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK;
		c->sent += (size_t)w;
	}
	return true;
}

static void hold_close(struct hconn *c)
{
	close(c->fd);
	c->fd = -1;
	closed_by_aifd++;
}

/* Read what aifd sent (nothing is expected): false once it closed the connection. */
static bool hold_alive(struct hconn *c)
{
	char buf[256];
	ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);

	return n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
}

static void hold_round(const struct settings *s, struct hconn *conns, struct pollfd *pfd, int64_t now)
{
	size_t total = s->announce ? 4 + s->send : 0;

	for (unsigned long i = 0; i < s->count; i++) {
		struct hconn *c = &conns[i];
		if (c->fd < 0) {
			if (s->reconnect)
				hold_open(s, c, now);
			if (c->fd < 0)
				continue;
		}
		if (pfd[i].fd == c->fd && (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) && !hold_alive(c)) {
			hold_close(c);
			continue;
		}
		if (!hold_send(s, c)) {
			hold_close(c);
			continue;
		}
		if (s->trickle_ms && c->sent >= total && now >= c->next_trickle && s->announce) {
			if (send(c->fd, "A", 1, MSG_NOSIGNAL) < 0 && errno != EAGAIN)
				hold_close(c);
			c->next_trickle = now + (int64_t)s->trickle_ms;
		}
	}
}

static int hold(const struct settings *s, int64_t end)
{
	struct hconn *conns = calloc(s->count, sizeof(*conns));
	struct pollfd *pfd = calloc(s->count, sizeof(*pfd));
	bool ready = false;

	if (!conns || !pfd)
		return 2;
	for (unsigned long i = 0; i < s->count && !stop; i++) {
		hold_open(s, &conns[i], now_ms());
		if (conns[i].fd >= 0 && !hold_send(s, &conns[i]))
			hold_close(&conns[i]);
	}
	while (!stop && now_ms() < end) {
		size_t total = s->announce ? 4 + s->send : 0;
		bool all_sent = true;
		for (unsigned long i = 0; i < s->count; i++) {
			pfd[i].fd = conns[i].fd;
			pfd[i].events = POLLIN;
			pfd[i].revents = 0;
			if (conns[i].fd >= 0 && conns[i].sent < total) {
				pfd[i].events |= POLLOUT;
				all_sent = false;
			}
		}
		if (!ready && s->ready_file && all_sent) {
			FILE *f = fopen(s->ready_file, "w");
			if (f)
				fclose(f);
			ready = true;
		}
		poll(pfd, s->count, s->reconnect ? 20 : 100);
		hold_round(s, conns, pfd, now_ms());
	}
	for (unsigned long i = 0; i < s->count; i++)
		if (conns[i].fd >= 0) {
			/* Only those aifd still keeps: a refused one is closed, unread, by now. */
			if (hold_alive(&conns[i]))
				still_open++;
			close(conns[i].fd);
		}
	free(conns);
	free(pfd);
	return 0;
}

/* ---- headers ---- */

/* Whether aifd closes fd within ms (EOF or a reset), reading and dropping what it sends. */
static bool closed_within(int fd, int ms)
{
	int64_t end = now_ms() + ms;

	while (now_ms() < end) {
		struct pollfd p = {fd, POLLIN, 0};
		char buf[256];
		ssize_t n;
		if (poll(&p, 1, (int)(end - now_ms())) <= 0)
			continue;
		n = recv(fd, buf, sizeof(buf), 0);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return true;
	}
	return false;
}

static int headers(const struct settings *s)
{
	static const struct {
		const char *name;
		const char *bytes;
		size_t len;
	} cases[] = {
		{"length 0", "\0\0\0\0", 4},
		{"length 1 MiB + 1", "\0\x10\0\x01", 4},
		{"length 0xFFFFFFFF", "\xff\xff\xff\xff", 4},
		{"HTTP request", "GET / HTTP/1.0\r\n\r\n", 18},
	};
	int rc = 0;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t t0 = now_ms();
		int fd = dial(s->server, 0);
		bool closed;
		if (fd < 0) {
			printf("%s: could not connect: %s\n", cases[i].name, strerror(errno));
			rc = 1;
			continue;
		}
		opened++;
		if (send(fd, cases[i].bytes, cases[i].len, MSG_NOSIGNAL) < 0)
			closed = true;
		else
			closed = closed_within(fd, 2000);
		printf("%s: %s after %lld ms\n", cases[i].name, closed ? "closed" : "NOT closed",
		       (long long)(now_ms() - t0));
		closed_by_aifd += closed;
		rc |= !closed;
		close(fd);
	}
	return rc;
}

/* ---- abandon ---- */

/* The contents of path (at most 1 MiB), or NULL. */
static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = malloc(1 << 20);

	*len = 0;
	if (f && buf)
		*len = fread(buf, 1, 1 << 20, f);
	if (f)
		fclose(f);
	while (*len && (buf[*len - 1] == '\n' || buf[*len - 1] == '\r'))
		(*len)--;
	if (!*len) {
		free(buf);
		return NULL;
	}
	return buf;
}

static int abandon(const struct settings *s, int64_t end)
{
	static const char bogus[] = "MUNGE:not-a-credential:";
	size_t body_len = sizeof(bogus) - 1;
	char *body = s->frame_file ? read_file(s->frame_file, &body_len) : NULL;
	unsigned char len[4];
	unsigned long sent = 0;

	if (s->frame_file && !body) {
		fprintf(stderr, "aif-hostile: nothing to send in %s\n", s->frame_file);
		return 2;
	}
	put_length(len, (uint32_t)body_len);
	for (unsigned long i = 0; i < s->count && !stop && now_ms() < end; i++) {
		int fd = dial(s->server, 0);
		struct iovec iov[2] = {{len, 4}, {body ? body : (char *)bogus, body_len}};

		if (fd < 0) {
			connect_failed++;
			continue;
		}
		opened++;
		if (writev(fd, iov, 2) == (ssize_t)(4 + body_len))
			sent++;
		close(fd);
	}
	printf("requests_sent=%lu ", sent);
	free(body);
	return 0;
}

/* ---- noread ---- */

static int noread(const struct settings *s, int64_t end)
{
	static const char body[] = "MUNGE:not-a-credential:";
	size_t frame = 4 + sizeof(body) - 1, total = frame * s->count, sent = 0;
	char *out = malloc(total);
	int64_t t0 = now_ms();
	int fd;

	if (!out)
		return 2;
	for (unsigned long i = 0; i < s->count; i++) {
		put_length((unsigned char *)out + i * frame, (uint32_t)(sizeof(body) - 1));
		memcpy(out + i * frame + 4, body, sizeof(body) - 1);
	}
	fd = dial(s->server, 4096); /* a small window: aifd's answers soon have nowhere to go */
	if (fd < 0) {
		connect_failed++;
		free(out);
		return 0;
	}
	opened++;
	while (!stop && now_ms() < end) {
		struct pollfd p = {fd, POLLRDHUP | (sent < total ? POLLOUT : 0), 0};
		poll(&p, 1, 100);
		if (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) {
			closed_by_aifd++;
			printf("closed_after_ms=%lld ", (long long)(now_ms() - t0));
			break;
		}
		if (p.revents & POLLOUT) {
			ssize_t w = send(fd, out + sent, total - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (w > 0)
				sent += (size_t)w;
		}
	}
	printf("requests_sent=%zu ", sent / frame);
	close(fd);
	free(out);
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: aif-hostile --server=S hold|headers|abandon|noread [--count=N] "
			"[--announce=BYTES] [--send=BYTES] [--trickle-ms=MS] [--reconnect] "
			"[--duration=SECONDS] [--ready-file=FILE] [--frame-file=FILE]\n");
	return 2;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{"server", required_argument, NULL, 's'},     {"count", required_argument, NULL, 'n'},
		{"announce", required_argument, NULL, 'a'},   {"send", required_argument, NULL, 'b'},
		{"trickle-ms", required_argument, NULL, 't'}, {"reconnect", no_argument, NULL, 'r'},
		{"duration", required_argument, NULL, 'd'},   {"ready-file", required_argument, NULL, 'f'},
		{"frame-file", required_argument, NULL, 'F'}, {NULL, 0, NULL, 0},
	};
	struct settings s = {.count = 1, .duration_s = 3600};
	struct rlimit rl;
	int64_t end;
	int ch, rc;

	while ((ch = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (ch) {
		case 's': s.server = optarg; break;
		case 'n': s.count = strtoul(optarg, NULL, 10); break;
		case 'a': s.announce = strtoul(optarg, NULL, 10); break;
		case 'b': s.send = strtoul(optarg, NULL, 10); break;
		case 't': s.trickle_ms = strtoul(optarg, NULL, 10); break;
		case 'r': s.reconnect = true; break;
		case 'd': s.duration_s = strtoul(optarg, NULL, 10); break;
		case 'f': s.ready_file = optarg; break;
		case 'F': s.frame_file = optarg; break;
		default: return usage();
		}
	}
	if (!s.server || optind + 1 != argc || s.count == 0 || s.count > 100000 || s.announce > UINT32_MAX)
		return usage();
	if (s.announce && s.send > s.announce)
		s.send = s.announce;
	/* Many connections: as many fds as this user may have. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);
	end = now_ms() + (int64_t)s.duration_s * 1000;
	if (strcmp(argv[optind], "hold") == 0)
		rc = hold(&s, end);
	else if (strcmp(argv[optind], "headers") == 0)
		rc = headers(&s);
	else if (strcmp(argv[optind], "abandon") == 0)
		rc = abandon(&s, end);
	else if (strcmp(argv[optind], "noread") == 0)
		rc = noread(&s, end);
	else
		return usage();
	printf("opened=%lu closed_by_aifd=%lu connect_failed=%lu open=%lu\n", opened, closed_by_aifd,
	       connect_failed, still_open);
	return rc;
}
