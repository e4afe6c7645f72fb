/*
 * aif-spool: for tests only, spool one usage record as the prolog or epilog does when aifd
 * cannot take it (lib/aif_spool.c).
 *
 *   aif-spool put DIR CLUSTER KEY=VALUE...
 *
 * The KEY=VALUE pairs are the record's fields (docs/protocol.md, "usage"). Exit status: 0 once
 * the record is on disk, 1 when it could not be spooled, 2 on bad usage.
 */
#include <stdio.h>
#include <string.h>

#include "aif_proto.h"
#include "aif_spool.h"

int main(int argc, char **argv)
{
	struct aif_proto_msg m; /* holds the record, so that one free releases it */
	struct aif_proto_block *record;
	struct aif_diag diag;
	char buf[1200];
	int rc = 0;

	if (argc < 5 || strcmp(argv[1], "put") != 0) {
		fprintf(stderr, "usage: aif-spool put DIR CLUSTER KEY=VALUE...\n");
		return 2;
	}
	aif_proto_msg_init(&m, AIF_PROTO_USAGE);
	record = aif_proto_add_record(&m);
	for (int i = 4; i < argc && rc == 0; i++) {
		char *eq = strchr(argv[i], '=');
		if (!eq) {
			fprintf(stderr, "aif-spool: expected KEY=VALUE, got \"%s\"\n", argv[i]);
			rc = 2;
			break;
		}
		*eq = '\0';
		if (!record || aif_proto_set(record, argv[i], eq + 1) < 0) {
			fprintf(stderr, "aif-spool: invalid field \"%s\"\n", argv[i]);
			rc = 2;
		}
	}
	if (rc == 0 && aif_spool_put(argv[2], argv[3], record, &diag) < 0) {
		fprintf(stderr, "aif-spool: %s\n", aif_diag_format(&diag, buf, sizeof(buf)));
		rc = 1;
	}
	aif_proto_msg_free(&m);
	return rc;
}
