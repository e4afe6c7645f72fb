#include "conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "aif_clock.h"
#include "aif_proto.h"
#include "listener.h"
#include "log.h"
#include "pool.h"
#include "request.h"

/* Connections per uid on the Unix socket. */
struct conn_uid_count {
	struct conn_uid_count *next;
	uid_t uid;
	unsigned long count;
};

/* The loop thread's: a frame's bytes land here first, so that its body grows only with the
 * bytes that really arrived. */
static char scratch[64 * 1024];

static void list_push(struct conn_list *list, struct conn *conn)
{
	conn->prev = NULL;
	conn->next = list->head;
	if (list->head)
		list->head->prev = conn;
	list->head = conn;
	list->count++;
}

static void list_remove(struct conn_list *list, struct conn *conn)
{
	if (conn->prev)
		conn->prev->next = conn->next;
	else
		list->head = conn->next;
	if (conn->next)
		conn->next->prev = conn->prev;
	conn->prev = conn->next = NULL;
	list->count--;
}

static void queue_append(struct conn_queue *q, struct conn_link *l)
{
	l->queue = q;
	l->next = NULL;
	l->prev = q->tail;
	if (q->tail)
		q->tail->next = l;
	else
		q->head = l;
	q->tail = l;
	q->count++;
}

static void queue_remove(struct conn_link *l)
{
	struct conn_queue *q = l->queue;

	if (!q)
		return;
	if (l->prev)
		l->prev->next = l->next;
	else
		q->head = l->next;
	if (l->next)
		l->next->prev = l->prev;
	else
		q->tail = l->prev;
	l->prev = l->next = NULL;
	l->queue = NULL;
	q->count--;
}

static struct conn *queue_oldest(const struct conn_queue *q)
{
	return q->head ? q->head->conn : NULL;
}

/* Enter a state whose deadline starts now; the clock is monotonic, so queues stay in order. */
static void set_state(struct conns *cs, struct conn *conn, enum conn_state state, int64_t now)
{
	struct conn_queue *q = NULL;

	queue_remove(&conn->by_state);
	conn->state = state;
	conn->since_ms = now;
	if (state == CONN_READING)
		q = &cs->reading;
	else if (state == CONN_IDLE)
		q = &cs->idle;
	else if (state == CONN_WRITING)
		q = &cs->writing;
	if (q)
		queue_append(q, &conn->by_state);
}

/* ---- connections per uid ---- */

static struct conn_uid_count **uid_slot(struct conns *cs, uid_t uid)
{
	struct conn_uid_count **p = &cs->uids[uid % CONN_UID_BUCKETS];

	while (*p && (*p)->uid != uid)
		p = &(*p)->next;
	return p;
}

static unsigned long uid_count(struct conns *cs, uid_t uid)
{
	const struct conn_uid_count *u = *uid_slot(cs, uid);

	return u ? u->count : 0;
}

static bool uid_add(struct conns *cs, uid_t uid)
{
	struct conn_uid_count **p = uid_slot(cs, uid);

	if (!*p) {
		*p = calloc(1, sizeof(**p));
		if (!*p)
			return false;
		(*p)->uid = uid;
	}
	(*p)->count++;
	return true;
}

static void uid_release(struct conns *cs, uid_t uid)
{
	struct conn_uid_count **p = uid_slot(cs, uid);
	struct conn_uid_count *u = *p;

	if (u && --u->count == 0) {
		*p = u->next;
		free(u);
	}
}

/* Root and SlurmUser: every slurmstepd, prolog and epilog of the node connects as one of them. */
static bool uid_unlimited(const struct conns *cs, uid_t uid)
{
	return uid == 0 || uid == cs->slurm_uid;
}

/* ---- warnings, at most one of a kind per CONN_LOG_EVERY_MS ---- */

/* "N more connections ..." */
static const char *const log_summaries[CONN_LOG_KINDS] = {
	[CONN_LOG_EVICTED] = "connections closed to make room for new ones",
	[CONN_LOG_FULL] = "connections refused: every connection had a request being handled",
	[CONN_LOG_PER_UID] = "connections refused: their user held as many as a user may on the Unix socket",
	[CONN_LOG_BUDGET] = "connections closed: requests not yet answered held too much memory",
	[CONN_LOG_FRAME] = "connections closed: their request was not complete in time",
	[CONN_LOG_WRITE] = "connections closed: their client did not read its answer in time",
	[CONN_LOG_LENGTH] = "connections closed: they announced an invalid frame length",
};

/* Whether to log a warning of this kind now; if not, it is counted for a summary. */
static bool log_now(struct conns *cs, enum conn_log_kind kind, int64_t now)
{
	return log_limit_pass(&cs->logs[kind], now);
}

/* Summaries of the warnings not logged, once their period is over; the next one's time. */
static int64_t log_flush(struct conns *cs, int64_t now, int64_t next)
{
	for (int kind = 0; kind < CONN_LOG_KINDS; kind++)
		next = log_limit_flush(&cs->logs[kind], now, next);
	return next;
}

/* What a connection had done, for the DETAIL of a warning: "it had sent 5 of 512 bytes ...". */
static void describe_progress(const struct conn *conn, int64_t now, char *buf, size_t size)
{
	double secs = (double)(now - conn->since_ms) / 1000.0;

	if (conn->state == CONN_IDLE)
		snprintf(buf, size, "it had been idle for %.1f s since its last answer", secs);
	else if (conn->state == CONN_WRITING)
		snprintf(buf, size, "its client had not read its answer for %.1f s", secs);
	else if (conn->state != CONN_READING)
		snprintf(buf, size, "it had a request in progress");
	else if (conn->header_got == 0)
		snprintf(buf, size, "it had sent nothing in %.1f s since it connected", secs);
	else if (conn->header_got < sizeof(conn->header))
		snprintf(buf, size, "it had sent %zu of the 4 bytes of a frame length in %.1f s",
			 conn->header_got, secs);
	else
		snprintf(buf, size, "it had sent %zu of the %zu bytes of its request in %.1f s",
			 conn->body_got, conn->body_len, secs);
}

/* ---- peers ---- */

/* The peer for messages; on the Unix socket also its uid, from the kernel (SO_PEERCRED). */
static void identify_peer(int fd, struct conn *conn)
{
	struct sockaddr_storage addr;
	socklen_t len = sizeof(addr);
	char host[INET6_ADDRSTRLEN];

	if (getpeername(fd, (struct sockaddr *)&addr, &len) < 0) {
		snprintf(conn->peer, sizeof(conn->peer), "unknown peer");
		return;
	}
	if (addr.ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&addr;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		snprintf(conn->peer, sizeof(conn->peer), "%s:%u", host, ntohs(in->sin_port));
	} else if (addr.ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&addr;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		snprintf(conn->peer, sizeof(conn->peer), "[%s]:%u", host, ntohs(in6->sin6_port));
	} else {
		struct ucred cred;
		socklen_t cred_len = sizeof(cred);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) == 0) {
			conn->local = true;
			conn->uid = cred.uid;
			snprintf(conn->peer, sizeof(conn->peer), "local uid %u pid %ld", (unsigned)cred.uid,
				 (long)cred.pid);
		} else {
			snprintf(conn->peer, sizeof(conn->peer), "local peer");
		}
	}
}

static struct conn *conn_of(struct watch *watch)
{
	return (struct conn *)((char *)watch - offsetof(struct conn, watch));
}

static int set_events(struct conns *cs, struct conn *conn, uint32_t events)
{
	if (loop_modify(cs->loop, &conn->watch, events) < 0) {
		conn_close(cs, conn, "could not change the events watched");
		return -1;
	}
	return 0;
}

/* ---- the memory of incomplete frames ---- */

static void warn_budget(struct conns *cs, const struct conn *victim, bool alone, int64_t now)
{
	struct aif_diag diag;
	char progress[160];

	if (!log_now(cs, CONN_LOG_BUDGET, now))
		return;
	describe_progress(victim, now, progress, sizeof(progress));
	aif_diag_clear(&diag);
	aif_diag_message(&diag, "requests not yet answered hold %zu MiB: closed connection %llu from %s",
			 CONN_BUFFER_BUDGET >> 20, (unsigned long long)victim->id, victim->peer);
	aif_diag_detail(&diag, "aifd holds at most %zu bytes of requests not yet answered. %s: %s.",
			CONN_BUFFER_BUDGET,
			alone ? "No other connection has an incomplete request" :
				"It had the oldest incomplete request",
			progress);
	log_diag(LOG_LEVEL_WARNING, NULL, &diag);
}

/*
 * Make room for more bytes of conn's frame within CONN_BUFFER_BUDGET: close the connections
 * with the oldest incomplete frames, or conn itself when no other has one. Returns whether
 * conn is still open.
 */
static bool within_budget(struct conns *cs, struct conn *conn, size_t more, int64_t now)
{

	while (cs->buffered + more > CONN_BUFFER_BUDGET) {
		struct conn *victim = queue_oldest(&cs->bodies);
		if (victim == conn)
			victim = conn->by_body.next ? conn->by_body.next->conn : NULL;
		if (!victim) {
			warn_budget(cs, conn, true, now);
			conn_close(cs, conn, "requests not yet answered hold too much memory");
			return false;
		}
		warn_budget(cs, victim, false, now);
		conn_close(cs, victim, "requests not yet answered hold too much memory");
	}
	return true;
}

/* Room for need bytes of body: doubled as bytes arrive, never beyond the frame. 0, or -1 closed. */
static int body_reserve(struct conns *cs, struct conn *conn, size_t need, int64_t now)
{
	size_t cap = conn->body_cap * 2;
	char *body;

	if (need <= conn->body_cap)
		return 0;
	if (cap < need)
		cap = need;
	if (cap < 1024)
		cap = 1024;
	if (cap > conn->body_len + 1)
		cap = conn->body_len + 1;
	if (!within_budget(cs, conn, cap - conn->body_cap, now))
		return -1;
	body = realloc(conn->body, cap);
	if (!body) {
		conn_close(cs, conn, "out of memory");
		return -1;
	}
	cs->buffered += cap - conn->body_cap;
	conn->body = body;
	conn->body_cap = cap;
	if (!conn->by_body.queue)
		queue_append(&cs->bodies, &conn->by_body);
	return 0;
}

/* ---- reading a frame ---- */

/* The 4 bytes of a frame length, n of them just read. 0, or -1 closed. */
static int header_read(struct conns *cs, struct conn *conn, size_t n, int64_t now)
{
	uint32_t len;

	conn->header_got += n;
	if (conn->header_got < sizeof(conn->header))
		return 0;
	len = aif_proto_frame_length(conn->header);
	if (len == 0 || len > AIF_PROTO_MAX_FRAME) {
		if (log_now(cs, CONN_LOG_LENGTH, now))
			log_warning("connection %llu from %s: frame of %lu bytes (allowed: 1 to %u); closing",
				    (unsigned long long)conn->id, conn->peer, (unsigned long)len,
				    AIF_PROTO_MAX_FRAME);
		conn_close(cs, conn, "invalid frame length");
		return -1;
	}
	conn->body_len = len;
	conn->body_got = 0;
	return 0;
}

/* n bytes of body, in scratch. 1 when the frame is complete, 0 to wait, -1 closed. */
static int body_read(struct conns *cs, struct conn *conn, size_t n, int64_t now)
{
	bool complete = conn->body_got + n == conn->body_len;

	/* The NUL once complete: munge_decode() takes a string. */
	if (body_reserve(cs, conn, conn->body_got + n + (complete ? 1 : 0), now) < 0)
		return -1;
	memcpy(conn->body + conn->body_got, scratch, n);
	conn->body_got += n;
	if (!complete)
		return 0;
	conn->body[conn->body_len] = '\0';
	return 1;
}

/* Read what is there of the frame; returns 1 when it is complete, 0 to wait, -1 closed. */
static int read_frame(struct conns *cs, struct conn *conn)
{
	int64_t now = aif_clock_ms();

	for (;;) {
		bool in_header = conn->header_got < sizeof(conn->header);
		size_t want = in_header ? sizeof(conn->header) - conn->header_got
					: conn->body_len - conn->body_got;
		ssize_t n;
		int rc;

		if (in_header)
			n = read(conn->watch.fd, conn->header + conn->header_got, want);
		else
			n = read(conn->watch.fd, scratch, want < sizeof(scratch) ? want : sizeof(scratch));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n < 0) {
			conn_close(cs, conn, strerror(errno));
			return -1;
		}
		if (n == 0) {
			conn_close(cs, conn, conn->header_got ? "the client closed the connection in the middle of a request"
								: "closed by the client");
			return -1;
		}
		rc = in_header ? header_read(cs, conn, (size_t)n, now)
			       : body_read(cs, conn, (size_t)n, now);
		if (rc != 0)
			return rc;
	}
}

/* A complete frame: to the workers, and stop reading until it is answered. */
static void dispatch(struct conns *cs, struct conn *conn)
{
	size_t held = conn->body_cap; /* still counted in buffered, until the answer */
	struct request *req;

	queue_remove(&conn->by_body);
	req = request_new(conn->body, conn->body_len);
	conn->body = NULL;
	conn->body_cap = 0;
	conn->header_got = 0;
	if (!req) {
		cs->buffered -= held;
		conn_close(cs, conn, "out of memory");
		return;
	}
	req->held = held;
	/* Only the client's going away, while the workers have the request: over TCP a close
	 * shows as EPOLLRDHUP alone (on the Unix socket as EPOLLHUP). Clients never half-close. */
	if (set_events(cs, conn, EPOLLRDHUP) < 0) {
		cs->buffered -= held;
		request_free(req);
		return;
	}
	req->conn = conn;
	req->conn_id = conn->id;
	memcpy(req->peer, conn->peer, sizeof(req->peer));
	req->received_ms = aif_clock_ms();
	conn->req = req;
	set_state(cs, conn, CONN_BUSY, req->received_ms);
	cs->inflight++;
	pool_submit(cs->pool, req);
}

/* ---- writing an answer ---- */

/* Send what is left of the answer; then wait for the next request (or close, when stopping). */
static void write_answer(struct conns *cs, struct conn *conn)
{
	while (conn->out_sent < conn->out_len) {
		ssize_t n = send(conn->watch.fd, conn->out + conn->out_sent,
				 conn->out_len - conn->out_sent, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			/* The deadline runs from the first time the client's window was full. */
			if (conn->state != CONN_WRITING) {
				set_state(cs, conn, CONN_WRITING, aif_clock_ms());
				set_events(cs, conn, EPOLLOUT);
			}
			return;
		}
		if (n < 0) {
			conn_close(cs, conn, strerror(errno));
			return;
		}
		conn->out_sent += (size_t)n;
	}
	free(conn->out);
	conn->out = NULL;
	if (cs->stop_ms) {
		conn_close(cs, conn, "aifd is stopping");
		return;
	}
	set_state(cs, conn, CONN_IDLE, aif_clock_ms());
	set_events(cs, conn, EPOLLIN | EPOLLRDHUP);
}

static void conn_ready(struct watch *watch, uint32_t events)
{
	struct conn *conn = conn_of(watch);
	struct conns *cs = conn->owner;

	switch (conn->state) {
	case CONN_IDLE:
		/* The next request's first bytes (or a close): its frame deadline starts. */
		set_state(cs, conn, CONN_READING, aif_clock_ms());
		/* fall through */
	case CONN_READING:
		if (read_frame(cs, conn) == 1)
			dispatch(cs, conn);
		break;
	case CONN_BUSY:
		/* Not watching input; only a hang-up or an error is reported here. */
		if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
			conn_close(cs, conn, "the client went away while its request was handled");
		break;
	case CONN_WRITING:
		write_answer(cs, conn);
		break;
	}
}

/* A worker answered req: send the answer on its connection, or drop it if that is closed. */
static void answered(struct conns *cs, struct request *req)
{
	struct conn *conn = req->conn;

	cs->inflight--;
	cs->buffered -= req->held;
	req->held = 0;
	if (log_enabled(LOG_LEVEL_DEBUG))
		log_debug("connection %llu from %s: answered in %lld ms", (unsigned long long)req->conn_id,
			  req->peer, (long long)(aif_clock_ms() - req->received_ms));
	if (!conn) {
		request_free(req); /* aifd is stopping: the connection is gone */
		return;
	}
	conn->req = NULL;
	if (conn->watch.fd < 0) { /* the client went away meanwhile: its place is free now */
		request_free(req);
		conn_close(cs, conn, "its client went away");
		return;
	}
	if (!req->response) {
		request_free(req);
		conn_close(cs, conn, "out of memory for the answer");
		return;
	}
	conn->out = malloc(req->response_len + 4);
	if (!conn->out) {
		request_free(req);
		conn_close(cs, conn, "out of memory for the answer");
		return;
	}
	aif_proto_frame_header((uint32_t)req->response_len, (unsigned char *)conn->out);
	memcpy(conn->out + 4, req->response, req->response_len);
	conn->out_len = req->response_len + 4;
	conn->out_sent = 0;
	request_free(req);
	write_answer(cs, conn);
}

/* The answers the workers (and the usage writer) handed back. */
static void answers_ready(struct watch *watch, uint32_t events)
{
	struct conns *cs = (struct conns *)((char *)watch - offsetof(struct conns, answers));
	struct request *req = pool_take_done(cs->pool);

	(void)events;
	while (req) {
		struct request *next = req->next;

		answered(cs, req);
		req = next;
	}
}

/* ---- deadlines ---- */

static void frame_expired(struct conns *cs, struct conn *conn, int64_t now)
{
	if (log_now(cs, CONN_LOG_FRAME, now)) {
		struct aif_diag diag;
		char progress[160];
		describe_progress(conn, now, progress, sizeof(progress));
		aif_diag_clear(&diag);
		if (conn->header_got)
			aif_diag_message(&diag, "connection %llu from %s: request not complete after %d s; closing it",
					 (unsigned long long)conn->id, conn->peer, CONN_FRAME_MS / 1000);
		else
			aif_diag_message(&diag, "connection %llu from %s: no request within %d s of connecting; closing it",
					 (unsigned long long)conn->id, conn->peer, CONN_FRAME_MS / 1000);
		aif_diag_detail(&diag, "A request must be sent whole within %d s; %s.", CONN_FRAME_MS / 1000,
				progress);
		log_diag(LOG_LEVEL_WARNING, NULL, &diag);
	}
	conn_close(cs, conn, "request not complete in time");
}

static void write_expired(struct conns *cs, struct conn *conn, int64_t now)
{
	int limit_ms = cs->stop_ms ? CONN_STOP_WRITE_MS : CONN_WRITE_MS;

	if (log_now(cs, CONN_LOG_WRITE, now)) {
		struct aif_diag diag;
		aif_diag_clear(&diag);
		aif_diag_message(&diag, "connection %llu from %s: answer not read within %d ms%s; closing it",
				 (unsigned long long)conn->id, conn->peer, limit_ms,
				 cs->stop_ms ? " while aifd is stopping" : "");
		aif_diag_detail(&diag, "%zu of the answer's %zu bytes could not be sent: the client does not read.",
				conn->out_len - conn->out_sent, conn->out_len);
		log_diag(LOG_LEVEL_WARNING, NULL, &diag);
	}
	conn_close(cs, conn, "answer not read in time");
}

/* Once stopping, an answer gets CONN_STOP_WRITE_MS from the stop, or from when it was ready. */
static int64_t write_deadline(const struct conns *cs, const struct conn *conn)
{
	int64_t deadline = conn->since_ms + CONN_WRITE_MS;

	if (cs->stop_ms) {
		int64_t start = conn->since_ms > cs->stop_ms ? conn->since_ms : cs->stop_ms;
		if (start + CONN_STOP_WRITE_MS < deadline)
			deadline = start + CONN_STOP_WRITE_MS;
	}
	return deadline;
}

int conn_sweep(struct conns *cs, int64_t now, int max_wait_ms)
{
	int64_t next = now + max_wait_ms;
	struct conn *c;

	while ((c = queue_oldest(&cs->reading))) {
		if (cs->stop_ms) {
			conn_close(cs, c, "aifd is stopping");
			continue;
		}
		if (c->since_ms + CONN_FRAME_MS > now) {
			next = c->since_ms + CONN_FRAME_MS < next ? c->since_ms + CONN_FRAME_MS : next;
			break;
		}
		frame_expired(cs, c, now);
	}
	while ((c = queue_oldest(&cs->idle))) {
		if (!cs->stop_ms && c->since_ms + CONN_IDLE_MS > now) {
			next = c->since_ms + CONN_IDLE_MS < next ? c->since_ms + CONN_IDLE_MS : next;
			break;
		}
		conn_close(cs, c, cs->stop_ms ? "aifd is stopping" : "idle");
	}
	while ((c = queue_oldest(&cs->writing))) {
		int64_t deadline = write_deadline(cs, c);
		if (deadline > now) {
			next = deadline < next ? deadline : next;
			break;
		}
		write_expired(cs, c, now);
	}
	next = log_flush(cs, now, next);
	return next > now ? (int)(next - now) : 0;
}

void conn_stop(struct conns *cs, int64_t now_ms)
{
	cs->stop_ms = now_ms > 0 ? now_ms : 1;
}

/* ---- opening: the limits ---- */

int conn_init(struct conns *cs, struct loop *loop, struct pool *pool, uid_t slurm_uid)
{
	struct rlimit rl;
	unsigned long nofile = 1024;

	memset(cs, 0, sizeof(*cs));
	cs->loop = loop;
	cs->pool = pool;
	cs->slurm_uid = slurm_uid;
	cs->answers.fd = pool_fd(pool);
	cs->answers.ready = answers_ready;
	if (loop_watch(loop, &cs->answers, EPOLLIN) < 0)
		return -1;
	for (int kind = 0; kind < CONN_LOG_KINDS; kind++)
		log_limit_init(&cs->logs[kind], log_summaries[kind], CONN_LOG_EVERY_MS);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		nofile = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > CONN_MAX_CEILING + CONN_FD_RESERVE
				 ? CONN_MAX_CEILING + CONN_FD_RESERVE
				 : (unsigned long)rl.rlim_cur;
	cs->nofile = nofile;
	cs->max_conns = nofile >= 2 * CONN_FD_RESERVE ? nofile - CONN_FD_RESERVE : nofile / 2;
	if (cs->max_conns < 4)
		cs->max_conns = 4; /* so that max_per_uid is at least 1 */
	cs->max_per_uid = cs->max_conns / 4 < CONN_MAX_PER_UID ? cs->max_conns / 4 : CONN_MAX_PER_UID;
		log_info("accepting at most %lu connections (open-file limit %lu), %lu per user on the Unix socket",
		 cs->max_conns, nofile, cs->max_per_uid);
	if (cs->max_conns < 1024) {
		struct aif_diag diag;
		aif_diag_clear(&diag);
		aif_diag_message(&diag, "the open-file limit of %lu leaves room for only %lu connections",
				 nofile, cs->max_conns);
		aif_diag_hint(&diag, "Raise aifd's open-file limit, e.g. LimitNOFILE=65536 in aifd.service "
				     "(the unit aif ships sets it).");
		log_diag(LOG_LEVEL_WARNING, NULL, &diag);
	}
	return 0;
}

/* The Unix socket's uid is known: one ordinary uid may not hold more than max_per_uid. */
static bool uid_within_limit(struct conns *cs, const struct conn *conn,
			     const struct listener *listener, int64_t now)
{
	struct aif_diag diag;

	if (!conn->local || uid_unlimited(cs, conn->uid) || uid_count(cs, conn->uid) < cs->max_per_uid)
		return true;
	if (log_now(cs, CONN_LOG_PER_UID, now)) {
		aif_diag_clear(&diag);
		aif_diag_message(&diag, "too many connections from uid %u: refused a new connection on %s",
				 (unsigned)conn->uid, listener->name);
		aif_diag_detail(&diag, "A user may hold %lu connections on the Unix socket at once (root and "
				       "SlurmUser are not limited); this one was from %s.",
				cs->max_per_uid, conn->peer);
		log_diag(LOG_LEVEL_WARNING, NULL, &diag);
	}
	return false;
}

static struct conn *older(struct conn *a, struct conn *b)
{
	if (!a || !b)
		return a ? a : b;
	return a->since_ms <= b->since_ms ? a : b;
}

/*
 * The one to close for room: the oldest that is still sending its request, is idle, or does
 * not read its answer (a client that reads takes milliseconds; one that does not could
 * otherwise hold its place for CONN_WRITE_MS). Not one whose request a worker handles.
 */
static struct conn *eviction_victim(const struct conns *cs)
{
	return older(older(queue_oldest(&cs->reading), queue_oldest(&cs->idle)),
		     queue_oldest(&cs->writing));
}

static void warn_evicted(struct conns *cs, const struct conn *victim,
			 const struct listener *listener, int64_t now)
{
	struct aif_diag diag;
	char progress[160];

	describe_progress(victim, now, progress, sizeof(progress));
	aif_diag_clear(&diag);
	aif_diag_message(&diag, "too many connections: closed connection %llu from %s to make room for a new one on %s",
			 (unsigned long long)victim->id, victim->peer, listener->name);
	aif_diag_detail(&diag, "aifd keeps at most %lu connections (its open-file limit is %lu). Connection "
			       "%llu was the oldest without a request being handled: %s.",
			cs->max_conns, cs->nofile, (unsigned long long)victim->id, progress);
	aif_diag_hint(&diag, "If the clients are legitimate, raise aifd's open-file limit (LimitNOFILE in aifd.service).");
	log_diag(LOG_LEVEL_WARNING, NULL, &diag);
}

/*
 * Room for one more connection: when all max_conns are open, the oldest one without a request
 * being handled is closed (over TCP nothing is known of a sender before its request is read,
 * so age is what tells a fresh request from a slow attacker). Returns false when a worker
 * handles the request of every connection.
 */
static bool make_room(struct conns *cs, const struct listener *listener, int64_t now)
{
	struct conn *victim;

	if (cs->all.count < cs->max_conns)
		return true;
	victim = eviction_victim(cs);
	if (!victim) {
		if (log_now(cs, CONN_LOG_FULL, now)) {
			struct aif_diag diag;
			aif_diag_clear(&diag);
			aif_diag_message(&diag, "too many connections: refused a new connection on %s", listener->name);
			aif_diag_detail(&diag, "All %lu connections (the most aifd keeps with its open-file limit of %lu) have a request being handled.",
					cs->max_conns, cs->nofile);
			aif_diag_hint(&diag, "If the clients are legitimate, raise aifd's open-file limit (LimitNOFILE in aifd.service).");
			log_diag(LOG_LEVEL_WARNING, NULL, &diag);
		}
		return false;
	}
	if (log_now(cs, CONN_LOG_EVICTED, now))
		warn_evicted(cs, victim, listener, now);
	conn_close(cs, victim, "closed to make room for a new connection");
	return true;
}

static struct conn *conn_open(struct conns *cs, int fd, const struct listener *listener)
{
	static uint64_t last_id;
	int64_t now = aif_clock_ms();
	struct conn *conn = calloc(1, sizeof(*conn));

	if (!conn) {
		log_error("out of memory for a connection on %s", listener->name);
		close(fd);
		return NULL;
	}
	conn->id = ++last_id;
	conn->owner = cs;
	conn->watch.fd = fd;
	conn->watch.ready = conn_ready;
	conn->by_state.conn = conn->by_body.conn = conn;
	identify_peer(fd, conn);
	if (!uid_within_limit(cs, conn, listener, now) || !make_room(cs, listener, now) ||
	    loop_watch(cs->loop, &conn->watch, EPOLLIN | EPOLLRDHUP) < 0) {
		close(fd);
		free(conn);
		return NULL;
	}
	/* Not counted when out of memory: then only the overall limit applies to it. */
	if (conn->local && !uid_unlimited(cs, conn->uid))
		conn->uid_counted = uid_add(cs, conn->uid);
	list_push(&cs->all, conn);
	set_state(cs, conn, CONN_READING, now); /* the first request's deadline */
	log_debug("connection %llu from %s on %s", (unsigned long long)conn->id, conn->peer,
		  listener->name);
	return conn;
}

void conn_close(struct conns *cs, struct conn *conn, const char *why)
{
	if (conn->released)
		return;
	if (conn->watch.fd >= 0) {
		log_debug("closing connection %llu from %s: %s", (unsigned long long)conn->id, conn->peer,
			  why);
		loop_unwatch(cs->loop, &conn->watch);
		close(conn->watch.fd);
		conn->watch.fd = -1;
		queue_remove(&conn->by_state);
		queue_remove(&conn->by_body);
		cs->buffered -= conn->body_cap;
		conn->body_cap = 0;
		free(conn->body);
		free(conn->out);
		conn->body = conn->out = NULL;
	}
	/*
	 * A request still with the workers keeps the connection's place (in max_conns and its
	 * uid's count) until they give it back, so that a client cannot queue requests without
	 * bound by closing each connection once its request is sent. The workers skip it.
	 */
	if (conn->req) {
		request_abandon(conn->req);
		return;
	}
	conn->released = true;
	if (conn->uid_counted)
		uid_release(cs, conn->uid);
	conn->uid_counted = false;
	list_remove(&cs->all, conn);
	list_push(&cs->closed, conn);
}

void conn_free_closed(struct conns *cs)
{
	struct conn *conn;

	while ((conn = cs->closed.head)) {
		list_remove(&cs->closed, conn);
		free(conn);
	}
}

void conn_close_all(struct conns *cs, const char *why)
{
	struct conn *conn;

	while ((conn = cs->all.head)) {
		if (conn->req) { /* answered later into the void */
			conn->req->conn = NULL;
			conn->req = NULL;
		}
		conn_close(cs, conn, why);
	}
	conn_free_closed(cs);
}

void conn_accept(void *conns, int fd, const struct listener *listener)
{
	conn_open(conns, fd, listener);
}
