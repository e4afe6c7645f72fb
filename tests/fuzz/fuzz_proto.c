/*
 * libFuzzer target for the aif protocol 1 codec (lib/aif_proto.c) and the framing of
 * lib/aif_client.c. See tests/fuzz/run and README.md, "Fuzzing".
 *
 * Each input is used twice:
 *  - as a message: aif_proto_decode(); when it decodes, every validator runs on it, and
 *    encode -> decode must give the same message back, encoded the same way (the encoding is
 *    canonical), as must the message rebuilt field by field with aif_proto_set();
 *  - as a byte stream on a socket: aif_proto_read_frame() reads frames until the end, and must
 *    agree, frame by frame, with the 4-byte big-endian length rule of docs/protocol.md; every
 *    complete frame body is then used as a message too.
 * Any disagreement aborts, which libFuzzer reports as a crash.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "aif_clock.h"
#include "aif_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                               \
	do {                                                                                      \
		if (!(cond)) {                                                                    \
			fprintf(stderr, "fuzz_proto: %s:%d: check failed: %s\n", __FILE__,        \
				__LINE__, #cond);                                                 \
			abort();                                                                  \
		}                                                                                 \
	} while (0)

/*
 * A diag as the stack may leave it: no NUL anywhere. A function that is to fill it must
 * therefore clear every part, or check_diag() fails on every input, not only on the inputs
 * whose stack garbage happens to lack a NUL.
 */
static void poison_diag(struct aif_diag *d)
{
	memset(d, 0xA5, sizeof(*d));
}

/*
 * Every part of a diag is a NUL-terminated string within its buffer. Checked where the function
 * promises a diag (aif_proto.h): on failure, or always for aif_proto_response_diag().
 */
static void check_diag(const struct aif_diag *d)
{
	CHECK(memchr(d->message, '\0', sizeof(d->message)));
	CHECK(memchr(d->detail, '\0', sizeof(d->detail)));
	CHECK(memchr(d->hint, '\0', sizeof(d->hint)));
}

static void check_block_shape(const struct aif_proto_block *b)
{
	CHECK(b->n <= AIF_PROTO_MAX_FIELDS);
	for (size_t i = 0; i < b->n; i++) {
		const struct aif_proto_field *f = &b->fields[i];
		size_t klen = strlen(f->key);
		CHECK(klen >= 1 && klen <= AIF_PROTO_MAX_KEY);
		CHECK(f->key[0] >= 'a' && f->key[0] <= 'z');
		CHECK(strspn(f->key, "abcdefghijklmnopqrstuvwxyz0123456789_") == klen);
		CHECK(strlen(f->value) <= AIF_PROTO_MAX_VALUE);
		CHECK(f->line > 0);
		/* Keys are unique in a block, and aif_proto_get() finds each one's own value. */
		CHECK(aif_proto_get(b, f->key) == f->value);
	}
}

static bool same_block(const struct aif_proto_block *a, const struct aif_proto_block *b)
{
	if (a->n != b->n || a->record != b->record)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->fields[i].key, b->fields[i].key) != 0 ||
		    strcmp(a->fields[i].value, b->fields[i].value) != 0)
			return false;
	return true;
}

static bool same_msg(const struct aif_proto_msg *a, const struct aif_proto_msg *b)
{
	if (a->kind != b->kind || a->nrecords != b->nrecords || !same_block(&a->header, &b->header))
		return false;
	for (size_t i = 0; i < a->nrecords; i++)
		if (!same_block(&a->records[i], &b->records[i]))
			return false;
	return true;
}

/* The same message built as a program builds one: aif_proto_set() field by field. */
static void rebuild_block(struct aif_proto_block *to, const struct aif_proto_block *from)
{
	for (size_t i = 0; i < from->n; i++)
		CHECK(aif_proto_set(to, from->fields[i].key, from->fields[i].value) == 0);
}

static void check_validators(const struct aif_proto_msg *m)
{
	static const enum aif_proto_kind requests[] = {
		AIF_PROTO_NONE,	 AIF_PROTO_CHECK, AIF_PROTO_ADMIT,
		AIF_PROTO_USAGE, AIF_PROTO_STATUS, AIF_PROTO_OK,
	};
	struct aif_diag d;
	int rc;

	poison_diag(&d);
	rc = aif_proto_validate_request(m, &d);
	if (rc != 0)
		check_diag(&d);
	CHECK(rc == 0 || rc == -1);
	CHECK(rc == -1 || aif_proto_kind_is_request(m->kind));
	CHECK(rc == 0 || d.message[0]);
	for (size_t i = 0; i < sizeof(requests) / sizeof(requests[0]); i++) {
		poison_diag(&d);
		rc = aif_proto_validate_response(m, requests[i], &d);
		if (rc != 0)
			check_diag(&d);
		CHECK(rc == 0 || rc == -1);
		CHECK(rc == -1 || aif_proto_kind_is_response(m->kind));
		CHECK(rc == 0 || d.message[0]);
	}
	poison_diag(&d);
	aif_proto_response_diag(m, &d);
	check_diag(&d);
}

/* What the client and aifd do with a field's number, on the fields that carry one. */
static void check_numbers(const struct aif_proto_block *b)
{
	static const char *const keys[] = {"job", "uid", "gid", "gpus", "time", "start", "acked"};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		struct aif_diag d;
		uint64_t v = 12345, max = i % 2 ? UINT64_MAX : UINT32_MAX;
		const char *text = aif_proto_get(b, keys[i]);
		int rc;

		poison_diag(&d);
		rc = aif_proto_get_u64(b, keys[i], max, &v, &d);
		if (rc == 0) {
			char back[32];
			CHECK(text && v <= max);
			snprintf(back, sizeof(back), "%llu", (unsigned long long)v);
			/* Digits only, so the text is the number, maybe with leading zeros. */
			CHECK(strlen(text) >= strlen(back));
			CHECK(strcmp(text + strlen(text) - strlen(back), back) == 0);
			CHECK(strspn(text, "0") >= strlen(text) - strlen(back));
		} else {
			check_diag(&d);
			CHECK(rc == -1 && v == 12345 && d.message[0]);
		}
	}
}

static void check_message(const uint8_t *data, size_t size)
{
	struct aif_proto_msg m, again, rebuilt;
	struct aif_diag d;
	char *text, *text2, *text3;
	size_t len, len2, len3;
	int rc;

	poison_diag(&d);
	rc = aif_proto_decode((const char *)data, size, &m, &d);
	if (rc < 0) {
		check_diag(&d);
		CHECK(rc == -1 && d.message[0]);
		aif_proto_msg_free(&m);
		return;
	}
	CHECK(rc == 0);
	CHECK(aif_proto_kind_name(m.kind) != NULL);
	CHECK(m.nrecords <= AIF_PROTO_MAX_RECORDS);
	check_block_shape(&m.header);
	for (size_t i = 0; i < m.nrecords; i++) {
		CHECK(m.records[i].record == i + 1);
		CHECK(m.records[i].n > 0);
		check_block_shape(&m.records[i]);
	}
	check_validators(&m);
	check_numbers(&m.header);
	if (m.nrecords)
		check_numbers(&m.records[0]);

	/* Encode: never larger than what was decoded (decoding only removes escapes). */
	CHECK(aif_proto_encode(&m, &text, &len) == 0);
	CHECK(strlen(text) == len && len <= size);
	rc = aif_proto_decode(text, len, &again, &d);
	if (rc != 0)
		fprintf(stderr, "fuzz_proto: re-encoded message does not decode: %s\n", d.message);
	CHECK(rc == 0);
	CHECK(same_msg(&m, &again));
	CHECK(aif_proto_encode(&again, &text2, &len2) == 0);
	CHECK(len2 == len && memcmp(text, text2, len) == 0);

	aif_proto_msg_init(&rebuilt, m.kind);
	rebuild_block(&rebuilt.header, &m.header);
	for (size_t i = 0; i < m.nrecords; i++) {
		struct aif_proto_block *r = aif_proto_add_record(&rebuilt);
		CHECK(r != NULL);
		rebuild_block(r, &m.records[i]);
	}
	CHECK(aif_proto_encode(&rebuilt, &text3, &len3) == 0);
	CHECK(len3 == len && memcmp(text, text3, len) == 0);

	free(text);
	free(text2);
	free(text3);
	aif_proto_msg_free(&rebuilt);
	aif_proto_msg_free(&again);
	aif_proto_msg_free(&m);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/*
 * The input as what a peer sent before closing its side of the connection: frames are read
 * as aifd and the client read them, and compared with the rule of docs/protocol.md.
 */
static void check_frames(const uint8_t *data, size_t size)
{
	int sv[2];
	size_t sent = 0, pos = 0;
	/* A small limit now and then, as aifd uses for a peer it does not trust yet. */
	uint32_t max = size && data[size - 1] == '!' ? 64 : AIF_PROTO_MAX_FRAME;

	if (size >= 4) {
		unsigned char header[4];
		uint32_t n = aif_proto_frame_length(data);
		CHECK(n == be32(data));
		aif_proto_frame_header(n, header);
		CHECK(memcmp(header, data, 4) == 0);
	}
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	/* Whatever fits in the socket's buffer is sent; the rest is cut, as by a peer that died. */
	CHECK(fcntl(sv[0], F_SETFL, O_NONBLOCK) == 0);
	while (sent < size) {
		ssize_t n = send(sv[0], data + sent, size - sent, MSG_NOSIGNAL);
		if (n <= 0) {
			CHECK(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR));
			if (errno == EINTR)
				continue;
			break;
		}
		sent += (size_t)n;
	}
	CHECK(shutdown(sv[0], SHUT_WR) == 0);

	for (;;) {
		struct aif_diag d;
		char *body = NULL;
		size_t len = 0;
		size_t left = sent - pos;
		int rc;

		poison_diag(&d);
		rc = aif_proto_read_frame(sv[1], &body, &len, max, aif_clock_ms() + 5000, "peer", &d);
		if (rc < 0)
			check_diag(&d);
		if (left == 0) {
			CHECK(rc == 0);
			break;
		}
		if (left < 4) {
			CHECK(rc == -1 && errno == EPROTO);
			break;
		}
		uint32_t n = be32(data + pos);
		if (n > max) {
			CHECK(rc == -1 && errno == EMSGSIZE);
			break;
		}
		if (left - 4 < n) {
			CHECK(rc == -1 && errno == EPROTO);
			break;
		}
		CHECK(rc == 1 && len == n && body[len] == '\0');
		CHECK(memcmp(body, data + pos + 4, n) == 0);
		check_message((const uint8_t *)body, len);
		free(body);
		pos += 4 + n;
	}
	close(sv[0]);
	close(sv[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_message(data, size);
	check_frames(data, size);
	return 0;
}
