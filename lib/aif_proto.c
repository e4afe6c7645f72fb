/* The aif protocol 1 codec: see aif_proto.h and docs/protocol.md. */
#include "aif_proto.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[] = {
	[AIF_PROTO_CHECK] = "check", [AIF_PROTO_ADMIT] = "admit",   [AIF_PROTO_USAGE] = "usage",
	[AIF_PROTO_STATUS] = "status", [AIF_PROTO_OK] = "ok",       [AIF_PROTO_WARN] = "warn",
	[AIF_PROTO_REFUSE] = "refuse", [AIF_PROTO_ERROR] = "error",
};
#define NKINDS (sizeof(kind_names) / sizeof(kind_names[0]))

const char *aif_proto_kind_name(enum aif_proto_kind kind)
{
	if ((size_t)kind >= NKINDS)
		return NULL;
	return kind_names[kind];
}

bool aif_proto_kind_is_request(enum aif_proto_kind kind)
{
	return kind >= AIF_PROTO_CHECK && kind <= AIF_PROTO_STATUS;
}

bool aif_proto_kind_is_response(enum aif_proto_kind kind)
{
	return kind >= AIF_PROTO_OK && kind <= AIF_PROTO_ERROR;
}

void aif_proto_msg_init(struct aif_proto_msg *m, enum aif_proto_kind kind)
{
	memset(m, 0, sizeof(*m));
	m->kind = kind;
}

static void block_free(struct aif_proto_block *b)
{
	for (size_t i = 0; i < b->n; i++)
		free(b->fields[i].key);
	free(b->fields);
	b->fields = NULL;
	b->n = b->cap = 0;
}

void aif_proto_msg_free(struct aif_proto_msg *m)
{
	block_free(&m->header);
	for (size_t i = 0; i < m->nrecords; i++)
		block_free(&m->records[i]);
	free(m->records);
	aif_proto_msg_init(m, AIF_PROTO_NONE);
}

/* ---- characters ---- */

static bool key_valid(const char *k, size_t n)
{
	if (n == 0 || n > AIF_PROTO_MAX_KEY || k[0] < 'a' || k[0] > 'z')
		return false;
	for (size_t i = 1; i < n; i++)
		if (!((k[i] >= 'a' && k[i] <= 'z') || (k[i] >= '0' && k[i] <= '9') || k[i] == '_'))
			return false;
	return true;
}

/* Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF. */
static bool utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned char c = s[i];
		size_t more;
		uint32_t cp;
		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xC2 && c <= 0xDF) {
			more = 1;
			cp = c & 0x1F;
		} else if (c >= 0xE0 && c <= 0xEF) {
			more = 2;
			cp = c & 0x0F;
		} else if (c >= 0xF0 && c <= 0xF4) {
			more = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (n - i - 1 < more)
			return false;
		for (size_t j = 1; j <= more; j++) {
			if ((s[i + j] & 0xC0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + j] & 0x3F);
		}
		if ((more == 2 && cp < 0x800) || (more == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
		    (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		i += more + 1;
	}
	return true;
}

bool aif_proto_nonce_valid(const char *s)
{
	return strlen(s) == AIF_PROTO_NONCE_LEN && strspn(s, "0123456789abcdef") == AIF_PROTO_NONCE_LEN;
}

bool aif_proto_utf8_valid(const char *s)
{
	return utf8_valid((const unsigned char *)s, strlen(s));
}

static bool must_encode(unsigned char c)
{
	return c < 0x20 || c == 0x7F || c == '%';
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Input text for a diagnostic: at most 40 bytes, control characters and '%' percent-encoded,
 * and every non-ASCII byte too when the excerpt is not valid UTF-8.
 */
static const char *excerpt(const char *s, size_t n, char *buf, size_t size)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t cut = n > 40 ? 40 : n, used = 0;
	bool raw_utf8;

	while (cut < n && cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
		cut--;
	raw_utf8 = utf8_valid((const unsigned char *)s, cut);
	for (size_t i = 0; i < cut && used + 4 < size; i++) {
		unsigned char c = (unsigned char)s[i];
		if (must_encode(c) || (c >= 0x80 && !raw_utf8)) {
			buf[used++] = '%';
			buf[used++] = hex[c >> 4];
			buf[used++] = hex[c & 15];
		} else {
			buf[used++] = (char)c;
		}
	}
	if (cut < n && used + 4 < size) {
		memcpy(buf + used, "...", 3);
		used += 3;
	}
	buf[used] = '\0';
	return buf;
}

/* ---- blocks ---- */

static long block_find(const struct aif_proto_block *b, const char *key, size_t klen)
{
	for (size_t i = 0; i < b->n; i++)
		if (strncmp(b->fields[i].key, key, klen) == 0 && b->fields[i].key[klen] == '\0')
			return (long)i;
	return -1;
}

static char *field_alloc(const char *key, size_t klen, const char *value, size_t vlen,
			 char **value_out)
{
	char *p = malloc(klen + vlen + 2);
	if (!p)
		return NULL;
	memcpy(p, key, klen);
	p[klen] = '\0';
	memcpy(p + klen + 1, value, vlen);
	p[klen + 1 + vlen] = '\0';
	*value_out = p + klen + 1;
	return p;
}

/* Appends without checking the key or looking for duplicates. */
static int block_append(struct aif_proto_block *b, const char *key, size_t klen, const char *value,
			size_t vlen, unsigned line)
{
	struct aif_proto_field *f;
	if (b->n == AIF_PROTO_MAX_FIELDS) {
		errno = E2BIG;
		return -1;
	}
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 8;
		struct aif_proto_field *grown = realloc(b->fields, cap * sizeof(*grown));
		if (!grown)
			return -1;
		b->fields = grown;
		b->cap = cap;
	}
	f = &b->fields[b->n];
	f->key = field_alloc(key, klen, value, vlen, &f->value);
	if (!f->key)
		return -1;
	f->line = line;
	b->n++;
	return 0;
}

int aif_proto_set(struct aif_proto_block *b, const char *key, const char *value)
{
	size_t klen = strlen(key), vlen = strlen(value);
	long i;

	if (!key_valid(key, klen) || vlen > AIF_PROTO_MAX_VALUE ||
	    !utf8_valid((const unsigned char *)value, vlen)) {
		errno = EINVAL;
		return -1;
	}
	i = block_find(b, key, klen);
	if (i >= 0) {
		struct aif_proto_field *f = &b->fields[i];
		char *v, *p = field_alloc(key, klen, value, vlen, &v);
		if (!p)
			return -1;
		free(f->key);
		f->key = p;
		f->value = v;
		f->line = 0;
		return 0;
	}
	return block_append(b, key, klen, value, vlen, 0);
}

int aif_proto_setf(struct aif_proto_block *b, const char *key, const char *fmt, ...)
{
	char buf[AIF_PROTO_MAX_VALUE + 1];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf)) {
		errno = EINVAL;
		return -1;
	}
	return aif_proto_set(b, key, buf);
}

int aif_proto_set_u64(struct aif_proto_block *b, const char *key, uint64_t value)
{
	return aif_proto_setf(b, key, "%" PRIu64, value);
}

struct aif_proto_block *aif_proto_add_record(struct aif_proto_msg *m)
{
	struct aif_proto_block *r;
	if (m->nrecords == AIF_PROTO_MAX_RECORDS) {
		errno = E2BIG;
		return NULL;
	}
	if (m->nrecords == m->caprecords) {
		size_t cap = m->caprecords ? m->caprecords * 2 : 4;
		struct aif_proto_block *grown;
		if (cap > AIF_PROTO_MAX_RECORDS)
			cap = AIF_PROTO_MAX_RECORDS;
		grown = realloc(m->records, cap * sizeof(*grown));
		if (!grown)
			return NULL;
		m->records = grown;
		m->caprecords = cap;
	}
	r = &m->records[m->nrecords++];
	memset(r, 0, sizeof(*r));
	r->record = m->nrecords;
	return r;
}

const char *aif_proto_get(const struct aif_proto_block *b, const char *key)
{
	long i = block_find(b, key, strlen(key));
	return i < 0 ? NULL : b->fields[i].value;
}

static unsigned field_line(const struct aif_proto_block *b, const char *key)
{
	long i = block_find(b, key, strlen(key));
	return i < 0 ? 0 : b->fields[i].line;
}

static void missing(const struct aif_proto_block *b, const char *key, struct aif_diag *diag)
{
	aif_diag_clear(diag);
	if (b->record == 0) {
		aif_diag_message(diag, "missing field \"%s\"", key);
		return;
	}
	aif_diag_message(diag, "missing field \"%s\" in record %zu", key, b->record);
	if (b->line)
		aif_diag_detail(diag, "Record %zu starts on line %u.", b->record, b->line);
}

/* "line 7: invalid value for field "gpus": "x"" (no line when built locally). */
static void invalid(const struct aif_proto_block *b, const char *key, const char *value,
		    struct aif_diag *diag)
{
	char shown[160], where[32] = "";
	unsigned line = field_line(b, key);

	if (line)
		snprintf(where, sizeof(where), "line %u: ", line);
	else if (b->record)
		snprintf(where, sizeof(where), "record %zu: ", b->record);
	aif_diag_clear(diag);
	aif_diag_message(diag, "%sinvalid value for field \"%s\": \"%s\"", where, key,
			 excerpt(value, strlen(value), shown, sizeof(shown)));
}

const char *aif_proto_require(const struct aif_proto_block *b, const char *key,
			      struct aif_diag *diag)
{
	const char *v = aif_proto_get(b, key);
	if (!v)
		missing(b, key, diag);
	return v;
}

int aif_proto_parse_u64(const char *text, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	if (!*text)
		return -1;
	for (const char *p = text; *p; p++) {
		unsigned d;
		if (*p < '0' || *p > '9')
			return -1;
		d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (v > max)
		return -1;
	*out = v;
	return 0;
}

int aif_proto_get_u64(const struct aif_proto_block *b, const char *key, uint64_t max,
		      uint64_t *out, struct aif_diag *diag)
{
	const char *v = aif_proto_require(b, key, diag);
	if (!v)
		return -1;
	if (aif_proto_parse_u64(v, max, out) < 0) {
		invalid(b, key, v, diag);
		aif_diag_detail(diag, "The value must be a whole number from 0 to %" PRIu64 ".", max);
		return -1;
	}
	return 0;
}

/* ---- encoding ---- */

static size_t encoded_len(const char *v)
{
	size_t n = 0;
	for (; *v; v++)
		n += must_encode((unsigned char)*v) ? 3 : 1;
	return n;
}

static size_t block_len(const struct aif_proto_block *b)
{
	size_t n = 0;
	for (size_t i = 0; i < b->n; i++)
		n += strlen(b->fields[i].key) + 1 + encoded_len(b->fields[i].value) + 1;
	return n;
}

static char *put_block(char *p, const struct aif_proto_block *b)
{
	static const char hex[] = "0123456789ABCDEF";
	for (size_t i = 0; i < b->n; i++) {
		size_t klen = strlen(b->fields[i].key);
		memcpy(p, b->fields[i].key, klen);
		p += klen;
		*p++ = '=';
		for (const char *v = b->fields[i].value; *v; v++) {
			unsigned char c = (unsigned char)*v;
			if (must_encode(c)) {
				*p++ = '%';
				*p++ = hex[c >> 4];
				*p++ = hex[c & 15];
			} else {
				*p++ = (char)c;
			}
		}
		*p++ = '\n';
	}
	return p;
}

int aif_proto_encode(const struct aif_proto_msg *m, char **out, size_t *len)
{
	const char *name = aif_proto_kind_name(m->kind);
	size_t total;
	char *buf, *p;

	if (!name) {
		errno = EINVAL;
		return -1;
	}
	total = strlen("AIF/1 \n") + strlen(name) + block_len(&m->header);
	for (size_t i = 0; i < m->nrecords; i++) {
		if (m->records[i].n == 0) {
			errno = EINVAL;
			return -1;
		}
		total += 1 + block_len(&m->records[i]);
		if (total > AIF_PROTO_MAX_FRAME)
			break;
	}
	if (total > AIF_PROTO_MAX_FRAME) {
		errno = EMSGSIZE;
		return -1;
	}
	buf = malloc(total + 1);
	if (!buf)
		return -1;
	p = buf + sprintf(buf, "AIF/%d %s\n", AIF_PROTO_VERSION, name);
	p = put_block(p, &m->header);
	for (size_t i = 0; i < m->nrecords; i++) {
		*p++ = '\n';
		p = put_block(p, &m->records[i]);
	}
	*p = '\0';
	*out = buf;
	*len = (size_t)(p - buf);
	return 0;
}

/* ---- decoding ---- */

static int decode_error(struct aif_diag *diag, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int decode_error(struct aif_diag *diag, unsigned line, const char *fmt, ...)
{
	char text[sizeof(diag->message)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	aif_diag_clear(diag);
	aif_diag_message(diag, "line %u: %s", line, text);
	return -1;
}

static int decode_first_line(const char *s, size_t n, struct aif_proto_msg *m,
			     struct aif_diag *diag)
{
	char shown[160];
	const char *space;
	size_t vlen, wlen;

	if (n < 4 || memcmp(s, "AIF/", 4) != 0) {
		decode_error(diag, 1, "not an aif protocol message");
		aif_diag_detail(diag, "The first line must be \"AIF/1 <kind>\", not \"%s\".",
				excerpt(s, n, shown, sizeof(shown)));
		return -1;
	}
	space = memchr(s + 4, ' ', n - 4);
	vlen = (space ? (size_t)(space - s) : n) - 4;
	if (vlen != 1 || s[4] != '0' + AIF_PROTO_VERSION) {
		decode_error(diag, 1, "unsupported protocol version \"%s\"",
			     excerpt(s + 4, vlen, shown, sizeof(shown)));
		aif_diag_detail(diag, "This program speaks aif protocol %d.", AIF_PROTO_VERSION);
		aif_diag_hint(diag, "Run the same aif release on both sides, or upgrade the older one.");
		return -1;
	}
	if (!space)
		return decode_error(diag, 1, "missing message kind after \"AIF/%d\"",
				    AIF_PROTO_VERSION);
	wlen = n - (size_t)(space + 1 - s);
	for (size_t k = 1; k < NKINDS; k++) {
		if (strlen(kind_names[k]) == wlen && memcmp(kind_names[k], space + 1, wlen) == 0) {
			m->kind = (enum aif_proto_kind)k;
			return 0;
		}
	}
	decode_error(diag, 1, "unknown message kind \"%s\"",
		     excerpt(space + 1, wlen, shown, sizeof(shown)));
	aif_diag_hint(diag, "Valid kinds are: check, admit, usage, status, ok, warn, refuse, error.");
	return -1;
}

/* Percent-decodes one value into out (AIF_PROTO_MAX_VALUE + 1 bytes). */
static int decode_value(const char *s, size_t n, const char *key, unsigned line, char *out,
			size_t *outlen, struct aif_diag *diag)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (o == AIF_PROTO_MAX_VALUE) {
			decode_error(diag, line, "value of \"%s\" too long", key);
			aif_diag_detail(diag, "Values are at most %d bytes once decoded.",
					AIF_PROTO_MAX_VALUE);
			return -1;
		}
		if (c == '%') {
			int hi = i + 2 < n ? hex_value(s[i + 1]) : -1;
			int lo = i + 2 < n ? hex_value(s[i + 2]) : -1;
			if (hi < 0 || lo < 0) {
				decode_error(diag, line, "invalid percent-encoding in the value of \"%s\"",
					     key);
				aif_diag_detail(diag, "A \"%%\" must be followed by two upper-case "
						      "hexadecimal digits (\"%%25\" stands for \"%%\").");
				return -1;
			}
			c = (unsigned char)(hi * 16 + lo);
			if (c == 0)
				return decode_error(diag, line, "NUL byte (%%00) in the value of \"%s\"",
						    key);
			i += 2;
		} else if (must_encode(c)) {
			decode_error(diag, line, "unencoded control character 0x%02X in the value of \"%s\"",
				     c, key);
			aif_diag_hint(diag, "Control characters are sent percent-encoded, e.g. \"%%09\" "
					    "for a tab.");
			return -1;
		}
		out[o++] = (char)c;
	}
	out[o] = '\0';
	if (!utf8_valid((const unsigned char *)out, o))
		return decode_error(diag, line, "invalid UTF-8 in the value of \"%s\"", key);
	*outlen = o;
	return 0;
}

static int decode_field(const char *s, size_t n, unsigned line, struct aif_proto_block *b,
			struct aif_diag *diag)
{
	char shown[160], key[AIF_PROTO_MAX_KEY + 1];
	char value[AIF_PROTO_MAX_VALUE + 1];
	const char *eq = memchr(s, '=', n);
	size_t klen, vlen = 0;
	long dup;

	if (!eq) {
		decode_error(diag, line, "expected key=value, found \"%s\"",
			     excerpt(s, n, shown, sizeof(shown)));
		return -1;
	}
	klen = (size_t)(eq - s);
	if (!key_valid(s, klen)) {
		decode_error(diag, line, "invalid key \"%s\"", excerpt(s, klen, shown, sizeof(shown)));
		aif_diag_detail(diag, "A key is 1 to %d characters: a lower-case letter, then lower-case "
				      "letters, digits and underscores.", AIF_PROTO_MAX_KEY);
		return -1;
	}
	memcpy(key, s, klen);
	key[klen] = '\0';
	dup = block_find(b, key, klen);
	if (dup >= 0) {
		decode_error(diag, line, "duplicate key \"%s\"", key);
		aif_diag_detail(diag, "\"%s\" is already set on line %u.", key, b->fields[dup].line);
		return -1;
	}
	if (b->n == AIF_PROTO_MAX_FIELDS) {
		decode_error(diag, line, "too many fields in one block");
		aif_diag_detail(diag, "A header or record has at most %d fields.", AIF_PROTO_MAX_FIELDS);
		return -1;
	}
	if (decode_value(eq + 1, n - klen - 1, key, line, value, &vlen, diag) < 0)
		return -1;
	if (block_append(b, key, klen, value, vlen, line) < 0) {
		decode_error(diag, line, "out of memory");
		return -1;
	}
	return 0;
}

int aif_proto_decode(const char *buf, size_t len, struct aif_proto_msg *m, struct aif_diag *diag)
{
	struct aif_proto_block *block = &m->header;
	unsigned line = 1;
	size_t pos = 0;

	aif_proto_msg_init(m, AIF_PROTO_NONE);
	aif_diag_clear(diag);
	if (len == 0) {
		aif_diag_message(diag, "empty message");
		return -1;
	}
	if (len > AIF_PROTO_MAX_FRAME) {
		aif_diag_message(diag, "message too large");
		aif_diag_detail(diag, "The message has %zu bytes; the limit is %u.", len,
				AIF_PROTO_MAX_FRAME);
		return -1;
	}
	while (pos < len) {
		const char *s = buf + pos, *nl = memchr(s, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - s) : len - pos;

		if (line == 1 && decode_first_line(s, n, m, diag) < 0)
			return -1;
		if (!nl)
			return decode_error(diag, line, "missing newline at the end of the message");
		if (line == 1) {
			m->header.line = 2;
		// cppcheck-suppress knownConditionTrueFalse ; an empty line (n is 0 when s is a newline)
		} else if (n == 0) {
			if (block->record && block->n == 0)
				goto empty_line;
			block = aif_proto_add_record(m);
			if (!block) {
				if (errno != E2BIG)
					return decode_error(diag, line, "out of memory");
				decode_error(diag, line, "too many records");
				aif_diag_detail(diag, "A message has at most %d records.",
						AIF_PROTO_MAX_RECORDS);
				return -1;
			}
			block->line = line + 1;
		} else if (decode_field(s, n, line, block, diag) < 0) {
			return -1;
		}
		pos += n + 1;
		line++;
	}
	if (block->record && block->n == 0) {
		line--;
		goto empty_line;
	}
	return 0;
empty_line:
	decode_error(diag, line, "unexpected empty line");
	aif_diag_detail(diag, "Records are separated by one empty line, and a record has at least "
			      "one field.");
	return -1;
}

/* ---- validation ---- */

enum ftype {
	T_TEXT,   /* anything */
	T_NAME,   /* 1 to AIF_PROTO_MAX_NAME bytes, no control characters */
	T_U32,    /* whole number < 2^32 */
	T_U64,    /* whole number < 2^64 */
	T_TIME,   /* Unix seconds, 0 to AIF_PROTO_MAX_TIME */
	T_COUNT,  /* whole number <= AIF_PROTO_MAX_RECORDS */
	T_NONCE,  /* 16 lower-case hex digits */
	T_EVENT,  /* start | end */
	T_HOURS,  /* decimal >= 0: 12, 12.5 */
	T_SHOURS, /* decimal, may be negative */
	T_STATE,  /* ok | warning | exhausted */
};

struct fspec {
	const char *key;
	enum ftype type;
	bool required;
};

/* cluster: optional in check and status (sbatch does not know the ClusterName: aifd's own). */
static const struct fspec req_common[] = {
	{"nonce", T_NONCE, true}, {"cluster", T_NAME, false}, {NULL, T_TEXT, false}};
static const struct fspec req_cluster[] = {{"cluster", T_NAME, true}, {NULL, T_TEXT, false}};
static const struct fspec req_check[] = {
	{"project", T_NAME, false}, {"sector", T_NAME, false}, {NULL, T_TEXT, false}};
/* admit: cluster optional since the plugin stopped taking it from the job's environment. */
static const struct fspec req_admit[] = {
	{"cluster", T_NAME, false}, {"job", T_U32, true},	    {"uid", T_U32, true},	 {"gid", T_U32, true},
	{"project", T_NAME, false}, {"sector", T_NAME, false}, {NULL, T_TEXT, false}};
static const struct fspec usage_record[] = {
	{"event", T_EVENT, true},   {"job", T_U32, true},	   {"node", T_NAME, true},
	{"restart", T_U32, true},   {"gpus", T_U32, true},	   {"time", T_TIME, true},
	{"project", T_NAME, false}, {"sector", T_NAME, false}, {"uid", T_U32, true},
	{"user", T_NAME, false},    {"start", T_TIME, false},	   {NULL, T_TEXT, false}};
static const struct fspec resp_resolved[] = {
	{"project", T_NAME, true}, {"sector", T_NAME, true}, {NULL, T_TEXT, false}};
static const struct fspec resp_acked[] = {{"acked", T_COUNT, true}, {NULL, T_TEXT, false}};
static const struct fspec resp_acked_opt[] = {{"acked", T_COUNT, false}, {NULL, T_TEXT, false}};
static const struct fspec status_record[] = {
	{"project", T_NAME, true},	      {"factory", T_NAME, true},
	{"period", T_NAME, true},	      {"budget_gpu_hours", T_HOURS, true},
	{"used_gpu_hours", T_HOURS, true},    {"remaining_gpu_hours", T_SHOURS, true},
	{"state", T_STATE, true},	      {NULL, T_TEXT, false}};

static bool decimal_valid(const char *v, bool sign)
{
	size_t digits = 0;
	if (sign && *v == '-')
		v++;
	for (; *v >= '0' && *v <= '9'; v++)
		digits++;
	if (!digits)
		return false;
	if (*v == '.') {
		digits = 0;
		for (v++; *v >= '0' && *v <= '9'; v++)
			digits++;
		if (!digits)
			return false;
	}
	return *v == '\0';
}

static bool one_of(const char *v, const char *const *choices)
{
	for (; *choices; choices++)
		if (strcmp(v, *choices) == 0)
			return true;
	return false;
}

static int check_field(const struct aif_proto_block *b, const struct fspec *f,
		       struct aif_diag *diag)
{
	static const char *const events[] = {"start", "end", NULL};
	static const char *const states[] = {"ok", "warning", "exhausted", NULL};
	const char *v = aif_proto_get(b, f->key);
	uint64_t number;
	bool ok = true;
	const char *detail = NULL;

	if (!v) {
		if (!f->required)
			return 0;
		missing(b, f->key, diag);
		return -1;
	}
	switch (f->type) {
	case T_TEXT:
		break;
	case T_NAME:
		ok = *v != '\0' && strlen(v) <= AIF_PROTO_MAX_NAME;
		for (const char *p = v; *p && ok; p++)
			ok = !must_encode((unsigned char)*p) || *p == '%';
		detail = "The value must be 1 to 255 bytes, without control characters.";
		break;
	case T_U32:
		ok = aif_proto_parse_u64(v, UINT32_MAX, &number) == 0;
		detail = "The value must be a whole number from 0 to 4294967295.";
		break;
	case T_U64:
		ok = aif_proto_parse_u64(v, UINT64_MAX, &number) == 0;
		detail = "The value must be a whole number from 0 to 18446744073709551615.";
		break;
	case T_TIME:
		ok = aif_proto_parse_u64(v, AIF_PROTO_MAX_TIME, &number) == 0;
		detail = "The value must be a time in Unix seconds, from 0 to 253402300799 (the end of 9999).";
		break;
	case T_COUNT:
		ok = aif_proto_parse_u64(v, AIF_PROTO_MAX_RECORDS, &number) == 0;
		detail = "The value must be a whole number from 0 to 10000.";
		break;
	case T_NONCE:
		ok = aif_proto_nonce_valid(v);
		detail = "The value must be 16 lower-case hexadecimal digits.";
		break;
	case T_EVENT:
		ok = one_of(v, events);
		detail = "The value must be start or end.";
		break;
	case T_HOURS:
	case T_SHOURS:
		ok = decimal_valid(v, f->type == T_SHOURS);
		detail = f->type == T_SHOURS ? "The value must be a decimal number, such as -2.5 or 40000."
					     : "The value must be a decimal number, such as 2.5 or 40000.";
		break;
	case T_STATE:
		ok = one_of(v, states);
		detail = "The value must be ok, warning or exhausted.";
		break;
	}
	if (ok)
		return 0;
	invalid(b, f->key, v, diag);
	aif_diag_detail(diag, "%s", detail);
	return -1;
}

static int check_block(const struct aif_proto_block *b, const struct fspec *specs,
		       struct aif_diag *diag)
{
	for (; specs && specs->key; specs++)
		if (check_field(b, specs, diag) < 0)
			return -1;
	return 0;
}

/* An end record's start (its allocation's, when the sender knows it) is not after its time. */
static int check_usage_times(const struct aif_proto_block *b, struct aif_diag *diag)
{
	const char *start = aif_proto_get(b, "start");
	uint64_t t = 0, st = 0;

	if (!start || strcmp(aif_proto_get(b, "event"), "end") != 0)
		return 0;
	aif_proto_parse_u64(aif_proto_get(b, "time"), AIF_PROTO_MAX_TIME, &t);
	aif_proto_parse_u64(start, AIF_PROTO_MAX_TIME, &st);
	if (st <= t)
		return 0;
	invalid(b, "start", start, diag);
	aif_diag_detail(diag, "The start of an end record must not be after its time (%" PRIu64 ").", t);
	return -1;
}

static int check_records(const struct aif_proto_msg *m, const struct fspec *specs,
			 const char *what, struct aif_diag *diag)
{
	if (!specs && m->nrecords) {
		aif_diag_clear(diag);
		aif_diag_message(diag, "unexpected records in %s", what);
		if (m->records[0].line)
			aif_diag_detail(diag, "The first record starts on line %u.", m->records[0].line);
		return -1;
	}
	for (size_t i = 0; i < m->nrecords; i++)
		if (check_block(&m->records[i], specs, diag) < 0 ||
		    (specs == usage_record && check_usage_times(&m->records[i], diag) < 0))
			return -1;
	return 0;
}

int aif_proto_validate_request(const struct aif_proto_msg *m, struct aif_diag *diag)
{
	const struct fspec *header = NULL, *records = NULL;
	char what[32];

	aif_diag_clear(diag);
	if (!aif_proto_kind_is_request(m->kind)) {
		aif_diag_message(diag, "a %s response where a request was expected",
				 aif_proto_kind_name(m->kind) ? aif_proto_kind_name(m->kind) : "(none)");
		return -1;
	}
	switch (m->kind) {
	case AIF_PROTO_CHECK:
		header = req_check;
		break;
	case AIF_PROTO_ADMIT:
		header = req_admit;
		break;
	case AIF_PROTO_USAGE:
		header = req_cluster;
		records = usage_record;
		if (m->nrecords == 0) {
			aif_diag_message(diag, "usage request without records");
			return -1;
		}
		break;
	default:
		break;
	}
	snprintf(what, sizeof(what), "a %s request", aif_proto_kind_name(m->kind));
	if (check_block(&m->header, req_common, diag) < 0 || check_block(&m->header, header, diag) < 0)
		return -1;
	return check_records(m, records, what, diag);
}

int aif_proto_validate_response(const struct aif_proto_msg *m, enum aif_proto_kind request,
				struct aif_diag *diag)
{
	const char *name = aif_proto_kind_name(m->kind);
	const struct fspec *header = NULL, *records = NULL;
	bool allowed = m->kind == AIF_PROTO_OK || m->kind == AIF_PROTO_WARN;
	struct fspec nonce = {"nonce", T_NONCE, m->kind != AIF_PROTO_ERROR};
	const struct fspec text[] = {{"message", T_TEXT, !allowed || m->kind == AIF_PROTO_WARN},
			       {"detail", T_TEXT, false},
			       {"hint", T_TEXT, false},
			       {NULL, T_TEXT, false}};
	char what[32];

	aif_diag_clear(diag);
	if (!aif_proto_kind_is_response(m->kind)) {
		aif_diag_message(diag, "a %s request where a response was expected",
				 name ? name : "(none)");
		return -1;
	}
	if (check_field(&m->header, &nonce, diag) < 0 || check_block(&m->header, text, diag) < 0)
		return -1;
	switch (request) {
	case AIF_PROTO_CHECK:
	case AIF_PROTO_ADMIT:
		header = allowed ? resp_resolved : NULL;
		break;
	case AIF_PROTO_USAGE:
		header = allowed ? resp_acked : resp_acked_opt;
		break;
	case AIF_PROTO_STATUS:
		records = allowed ? status_record : NULL;
		break;
	default:
		break;
	}
	snprintf(what, sizeof(what), "a %s response", name);
	if (check_block(&m->header, header, diag) < 0)
		return -1;
	return check_records(m, records, what, diag);
}

void aif_proto_response_diag(const struct aif_proto_msg *m, struct aif_diag *diag)
{
	const char *message = aif_proto_get(&m->header, "message");
	const char *detail = aif_proto_get(&m->header, "detail");
	const char *hint = aif_proto_get(&m->header, "hint");

	aif_diag_clear(diag);
	aif_diag_message(diag, "%s", message ? message : "");
	aif_diag_detail(diag, "%s", detail ? detail : "");
	aif_diag_hint(diag, "%s", hint ? hint : "");
}

void aif_proto_frame_header(uint32_t len, unsigned char out[4])
{
	out[0] = (unsigned char)(len >> 24);
	out[1] = (unsigned char)(len >> 16);
	out[2] = (unsigned char)(len >> 8);
	out[3] = (unsigned char)len;
}

uint32_t aif_proto_frame_length(const unsigned char in[4])
{
	return (uint32_t)in[0] << 24 | (uint32_t)in[1] << 16 | (uint32_t)in[2] << 8 | in[3];
}
