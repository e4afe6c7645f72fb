/*
 * handler: what aifd does with one request (docs/protocol.md), in a worker thread:
 *   1. decode the MUNGE credential: the sender's uid and gid, and the request; a replayed,
 *      expired or forged credential gets an "error" answer and nothing else;
 *   2. decode and validate the message; its cluster must be aifd's;
 *   3. admit and usage only from root or SlurmUser;
 *   4. check and admit: decide() on the current snapshot, an admit once per job
 *      (admissions.h); status: decide_status();
 *      usage: resolve the project charged and queue the records in the store, which settles
 *      their times with slurmctld's (jobtimes.h) and answers after the commit (acked = all
 *      records) or refuses them all.
 */
#ifndef AIFD_HANDLER_H
#define AIFD_HANDLER_H

#include <stdint.h>
#include <sys/types.h>

#include "pool.h"
#include "refresh.h"
#include "store.h"

struct handler_settings {
	const char *cluster;      /* this cluster's ClusterName */
	uid_t slurm_uid;          /* SlurmUser: trusted like root */
	const char *slurm_user;   /* its name, for messages */
	const char *munge_socket; /* "" or NULL: libmunge's default */
	const char *conninfo;     /* the database, for admissions (admissions.h) */
};

struct handler;

/* The handler reads decisions from refresh and writes usage to store; both outlive it. */
struct handler *handler_new(const struct handler_settings *settings, struct refresh *refresh,
			    struct store *store);

/* The pool_ops that run this handler; pool_start() with them, then handler_set_pool(). */
void handler_pool_ops(struct handler *h, struct pool_ops *ops);
void handler_set_pool(struct handler *h, struct pool *pool);

void handler_free(struct handler *h);

/*
 * The summaries of the warnings the handler left out (a sender can repeat them at will: one a
 * kind every 10 s), once due; the sooner of next and when the next is due (aif_clock_ms()).
 */
int64_t handler_log_flush(struct handler *h, int64_t now_ms, int64_t next);

#endif
