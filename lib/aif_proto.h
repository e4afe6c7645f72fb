/*
 * aif_proto: the codec of "aif protocol 1" (docs/protocol.md), the messages between the plugin,
 * aifctl and aifd. No I/O and no MUNGE here: text in, text out.
 *
 * A message is a kind (the first line "AIF/1 <kind>"), a header block of key=value fields and
 * zero or more record blocks. Blocks keep their fields in order; keys are unique in a block.
 * All strings are copied into the message; aif_proto_msg_free() releases them.
 * Nothing here keeps global state: one message per thread, any number of threads.
 */
#ifndef AIF_PROTO_H
#define AIF_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aif_diag.h"

#define AIF_PROTO_VERSION 1
#define AIF_PROTO_DEFAULT_PORT 6823
#define AIF_PROTO_DEFAULT_SOCKET "/run/aif/aifd.sock"

#define AIF_PROTO_MAX_FRAME (1024u * 1024u) /* bytes of one frame body */
/*
 * A request travels base64-encoded inside a MUNGE credential, which must fit one frame:
 * the request message itself must stay below this (3/4 of a frame, less room for MUNGE's own
 * fields).
 */
#define AIF_PROTO_MAX_REQUEST (768u * 1024u - 4096u)
#define AIF_PROTO_MAX_RECORDS 10000 /* record blocks per message */
#define AIF_PROTO_MAX_FIELDS 64     /* fields per block */
#define AIF_PROTO_MAX_KEY 32        /* bytes of a key */
#define AIF_PROTO_MAX_VALUE 4096    /* bytes of a value, once percent-decoded */
#define AIF_PROTO_MAX_NAME 255      /* bytes of a name (node, project, ...), far above any Slurm name */
#define AIF_PROTO_MAX_TIME 253402300799LL /* a time field: at most 9999-12-31 23:59:59 UTC */
#define AIF_PROTO_NONCE_LEN 16      /* lower-case hex digits */

enum aif_proto_kind {
	AIF_PROTO_NONE = 0,
	/* requests */
	AIF_PROTO_CHECK,  /* submit-time check, by the submitting user */
	AIF_PROTO_ADMIT,  /* start-time admission: root or SlurmUser */
	AIF_PROTO_USAGE,  /* per-node start/end records: root or SlurmUser */
	AIF_PROTO_STATUS, /* the caller's own projects */
	/* responses */
	AIF_PROTO_OK,
	AIF_PROTO_WARN,   /* allowed, with a warning */
	AIF_PROTO_REFUSE,
	AIF_PROTO_ERROR,
};

struct aif_proto_field {
	char *key;     /* key and value share one allocation, owned by key */
	char *value;   /* percent-decoded, NUL-terminated, valid UTF-8 */
	unsigned line; /* line in the decoded text; 0 if set locally */
};

struct aif_proto_block {
	struct aif_proto_field *fields;
	size_t n, cap;
	size_t record; /* 0 for the header, N for the N-th record (from 1) */
	unsigned line; /* first line of the block in the decoded text; 0 if built locally */
};

struct aif_proto_msg {
	enum aif_proto_kind kind;
	struct aif_proto_block header;
	struct aif_proto_block *records;
	size_t nrecords, caprecords;
};

/* "check", "ok", ...; NULL for an unknown kind. */
const char *aif_proto_kind_name(enum aif_proto_kind kind);
bool aif_proto_kind_is_request(enum aif_proto_kind kind);
bool aif_proto_kind_is_response(enum aif_proto_kind kind);

/* An empty message of this kind. Needs no free until something is added. */
void aif_proto_msg_init(struct aif_proto_msg *m, enum aif_proto_kind kind);
/* Releases everything and leaves an empty message of kind AIF_PROTO_NONE. */
void aif_proto_msg_free(struct aif_proto_msg *m);

/*
 * Set key to value in a block, replacing an earlier value of the same key (the order of first
 * setting is kept). Returns 0, or -1 with errno: EINVAL (key not [a-z][a-z0-9_]* of at most
 * AIF_PROTO_MAX_KEY bytes, value longer than AIF_PROTO_MAX_VALUE or not valid UTF-8), E2BIG
 * (more than AIF_PROTO_MAX_FIELDS fields), ENOMEM. The block is unchanged on error.
 */
int aif_proto_set(struct aif_proto_block *b, const char *key, const char *value);
int aif_proto_setf(struct aif_proto_block *b, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int aif_proto_set_u64(struct aif_proto_block *b, const char *key, uint64_t value);

/* A new empty record at the end; NULL with errno E2BIG (AIF_PROTO_MAX_RECORDS) or ENOMEM. */
struct aif_proto_block *aif_proto_add_record(struct aif_proto_msg *m);

/* Whether s is a nonce as the protocol has them: AIF_PROTO_NONCE_LEN lower-case hex digits. */
bool aif_proto_nonce_valid(const char *s);

/* Whether s is strict UTF-8 (what a value must be; no overlong forms, no surrogates). */
bool aif_proto_utf8_valid(const char *s);

/* The value of key in the block, or NULL. */
const char *aif_proto_get(const struct aif_proto_block *b, const char *key);
/* The value of key; NULL with diag "missing field" if absent. */
const char *aif_proto_require(const struct aif_proto_block *b, const char *key,
			      struct aif_diag *diag);
/*
 * The value of key as an unsigned decimal integer (ASCII digits only, no sign, no spaces)
 * no greater than max. Returns 0, or -1 with diag (missing or invalid); *out unchanged on error.
 */
int aif_proto_get_u64(const struct aif_proto_block *b, const char *key, uint64_t max,
		      uint64_t *out, struct aif_diag *diag);
/* Unsigned decimal text to a number (same rules); 0 or -1. */
int aif_proto_parse_u64(const char *text, uint64_t max, uint64_t *out);

/*
 * Encode into a new malloc()ed buffer (*out, NUL-terminated, *len bytes without the NUL).
 * Returns 0, or -1 with errno: EINVAL (unknown kind, a record without fields), EMSGSIZE (more
 * than AIF_PROTO_MAX_FRAME bytes), ENOMEM. Messages built with aif_proto_set() always decode.
 */
int aif_proto_encode(const struct aif_proto_msg *m, char **out, size_t *len);

/*
 * Decode len bytes (no NUL needed) into *m, which is initialized here (free it after success
 * and after failure alike). Only the syntax is checked; see aif_proto_validate_*() for the
 * fields. Returns 0, or -1 with diag, e.g. "line 3: invalid key \"Cluster\"".
 */
int aif_proto_decode(const char *buf, size_t len, struct aif_proto_msg *m, struct aif_diag *diag);

/*
 * Check that a decoded message has the fields its kind requires, with valid values
 * (docs/protocol.md lists them). A response is checked against the kind of its request.
 * Unknown fields are allowed. Returns 0, or -1 with diag naming the field (and its line).
 */
int aif_proto_validate_request(const struct aif_proto_msg *m, struct aif_diag *diag);
int aif_proto_validate_response(const struct aif_proto_msg *m, enum aif_proto_kind request,
				struct aif_diag *diag);

/* A response's message, detail and hint, as a diag (empty strings for absent fields). */
void aif_proto_response_diag(const struct aif_proto_msg *m, struct aif_diag *diag);

/* Frame header: the body length as 4 bytes big-endian. */
void aif_proto_frame_header(uint32_t len, unsigned char out[4]);
uint32_t aif_proto_frame_length(const unsigned char in[4]);

/* ---- framed I/O on a connected stream socket (aif_frame.c), for the client and for aifd ---- */

/*
 * Write one frame (header and body), waiting with poll() until deadline_ms at most. Works on
 * blocking and non-blocking sockets alike (MSG_DONTWAIT | MSG_NOSIGNAL). Returns 0, or -1 with
 * errno (ETIMEDOUT, EPIPE, ...) and diag; peer names the other side in messages ("aifd at X").
 */
int aif_proto_write_frame(int fd, const char *body, size_t len, int64_t deadline_ms,
			  const char *peer, struct aif_diag *diag);

/*
 * Read one frame of at most max bytes (at most AIF_PROTO_MAX_FRAME) into a new malloc()ed,
 * NUL-terminated *body. Returns 1; 0 when the peer closed the connection before the frame's
 * first byte (a clean end); -1 with errno (ETIMEDOUT, EMSGSIZE: too large, EPROTO: the
 * connection ended inside a frame, ...) and diag.
 */
int aif_proto_read_frame(int fd, char **body, size_t *len, uint32_t max, int64_t deadline_ms,
			 const char *peer, struct aif_diag *diag);

#endif
