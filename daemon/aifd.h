/*
 * aifd: the state of the running daemon. main() (aifd.c) owns the one struct aifd, opens
 * what it holds in start-up order and closes all of it in aifd_close(); the loop serves it.
 */
#ifndef AIFD_AIFD_H
#define AIFD_AIFD_H

#include <stdbool.h>

#include <libpq-fe.h>

#include "config.h"
#include "handler.h"
#include "jobtimes.h"
#include "pool.h"
#include "reconcile.h"
#include "refresh.h"
#include "store.h"
#include "conn.h"
#include "listener.h"

struct aifd {
	const char *config_path;
	struct aifd_config config;  /* the running configuration; SIGHUP updates it */
	PGconn *db;                 /* checked at start-up, then handed to refresh */
	struct listener unix_listener;
	struct listener tcp_listener; /* not open with listen = none */
	struct conns conns;         /* the connections, and their limits */
	int epoll_fd;               /* -1 until the loop runs */
	int signal_fd;
	int spare_fd;               /* kept free for accept() when out of fds: see loop.c */
	struct refresh *refresh;    /* the budget snapshot (owns the start-up connection) */
	struct store *store;        /* the usage writer */
	struct handler *handler;    /* what a request means */
	struct pool *pool;          /* the worker threads */
	struct reconcile *reconcile; /* open intervals and cancellations against slurmctld */
	struct jobtimes *jobtimes;  /* slurmctld's times for usage records */
	unsigned long inflight;     /* requests received and not yet answered */
	bool stopping;
};

#endif
