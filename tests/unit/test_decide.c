/*
 * Unit tests for daemon/budgets/decide.c: a table of requests against one hand-built snapshot, each
 * with its verdict, reason, resolved project and sector, and the exact message, detail and
 * hint a user would read.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "decide.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define H(h) ((int64_t)((h) * 3600000000.0)) /* GPU-hours -> GPU-microseconds */

/* 2026-11-24 12:00 UTC; the snapshot was taken an hour earlier. */
#define NOW 1795521600
#define TAKEN (NOW - 3600)

enum { P2026, P2026H1, P2026H2, P2027H1 };
static const struct snap_period periods[] = {
	[P2026] = {"2026", 1767225600, 1798761600},
	[P2026H1] = {"2026-h1", 1767225600, 1782864000},
	[P2026H2] = {"2026-h2", 1782864000, 1798761600},
	[P2027H1] = {"2027-h1", 1798761600, 1814400000},
};

/* A budget: its thresholds are set by setup_thresholds(). */
#define B(per, hours) {.period = (per), .gpu_hours = (hours)}
#define WARN(...) .n_warn_at = N(((int[]){__VA_ARGS__})), .warn_at = {__VA_ARGS__}

enum { AI2F, JAIF, LUMI, MIMER };
static const char *const ai2f_clusters[] = {"adastra", "jean-zay"};
static const char *const jaif_clusters[] = {"jupiter"};
static const char *const lumi_clusters[] = {"lumi"};
static const char *const mimer_clusters[] = {"berzelius"};
static struct snap_budget ai2f_budgets[] = {B(P2026, 200000), B(P2026H2, 100000)};
static struct snap_budget jaif_budgets[] = {B(P2026, 5000), B(P2026H2, 1000)};
static struct snap_budget lumi_budgets[] = {B(P2026, 100)}; /* none for 2026-h2 */
static struct snap_budget mimer_budgets[] = {B(P2026, 5000), B(P2026H2, 1000)};

#define FACTORY(fid, ...)                                                            \
	{ .id = #fid, .clusters = fid##_clusters, .n_clusters = N(fid##_clusters),   \
	  .budgets = fid##_budgets, .n_budgets = N(fid##_budgets), .policy = { __VA_ARGS__ } }

static const struct snap_factory factories[] = {
	[AI2F] = FACTORY(ai2f, WARN(80, 95)),
	[JAIF] = FACTORY(jaif, WARN(75, 90)),
	[LUMI] = FACTORY(lumi, WARN(80)),
	[MIMER] = FACTORY(mimer, WARN(50, 90)),
};

/* Projects, sorted by id as decide() requires. */
enum { AUTO, CLIMATE, EDGE, GENOMICS, GRID, LUMI_LLM, LUMI_NOB, MIMER_P, OLD, ROBO, TINY, ZRES };
static const char *const auto_sectors[] = {"automotive", "robotics"};
static const char *const auto_users[] = {"bob"};
static const char *const auto_groups[] = {"auto"};
static struct snap_budget auto_budgets[] = {B(P2026H2, 300)};
static const char *const climate_sectors[] = {"energy"};
static const char *const climate_users[] = {"alice"};
static const char *const edge_sectors[] = {"space"};
static const char *const edge_users[] = {"hank"};
static struct snap_budget edge_budgets[] = {B(P2026H2, 100)};
static const char *const genomics_sectors[] = {"health", "life-sciences"};
static const char *const genomics_users[] = {"alice"};
static const char *const genomics_groups[] = {"genomics"};
static struct snap_budget genomics_budgets[] = {B(P2026H2, 40000)};
static const char *const grid_sectors[] = {"energy"};
static const char *const grid_users[] = {"carol"};
static struct snap_budget grid_budgets[] = {B(P2026H2, 1000)};
static const char *const lumi_llm_sectors[] = {"language"};
static const char *const lumi_users[] = {"alice"};
static struct snap_budget lumi_llm_budgets[] = {B(P2026H2, 10)};
static const char *const mimer_sectors[] = {"space"};
static const char *const mimer_users[] = {"dave"};
static const char *const robo_sectors[] = {"robotics"};
static const char *const robo_users[] = {"gina"};
static struct snap_budget robo_budgets[] = {B(P2026, 500), B(P2026H2, 1000)};
static const char *const tiny_users[] = {"ivan"};
static struct snap_budget tiny_budgets[] = {B(P2026H2, 0.004)}; /* below 0.01: the YAML allows it */
static struct snap_budget zres_budgets[] = {B(P2026H2, 100)};

#define LIST(field, a) .field = a, .n_##field = N(a)
static const struct snap_project projects[] = {
	[AUTO] = {"auto-perception", AI2F, LIST(sectors, auto_sectors), LIST(users, auto_users),
		  LIST(groups, auto_groups), .policy = {WARN(80, 95)}, LIST(budgets, auto_budgets)},
	[CLIMATE] = {"climate", JAIF, LIST(sectors, climate_sectors), LIST(users, climate_users),
		     .policy = {WARN(75, 90)}},
	[EDGE] = {"edge", AI2F, LIST(sectors, edge_sectors), LIST(users, edge_users),
		  .policy = {WARN(80, 95)}, LIST(budgets, edge_budgets)},
	[GENOMICS] = {"genomics-eu", AI2F, LIST(sectors, genomics_sectors), LIST(users, genomics_users),
		      LIST(groups, genomics_groups), .policy = {WARN(80, 95)},
		      LIST(budgets, genomics_budgets)},
	[GRID] = {"grid-ai", AI2F, LIST(sectors, grid_sectors), LIST(users, grid_users),
		  .policy = {WARN(80, 95)}, LIST(budgets, grid_budgets)},
	[LUMI_LLM] = {"lumi-llm", LUMI, LIST(sectors, lumi_llm_sectors), LIST(users, lumi_users),
		      .policy = {WARN(80)}, LIST(budgets, lumi_llm_budgets)},
	[LUMI_NOB] = {"lumi-nob", LUMI, LIST(sectors, lumi_llm_sectors), LIST(users, lumi_users),
		      .policy = {WARN(80)}},
	[MIMER_P] = {"mimer-p", MIMER, LIST(sectors, mimer_sectors), LIST(users, mimer_users),
		     .policy = {WARN(50, 90)}},
	[OLD] = {"old-proj", AI2F, .retired = true, LIST(users, genomics_users)},
	[ROBO] = {"robo", AI2F, LIST(sectors, robo_sectors), LIST(users, robo_users),
		  .policy = {WARN(80, 95)}, LIST(budgets, robo_budgets)},
	[TINY] = {"tiny", AI2F, LIST(sectors, robo_sectors), LIST(users, tiny_users),
		  .policy = {WARN(80, 95)}, LIST(budgets, tiny_budgets)},
	[ZRES] = {"zreserve", AI2F, LIST(sectors, robo_sectors), LIST(users, tiny_users),
		  .policy = {WARN(80, 95), .reserve = true}, LIST(budgets, zres_budgets)},
};

static const struct snap_usage usage[] = {
	{P2026, AUTO, H(100), 0, 0},          {P2026H2, AUTO, H(100), 0, 0},
	{P2026, CLIMATE, H(1000.5), 0, 0},    {P2026H2, CLIMATE, H(1000.5), 0, 0},
	{P2026, EDGE, H(100), 0, 0},          {P2026H2, EDGE, H(100), 0, 0},
	{P2026, GENOMICS, H(40012.5), 0, 0},  {P2026H2, GENOMICS, H(40012.5), 0, 0},
	/* 800 GPU-hours at TAKEN, 50 GPUs running since: 850 at NOW. */
	{P2026, GRID, H(800), 50, 0},         {P2026H2, GRID, H(800), 50, H(99950)},
	{P2027H1, GRID, 0, 50, 0},
	{P2026, MIMER_P, H(600), 0, 0},       {P2026H2, MIMER_P, H(600), 0, 0},
	{P2026H1, ROBO, H(300), 0, 0},        {P2026, ROBO, H(500), 0, 0},
	{P2026H2, ROBO, H(200), 0, 0},
	{P2026H2, TINY, H(0.005), 0, 0},
	/* zreserve: 10 GPU-hours used, 20 reserved: 30 committed. */
	{P2026, ZRES, H(10), 0, H(30)},    {P2026H2, ZRES, H(10), 0, H(30)},
};

static const struct snapshot snap = {
	.taken_at = TAKEN,
	.periods = periods, .n_periods = N(periods),
	.factories = factories, .n_factories = N(factories),
	.projects = projects, .n_projects = N(projects),
	.usage = usage, .n_usage = N(usage),
};

struct row {
	const char *what;
	enum decide_kind kind;
	const char *cluster, *user, *groups[3], *project, *sector;
	int64_t now; /* 0: NOW */
	enum decide_verdict verdict;
	enum decide_reason reason;
	const char *want_project, *want_sector, *message, *detail, *hint;
};

#define ASK_AI2F "Ask your AI Factory (ai2f) for more GPU-hours, or use another project."

static const struct row rows[] = {
	{"ok, default sector", DECIDE_CHECK, "jean-zay", "bob", {"bob"}, "auto-perception", NULL, 0,
	 DECIDE_OK, DECIDE_R_OK, "auto-perception", "automotive", "", "", ""},
	{"ok, second sector, at start time", DECIDE_ADMIT, "adastra", "bob", {"bob"}, "auto-perception",
	 "robotics", 0, DECIDE_OK, DECIDE_R_OK, "auto-perception", "robotics", "", "", ""},
	{"ok through a group, without a user name", DECIDE_ADMIT, "adastra", NULL, {"users", "auto"},
	 "auto-perception", NULL, 0, DECIDE_OK, DECIDE_R_OK, "auto-perception", "automotive", "", "", ""},
	{"unknown project", DECIDE_CHECK, "jean-zay", "bob", {"bob"}, "nope", NULL, 0,
	 DECIDE_REFUSE, DECIDE_R_UNKNOWN_PROJECT, NULL, NULL,
	 "unknown project \"nope\"", "", "\"aifctl projects\" lists your projects."},
	{"retired project", DECIDE_CHECK, "jean-zay", "alice", {"alice"}, "old-proj", NULL, 0,
	 DECIDE_REFUSE, DECIDE_R_RETIRED, "old-proj", NULL,
	 "project \"old-proj\" is retired",
	 "It is no longer in the budgets of AI Factory \"ai2f\".",
	 "Use another project; \"aifctl projects\" lists yours."},
	{"not a member", DECIDE_CHECK, "jean-zay", "eve", {"eve", "users"}, "genomics-eu", "health", 0,
	 DECIDE_REFUSE, DECIDE_R_NOT_MEMBER, "genomics-eu", NULL,
	 "user \"eve\" is not a member of project \"genomics-eu\"",
	 "Neither the user nor one of its groups (eve, users) is among the project's members.",
	 "Ask your AI Factory (ai2f) to add you to the project, or use another project."},
	{"not a member, no name, no group", DECIDE_ADMIT, "jean-zay", NULL, {NULL}, "genomics-eu", NULL, 0,
	 DECIDE_REFUSE, DECIDE_R_NOT_MEMBER, "genomics-eu", NULL,
	 "uid 4242 is not a member of project \"genomics-eu\"",
	 "Neither the user nor one of its groups (none) is among the project's members.",
	 "Ask your AI Factory (ai2f) to add you to the project, or use another project."},
	{"not a member comes before the cluster", DECIDE_CHECK, "jupiter", "eve", {"eve"}, "genomics-eu",
	 NULL, 0, DECIDE_REFUSE, DECIDE_R_NOT_MEMBER, "genomics-eu", NULL,
	 "user \"eve\" is not a member of project \"genomics-eu\"",
	 "Neither the user nor one of its groups (eve) is among the project's members.",
	 "Ask your AI Factory (ai2f) to add you to the project, or use another project."},
	{"project not on this cluster", DECIDE_CHECK, "jupiter", "alice", {"alice"}, "genomics-eu", NULL, 0,
	 DECIDE_REFUSE, DECIDE_R_WRONG_CLUSTER, "genomics-eu", NULL,
	 "project \"genomics-eu\" is not available on cluster \"jupiter\"",
	 "Its AI Factory \"ai2f\" runs on: adastra, jean-zay.",
	 "Submit on one of those clusters, or use another project."},
	{"sector not allowed", DECIDE_CHECK, "jean-zay", "alice", {"alice"}, "genomics-eu", "energy", 0,
	 DECIDE_REFUSE, DECIDE_R_BAD_SECTOR, "genomics-eu", NULL,
	 "sector \"energy\" is not allowed for project \"genomics-eu\"",
	 "Allowed sectors: health, life-sciences (the first is the default).",
	 "Use --aif-sector with one of them, or leave it out for the default."},
	{"no project: the only candidate", DECIDE_CHECK, "adastra", "bob", {"bob"}, NULL, NULL, 0,
	 DECIDE_OK, DECIDE_R_OK, "auto-perception", "automotive", "", "", ""},
	{"no project: the only candidate, sector given", DECIDE_CHECK, "adastra", "bob", {"bob"}, "",
	 "robotics", 0, DECIDE_OK, DECIDE_R_OK, "auto-perception", "robotics", "", "", ""},
	{"no project: the only candidate on this cluster", DECIDE_CHECK, "jupiter", "alice", {"alice"},
	 NULL, NULL, 0, DECIDE_REFUSE, DECIDE_R_FACTORY_EXHAUSTED, "climate", "energy",
	 "AI Factory \"jaif\" has used all its GPU-hours for period 2026-h2",
	 "Its projects, \"climate\" among them, used 1000.5 of 1000 charged GPU-hours.",
	 "Ask your AI Factory (jaif) for more GPU-hours, or use a project of another AI Factory."},
	{"no project: no candidate", DECIDE_CHECK, "jean-zay", "eve", {"eve"}, NULL, NULL, 0,
	 DECIDE_REFUSE, DECIDE_R_NO_PROJECT, NULL, NULL,
	 "no project given, and user \"eve\" is not a member of any project on cluster \"jean-zay\"", "",
	 "Ask your AI Factory to add you to a project; \"aifctl projects\" lists your projects."},
	{"no project: retired ones are no candidates", DECIDE_CHECK, "jean-zay", "alice", {"alice"}, NULL,
	 NULL, 0, DECIDE_REFUSE, DECIDE_R_PROJECT_EXHAUSTED, "genomics-eu", "health", NULL, NULL, NULL},
	{"no project: several candidates", DECIDE_CHECK, "lumi", "alice", {"alice"}, NULL, NULL, 0,
	 DECIDE_REFUSE, DECIDE_R_AMBIGUOUS, NULL, NULL,
	 "no project given, and user \"alice\" is a member of 2 projects on cluster \"lumi\"",
	 "Candidates: lumi-llm, lumi-nob.", "Choose one with --aif-project=NAME or AIF_PROJECT=NAME."},
	{"no budget: the factory has none", DECIDE_CHECK, "lumi", "alice", {"alice"}, "lumi-llm", NULL, 0,
	 DECIDE_REFUSE, DECIDE_R_NO_BUDGET, "lumi-llm", "language",
	 "project \"lumi-llm\" has no GPU-hours for period 2026-h2",
	 "Its AI Factory \"lumi\" has no budget for period 2026-h2 (2026-07-01 to 2027-01-01), so none of its projects has GPU-hours there.",
	 "Ask your AI Factory (lumi) for GPU-hours in period 2026-h2, or use another project."},
	{"no budget: neither has one", DECIDE_ADMIT, "lumi", "alice", {"alice"}, "lumi-nob", NULL, 0,
	 DECIDE_REFUSE, DECIDE_R_NO_BUDGET, "lumi-nob", "language",
	 "project \"lumi-nob\" has no GPU-hours for period 2026-h2",
	 "Neither the project nor its AI Factory \"lumi\" has a budget for period 2026-h2 (2026-07-01 to 2027-01-01).",
	 "Ask your AI Factory (lumi) for GPU-hours in period 2026-h2, or use another project."},
	{"no budget: no period now", DECIDE_CHECK, "jean-zay", "bob", {"bob"}, "auto-perception", NULL,
	 1835481600, DECIDE_REFUSE, DECIDE_R_NO_BUDGET, "auto-perception", "automotive",
	 "project \"auto-perception\" has no GPU-hours: no budget period contains 2028-03-01", "",
	 "Ask your AI Factory (ai2f) for a budget for the current period."},
	{"project exhausted", DECIDE_CHECK, "jean-zay", "alice", {"alice"}, "genomics-eu", "health", 0,
	 DECIDE_REFUSE, DECIDE_R_PROJECT_EXHAUSTED, "genomics-eu", "health",
	 "project \"genomics-eu\" has used all its GPU-hours for period 2026-h2",
	 "Used 40012.5 of 40000 charged GPU-hours.", ASK_AI2F},
	{"project exhausted, member through a group, at start time", DECIDE_ADMIT, "adastra", "frank",
	 {"frank", "genomics"}, "genomics-eu", "life-sciences", 0,
	 DECIDE_REFUSE, DECIDE_R_PROJECT_EXHAUSTED, "genomics-eu", "life-sciences",
	 "project \"genomics-eu\" has used all its GPU-hours for period 2026-h2",
	 "Used 40012.5 of 40000 charged GPU-hours.", ASK_AI2F},
	{"project exhausted: a budget below 0.01 GPU-hours does not read as 0", DECIDE_CHECK, "jean-zay",
	 "ivan", {"ivan"}, "tiny", NULL, 0, DECIDE_REFUSE, DECIDE_R_PROJECT_EXHAUSTED, "tiny", "robotics",
	 "project \"tiny\" has used all its GPU-hours for period 2026-h2",
	 "Used 0.005 of 0.004 charged GPU-hours.", ASK_AI2F},
	{"project exhausted: used == budget", DECIDE_CHECK, "jean-zay", "hank", {"hank"}, "edge", NULL, 0,
	 DECIDE_REFUSE, DECIDE_R_PROJECT_EXHAUSTED, "edge", "space",
	 "project \"edge\" has used all its GPU-hours for period 2026-h2",
	 "Used 100 of 100 charged GPU-hours.", ASK_AI2F},
	{"project exhausted in one of two overlapping periods", DECIDE_CHECK, "jean-zay", "gina", {"gina"},
	 "robo", NULL, 0, DECIDE_REFUSE, DECIDE_R_PROJECT_EXHAUSTED, "robo", "robotics",
	 "project \"robo\" has used all its GPU-hours for period 2026",
	 "Used 500 of 500 charged GPU-hours.", ASK_AI2F},
	{"factory exhausted", DECIDE_ADMIT, "jupiter", "alice", {"alice"}, "climate", NULL, 0,
	 DECIDE_REFUSE, DECIDE_R_FACTORY_EXHAUSTED, "climate", "energy",
	 "AI Factory \"jaif\" has used all its GPU-hours for period 2026-h2",
	 "Its projects, \"climate\" among them, used 1000.5 of 1000 charged GPU-hours.",
	 "Ask your AI Factory (jaif) for more GPU-hours, or use a project of another AI Factory."},
	{"running jobs push a project over its budget", DECIDE_CHECK, "jean-zay", "carol", {"carol"},
	 "grid-ai", NULL, NOW + 4 * 3600, DECIDE_REFUSE, DECIDE_R_PROJECT_EXHAUSTED, "grid-ai", "energy",
	 "project \"grid-ai\" has used all its GPU-hours for period 2026-h2",
	 "Used 1050 of 1000 charged GPU-hours.", ASK_AI2F},
	{"project warning, running jobs counted up to now", DECIDE_CHECK, "jean-zay", "carol", {"carol"},
	 "grid-ai", NULL, 0, DECIDE_WARN, DECIDE_R_PROJECT_WARNING, "grid-ai", "energy",
	 "project \"grid-ai\" has used 85.0% of its GPU-hours for period 2026-h2",
	 "Used 850 of 1000 charged GPU-hours, at or above the 80% warning threshold; 150 remain.",
	 "Ask your AI Factory (ai2f) for more GPU-hours before they run out."},
	{"project warning: the highest threshold reached", DECIDE_CHECK, "jean-zay", "carol", {"carol"},
	 "grid-ai", NULL, NOW + 2 * 3600, DECIDE_WARN, DECIDE_R_PROJECT_WARNING, "grid-ai", "energy",
	 "project \"grid-ai\" has used 95.0% of its GPU-hours for period 2026-h2",
	 "Used 950 of 1000 charged GPU-hours, at or above the 95% warning threshold; 50 remain.",
	 "Ask your AI Factory (ai2f) for more GPU-hours before they run out."},
	{"factory warning", DECIDE_CHECK, "berzelius", "dave", {"dave"}, "mimer-p", "space", 0,
	 DECIDE_WARN, DECIDE_R_FACTORY_WARNING, "mimer-p", "space",
	 "AI Factory \"mimer\" has used 60.0% of its GPU-hours for period 2026-h2",
	 "Used 600 of 1000 charged GPU-hours, at or above the 50% warning threshold; 400 remain.",
	 "Ask your AI Factory (mimer) for more GPU-hours before they run out."},
};

static void test_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < N(rows); i++) {
		const struct row *r = &rows[i];
		struct decide_request req = {
			.kind = r->kind,
			.cluster = r->cluster,
			.uid = 4242,
			.user = r->user,
			.groups = r->groups,
			.project = r->project,
			.sector = r->sector,
			.now = r->now ? r->now : NOW,
		};
		struct decision d;
		int v;

		while (req.n_groups < N(r->groups) && r->groups[req.n_groups])
			req.n_groups++;
		v = decide(&snap, &req, &d);
		print_message("%s: %s %s/%s: %s | %s | %s\n", r->what, decide_verdict_name(d.verdict),
			      d.project ? d.project : "-", d.sector ? d.sector : "-", d.diag.message,
			      d.diag.detail, d.diag.hint);
		assert_int_equal(v, d.verdict);
		assert_string_equal(decide_verdict_name(d.verdict), decide_verdict_name(r->verdict));
		assert_string_equal(decide_reason_name(d.reason), decide_reason_name(r->reason));
		if (r->want_project)
			assert_string_equal(d.project, r->want_project);
		else
			assert_null(d.project);
		if (r->want_sector)
			assert_string_equal(d.sector, r->want_sector);
		else
			assert_null(d.sector);
		if (r->message) {
			assert_string_equal(d.diag.message, r->message);
			assert_string_equal(d.diag.detail, r->detail);
			assert_string_equal(d.diag.hint, r->hint);
		}
	}
}

/* Every reason of decide.h appears in the table, so each one has its test. */
static void test_every_reason_tested(void **state)
{
	(void)state;
	for (int reason = DECIDE_R_OK; reason <= DECIDE_R_FACTORY_WARNING; reason++) {
		bool seen = false;
		for (size_t i = 0; i < N(rows); i++)
			seen |= (int)rows[i].reason == reason;
		if (!seen)
			fail_msg("reason %s has no row", decide_reason_name(reason));
		assert_string_not_equal(decide_reason_name(reason), "?");
	}
}

/* A snapshot without anything: every request is refused, none crashes. */
static void test_empty_snapshot(void **state)
{
	static const struct snapshot empty = {.taken_at = NOW};
	struct decide_request req = {.cluster = "jean-zay", .user = "alice", .now = NOW};
	struct decision d;
	(void)state;
	assert_int_equal(decide(&empty, &req, &d), DECIDE_REFUSE);
	assert_int_equal(d.reason, DECIDE_R_NO_PROJECT);
	req.project = "genomics-eu";
	assert_int_equal(decide(&empty, &req, &d), DECIDE_REFUSE);
	assert_int_equal(d.reason, DECIDE_R_UNKNOWN_PROJECT);
}

/* Before the snapshot was taken (a clock behind), running jobs add nothing. */
static void test_now_before_snapshot(void **state)
{
	const char *groups[] = {"carol"};
	struct decide_request req = {.cluster = "jean-zay", .user = "carol", .groups = groups,
				     .n_groups = 1, .project = "grid-ai", .now = TAKEN - 60};
	struct decision d;
	(void)state;
	assert_int_equal(decide(&snap, &req, &d), DECIDE_WARN);
	assert_string_equal(d.diag.message, "project \"grid-ai\" has used 80.0% of its GPU-hours for period 2026-h2");
}

struct status_lines {
	struct project_status line[16];
	size_t n;
};

static void collect(void *arg, const struct project_status *st)
{
	struct status_lines *l = arg;
	assert_true(l->n < N(l->line));
	l->line[l->n++] = *st;
}

/* status: a member's projects on the asking cluster, per current period; own or factory budget. */
static void test_status(void **state)
{
	const char *groups[] = {"users"};
	struct decide_request req = {.kind = DECIDE_CHECK, .cluster = "jean-zay", .user = "alice",
				     .groups = groups, .n_groups = 1, .now = NOW};
	struct status_lines l = {0};

	(void)state;
	assert_int_equal(2, decide_status(&snap, &req, 0, collect, &l));
	assert_string_equal("genomics-eu", l.line[0].project);
	assert_string_equal("2026", l.line[0].period);
	assert_string_equal("factory", l.line[0].scope); /* no budget of its own in 2026 */
	assert_float_equal(200000, l.line[0].budget_gpu_hours, 1e-9);
	/* ai2f's projects in 2026: 100 + 100 + 40012.5 + 850 (50 GPUs for the hour since TAKEN) + 500
	 * + 10 (zreserve) */
	assert_float_equal(41572.5, l.line[0].used_gpu_hours, 1e-6);
	assert_string_equal("ok", l.line[0].state);
	assert_string_equal("2026-h2", l.line[1].period);
	assert_string_equal("project", l.line[1].scope);
	assert_float_equal(40000, l.line[1].budget_gpu_hours, 1e-9);
	assert_float_equal(40012.5, l.line[1].used_gpu_hours, 1e-6);
	assert_string_equal("exhausted", l.line[1].state);

	/* On lumi: lumi-llm (own budget in 2026-h2 only) and lumi-nob (none: its factory's in
	 * 2026; nobody has one in 2026-h2, so no line). */
	req.cluster = "lumi";
	l.n = 0;
	assert_int_equal(3, decide_status(&snap, &req, 0, collect, &l));
	assert_string_equal("lumi-llm", l.line[0].project);
	assert_string_equal("factory", l.line[0].scope);
	assert_string_equal("lumi-llm", l.line[1].project);
	assert_string_equal("2026-h2", l.line[1].period);
	assert_string_equal("project", l.line[1].scope);
	assert_string_equal("ok", l.line[1].state);
	assert_string_equal("lumi-nob", l.line[2].project);
	assert_string_equal("2026", l.line[2].period);

	/* Root: every active project of the cluster, retired ones left out. */
	req.cluster = "jean-zay";
	req.user = "root";
	l.n = 0;
	/* tiny and zreserve: one more project each, two periods */
	assert_int_equal(14, decide_status(&snap, &req, 1, collect, &l));
	for (size_t i = 0; i < l.n; i++)
		assert_string_not_equal("old-proj", l.line[i].project);
}

/* Status fields: 2 decimals, more below 0.01 so that a tiny budget does not read as 0. */
static void test_hours_field(void **state)
{
	static const struct {
		double h;
		const char *want;
	} cases[] = {{0, "0.00"}, {40012.5, "40012.50"}, {0.01, "0.01"}, {0.004, "0.004"},
		     {0.00025, "0.0003"}, {-0.004, "-0.004"}, {0.0000001, "0.000000"}};
	char buf[32];

	(void)state;
	for (size_t i = 0; i < N(cases); i++)
		assert_string_equal(decide_hours_field(buf, sizeof(buf), cases[i].h), cases[i].want);
}

/* Which kept admissions charge their project: by enum, by name, and as the store's array. */
static void test_charging_reasons(void **state)
{
	char buf[512], tiny[8];

	(void)state;
	assert_true(decide_reason_charges(DECIDE_R_OK));
	assert_true(decide_reason_charges(DECIDE_R_PROJECT_EXHAUSTED));
	assert_false(decide_reason_charges(DECIDE_R_NOT_MEMBER));
	assert_true(decide_reason_name_charges("factory-exhausted"));
	assert_false(decide_reason_name_charges("not-member"));
	assert_false(decide_reason_name_charges("no-such-reason"));
	assert_int_equal(0, decide_charging_reasons(buf, sizeof(buf)));
	assert_string_equal("{ok,no-budget,project-exhausted,factory-exhausted,project-warning,factory-warning}", buf);
	assert_int_equal(-1, decide_charging_reasons(tiny, sizeof(tiny)));
}

/*
 * The budgets' thresholds, as the snapshot loads them from aif_report.budget_thresholds()
 * (sql/repeatable/30_budget.sql: whole microseconds, rounded up; the fixtures' figures are
 * exact to well below a microsecond). Each budget array is its owner's alone.
 */
static void set_thresholds(const struct snap_budget *budgets, size_t n, const struct snap_policy *pol)
{
	struct snap_budget *b = (struct snap_budget *)budgets; /* the arrays above are not const */

	for (size_t i = 0; i < n; i++) {
		b[i].exhausted_us = (int64_t)ceil(b[i].gpu_hours * 3600000000.0 - 1e-6);
		for (size_t w = 0; w < pol->n_warn_at; w++)
			b[i].warn_us[w] = (int64_t)ceil(b[i].gpu_hours * pol->warn_at[w] * 36000000.0 - 1e-6);
	}
}

static int setup_thresholds(void **state)
{
	(void)state;
	for (size_t i = 0; i < N(factories); i++)
		set_thresholds(factories[i].budgets, factories[i].n_budgets, &factories[i].policy);
	for (size_t i = 0; i < N(projects); i++)
		set_thresholds(projects[i].budgets, projects[i].n_budgets, &projects[i].policy);
	return 0;
}

/*
 * What a reserving project may still commit, for the submit-time check: in 2026-h2 the project
 * has 100 - 30 = 70 left, but its factory only 100000 - 99950 (grid-ai) - 30 = 20; in 2026,
 * plenty. A project that does not reserve gets none.
 */
static void test_uncommitted(void **state)
{
	struct decide_request req = {.kind = DECIDE_CHECK, .cluster = "adastra", .user = "ivan",
				     .project = "zreserve", .now = NOW};
	struct decision d;

	(void)state;
	assert_int_equal(decide(&snap, &req, &d), DECIDE_OK);
	assert_true(d.reserve);
	assert_non_null(d.left_period);
	assert_string_equal(d.left_period, "2026-h2");
	assert_true(d.left_us == H(20));
	assert_true(d.most_us == H(100)); /* its own 100 in 2026-h2, less than its factory's */
	req.project = "tiny";
	decide(&snap, &req, &d);
	assert_false(d.reserve);
	assert_null(d.left_period);
}

/*
 * A reserving project whose budget this snapshot finds used up: the submit-time check refuses,
 * but a job's admission is left to its reservation (exact, in PostgreSQL), so that a queued
 * job waits for more GPU-hours or a new period rather than fail.
 */
static void test_reserve_exhausted(void **state)
{
	struct snap_usage used_up[N(usage)];
	struct snapshot s = snap;
	struct decide_request req = {.kind = DECIDE_CHECK, .cluster = "adastra", .user = "ivan",
				     .project = "zreserve", .now = NOW};
	struct decision d;

	(void)state;
	memcpy(used_up, usage, sizeof(usage));
	for (size_t i = 0; i < N(used_up); i++)
		if (used_up[i].project == ZRES)
			used_up[i].used_us = H(100);
	s.usage = used_up;
	assert_int_equal(decide(&s, &req, &d), DECIDE_REFUSE);
	assert_int_equal(DECIDE_R_PROJECT_EXHAUSTED, d.reason);
	req.kind = DECIDE_ADMIT;
	req.uid = 1000;
	assert_int_equal(decide(&s, &req, &d), DECIDE_OK);
	assert_true(d.reserve);
	/* one that does not reserve is refused at its admission */
	req.project = "tiny";
	for (size_t i = 0; i < N(used_up); i++)
		if (used_up[i].project == TINY)
			used_up[i].used_us = H(1);
	assert_int_equal(decide(&s, &req, &d), DECIDE_REFUSE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_every_reason_tested),
		cmocka_unit_test(test_empty_snapshot),
		cmocka_unit_test(test_now_before_snapshot),
		cmocka_unit_test(test_status),
		cmocka_unit_test(test_charging_reasons),
		cmocka_unit_test(test_hours_field),
		cmocka_unit_test(test_uncommitted),
		cmocka_unit_test(test_reserve_exhausted),
	};
	return cmocka_run_group_tests(tests, setup_thresholds, NULL);
}
