#include "decide.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define US_PER_HOUR 3600000000.0

static int cmp_project_id(const void *key, const void *elem)
{
	return strcmp(key, ((const struct snap_project *)elem)->id);
}

static const struct snap_project *find_project(const struct snapshot *s, const char *id)
{
	if (!s->n_projects)
		return NULL;
	return bsearch(id, s->projects, s->n_projects, sizeof(s->projects[0]), cmp_project_id);
}

static bool in_list(const char *const *list, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i], name) == 0)
			return true;
	return false;
}

static bool is_member(const struct snap_project *p, const struct decide_request *req)
{
	if (req->user && in_list(p->users, p->n_users, req->user))
		return true;
	for (size_t i = 0; i < req->n_groups; i++)
		if (in_list(p->groups, p->n_groups, req->groups[i]))
			return true;
	return false;
}

/* 'user "alice"', or 'uid 1234' for a user without a name. */
static const char *user_label(char *buf, size_t size, const struct decide_request *req)
{
	if (req->user)
		snprintf(buf, size, "user \"%s\"", req->user);
	else
		snprintf(buf, size, "uid %lu", (unsigned long)req->uid);
	return buf;
}

static bool on_cluster(const struct snapshot *s, const struct snap_project *p, const char *cluster)
{
	const struct snap_factory *f = &s->factories[p->factory];
	return in_list(f->clusters, f->n_clusters, cluster);
}

/* "a, b, c" into buf, cut with "..." when it does not fit. */
static void join(char *buf, size_t size, const char *const *items, size_t n)
{
	size_t used = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		int w = snprintf(buf + used, size - used, "%s%s", i ? ", " : "", items[i]);
		if (w < 0 || (size_t)w >= size - used) {
			if (size >= 4)
				strcpy(buf + size - 4, "...");
			return;
		}
		used += (size_t)w;
	}
}

/*
 * The decimals GPU-hours are shown with: 2, or as many as a value below 0.01 needs (a budget of
 * 0.004 GPU-hours is allowed), up to 6, the precision of the funder views; never "0" for a
 * value that is not 0.
 */
static int hours_decimals(double h)
{
	int decimals = 2;

	while (decimals < 6 && h != 0 && fabs(h) < pow(10, -decimals))
		decimals++;
	return decimals;
}

const char *decide_hours_field(char *buf, size_t size, double h)
{
	snprintf(buf, size, "%.*f", hours_decimals(h), h);
	return buf;
}

/* GPU-hours for people: rounded down, no trailing zeros ("40012.5", "0.004"). */
static const char *hours(char *buf, size_t size, double h)
{
	int decimals = hours_decimals(h);
	double scale = pow(10, decimals);
	char *dot;

	snprintf(buf, size, "%.*f", decimals, floor(h * scale + 1e-9) / scale);
	dot = strchr(buf, '.');
	if (dot) {
		char *end = buf + strlen(buf) - 1;
		while (end > dot && *end == '0')
			*end-- = '\0';
		if (end == dot)
			*end = '\0';
	}
	return buf;
}

static const char *day(char *buf, size_t size, int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (!gmtime_r(&tt, &tm) || !strftime(buf, size, "%Y-%m-%d", &tm))
		snprintf(buf, size, "@%lld", (long long)t);
	return buf;
}

static const struct snap_budget *budget_for(const struct snap_budget *b, size_t n, size_t period)
{
	for (size_t i = 0; i < n; i++)
		if (b[i].period == period)
			return &b[i];
	return NULL;
}

/*
 * GPU-microseconds of one row at now: the snapshot's figure plus the running GPUs since
 * taken_at, within the period: what aif_report.gpu_us_within() gives their intervals up to now
 * (whole seconds here, whole microseconds there: both exact).
 */
static int64_t row_used_us(const struct snapshot *s, const struct snap_usage *u, int64_t now)
{
	const struct snap_period *per = &s->periods[u->period];
	int64_t from = s->taken_at > per->start ? s->taken_at : per->start;
	int64_t to = now < per->end ? now : per->end;
	int64_t used = u->used_us, running;

	if (to > from && u->running_gpus > 0 &&
	    (__builtin_mul_overflow(u->running_gpus, (to - from) * 1000000, &running) ||
	     __builtin_add_overflow(used, running, &used)))
		used = INT64_MAX; /* no budget holds this much: exhausted */
	return used;
}

/* a + b, at most INT64_MAX (usage only grows). */
static int64_t add_used(int64_t a, int64_t b)
{
	int64_t sum;

	return __builtin_add_overflow(a, b, &sum) ? INT64_MAX : sum;
}

/* GPU-microseconds used in periods[period] by project index proj, or by all projects of factory f. */
static int64_t project_used(const struct snapshot *s, size_t period, size_t proj, int64_t now)
{
	int64_t us = 0;
	for (size_t i = 0; i < s->n_usage; i++)
		if (s->usage[i].period == period && s->usage[i].project == proj)
			us = add_used(us, row_used_us(s, &s->usage[i], now));
	return us;
}

static int64_t factory_used(const struct snapshot *s, size_t period, size_t f, int64_t now)
{
	int64_t us = 0;
	for (size_t i = 0; i < s->n_usage; i++)
		if (s->usage[i].period == period && s->usage[i].project < s->n_projects &&
		    s->projects[s->usage[i].project].factory == f)
			us = add_used(us, row_used_us(s, &s->usage[i], now));
	return us;
}

static double to_hours(int64_t us)
{
	return (double)us / US_PER_HOUR;
}

/*
 * The state of budget b of an owner with policy pol at used_us: 1 exhausted; else the highest
 * warn_at percent reached (-(percent)), or 0. Only the thresholds the snapshot loaded from
 * aif_report.budget_thresholds() are compared: the one definition, which budget_status shares.
 */
static int reached(const struct snap_budget *b, const struct snap_policy *pol, int64_t used_us)
{
	int at = 0;

	if (used_us >= b->exhausted_us)
		return 1;
	for (size_t i = 0; i < pol->n_warn_at && i < SNAP_MAX_WARN_AT; i++)
		if (pol->warn_at[i] > at && used_us >= b->warn_us[i])
			at = pol->warn_at[i];
	return -at;
}

static bool contains(const struct snap_period *p, int64_t now)
{
	return p->start <= now && now < p->end;
}

static int refuse(struct decision *out, enum decide_reason r)
{
	out->verdict = DECIDE_REFUSE;
	out->reason = r;
	return out->verdict;
}

static int exhausted_msg(struct decision *out, const char *who, const char *per, double used,
			 double budget, const char *factory, bool is_factory, const char *project)
{
	char u[32], b[32];
	struct aif_diag *d = &out->diag;
	aif_diag_message(d, "%s has used all its GPU-hours for period %s", who, per);
	if (is_factory) {
		aif_diag_detail(d, "Its projects, \"%s\" among them, used %s of %s charged GPU-hours.", project,
				hours(u, sizeof(u), used), hours(b, sizeof(b), budget));
		aif_diag_hint(d, "Ask your AI Factory (%s) for more GPU-hours, or use a project of another AI Factory.",
			      factory);
		return refuse(out, DECIDE_R_FACTORY_EXHAUSTED);
	}
	aif_diag_detail(d, "Used %s of %s charged GPU-hours.", hours(u, sizeof(u), used),
			hours(b, sizeof(b), budget));
	aif_diag_hint(d, "Ask your AI Factory (%s) for more GPU-hours, or use another project.", factory);
	return refuse(out, DECIDE_R_PROJECT_EXHAUSTED);
}

static void warn_msg(struct decision *out, const char *who, const char *per, double used,
		     double budget, int at, const char *factory, enum decide_reason r)
{
	char u[32], b[32], left[32];
	struct aif_diag *d = &out->diag;
	double pct = floor(used * 1000.0 / budget) / 10.0;
	aif_diag_message(d, "%s has used %.1f%% of its GPU-hours for period %s", who, pct, per);
	aif_diag_detail(d, "Used %s of %s charged GPU-hours, at or above the %d%% warning threshold; %s remain.",
			hours(u, sizeof(u), used), hours(b, sizeof(b), budget), at,
			hours(left, sizeof(left), budget - used));
	aif_diag_hint(d, "Ask your AI Factory (%s) for more GPU-hours before they run out.", factory);
	out->verdict = DECIDE_WARN;
	out->reason = r;
}

/* Step 3 and 4: the budgets of every period that contains now. */
static int check_budgets(const struct snapshot *s, const struct decide_request *req,
			 const struct snap_project *p, struct decision *out)
{
	const struct snap_factory *f = &s->factories[p->factory];
	size_t pi = (size_t)(p - s->projects);
	char who_p[96], who_f[96], a[16], b[16];
	bool any = false;

	snprintf(who_p, sizeof(who_p), "project \"%s\"", p->id);
	snprintf(who_f, sizeof(who_f), "AI Factory \"%s\"", f->id);
	for (size_t i = 0; i < s->n_periods; i++) {
		const struct snap_period *per = &s->periods[i];
		if (!contains(per, req->now))
			continue;
		any = true;
		if (!budget_for(f->budgets, f->n_budgets, i)) {
			bool own = budget_for(p->budgets, p->n_budgets, i) != NULL;
			aif_diag_message(&out->diag, "project \"%s\" has no GPU-hours for period %s", p->id,
					 per->id);
			if (own)
				aif_diag_detail(&out->diag,
						"Its AI Factory \"%s\" has no budget for period %s (%s to %s), so none of its projects has GPU-hours there.",
						f->id, per->id, day(a, sizeof(a), per->start),
						day(b, sizeof(b), per->end));
			else
				aif_diag_detail(&out->diag,
						"Neither the project nor its AI Factory \"%s\" has a budget for period %s (%s to %s).",
						f->id, per->id, day(a, sizeof(a), per->start),
						day(b, sizeof(b), per->end));
			aif_diag_hint(&out->diag, "Ask your AI Factory (%s) for GPU-hours in period %s, or use another project.",
				      f->id, per->id);
			return refuse(out, DECIDE_R_NO_BUDGET);
		}
	}
	if (!any) {
		aif_diag_message(&out->diag, "project \"%s\" has no GPU-hours: no budget period contains %s",
				 p->id, day(a, sizeof(a), req->now));
		aif_diag_hint(&out->diag, "Ask your AI Factory (%s) for a budget for the current period.", f->id);
		return refuse(out, DECIDE_R_NO_BUDGET);
	}
	/* Where the budget reserves, the reservation decides a job's start (exactly, in
	 * PostgreSQL): a job that no longer fits waits for more GPU-hours or a new period, as
	 * Slurm's own limits keep it pending, rather than fail on this snapshot's figures. */
	bool decides = !(req->kind == DECIDE_ADMIT && p->policy.reserve);
	for (size_t i = 0; i < s->n_periods && decides; i++) {
		const struct snap_budget *pb = budget_for(p->budgets, p->n_budgets, i);
		int64_t used;
		if (!contains(&s->periods[i], req->now) || !pb)
			continue;
		used = project_used(s, i, pi, req->now);
		if (reached(pb, &p->policy, used) > 0)
			return exhausted_msg(out, who_p, s->periods[i].id, to_hours(used), pb->gpu_hours,
					     f->id, false, p->id);
	}
	for (size_t i = 0; i < s->n_periods && decides; i++) {
		const struct snap_budget *fb = budget_for(f->budgets, f->n_budgets, i);
		int64_t used;
		if (!contains(&s->periods[i], req->now))
			continue;
		used = factory_used(s, i, p->factory, req->now);
		if (reached(fb, &f->policy, used) > 0)
			return exhausted_msg(out, who_f, s->periods[i].id, to_hours(used), fb->gpu_hours,
					     f->id, true, p->id);
	}
	for (size_t i = 0; i < s->n_periods; i++) {
		const struct snap_budget *pb = budget_for(p->budgets, p->n_budgets, i);
		int64_t used;
		int at;
		if (!contains(&s->periods[i], req->now) || !pb)
			continue;
		used = project_used(s, i, pi, req->now);
		at = -reached(pb, &p->policy, used);
		if (at > 0) {
			warn_msg(out, who_p, s->periods[i].id, to_hours(used), pb->gpu_hours, at, f->id,
				 DECIDE_R_PROJECT_WARNING);
			return out->verdict;
		}
	}
	for (size_t i = 0; i < s->n_periods; i++) {
		const struct snap_budget *fb = budget_for(f->budgets, f->n_budgets, i);
		int64_t used;
		int at;
		if (!contains(&s->periods[i], req->now))
			continue;
		used = factory_used(s, i, p->factory, req->now);
		at = -reached(fb, &f->policy, used);
		if (at > 0) {
			warn_msg(out, who_f, s->periods[i].id, to_hours(used), fb->gpu_hours, at, f->id,
				 DECIDE_R_FACTORY_WARNING);
			return out->verdict;
		}
	}
	return out->verdict;
}

/* Step 1 without a project: the user's only active project usable on this cluster. */
static const struct snap_project *default_project(const struct snapshot *s,
						  const struct decide_request *req,
						  struct decision *out)
{
	const char *cand[8];
	size_t n = 0;
	const struct snap_project *found = NULL;
	char list[256], who[300];

	for (size_t i = 0; i < s->n_projects; i++) {
		const struct snap_project *p = &s->projects[i];
		if (p->retired || !is_member(p, req) || !on_cluster(s, p, req->cluster))
			continue;
		if (n < sizeof(cand) / sizeof(cand[0]))
			cand[n] = p->id;
		n++;
		found = p;
	}
	if (n == 1)
		return found;
	if (n == 0) {
		aif_diag_message(&out->diag, "no project given, and %s is not a member of any project on cluster \"%s\"",
				 user_label(who, sizeof(who), req), req->cluster);
		aif_diag_hint(&out->diag, "Ask your AI Factory to add you to a project; \"aifctl projects\" lists your projects.");
		refuse(out, DECIDE_R_NO_PROJECT);
		return NULL;
	}
	join(list, sizeof(list), cand, n < sizeof(cand) / sizeof(cand[0]) ? n : sizeof(cand) / sizeof(cand[0]));
	aif_diag_message(&out->diag, "no project given, and %s is a member of %zu projects on cluster \"%s\"",
			 user_label(who, sizeof(who), req), n, req->cluster);
	aif_diag_detail(&out->diag, "Candidates: %s%s.", list,
			n > sizeof(cand) / sizeof(cand[0]) ? ", ..." : "");
	aif_diag_hint(&out->diag, "Choose one with --aif-project=NAME or AIF_PROJECT=NAME.");
	refuse(out, DECIDE_R_AMBIGUOUS);
	return NULL;
}

/* Step 1 with a project. */
static const struct snap_project *given_project(const struct snapshot *s,
						const struct decide_request *req,
						struct decision *out)
{
	const struct snap_project *p = find_project(s, req->project);
	const struct snap_factory *f;
	char list[256];

	if (!p) {
		aif_diag_message(&out->diag, "unknown project \"%s\"", req->project);
		aif_diag_hint(&out->diag, "\"aifctl projects\" lists your projects.");
		refuse(out, DECIDE_R_UNKNOWN_PROJECT);
		return NULL;
	}
	out->project = p->id;
	f = &s->factories[p->factory];
	if (p->retired) {
		aif_diag_message(&out->diag, "project \"%s\" is retired", p->id);
		aif_diag_detail(&out->diag, "It is no longer in the budgets of AI Factory \"%s\".", f->id);
		aif_diag_hint(&out->diag, "Use another project; \"aifctl projects\" lists yours.");
		refuse(out, DECIDE_R_RETIRED);
		return NULL;
	}
	if (!is_member(p, req)) {
		char who[300];
		join(list, sizeof(list), req->groups, req->n_groups);
		aif_diag_message(&out->diag, "%s is not a member of project \"%s\"",
				 user_label(who, sizeof(who), req), p->id);
		aif_diag_detail(&out->diag, "Neither the user nor one of its groups (%s) is among the project's members.",
				req->n_groups ? list : "none");
		aif_diag_hint(&out->diag, "Ask your AI Factory (%s) to add you to the project, or use another project.",
			      f->id);
		refuse(out, DECIDE_R_NOT_MEMBER);
		return NULL;
	}
	if (!on_cluster(s, p, req->cluster)) {
		join(list, sizeof(list), f->clusters, f->n_clusters);
		aif_diag_message(&out->diag, "project \"%s\" is not available on cluster \"%s\"", p->id,
				 req->cluster);
		aif_diag_detail(&out->diag, "Its AI Factory \"%s\" runs on: %s.", f->id, list);
		aif_diag_hint(&out->diag, "Submit on one of those clusters, or use another project.");
		refuse(out, DECIDE_R_WRONG_CLUSTER);
		return NULL;
	}
	return p;
}

/* What a reserving project may still commit now: the least, over its and its factory's
 * budgets of the periods containing now, of budget - closed usage - reservations; and the
 * least of those budgets whole, which a job must fit to fit ever. */
static void uncommitted(const struct snapshot *s, const struct snap_project *p, int64_t now,
			struct decision *out)
{
	const struct snap_factory *f = &s->factories[p->factory];
	size_t pi = (size_t)(p - s->projects);

	out->left_period = NULL;
	out->most_us = INT64_MAX;
	for (size_t i = 0; i < s->n_periods; i++) {
		const struct snap_budget *pb = budget_for(p->budgets, p->n_budgets, i);
		const struct snap_budget *fb = budget_for(f->budgets, f->n_budgets, i);
		int64_t mine = 0, all = 0, left;

		if (!contains(&s->periods[i], now) || !fb)
			continue;
		for (size_t k = 0; k < s->n_usage; k++) {
			const struct snap_usage *u = &s->usage[k];

			if (u->period != i || u->project >= s->n_projects ||
			    s->projects[u->project].factory != p->factory)
				continue;
			all = add_used(all, u->committed_us);
			if (u->project == pi)
				mine = add_used(mine, u->committed_us);
		}
		left = fb->exhausted_us - all;
		if (pb && pb->exhausted_us - mine < left)
			left = pb->exhausted_us - mine;
		if (fb->exhausted_us < out->most_us)
			out->most_us = fb->exhausted_us;
		if (pb && pb->exhausted_us < out->most_us)
			out->most_us = pb->exhausted_us;
		if (left < 0)
			left = 0;
		if (!out->left_period || left < out->left_us) {
			out->left_us = left;
			out->left_period = s->periods[i].id;
		}
	}
}

int decide(const struct snapshot *s, const struct decide_request *req, struct decision *out)
{
	const struct snap_project *p;

	memset(out, 0, sizeof(*out));
	out->verdict = DECIDE_OK;
	out->reason = DECIDE_R_OK;
	aif_diag_clear(&out->diag);

	if (req->project && req->project[0])
		p = given_project(s, req, out);
	else
		p = default_project(s, req, out);
	if (!p)
		return out->verdict;
	out->project = p->id;
	out->reserve = p->policy.reserve;

	if (req->sector && req->sector[0]) {
		for (size_t i = 0; i < p->n_sectors; i++)
			if (strcmp(p->sectors[i], req->sector) == 0)
				out->sector = p->sectors[i];
		if (!out->sector) {
			char list[256];
			join(list, sizeof(list), p->sectors, p->n_sectors);
			aif_diag_message(&out->diag, "sector \"%s\" is not allowed for project \"%s\"",
					 req->sector, p->id);
			aif_diag_detail(&out->diag, "Allowed sectors: %s (the first is the default).", list);
			aif_diag_hint(&out->diag, "Use --aif-sector with one of them, or leave it out for the default.");
			return refuse(out, DECIDE_R_BAD_SECTOR);
		}
	} else if (p->n_sectors) {
		out->sector = p->sectors[0];
	} else {
		aif_diag_message(&out->diag, "project \"%s\" has no sectors", p->id);
		aif_diag_hint(&out->diag, "Ask your AI Factory (%s) to fix the project's sectors.",
			      s->factories[p->factory].id);
		return refuse(out, DECIDE_R_BAD_SECTOR);
	}
	if (check_budgets(s, req, p, out) != DECIDE_REFUSE && out->reserve)
		uncommitted(s, p, req->now, out);
	return out->verdict;
}

static const char *state_name(const struct snap_budget *b, const struct snap_policy *pol,
			      int64_t used_us)
{
	int r = reached(b, pol, used_us);

	return r > 0 ? "exhausted" : r < 0 ? "warning" : "ok";
}

size_t decide_status(const struct snapshot *s, const struct decide_request *req, int all,
		     void (*fn)(void *arg, const struct project_status *st), void *arg)
{
	size_t lines = 0;

	for (size_t pi = 0; pi < s->n_projects; pi++) {
		const struct snap_project *p = &s->projects[pi];
		const struct snap_factory *f = &s->factories[p->factory];

		if (p->retired || !on_cluster(s, p, req->cluster) || (!all && !is_member(p, req)))
			continue;
		for (size_t i = 0; i < s->n_periods; i++) {
			const struct snap_budget *pb = budget_for(p->budgets, p->n_budgets, i);
			const struct snap_budget *fb = budget_for(f->budgets, f->n_budgets, i);
			struct project_status st = {p->id, f->id, s->periods[i].id, "project", 0, 0, NULL};

			if (!contains(&s->periods[i], req->now) || (!pb && !fb))
				continue;
			if (pb) {
				int64_t used = project_used(s, i, pi, req->now);

				st.budget_gpu_hours = pb->gpu_hours;
				st.used_gpu_hours = to_hours(used);
				st.state = state_name(pb, &p->policy, used);
			} else {
				st.scope = "factory";
				int64_t used = factory_used(s, i, p->factory, req->now);

				st.budget_gpu_hours = fb->gpu_hours;
				st.used_gpu_hours = to_hours(used);
				st.state = state_name(fb, &f->policy, used);
			}
			fn(arg, &st);
			lines++;
		}
	}
	return lines;
}

bool decide_reason_charges(enum decide_reason r)
{
	switch (r) {
	case DECIDE_R_UNKNOWN_PROJECT:
	case DECIDE_R_RETIRED:
	case DECIDE_R_NOT_MEMBER:
	case DECIDE_R_WRONG_CLUSTER:
	case DECIDE_R_NO_PROJECT:
	case DECIDE_R_AMBIGUOUS:
	case DECIDE_R_BAD_SECTOR:
		return false;
	default:
		return true;
	}
}

bool decide_reason_name_charges(const char *name)
{
	for (enum decide_reason r = DECIDE_R_OK; r <= DECIDE_R_FACTORY_WARNING; r++)
		if (strcmp(decide_reason_name(r), name) == 0)
			return decide_reason_charges(r);
	return false;
}

int decide_charging_reasons(char *buf, size_t size)
{
	size_t len = 0;
	int n;

	for (enum decide_reason r = DECIDE_R_OK; r <= DECIDE_R_FACTORY_WARNING; r++) {
		if (!decide_reason_charges(r))
			continue;
		n = snprintf(buf + len, size - len, "%s%s", len ? "," : "{", decide_reason_name(r));
		if (n < 0 || (size_t)n >= size - len)
			return -1;
		len += (size_t)n;
	}
	n = snprintf(buf + len, size - len, "%s", len ? "}" : "{}");
	return n < 0 || (size_t)n >= size - len ? -1 : 0;
}

const char *decide_verdict_name(enum decide_verdict v)
{
	switch (v) {
	case DECIDE_OK:
		return "ok";
	case DECIDE_WARN:
		return "warn";
	case DECIDE_REFUSE:
		return "refuse";
	}
	return "?";
}

const char *decide_reason_name(enum decide_reason r)
{
	static const char *const names[] = {
		[DECIDE_R_OK] = "ok",
		[DECIDE_R_UNKNOWN_PROJECT] = "unknown-project",
		[DECIDE_R_RETIRED] = "retired",
		[DECIDE_R_NOT_MEMBER] = "not-member",
		[DECIDE_R_WRONG_CLUSTER] = "wrong-cluster",
		[DECIDE_R_NO_PROJECT] = "no-project",
		[DECIDE_R_AMBIGUOUS] = "ambiguous-project",
		[DECIDE_R_BAD_SECTOR] = "bad-sector",
		[DECIDE_R_NO_BUDGET] = "no-budget",
		[DECIDE_R_PROJECT_EXHAUSTED] = "project-exhausted",
		[DECIDE_R_FACTORY_EXHAUSTED] = "factory-exhausted",
		[DECIDE_R_PROJECT_WARNING] = "project-warning",
		[DECIDE_R_FACTORY_WARNING] = "factory-warning",
		[DECIDE_R_PROJECT_CANNOT_AFFORD] = "project-cannot-afford",
		[DECIDE_R_FACTORY_CANNOT_AFFORD] = "factory-cannot-afford",
		[DECIDE_R_NO_TIME_LIMIT] = "no-time-limit",
	};
	if ((size_t)r < sizeof(names) / sizeof(names[0]) && names[r])
		return names[r];
	return "?";
}
