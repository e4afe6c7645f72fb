/*
 * aifctl: the operators' and users' command line for aif. This file parses the command line
 * and dispatches; each command lives in a cmd_*.c file of its own.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aif_proto.h"
#include "aif_spool.h"
#include "aif_version.h"
#include "aifctl.h"

static void usage(FILE *out)
{
	fprintf(out,
		"aifctl checks and applies aif budgets and reports GPU-hour usage.\n"
		"\n"
		"Usage:\n"
		"  aifctl [OPTION]... COMMAND [ARG]...\n"
		"\n"
		"Commands:\n"
		"  check FILE          validate a budgets file; no database needed (--slurm: and\n"
		"                      against this cluster's GPU models)\n"
		"  plan FILE           show what applying FILE would change in the database\n"
		"  apply FILE          apply FILE in one transaction and record it in the audit log\n"
		"  status              budget status of every factory and project\n"
		"  projects            your projects and their charged GPU-hours left (asks aifd; no\n"
		"                      database access needed)\n"
		"  report --by KEY     physical and charged GPU-hours by factory, sector,\n"
		"                      project or month\n"
		"  db migrate          create or upgrade the database schema\n"
		"  spool flush         send this node's spooled usage records to aifd (as root)\n"
		"  spool list          the records waiting in this node's spool, and those in\n"
		"                      its bad/ (never sent) with the reason (as root)\n"
		"\n"
		"Options:\n"
		"  -d, --db=CONNINFO       database connection string (default: \"db\" in the\n"
		"                          config file, else the PG* environment variables)\n"
		"  -c, --config=FILE       config file (default: %s, if present)\n"
		"  -s, --server=ADDRESS    projects, spool flush: aifd's socket path or\n"
		"                          host[:port] (default: \"server\" in the config\n"
		"                          file, else %s)\n"
		"  -C, --cluster=NAME      projects: this cluster's name (default: \"cluster\" in\n"
		"                          the config file)\n"
		"  -f, --format=FORMAT     output as table (default), csv or json\n"
		"  -b, --by=KEY            report: factory, sector, project or month\n"
		"  -p, --period=PERIOD     status, report: only this budget period\n"
		"      --spool-dir=DIR     spool flush, list: the spool directory (default: \"spool_dir\"\n"
		"                          in the config file, else %s)\n"
		"      --slurm             check: also that every GPU model of this cluster's nodes\n"
		"                          (sinfo) has a rate where the file gives rates\n"
		"  -h, --help              show this help, then exit\n"
		"  -V, --version           output version information, then exit\n"
		"\n"
		"Exit status: 0 success, 1 failure (database or system; spool flush: records\n"
		"remain in the spool), 2 invalid input.\n",
		AIFCTL_DEFAULT_CONFIG, AIF_PROTO_DEFAULT_SOCKET, AIF_SPOOL_DEFAULT_DIR);
}

__attribute__((format(printf, 1, 2))) static int bad_usage(const char *fmt, ...)
{
	va_list ap;

	fputs("aifctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry \"aifctl --help\" for more information.\n", stderr);
	return AIFCTL_INVALID;
}

/* Long options without a short letter. */
enum { OPT_SPOOL_DIR = 256, OPT_SLURM };

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{"db", required_argument, NULL, 'd'},
		{"config", required_argument, NULL, 'c'},
		{"server", required_argument, NULL, 's'},
		{"cluster", required_argument, NULL, 'C'},
		{"format", required_argument, NULL, 'f'},
		{"by", required_argument, NULL, 'b'},
		{"period", required_argument, NULL, 'p'},
		{"spool-dir", required_argument, NULL, OPT_SPOOL_DIR},
		{"slurm", no_argument, NULL, OPT_SLURM},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	static const struct {
		const char *name;
		int (*run)(const struct aifctl *ctl);
		int n_args; /* positional arguments after the command name */
		const char *args_usage;
	} commands[] = {
		{"check", aifctl_cmd_check, 1, "FILE"},
		{"plan", aifctl_cmd_plan, 1, "FILE"},
		{"apply", aifctl_cmd_apply, 1, "FILE"},
		{"status", aifctl_cmd_status, 0, ""},
		{"report", aifctl_cmd_report, 0, ""},
		{"db", aifctl_cmd_db, 1, "migrate"},
		{"projects", aifctl_cmd_projects, 0, ""},
		{"spool", aifctl_cmd_spool, 1, "flush|list"},
	};
	struct aifctl ctl = {.format = AIFCTL_FORMAT_TABLE};
	int c;

	/* Options may come before or after the command, as users type them. */
	while ((c = getopt_long(argc, argv, "d:c:s:C:f:b:p:hV", options, NULL)) != -1) {
		switch (c) {
		case 'd':
			ctl.db_option = optarg;
			break;
		case 'c':
			ctl.config_path = optarg;
			break;
		case 's':
			ctl.server_option = optarg;
			break;
		case 'C':
			ctl.cluster_option = optarg;
			break;
		case 'f':
			if (strcmp(optarg, "table") == 0)
				ctl.format = AIFCTL_FORMAT_TABLE;
			else if (strcmp(optarg, "csv") == 0)
				ctl.format = AIFCTL_FORMAT_CSV;
			else if (strcmp(optarg, "json") == 0)
				ctl.format = AIFCTL_FORMAT_JSON;
			else
				return bad_usage("invalid format \"%s\": expected table, csv or json", optarg);
			break;
		case 'b':
			ctl.by = optarg;
			break;
		case 'p':
			ctl.period = optarg;
			break;
		case OPT_SPOOL_DIR:
			ctl.spool_dir_option = optarg;
			break;
		case OPT_SLURM:
			ctl.slurm = true;
			break;
		case 'h':
			usage(stdout);
			return AIFCTL_OK;
		case 'V':
			printf("aifctl (aif) %s\n", AIF_VERSION);
			return AIFCTL_OK;
		default:
			fprintf(stderr, "Try \"aifctl --help\" for more information.\n");
			return AIFCTL_INVALID;
		}
	}
	if (optind >= argc)
		return bad_usage("%s", "no command given");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[optind], commands[i].name) != 0)
			continue;
		ctl.args = argv + optind + 1;
		ctl.n_args = argc - optind - 1;
		if (ctl.n_args != commands[i].n_args) {
			fprintf(stderr, "aifctl: usage: aifctl %s %s\n", commands[i].name, commands[i].args_usage);
			return AIFCTL_INVALID;
		}
		if (ctl.by && commands[i].run != aifctl_cmd_report)
			return bad_usage("--by is only for \"%s\"", "report");
		if (ctl.period && commands[i].run != aifctl_cmd_report && commands[i].run != aifctl_cmd_status)
			return bad_usage("--period is only for \"%s\"", "status and report");
		if (ctl.slurm && commands[i].run != aifctl_cmd_check)
			return bad_usage("--slurm is only for \"%s\"", "check");
		if (ctl.spool_dir_option && commands[i].run != aifctl_cmd_spool)
			return bad_usage("--spool-dir is only for \"%s\"", "spool flush\" and \"spool list");
		return commands[i].run(&ctl);
	}
	return bad_usage("unknown command \"%s\"", argv[optind]);
}
