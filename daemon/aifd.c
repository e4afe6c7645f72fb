/*
 * aifd: the aif accounting and enforcement daemon (docs/aifd.md).
 *
 * Start-up, in this order, each step refusing to go on with a clear message:
 *   1. read and validate the config file (every error with file and line; exit 2);
 *   2. bind the Unix socket and the TCP listener (exit 1);
 *   3. give up root for the configured user (exit 1);
 *   4. connect to PostgreSQL, check the schema version and load the budgets (exit 1);
 *   5. start the usage writer, the reconciliation with slurmctld and the worker threads
 *      (exit 1);
 *   6. serve until SIGTERM (exit 0); then answer what was received, and stop the threads in
 *      the reverse order.
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
#include <pthread.h>
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
		"SIGHUP reloads the config file; SIGTERM or SIGINT stops aifd once every request\n"
		"already received is answered.\n");
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
	/*
	 * Workers first (they submit to the store), then the store (it pokes refresh, and answers
	 * what it could not write through pool_done()), then the pool's memory.
	 */
	pool_join(aifd->pool);
	if (aifd->store)
		store_stop(aifd->store);
	aifd->store = NULL;
	pool_stop(aifd->pool);
	aifd->pool = NULL;
	handler_free(aifd->handler);
	aifd->handler = NULL;
	jobtimes_free(aifd->jobtimes);
	aifd->jobtimes = NULL;
	reconcile_stop(aifd->reconcile);
	aifd->reconcile = NULL;
	refresh_stop(aifd->refresh);
	aifd->refresh = NULL;
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

static void store_log(void *arg, int is_error, const struct aif_diag *diag)
{
	(void)arg;
	log_diag(is_error ? LOG_LEVEL_ERROR : LOG_LEVEL_INFO, NULL, diag);
}

static int start_threads_blocked(struct aifd *aifd, const struct refresh_options *ropts,
				 const struct handler_settings *hs)
{
	const struct aifd_config *config = &aifd->config;
	struct reconcile_options copts = {config->db, config->cluster,
					  (unsigned)config->reconcile_interval_ms};
	struct store_options sopts;
	struct pool_ops ops;
	struct aif_diag diag;

	aifd->refresh = refresh_start(aifd->db, ropts);
	aifd->db = NULL; /* refresh owns it now, also after a failure */
	if (!aifd->refresh)
		return -1;
	/* Before the store, whose writer settles usage times with it. */
	aifd->jobtimes = jobtimes_new();
	if (!aifd->jobtimes)
		return -1;
	store_options_init(&sopts);
	sopts.rollup_flush_interval_ms = (unsigned)config->flush_interval_ms;
	sopts.log = store_log;
	sopts.settle = jobtimes_settle;
	sopts.settle_arg = aifd->jobtimes;
	sopts.cluster = config->cluster;
	aif_diag_clear(&diag);
	if (store_start_opts(config->db, &sopts, &aifd->store, &diag) < 0) {
		log_diag(LOG_LEVEL_ERROR, NULL, &diag);
		return -1;
	}
	aifd->reconcile = reconcile_start(&copts);
	if (!aifd->reconcile)
		return -1;
	aifd->handler = handler_new(hs, aifd->refresh, aifd->store);
	if (!aifd->handler) {
		log_error("out of memory");
		return -1;
	}
	handler_pool_ops(aifd->handler, &ops);
	aifd->pool = pool_start((unsigned)config->workers, &ops);
	if (!aifd->pool)
		return -1;
	handler_set_pool(aifd->handler, aifd->pool);
	return 0;
}

/* The budget snapshot, the usage writer, reconciliation and the workers; each logs its own
 * failure. */
static int start_threads(struct aifd *aifd)
{
	const struct aifd_config *config = &aifd->config;
	struct refresh_options ropts = {config->db, (unsigned)config->refresh_interval_ms, 250};
	struct handler_settings hs = {config->cluster, config->slurm_uid, config->slurm_user,
				      config->munge_socket, config->db};
	sigset_t all, was;
	int rc;

	/* Signals are the loop's (signalfd): the threads start with all of them blocked. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &was);
	rc = start_threads_blocked(aifd, &ropts, &hs);
	pthread_sigmask(SIG_SETMASK, &was, NULL);
	return rc;
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
	if (!aifd->db || start_threads(aifd) < 0)
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
