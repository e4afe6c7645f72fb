#include "handler.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <munge.h>

#include "admissions.h"
#include "aif_clock.h"
#include "aif_proto.h"
#include "decide.h"
#include "identity.h"
#include "log.h"
#include "request.h"
#include "reserve.h"

/* What a sender can repeat at will is logged at most every 10 s, the rest counted. */
#define HANDLER_LOG_EVERY_MS 10000
/* Refused submit-time checks, which any user can send at will: at most so many every 10 s. */
#define HANDLER_LOG_CHECKS_BURST 100

enum handler_log_kind {
	HANDLER_LOG_CREDENTIAL, /* a credential MUNGE rejects */
	HANDLER_LOG_REFUSED,    /* an invalid request, another cluster, no permission */
	HANDLER_LOG_UNATTRIBUTED,
	HANDLER_LOG_CHECK_REFUSED, /* a submit-time check refused (information, not a warning) */
	HANDLER_LOG_KINDS
};

static const char *const handler_log_what[HANDLER_LOG_KINDS] = {
	[HANDLER_LOG_CREDENTIAL] = "requests refused for their MUNGE credential",
	[HANDLER_LOG_REFUSED] = "requests refused as invalid, for another cluster or not permitted",
	[HANDLER_LOG_UNATTRIBUTED] = "usage records unattributed (all are in aif.unattributed_intervals)",
	[HANDLER_LOG_CHECK_REFUSED] = "submit-time checks refused (each was answered with why)",
};

struct handler {
	struct log_limit logs[HANDLER_LOG_KINDS];
	char cluster[64];
	uid_t slurm_uid;
	char slurm_user[64];
	char *munge_socket;
	char *conninfo;
	struct refresh *refresh;
	struct store *store;
	struct pool *pool;
};

/* What each worker thread owns: its MUNGE context and its database connection (admissions). */
struct worker {
	munge_ctx_t munge;
	struct db db;
};

/* Encode m as the answer to req and hand req back to the loop. */
static void reply(struct handler *h, struct request *req, struct aif_proto_msg *m)
{
	static const char fallback[] = "AIF/1 error\nmessage=aifd could not encode its answer\n";
	char *out = NULL;
	size_t len = 0;

	if (aif_proto_encode(m, &out, &len) < 0) {
		log_error("connection %llu from %s: could not encode an answer: %s",
			  (unsigned long long)req->conn_id, req->peer, strerror(errno));
		out = strdup(fallback);
		len = out ? sizeof(fallback) - 1 : 0;
	}
	aif_proto_msg_free(m);
	req->response = out;
	req->response_len = len;
	pool_done(h->pool, req);
}

/* Set message, detail and hint of the header from diag (empty parts left out). */
static void set_diag(struct aif_proto_msg *m, const struct aif_diag *diag)
{
	if (diag->message[0])
		aif_proto_set(&m->header, "message", diag->message);
	if (diag->detail[0])
		aif_proto_set(&m->header, "detail", diag->detail);
	if (diag->hint[0])
		aif_proto_set(&m->header, "hint", diag->hint);
}

/* An answer of kind with diag's text; nonce NULL for requests aifd could not read. */
static void reply_diag(struct handler *h, struct request *req, enum aif_proto_kind kind,
		       const char *nonce, const struct aif_diag *diag)
{
	struct aif_proto_msg m;

	aif_proto_msg_init(&m, kind);
	if (nonce)
		aif_proto_set(&m.header, "nonce", nonce);
	set_diag(&m, diag);
	reply(h, req, &m);
}

/*
 * The answer to a request that is not valid: a refusal where its nonce can be echoed (a
 * response without one can only be "error"); usage: none of its records is acknowledged (the
 * sender moves them aside, as it does the records the database refuses).
 */
static void reply_invalid(struct handler *h, struct request *req, enum aif_proto_kind kind,
			  const char *nonce, const struct aif_diag *diag)
{
	struct aif_proto_msg m;

	aif_proto_msg_init(&m, nonce ? AIF_PROTO_REFUSE : AIF_PROTO_ERROR);
	if (nonce)
		aif_proto_set(&m.header, "nonce", nonce);
	if (nonce && kind == AIF_PROTO_USAGE)
		aif_proto_set(&m.header, "acked", "0");
	set_diag(&m, diag);
	reply(h, req, &m);
}

static void log_request(enum log_level level, const struct request *req, uid_t uid,
			const char *what, const struct aif_diag *diag)
{
	char where[200];

	if (!log_enabled(level))
		return;
	snprintf(where, sizeof(where), "connection %llu from %s, uid %lu, %s",
		 (unsigned long long)req->conn_id, req->peer, (unsigned long)uid, what);
	log_diag(level, where, diag);
}

/* A warning of a kind a sender can repeat at will: at most one per HANDLER_LOG_EVERY_MS. */
static void log_limited(struct handler *h, enum handler_log_kind kind, const struct request *req,
			uid_t uid, const char *what, const struct aif_diag *diag)
{
	if (log_limit_pass(&h->logs[kind], aif_clock_ms()))
		log_request(LOG_LEVEL_WARNING, req, uid, what, diag);
}

/* Step 1: the credential. Returns 0 with the payload (free it), or -1 (answered). */
static int authenticate(struct handler *h, munge_ctx_t munge, struct request *req, void **payload,
			int *len, uid_t *uid, gid_t *gid)
{
	munge_err_t e;
	struct aif_diag d;

	*payload = NULL;
	e = munge_decode(req->frame, munge, payload, len, uid, gid);
	if (e == EMUNGE_SUCCESS)
		return 0;
	free(*payload);
	*payload = NULL;
	aif_diag_clear(&d);
	switch (e) {
	case EMUNGE_CRED_REPLAYED:
		aif_diag_message(&d, "request refused: its MUNGE credential was already used");
		aif_diag_detail(&d, "A credential is valid for one request only; this one was replayed.");
		aif_diag_hint(&d, "Clients encode a new credential for every request, also for retries.");
		break;
	case EMUNGE_CRED_EXPIRED:
	case EMUNGE_CRED_REWOUND:
		aif_diag_message(&d, "request refused: its MUNGE credential has %s",
				 e == EMUNGE_CRED_EXPIRED ? "expired" : "a time in the future");
		aif_diag_hint(&d, "Check that the clocks of the sender and of aifd's host agree (NTP).");
		break;
	case EMUNGE_SOCKET:
	case EMUNGE_SNAFU:
	case EMUNGE_NO_MEMORY:
		aif_diag_message(&d, "aifd could not check the request's MUNGE credential");
		aif_diag_detail(&d, "munge: %s.", munge_ctx_strerror(munge) ? munge_ctx_strerror(munge) : munge_strerror(e));
		aif_diag_hint(&d, "Check that munged is running on aifd's host.");
		break;
	default:
		aif_diag_message(&d, "request refused: invalid MUNGE credential");
		aif_diag_detail(&d, "munge: %s.", munge_ctx_strerror(munge) ? munge_ctx_strerror(munge) : munge_strerror(e));
		aif_diag_hint(&d, "Sender and aifd must share the MUNGE key of this cluster.");
		break;
	}
	log_limited(h, HANDLER_LOG_CREDENTIAL, req, (uid_t)-1, "credential refused", &d);
	reply_diag(h, req, AIF_PROTO_ERROR, NULL, &d);
	return -1;
}

static bool privileged(const struct handler *h, uid_t uid)
{
	return uid == 0 || uid == h->slurm_uid;
}

/*
 * The answer to check or admit, from a decision made now or recalled. left_hours (or NULL):
 * a check of a project that reserves, with what it may still commit in left_period.
 */
static void reply_admission(struct handler *h, struct request *req, const char *nonce,
			    const struct admission *adm, const char *left_hours,
			    const char *left_period)
{
	struct aif_proto_msg ans;
	bool allowed = strcmp(adm->verdict, "refuse") != 0;

	aif_proto_msg_init(&ans, !allowed ? AIF_PROTO_REFUSE
				 : strcmp(adm->verdict, "warn") == 0 ? AIF_PROTO_WARN : AIF_PROTO_OK);
	aif_proto_set(&ans.header, "nonce", nonce);
	aif_proto_set(&ans.header, "reason", adm->reason);
	set_diag(&ans, &adm->diag);
	if (allowed) {
		aif_proto_set(&ans.header, "project", adm->project);
		aif_proto_set(&ans.header, "sector", adm->sector);
	}
	if (allowed && left_hours && left_period) {
		aif_proto_set(&ans.header, "admission", "reserve");
		aif_proto_set(&ans.header, "left_gpu_hours", left_hours);
		aif_proto_set(&ans.header, "left_period", left_period);
	}
	reply(h, req, &ans);
}

/*
 * The reservation a reserving admission stands on (reserve.h): its result, or -1 once
 * answered error (no reservation, no admission: kept nowhere, decided next time).
 */
static int reserve_or_error(struct handler *h, struct worker *w, struct request *req,
			    const char *nonce, const char *what, uint64_t job, uint64_t uid,
			    struct admission *adm)
{
	struct aif_diag why;
	int rc = reserve_admission(&w->db, h->cluster, (uint32_t)job, (uint32_t)uid, adm, &why);

	if (rc < 0) {
		log_msg(LOG_LEVEL_WARNING, "%s: not admitted: %s", what, why.message);
		reply_diag(h, req, AIF_PROTO_ERROR, nonce, &why);
	}
	return rc;
}

/*
 * The answer to an admit from the job's kept admission (recalled, or found kept first): a run
 * after a requeue, whose last run's reservation went with that run, reserves again.
 */
static void reply_kept(struct handler *h, struct worker *w, struct request *req,
		       const char *nonce, uint64_t job, uint64_t uid, struct admission *adm)
{
	char what[96];

	log_debug("admission of job %llu (uid %llu): %s, as decided before",
		  (unsigned long long)job, (unsigned long long)uid, adm->verdict);
	snprintf(what, sizeof(what), "admission of job %llu (uid %llu), run again",
		 (unsigned long long)job, (unsigned long long)uid);
	if (strcmp(adm->verdict, "refuse") != 0 && adm->unreserved &&
	    reserve_or_error(h, w, req, nonce, what, job, uid, adm) < 0)
		return;
	if (strcmp(adm->verdict, "refuse") == 0 && adm->unreserved)
		log_msg(LOG_LEVEL_INFO, "%s: %s: %s", what, adm->reason, adm->diag.message);
	reply_admission(h, req, nonce, adm, NULL, NULL);
}

/*
 * check and admit: the decision, on the current snapshot. An admission is decided once per
 * job (admissions.h): a later admit of the same job gets the first answer. A job's first admit
 * costs one statement, keeping the decision; a later one that this aifd remembers
 * (admissions_remembered()), one recalling it; and so does a reserving admission's first, which
 * must not reserve for an admission kept already. A later admit not remembered (another node's
 * at the same moment, after a restart, a long job's step after 4096 later jobs) finds the kept
 * one by trying to keep its own: two statements, and then it is remembered.
 */
static void handle_decision(struct handler *h, struct worker *w, struct request *req,
			    const struct aif_proto_msg *m, uid_t sender, gid_t sender_gid)
{
	const char *nonce = aif_proto_get(&m->header, "nonce");
	struct decide_request dr = {0};
	struct identity id;
	struct decision dec;
	struct admission adm = {0};
	uint64_t job = 0, uid = sender, gid = 0;
	const struct snapshot *snap;
	bool admit = m->kind == AIF_PROTO_ADMIT;
	char what[160], project[128], left[32] = "", left_period[128] = "";
	int reserved = 0;

	if (admit) {
		/* Validated already: present and within range. */
		aif_proto_get_u64(&m->header, "job", UINT32_MAX, &job, NULL);
		aif_proto_get_u64(&m->header, "uid", UINT32_MAX, &uid, NULL);
		aif_proto_get_u64(&m->header, "gid", UINT32_MAX, &gid, NULL);
		if (admissions_remembered(h->cluster, (uint32_t)job, (uint32_t)uid) &&
		    admissions_recall(&w->db, h->cluster, (uint32_t)job, (uint32_t)uid, &adm) == 1) {
			reply_kept(h, w, req, nonce, job, uid, &adm);
			return;
		}
		dr.kind = DECIDE_ADMIT;
		identity_lookup((uid_t)uid, (gid_t)gid, &id);
		snprintf(what, sizeof(what), "admission of job %llu", (unsigned long long)job);
	} else {
		dr.kind = DECIDE_CHECK;
		identity_lookup(sender, sender_gid, &id);
		snprintf(what, sizeof(what), "submit-time check");
	}
	dr.cluster = h->cluster;
	dr.uid = (uid_t)uid;
	dr.user = id.user;
	dr.groups = id.groups;
	dr.n_groups = id.n_groups;
	dr.project = aif_proto_get(&m->header, "project");
	dr.sector = aif_proto_get(&m->header, "sector");
	dr.now = (int64_t)time(NULL);

	snap = refresh_hold(h->refresh);
	decide(snap, &dr, &dec);
	snprintf(adm.verdict, sizeof(adm.verdict), "%s", decide_verdict_name(dec.verdict));
	snprintf(adm.reason, sizeof(adm.reason), "%s", decide_reason_name(dec.reason));
	if (dec.verdict != DECIDE_REFUSE) {
		snprintf(adm.project, sizeof(adm.project), "%s", dec.project);
		snprintf(adm.sector, sizeof(adm.sector), "%s", dec.sector);
	}
	snprintf(project, sizeof(project), "%s", dec.project ? dec.project : "?");
	adm.diag = dec.diag;
	/* decide() sets left_period only for a reserving project it does not refuse */
	if (!admit && dec.left_period) {
		decide_hours_field(left, sizeof(left), (double)dec.left_us / 3600e6);
		snprintf(left_period, sizeof(left_period), "%s", dec.left_period);
	}
	refresh_release(h->refresh);
	/* Named by who asked, from here on. */
	snprintf(what + strlen(what), sizeof(what) - strlen(what), " by %s (uid %llu)",
		 id.user ? id.user : "a user without a name", (unsigned long long)uid);
	identity_free(&id);
	if (admit && dec.verdict != DECIDE_REFUSE && dec.reserve) {
		struct admission kept;

		if (admissions_recall(&w->db, h->cluster, (uint32_t)job, (uint32_t)uid, &kept) == 1) {
			reply_kept(h, w, req, nonce, job, uid, &kept);
			return;
		}
		if ((reserved = reserve_or_error(h, w, req, nonce, what, job, uid, &adm)) < 0)
			return;
	}
	/* The first decision wins; without the database, this one stands alone (logged). A job
	 * that waits is decided again when it starts again. */
	if (admit && reserved != RESERVE_HELD &&
	    admissions_keep(&w->db, h->cluster, (uint32_t)job, (uint32_t)uid, &adm) == 0) {
		reply_kept(h, w, req, nonce, job, uid, &adm); /* kept first: adm is that one */
		return;
	}
	/* (a refused check, which any user can repeat at will, within a limit) */
	if (admit || (strcmp(adm.verdict, "refuse") == 0 &&
		      log_limit_pass(&h->logs[HANDLER_LOG_CHECK_REFUSED], aif_clock_ms())))
		log_msg(LOG_LEVEL_INFO, "%s: %s, project \"%s\"%s%s", what, adm.reason, project,
			adm.diag.message[0] ? ": " : "", adm.diag.message);
	reply_admission(h, req, nonce, &adm, left[0] ? left : NULL, left_period);
}

static void add_status(void *arg, const struct project_status *st)
{
	struct aif_proto_msg *m = arg;
	struct aif_proto_block *r = aif_proto_add_record(m);
	char h[32];

	if (!r)
		return; /* more than AIF_PROTO_MAX_RECORDS lines: the rest is left out */
	aif_proto_set(r, "project", st->project);
	aif_proto_set(r, "factory", st->factory);
	aif_proto_set(r, "period", st->period);
	aif_proto_set(r, "scope", st->scope);

	aif_proto_set(r, "budget_gpu_hours", decide_hours_field(h, sizeof(h), st->budget_gpu_hours));
	aif_proto_set(r, "used_gpu_hours", decide_hours_field(h, sizeof(h), st->used_gpu_hours));
	aif_proto_set(r, "remaining_gpu_hours",
		      decide_hours_field(h, sizeof(h), st->budget_gpu_hours - st->used_gpu_hours));
	aif_proto_set(r, "state", st->state);
}

static void handle_status(struct handler *h, struct request *req, const struct aif_proto_msg *m,
			  uid_t uid, gid_t gid)
{
	struct decide_request dr = {0};
	struct identity id;
	struct aif_proto_msg ans;
	const struct snapshot *snap;

	identity_lookup(uid, gid, &id);
	dr.kind = DECIDE_CHECK;
	dr.cluster = h->cluster;
	dr.uid = uid;
	dr.user = id.user;
	dr.groups = id.groups;
	dr.n_groups = id.n_groups;
	dr.now = (int64_t)time(NULL);
	aif_proto_msg_init(&ans, AIF_PROTO_OK);
	aif_proto_set(&ans.header, "nonce", aif_proto_get(&m->header, "nonce"));
	snap = refresh_hold(h->refresh);
	decide_status(snap, &dr, privileged(h, uid), add_status, &ans);
	refresh_release(h->refresh);
	identity_free(&id);
	reply(h, req, &ans);
}

/* Called by the store's writer thread once the records are committed, or not. */
static void usage_done(void *arg, int status, const struct aif_diag *diag)
{
	struct request *req = arg;
	struct handler *h = req->handler;
	struct aif_proto_msg m;

	if (status != 0) {
		log_request(LOG_LEVEL_WARNING, req, 0, "usage records not stored", diag);
		aif_proto_msg_init(&m, status == STORE_REFUSED ? AIF_PROTO_REFUSE : AIF_PROTO_ERROR);
		aif_proto_set(&m.header, "nonce", req->nonce);
		aif_proto_set(&m.header, "acked", "0");
		set_diag(&m, diag);
		reply(h, req, &m);
		return;
	}
	refresh_poke(h->refresh);
	aif_proto_msg_init(&m, AIF_PROTO_OK);
	aif_proto_set(&m.header, "nonce", req->nonce);
	aif_proto_set_u64(&m.header, "acked", req->records);
	reply(h, req, &m);
}

static bool charges(const struct decision *dec)
{
	return dec->project && dec->sector && decide_reason_charges(dec->reason);
}

/* The same for a kept admission, whose reason is decide_reason_name()'s. */
static bool admission_charges(const struct admission *adm)
{
	return adm->project[0] && adm->sector[0] && decide_reason_name_charges(adm->reason);
}

/* decide() for the record's user and the given project (NULL: the user's only one). */
static void decide_for(const struct handler *h, const struct snapshot *snap,
		       const struct usage_record *u, const struct identity *id, const char *project,
		       const char *sector, struct decision *dec)
{
	struct decide_request dr = {0};

	dr.kind = DECIDE_ADMIT;
	dr.cluster = h->cluster;
	dr.uid = (uid_t)u->uid;
	dr.user = id->user ? id->user : u->user;
	dr.groups = id->groups;
	dr.n_groups = id->n_groups;
	dr.project = project;
	dr.sector = sector;
	/* When the job ran: only for the factory's periods; budgets do not matter here. */
	dr.now = u->start != USAGE_TIME_UNKNOWN ? u->start : u->end;
	decide(snap, &dr, dec);
}

/*
 * The project and sector names records point to until they are queued: copies, so that no
 * snapshot (nor admission) has to be held meanwhile. A request names few distinct pairs:
 * each is copied once, and the copies never move.
 */
struct names {
	size_t n, cap;
	struct name_pair {
		char *project, *sector;
	} **pairs;
};

/* The copy of (project, sector); NULL when out of memory. */
static const struct name_pair *intern(struct names *names, const char *project, const char *sector)
{
	struct name_pair *p;

	for (size_t i = 0; i < names->n; i++)
		if (strcmp(names->pairs[i]->project, project) == 0 &&
		    strcmp(names->pairs[i]->sector, sector) == 0)
			return names->pairs[i];
	if (names->n == names->cap) {
		size_t cap = names->cap ? names->cap * 2 : 4;
		struct name_pair **pairs = realloc(names->pairs, cap * sizeof(*pairs));

		if (!pairs)
			return NULL;
		names->pairs = pairs;
		names->cap = cap;
	}
	p = calloc(1, sizeof(*p));
	if (!p || !(p->project = strdup(project)) || !(p->sector = strdup(sector))) {
		if (p)
			free(p->project);
		free(p);
		return NULL;
	}
	names->pairs[names->n++] = p;
	return p;
}

static void names_free(struct names *names)
{
	for (size_t i = 0; i < names->n; i++) {
		free(names->pairs[i]->project);
		free(names->pairs[i]->sector);
		free(names->pairs[i]);
	}
	free(names->pairs);
}

/* Charge u to (project, sector); false when out of memory. */
static bool charge(struct usage_record *u, struct names *names, const char *project, const char *sector)
{
	const struct name_pair *p = intern(names, project, sector);

	if (!p)
		return false;
	u->project = p->project;
	u->sector = p->sector;
	return true;
}

/* decide_for() on the current snapshot, held for this decision only; dec's names are copied. */
static bool decide_charging(struct handler *h, const struct usage_record *u, const struct identity *id,
			    const char *project, const char *sector, struct decision *dec,
			    struct names *names, const struct name_pair **charged)
{
	const struct snapshot *snap = refresh_hold(h->refresh);

	decide_for(h, snap, u, id, project, sector, dec);
	*charged = charges(dec) ? intern(names, dec->project, dec->sector) : NULL;
	refresh_release(h->refresh);
	return *charged != NULL;
}

/*
 * The admissions a request's records look up: one query per job and uid in a request (a
 * node's spool may send many records of few jobs), whatever its records.
 */
struct admitted {
	size_t n;
	struct admitted_job {
		uint32_t job, uid;
		bool charges;
		struct admission adm;
	} jobs[16]; /* beyond: looked up again */
};

/*
 * Charge u to the project of its job's current admission, if that names one its user may use:
 * 1 charged, 0 not (no such admission), -1 with diag when the admission could not be read: the
 * record must not be charged by a guess meanwhile (the sender keeps it, and sends it again).
 */
static int charge_admitted(const struct handler *h, struct worker *w, struct usage_record *u,
			   struct names *names, struct admitted *cache, struct aif_diag *diag)
{
	struct admitted_job *a = NULL;

	for (size_t i = 0; i < cache->n && !a; i++)
		if (cache->jobs[i].job == u->job && cache->jobs[i].uid == u->uid)
			a = &cache->jobs[i];
	if (!a) {
		struct admitted_job found = {.job = u->job, .uid = u->uid};
		int rc = admissions_recall_charging(&w->db, h->cluster, u->job, u->uid, &found.adm);

		if (rc < 0) {
			aif_diag_clear(diag);
			aif_diag_message(diag, "could not read the admission of job %u", u->job);
			aif_diag_detail(diag, "The project its usage is charged to depends on it; the "
					      "database did not answer.");
			aif_diag_hint(diag, "The node keeps the records and sends them again.");
			return -1;
		}
		found.charges = rc == 1 && admission_charges(&found.adm);
		/* beyond the cache's room, the first slot is used again */
		a = cache->n < sizeof(cache->jobs) / sizeof(cache->jobs[0]) ? &cache->jobs[cache->n++]
									  : &cache->jobs[0];
		*a = found;
	}
	return a->charges && charge(u, names, a->adm.project, a->adm.sector);
}

/*
 * The project and sector a record is charged to, decided here and only here (the store
 * stores what it is given): never one its user may not use, since the project in a record is
 * the prolog's SPANK_AIF_PROJECT, which the user controls. An end is charged to the project of
 * its job's current admission, when it has one: a job is charged to what it was admitted for,
 * and the end's close re-tags its interval, whatever its start named. Then, for an end without
 * admission and for a start: the one sent, when the user may use it; for a start, the
 * admission's (a start costs no admission lookup when what it names charges: the jobs' start
 * rate); the user's only project. When none can be charged, the record is unattributed (u->unattributed: the
 * reason), with diag saying why: the GPUs were used, and the usage is kept
 * (aif.unattributed_intervals), never refused and lost.
 * Neither the user's lookup (NSS) nor the admission's (the database) runs while a snapshot
 * is held: a slow one must not hold up the refresh, and every decision queued behind it.
 * -1 with diag when the admission could not be read, or out of memory.
 */
static int resolve_project(struct handler *h, struct worker *w, struct usage_record *u,
			   struct names *names, struct admitted *cache, struct aif_diag *diag)
{
	bool named = u->project && u->project[0];
	enum decide_reason why = DECIDE_R_OK; /* set wherever nothing charges */
	const struct name_pair *charged = NULL;
	struct decision dec;
	struct identity id;
	int admitted;

	/* An end: its admission's project first (the close re-tags the interval with it). */
	if (u->event == USAGE_END && (admitted = charge_admitted(h, w, u, names, cache, diag)) != 0)
		return admitted > 0 ? 0 : -1;
	/* The record has no gid: the passwd entry's primary group counts. */
	identity_lookup((uid_t)u->uid, (gid_t)-1, &id);
	if (named && !decide_charging(h, u, &id, u->project, u->sector, &dec, names, &charged)) {
		*diag = dec.diag; /* why not the one sent, should nothing else do either */
		why = dec.reason;
	}
	/* A start: the admission's when the one named cannot be charged. */
	if (!charged && u->event == USAGE_START &&
	    (admitted = charge_admitted(h, w, u, names, cache, diag)) != 0) {
		identity_free(&id);
		return admitted > 0 ? 0 : -1;
	}
	if (!charged && !decide_charging(h, u, &id, NULL, NULL, &dec, names, &charged) && !named) {
		*diag = dec.diag;
		why = dec.reason;
	}
	identity_free(&id);
	if (charged) {
		u->project = charged->project;
		u->sector = charged->sector;
	} else if (charges(&dec)) {
		aif_diag_clear(diag); /* it charges, but its names could not be copied */
		aif_diag_message(diag, "aifd is out of memory");
		return -1;
	} else {
		u->unattributed = decide_reason_name(why);
		u->sector = NULL;
	}
	return 0;
}

/* A record aif_proto_validate_request() checked (every field within its range), as the store takes it. */
static void parse_record(const struct aif_proto_block *b, const char *cluster, struct usage_record *u)
{
	uint64_t v;

	memset(u, 0, sizeof(*u));
	u->event = strcmp(aif_proto_get(b, "event"), "end") == 0 ? USAGE_END : USAGE_START;
	u->cluster = cluster;
	aif_proto_get_u64(b, "job", UINT32_MAX, &v, NULL);
	u->job = (uint32_t)v;
	u->node = aif_proto_get(b, "node");
	aif_proto_get_u64(b, "restart", UINT32_MAX, &v, NULL);
	u->restart = (uint32_t)v;
	aif_proto_get_u64(b, "gpus", UINT32_MAX, &v, NULL);
	u->gpus = (uint32_t)v;
	aif_proto_get_u64(b, "uid", UINT32_MAX, &v, NULL);
	u->uid = (uint32_t)v;
	aif_proto_get_u64(b, "time", AIF_PROTO_MAX_TIME, &v, NULL);
	if (u->event == USAGE_START) {
		u->start = (int64_t)v;
	} else {
		u->end = (int64_t)v;
		u->start = USAGE_TIME_UNKNOWN;
		if (aif_proto_get(b, "start")) {
			aif_proto_get_u64(b, "start", AIF_PROTO_MAX_TIME, &v, NULL);
			u->start = (int64_t)v;
		}
	}
	u->project = aif_proto_get(b, "project");
	u->sector = aif_proto_get(b, "sector");
	u->user = aif_proto_get(b, "user");
}

static void handle_usage(struct handler *h, struct worker *w, struct request *req,
			 const struct aif_proto_msg *m)
{
	const char *nonce = aif_proto_get(&m->header, "nonce");
	struct usage_record *recs = calloc(m->nrecords, sizeof(*recs));
	struct names names = {0};
	struct admitted admitted = {0};
	struct aif_diag d, why;
	int rc = 0;

	aif_diag_clear(&d);
	aif_diag_clear(&why);
	if (!recs) {
		aif_diag_message(&d, "aifd is out of memory");
		reply_diag(h, req, AIF_PROTO_ERROR, nonce, &d);
		return;
	}
	for (size_t i = 0; i < m->nrecords && rc == 0; i++) {
		aif_diag_clear(&why);
		parse_record(&m->records[i], h->cluster, &recs[i]);
		if (resolve_project(h, w, &recs[i], &names, &admitted, &why) < 0) {
			d = why;
			rc = -1;
			break;
		}
		if (recs[i].unattributed && log_limit_pass(&h->logs[HANDLER_LOG_UNATTRIBUTED], aif_clock_ms())) {
			log_msg(LOG_LEVEL_WARNING, "usage of job %u on node %s (uid %u) is unattributed (%s): %s",
				recs[i].job, recs[i].node, recs[i].uid, recs[i].unattributed, why.message);
		}
	}
	if (rc == 0) {
		snprintf(req->nonce, sizeof(req->nonce), "%s", nonce);
		req->records = m->nrecords;
		req->handler = h;
		rc = store_submit(h->store, recs, m->nrecords, usage_done, req, &d);
	}
	free(recs);
	names_free(&names);
	if (rc == 0)
		return; /* usage_done() answers */
	log_request(LOG_LEVEL_WARNING, req, 0, "usage records not stored", &d);
	{
		struct aif_proto_msg ans;
		aif_proto_msg_init(&ans, AIF_PROTO_ERROR); /* not stored now: the sender keeps them */
		aif_proto_set(&ans.header, "nonce", nonce);
		aif_proto_set(&ans.header, "acked", "0");
		set_diag(&ans, &d);
		reply(h, req, &ans);
	}
}

static void handle(void *arg, void *thread_state, struct request *req)
{
	struct handler *h = arg;
	struct worker *w = thread_state;
	struct aif_proto_msg m;
	struct aif_diag d;
	void *payload;
	int len;
	uid_t uid;
	gid_t gid;
	const char *nonce, *cluster;

	aif_diag_clear(&d);
	if (!w) {
		aif_diag_message(&d, "aifd could not check the request's MUNGE credential");
		aif_diag_detail(&d, "This worker thread has no MUNGE context (see aifd's log).");
		reply_diag(h, req, AIF_PROTO_ERROR, NULL, &d);
		return;
	}
	if (authenticate(h, w->munge, req, &payload, &len, &uid, &gid) < 0)
		return;
	if (aif_proto_decode(payload, (size_t)len, &m, &d) < 0 ||
	    aif_proto_validate_request(&m, &d) < 0) {
		char why[sizeof(d.message)];
		snprintf(why, sizeof(why), "%s", d.message);
		aif_diag_message(&d, "invalid request: %s", why);
		free(payload);
		log_limited(h, HANDLER_LOG_REFUSED, req, uid, "request refused", &d);
		/* The request is at fault and will be again. */
		nonce = aif_proto_get(&m.header, "nonce");
		if (nonce && !aif_proto_nonce_valid(nonce))
			nonce = NULL;
		reply_invalid(h, req, m.kind, nonce, &d);
		aif_proto_msg_free(&m);
		return;
	}
	free(payload);
	nonce = aif_proto_get(&m.header, "nonce");
	cluster = aif_proto_get(&m.header, "cluster"); /* absent (check, status): this one */
	if (cluster && strcmp(cluster, h->cluster) != 0) {
		aif_diag_message(&d, "request for cluster \"%s\" sent to the aifd of cluster \"%s\"",
				 cluster, h->cluster);
		aif_diag_hint(&d, "Point the plugin's \"server\" setting at this cluster's aifd.");
		log_limited(h, HANDLER_LOG_REFUSED, req, uid, "request refused", &d);
		/* Usage: "error", not "refuse" (kept aside for good on the node): the records are
		 * right, the configuration is not, and they go once it is fixed. */
		reply_diag(h, req, m.kind == AIF_PROTO_USAGE ? AIF_PROTO_ERROR : AIF_PROTO_REFUSE, nonce,
			   &d);
	} else if ((m.kind == AIF_PROTO_ADMIT || m.kind == AIF_PROTO_USAGE) && !privileged(h, uid)) {
		aif_diag_message(&d, "permission denied to %s",
				 m.kind == AIF_PROTO_ADMIT ? "admit jobs" : "record usage");
		aif_diag_detail(&d, "The request came from uid %lu; only root and SlurmUser (%s) may send \"%s\" requests.",
				(unsigned long)uid, h->slurm_user, aif_proto_kind_name(m.kind));
		log_limited(h, HANDLER_LOG_REFUSED, req, uid, "request refused", &d);
		reply_diag(h, req, AIF_PROTO_REFUSE, nonce, &d);
	} else if (m.kind == AIF_PROTO_USAGE) {
		handle_usage(h, w, req, &m);
	} else if (m.kind == AIF_PROTO_STATUS) {
		handle_status(h, req, &m, uid, gid);
	} else {
		handle_decision(h, w, req, &m, uid, gid);
	}
	aif_proto_msg_free(&m);
}

static void thread_stop(void *arg, void *thread_state)
{
	struct worker *w = thread_state;

	(void)arg;
	if (!w)
		return;
	db_close(&w->db);
	if (w->munge)
		munge_ctx_destroy(w->munge);
	free(w);
}

static void *thread_start(void *arg)
{
	struct handler *h = arg;
	struct worker *w = calloc(1, sizeof(*w));

	/* The connection is made at the worker's first admission, not here. */
	if (!w || db_init(&w->db, h->conninfo, "aifd-admissions", "admissions",
			  ADMISSIONS_TIMEOUT_MS) < 0 || !(w->munge = munge_ctx_create())) {
		log_error("could not start a worker: out of memory");
		thread_stop(h, w);
		return NULL;
	}
	if (h->munge_socket && munge_ctx_set(w->munge, MUNGE_OPT_SOCKET, h->munge_socket) != EMUNGE_SUCCESS) {
		log_error("could not set the MUNGE socket \"%s\": %s", h->munge_socket,
			  munge_ctx_strerror(w->munge));
		thread_stop(h, w);
		return NULL;
	}
	return w;
}

void handler_pool_ops(struct handler *h, struct pool_ops *ops)
{
	ops->thread_start = thread_start;
	ops->thread_stop = thread_stop;
	ops->handle = handle;
	ops->arg = h;
}

struct handler *handler_new(const struct handler_settings *settings, struct refresh *refresh,
			    struct store *store)
{
	struct handler *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	for (int kind = 0; kind < HANDLER_LOG_KINDS; kind++)
		log_limit_init(&h->logs[kind], handler_log_what[kind], HANDLER_LOG_EVERY_MS);
	log_limit_burst(&h->logs[HANDLER_LOG_CHECK_REFUSED], LOG_LEVEL_INFO, HANDLER_LOG_CHECKS_BURST);
	snprintf(h->cluster, sizeof(h->cluster), "%s", settings->cluster);
	snprintf(h->slurm_user, sizeof(h->slurm_user), "%s", settings->slurm_user);
	h->slurm_uid = settings->slurm_uid;
	if (settings->munge_socket && settings->munge_socket[0] &&
	    !(h->munge_socket = strdup(settings->munge_socket))) {
		free(h);
		return NULL;
	}
	h->refresh = refresh;
	h->store = store;
	if (!(h->conninfo = strdup(settings->conninfo))) {
		handler_free(h);
		return NULL;
	}
	return h;
}

void handler_set_pool(struct handler *h, struct pool *pool)
{
	h->pool = pool;
}

void handler_free(struct handler *h)
{
	if (h) {
		free(h->conninfo);
		free(h->munge_socket);
		free(h);
	}
}

int64_t handler_log_flush(struct handler *h, int64_t now_ms, int64_t next)
{
	for (int kind = 0; kind < HANDLER_LOG_KINDS; kind++)
		next = log_limit_flush(&h->logs[kind], now_ms, next);
	return next;
}
