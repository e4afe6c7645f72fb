/*
 * aif-send: for tests only, send one aif protocol 1 request to aifd with real MUNGE and
 * print the answer (lib/aif_client).
 *
 *   aif-send [--server=S] [--munge-socket=M] [--timeout=MS] [--replay] KIND [KEY=VALUE]...
 *            [-- KEY=VALUE... [-- KEY=VALUE...]...]
 *
 * KEY=VALUE before the first "--" go in the header (nonce is added unless given); each "--"
 * starts a record. --replay sends the request a second time with the SAME credential, on a
 * new connection, and prints both answers, separated by a line "----".
 * Prints the answer as the protocol writes it (values percent-decoded). Exit status: 0 when
 * aifd answered (whatever the answer), 1 when it did not, 2 on bad usage.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <munge.h>

#include "aif_client.h"
#include "aif_proto.h"

struct encoder {
	const char *munge_socket;
	char *cred; /* the first credential, kept for --replay */
};

static int encode(void *arg, const char *payload, size_t len, char **cred, struct aif_diag *diag)
{
	struct encoder *e = arg;
	munge_ctx_t ctx;
	munge_err_t err;

	if (!e->cred) {
		ctx = munge_ctx_create();
		if (!ctx || (e->munge_socket && munge_ctx_set(ctx, MUNGE_OPT_SOCKET, e->munge_socket)))
			return aif_diag_message(diag, "munge: cannot set up a context"), -1;
		err = munge_encode(&e->cred, ctx, payload, (int)len);
		munge_ctx_destroy(ctx);
		if (err != EMUNGE_SUCCESS)
			return aif_diag_message(diag, "munge: %s", munge_strerror(err)), -1;
	}
	*cred = strdup(e->cred);
	return *cred ? 0 : -1;
}

static void print_block(const struct aif_proto_block *b)
{
	for (size_t i = 0; i < b->n; i++)
		printf("%s=%s\n", b->fields[i].key, b->fields[i].value);
}

static void print_msg(const struct aif_proto_msg *m)
{
	printf("%s\n", aif_proto_kind_name(m->kind));
	print_block(&m->header);
	for (size_t i = 0; i < m->nrecords; i++) {
		printf("\n");
		print_block(&m->records[i]);
	}
}

static enum aif_proto_kind kind_of(const char *word)
{
	static const enum aif_proto_kind kinds[] = {AIF_PROTO_CHECK, AIF_PROTO_ADMIT, AIF_PROTO_USAGE,
						    AIF_PROTO_STATUS};
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(word, aif_proto_kind_name(kinds[i])) == 0)
			return kinds[i];
	return AIF_PROTO_NONE;
}

static int usage(void)
{
	fprintf(stderr, "usage: aif-send [--server=S] [--munge-socket=M] [--timeout=MS] [--replay] "
			"KIND [KEY=VALUE]... [-- KEY=VALUE...]...\n");
	return 2;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{"server", required_argument, NULL, 's'},   {"munge-socket", required_argument, NULL, 'm'},
		{"timeout", required_argument, NULL, 't'},  {"replay", no_argument, NULL, 'r'},
		{NULL, 0, NULL, 0},
	};
	struct aif_client_options opts = {0};
	struct encoder enc = {0};
	struct aif_proto_msg req, res;
	struct aif_proto_block *block;
	struct aif_diag diag;
	struct aif_client *c;
	int replay = 0, ch, rc = 0;

	while ((ch = getopt_long(argc, argv, "+", options, NULL)) != -1) {
		switch (ch) {
		case 's': opts.server = optarg; break;
		case 'm': enc.munge_socket = optarg; break;
		case 't': opts.timeout_ms = strtoul(optarg, NULL, 10); break;
		case 'r': replay = 1; break;
		default: return usage();
		}
	}
	if (optind >= argc || kind_of(argv[optind]) == AIF_PROTO_NONE)
		return usage();
	aif_proto_msg_init(&req, kind_of(argv[optind++]));
	block = &req.header;
	for (; optind < argc; optind++) {
		char *eq;
		if (strcmp(argv[optind], "--") == 0) {
			block = aif_proto_add_record(&req);
			if (!block)
				return usage();
			continue;
		}
		eq = strchr(argv[optind], '=');
		if (!eq)
			return usage();
		*eq = '\0';
		if (aif_proto_set(block, argv[optind], eq + 1) < 0) {
			fprintf(stderr, "aif-send: invalid field \"%s\"\n", argv[optind]);
			return 2;
		}
	}
	if (!aif_proto_get(&req.header, "nonce"))
		aif_proto_set(&req.header, "nonce", "0123456789abcdef");
	opts.encode = encode;
	opts.encode_arg = &enc;
	aif_diag_clear(&diag);
	c = aif_client_new(&opts, &diag);
	if (!c) {
		fprintf(stderr, "aif-send: %s\n", diag.message);
		return 2;
	}
	for (int round = 0; round <= replay && rc == 0; round++) {
		if (round) {
			/* A fresh connection, so that only the credential is the same. */
			aif_client_free(c);
			c = aif_client_new(&opts, &diag);
			printf("----\n");
		}
		if (aif_client_request(c, &req, &res, &diag) < 0) {
			char buf[1200];
			fprintf(stderr, "aif-send: %s\n", aif_diag_format(&diag, buf, sizeof(buf)));
			rc = 1;
		} else {
			print_msg(&res);
		}
		aif_proto_msg_free(&res);
	}
	aif_client_free(c);
	aif_proto_msg_free(&req);
	free(enc.cred);
	return rc;
}
