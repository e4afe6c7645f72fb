/*
 * Unit tests for lib/aif_proto.c (the protocol 1 codec) and lib/aif_client.c (framing and the
 * client), the latter against a small server thread in this process: no aifd, no munged.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "aif_client.h"
#include "aif_proto.h"
#include "fake_server.h"

/* ---- helpers ---- */

static void decode_ok(const char *text, struct aif_proto_msg *m)
{
	struct aif_diag d;
	int rc = aif_proto_decode(text, strlen(text), m, &d);
	if (rc != 0)
		fail_msg("decode failed: %s (%s)", d.message, d.detail);
}

static char *encode_ok(const struct aif_proto_msg *m, size_t *len)
{
	char *text;
	assert_int_equal(aif_proto_encode(m, &text, len), 0);
	assert_int_equal(strlen(text), *len);
	return text;
}

/* A new buffer: text (len bytes) then more; frees text. */
static char *append(char *text, size_t len, const char *more)
{
	char *out = malloc(len + strlen(more) + 1);
	assert_non_null(out);
	memcpy(out, text, len);
	strcpy(out + len, more);
	free(text);
	return out;
}

/* ---- the codec ---- */

static void test_encode_exact_text(void **state)
{
	struct aif_proto_msg m;
	struct aif_proto_block *r;
	size_t len;
	char *text;
	(void)state;

	aif_proto_msg_init(&m, AIF_PROTO_USAGE);
	assert_int_equal(aif_proto_set(&m.header, "nonce", "0123456789abcdef"), 0);
	assert_int_equal(aif_proto_set(&m.header, "cluster", "jean-zay"), 0);
	r = aif_proto_add_record(&m);
	assert_non_null(r);
	assert_int_equal(aif_proto_set(r, "event", "start"), 0);
	assert_int_equal(aif_proto_set_u64(r, "job", 4242), 0);
	r = aif_proto_add_record(&m);
	assert_non_null(r);
	assert_int_equal(aif_proto_setf(r, "node", "n%d", 2), 0);
	assert_int_equal(aif_proto_set(r, "user", "50% done\r\nnext=line"), 0);
	text = encode_ok(&m, &len);
	assert_string_equal(text, "AIF/1 usage\n"
				  "nonce=0123456789abcdef\n"
				  "cluster=jean-zay\n"
				  "\n"
				  "event=start\n"
				  "job=4242\n"
				  "\n"
				  "node=n2\n"
				  "user=50%25 done%0D%0Anext=line\n");
	free(text);
	aif_proto_msg_free(&m);
}

/* Every byte a value may hold survives the round trip; lines are numbered. */
static void test_round_trip(void **state)
{
	char all[300], *text;
	size_t n = 0, len;
	struct aif_proto_msg m, back;
	(void)state;

	for (int c = 1; c < 0x80; c++)
		all[n++] = (char)c;
	all[n] = '\0';
	strcat(all, "é ü 日本語 🚀 = %% ");

	aif_proto_msg_init(&m, AIF_PROTO_ERROR);
	assert_int_equal(aif_proto_set(&m.header, "message", all), 0);
	assert_int_equal(aif_proto_set(&m.header, "empty", ""), 0);
	assert_int_equal(aif_proto_set(&m.header, "spaces", "  a  b  "), 0);
	assert_int_equal(aif_proto_set(&m.header, "k_9", "%25"), 0);
	text = encode_ok(&m, &len);
	/* only CR LF controls and '%' travel encoded: no raw control byte in the text but the LFs */
	for (size_t i = 0; i < len; i++)
		assert_true(text[i] == '\n' || (unsigned char)text[i] >= 0x20);
	assert_non_null(strstr(text, "%01%02%03%04%05%06%07%08%09%0A%0B%0C%0D%0E%0F%10"));
	assert_non_null(strstr(text, "%1F !\"#$%25&'()*+,-./0123456789:;<=>?@A"));
	assert_non_null(strstr(text, "xyz{|}~%7Fé ü 日本語 🚀 = %25%25 \n"));

	decode_ok(text, &back);
	assert_int_equal(back.kind, AIF_PROTO_ERROR);
	assert_int_equal(back.header.n, 4);
	assert_string_equal(aif_proto_get(&back.header, "message"), all);
	assert_string_equal(aif_proto_get(&back.header, "empty"), "");
	assert_string_equal(aif_proto_get(&back.header, "spaces"), "  a  b  ");
	assert_string_equal(aif_proto_get(&back.header, "k_9"), "%25");
	assert_null(aif_proto_get(&back.header, "absent"));
	assert_int_equal(back.header.fields[0].line, 2);
	assert_int_equal(back.header.fields[3].line, 5);
	assert_string_equal(back.header.fields[1].key, "empty"); /* order kept */
	free(text);
	aif_proto_msg_free(&back);
	aif_proto_msg_free(&m);
}

static void test_set_rules(void **state)
{
	struct aif_proto_msg m;
	char key[AIF_PROTO_MAX_KEY + 2];
	(void)state;

	aif_proto_msg_init(&m, AIF_PROTO_CHECK);
	assert_int_equal(aif_proto_set(&m.header, "a", "1"), 0);
	assert_int_equal(aif_proto_set(&m.header, "b", "2"), 0);
	assert_int_equal(aif_proto_set(&m.header, "a", "3"), 0); /* replaces, keeps the place */
	assert_int_equal(m.header.n, 2);
	assert_string_equal(m.header.fields[0].key, "a");
	assert_string_equal(m.header.fields[0].value, "3");

	static const char *const bad_keys[] = {"", "Cluster", "1a", "_a", "a-b", "a b", "é"};
	for (size_t i = 0; i < sizeof(bad_keys) / sizeof(bad_keys[0]); i++) {
		errno = 0;
		assert_int_equal(aif_proto_set(&m.header, bad_keys[i], "x"), -1);
		assert_int_equal(errno, EINVAL);
	}
	memset(key, 'k', sizeof(key));
	key[AIF_PROTO_MAX_KEY] = '\0';
	assert_int_equal(aif_proto_set(&m.header, key, "x"), 0);
	key[AIF_PROTO_MAX_KEY] = 'k';
	key[AIF_PROTO_MAX_KEY + 1] = '\0';
	assert_int_equal(aif_proto_set(&m.header, key, "x"), -1);

	/* invalid UTF-8: a lone continuation byte, an overlong '/', a surrogate, a cut sequence */
	static const char *const bad_utf8[] = {"\x80", "\xC0\xAF", "\xED\xA0\x80", "\xE6\x97", "\xF5\x80\x80\x80"};
	for (size_t i = 0; i < sizeof(bad_utf8) / sizeof(bad_utf8[0]); i++) {
		errno = 0;
		assert_int_equal(aif_proto_set(&m.header, "u", bad_utf8[i]), -1);
		assert_int_equal(errno, EINVAL);
	}
	assert_int_equal(aif_proto_set(&m.header, "u", "\xF4\x8F\xBF\xBF"), 0); /* U+10FFFF */
	assert_int_equal(m.header.n, 4);
	aif_proto_msg_free(&m);
	aif_proto_msg_free(&m); /* freeing twice is harmless */
}

/* A usage message of n records of 10 fields: starts and ends of n / 2 jobs on 64 nodes. */
static void make_usage(struct aif_proto_msg *m, unsigned n)
{
	aif_proto_msg_init(m, AIF_PROTO_USAGE);
	assert_int_equal(aif_proto_set(&m->header, "cluster", "jupiter"), 0);
	for (unsigned i = 0; i < n; i++) {
		struct aif_proto_block *r = aif_proto_add_record(m);
		assert_non_null(r);
		assert_int_equal(aif_proto_set(r, "event", i % 2 ? "end" : "start"), 0);
		assert_int_equal(aif_proto_set_u64(r, "job", 1000000 + i / 2), 0);
		assert_int_equal(aif_proto_setf(r, "node", "nid%06u", i % 64), 0);
		assert_int_equal(aif_proto_set_u64(r, "restart", 0), 0);
		assert_int_equal(aif_proto_set_u64(r, "gpus", 4), 0);
		assert_int_equal(aif_proto_set_u64(r, "time", 1767225600u + i), 0);
		assert_int_equal(aif_proto_set(r, "project", "genomics-eu"), 0);
		assert_int_equal(aif_proto_set(r, "sector", "health"), 0);
		assert_int_equal(aif_proto_set_u64(r, "uid", 1001), 0);
		assert_int_equal(aif_proto_set(r, "user", "alice"), 0);
	}
}

static void test_many_records(void **state)
{
	enum { N = 5000 };
	struct aif_proto_msg m, back;
	struct aif_diag d;
	size_t len;
	char *text;
	uint64_t v;
	(void)state;

	make_usage(&m, N);
	assert_int_equal(aif_proto_set(&m.header, "nonce", "00000000deadbeef"), 0);
	text = encode_ok(&m, &len);
	assert_true(len < AIF_PROTO_MAX_REQUEST);
	decode_ok(text, &back);
	assert_int_equal(aif_proto_validate_request(&back, &d), 0);
	assert_int_equal(back.nrecords, N);
	assert_int_equal(back.records[N - 1].record, N);
	assert_int_equal(back.records[1].line, 16); /* 3 header lines, 2 x (empty + 10) */
	assert_int_equal(aif_proto_get_u64(&back.records[N - 1], "time", UINT64_MAX, &v, &d), 0);
	assert_int_equal(v, 1767225600u + N - 1);
	assert_string_equal(aif_proto_get(&back.records[77], "node"), "nid000013");
	free(text);
	aif_proto_msg_free(&back);
	aif_proto_msg_free(&m);
}

/* Each malformed message gets its exact message (naming the line) and detail. */
static void test_decode_errors(void **state)
{
	static const struct {
		const char *text, *message, *detail;
	} cases[] = {
		{"", "empty message", ""},
		{"hello\n", "line 1: not an aif protocol message",
		 "The first line must be \"AIF/1 <kind>\", not \"hello\"."},
		{"\xFF\xFE\n", "line 1: not an aif protocol message",
		 "The first line must be \"AIF/1 <kind>\", not \"%FF%FE\"."},
		{"AIF/2 check\n", "line 1: unsupported protocol version \"2\"",
		 "This program speaks aif protocol 1."},
		{"AIF/10 check\n", "line 1: unsupported protocol version \"10\"",
		 "This program speaks aif protocol 1."},
		{"AIF/1\n", "line 1: missing message kind after \"AIF/1\"", ""},
		{"AIF/1 hello\n", "line 1: unknown message kind \"hello\"", ""},
		{"AIF/1 check \n", "line 1: unknown message kind \"check \"", ""},
		{"AIF/1 check", "line 1: missing newline at the end of the message", ""},
		{"AIF/1 check\nnonce=1", "line 2: missing newline at the end of the message", ""},
		{"AIF/1 check\nnonce=1\nCluster=x\n", "line 3: invalid key \"Cluster\"",
		 "A key is 1 to 32 characters: a lower-case letter, then lower-case letters, digits and "
		 "underscores."},
		{"AIF/1 check\n=x\n", "line 2: invalid key \"\"",
		 "A key is 1 to 32 characters: a lower-case letter, then lower-case letters, digits and "
		 "underscores."},
		{"AIF/1 check\nk\x01y=1\n", "line 2: invalid key \"k%01y\"",
		 "A key is 1 to 32 characters: a lower-case letter, then lower-case letters, digits and "
		 "underscores."},
		{"AIF/1 check\nabcdefghijklmnopqrstuvwxyzabcdefg=1\n",
		 "line 2: invalid key \"abcdefghijklmnopqrstuvwxyzabcdefg\"",
		 "A key is 1 to 32 characters: a lower-case letter, then lower-case letters, digits and "
		 "underscores."},
		{"AIF/1 check\njust some text\n", "line 2: expected key=value, found \"just some text\"", ""},
		{"AIF/1 check\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n",
		 "line 2: expected key=value, found \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...\"", ""},
		{"AIF/1 check\na=1\nb=2\na=3\n", "line 4: duplicate key \"a\"",
		 "\"a\" is already set on line 2."},
		{"AIF/1 usage\na=1\n\na=1\nx=1\nx=2\n", "line 6: duplicate key \"x\"",
		 "\"x\" is already set on line 5."},
		{"AIF/1 check\na=50%\n", "line 2: invalid percent-encoding in the value of \"a\"",
		 "A \"%\" must be followed by two upper-case hexadecimal digits (\"%25\" stands for \"%\")."},
		{"AIF/1 check\na=%0a\n", "line 2: invalid percent-encoding in the value of \"a\"",
		 "A \"%\" must be followed by two upper-case hexadecimal digits (\"%25\" stands for \"%\")."},
		{"AIF/1 check\na=%4\n", "line 2: invalid percent-encoding in the value of \"a\"",
		 "A \"%\" must be followed by two upper-case hexadecimal digits (\"%25\" stands for \"%\")."},
		{"AIF/1 check\na=%00\n", "line 2: NUL byte (%00) in the value of \"a\"", ""},
		{"AIF/1 check\na=x\ty\n", "line 2: unencoded control character 0x09 in the value of \"a\"", ""},
		{"AIF/1 check\na=x\r\n", "line 2: unencoded control character 0x0D in the value of \"a\"", ""},
		{"AIF/1 check\na=\x7F\n", "line 2: unencoded control character 0x7F in the value of \"a\"", ""},
		{"AIF/1 check\na=\xFF\n", "line 2: invalid UTF-8 in the value of \"a\"", ""},
		{"AIF/1 check\na=%C3\n", "line 2: invalid UTF-8 in the value of \"a\"", ""},
		{"AIF/1 check\na=\xED\xA0\x80\n", "line 2: invalid UTF-8 in the value of \"a\"", ""},
		{"AIF/1 usage\n\n\nx=1\n", "line 3: unexpected empty line",
		 "Records are separated by one empty line, and a record has at least one field."},
		{"AIF/1 usage\nnonce=1\n\nx=1\n\n", "line 5: unexpected empty line",
		 "Records are separated by one empty line, and a record has at least one field."},
		{"AIF/1 usage\n\n", "line 2: unexpected empty line",
		 "Records are separated by one empty line, and a record has at least one field."},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct aif_proto_msg m;
		struct aif_diag d;
		if (aif_proto_decode(cases[i].text, strlen(cases[i].text), &m, &d) != -1)
			fail_msg("case %zu decoded", i);
		aif_proto_msg_free(&m);
		if (strcmp(d.message, cases[i].message) != 0 || strcmp(d.detail, cases[i].detail) != 0)
			fail_msg("case %zu: got \"%s\" / \"%s\"", i, d.message, d.detail);
	}
}

static void test_hints(void **state)
{
	struct aif_proto_msg m;
	struct aif_diag d;
	(void)state;
	assert_int_equal(aif_proto_decode("AIF/1 hello\n", 12, &m, &d), -1);
	assert_string_equal(d.hint, "Valid kinds are: check, admit, usage, status, ok, warn, refuse, error.");
	assert_int_equal(aif_proto_decode("AIF/3 ok\n", 9, &m, &d), -1);
	assert_string_equal(d.hint, "Run the same aif release on both sides, or upgrade the older one.");
	assert_int_equal(aif_proto_decode("AIF/1 ok\na=\t\n", 13, &m, &d), -1);
	assert_string_equal(d.hint, "Control characters are sent percent-encoded, e.g. \"%09\" for a tab.");
	aif_proto_msg_free(&m);
}

/* A newer peer's fields are kept but need not be understood. */
static void test_unknown_keys_ignored(void **state)
{
	static const char text[] = "AIF/1 check\n"
				   "nonce=0123456789abcdef\n"
				   "cluster=lumi\n"
				   "priority=high\n"
				   "project=genomics-eu\n";
	struct aif_proto_msg m;
	struct aif_diag d;
	(void)state;
	decode_ok(text, &m);
	assert_int_equal(aif_proto_validate_request(&m, &d), 0);
	assert_string_equal(aif_proto_get(&m.header, "priority"), "high");
	aif_proto_msg_free(&m);
}

static void test_limits(void **state)
{
	struct aif_proto_msg m, back;
	struct aif_diag d;
	char *value = malloc(3 * AIF_PROTO_MAX_VALUE + 64), *text;
	size_t len;
	(void)state;
	assert_non_null(value);

	/* a value of the maximum length, all of it percent-encoded */
	memset(value, '\n', AIF_PROTO_MAX_VALUE);
	value[AIF_PROTO_MAX_VALUE] = '\0';
	aif_proto_msg_init(&m, AIF_PROTO_OK);
	assert_int_equal(aif_proto_set(&m.header, "detail", value), 0);
	text = encode_ok(&m, &len);
	assert_int_equal(len, strlen("AIF/1 ok\ndetail=\n") + 3 * AIF_PROTO_MAX_VALUE);
	decode_ok(text, &back);
	assert_string_equal(aif_proto_get(&back.header, "detail"), value);
	aif_proto_msg_free(&back);
	free(text);
	strcat(value, "x");
	errno = 0;
	assert_int_equal(aif_proto_set(&m.header, "detail", value), -1);
	assert_int_equal(errno, EINVAL);
	aif_proto_msg_free(&m);

	sprintf(value, "AIF/1 ok\nv=");
	memset(value + strlen(value), 'x', AIF_PROTO_MAX_VALUE + 1);
	strcpy(value + strlen("AIF/1 ok\nv=") + AIF_PROTO_MAX_VALUE + 1, "\n");
	assert_int_equal(aif_proto_decode(value, strlen(value), &m, &d), -1);
	assert_string_equal(d.message, "line 2: value of \"v\" too long");
	assert_string_equal(d.detail, "Values are at most 4096 bytes once decoded.");
	aif_proto_msg_free(&m);
	free(value);

	/* fields per block */
	aif_proto_msg_init(&m, AIF_PROTO_OK);
	for (int i = 0; i < AIF_PROTO_MAX_FIELDS; i++)
		assert_int_equal(aif_proto_setf(&m.header, "f", "%d", i) == 0 &&
					 aif_proto_setf(&m.header, "k", "%d", i) == 0,
				 1);
	aif_proto_msg_free(&m);
	aif_proto_msg_init(&m, AIF_PROTO_OK);
	for (int i = 0; i < AIF_PROTO_MAX_FIELDS; i++) {
		char key[16];
		snprintf(key, sizeof(key), "k%d", i);
		assert_int_equal(aif_proto_set(&m.header, key, "v"), 0);
	}
	errno = 0;
	assert_int_equal(aif_proto_set(&m.header, "one_more", "v"), -1);
	assert_int_equal(errno, E2BIG);
	text = encode_ok(&m, &len);
	aif_proto_msg_free(&m);
	text = append(text, len, "one_more=v\n");
	assert_int_equal(aif_proto_decode(text, strlen(text), &m, &d), -1);
	assert_string_equal(d.message, "line 66: too many fields in one block");
	assert_string_equal(d.detail, "A header or record has at most 64 fields.");
	aif_proto_msg_free(&m);
	free(text);

	/* records per message */
	aif_proto_msg_init(&m, AIF_PROTO_USAGE);
	for (int i = 0; i < AIF_PROTO_MAX_RECORDS; i++)
		assert_int_equal(aif_proto_set(aif_proto_add_record(&m), "a", "1"), 0);
	errno = 0;
	assert_null(aif_proto_add_record(&m));
	assert_int_equal(errno, E2BIG);
	text = encode_ok(&m, &len);
	aif_proto_msg_free(&m);
	decode_ok(text, &m);
	assert_int_equal(m.nrecords, AIF_PROTO_MAX_RECORDS);
	aif_proto_msg_free(&m);
	text = append(text, len, "\na=1\n");
	assert_int_equal(aif_proto_decode(text, strlen(text), &m, &d), -1);
	assert_string_equal(d.message, "line 20002: too many records");
	assert_string_equal(d.detail, "A message has at most 10000 records.");
	aif_proto_msg_free(&m);
	free(text);

	/* a message larger than a frame can be neither encoded nor decoded */
	aif_proto_msg_init(&m, AIF_PROTO_STATUS);
	value = malloc(AIF_PROTO_MAX_VALUE + 1);
	assert_non_null(value);
	memset(value, '\x01', AIF_PROTO_MAX_VALUE);
	value[AIF_PROTO_MAX_VALUE] = '\0';
	for (int i = 0; i < 100; i++) {
		struct aif_proto_block *r = aif_proto_add_record(&m);
		assert_int_equal(aif_proto_set(r, "a", value), 0);
	}
	errno = 0;
	assert_int_equal(aif_proto_encode(&m, &text, &len), -1);
	assert_int_equal(errno, EMSGSIZE);
	aif_proto_msg_free(&m);
	free(value);
	assert_int_equal(aif_proto_decode("AIF/1 ok\n", AIF_PROTO_MAX_FRAME + 1, &m, &d), -1);
	assert_string_equal(d.message, "message too large");
	assert_string_equal(d.detail, "The message has 1048577 bytes; the limit is 1048576.");

	/* a record without fields cannot be encoded */
	aif_proto_msg_init(&m, AIF_PROTO_USAGE);
	assert_non_null(aif_proto_add_record(&m));
	errno = 0;
	assert_int_equal(aif_proto_encode(&m, &text, &len), -1);
	assert_int_equal(errno, EINVAL);
	aif_proto_msg_free(&m);
}

static void test_unsigned_integers(void **state)
{
	static const struct {
		const char *text;
		uint64_t max;
		int rc;
		uint64_t value;
	} cases[] = {
		{"0", UINT64_MAX, 0, 0},
		{"007", UINT64_MAX, 0, 7},
		{"18446744073709551615", UINT64_MAX, 0, UINT64_MAX},
		{"18446744073709551616", UINT64_MAX, -1, 0},
		{"99999999999999999999999", UINT64_MAX, -1, 0},
		{"4294967295", UINT32_MAX, 0, UINT32_MAX},
		{"4294967296", UINT32_MAX, -1, 0},
		{"", UINT64_MAX, -1, 0},
		{"-1", UINT64_MAX, -1, 0},
		{"+1", UINT64_MAX, -1, 0},
		{" 5", UINT64_MAX, -1, 0},
		{"5 ", UINT64_MAX, -1, 0},
		{"0x10", UINT64_MAX, -1, 0},
		{"1.5", UINT64_MAX, -1, 0},
	};
	struct aif_proto_msg m;
	struct aif_diag d;
	uint64_t v;
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		v = 12345;
		assert_int_equal(aif_proto_parse_u64(cases[i].text, cases[i].max, &v), cases[i].rc);
		assert_int_equal(v, cases[i].rc == 0 ? cases[i].value : 12345);
	}

	decode_ok("AIF/1 admit\njob=77\nuid=x1\n\ngpus=8\n", &m);
	assert_int_equal(aif_proto_get_u64(&m.header, "job", UINT32_MAX, &v, &d), 0);
	assert_int_equal(v, 77);
	assert_int_equal(aif_proto_get_u64(&m.header, "uid", UINT32_MAX, &v, &d), -1);
	assert_string_equal(d.message, "line 3: invalid value for field \"uid\": \"x1\"");
	assert_string_equal(d.detail, "The value must be a whole number from 0 to 4294967295.");
	assert_int_equal(aif_proto_get_u64(&m.records[0], "gpus", 4, &v, &d), -1);
	assert_string_equal(d.message, "line 5: invalid value for field \"gpus\": \"8\"");
	assert_string_equal(d.detail, "The value must be a whole number from 0 to 4.");
	assert_int_equal(aif_proto_get_u64(&m.header, "gid", UINT32_MAX, &v, &d), -1);
	assert_string_equal(d.message, "missing field \"gid\"");
	assert_int_equal(aif_proto_get_u64(&m.records[0], "job", UINT32_MAX, &v, &d), -1);
	assert_string_equal(d.message, "missing field \"job\" in record 1");
	assert_string_equal(d.detail, "Record 1 starts on line 5.");
	assert_null(aif_proto_require(&m.header, "gid", &d));
	assert_string_equal(aif_proto_require(&m.header, "job", &d), "77");
	aif_proto_msg_free(&m);
}

/* ---- field validation ---- */

static const char check_ok[] = "AIF/1 check\nnonce=0123456789abcdef\ncluster=lumi\n";
#define USAGE_RECORD                                                                   \
	"\nevent=start\njob=12\nnode=nid001\nrestart=0\ngpus=4\ntime=1767225600\n" \
	"project=genomics-eu\nsector=health\nuid=1001\nuser=alice\n"

#define P16 "pppppppppppppppp"
#define NAME256 P16 P16 P16 P16 P16 P16 P16 P16 P16 P16 P16 P16 P16 P16 P16 P16

static void test_validate_requests(void **state)
{
	static const struct {
		const char *text, *message, *detail;
	} cases[] = {
		{check_ok, NULL, NULL},
		{"AIF/1 check\nnonce=0123456789abcdef\n", NULL, NULL}, /* cluster: aifd's own */
		{"AIF/1 status\nnonce=0123456789abcdef\n", NULL, NULL},
		/* cluster: aifd's own (the plugin has no trustworthy one in slurmstepd) */
		{"AIF/1 admit\nnonce=0123456789abcdef\njob=1\nuid=1001\ngid=1001\n", NULL, NULL},
		{"AIF/1 usage\nnonce=0123456789abcdef\n" USAGE_RECORD, "missing field \"cluster\"", ""},
		{"AIF/1 check\nnonce=0123456789ABCDEF\ncluster=lumi\n",
		 "line 2: invalid value for field \"nonce\": \"0123456789ABCDEF\"",
		 "The value must be 16 lower-case hexadecimal digits."},
		{"AIF/1 check\nnonce=0123\ncluster=lumi\n",
		 "line 2: invalid value for field \"nonce\": \"0123\"",
		 "The value must be 16 lower-case hexadecimal digits."},
		{"AIF/1 check\nnonce=0123456789abcdef\ncluster=\n",
		 "line 3: invalid value for field \"cluster\": \"\"",
		 "The value must be 1 to 255 bytes, without control characters."},
		{"AIF/1 check\nnonce=0123456789abcdef\ncluster=a%0Ab\n",
		 "line 3: invalid value for field \"cluster\": \"a%0Ab\"",
		 "The value must be 1 to 255 bytes, without control characters."},
		{"AIF/1 check\nnonce=0123456789abcdef\ncluster=lumi\n\nx=1\n",
		 "unexpected records in a check request", "The first record starts on line 5."},
		{"AIF/1 admit\nnonce=0123456789abcdef\ncluster=lumi\njob=1\nuid=1001\ngid=1001\n", NULL, NULL},
		{"AIF/1 admit\nnonce=0123456789abcdef\ncluster=lumi\njob=1\nuid=-1\ngid=1001\n",
		 "line 5: invalid value for field \"uid\": \"-1\"",
		 "The value must be a whole number from 0 to 4294967295."},
		{"AIF/1 admit\nnonce=0123456789abcdef\ncluster=lumi\nuid=1\ngid=1001\n",
		 "missing field \"job\"", ""},
		{"AIF/1 status\nnonce=0123456789abcdef\ncluster=lumi\n", NULL, NULL},
		{"AIF/1 usage\nnonce=0123456789abcdef\ncluster=lumi\n", "usage request without records", ""},
		{"AIF/1 usage\nnonce=0123456789abcdef\ncluster=lumi\n" USAGE_RECORD USAGE_RECORD, NULL, NULL},
		{"AIF/1 usage\nnonce=0123456789abcdef\ncluster=lumi\n" USAGE_RECORD
		 "\nevent=begin\njob=12\nnode=n\nrestart=0\ngpus=4\ntime=1\nuid=1\n",
		 "line 16: invalid value for field \"event\": \"begin\"", "The value must be start or end."},
		{"AIF/1 usage\nnonce=0123456789abcdef\ncluster=lumi\n" USAGE_RECORD
		 "\nevent=end\nnode=n\nrestart=0\ngpus=4\ntime=1\nuid=1\n",
		 "missing field \"job\" in record 2", "Record 2 starts on line 16."},
		/* What the store can never hold is refused here, once: a time past 9999, a start after
		 * its end, a name over 255 bytes. */
		{"AIF/1 usage\nnonce=0123456789abcdef\ncluster=lumi\n"
		 "\nevent=end\njob=12\nnode=n\nrestart=0\ngpus=4\ntime=253402300800\nuid=1\n",
		 "line 10: invalid value for field \"time\": \"253402300800\"",
		 "The value must be a time in Unix seconds, from 0 to 253402300799 (the end of 9999)."},
		{"AIF/1 usage\nnonce=0123456789abcdef\ncluster=lumi\n"
		 "\nevent=end\njob=12\nnode=n\nrestart=0\ngpus=4\ntime=253402300799\nuid=1\n", NULL, NULL},
		{"AIF/1 usage\nnonce=0123456789abcdef\ncluster=lumi\n"
		 "\nevent=end\njob=12\nnode=n\nrestart=0\ngpus=4\ntime=100\nstart=101\nuid=1\n",
		 "line 11: invalid value for field \"start\": \"101\"",
		 "The start of an end record must not be after its time (100)."},
		{"AIF/1 usage\nnonce=0123456789abcdef\ncluster=lumi\n"
		 "\nevent=end\njob=12\nnode=n\nrestart=0\ngpus=4\ntime=100\nstart=100\nuid=1\n", NULL, NULL},
		{"AIF/1 usage\nnonce=0123456789abcdef\ncluster=lumi\n"
		 "\nevent=start\njob=12\nnode=n\nrestart=0\ngpus=4\ntime=100\nuid=1\nproject="
		 NAME256 "\n",
		 "line 12: invalid value for field \"project\": \"pppppppppppppppppppppppppppppppppppppppp...\"",
		 "The value must be 1 to 255 bytes, without control characters."},
		{"AIF/1 ok\nnonce=0123456789abcdef\n", "a ok response where a request was expected", ""},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct aif_proto_msg m;
		struct aif_diag d;
		int rc;
		decode_ok(cases[i].text, &m);
		rc = aif_proto_validate_request(&m, &d);
		aif_proto_msg_free(&m);
		if (!cases[i].message) {
			if (rc != 0)
				fail_msg("case %zu: %s", i, d.message);
			continue;
		}
		if (rc != -1 || strcmp(d.message, cases[i].message) != 0 ||
		    strcmp(d.detail, cases[i].detail) != 0)
			fail_msg("case %zu: got %d \"%s\" / \"%s\"", i, rc, d.message, d.detail);
	}
}

static void test_validate_responses(void **state)
{
	static const struct {
		enum aif_proto_kind request;
		const char *text, *message, *detail;
	} cases[] = {
		{AIF_PROTO_CHECK, "AIF/1 ok\nnonce=0123456789abcdef\nproject=p\nsector=health\n", NULL, NULL},
		{AIF_PROTO_CHECK, "AIF/1 ok\nnonce=0123456789abcdef\nproject=p\n", "missing field \"sector\"", ""},
		{AIF_PROTO_ADMIT, "AIF/1 warn\nnonce=0123456789abcdef\nproject=p\nsector=s\n",
		 "missing field \"message\"", ""},
		{AIF_PROTO_ADMIT, "AIF/1 refuse\nnonce=0123456789abcdef\nmessage=no\ndetail=d\nhint=h\n", NULL, NULL},
		{AIF_PROTO_ADMIT, "AIF/1 refuse\nnonce=0123456789abcdef\n", "missing field \"message\"", ""},
		{AIF_PROTO_ADMIT, "AIF/1 refuse\nmessage=no\n", "missing field \"nonce\"", ""},
		/* aifd could not read the request, so it cannot echo its nonce */
		{AIF_PROTO_ADMIT, "AIF/1 error\nmessage=invalid credential\n", NULL, NULL},
		{AIF_PROTO_USAGE, "AIF/1 ok\nnonce=0123456789abcdef\nacked=3\n", NULL, NULL},
		{AIF_PROTO_USAGE, "AIF/1 ok\nnonce=0123456789abcdef\n", "missing field \"acked\"", ""},
		{AIF_PROTO_USAGE, "AIF/1 ok\nnonce=0123456789abcdef\nacked=10001\n",
		 "line 3: invalid value for field \"acked\": \"10001\"",
		 "The value must be a whole number from 0 to 10000."},
		{AIF_PROTO_USAGE, "AIF/1 error\nnonce=0123456789abcdef\nmessage=database down\n", NULL, NULL},
		{AIF_PROTO_STATUS, "AIF/1 ok\nnonce=0123456789abcdef\n", NULL, NULL},
		{AIF_PROTO_STATUS,
		 "AIF/1 ok\nnonce=0123456789abcdef\n\nproject=p\nfactory=ai2f\nperiod=2026-h1\n"
		 "budget_gpu_hours=40000\nused_gpu_hours=40012.5\nremaining_gpu_hours=-12.5\nstate=exhausted\n",
		 NULL, NULL},
		{AIF_PROTO_STATUS,
		 "AIF/1 ok\nnonce=0123456789abcdef\n\nproject=p\nfactory=ai2f\nperiod=2026-h1\n"
		 "budget_gpu_hours=40000\nused_gpu_hours=-1\nremaining_gpu_hours=1.\nstate=ok\n",
		 "line 8: invalid value for field \"used_gpu_hours\": \"-1\"",
		 "The value must be a decimal number, such as 2.5 or 40000."},
		{AIF_PROTO_STATUS,
		 "AIF/1 ok\nnonce=0123456789abcdef\n\nproject=p\nfactory=ai2f\nperiod=2026-h1\n"
		 "budget_gpu_hours=40000\nused_gpu_hours=1\nremaining_gpu_hours=1.\nstate=ok\n",
		 "line 9: invalid value for field \"remaining_gpu_hours\": \"1.\"",
		 "The value must be a decimal number, such as -2.5 or 40000."},
		{AIF_PROTO_STATUS,
		 "AIF/1 ok\nnonce=0123456789abcdef\n\nproject=p\nfactory=ai2f\nperiod=2026-h1\n"
		 "budget_gpu_hours=40000\nused_gpu_hours=1\nremaining_gpu_hours=1\nstate=gone\n",
		 "line 10: invalid value for field \"state\": \"gone\"",
		 "The value must be ok, warning or exhausted."},
		{AIF_PROTO_CHECK, "AIF/1 refuse\nnonce=0123456789abcdef\nmessage=m\n\nx=1\n",
		 "unexpected records in a refuse response", "The first record starts on line 5."},
		{AIF_PROTO_CHECK, "AIF/1 check\nnonce=0123456789abcdef\n",
		 "a check request where a response was expected", ""},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct aif_proto_msg m;
		struct aif_diag d;
		int rc;
		decode_ok(cases[i].text, &m);
		rc = aif_proto_validate_response(&m, cases[i].request, &d);
		aif_proto_msg_free(&m);
		if (!cases[i].message) {
			if (rc != 0)
				fail_msg("case %zu: %s", i, d.message);
			continue;
		}
		if (rc != -1 || strcmp(d.message, cases[i].message) != 0 ||
		    strcmp(d.detail, cases[i].detail) != 0)
			fail_msg("case %zu: got %d \"%s\" / \"%s\"", i, rc, d.message, d.detail);
	}
}

static void test_validate_built_locally(void **state)
{
	struct aif_proto_msg m;
	struct aif_proto_block *r;
	struct aif_diag d;
	(void)state;
	aif_proto_msg_init(&m, AIF_PROTO_OK);
	assert_int_equal(aif_proto_set(&m.header, "nonce", "0123456789abcdef"), 0);
	r = aif_proto_add_record(&m);
	assert_int_equal(aif_proto_set(r, "project", "p"), 0);
	assert_int_equal(aif_proto_validate_response(&m, AIF_PROTO_STATUS, &d), -1);
	assert_string_equal(d.message, "missing field \"factory\" in record 1");
	assert_string_equal(d.detail, "");
	assert_int_equal(aif_proto_set(r, "project", ""), 0);
	assert_int_equal(aif_proto_validate_response(&m, AIF_PROTO_STATUS, &d), -1);
	assert_string_equal(d.message, "record 1: invalid value for field \"project\": \"\"");
	aif_proto_msg_free(&m);

	decode_ok("AIF/1 refuse\nnonce=0123456789abcdef\nmessage=project \"x\" is exhausted\n"
		  "detail=40000 of 40000 GPU-hours used.\n",
		  &m);
	aif_proto_response_diag(&m, &d);
	assert_string_equal(d.message, "project \"x\" is exhausted");
	assert_string_equal(d.detail, "40000 of 40000 GPU-hours used.");
	assert_string_equal(d.hint, "");
	aif_proto_msg_free(&m);
	assert_string_equal(aif_proto_kind_name(AIF_PROTO_STATUS), "status");
	assert_null(aif_proto_kind_name(AIF_PROTO_NONE));
	assert_true(aif_proto_kind_is_request(AIF_PROTO_USAGE));
	assert_false(aif_proto_kind_is_request(AIF_PROTO_OK));
	assert_true(aif_proto_kind_is_response(AIF_PROTO_ERROR));
}

/* ---- framing ---- */

static void test_frame_header(void **state)
{
	static const struct {
		uint32_t len;
		unsigned char bytes[4];
	} cases[] = {{0, {0, 0, 0, 0}},
		     {1, {0, 0, 0, 1}},
		     {0x01020304, {1, 2, 3, 4}},
		     {AIF_PROTO_MAX_FRAME, {0, 0x10, 0, 0}},
		     {UINT32_MAX, {0xFF, 0xFF, 0xFF, 0xFF}}};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unsigned char out[4];
		aif_proto_frame_header(cases[i].len, out);
		assert_memory_equal(out, cases[i].bytes, 4);
		assert_int_equal(aif_proto_frame_length(cases[i].bytes), cases[i].len);
	}
}

static void test_frame_io(void **state)
{
	int sv[2];
	struct aif_diag d;
	char *body;
	size_t len;
	unsigned char header[4];
	int64_t deadline = aif_clock_ms() + 2000;
	(void)state;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(aif_proto_write_frame(sv[0], "hello", 5, deadline, "peer", &d), 0);
	assert_int_equal(aif_proto_write_frame(sv[0], "", 0, deadline, "peer", &d), 0);
	assert_int_equal(aif_proto_read_frame(sv[1], &body, &len, 100, deadline, "peer", &d), 1);
	assert_int_equal(len, 5);
	assert_string_equal(body, "hello");
	free(body);
	assert_int_equal(aif_proto_read_frame(sv[1], &body, &len, 100, deadline, "peer", &d), 1);
	assert_int_equal(len, 0);
	free(body);

	/* larger than the reader's limit */
	assert_int_equal(aif_proto_write_frame(sv[0], "0123456789", 10, deadline, "peer", &d), 0);
	errno = 0;
	assert_int_equal(aif_proto_read_frame(sv[1], &body, &len, 9, deadline, "aifd at x", &d), -1);
	assert_int_equal(errno, EMSGSIZE);
	assert_string_equal(d.message, "message from aifd at x too large");
	assert_string_equal(d.detail, "The frame announces 10 bytes; the limit is 9.");
	close(sv[0]);
	close(sv[1]);

	/* the connection ends inside a frame, and at a frame boundary */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	aif_proto_frame_header(10, header);
	assert_int_equal(write(sv[0], header, 4), 4);
	assert_int_equal(write(sv[0], "abc", 3), 3);
	close(sv[0]);
	errno = 0;
	assert_int_equal(aif_proto_read_frame(sv[1], &body, &len, 100, deadline, "aifd at x", &d), -1);
	assert_int_equal(errno, EPROTO);
	assert_string_equal(d.message, "aifd at x closed the connection in the middle of a message");
	assert_int_equal(aif_proto_read_frame(sv[1], &body, &len, 100, deadline, "aifd at x", &d), 0);
	close(sv[1]);

	/* nothing arrives */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	deadline = aif_clock_ms() + 50;
	errno = 0;
	assert_int_equal(aif_proto_read_frame(sv[1], &body, &len, 100, deadline, "client 7", &d), -1);
	assert_int_equal(errno, ETIMEDOUT);
	assert_string_equal(d.message, "timed out waiting for client 7");
	assert_true(aif_clock_ms() >= deadline);

	/* writing to a closed peer: an error, no SIGPIPE */
	close(sv[1]);
	errno = 0;
	assert_int_equal(aif_proto_write_frame(sv[0], "x", 1, deadline + 1000, "client 7", &d), -1);
	assert_int_equal(errno, EPIPE);
	assert_string_equal(d.message, "could not send to client 7: Broken pipe");
	close(sv[0]);
}

/* ---- the client, against a server thread ---- */

enum server_mode {
	SERVE_OK,           /* answer ok, echoing the nonce */
	SERVE_ONE_PER_CONN, /* answer one request, then close the connection */
	SERVE_SILENT,       /* read the request, never answer */
	SERVE_WRONG_NONCE,
	SERVE_GARBAGE,
	SERVE_ERROR_NO_NONCE,
	SERVE_DEAF,         /* read nothing, until the test lets the connection go */
};

struct server {
	enum server_mode mode;
	struct fake_server net;
	int requests;
	bool failed; /* cmocka's asserts belong to the main thread: the server only records */
	bool let_go; /* __atomic: SERVE_DEAF reads its connection, and ends it */
	size_t received; /* SERVE_DEAF: the bytes it read then */
	char last[1024];
};

static int failing_encode(void *arg, const char *payload, size_t len, char **cred,
			  struct aif_diag *diag)
{
	(void)arg;
	(void)payload;
	(void)len;
	(void)cred;
	aif_diag_clear(diag);
	aif_diag_message(diag, "munge: Failed to access \"/nowhere\"");
	return -1;
}

static void serve_connection(void *arg, int fd)
{
	struct server *s = arg;

	if (s->mode == SERVE_DEAF) { /* then counts what came, until the client's end */
		char buf[65536];
		ssize_t n;

		while (!__atomic_load_n(&s->let_go, __ATOMIC_ACQUIRE))
			usleep(10000);
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			s->received += (size_t)n;
		return;
	}
	for (;;) {
		static const char garbage[] = "HTTP/1.1 400 Bad Request\r\n";
		struct aif_proto_msg req, resp;
		struct aif_diag d;
		int rc = fake_server_read(fd, &req, s->last, sizeof(s->last));
		if (rc < 0)
			s->failed = true;
		if (rc <= 0)
			return;
		s->requests++;
		if (s->mode == SERVE_SILENT) {
			aif_proto_msg_free(&req);
			continue; /* until the client gives up and closes */
		}
		aif_proto_msg_init(&resp, s->mode == SERVE_ERROR_NO_NONCE ? AIF_PROTO_ERROR : AIF_PROTO_OK);
		if (s->mode == SERVE_ERROR_NO_NONCE) {
			aif_proto_set(&resp.header, "message", "invalid MUNGE credential");
			aif_proto_set(&resp.header, "detail", "Expired credential");
		} else {
			aif_proto_set(&resp.header, "nonce",
				      s->mode == SERVE_WRONG_NONCE ? "ffffffffffffffff"
								   : aif_proto_get(&req.header, "nonce"));
			aif_proto_set(&resp.header, "project",
				      aif_proto_get(&req.header, "project") ? aif_proto_get(&req.header, "project")
									    : "default-project");
			aif_proto_set(&resp.header, "sector", "health");
		}
		if (s->mode == SERVE_GARBAGE)
			rc = aif_proto_write_frame(fd, garbage, strlen(garbage), aif_clock_ms() + 5000,
						   "client", &d);
		else
			rc = fake_server_reply(fd, &resp);
		aif_proto_msg_free(&req);
		aif_proto_msg_free(&resp);
		if (rc < 0 || s->mode == SERVE_ONE_PER_CONN)
			return;
	}
}

static void server_start(struct server *s, enum server_mode mode, bool tcp)
{
	memset(s, 0, sizeof(*s));
	s->mode = mode;
	fake_server_start(&s->net, tcp, serve_connection, s);
}

/* Call after the client is freed: the server thread then sees the connection end. */
static void server_stop(struct server *s)
{
	__atomic_store_n(&s->let_go, true, __ATOMIC_RELEASE);
	fake_server_stop(&s->net);
	assert_false(s->failed);
}

static struct aif_client *client_for(const struct server *s, unsigned long timeout_ms)
{
	struct aif_client_options o = {.server = s->net.address, .timeout_ms = timeout_ms,
				       .encode = fake_encode};
	struct aif_diag d;
	struct aif_client *c = aif_client_new(&o, &d);
	if (!c)
		fail_msg("aif_client_new: %s", d.message);
	return c;
}

static void make_check(struct aif_proto_msg *m, const char *project)
{
	aif_proto_msg_init(m, AIF_PROTO_CHECK);
	assert_int_equal(aif_proto_set(&m->header, "cluster", "lumi"), 0);
	if (project)
		assert_int_equal(aif_proto_set(&m->header, "project", project), 0);
}

static void client_round_trips(bool tcp)
{
	struct server s;
	struct aif_client *c;
	struct aif_proto_msg req, resp;
	struct aif_diag d;
	char first_nonce[32];

	server_start(&s, SERVE_OK, tcp);
	c = client_for(&s, 2000);
	make_check(&req, "genomics-eu");
	assert_int_equal(aif_client_request(c, &req, &resp, &d), 0);
	assert_int_equal(resp.kind, AIF_PROTO_OK);
	assert_string_equal(aif_proto_get(&resp.header, "project"), "genomics-eu");
	assert_string_equal(d.message, "");
	/* the nonce is the header's first field: 16 lower-case hex digits */
	assert_memory_equal(s.last, "AIF/1 check\nnonce=", 18);
	assert_string_equal(s.last + 34, "\ncluster=lumi\nproject=genomics-eu\n");
	snprintf(first_nonce, sizeof(first_nonce), "%s", aif_proto_get(&resp.header, "nonce"));
	aif_proto_msg_free(&resp);

	/* a second request on the same connection, with a new nonce */
	assert_int_equal(aif_client_request(c, &req, &resp, &d), 0);
	assert_string_not_equal(aif_proto_get(&resp.header, "nonce"), first_nonce);
	aif_proto_msg_free(&resp);
	aif_proto_msg_free(&req);

	/* a nonce given by the caller is used as is */
	make_check(&req, NULL);
	assert_int_equal(aif_proto_set(&req.header, "nonce", "00000000000000aa"), 0);
	assert_int_equal(aif_client_request(c, &req, &resp, &d), 0);
	assert_string_equal(aif_proto_get(&resp.header, "nonce"), "00000000000000aa");
	assert_string_equal(aif_proto_get(&resp.header, "project"), "default-project");
	aif_proto_msg_free(&resp);
	aif_proto_msg_free(&req);
	aif_client_free(c);
	server_stop(&s);
	assert_int_equal(s.net.connections, 1);
	assert_int_equal(s.requests, 3);
}

static void test_client_unix(void **state)
{
	(void)state;
	client_round_trips(false);
}

static void test_client_tcp(void **state)
{
	(void)state;
	client_round_trips(true);
}

/* aifd closed the kept connection: the client reconnects once, transparently. */
static void test_client_reconnects(void **state)
{
	struct server s;
	struct aif_client *c;
	struct aif_proto_msg req, resp;
	struct aif_diag d;
	(void)state;

	server_start(&s, SERVE_ONE_PER_CONN, false);
	c = client_for(&s, 2000);
	make_check(&req, "p");
	for (int i = 0; i < 3; i++) {
		if (aif_client_request(c, &req, &resp, &d) != 0)
			fail_msg("request %d: %s", i, d.message);
		assert_int_equal(resp.kind, AIF_PROTO_OK);
		aif_proto_msg_free(&resp);
		usleep(20000); /* let the server's close arrive */
	}
	aif_proto_msg_free(&req);
	aif_client_free(c);
	server_stop(&s);
	assert_int_equal(s.net.connections, 3);
	assert_int_equal(s.requests, 3);
}

static void test_client_bad_responses(void **state)
{
	static const struct {
		enum server_mode mode;
		const char *message, *detail;
	} cases[] = {
		{SERVE_WRONG_NONCE, "response from aifd at SOCKET does not match the request",
		 "The request's nonce is 0123456789abcdef, the response's ffffffffffffffff."},
		{SERVE_GARBAGE, "invalid response from aifd at SOCKET", "line 1: not an aif protocol message"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct server s;
		struct aif_client *c;
		struct aif_proto_msg req, resp;
		struct aif_diag d;
		char expected[512];

		server_start(&s, cases[i].mode, false);
		c = client_for(&s, 2000);
		make_check(&req, "p");
		assert_int_equal(aif_proto_set(&req.header, "nonce", "0123456789abcdef"), 0);
		assert_int_equal(aif_client_request(c, &req, &resp, &d), -1);
		assert_int_equal(resp.kind, AIF_PROTO_NONE);
		snprintf(expected, sizeof(expected), "%.*s%s%s",
			 (int)(strstr(cases[i].message, "SOCKET") - cases[i].message), cases[i].message,
			 s.net.path, strstr(cases[i].message, "SOCKET") + 6);
		assert_string_equal(d.message, expected);
		assert_string_equal(d.detail, cases[i].detail);
		aif_proto_msg_free(&resp);
		aif_proto_msg_free(&req);
		aif_client_free(c);
		server_stop(&s);
	}
}

/* An error aifd sends when it cannot read the request carries no nonce: still an answer. */
static void test_client_error_without_nonce(void **state)
{
	struct server s;
	struct aif_client *c;
	struct aif_proto_msg req, resp;
	struct aif_diag d;
	(void)state;

	server_start(&s, SERVE_ERROR_NO_NONCE, false);
	c = client_for(&s, 2000);
	make_check(&req, "p");
	assert_int_equal(aif_client_request(c, &req, &resp, &d), 0);
	assert_int_equal(resp.kind, AIF_PROTO_ERROR);
	aif_proto_response_diag(&resp, &d);
	assert_string_equal(d.message, "invalid MUNGE credential");
	assert_string_equal(d.detail, "Expired credential");
	aif_proto_msg_free(&resp);
	aif_proto_msg_free(&req);
	aif_client_free(c);
	server_stop(&s);
}

/* req, sent by a client with a 300 ms timeout, fails with it, within it, saying so. */
static void request_times_out(const struct server *s, const struct aif_proto_msg *req)
{
	struct aif_client *c = client_for(s, 300);
	struct aif_proto_msg resp;
	struct aif_diag d;
	char expected[256];
	int64_t start = aif_clock_ms(), elapsed;

	assert_int_equal(aif_client_request(c, req, &resp, &d), -1);
	elapsed = aif_clock_ms() - start;
	assert_true(elapsed >= 300);
	assert_true(elapsed < 300 + 150);
	snprintf(expected, sizeof(expected), "timed out after 300 ms waiting for aifd at %s", s->net.path);
	assert_string_equal(d.message, expected);
	aif_client_free(c);
}

/* A server that never answers: the request fails with the timeout, within the deadline. */
static void test_client_timeout(void **state)
{
	struct server s;
	struct aif_proto_msg req;
	(void)state;

	server_start(&s, SERVE_SILENT, false);
	make_check(&req, "p");
	request_times_out(&s, &req);
	aif_proto_msg_free(&req);
	server_stop(&s);
	assert_int_equal(s.requests, 1);
}

/*
 * A server that reads nothing: a request larger than the socket's buffers fails when its write
 * times out, with the same message as a wait for the answer (the time waited, and for whom).
 */
static void test_client_write_timeout(void **state)
{
	struct server s;
	struct aif_proto_msg req;
	char *text;
	size_t len;
	(void)state;

	server_start(&s, SERVE_DEAF, false);
	make_usage(&req, 5000); /* 630 kB, beyond a Unix socket's buffers (212 kB by default) */
	text = encode_ok(&req, &len);
	free(text);
	request_times_out(&s, &req);
	aif_proto_msg_free(&req);
	server_stop(&s);
	assert_int_equal(s.requests, 0);
	/* what the write got out before it timed out: not the whole request (else the timeout
	 * was the read's, and this tested nothing new) */
	assert_true(s.received > 0);
	assert_true(s.received < len);
}

/*
 * A request in two halves (slurmstepd's admission: sent in init_post_opt, read in user_init):
 * an answer that came while the caller did other work is read even after the deadline; the
 * wait for one that does not come counts from the send; a second send never takes the first
 * one's answer; a receive with nothing sent fails.
 */
static void test_client_send_then_receive(void **state)
{
	struct server s;
	struct aif_client *c;
	struct aif_proto_msg req, resp;
	struct aif_diag d;
	char expected[256];
	int64_t start;
	(void)state;

	server_start(&s, SERVE_OK, false);
	c = client_for(&s, 100);
	make_check(&req, "early");
	assert_int_equal(aif_client_send_by(c, &req, INT64_MAX, &d), 0);
	aif_proto_msg_free(&req);
	usleep(250000); /* past the 100 ms deadline: the answer has been waiting */
	assert_int_equal(aif_client_receive(c, &resp, &d), 0);
	assert_int_equal(resp.kind, AIF_PROTO_OK);
	assert_string_equal(aif_proto_get(&resp.header, "project"), "early");
	aif_proto_msg_free(&resp);

	assert_int_equal(aif_client_receive(c, &resp, &d), -1);
	snprintf(expected, sizeof(expected), "internal error: no request sent to aifd at %s", s.net.path);
	assert_string_equal(d.message, expected);
	assert_int_equal(resp.kind, AIF_PROTO_NONE);
	aif_client_free(c);
	server_stop(&s);

	/*
	 * Two sends, one receive: the answer is the second request's. The first connection is
	 * dropped with its answer unread, which the server reads as a reset: not checked.
	 */
	server_start(&s, SERVE_OK, false);
	c = client_for(&s, 2000);
	make_check(&req, "first");
	assert_int_equal(aif_client_send_by(c, &req, INT64_MAX, &d), 0);
	aif_proto_msg_free(&req);
	usleep(50000); /* the first one's answer is on its way */
	make_check(&req, "second");
	assert_int_equal(aif_client_send_by(c, &req, INT64_MAX, &d), 0);
	aif_proto_msg_free(&req);
	assert_int_equal(aif_client_receive(c, &resp, &d), 0);
	assert_string_equal(aif_proto_get(&resp.header, "project"), "second");
	aif_proto_msg_free(&resp);
	aif_client_free(c);
	fake_server_stop(&s.net);
	assert_int_equal(s.net.connections, 2);
	assert_int_equal(s.requests, 2);

	/* No answer: the receive gives up when the request's time is up, counted from the send. */
	server_start(&s, SERVE_SILENT, false);
	c = client_for(&s, 300);
	make_check(&req, "p");
	assert_int_equal(aif_client_send_by(c, &req, INT64_MAX, &d), 0);
	aif_proto_msg_free(&req);
	usleep(200000);
	start = aif_clock_ms();
	assert_int_equal(aif_client_receive(c, &resp, &d), -1);
	assert_true(aif_clock_ms() - start < 200);
	snprintf(expected, sizeof(expected), "timed out after 300 ms waiting for aifd at %s", s.net.path);
	assert_string_equal(d.message, expected);
	aif_client_free(c);
	server_stop(&s);
}

/* Runs child(c) in a forked process: its exit code, or -1 when it did not exit. */
static int in_child(struct aif_client *c, int (*child)(struct aif_client *c))
{
	int status;
	pid_t pid = fork();

	if (pid == 0)
		_exit(child(c));
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Reads the answer to the request its parent sent, then ends the connection. */
static int read_and_disconnect(struct aif_client *c)
{
	struct aif_proto_msg resp;
	struct aif_diag d;
	int rc = aif_client_receive(c, &resp, &d);

	rc = rc == 0 && strcmp(aif_proto_get(&resp.header, "project"), "child") == 0 ? 0 : 1;
	aif_proto_msg_free(&resp);
	aif_client_disconnect(c);
	return rc;
}

/* Sends a request with its parent's client: refused, never connected. */
static int send_unconnected(struct aif_client *c)
{
	struct aif_proto_msg req;
	struct aif_diag d;
	char expected[128];
	int rc;

	make_check(&req, "p");
	rc = aif_client_send_by(c, &req, INT64_MAX, &d);
	aif_proto_msg_free(&req);
	snprintf(expected, sizeof(expected),
		 "internal error: the client of process %d cannot send from process %d", (int)getppid(),
		 (int)getpid());
	return rc == -1 && strcmp(d.message, expected) == 0 ? 0 : 1;
}

/*
 * Another process than the client's (contain_spank's clone(CLONE_VM) child of slurmstepd; a
 * forked child here) reads the answer and ends the connection for both, but never closes the
 * descriptor the client holds for its process, nor sends (which could open one of its own).
 */
static void test_client_other_process(void **state)
{
	struct server s;
	struct aif_client *c;
	struct aif_proto_msg req, resp;
	struct aif_diag d;
	char expected[256];
	(void)state;

	server_start(&s, SERVE_OK, false);
	c = client_for(&s, 2000);
	make_check(&req, "child");
	assert_int_equal(aif_client_send_by(c, &req, INT64_MAX, &d), 0);
	aif_proto_msg_free(&req);
	assert_int_equal(in_child(c, read_and_disconnect), 0);
	/* This process's descriptor is still open, on a connection the child ended. */
	assert_int_equal(aif_client_receive(c, &resp, &d), -1);
	snprintf(expected, sizeof(expected), "aifd at %s closed the connection without answering",
		 s.net.path);
	assert_string_equal(d.message, expected);
	aif_client_free(c);

	c = client_for(&s, 2000);
	assert_int_equal(in_child(c, send_unconnected), 0);
	aif_client_free(c);
	server_stop(&s);
	assert_int_equal(s.net.connections, 1);
	assert_int_equal(s.requests, 1);
}

static void test_client_errors(void **state)
{
	struct aif_client_options o = {.server = "/nonexistent/aifd.sock", .encode = fake_encode};
	struct aif_client *c;
	struct aif_proto_msg req, resp;
	struct aif_diag d;
	(void)state;

	make_check(&req, "p");
	c = aif_client_new(&o, &d);
	assert_non_null(c);
	assert_int_equal(aif_client_request(c, &req, &resp, &d), -1);
	assert_string_equal(d.message,
			    "could not connect to aifd at /nonexistent/aifd.sock: No such file or directory");
	assert_string_equal(d.hint, "Check that aifd is running and listening there.");
	aif_client_free(c);

	o.encode = failing_encode;
	c = aif_client_new(&o, &d);
	assert_int_equal(aif_client_request(c, &req, &resp, &d), -1);
	assert_string_equal(d.message, "munge: Failed to access \"/nowhere\"");
	aif_client_free(c);

	/* the real libmunge, without munged */
	o.encode = NULL;
	o.munge_socket = "/nonexistent/munge.socket.2";
	c = aif_client_new(&o, &d);
	assert_non_null(c);
	assert_int_equal(aif_client_request(c, &req, &resp, &d), -1);
	assert_memory_equal(d.message, "munge: ", 7);
	assert_string_equal(d.hint, "Check that munged is running: munge -n | unmunge");
	aif_client_free(c);

	o.encode = fake_encode;
	o.server = "127.0.0.1:1"; /* nothing listens on port 1 */
	c = aif_client_new(&o, &d);
	assert_int_equal(aif_client_request(c, &req, &resp, &d), -1);
	assert_string_equal(d.message, "could not connect to aifd at 127.0.0.1:1: Connection refused");
	aif_client_free(c);

	/* not a request */
	o.server = NULL;
	c = aif_client_new(&o, &d);
	req.kind = AIF_PROTO_OK;
	assert_int_equal(aif_client_request(c, &req, &resp, &d), -1);
	assert_string_equal(d.message, "internal error: not a request");
	aif_client_free(c);
	aif_proto_msg_free(&req);
}

static void test_client_addresses(void **state)
{
	static const char *const good[] = {NULL, "", "/run/aif/aifd.sock", "aifd", "aifd:7000",
					   "10.0.0.1:6823", "[::1]:6823", "[::1]", "::1", "fe80::1"};
	static const char *const bad[] = {"aifd:", "aifd:0", "aifd:65536", "aifd:x", "[::1", "[::1]x",
					  ":6823", "[]:1"};
	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct aif_client_options o = {.server = good[i], .encode = fake_encode};
		struct aif_diag d;
		struct aif_client *c = aif_client_new(&o, &d);
		if (!c)
			fail_msg("%s: %s", good[i] ? good[i] : "NULL", d.message);
		aif_client_free(c);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct aif_client_options o = {.server = bad[i], .encode = fake_encode};
		struct aif_diag d;
		char expected[128];
		if (aif_client_new(&o, &d))
			fail_msg("%s accepted", bad[i]);
		snprintf(expected, sizeof(expected), "invalid aifd address \"%s\"", bad[i]);
		assert_string_equal(d.message, expected);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode_exact_text),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_set_rules),
		cmocka_unit_test(test_many_records),
		cmocka_unit_test(test_decode_errors),
		cmocka_unit_test(test_hints),
		cmocka_unit_test(test_unknown_keys_ignored),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_unsigned_integers),
		cmocka_unit_test(test_validate_requests),
		cmocka_unit_test(test_validate_responses),
		cmocka_unit_test(test_validate_built_locally),
		cmocka_unit_test(test_frame_header),
		cmocka_unit_test(test_frame_io),
		cmocka_unit_test(test_client_unix),
		cmocka_unit_test(test_client_tcp),
		cmocka_unit_test(test_client_reconnects),
		cmocka_unit_test(test_client_bad_responses),
		cmocka_unit_test(test_client_error_without_nonce),
		cmocka_unit_test(test_client_timeout),
		cmocka_unit_test(test_client_write_timeout),
		cmocka_unit_test(test_client_send_then_receive),
		cmocka_unit_test(test_client_other_process),
		cmocka_unit_test(test_client_errors),
		cmocka_unit_test(test_client_addresses),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
