/*
 * job_script context (`slurmstepd spank prolog|epilog`, root, a fresh process per node and
 * job; or aif-pelog, run as Prolog= and Epilog= under PrologFlags=RunInJob): the
 * allocation's start (prolog) or end (epilog) on this node, with the node's GPU count, as one
 * usage record. Sent to aifd; when aifd cannot take it now, spooled durably on the node
 * (lib/aif_spool.h) and sent later. Then, in the time left, the node's spool is flushed.
 * Never fails (a failing prolog or epilog drains the node) and never waits beyond the timeout
 * setting in all.
 *
 * The times are the node's clock; aifd replaces them with slurmctld's StartTime and EndTime
 * when it still knows the run (daemon/slurm/jobtimes.h).
 *
 * What the prolog and epilog have (docs/slurm.md), from Slurm, whichever of them runs this:
 * the job's id and uid, and the environment: SLURM_CLUSTER_NAME, SLURMD_NODENAME,
 * SLURM_JOB_RESTART_COUNT (the epilog's is the next run's after a requeue: runs.c),
 * SLURM_JOB_GPUS (indices), SLURM_JOB_USER, and SPANK_AIF_PROJECT / SPANK_AIF_SECTOR from the
 * submit-time check (a convenience: aifd charges the project the job was admitted for when it
 * has one). Only the SPANK_ variables are the user's: Slurm sets the others after them.
 * No SPANK call here: aif-pelog links this file.
 */
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <slurm/spank.h>

#include "aif_client.h"
#include "aif_spool.h"
#include "plugin.h"

#define BUSY_PAUSE_MS 50

static const char *env(const char *name)
{
	const char *v = getenv(name);
	return v && v[0] ? v : NULL;
}

/* "0,1,3" -> 3; absent or empty -> 0. */
static unsigned count_gpus(const char *indices)
{
	unsigned n = 0;

	if (!indices)
		return 0;
	for (n = 1; *indices; indices++)
		n += *indices == ',';
	return n;
}

/* SLURM_JOB_RESTART_COUNT; 0 when absent or invalid. */
static uint32_t env_restart(void)
{
	const char *v = env("SLURM_JOB_RESTART_COUNT");
	uint64_t n;

	return v && aif_proto_parse_u64(v, UINT32_MAX, &n) == 0 ? (uint32_t)n : 0;
}

/*
 * SPANK_AIF_PROJECT or SPANK_AIF_SECTOR, unless the user made it something that is no name
 * (too long, a control character, not UTF-8): then it is left out, never the record. The user
 * controls these (docs/slurm.md), and a record that failed over them would leave the job's GPU
 * time uncharged; aifd charges the job's admitted project, or keeps the usage unattributed.
 */
static const char *env_name(const char *var, uint32_t job)
{
	const char *v = env(var);

	if (v && !name_valid(v)) {
		slurm_info("aif: job %u: %s is not a valid name; left out of the usage record", job, var);
		return NULL;
	}
	return v;
}

/* The record of run restart of job on node, or -1 when a field is invalid (logged). */
static int build_record(bool end, uint32_t job, uint32_t uid, const char *node, uint32_t restart,
			struct aif_proto_block *r, unsigned gpus)
{
	const char *user = env("SLURM_JOB_USER");
	const char *project = env_name("SPANK_AIF_PROJECT", job), *sector = env_name("SPANK_AIF_SECTOR", job);

	if (aif_proto_set(r, "event", end ? "end" : "start") < 0 ||
	    aif_proto_set_u64(r, "job", job) < 0 || aif_proto_set(r, "node", node) < 0 ||
	    aif_proto_set_u64(r, "restart", restart) < 0 ||
	    aif_proto_set_u64(r, "gpus", gpus) < 0 ||
	    aif_proto_set_u64(r, "time", (uint64_t)time(NULL)) < 0 ||
	    aif_proto_set_u64(r, "uid", uid) < 0 ||
	    (user && aif_proto_set(r, "user", user) < 0) ||
	    (project && aif_proto_set(r, "project", project) < 0) ||
	    (sector && aif_proto_set(r, "sector", sector) < 0)) {
		slurm_error("aif: job %u: invalid usage record fields; usage not recorded", job);
		return -1;
	}
	return 0;
}

/* Spool the record for a later flush; a failure (a full disk, an unsafe spool) is logged only. */
static void spool(const struct plugin_settings *s, const char *cluster, const struct aif_proto_block *r)
{
	struct aif_diag diag;

	if (aif_spool_put(s->spool_dir, cluster, r, &diag) == 0)
		return;
	slurm_error("aif: the usage of job %s on %s is neither sent nor spooled", aif_proto_get(r, "job"),
		    aif_proto_get(r, "node"));
	log_diag(true, &diag);
}

/*
 * A record aifd refused (it can never store it as it is): kept in spool_dir/bad/ with aifd's
 * reason for the operators (aifctl spool list), never sent again.
 */
static void keep_refused(const struct plugin_settings *s, const char *cluster,
			 const struct aif_proto_block *r, const struct aif_diag *why)
{
	char where[PATH_MAX];
	struct aif_diag diag;

	if (aif_spool_put_bad(s->spool_dir, cluster, r, why, where, sizeof(where), &diag) == 0) {
		slurm_error("aif: aifd refused the usage of job %s on %s; kept in %s: %s", aif_proto_get(r, "job"),
			    aif_proto_get(r, "node"), where, why->message);
		return;
	}
	slurm_error("aif: aifd refused the usage of job %s on %s (%s), and it could not be kept in %s",
		    aif_proto_get(r, "job"), aif_proto_get(r, "node"), why->message, where);
	log_diag(true, &diag);
}

static void send_or_spool(const struct plugin_settings *s, const char *cluster,
			  struct aif_proto_msg *req, int64_t deadline_ms)
{
	struct aif_proto_msg ans;
	struct aif_diag diag;
	const struct aif_proto_block *r = &req->records[0];

	aif_diag_clear(&diag);
	if (client_ask_by(s, req, &ans, deadline_ms, &diag) == 0 && ans.kind == AIF_PROTO_OK) {
		aif_proto_msg_free(&ans);
		return;
	}
	if (ans.kind == AIF_PROTO_REFUSE) {
		/* Never storable as it is: spooling it would send it again forever. */
		aif_proto_response_diag(&ans, &diag);
		aif_proto_msg_free(&ans);
		keep_refused(s, cluster, r, &diag);
		return;
	}
	if (ans.kind == AIF_PROTO_ERROR)
		aif_proto_response_diag(&ans, &diag);
	aif_proto_msg_free(&ans);
	slurm_info("aif: aifd did not take the usage of job %s (%s); spooled in %s",
		   aif_proto_get(r, "job"), diag.message, s->spool_dir);
	spool(s, cluster, r);
}

/*
 * Earlier records of this node that aifd could not take, oldest first, in the time left.
 * Returns true when the spool still holds records (not all sent, or another process is
 * still sending them): the new record then goes behind them, so that aifd never gets an
 * allocation's end before its start; also when its flush failed otherwise (a lock, a scan):
 * it may hold some. Not when the spool itself could not be opened (unsafe, unreadable): the
 * new record could not be spooled either, and is sent rather than lost.
 */
static bool flush_spool(const struct plugin_settings *s, int64_t deadline_ms)
{
	struct aif_spool_stats stats = {0};
	struct aif_diag diag;
	struct aif_client *client;
	bool left;
	int rc;

	aif_diag_clear(&diag);
	if (!(client = client_new(s, &diag)))
		return false;
	/* Another process flushing (the epilog of another job, the timer): wait for it, as long
	 * as the deadline allows, rather than queue behind records it may be sending. Not when
	 * the spool holds none: the other is only looking, as every prolog and epilog does. */
	for (;;) {
		rc = aif_spool_flush(s->spool_dir, client, 0, deadline_ms, &stats, &diag);
		left = stats.kept > 0 || (rc < 0 && !stats.unusable); /* (a lock or scan failed) */
		if (!stats.busy || !left || aif_clock_ms() + BUSY_PAUSE_MS >= deadline_ms)
			break;
		poll(NULL, 0, BUSY_PAUSE_MS);
	}
	if (stats.sent)
		slurm_info("aif: sent %zu spooled usage records", stats.sent);
	if (left && !stats.busy && stats.kept)
		slurm_info("aif: %zu usage records stay in %s: %s", stats.kept, s->spool_dir, diag.message);
	else if (rc < 0 && !stats.busy)
		log_diag(true, &diag); /* the spool itself failed: unsafe, unreadable, its lock */
	if (stats.bad)
		slurm_error("aif: %zu spooled usage records moved to %s/bad: %s", stats.bad,
			    s->spool_dir, stats.bad_diag.message);
	aif_client_free(client);
	return left;
}

void account_record(const struct plugin_settings *s, uint32_t job, uint32_t uid, bool end)
{
	int64_t deadline_ms = aif_clock_ms() + (int64_t)s->timeout_ms;
	const char *cluster = env("SLURM_CLUSTER_NAME"), *node = env("SLURMD_NODENAME");
	unsigned gpus = count_gpus(env("SLURM_JOB_GPUS"));
	bool behind = flush_spool(s, deadline_ms);
	uint32_t restart = env_restart();
	struct aif_proto_msg req;

	/* GPU-hours only: an allocation without GPUs on this node uses none. */
	if (gpus == 0 || !cluster)
		return;
	if (!node) {
		slurm_error("aif: %s of job %u: no SLURMD_NODENAME; usage not recorded",
			    end ? "epilog" : "prolog", job);
		return;
	}
	/* The epilog ends the run the prolog started, whatever a requeue did meanwhile (runs.c). */
	if (end)
		restart = runs_recall(s->spool_dir, node, job, restart);
	else
		runs_remember(s->spool_dir, node, job, restart);
	aif_proto_msg_init(&req, AIF_PROTO_USAGE);
	if (aif_proto_set(&req.header, "cluster", cluster) == 0 && aif_proto_add_record(&req) &&
	    build_record(end, job, uid, node, restart, &req.records[0], gpus) == 0) {
		if (!behind)
			send_or_spool(s, cluster, &req, deadline_ms);
		else
			spool(s, cluster, &req.records[0]);
	}
	aif_proto_msg_free(&req);
}
