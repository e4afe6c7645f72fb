/*
 * aifd: the aif accounting and enforcement daemon.
 *
 * This version only identifies itself; authentication, usage recording and admission
 * decisions are not implemented yet, and aifd says so rather than pretend to run.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "aif_version.h"

static void usage(FILE *out)
{
	fprintf(out,
		"aifd is the aif accounting and enforcement daemon for Slurm.\n"
		"\n"
		"Usage:\n"
		"  aifd [OPTION]...\n"
		"\n"
		"Options:\n"
		"  -h, --help       show this help, then exit\n"
		"  -V, --version    output version information, then exit\n"
		"\n"
		"This version of aifd does not serve requests yet.\n");
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	int c;

	while ((c = getopt_long(argc, argv, "hV", options, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return EXIT_SUCCESS;
		case 'V':
			printf("aifd (aif) %s\n", AIF_VERSION);
			return EXIT_SUCCESS;
		default:
			fprintf(stderr, "Try \"aifd --help\" for more information.\n");
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "aifd: unexpected argument \"%s\"\n", argv[optind]);
		fprintf(stderr, "Try \"aifd --help\" for more information.\n");
		return 2;
	}
	fprintf(stderr, "aifd: this version does not serve requests yet\n");
	return EXIT_FAILURE;
}
