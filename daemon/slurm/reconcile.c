/*
 * reconcile: open intervals against slurmctld, and on_exhausted: cancel (reconcile.h).
 *
 * A pass, in this order:
 *   1. Read the open runs (job, restart) of this cluster from PostgreSQL, THEN ask slurmctld.
 *      A run read first had its prolog before the read, so slurmctld knew the job by then;
 *      the other way round, a job started in between would look unknown and be closed.
 *   2. One slurm_load_jobs() per pass rather than one slurm_load_job() per open job: one RPC
 *      and one consistent view of slurmctld whatever the number of running jobs (what one
 *      squeue costs it), instead of thousands of RPCs, each with its own MUNGE credential.
 *      A job missing from that list is asked for alone, and only "Invalid job id specified"
 *      (ESLURM_INVALID_JOB_ID) makes it unknown: a list that leaves jobs out must never close
 *      the intervals of a live job. slurmctld gives that answer for the jobs PrivateData=jobs
 *      hides too: when it may hide them from aifd, unknown jobs stay open (jobs_hidden()).
 *   3. Record when running runs were seen (aif.job_last_seen), close the runs that are over,
 *      move the running ones' reservations to end where slurmctld says they end now, forget
 *      the runs without open intervals, fold what was closed into the rollups.
 *   4. Request the cancellations that on_exhausted: cancel calls for, then carry out the due
 *      ones that still apply, when slurmctld answered this pass.
 *   5. The jobs that wait (holds.h); then the caller's jobs_seen with the pass's jobs (the
 *      holds of pending jobs that cannot fit: budgets/pending.h). The jobs are loaded at every
 *      pass for it, open runs or not.
 *
 * Every statement stands alone (autocommit) and is idempotent, so a pass broken off anywhere
 * (PostgreSQL or slurmctld going away) is simply run again later. The only state between
 * passes is in PostgreSQL.
 */
#include "reconcile.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <slurm/slurm.h>
#include <slurm/slurm_errno.h>

#include "aif_clock.h"
#include "db.h"
#include "holds.h"
#include "log.h"
#include "pgarray.h"
#include "slurmctld.h"
#include "slurmdbd.h"
#include "wakeup.h"


/*
 * The open runs of cluster $1, one row per (job, restart), through usage_intervals_open_run,
 * with the run's first interval start and last sighting (Unix seconds, 0: never seen), which
 * name the run to slurmdbd.
 */
static const char OPEN_RUNS_SQL[] =
	"SELECT o.job_id, o.restart_count, floor(extract(epoch FROM min(o.started_at)))::bigint,"
	" coalesce(floor(extract(epoch FROM max(s.seen_at)))::bigint, 0) FROM ("
	" SELECT job_id, restart_count, started_at FROM aif.usage_intervals"
	" WHERE cluster = $1 AND ended_at IS NULL"
	" UNION ALL"
	" SELECT job_id, restart_count, started_at FROM aif.unattributed_intervals"
	" WHERE cluster = $1 AND ended_at IS NULL"
	") o LEFT JOIN aif.job_last_seen s ON s.cluster = $1 AND s.job_id = o.job_id"
	" AND s.restart_count = o.restart_count"
	" GROUP BY o.job_id, o.restart_count ORDER BY o.job_id, o.restart_count";

/* $2 jobs and $3 restarts were running when the pass began, at $4 (Unix seconds). */
static const char SEEN_SQL[] =
	"INSERT INTO aif.job_last_seen AS s (cluster, job_id, restart_count, seen_at)"
	" SELECT $1, t.job_id, t.restart_count, to_timestamp($4::double precision)"
	" FROM unnest($2::bigint[], $3::int[]) AS t(job_id, restart_count)"
	" ORDER BY t.job_id, t.restart_count"
	" ON CONFLICT (cluster, job_id, restart_count) DO UPDATE"
	" SET seen_at = greatest(s.seen_at, excluded.seen_at)";

/*
 * Close the open intervals of the runs $2/$3: at $4, slurmctld's end time, from $5, its start
 * time of the same run (so the interval is exact, sql/007_exact_times.sql), both slurmdbd's
 * where $6 is true (slurmctld has forgotten the job), or where $4 is NULL
 * at the last bound known (the run's last sighting, else the interval's start). The rows are
 * locked in key order first, the order in which aif.record_usage() writes (the usage writer's
 * and the settler's), so that they never deadlock; an interval the epilog closed meanwhile is left alone, and so is one
 * whose epilog's end waits in aif.usage_end_inbox for the settler's next round (normally
 * under a second): the job is over in slurmctld by then, but its end arrived. Only an end left
 * there for INBOX_GRACE (its aifd stopped, or cannot close it) no longer holds the interval.
 */
#define INBOX_GRACE "300 seconds"
static const char CLOSE_SQL[] =
	"WITH c AS ("
	" SELECT * FROM unnest($2::bigint[], $3::int[], $4::bigint[], $5::bigint[], $6::boolean[])"
	"  AS c(job_id, restart_count, end_at, start_at, from_slurmdbd)"
	"), l AS ("
	" SELECT i.job_id, i.node, i.restart_count, c.end_at, c.from_slurmdbd, s.seen_at,"
	"  coalesce(to_timestamp(c.start_at), i.started_at) AS started_at,"
	"  c.start_at IS NOT NULL AS start_known"
	" FROM c JOIN aif.usage_intervals i ON i.cluster = $1 AND i.job_id = c.job_id"
	"  AND i.restart_count = c.restart_count AND i.ended_at IS NULL"
	"  AND NOT EXISTS (SELECT 1 FROM aif.usage_end_inbox x WHERE x.cluster = $1"
	"   AND x.job_id = i.job_id AND x.node = i.node AND x.restart_count = i.restart_count"
	"   AND x.received_at > now() - interval '" INBOX_GRACE "')"
	" LEFT JOIN aif.job_last_seen s ON s.cluster = $1 AND s.job_id = c.job_id"
	"  AND s.restart_count = c.restart_count"
	" ORDER BY i.job_id, i.node, i.restart_count"
	" FOR UPDATE OF i"
	"), ua AS (" /* unattributed usage of the same runs: the nodes' start, the same end */
	" UPDATE aif.unattributed_intervals x"
	" SET ended_at = greatest(x.started_at,"
	"  CASE WHEN c.end_at IS NULL THEN s.seen_at ELSE to_timestamp(c.end_at) END)"
	" FROM c LEFT JOIN aif.job_last_seen s ON s.cluster = $1 AND s.job_id = c.job_id"
	"  AND s.restart_count = c.restart_count"
	" WHERE x.cluster = $1 AND x.job_id = c.job_id AND x.restart_count = c.restart_count"
	"  AND x.ended_at IS NULL"
	")"
	" UPDATE aif.usage_intervals u"
	" SET started_at = l.started_at,"
	"  ended_at = greatest(l.started_at,"
	"  CASE WHEN l.end_at IS NULL THEN l.seen_at ELSE to_timestamp(l.end_at) END),"
	"  end_source = CASE WHEN l.end_at IS NULL THEN 'reconciled-last-seen'"
	"   WHEN l.from_slurmdbd THEN 'reconciled-slurmdbd' ELSE 'reconciled-slurm' END,"
	"  exact = l.end_at IS NOT NULL AND l.start_known"
	" FROM l"
	" WHERE u.cluster = $1 AND u.job_id = l.job_id AND u.node = l.node"
	"  AND u.restart_count = l.restart_count AND u.ended_at IS NULL"
	" RETURNING u.job_id, u.restart_count, u.node,"
	"  to_char(u.ended_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS \"UTC\"')";

/* Runs without open intervals need no last sighting any more. */
static const char FORGET_SQL[] =
	"DELETE FROM aif.job_last_seen s WHERE s.cluster = $1 AND NOT EXISTS ("
	" SELECT 1 FROM aif.usage_intervals i WHERE i.cluster = s.cluster AND i.job_id = s.job_id"
	"  AND i.restart_count = s.restart_count AND i.ended_at IS NULL) AND NOT EXISTS ("
	" SELECT 1 FROM aif.unattributed_intervals x WHERE x.cluster = s.cluster"
	"  AND x.job_id = s.job_id AND x.restart_count = s.restart_count AND x.ended_at IS NULL)";

/*
 * What on_exhausted: cancel applies to now, on cluster $1: one row per running job (open
 * intervals) and exhausted budget whose owner's policy is cancel. A project's budget: the
 * project's policy and grace (aif.apply() already gave it the factory's when the budgets file
 * sets none); an AI Factory's budget: the factory's own, for the jobs of all its projects.
 * Exhausted is aif_report.budget_status's state, in a period that contains today (UTC): the
 * same usage, on every cluster, that funders see.
 */
#define POLICY_CTE                                                                               \
	"WITH ex AS ("                                                                           \
	" SELECT b.period, b.factory, b.project, b.used_gpu_hours, b.budget_gpu_hours"           \
	" FROM aif_report.budget_status b JOIN aif.periods p ON p.id = b.period"                 \
	" WHERE b.state = 'exhausted' AND p.starts_on <= (now() AT TIME ZONE 'UTC')::date"       \
	"  AND (now() AT TIME ZONE 'UTC')::date < p.ends_on"                                     \
	"), run AS ("                                                                            \
	" SELECT DISTINCT i.job_id, i.project_id FROM aif.usage_intervals i"                    \
	" WHERE i.cluster = $1 AND i.ended_at IS NULL"                                           \
	"), pol AS ("                                                                            \
	" SELECT r.job_id, pr.id AS project_id, pr.factory_id, 'project' AS scope, ex.period,"   \
	"  pr.grace_seconds AS grace,"                                                           \
	"  format('project %s used %s of its %s charged GPU-hours in period %s', pr.id,"         \
	"   ex.used_gpu_hours, ex.budget_gpu_hours, ex.period) AS reason"                        \
	" FROM run r JOIN aif.projects pr ON pr.id = r.project_id JOIN ex ON ex.project = pr.id" \
	" WHERE pr.on_exhausted = 'cancel'"                                                      \
	" UNION ALL"                                                                             \
	" SELECT r.job_id, pr.id, f.id, 'factory', ex.period, f.grace_seconds,"                  \
	"  format('AI Factory %s used %s of its %s charged GPU-hours in period %s', f.id,"       \
	"   ex.used_gpu_hours, ex.budget_gpu_hours, ex.period)"                                  \
	" FROM run r JOIN aif.projects pr ON pr.id = r.project_id"                               \
	" JOIN aif.factories f ON f.id = pr.factory_id"                                          \
	" JOIN ex ON ex.project IS NULL AND ex.factory = f.id"                                   \
	" WHERE f.on_exhausted = 'cancel'"                                                       \
	")"

/* Request each job's cancellation once (the shortest grace wins when several budgets apply). */
static const char REQUEST_SQL[] =
	POLICY_CTE
	" INSERT INTO aif.cancellations AS c (cluster, job_id, project_id, factory_id, scope,"
	"  period_id, reason, requested_at, not_before)"
	" SELECT DISTINCT ON (p.job_id) $1, p.job_id, p.project_id, p.factory_id, p.scope,"
	"  p.period, p.reason, now(), now() + make_interval(secs => p.grace)"
	" FROM pol p ORDER BY p.job_id, p.grace, p.scope, p.period"
	" ON CONFLICT (cluster, job_id) DO NOTHING"
	" RETURNING c.job_id, c.project_id, c.reason,"
	"  to_char(c.not_before AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS \"UTC\"'),"
	"  extract(epoch FROM c.not_before - c.requested_at)::bigint";

/*
 * The requests of cluster $1 that are due, with whether the job still runs here and whether
 * the policy still applies to it (the budget may have been raised during the grace).
 */
static const char DUE_SQL[] =
	POLICY_CTE
	" SELECT c.id, c.job_id, c.project_id, c.reason,"
	"  EXISTS (SELECT 1 FROM aif.usage_intervals i WHERE i.cluster = c.cluster"
	"   AND i.job_id = c.job_id AND i.ended_at IS NULL),"
	"  EXISTS (SELECT 1 FROM pol WHERE pol.job_id = c.job_id)"
	" FROM aif.cancellations c"
	" WHERE c.cluster = $1 AND c.done_at IS NULL AND c.not_before <= now()"
	" ORDER BY c.not_before, c.id";

static const char DONE_SQL[] =
	"UPDATE aif.cancellations SET done_at = now(), outcome = $2 WHERE id = $1 AND done_at IS NULL";

/*
 * The reservations of the runs $2/$3 of cluster $1, alive now, moved to end where slurmctld says
 * each run ends, $4 (0: no end), or, past that, up to $5 seconds from now; one the run stands
 * on (an earlier run's, a release's) taken over from the run's start, $6
 * (aif.reservations_follow()).
 */
static const char FOLLOW_SQL[] =
	"SELECT job, project,"
	"  to_char(old_end AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS \"UTC\"'),"
	"  to_char(new_end AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS \"UTC\"'), limit_moved, taken,"
	"  coalesce(run_was::text, '')"
	" FROM aif.reservations_follow($1, $2::bigint[], $3::bigint[], $4::bigint[], $5, $6::bigint[])";

/* Reservations nothing else would release (aif.reservations_expire()). */
static const char EXPIRE_SQL[] = "SELECT aif.reservations_expire($1)";

/* What a pass makes of one run (job, restart) that has open intervals. */
enum verdict {
	RUN_UNSURE,      /* nothing certain (slurmctld did not answer for it): ask next pass */
	RUN_ALIVE,       /* running or suspended: seen now */
	RUN_ENDING,      /* ended, its epilogs still running (COMPLETING): they may send the end */
	RUN_LATER,       /* slurmctld knows an earlier run only: leave it */
	RUN_ENDED,       /* ended: close at slurmctld's (or slurmdbd's) end time */
	RUN_UNKNOWN,     /* neither slurmctld nor slurmdbd knows the run: close at the last bound */
	RUN_REQUEUED,    /* the job has run again since: close at the last bound */
	RUN_NOT_RUNNING, /* pending again, or ended without an end time: close at the last bound */
};

struct run {
	uint32_t job;
	uint32_t restart;
	enum verdict verdict;
	uint32_t state;   /* slurmctld's job_state */
	uint32_t slurm_restart;
	time_t start;     /* slurmctld's start_time and end_time of its current run */
	time_t end;
	time_t first;     /* the run's first interval start in aif */
	time_t seen;      /* the last time a pass saw it running (0: never) */
	bool unlimited;   /* its time limit is UNLIMITED: no end */
	bool from_slurmdbd; /* RUN_ENDED from slurmdbd's record: slurmctld forgot the job */
};

/* The longest one statement may take before the connection is dropped. */
#define RECONCILE_STATEMENT_MS 20000

struct reconcile {
	char *cluster;
	struct db db;             /* the thread's alone once it runs */
	atomic_uint interval_ms;
	struct waker waker;       /* the thread: a new interval, or stopping */
	bool slurm_down;          /* the last attempt failed: say so once, and when it is back */
	bool hidden_said;         /* the PrivateData=jobs warning was logged */
	time_t dbd_failing_since; /* slurmdbd has not answered since then (0: it answers) */
	time_t dbd_failed_at;     /* the last time it did not answer */
	struct slurmdbd_lookup *dbd; /* a lookup not answered in its pass, still going on */
	void (*jobs_seen)(void *arg, struct db *db, const char *cluster, const job_info_msg_t *jobs);
	void *jobs_seen_arg;
};

/*
 * How long forgotten runs stay open while slurmdbd does not answer (and, after it answers
 * again, while it may still be catching up with what slurmctld queued for it), to be closed at
 * its end times; after that they are closed at the last bound, as without slurmdbd. Meanwhile
 * they count as running, up to now: the wait is short so that this stays small.
 */
#define SLURMDBD_PATIENCE_S 600
/* How long a pass waits for slurmdbd (libslurm itself waits up to 15 minutes). */
#define SLURMDBD_WAIT_MS 15000

/* ---- libslurm ---- */

/* slurmctld did not answer: a warning the first time, then quiet until it answers again. */
static void slurm_failed(struct reconcile *r, const char *what)
{
	int err = slurm_compat_errno();
	struct aif_diag d;

	aif_diag_clear(&d);
	aif_diag_message(&d, "%s", what);
	aif_diag_detail(&d, "slurmctld: %s.", slurm_strerror(err));
	aif_diag_hint(&d, "Open intervals are reconciled and budgets enforced once slurmctld answers; "
			  "aifd tries again at every pass.");
	log_diag(r->slurm_down ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARNING, NULL, &d);
	r->slurm_down = true;
}

static void slurm_answered(struct reconcile *r)
{
	if (r->slurm_down)
		log_info("slurmctld answers again; reconciling with it");
	r->slurm_down = false;
}

static void judge(struct run *run, const slurm_job_info_t *job)
{
	uint32_t base = job->job_state & JOB_STATE_BASE;
	bool completing = (job->job_state & JOB_COMPLETING) != 0;

	run->state = job->job_state;
	run->slurm_restart = job->restart_cnt;
	run->start = job->start_time;
	run->end = job->end_time;
	run->unlimited = job->time_limit == INFINITE || job->time_limit == NO_VAL;
	if (job->restart_cnt > run->restart)
		run->verdict = RUN_REQUEUED;
	else if (job->restart_cnt < run->restart)
		run->verdict = RUN_LATER;
	else if (base == JOB_RUNNING || base == JOB_SUSPENDED)
		run->verdict = RUN_ALIVE;
	else if (completing)
		run->verdict = RUN_ENDING;
	else if (base == JOB_PENDING)
		run->verdict = RUN_NOT_RUNNING; /* holds no allocation, and no later run began */
	else
		run->verdict = job->end_time > 0 ? RUN_ENDED : RUN_NOT_RUNNING;
}

/* A job missing from the list, asked for alone. */
static void judge_alone(struct reconcile *r, struct run *run)
{
	job_info_msg_t *msg = NULL;
	int err;

	if (slurm_compat_load_job(&msg, run->job, SLURMCTLD_SHOW) == 0) {
		/* An array's id answers with all its tasks: the job is the one with this id. */
		const slurm_job_info_t *job = slurmctld_job_of(msg, run->job);

		if (job)
			judge(run, job);
		slurm_free_job_info_msg(msg);
		return;
	}
	err = slurm_compat_errno();
	if (err == ESLURM_INVALID_JOB_ID) {
		run->verdict = RUN_UNKNOWN;
		return;
	}
	slurm_failed(r, "could not load a job from slurmctld");
}

/*
 * Whether slurmctld may hide other users' jobs from aifd: PrivateData=jobs, and aifd neither
 * root nor SlurmUser and seeing no one else's job (a Slurm operator sees them all, but only
 * slurmdbd knows who is one). Hidden jobs then answer "Invalid job id" even when asked for
 * alone, exactly like jobs that are gone.
 */
static bool jobs_hidden(struct reconcile *r, const job_info_msg_t *msg)
{
	uid_t me = getuid();
	slurm_conf_t *conf = NULL;
	bool hidden;
	struct aif_diag d;

	for (uint32_t i = 0; i < msg->record_count; i++)
		if (msg->job_array[i].user_id != me)
			return false;
	if (slurm_load_ctl_conf(0, &conf) != 0) {
		slurm_failed(r, "could not load slurmctld's configuration");
		return true; /* cannot tell: leave the intervals open */
	}
	hidden = (conf->private_data & PRIVATE_DATA_JOBS) && me != 0 && me != conf->slurm_user_id;
	if (hidden && !r->hidden_said) {
		aif_diag_clear(&d);
		aif_diag_message(&d, "slurmctld may hide other users' jobs from aifd (PrivateData=jobs)");
		aif_diag_detail(&d, "aifd runs as uid %lu, neither root nor SlurmUser (uid %lu), and sees no "
				    "other user's job: the intervals of jobs slurmctld does not show are left "
				    "open rather than closed as unknown.",
				(unsigned long)me, (unsigned long)conf->slurm_user_id);
		aif_diag_hint(&d, "Run aifd as SlurmUser, or make its user a Slurm operator.");
		log_diag(LOG_LEVEL_WARNING, NULL, &d);
		r->hidden_said = true;
	}
	slurm_compat_free_conf(conf);
	return hidden;
}

/* slurmctld's jobs for this pass, or NULL when it did not answer. */
static job_info_msg_t *load_jobs(struct reconcile *r)
{
	job_info_msg_t *msg = NULL;

	if (slurm_load_jobs(0, &msg, SLURMCTLD_SHOW) != 0) {
		slurm_failed(r, "could not load the jobs from slurmctld");
		return NULL;
	}
	slurm_answered(r);
	return msg;
}

/* Judge every run from slurmctld's jobs (msg); false when that could not be done. */
static bool judge_runs(struct reconcile *r, const job_info_msg_t *msg, struct run *runs, size_t n)
{
	slurm_job_info_t **index;
	int hidden = -1; /* not known yet */

	index = slurmctld_index(msg);
	if (msg->record_count && !index) {
		log_warning("could not reconcile with slurmctld: out of memory");
		return false;
	}
	for (size_t i = 0; i < n && !waker_stopping(&r->waker); i++) {
		const slurm_job_info_t *found = slurmctld_find(index, msg->record_count, runs[i].job);

		if (found)
			judge(&runs[i], found);
		else
			judge_alone(r, &runs[i]);
	}
	for (size_t i = 0; i < n; i++)
		if (runs[i].verdict == RUN_UNKNOWN) {
			if (hidden < 0)
				hidden = jobs_hidden(r, msg);
			if (hidden)
				runs[i].verdict = RUN_UNSURE;
		}
	free(index);
	return true;
}

/* slurmdbd did not answer: the forgotten runs wait, for at most SLURMDBD_PATIENCE_S. */
static void slurmdbd_failed(struct reconcile *r, struct run *runs, size_t n, size_t k,
			    struct aif_diag *d, time_t now)
{
	bool patient;

	if (!r->dbd_failing_since)
		r->dbd_failing_since = now;
	r->dbd_failed_at = now;
	patient = now - r->dbd_failing_since < SLURMDBD_PATIENCE_S;
	aif_diag_hint(d, patient ? "%zu runs of jobs slurmctld has forgotten stay open until slurmdbd "
				   "answers, to be closed at its end times; after 10 minutes without "
				   "it, at the last time aifd saw them running."
				 : "slurmdbd has not answered for 10 minutes: the %zu runs of jobs "
				   "slurmctld has forgotten are closed at the last time aifd saw them "
				   "running.", k);
	log_diag(LOG_LEVEL_WARNING, NULL, d);
	for (size_t i = 0; i < n && patient; i++)
		if (runs[i].verdict == RUN_UNKNOWN)
			runs[i].verdict = RUN_UNSURE;
}

/*
 * The runs slurmctld does not know, asked of slurmdbd: one that has an ended record there is
 * closed at slurmdbd's times. While slurmdbd does not answer, and for SLURMDBD_PATIENCE_S after
 * (slurmctld may still be sending it what it queued), runs without a record stay open, so that
 * a slurmdbd restart does not cost their exact ends. A lookup that does not answer within the
 * pass goes on in its thread; no other starts until it is over.
 */
static void ask_slurmdbd(struct reconcile *r, struct run *runs, size_t n)
{
	struct slurmdbd_run *ask;
	size_t k = 0;
	struct aif_diag d;
	enum slurmdbd_answer answer;
	time_t now = time(NULL);

	for (size_t i = 0; i < n; i++)
		k += runs[i].verdict == RUN_UNKNOWN;
	if (k == 0)
		return;
	aif_diag_clear(&d);
	if (r->dbd && !slurmdbd_lookup_done(r->dbd)) {
		aif_diag_message(&d, "slurmdbd still has not answered an earlier request");
		slurmdbd_failed(r, runs, n, k, &d, now);
		return;
	}
	slurmdbd_lookup_drop(r->dbd); /* its answer is for the runs of an earlier pass */
	r->dbd = NULL;
	if (!(ask = calloc(k, sizeof(*ask))))
		return; /* out of memory: closed at the last bound, as without slurmdbd */
	k = 0;
	for (size_t i = 0; i < n; i++)
		if (runs[i].verdict == RUN_UNKNOWN)
			ask[k++] = (struct slurmdbd_run){.job = runs[i].job, .first = runs[i].first,
							 .seen = runs[i].seen};
	if (!(r->dbd = slurmdbd_lookup_start(r->cluster, ask, k))) {
		free(ask);
		return;
	}
	answer = slurmdbd_lookup_wait(r->dbd, aif_clock_ms() + SLURMDBD_WAIT_MS, ask, &d);
	if (answer != SLURMDBD_PENDING) {
		slurmdbd_lookup_drop(r->dbd);
		r->dbd = NULL;
	}
	if (answer == SLURMDBD_PENDING) {
		aif_diag_message(&d, "slurmdbd did not answer within %d s", SLURMDBD_WAIT_MS / 1000);
		slurmdbd_failed(r, runs, n, k, &d, now);
	} else if (answer == SLURMDBD_FAILED) {
		slurmdbd_failed(r, runs, n, k, &d, now);
	} else if (answer == SLURMDBD_ANSWERED) {
		bool catching_up = r->dbd_failed_at && now - r->dbd_failed_at < SLURMDBD_PATIENCE_S;

		if (r->dbd_failing_since)
			log_info("slurmdbd answers again");
		r->dbd_failing_since = 0;
		k = 0;
		for (size_t i = 0; i < n; i++) {
			struct run *run = &runs[i];

			if (run->verdict != RUN_UNKNOWN)
				continue;
			if (ask[k].end > 0) {
				run->verdict = RUN_ENDED;
				run->from_slurmdbd = true;
				run->start = ask[k].start;
				run->end = ask[k].end;
				run->state = ask[k].state;
			} else if (catching_up) {
				run->verdict = RUN_UNSURE;
			}
			k++;
		}
	} else {
		r->dbd_failing_since = r->dbd_failed_at = 0; /* no slurmdbd */
	}
	free(ask);
}

/* ---- PostgreSQL ---- */

static bool parse_u32(const char *text, uint32_t *v)
{
	char *end;
	unsigned long long x;

	errno = 0;
	x = strtoull(text, &end, 10);
	if (errno || end == text || *end || x > UINT32_MAX)
		return false;
	*v = (uint32_t)x;
	return true;
}

/* The open runs of this cluster; -1 when they could not be read (logged). */
static int load_runs(struct reconcile *r, struct run **runs, size_t *n)
{
	const char *values[] = {r->cluster};
	PGresult *res = db_exec_want(&r->db, "could not read the open usage intervals",
				     OPEN_RUNS_SQL, 1, values, PGRES_TUPLES_OK);
	size_t rows;

	*runs = NULL;
	*n = 0;
	if (!res)
		return -1;
	rows = (size_t)PQntuples(res);
	if (rows && !(*runs = calloc(rows, sizeof(**runs)))) {
		log_warning("could not reconcile open usage intervals: out of memory");
		PQclear(res);
		return -1;
	}
	for (size_t i = 0; i < rows; i++) {
		struct run *run = &(*runs)[*n];

		/* Not a Slurm job id (someone else wrote it): not ours to close. */
		if (!parse_u32(PQgetvalue(res, (int)i, 0), &run->job) ||
		    !parse_u32(PQgetvalue(res, (int)i, 1), &run->restart))
			continue;
		run->first = (time_t)strtoll(PQgetvalue(res, (int)i, 2), NULL, 10);
		run->seen = (time_t)strtoll(PQgetvalue(res, (int)i, 3), NULL, 10);
		run->verdict = RUN_UNSURE;
		(*n)++;
	}
	PQclear(res);
	return 0;
}

static bool closes(enum verdict v)
{
	return v == RUN_ENDED || v == RUN_UNKNOWN || v == RUN_REQUEUED || v == RUN_NOT_RUNNING;
}

/*
 * Array parameters ("{1,2,NULL}") for the runs that are alive (to record as seen, and their
 * reservations to follow their end) or that close: their jobs, restarts, and slurmctld's start
 * and end times (a closing run's NULL: close at the last bound).
 */
struct arrays {
	struct pg_array jobs, restarts, ends, starts, dbd;
	size_t count;
};

static void arrays_free(struct arrays *a)
{
	pg_array_free(&a->jobs);
	pg_array_free(&a->restarts);
	pg_array_free(&a->ends);
	pg_array_free(&a->starts);
	pg_array_free(&a->dbd);
}

/* values[0..5): jobs, restarts, ends, starts, from slurmdbd; false when out of memory. */
static bool arrays_build(struct arrays *a, const struct run *runs, size_t n, bool alive,
			 const char **values)
{
	a->count = 0;
	pg_array_start(&a->jobs);
	pg_array_start(&a->restarts);
	pg_array_start(&a->ends);
	pg_array_start(&a->starts);
	pg_array_start(&a->dbd);
	for (size_t i = 0; i < n; i++) {
		const struct run *run = &runs[i];

		if (alive ? run->verdict != RUN_ALIVE : !closes(run->verdict))
			continue;
		pg_array_int(&a->jobs, run->job);
		pg_array_int(&a->restarts, run->restart);
		if (run->verdict == RUN_ENDED)
			pg_array_int(&a->ends, run->end);
		else if (run->verdict == RUN_ALIVE && (run->unlimited || run->end > 0))
			pg_array_int(&a->ends, run->unlimited ? 0 : run->end); /* 0: no end */
		else
			pg_array_null(&a->ends);
		if ((run->verdict == RUN_ENDED || run->verdict == RUN_ALIVE) && run->start > 0)
			pg_array_int(&a->starts, run->start);
		else
			pg_array_null(&a->starts);
		pg_array_bool(&a->dbd, run->from_slurmdbd);
		a->count++;
	}
	values[0] = pg_array_end(&a->jobs);
	values[1] = pg_array_end(&a->restarts);
	values[2] = pg_array_end(&a->ends);
	values[3] = pg_array_end(&a->starts);
	values[4] = pg_array_end(&a->dbd);
	return values[0] && values[1] && values[2] && values[3] && values[4];
}

static int cmp_run(const void *a, const void *b)
{
	const struct run *x = a, *y = b;

	if (x->job != y->job)
		return (x->job > y->job) - (x->job < y->job);
	return (x->restart > y->restart) - (x->restart < y->restart);
}

/* One line per interval closed, saying why (runs are sorted by job and restart). */
static void log_closed(const PGresult *res, const struct run *runs, size_t n)
{
	for (int i = 0; i < PQntuples(res); i++) {
		struct run key = {0};
		const struct run *run;
		struct aif_diag d;

		if (!parse_u32(PQgetvalue(res, i, 0), &key.job) ||
		    !parse_u32(PQgetvalue(res, i, 1), &key.restart) ||
		    !(run = bsearch(&key, runs, n, sizeof(*runs), cmp_run)))
			continue;
		aif_diag_clear(&d);
		aif_diag_message(&d, "closed the usage interval of job %s on node %s (restart %s) at %s",
				 PQgetvalue(res, i, 0), PQgetvalue(res, i, 2), PQgetvalue(res, i, 1),
				 PQgetvalue(res, i, 3));
		switch (run->verdict) {
		case RUN_ENDED:
			if (run->from_slurmdbd) {
				aif_diag_detail(&d, "slurmctld no longer knows the job (MinJobAge passed); "
						    "slurmdbd records it %s, run from %lld to %lld (Unix time) "
						    "(end_source reconciled-slurmdbd).",
						slurmctld_state_name(run->state), (long long)run->start,
						(long long)run->end);
				break;
			}
			aif_diag_detail(&d, "slurmctld reports the job %s, ended at %lld (Unix time); "
					    "its end never arrived from the epilog (end_source reconciled-slurm).",
					slurmctld_state_name(run->state), (long long)run->end);
			break;
		case RUN_UNKNOWN:
			aif_diag_detail(&d, "slurmctld does not know the job (MinJobAge passed, or it never "
					    "ran on this cluster), and slurmdbd has no ended record of this run "
					    "or is not used: closed at the last time aifd saw it running, or at "
					    "its start (end_source reconciled-last-seen).");
			break;
		case RUN_REQUEUED:
			aif_diag_detail(&d, "The job was requeued (restart count %" PRIu32 " in slurmctld): "
					    "this run is over, closed at the last time aifd saw it running, or "
					    "at its start (end_source reconciled-last-seen).",
					run->slurm_restart);
			break;
		default:
			aif_diag_detail(&d, "slurmctld reports the job %s, with no end time for this run: "
					    "closed at the last time aifd saw it running, or at its start "
					    "(end_source reconciled-last-seen).",
					slurmctld_state_name(run->state));
			break;
		}
		log_diag(LOG_LEVEL_INFO, NULL, &d);
	}
}

/*
 * The reservations of the alive runs (arr: their jobs, restarts, ends and starts) follow
 * slurmctld's end of each run, a time limit changed since the admission: logged, since that
 * commits GPU-hours whatever the budgets have left; so is an earlier run's (or a release's)
 * reservation taken over by the run after a requeue. A run past its end (OverTimeLimit,
 * suspended) or without one is reserved two passes ahead before its reservation runs out: at
 * debug, as it recurs.
 */
static void follow_reservations(struct reconcile *r, const char *const arr[4])
{
	char step[24];
	const char *values[] = {r->cluster, arr[0], arr[1], arr[2], step, arr[3]};
	PGresult *res;

	snprintf(step, sizeof(step), "%u", 2 * (atomic_load(&r->interval_ms) / 1000 + 1));
	res = db_exec_want(&r->db, "could not move reservations to their jobs' ends", FOLLOW_SQL, 6,
			   values, PGRES_TUPLES_OK);
	for (int i = 0; res && i < PQntuples(res); i++) {
		bool limit = PQgetvalue(res, i, 4)[0] == 't', taken = PQgetvalue(res, i, 5)[0] == 't';
		const char *run_was = PQgetvalue(res, i, 6);
		struct aif_diag d;

		aif_diag_clear(&d);
		aif_diag_message(&d, "the reservation of job %s of project \"%s\" now ends at %s "
				     "(was %s)", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
				 PQgetvalue(res, i, 3), PQgetvalue(res, i, 2));
		if (taken && run_was[0])
			aif_diag_detail(&d, "It was made for an earlier run of the job (restart count "
					    "%s), before a requeue, and the run going on now was admitted "
					    "on it: it is now this run's, from its start, and follows its "
					    "end.", run_was);
		else if (taken)
			aif_diag_detail(&d, "It was made when aifd released the job from waiting, and "
					    "the run going on now was admitted on it: it is now this "
					    "run's, from its start, and follows its end.");
		else if (limit)
			aif_diag_detail(&d, "slurmctld now ends the job's run at another time (its time "
					    "limit was changed, say). The reservation follows whatever the "
					    "budgets have left, since the job runs.");
		else
			aif_diag_detail(&d, "The run goes on past its end in slurmctld, or has none "
					    "(UNLIMITED): it is reserved two reconciliation passes ahead.");
		log_diag(limit || taken ? LOG_LEVEL_INFO : LOG_LEVEL_DEBUG, NULL, &d);
	}
	PQclear(res);
}

/* Step 3: write down what slurmctld said. Returns the number of intervals closed, or -1. */
static int write_verdicts(struct reconcile *r, const struct run *runs, size_t n, time_t seen_at)
{
	struct arrays alive = {0}, closing = {0};
	const char *live[5], *arr[5];
	char seen[24];
	PGresult *res;
	int closed = 0;

	snprintf(seen, sizeof(seen), "%lld", (long long)seen_at);
	if (!arrays_build(&alive, runs, n, true, live) || !arrays_build(&closing, runs, n, false, arr))
		goto oom;
	if (alive.count) {
		const char *values[] = {r->cluster, live[0], live[1], seen};

		res = db_exec_want(&r->db, "could not record the running jobs", SEEN_SQL, 4, values,
				   PGRES_COMMAND_OK);
		if (!res) {
			closed = -1;
			goto out;
		}
		PQclear(res);
	}
	if (closing.count) {
		const char *values[] = {r->cluster, arr[0], arr[1], arr[2], arr[3], arr[4]};

		res = db_exec_want(&r->db, "could not close usage intervals", CLOSE_SQL, 6, values,
				   PGRES_TUPLES_OK);
		if (res) {
			closed = PQntuples(res);
			log_closed(res, runs, n);
			PQclear(res);
		} else {
			closed = -1;
		}
	}
	/* (after the closes: a follow kept waiting for a factory's lock delays nothing else) */
	if (closed >= 0 && alive.count)
		follow_reservations(r, live);
out:
	arrays_free(&alive);
	arrays_free(&closing);
	return closed;
oom:
	arrays_free(&alive);
	arrays_free(&closing);
	log_warning("could not reconcile open usage intervals: out of memory");
	return -1;
}

static void forget_and_flush(struct reconcile *r, int closed)
{
	const char *values[] = {r->cluster};
	PGresult *res = db_exec_want(&r->db, "could not forget finished jobs", FORGET_SQL, 1,
				     values, PGRES_COMMAND_OK);

	PQclear(res);
	/* Closed intervals wait in aif.usage_queue; fold them now rather than when the usage
	 * writer next flushes (reports are exact either way; this keeps them fast). */
	if (closed > 0)
		PQclear(db_exec_want(&r->db, "could not fold usage into the rollups",
				     "SELECT aif.rollup_flush()", 0, NULL, PGRES_TUPLES_OK));
}

/* ---- reservations left behind ---- */

/*
 * A reservation whose span ended more than an hour ago with none of its job's usage open: its
 * run's close never came (its records lost with a node's spool, or unattributed), and it would
 * hold its project's GPU-hours for good.
 */
static void expire_reservations(struct reconcile *r)
{
	const char *values[] = {r->cluster};
	PGresult *res = db_exec_want(&r->db, "could not expire reservations", EXPIRE_SQL, 1, values,
				     PGRES_TUPLES_OK);

	if (res && PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "0") != 0) {
		struct aif_diag d;

		aif_diag_clear(&d);
		aif_diag_message(&d, "released %s reservations that no run's end released",
				 PQgetvalue(res, 0, 0));
		aif_diag_detail(&d, "Their jobs' time limits ended more than an hour ago, and none of "
				    "their usage is open: the records of their runs' ends (or starts) "
				    "never reached the database.");
		aif_diag_hint(&d, "Look for usage records left in the nodes' spools (aifctl spool list).");
		log_diag(LOG_LEVEL_WARNING, NULL, &d);
	}
	PQclear(res);
}

/* ---- on_exhausted: cancel ---- */

static void request_cancellations(struct reconcile *r)
{
	const char *values[] = {r->cluster};
	PGresult *res = db_exec_want(&r->db, "could not request cancellations", REQUEST_SQL, 1,
				     values, PGRES_TUPLES_OK);

	if (!res)
		return;
	for (int i = 0; i < PQntuples(res); i++) {
		struct aif_diag d;

		aif_diag_clear(&d);
		aif_diag_message(&d, "job %s of project \"%s\" is to be cancelled: its budget is exhausted",
				 PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
		aif_diag_detail(&d, "%s; on_exhausted is cancel, with a grace of %s s: not before %s.",
				PQgetvalue(res, i, 2), PQgetvalue(res, i, 4), PQgetvalue(res, i, 3));
		log_diag(LOG_LEVEL_INFO, NULL, &d);
	}
	PQclear(res);
}

/* slurm_kill_job(SIGKILL), as scancel does; the outcome to record, or NULL: try again. */
static const char *cancel_job(uint32_t job, const char *project, const char *reason)
{
	struct aif_diag d;
	int err;

	aif_diag_clear(&d);
	if (slurm_compat_kill_job(job, SIGKILL, 0) == 0) {
		aif_diag_message(&d, "cancelled job %" PRIu32 " of project \"%s\"", job, project);
		aif_diag_detail(&d, "%s; on_exhausted is cancel.", reason);
		log_diag(LOG_LEVEL_INFO, NULL, &d);
		return "cancelled";
	}
	err = slurm_compat_errno();
	if (err == ESLURM_ALREADY_DONE || err == ESLURM_INVALID_JOB_ID) {
		log_info("job %" PRIu32 " of project \"%s\" had already ended when it was to be cancelled",
			 job, project);
		return err == ESLURM_ALREADY_DONE ? "already-ended" : "unknown-job";
	}
	aif_diag_message(&d, "could not cancel job %" PRIu32 " of project \"%s\"", job, project);
	aif_diag_detail(&d, "slurmctld: %s.", slurm_strerror(err));
	if (err == ESLURM_ACCESS_DENIED || err == ESLURM_USER_ID_MISSING)
		aif_diag_hint(&d, "Only root, SlurmUser and Slurm operators may cancel other users' "
				  "jobs: run aifd as SlurmUser. aifd tries again at every pass.");
	else
		aif_diag_hint(&d, "aifd tries again at every pass.");
	log_diag(LOG_LEVEL_WARNING, NULL, &d);
	return NULL;
}

static void carry_out_cancellations(struct reconcile *r, bool slurm_ok)
{
	const char *values[] = {r->cluster};
	PGresult *res = db_exec_want(&r->db, "could not read the cancellations due", DUE_SQL, 1,
				     values, PGRES_TUPLES_OK);

	if (!res)
		return;
	for (int i = 0; i < PQntuples(res) && !waker_stopping(&r->waker); i++) {
		const char *id = PQgetvalue(res, i, 0), *project = PQgetvalue(res, i, 2);
		bool running = PQgetvalue(res, i, 4)[0] == 't', applies = PQgetvalue(res, i, 5)[0] == 't';
		const char *outcome = NULL;
		uint32_t job;

		if (!parse_u32(PQgetvalue(res, i, 1), &job))
			continue;
		if (!running) {
			log_info("job %" PRIu32 " of project \"%s\" ended before its cancellation was due",
				 job, project);
			outcome = "already-ended";
		} else if (!applies) {
			log_info("cancellation of job %" PRIu32 " of project \"%s\" withdrawn: its budget is "
				 "no longer exhausted under on_exhausted: cancel", job, project);
			outcome = "withdrawn";
		} else if (slurm_ok) {
			outcome = cancel_job(job, project, PQgetvalue(res, i, 3));
		}
		if (outcome) {
			const char *done[] = {id, outcome};

			PQclear(db_exec_want(&r->db, "could not record a cancellation", DONE_SQL, 2,
					     done, PGRES_COMMAND_OK));
		}
	}
	PQclear(res);
}

/* ---- the thread ---- */

static void pass(struct reconcile *r)
{
	job_info_msg_t *jobs = NULL;
	struct run *runs;
	size_t n;
	bool slurm_ok;
	int closed = 0;
	/* Before asking: the runs found alive were alive at least at this time. */
	time_t seen_at;

	if (load_runs(r, &runs, &n) < 0)
		return;
	seen_at = time(NULL);
	/* One load for the runs and the pending jobs (jobs_seen): what one squeue costs it. */
	slurm_ok = (jobs = load_jobs(r)) != NULL;
	if (n > 0 && slurm_ok) {
		slurm_ok = judge_runs(r, jobs, runs, n);
		if (slurm_ok && !waker_stopping(&r->waker))
			ask_slurmdbd(r, runs, n);
		if (slurm_ok && !waker_stopping(&r->waker))
			closed = write_verdicts(r, runs, n, seen_at);
	}
	free(runs);
	if (r->db.conn && !waker_stopping(&r->waker)) {
		forget_and_flush(r, closed);
		if (n > 0) /* no running job, nothing to cancel (nor every budget to add up) */
			request_cancellations(r);
		carry_out_cancellations(r, slurm_ok);
		holds_pass(&r->db, r->cluster);
		expire_reservations(r);
		if (jobs && r->jobs_seen && r->db.conn && !waker_stopping(&r->waker))
			r->jobs_seen(r->jobs_seen_arg, &r->db, r->cluster, jobs);
		log_debug("reconciled %zu open runs with slurmctld; %d intervals closed", n, closed);
	}
	slurm_free_job_info_msg(jobs);
}

static void *reconcile_thread(void *arg)
{
	struct reconcile *r = arg;

	while (!waker_stopping(&r->waker)) {
		int64_t started = aif_clock_ms();

		pass(r);
		if (db_retry_at(&r->db) > aif_clock_ms()) { /* the database failed: after its backoff */
			waker_wait(&r->waker, db_retry_at(&r->db));
			continue;
		}
		/* A new interval wakes the wait: the next pass is due that long after this one. */
		while (!waker_stopping(&r->waker) &&
		       waker_wait(&r->waker, started + atomic_load(&r->interval_ms)))
			;
	}
	return NULL;
}

/* Everything reconcile_start() took, the thread stopped first. */
static void reconcile_free(struct reconcile *r)
{
	waker_stop(&r->waker);
	slurmdbd_lookup_drop(r->dbd); /* one still waiting for slurmdbd finishes on its own */
	db_close(&r->db);
	free(r->cluster);
	free(r);
	slurmctld_release();
}

struct reconcile *reconcile_start(const struct reconcile_options *opts)
{
	struct reconcile *r;

	if (slurmctld_acquire() < 0)
		return NULL;
	r = calloc(1, sizeof(*r));
	if (!r) {
		log_error("out of memory");
		slurmctld_release();
		return NULL;
	}
	atomic_init(&r->interval_ms, opts->interval_ms);
	r->jobs_seen = opts->jobs_seen;
	r->jobs_seen_arg = opts->jobs_seen_arg;
	waker_init(&r->waker);
	if (db_init(&r->db, opts->conninfo, "aifd-reconcile", "reconciliation",
		    RECONCILE_STATEMENT_MS) < 0 ||
	    !(r->cluster = strdup(opts->cluster))) {
		log_error("out of memory");
		goto fail;
	}
	if (waker_start(&r->waker, reconcile_thread, r, "the reconciliation thread") < 0)
		goto fail;
	return r;
fail:
	reconcile_free(r);
	return NULL;
}

void reconcile_set_interval(struct reconcile *r, unsigned interval_ms)
{
	if (!r)
		return;
	atomic_store(&r->interval_ms, interval_ms);
	waker_poke(&r->waker);
}

void reconcile_stop(struct reconcile *r)
{
	if (!r)
		return;
	reconcile_free(r); /* the thread first */
}
