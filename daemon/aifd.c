/*
 * aifd: the aif accounting and enforcement daemon (docs/aifd.md).
 *
 * Start-up, in this order, each step refusing to go on with a clear message:
 *   1. read and validate the config file (every error with file and line; exit 2);
 *   2. bind the Unix socket and the TCP listener (exit 1);
 *   3. give up root for the configured user (exit 1);
 *   4. connect to PostgreSQL and check the schema version (exit 1);
 *   5. serve until SIGTERM (exit 0).
 * Binding comes before giving up root (the socket directory may need root); the database
 * connection comes after it, so that it is always made as the user aifd runs as: peer
 * authentication, ~/.pgpass and client certificates then see the same user at start-up as on
 * every later reconnection.
 *
 * aifd always runs in the foreground, as daemons under systemd do; it does not fork.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aif_version.h"
#include "aifd.h"
#include "config.h"
#include "db.h"
#include "listener.h"
#include "log.h"
#include "loop.h"
#include "privs.h"

#define EXIT_CONFIG 2 /* a bad command line or config file */

static void usage(FILE *out)
{
	fprintf(out,
		"aifd is the aif accounting and enforcement daemon for Slurm.\n"
		"\n"
		"Usage:\n"
		"  aifd [OPTION]...\n"
		"\n"
		"Options:\n"
		"  -f, --config=FILE      config file (default " AIFD_DEFAULT_CONFIG ")\n"
		"  -t, --check-config     check the config file, then exit (0 valid, 2 invalid)\n"
		"  -h, --help             show this help, then exit\n"
		"  -V, --version          output version information, then exit\n"
		"\n"
		"aifd runs in the foreground and logs to stderr, or to syslog with \"syslog = yes\".\n"
		"SIGHUP reloads the config file; SIGTERM or SIGINT stops aifd.\n"
		"\n"
		"This version of aifd checks its config, database and sockets and accepts\n"
		"connections, but does not serve requests yet.\n");
}

static void aifd_init(struct aifd *aifd, const char *config_path)
{
	memset(aifd, 0, sizeof(*aifd));
	aifd->config_path = config_path;
	listener_init(&aifd->unix_listener);
	listener_init(&aifd->tcp_listener);
	aifd->epoll_fd = aifd->signal_fd = aifd->spare_fd = -1;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Close whatever start-up opened, in any state it reached. */
static void aifd_close(struct aifd *aifd)
{
	conn_close_all(aifd, "aifd is stopping");
	listener_close(aifd, &aifd->unix_listener);
	listener_close(aifd, &aifd->tcp_listener);
	if (aifd->db)
		PQfinish(aifd->db);
	aifd->db = NULL;
	close_fd(&aifd->epoll_fd);
	close_fd(&aifd->signal_fd);
	close_fd(&aifd->spare_fd);
}

static int check_config(const char *path)
{
	struct aifd_config config;
	int errors = config_load(path, &config);

	if (errors) {
		fprintf(stderr, "aifd: configuration file \"%s\" is invalid: %d %s\n", path, errors,
			errors == 1 ? "error" : "errors");
		return EXIT_CONFIG;
	}
	printf("aifd: configuration file \"%s\" is valid\n", path);
	return EXIT_SUCCESS;
}

static int serve(struct aifd *aifd)
{
	struct aifd_config *config = &aifd->config;
	int errors = config_load(aifd->config_path, config);
	int rc;

	if (errors) {
		log_error("configuration file \"%s\" has %d %s; not starting", aifd->config_path, errors,
			  errors == 1 ? "error" : "errors");
		return EXIT_CONFIG;
	}
	log_setup((enum log_level)config->log_level, config->syslog);
	log_info("aifd %s starting with configuration file \"%s\"", AIF_VERSION, aifd->config_path);

	/* The directory is made aifd's own only when aifd will give up root for that user. */
	if (listener_open_unix(&aifd->unix_listener, config->socket,
			       geteuid() == 0 ? config->user_uid : (uid_t)-1,
			       geteuid() == 0 ? config->user_gid : (gid_t)-1) < 0)
		return EXIT_FAILURE;
	if (strcmp(config->listen, "none") != 0 &&
	    listener_open_tcp(&aifd->tcp_listener, config->listen) < 0)
		return EXIT_FAILURE;
	if (privs_drop(config) < 0)
		return EXIT_FAILURE;
	aifd->db = db_connect(config);
	if (!aifd->db)
		return EXIT_FAILURE;

	rc = loop_run(aifd);
	if (rc == 0)
		log_info("aifd stopped");
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{"config", required_argument, NULL, 'f'},
		{"check-config", no_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	const char *config_path = AIFD_DEFAULT_CONFIG;
	int only_check = 0, c, rc;
	struct aifd aifd;
	sigset_t hup;

	while ((c = getopt_long(argc, argv, "f:thV", options, NULL)) != -1) {
		switch (c) {
		case 'f':
			config_path = optarg;
			break;
		case 't':
			only_check = 1;
			break;
		case 'h':
			usage(stdout);
			return EXIT_SUCCESS;
		case 'V':
			printf("aifd (aif) %s\n", AIF_VERSION);
			return EXIT_SUCCESS;
		default:
			fprintf(stderr, "Try \"aifd --help\" for more information.\n");
			return EXIT_CONFIG;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "aifd: unexpected argument \"%s\"\n", argv[optind]);
		fprintf(stderr, "Try \"aifd --help\" for more information.\n");
		return EXIT_CONFIG;
	}
	if (only_check)
		return check_config(config_path);

	/* A SIGHUP during start-up waits for the loop instead of killing aifd. A client that
	 * goes away must not kill aifd either: writes then fail with EPIPE. */
	sigemptyset(&hup);
	sigaddset(&hup, SIGHUP);
	sigprocmask(SIG_BLOCK, &hup, NULL);
	signal(SIGPIPE, SIG_IGN);

	aifd_init(&aifd, config_path);
	rc = serve(&aifd);
	aifd_close(&aifd);
	log_close();
	return rc;
}
