/*
 * aifctl: the operators' and users' command line for aif.
 *
 * This version only identifies itself; its commands (check, plan, apply, status, report,
 * db migrate) are not implemented yet.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "aif_version.h"

static void usage(FILE *out)
{
	fprintf(out,
		"aifctl checks and applies aif budgets and reports GPU-hour usage.\n"
		"\n"
		"Usage:\n"
		"  aifctl [OPTION]... COMMAND [ARG]...\n"
		"\n"
		"Options:\n"
		"  -h, --help       show this help, then exit\n"
		"  -V, --version    output version information, then exit\n"
		"\n"
		"This version of aifctl has no commands yet.\n");
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	int c;

	while ((c = getopt_long(argc, argv, "+hV", options, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return EXIT_SUCCESS;
		case 'V':
			printf("aifctl (aif) %s\n", AIF_VERSION);
			return EXIT_SUCCESS;
		default:
			fprintf(stderr, "Try \"aifctl --help\" for more information.\n");
			return 2;
		}
	}
	if (optind < argc)
		fprintf(stderr, "aifctl: unknown command \"%s\"\n", argv[optind]);
	else
		fprintf(stderr, "aifctl: no command given\n");
	fprintf(stderr, "Try \"aifctl --help\" for more information.\n");
	return 2;
}
