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
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "aif_clock.h"
#include "aif_version.h"
#include "config.h"
#include "conn.h"
#include "db.h"
#include "handler.h"
#include "jobtimes.h"
#include "listener.h"
#include "log.h"
#include "loop.h"
#include "pending.h"
#include "pool.h"
#include "privs.h"
#include "reconcile.h"
#include "refresh.h"
#include "settle.h"
#include "store.h"

#define EXIT_CONFIG 2 /* a bad command line or config file */

/*
 * Once stopping: how long to wait for the answers to requests already received. The store
 * keeps retrying a lost database for its stop_timeout; this is a last resort beyond it.
 * Answers that are not read get CONN_STOP_WRITE_MS (conn.c).
 */
#define STOP_WAIT_MS (60 * 1000)
#define WAIT_MAX_MS 10000
#define STOP_POLL_MS 100

/* The running daemon: main() owns the one struct aifd, opens what it holds in start-up order
 * and closes all of it in aifd_close(). */
struct aifd {
	const char *config_path;
	struct aifd_config config;  /* the running configuration; SIGHUP updates it */
	PGconn *db;                 /* checked at start-up, then handed to refresh */
	struct listener unix_listener;
	struct listener tcp_listener; /* not open with listen = none */
	struct loop loop;
	struct watch signals;       /* signalfd: SIGHUP, SIGTERM, SIGINT */
	struct conns conns;         /* the connections, and their limits */
	struct refresh *refresh;    /* the budget snapshot (owns the start-up connection) */
	struct store *store;        /* the usage writer */
	struct handler *handler;    /* what a request means */
	struct pool *pool;          /* the worker threads */
	struct reconcile *reconcile; /* open intervals and cancellations against slurmctld */
	struct jobtimes *jobtimes;  /* slurmctld's times for usage records */
	struct settle *settle;      /* ends acknowledged: settled, then closed */
	bool conns_ready;           /* conns initialized (its watch on the pool) */
	bool stopping;
};

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
	aifd->loop.epoll_fd = aifd->signals.fd = -1;
}

/* Close whatever start-up opened, in any state it reached. */
static void aifd_close(struct aifd *aifd)
{
	if (aifd->conns_ready)
		conn_close_all(&aifd->conns, "aifd is stopping");
	listener_close(&aifd->unix_listener);
	listener_close(&aifd->tcp_listener);
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
	settle_stop(aifd->settle); /* after the store, which pokes it */
	aifd->settle = NULL;
	jobtimes_free(aifd->jobtimes);
	aifd->jobtimes = NULL;
	reconcile_stop(aifd->reconcile);
	aifd->reconcile = NULL;
	refresh_stop(aifd->refresh);
	aifd->refresh = NULL;
	if (aifd->db)
		PQfinish(aifd->db);
	aifd->db = NULL;
	if (aifd->signals.fd >= 0)
		close(aifd->signals.fd);
	aifd->signals.fd = -1;
	loop_close(&aifd->loop);
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

/* The settler closed intervals: decisions see it soon, as they see usage recorded. */
static void ends_closed(void *refresh)
{
	refresh_poke(refresh);
}

/* The usage writer committed a batch of records: to the settler. */
static void usage_written(void *settle, const struct usage_record *recs, size_t n)
{
	settle_written(settle, recs, n);
}

/* Reconciliation's jobs of a pass: the pending ones that cannot fit wait (pending.h). */
static void hold_pending(void *refresh, struct db *db, const char *cluster,
			 const job_info_msg_t *jobs)
{
	pending_hold(refresh, db, cluster, jobs);
}

static int start_threads_blocked(struct aifd *aifd, const struct refresh_options *ropts,
				 const struct handler_settings *hs)
{
	const struct aifd_config *config = &aifd->config;
	struct reconcile_options copts = {config->db, config->cluster,
					  (unsigned)config->reconcile_interval_ms, hold_pending, NULL};
	struct store_options sopts;
	struct pool_ops ops;
	struct aif_diag diag;

	aifd->refresh = refresh_start(aifd->db, ropts);
	aifd->db = NULL; /* refresh owns it now, also after a failure */
	if (!aifd->refresh)
		return -1;
	/* Before the store, whose writer hands the ends it committed to the settler. */
	aifd->jobtimes = jobtimes_new();
	if (!aifd->jobtimes)
		return -1;
	aifd->settle = settle_start(config->db, config->cluster, aifd->jobtimes, ends_closed,
				    aifd->refresh);
	if (!aifd->settle)
		return -1;
	store_options_init(&sopts);
	sopts.rollup_flush_interval_ms = (unsigned)config->flush_interval_ms;
	sopts.log = store_log;
	sopts.written = usage_written;
	sopts.written_arg = aifd->settle;
	aif_diag_clear(&diag);
	if (store_start_opts(config->db, &sopts, &aifd->store, &diag) < 0) {
		log_diag(LOG_LEVEL_ERROR, NULL, &diag);
		return -1;
	}
	copts.jobs_seen_arg = aifd->refresh;
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
	struct refresh_options ropts = {config->db, (unsigned)config->refresh_interval_ms,
					 REFRESH_AFTER_USAGE_MS};
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

/* ---- signals: the reload and stop policy ---- */

static struct aifd *aifd_of_signals(struct watch *watch)
{
	return (struct aifd *)((char *)watch - offsetof(struct aifd, signals));
}

static void signal_ready(struct watch *watch, uint32_t events)
{
	struct aifd *aifd = aifd_of_signals(watch);
	struct signalfd_siginfo info;

	(void)events;
	while (read(watch->fd, &info, sizeof(info)) == (ssize_t)sizeof(info)) {
		switch (info.ssi_signo) {
		case SIGHUP:
			log_info("received SIGHUP; reloading configuration file \"%s\"", aifd->config_path);
			if (config_reload(aifd->config_path, &aifd->config) == 0) {
				refresh_set_interval(aifd->refresh,
						     (unsigned)aifd->config.refresh_interval_ms);
				reconcile_set_interval(aifd->reconcile,
						       (unsigned)aifd->config.reconcile_interval_ms);
			}
			break;
		case SIGTERM:
		case SIGINT:
			if (aifd->stopping)
				break;
			log_info("received %s; no longer accepting connections, stopping",
				 info.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
			aifd->stopping = true;
			listener_close(&aifd->unix_listener);
			listener_close(&aifd->tcp_listener);
			conn_stop(&aifd->conns, aif_clock_ms());
			break;
		}
	}
}

static int open_signals(struct aifd *aifd)
{
	sigset_t mask;

	/* SIGHUP was blocked since start-up (main()); SIGTERM and SIGINT only from now on: until
	 * the loop runs there is nothing to finish, so their default action is the right one. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) {
		log_error("could not block signals: %s", strerror(errno));
		return -1;
	}
	aifd->signals.fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (aifd->signals.fd < 0) {
		log_error("could not create a signalfd: %s", strerror(errno));
		return -1;
	}
	aifd->signals.ready = signal_ready;
	return loop_watch(&aifd->loop, &aifd->signals, EPOLLIN);
}

/* ---- the main loop ---- */

/*
 * Serve until SIGTERM or SIGINT: then stop accepting (the listeners are closed), answer every
 * request already received (usage only once committed), close the connections and return 0.
 * Returns 1 when the loop cannot run at all (logged).
 */
static int run(struct aifd *aifd)
{
	int64_t stop_deadline = 0;

	if (loop_open(&aifd->loop) < 0 || open_signals(aifd) < 0 ||
	    conn_init(&aifd->conns, &aifd->loop, aifd->pool, aifd->config.slurm_uid) < 0)
		return 1;
	aifd->conns_ready = true;
	if (listener_start(&aifd->unix_listener, &aifd->loop, conn_accept, &aifd->conns) < 0 ||
	    listener_start(&aifd->tcp_listener, &aifd->loop, conn_accept, &aifd->conns) < 0)
		return 1;
	log_info("aifd is ready (cluster \"%s\")", aifd->config.cluster);

	for (;;) {
		/* Deadlines first: the wait below lasts until the next one. */
		int64_t now = aif_clock_ms();
		int wait_ms = conn_sweep(&aifd->conns, now, aifd->stopping ? STOP_POLL_MS : WAIT_MAX_MS);

		wait_ms = (int)(handler_log_flush(aifd->handler, now, now + wait_ms) - now);
		conn_free_closed(&aifd->conns);
		if (aifd->stopping) {
			if (!stop_deadline) {
				stop_deadline = aif_clock_ms() + STOP_WAIT_MS;
				if (aifd->conns.inflight)
					log_info("answering %lu requests already received", aifd->conns.inflight);
			}
			if (!aifd->conns.inflight && !aifd->conns.writing.count)
				break;
			if (aif_clock_ms() > stop_deadline) {
				log_error("stopping with %lu requests unanswered after %d s; their senders will send them again",
					  aifd->conns.inflight, STOP_WAIT_MS / 1000);
				break;
			}
		}
		if (loop_run_once(&aifd->loop, wait_ms) < 0)
			return 1;
		conn_free_closed(&aifd->conns);
	}
	conn_close_all(&aifd->conns, "aifd is stopping");
	return 0;
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
	aifd->db = db_connect_checked(config->db);
	if (!aifd->db || start_threads(aifd) < 0)
		return EXIT_FAILURE;

	rc = run(aifd);
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
