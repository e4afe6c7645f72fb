/*
 * Unit tests for lib/aif_budgets*.c: the budgets YAML loader and validator.
 * Arguments: the fixtures directory (tests/unit/budgets) and conf/budgets.example.yaml.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "aif_budgets.h"

static const char *fixtures_dir = "tests/unit/budgets";
static const char *example_path = "conf/budgets.example.yaml";

/* ---- collecting what the loader reports ---- */

#define MAX_COLLECTED 64

struct collected {
	size_t n, total;
	struct aif_budgets_issue issues[MAX_COLLECTED];
};

static void collect(const struct aif_budgets_issue *issue, void *arg)
{
	struct collected *c = arg;
	if (c->n < MAX_COLLECTED)
		c->issues[c->n++] = *issue;
	c->total++;
}

/* A site's users and groups, instead of NSS: the tests must not depend on the host. */
static bool fake_user_exists(const char *name, void *arg)
{
	(void)arg;
	return strcmp(name, "alice") == 0 || strcmp(name, "bob") == 0 || strcmp(name, "carol") == 0;
}

static bool fake_group_exists(const char *name, void *arg)
{
	(void)arg;
	return strcmp(name, "genomics") == 0 || strcmp(name, "energy") == 0;
}

static const struct aif_budgets_options fake_nss = {fake_user_exists, fake_group_exists, NULL, NULL, 0};

struct want {
	unsigned line, column;
	const char *message;
	bool warning;
};

#define E(line, column, message) {line, column, message, false}
#define W(line, column, message) {line, column, message, true}
#define MAX_WANTED 8

/* Check every reported issue, in order, and the error count; print all of them on mismatch. */
static bool same_issues(const char *name, int errors, const struct collected *c,
			  const struct want *want)
{
	size_t n_want = 0;
	int want_errors = 0;
	bool same;

	while (n_want < MAX_WANTED && want[n_want].message) {
		want_errors += !want[n_want].warning;
		n_want++;
	}
	same = errors == want_errors && c->n == n_want;
	for (size_t i = 0; same && i < n_want; i++)
		same = c->issues[i].line == want[i].line && c->issues[i].column == want[i].column &&
		       c->issues[i].warning == want[i].warning &&
		       strcmp(c->issues[i].message, want[i].message) == 0;
	if (!same) {
		print_message("case \"%s\": %d errors (expected %d), reported:\n", name, errors,
			      want_errors);
		for (size_t i = 0; i < c->n; i++)
			print_message("  {%u, %u, \"%s\"%s},\n", c->issues[i].line, c->issues[i].column,
				      c->issues[i].message, c->issues[i].warning ? ", true" : "");
	}
	return same;
}

static void expect_issues(const char *name, int errors, const struct collected *c,
			  const struct want *want)
{
	if (!same_issues(name, errors, c, want))
		fail_msg("case \"%s\" does not report what is expected", name);
}

/* ---- pieces of a valid file; each case changes one thing ---- */

#define V "version: 1\n"                             /* line 1 */
#define S "sectors: [health, energy, language]\n"    /* line 2 */
#define P                                            \
	"periods:\n"                                 \
	"  2026-h1: {start: 2026-01-01, end: 2026-07-01}\n" \
	"  2026-h2: {start: 2026-07-01, end: 2027-01-01}\n" /* lines 3-5 */
#define HEAD V S P "factories:\n"                     /* line 6 */
#define V2HEAD "version: 2\n" S P "factories:\n"
#define FACTORY_NB                                   \
	"  - id: ai2f\n"                             \
	"    clusters: [jean-zay]\n" /* lines 7-8 */
#define FACTORY FACTORY_NB "    budgets: {2026-h1: 1000}\n" /* line 9 */
#define PROJECT                                      \
	"    projects:\n"                            \
	"      - id: p1\n"                           \
	"        sectors: [health]\n"                \
	"        members: {users: [alice]}\n" /* lines 10-13 */

#define ID_RULE                                                                                  \
	"ids are 1 to 63 lower-case letters, digits, '.', '_' or '-', starting with a letter or " \
	"digit"
#define EMPTY_FILE "empty file; expected a mapping with keys version, sectors, periods and factories"
#define NOT_A_MAPPING                                                                   \
	"expected a mapping with keys version, sectors, periods and factories at the top " \
	"level, found "
#define FACTORY_KEYS \
	"id, name, clusters, budgets, on_exhausted, grace, warn_at, allow_overcommit, admission, " \
	"projects"
#define GRACE_SYNTAX "expected a duration in whole seconds such as 90s, 30min, 2h or 0 for \"grace\" "

struct bad_case {
	const char *name;
	const char *yaml;
	size_t len; /* 0: strlen(yaml) */
	struct want want[MAX_WANTED];
};

static const struct bad_case bad_cases[] = {
	/* The file as a whole. */
	{"empty", "", 0, {E(0, 0, EMPTY_FILE)}},
	{"only comments", "# nothing yet\n\n", 0, {E(0, 0, EMPTY_FILE)}},
	{"a scalar", "just text\n", 0, {E(1, 1, NOT_A_MAPPING "\"just text\"")}},
	{"a list", "- version: 1\n", 0, {E(1, 1, NOT_A_MAPPING "a list")}},
	{"an empty document", "---\n", 0, {E(2, 1, NOT_A_MAPPING "null")}},
	{"an empty mapping", "{}\n", 0,
	 {E(1, 1, "missing key \"version\" at the top level"),
	  E(1, 1, "missing key \"sectors\" at the top level"),
	  E(1, 1, "missing key \"periods\" at the top level"),
	  E(1, 1, "missing key \"factories\" at the top level")}},
	{"two documents", HEAD FACTORY "---\nversion: 1\n", 0,
	 {E(10, 1, "more than one yaml document; a budgets file holds exactly one")}},
	{"syntax error", V S "periods: {2026-h1: {start: 2026-01-01, end: 2026-07-01}\nfactories: []\n", 0,
	 {E(4, 1, "syntax error: did not find expected ',' or '}' (while parsing a flow mapping at line 3, column 10)")}},
	{"tab indentation", V "\tsectors: []\n", 0,
	 {E(2, 1, "syntax error: found a tab character that violates indentation (while scanning a plain scalar at line 1, column 10)")}},
	{"not utf-8", V "sectors: [h\xff" "alth]\n", 0,
	 {E(2, 12, "invalid input: invalid leading UTF-8 octet (0xff)")}},
	{"raw nul byte", "version: 1\0\n", 12,
	 {E(1, 11, "invalid input: control characters are not allowed (0x00)")}},
	{"escaped nul in a string", V "sectors: [\"a\\0b\"]\n" P "factories:\n" FACTORY, 0,
	 {E(2, 11, "strings must not contain NUL characters")}},
	{"anchor and alias", HEAD "  - id: &f ai2f\n    clusters: [jean-zay]\n    name: *f\n", 0,
	 {E(7, 9, "yaml anchors are not supported (found &f); write each value out in full"),
	  E(9, 11, "yaml aliases are not supported (found *f); write the value out in full")}},
	{"merge key", HEAD "  - <<: {clusters: [x]}\n    id: ai2f\n", 0,
	 {E(7, 5, "yaml merge keys (<<) are not supported; write the keys out in full"),
	  E(7, 5, "missing key \"clusters\" in factory \"ai2f\"")}},
	{"tag", HEAD "  - id: !!str ai2f\n    clusters: [jean-zay]\n", 0,
	 {E(7, 9, "yaml tags are not supported (found !!str); remove the tag")}},
	{"a key that is a list", HEAD FACTORY "? [a, b]\n: c\n", 0,
	 {E(10, 3, "expected a key name at the top level, found a list")}},

	/* Top level. */
	{"version missing", S P "factories:\n" FACTORY, 0,
	 {E(1, 1, "missing key \"version\" at the top level")}},
	{"version 3", "version: 3\n" S P "factories:\n" FACTORY, 0,
	 {E(1, 10, "unsupported schema version 3; this aif reads versions 1 to 2")}},
	{"version 0", "version: 0\n" S P "factories:\n" FACTORY, 0,
	 {E(1, 10, "unsupported schema version 0; this aif reads versions 1 to 2")}},
	{"version huge", "version: 99999999999999999999999\n" S P "factories:\n" FACTORY, 0,
	 {E(1, 10, "unsupported schema version 99999999999999999999999; this aif reads versions 1 to 2")}},
	{"version quoted", "version: \"1\"\n" S P "factories:\n" FACTORY, 0,
	 {E(1, 10, "expected 1 or 2 for \"version\" at the top level, found the string \"1\"")}},
	{"version 1.0", "version: 1.0\n" S P "factories:\n" FACTORY, 0,
	 {E(1, 10, "expected 1 or 2 for \"version\" at the top level, found 1.0")}},
	{"unknown top-level key", HEAD FACTORY "owner: me\n", 0,
	 {E(10, 1, "unknown key \"owner\" at the top level; expected one of: version, sectors, periods, factories")}},
	{"duplicate top-level key", HEAD FACTORY "version: 1\n", 0,
	 {E(10, 1, "duplicate key \"version\" at the top level; first given at line 1")}},

	/* Sectors. */
	{"sectors not a list", V "sectors: health\n" P "factories:\n" FACTORY, 0,
	 {E(2, 10, "expected a list of sector ids for \"sectors\" at the top level, found \"health\"")}},
	{"sectors empty", V "sectors: []\n" P "factories:\n" FACTORY, 0,
	 {E(2, 10, "\"sectors\" at the top level is empty; expected at least one sector id")}},
	{"sector id upper-case", V "sectors: [health, Energy]\n" P "factories:\n" FACTORY, 0,
	 {E(2, 19, "invalid sector id \"Energy\"; " ID_RULE)}},
	{"sector duplicate", V "sectors: [health, health]\n" P "factories:\n" FACTORY, 0,
	 {E(2, 19, "duplicate sector \"health\" at the top level; first given at line 2")}},

	/* Periods. */
	{"periods not a mapping", V S "periods: [2026-h1]\nfactories:\n" FACTORY_NB, 0,
	 {E(3, 10, "expected a mapping of period ids to {start, end} for \"periods\" at the top level, found a list")}},
	{"period id syntax", V S "periods:\n  2026_H1: {start: 2026-01-01, end: 2026-07-01}\nfactories:\n" FACTORY_NB, 0,
	 {E(4, 3, "invalid period id \"2026_H1\"; " ID_RULE)}},
	{"period duplicate", V S "periods:\n  p: {start: 2026-01-01, end: 2026-07-01}\n  p: {start: 2026-07-01, end: 2027-01-01}\nfactories:\n" FACTORY_NB, 0,
	 {E(5, 3, "duplicate period id \"p\"; first given at line 4")}},
	{"period ends before it starts", V S "periods:\n  2026-h1: {start: 2026-07-01, end: 2026-01-01}\nfactories:\n" FACTORY_NB, 0,
	 {E(4, 37, "period \"2026-h1\" ends on 2026-01-01, not after its start 2026-07-01")}},
	{"period of no time", V S "periods:\n  2026-h1: {start: 2026-07-01, end: 2026-07-01}\nfactories:\n" FACTORY_NB, 0,
	 {E(4, 37, "period \"2026-h1\" ends on 2026-07-01, not after its start 2026-07-01")}},
	{"date that does not exist", V S "periods:\n  2026-h1: {start: 2026-02-30, end: 2026-07-01}\nfactories:\n" FACTORY_NB, 0,
	 {E(4, 20, "invalid date 2026-02-30 for \"start\" in period \"2026-h1\": there is no such day")}},
	{"no leap day in 2100", V S "periods:\n  p: {start: 2100-02-29, end: 2100-07-01}\nfactories:\n" FACTORY_NB, 0,
	 {E(4, 14, "invalid date 2100-02-29 for \"start\" in period \"p\": there is no such day")}},
	{"date syntax", V S "periods:\n  2026-h1: {start: 1/1/2026, end: 2026-07-01}\nfactories:\n" FACTORY_NB, 0,
	 {E(4, 20, "expected a date YYYY-MM-DD for \"start\" in period \"2026-h1\", found \"1/1/2026\"")}},
	{"period without end", V S "periods:\n  2026-h1: {start: 2026-01-01, until: 2026-07-01}\nfactories:\n" FACTORY_NB, 0,
	 {E(4, 12, "missing key \"end\" in period \"2026-h1\""),
	  E(4, 32, "unknown key \"until\" in period \"2026-h1\"; expected one of: start, end")}},

	/* Factories. */
	{"factories empty", V S P "factories: []\n", 0,
	 {E(6, 12, "\"factories\" at the top level is empty; expected at least one factory")}},
	{"factory not a mapping", HEAD "  - ai2f\n", 0,
	 {E(7, 5, "expected a mapping for factory #1 in \"factories\", found \"ai2f\"")}},
	{"factory unknown key", HEAD FACTORY "    budget: 5\n", 0,
	 {E(10, 5, "unknown key \"budget\" in factory \"ai2f\"; expected one of: " FACTORY_KEYS)}},
	{"factory duplicate key", HEAD FACTORY "    clusters: [adastra]\n", 0,
	 {E(10, 5, "duplicate key \"clusters\" in factory \"ai2f\"; first given at line 8")}},
	{"factory without id and clusters", HEAD "  - name: France\n", 0,
	 {E(7, 5, "missing key \"id\" in factory #1"), E(7, 5, "missing key \"clusters\" in factory #1")}},
	{"factory id upper-case", HEAD "  - id: AI2F\n    clusters: [jean-zay]\n", 0,
	 {E(7, 9, "invalid factory id \"AI2F\"; " ID_RULE)}},
	{"factory id duplicate", HEAD FACTORY "  - id: ai2f\n    clusters: [adastra]\n", 0,
	 {E(10, 9, "duplicate factory id \"ai2f\"; first given at line 7")}},
	{"factory name null", HEAD FACTORY "    name:\n", 0,
	 {E(10, 10, "expected a non-empty string for \"name\" in factory \"ai2f\", found null")}},
	/* Clusters with their charging (version 2). */
	{"cluster settings in version 1", HEAD "  - id: ai2f\n    clusters: {jean-zay: {rates: {h100: 4}}}\n", 0,
	 {E(8, 15, "settings for each cluster in \"clusters\" of factory \"ai2f\" need version: 2; with version: 1, list the cluster names")}},
	{"clusters empty mapping", V2HEAD "  - id: ai2f\n    clusters: {}\n", 0,
	 {E(8, 15, "\"clusters\" in factory \"ai2f\" is empty; expected at least one slurm cluster name")}},
	{"cluster settings not a mapping", V2HEAD "  - id: ai2f\n    clusters: {jean-zay: [h100]}\n", 0,
	 {E(8, 26, "expected a mapping with keys charge, rates, unrated and share for cluster \"jean-zay\" of factory \"ai2f\", found a list")}},
	{"cluster unknown key", V2HEAD "  - id: ai2f\n    clusters: {jean-zay: {rate: {h100: 4}}}\n", 0,
	 {E(8, 27, "unknown key \"rate\" in cluster \"jean-zay\" of factory \"ai2f\"; expected one of: charge, rates, unrated, share")}},
	{"cluster name syntax in a mapping", V2HEAD "  - id: ai2f\n    clusters: {Jean-Zay: null}\n", 0,
	 {E(8, 16, "invalid cluster name \"Jean-Zay\" in \"clusters\" of factory \"ai2f\"; slurm cluster names are 1 to 63 lower-case letters, digits, '_' or '-', starting with a letter or digit")}},
	{"rates not a mapping", V2HEAD "  - id: ai2f\n    clusters: {jean-zay: {rates: [h100]}}\n", 0,
	 {E(8, 34, "expected a mapping of gpu models to rates for \"rates\" of cluster \"jean-zay\" of factory \"ai2f\", found a list")}},
	{"rate bad values", V2HEAD "  - id: ai2f\n    clusters:\n      jean-zay:\n        rates: {h100: -1, a100: \"2\", v100: .inf, mi250x: 1e7, gh200: 0}\n", 0,
	 {E(10, 23, "expected a rate from 0 to 1000 for gpu model \"h100\" of cluster \"jean-zay\" of factory \"ai2f\", found -1"),
	  E(10, 33, "expected a rate from 0 to 1000 for gpu model \"a100\" of cluster \"jean-zay\" of factory \"ai2f\", found the string \"2\""),
	  E(10, 44, "expected a rate from 0 to 1000 for gpu model \"v100\" of cluster \"jean-zay\" of factory \"ai2f\", found .inf"),
	  E(10, 58, "expected a rate from 0 to 1000 for gpu model \"mi250x\" of cluster \"jean-zay\" of factory \"ai2f\", found 1e7"),
	  W(10, 70, "gpu model \"gh200\" of cluster \"jean-zay\" of factory \"ai2f\" costs nothing: its usage is recorded but never charged")}},
	{"rate model syntax and duplicate", V2HEAD "  - id: ai2f\n    clusters:\n      jean-zay:\n        rates: {h100: 4, gpu:h100: 4, h100: 2}\n", 0,
	 {E(10, 26, "invalid gpu model \"gpu:h100\" in \"rates\" of cluster \"jean-zay\" of factory \"ai2f\"; gpu models are slurm gres types: 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit"),
	  E(10, 39, "duplicate gpu model \"h100\" in \"rates\" of cluster \"jean-zay\" of factory \"ai2f\"; first given at line 10")}},
	{"unrated and share bad", V2HEAD "  - id: ai2f\n    clusters:\n      jean-zay:\n        unrated: high\n        share: {cpus_per_gpu: 0, memory_per_gpu: 80GB, gpus: 1}\n", 0,
	 {E(10, 18, "expected a rate from 0 to 1000 for \"unrated\" of cluster \"jean-zay\" of factory \"ai2f\", found \"high\""),
	  E(11, 31, "expected a whole number of cpus from 1 to 65535 for \"cpus_per_gpu\" in \"share\" of cluster \"jean-zay\" of factory \"ai2f\", found 0"),
	  E(11, 50, "expected a memory size such as 80G, 512M or 1T (MiB without a suffix) for \"memory_per_gpu\" in \"share\" of cluster \"jean-zay\" of factory \"ai2f\", found \"80GB\""),
	  E(11, 56, "unknown key \"gpus\" in \"share\" of cluster \"jean-zay\" of factory \"ai2f\"; expected one of: cpus_per_gpu, memory_per_gpu")}},
	{"share empty", V2HEAD "  - id: ai2f\n    clusters: {jean-zay: {share: {}}}\n", 0,
	 {E(8, 34, "\"share\" of cluster \"jean-zay\" of factory \"ai2f\" is empty; give cpus_per_gpu, memory_per_gpu or both, or remove it")}},
	{"billing with rates", V2HEAD "  - id: ai2f\n    clusters: {jean-zay: {charge: billing, rates: {h100: 4}, share: {cpus_per_gpu: 8}}}\n", 0,
	 {E(8, 51, "\"rates\" of cluster \"jean-zay\" of factory \"ai2f\" has no effect with charge: billing (slurm's TRESBillingWeights set the cost); remove it"),
	  E(8, 69, "\"share\" of cluster \"jean-zay\" of factory \"ai2f\" has no effect with charge: billing (slurm's TRESBillingWeights set the cost); remove it")}},
	{"charge unknown", V2HEAD "  - id: ai2f\n    clusters: {jean-zay: {charge: tres}}\n", 0,
	 {E(8, 35, "expected gpus or billing for \"charge\" in cluster \"jean-zay\" of factory \"ai2f\", found \"tres\"")}},
	{"clusters empty", HEAD "  - id: ai2f\n    clusters: []\n", 0,
	 {E(8, 15, "\"clusters\" in factory \"ai2f\" is empty; expected at least one slurm cluster name")}},
	{"cluster name syntax", HEAD "  - id: ai2f\n    clusters: [jean-zay, Jean Zay, jean-zay]\n", 0,
	 {E(8, 26, "invalid cluster name \"Jean Zay\" in \"clusters\" of factory \"ai2f\"; slurm cluster names are 1 to 63 lower-case letters, digits, '_' or '-', starting with a letter or digit"),
	  E(8, 36, "duplicate cluster \"jean-zay\" in \"clusters\" of factory \"ai2f\"; first given at line 8")}},
	{"budgets not a mapping", HEAD FACTORY_NB "    budgets: 1000\n", 0,
	 {E(9, 14, "expected a mapping of period ids to gpu-hours for \"budgets\" in factory \"ai2f\", found 1000")}},
	{"budget zero and words", HEAD FACTORY_NB "    budgets: {2026-h1: 0, 2026-h2: lots}\n", 0,
	 {E(9, 24, "expected a positive number of gpu-hours for period \"2026-h1\" in budgets of factory \"ai2f\", found 0"),
	  E(9, 36, "expected a positive number of gpu-hours for period \"2026-h2\" in budgets of factory \"ai2f\", found \"lots\"")}},
	{"budget negative and nan", HEAD FACTORY_NB "    budgets: {2026-h1: -5, 2026-h2: .nan}\n", 0,
	 {E(9, 24, "expected a positive number of gpu-hours for period \"2026-h1\" in budgets of factory \"ai2f\", found -5"),
	  E(9, 37, "expected a positive number of gpu-hours for period \"2026-h2\" in budgets of factory \"ai2f\", found .nan")}},
	{"budget infinite and quoted", HEAD FACTORY_NB "    budgets: {2026-h1: .inf, 2026-h2: \"100\"}\n", 0,
	 {E(9, 24, "expected a positive number of gpu-hours for period \"2026-h1\" in budgets of factory \"ai2f\", found .inf"),
	  E(9, 39, "expected a positive number of gpu-hours for period \"2026-h2\" in budgets of factory \"ai2f\", found the string \"100\"")}},
	{"budget too large", HEAD FACTORY_NB "    budgets: {2026-h1: 1e13, 2026-h2: 1e400}\n", 0,
	 {E(9, 24, "expected at most 1000000000000 gpu-hours for period \"2026-h1\" in budgets of factory \"ai2f\", found 1e13"),
	  E(9, 39, "expected at most 1000000000000 gpu-hours for period \"2026-h2\" in budgets of factory \"ai2f\", found 1e400")}},
	{"budget hex", HEAD FACTORY_NB "    budgets: {2026-h1: 0x10}\n", 0,
	 {E(9, 24, "expected a positive number of gpu-hours for period \"2026-h1\" in budgets of factory \"ai2f\", found \"0x10\"")}},
	{"budget unknown period", HEAD FACTORY_NB "    budgets: {2026-h3: 5}\n", 0,
	 {E(9, 15, "unknown period \"2026-h3\" in budgets of factory \"ai2f\"; expected one of: 2026-h1, 2026-h2")}},
	{"budget period twice", HEAD FACTORY_NB "    budgets: {2026-h1: 5, 2026-h1: 6}\n", 0,
	 {E(9, 27, "duplicate period \"2026-h1\" in budgets of factory \"ai2f\"; first given at line 9")}},
	{"on_exhausted kill", HEAD FACTORY "    on_exhausted: kill\n", 0,
	 {E(10, 19, "expected deny or cancel for \"on_exhausted\" in factory \"ai2f\", found \"kill\"")}},
	{"admission always", HEAD FACTORY "    admission: always\n", 0,
	 {E(10, 16, "expected used or reserve for \"admission\" in factory \"ai2f\", found \"always\"")}},
	{"project used in a factory that reserves", HEAD FACTORY "    admission: reserve\n" PROJECT
	 "        admission: used\n", 0,
	 {E(15, 20, "project \"p1\" admits by used, but its factory reserves; remove \"admission\" from the project, or set it on the factory only")}},
	{"grace in milliseconds", HEAD FACTORY "    on_exhausted: cancel\n    grace: 1500ms\n", 0,
	 {E(11, 12, GRACE_SYNTAX "in factory \"ai2f\", found \"1500ms\"")}},
	{"grace in days", HEAD FACTORY "    on_exhausted: cancel\n    grace: 2d\n", 0,
	 {E(11, 12, GRACE_SYNTAX "in factory \"ai2f\", found \"2d\"")}},
	{"warn_at not a list", HEAD FACTORY "    warn_at: 80\n", 0,
	 {E(10, 14, "expected a list of percents for \"warn_at\" in factory \"ai2f\", found 80")}},
	{"warn_at decreasing and zero", HEAD FACTORY "    warn_at: [95, 80, 0]\n", 0,
	 {E(10, 19, "values in \"warn_at\" of factory \"ai2f\" must be strictly increasing; found 80 after 95"),
	  E(10, 23, "expected a whole percent from 1 to 100 in \"warn_at\" of factory \"ai2f\", found 0")}},
	{"warn_at over 100 and percent sign", HEAD FACTORY "    warn_at: [50, 101, 80%]\n", 0,
	 {E(10, 19, "expected a whole percent from 1 to 100 in \"warn_at\" of factory \"ai2f\", found 101"),
	  E(10, 24, "expected a whole percent from 1 to 100 in \"warn_at\" of factory \"ai2f\", found \"80%\"")}},
	{"warn_at too many", HEAD FACTORY "    warn_at: [10, 20, 30, 40, 50, 60, 70, 80, 90]\n", 0,
	 {E(10, 47, "too many values in \"warn_at\" of factory \"ai2f\"; at most 8")}},
	{"allow_overcommit yes", HEAD FACTORY "    allow_overcommit: yes\n", 0,
	 {E(10, 23, "expected true or false for \"allow_overcommit\" in factory \"ai2f\", found \"yes\"")}},
	{"projects not a list", HEAD FACTORY "    projects: {p1: x}\n", 0,
	 {E(10, 15, "expected a list of projects for \"projects\" in factory \"ai2f\", found a mapping")}},

	/* Projects. */
	{"project not a mapping", HEAD FACTORY "    projects:\n      - p1\n", 0,
	 {E(11, 9, "expected a mapping for project #1 of factory \"ai2f\", found \"p1\"")}},
	{"project without sectors", HEAD FACTORY "    projects:\n      - id: p1\n        sector: health\n        members: {users: [alice]}\n", 0,
	 {E(11, 9, "missing key \"sectors\" in project \"p1\""),
	  E(12, 9, "unknown key \"sector\" in project \"p1\"; expected one of: id, name, sectors, budgets, members, warn_at, on_exhausted, grace, admission")}},
	{"project without id", HEAD FACTORY "    projects:\n      - sectors: [health]\n        members: {users: [alice]}\n", 0,
	 {E(11, 9, "missing key \"id\" in project #1 of factory \"ai2f\"")}},
	{"project id syntax", HEAD FACTORY "    projects:\n      - id: -x\n        sectors: [health]\n        members: {users: [alice]}\n", 0,
	 {E(11, 13, "invalid project id \"-x\"; " ID_RULE)}},
	{"project sectors empty", HEAD FACTORY "    projects:\n      - id: p1\n        sectors: []\n        members: {users: [alice]}\n", 0,
	 {E(12, 18, "\"sectors\" in project \"p1\" is empty; expected at least one sector (the first is the project's default)")}},
	{"project sector unknown", HEAD FACTORY "    projects:\n      - id: p1\n        sectors: [health, space]\n        members: {users: [alice]}\n", 0,
	 {E(12, 27, "unknown sector \"space\" in \"sectors\" of project \"p1\"; expected one of: health, energy, language")}},
	{"project sector twice", HEAD FACTORY "    projects:\n      - id: p1\n        sectors: [health, health]\n        members: {users: [alice]}\n", 0,
	 {E(12, 27, "duplicate sector \"health\" in \"sectors\" of project \"p1\"; first given at line 12")}},
	{"project id in two factories", HEAD FACTORY PROJECT
	 "  - id: jaif\n    clusters: [jupiter]\n    projects:\n      - id: p1\n        sectors: [energy]\n        members: {groups: [genomics]}\n", 0,
	 {E(17, 13, "duplicate project id \"p1\"; first given at line 11 (project ids are unique across all factories)")}},
	{"project budgets above the factory's", HEAD FACTORY PROJECT "        budgets: {2026-h1: 600}\n"
	 "      - id: p2\n        sectors: [energy]\n        budgets: {2026-h1: 400.5}\n        members: {users: [bob]}\n", 0,
	 {E(9, 24, "projects of factory \"ai2f\" have 1000.5 gpu-hours for period \"2026-h1\", more than the factory's 1000; lower them or set allow_overcommit: true")}},
	{"project budget where the factory has none", HEAD FACTORY PROJECT "        budgets: {2026-h2: 10}\n", 0,
	 {E(9, 14, "projects of factory \"ai2f\" have budgets for period \"2026-h2\" but the factory has none; give the factory a budget for it")}},
	{"project budget, factory without budgets", HEAD FACTORY_NB PROJECT "        budgets: {2026-h1: 10}\n", 0,
	 {E(7, 5, "projects of factory \"ai2f\" have budgets for period \"2026-h1\" but the factory has none; give the factory a budget for it")}},
	{"project on_exhausted and warn_at", HEAD FACTORY PROJECT "        on_exhausted: Cancel\n        warn_at: [0]\n", 0,
	 {E(14, 23, "expected deny or cancel for \"on_exhausted\" in project \"p1\", found \"Cancel\""),
	  E(15, 19, "expected a whole percent from 1 to 100 in \"warn_at\" of project \"p1\", found 0")}},
	{"members not a mapping", HEAD FACTORY "    projects:\n      - id: p1\n        sectors: [health]\n        members: [alice]\n", 0,
	 {E(13, 18, "expected a mapping with users and groups for \"members\" in project \"p1\", found a list")}},
	{"members unknown key", HEAD FACTORY "    projects:\n      - id: p1\n        sectors: [health]\n        members: {user: alice}\n", 0,
	 {E(13, 19, "unknown key \"user\" in members of project \"p1\"; expected one of: users, groups")}},
	{"members users not a list", HEAD FACTORY "    projects:\n      - id: p1\n        sectors: [health]\n        members: {users: alice}\n", 0,
	 {E(13, 26, "expected a list of user names for \"users\" in members of project \"p1\", found \"alice\"")}},
	{"member twice", HEAD FACTORY "    projects:\n      - id: p1\n        sectors: [health]\n        members: {users: [alice, alice]}\n", 0,
	 {E(13, 34, "duplicate user \"alice\" in members of project \"p1\"; first given at line 13")}},
	{"group name syntax", HEAD FACTORY "    projects:\n      - id: p1\n        sectors: [health]\n        members: {groups: [\"a:b\", [x]]}\n", 0,
	 {E(13, 28, "invalid group name \"a:b\" in members of project \"p1\"; names are 1 to 255 characters without spaces, control characters, ':' or '/'"),
	  E(13, 35, "expected a group name in \"groups\" of members of project \"p1\", found a list")}},
};

static void test_bad_files(void **state)
{
	size_t failed = 0;
	(void)state;
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *t = &bad_cases[i];
		struct collected c = {0};
		struct aif_budgets not_reset, *model = &not_reset; /* must become NULL */
		size_t len = t->len ? t->len : strlen(t->yaml);
		int errors = aif_budgets_parse("bad.yaml", t->yaml, len, &fake_nss, &model, collect, &c);

		failed += !same_issues(t->name, errors, &c, t->want);
		assert_null(model);
		for (size_t j = 0; j < c.n; j++)
			assert_string_equal(c.issues[j].file, "bad.yaml");
	}
	if (failed)
		fail_msg("%zu of %zu bad files are not reported as expected", failed,
			 sizeof(bad_cases) / sizeof(bad_cases[0]));
}

/*
 * Nesting far deeper than the schema: one error, at once (libyaml is quadratic in the depth),
 * no stack overflow, no leak.
 */
static void test_deep_nesting(void **state)
{
	static const struct want want[] = {E(1, 33, "nesting deeper than 32 levels"), {0}};
	const size_t depth = 1000000;
	char *text = malloc(2 * depth + 1);
	struct collected c = {0};
	struct aif_budgets *model;
	int errors;
	(void)state;

	assert_non_null(text);
	memset(text, '[', depth);
	memset(text + depth, ']', depth);
	text[2 * depth] = '\0';
	errors = aif_budgets_parse("deep.yaml", text, 2 * depth, &fake_nss, &model, collect, &c);
	expect_issues("deep nesting", errors, &c, want);
	assert_null(model);
	free(text);
}

/* Thousands of mistakes: all counted, the first ones reported, then one summary line. */
static void test_too_many_issues(void **state)
{
	const size_t n = 3000;
	size_t used = 0, size = 64 + n * 3;
	char *text = malloc(size);
	struct collected c = {0};
	int errors;
	(void)state;

	assert_non_null(text);
	used += (size_t)snprintf(text, size, "sectors: [a");
	for (size_t i = 1; i < n; i++)
		used += (size_t)snprintf(text + used, size - used, ",a");
	snprintf(text + used, size - used, "]\n");
	errors = aif_budgets_parse("many.yaml", text, strlen(text), &fake_nss, NULL, collect, &c);
	/* n - 1 duplicates, and version, periods and factories missing. */
	assert_int_equal(errors, (int)(n - 1 + 3));
	assert_int_equal(c.total, 1000 + 1);
	assert_string_equal(c.issues[0].message, "missing key \"version\" at the top level");
	free(text);
}

/* Every mistake in one file is reported in one run, in file order. */
static void test_many_errors_in_one_run(void **state)
{
	static const struct want want[] = {
		E(2, 10, "unsupported schema version 3; this aif reads versions 1 to 2"),
		E(3, 19, "invalid sector id \"Energy\"; " ID_RULE),
		E(3, 27, "duplicate sector \"health\" at the top level; first given at line 3"),
		E(3, 35, "expected a sector id in \"sectors\" at the top level, found a mapping"),
		E(6, 37, "period \"2026-h2\" ends on 2026-07-01, not after its start 2026-07-01"),
		E(7, 19, "invalid date 2026-02-30 for \"start\" in period \"2026-x\": there is no such day"),
		E(7, 36, "expected a date YYYY-MM-DD for \"end\" in period \"2026-x\", found the string \"2026/12/01\""),
		E(7, 50, "unknown key \"begin\" in period \"2026-x\"; expected one of: start, end"),
		E(8, 3, "duplicate period id \"2026-h1\"; first given at line 5"),
		E(11, 5, "unknown key \"budget\" in factory \"ai2f\"; expected one of: " FACTORY_KEYS),
		E(12, 26, "invalid cluster name \"Adastra\" in \"clusters\" of factory \"ai2f\"; slurm cluster names are 1 to 63 lower-case letters, digits, '_' or '-', starting with a letter or digit"),
		E(12, 35, "duplicate cluster \"jean-zay\" in \"clusters\" of factory \"ai2f\"; first given at line 12"),
		E(13, 24, "projects of factory \"ai2f\" have 110 gpu-hours for period \"2026-h1\", more than the factory's 100; lower them or set allow_overcommit: true"),
		E(13, 29, "unknown period \"2026-h3\" in budgets of factory \"ai2f\"; expected one of: 2026-h1, 2026-h2, 2026-x"),
		E(13, 49, "expected a positive number of gpu-hours for period \"2026-x\" in budgets of factory \"ai2f\", found \"lots\""),
		E(14, 19, "expected deny or cancel for \"on_exhausted\" in factory \"ai2f\", found \"kill\""),
		E(15, 12, GRACE_SYNTAX "in factory \"ai2f\", found \"soon\""),
		E(16, 19, "values in \"warn_at\" of factory \"ai2f\" must be strictly increasing; found 80 after 95"),
		E(16, 23, "expected a whole percent from 1 to 100 in \"warn_at\" of factory \"ai2f\", found 101"),
		E(16, 28, "expected a whole percent from 1 to 100 in \"warn_at\" of factory \"ai2f\", found the string \"50\""),
		E(17, 23, "expected true or false for \"allow_overcommit\" in factory \"ai2f\", found \"yes\""),
		E(20, 27, "unknown sector \"helth\" in \"sectors\" of project \"genomics-eu\"; expected one of: health"),
		E(20, 34, "duplicate sector \"health\" in \"sectors\" of project \"genomics-eu\"; first given at line 20"),
		E(21, 41, "expected a positive number of gpu-hours for period \"2026-h2\" in budgets of project \"genomics-eu\", found 0"),
		E(22, 34, "invalid user name \"a b\" in members of project \"genomics-eu\"; names are 1 to 255 characters without spaces, control characters, ':' or '/'"),
		E(22, 54, "unknown key \"people\" in members of project \"genomics-eu\"; expected one of: users, groups"),
		W(23, 9, "project \"p2\" has no members; nobody can submit jobs to it"),
		E(24, 18, "\"sectors\" in project \"p2\" is empty; expected at least one sector (the first is the project's default)"),
		E(25, 41, "expected a positive number of gpu-hours for period \"2026-h2\" in budgets of project \"p2\", found -5"),
		E(26, 9, "expected a mapping for project #3 of factory \"ai2f\", found \"just a string\""),
		E(27, 9, "duplicate factory id \"ai2f\"; first given at line 10"),
		E(28, 15, "\"clusters\" in factory \"ai2f\" is empty; expected at least one slurm cluster name"),
		E(30, 13, "duplicate project id \"genomics-eu\"; first given at line 19 (project ids are unique across all factories)"),
		E(32, 28, "expected a positive number of gpu-hours for period \"2026-h1\" in budgets of project \"genomics-eu\", found .nan"),
		E(32, 43, "expected at most 1000000000000 gpu-hours for period \"2026-h2\" in budgets of project \"genomics-eu\", found 1e400"),
		W(33, 27, "user \"nosuchuserxyz\" in members of project \"genomics-eu\" was not found through nss on this host"),
		E(34, 5, "missing key \"id\" in factory #3"),
		E(34, 5, "missing key \"clusters\" in factory #3"),
		E(35, 5, "expected a mapping for factory #4 in \"factories\", found 5"),
	};
	const size_t n_want = sizeof(want) / sizeof(want[0]);
	char path[4096];
	struct collected c = {0};
	struct aif_budgets *model;
	int errors;
	(void)state;

	snprintf(path, sizeof(path), "%s/many-errors.yaml", fixtures_dir);
	errors = aif_budgets_load(path, &fake_nss, &model, collect, &c);
	assert_null(model);
	assert_int_equal(errors, (int)n_want - 2);
	if (c.n != n_want) {
		for (size_t i = 0; i < c.n; i++)
			print_message("  {%u, %u, \"%s\"},\n", c.issues[i].line, c.issues[i].column,
				      c.issues[i].message);
	}
	assert_int_equal(c.n, n_want);
	for (size_t i = 0; i < n_want; i++) {
		assert_string_equal(c.issues[i].message, want[i].message);
		assert_int_equal(c.issues[i].line, want[i].line);
		assert_int_equal(c.issues[i].column, want[i].column);
		assert_int_equal(c.issues[i].warning, want[i].warning);
		assert_string_equal(c.issues[i].file, path);
	}
}

/* Warnings leave the file valid: the model is returned. */
static void test_warnings(void **state)
{
	static const char yaml[] = HEAD
		"  - id: ai2f\n"                                                         /* 7 */
		"    clusters: [jean-zay]\n"                                             /* 8 */
		"    grace: 10min\n"                                                     /* 9 */
		"    projects:\n"                                                        /* 10 */
		"      - id: p1\n"                                                       /* 11 */
		"        sectors: [health]\n"                                            /* 12 */
		"        members: {users: [alice, mallory], groups: [genomics, ghosts]}\n" /* 13 */
		"      - id: p2\n"                                                       /* 14 */
		"        sectors: [health]\n"                                            /* 15 */
		"      - id: p3\n"                                                       /* 16 */
		"        sectors: [health]\n"                                            /* 17 */
		"        grace: 5min\n"                                                  /* 18 */
		"        members: {users: [], groups: []}\n"                             /* 19 */
		"  - id: jaif\n"                                                         /* 20 */
		"    clusters: [jupiter]\n"                                              /* 21 */
		"    grace: 1h\n"                                                        /* 22 */
		"    projects:\n"                                                        /* 23 */
		"      - id: p4\n"                                                       /* 24 */
		"        sectors: [energy]\n"                                            /* 25 */
		"        on_exhausted: cancel\n"                                         /* 26 */
		"        members: {groups: [energy]}\n";                                 /* 27 */
	static const struct want want[] = {
		W(9, 12, "\"grace\" in factory \"ai2f\" has no effect with on_exhausted: deny"),
		W(13, 34, "user \"mallory\" in members of project \"p1\" was not found through nss on this host"),
		W(13, 63, "group \"ghosts\" in members of project \"p1\" was not found through nss on this host"),
		W(14, 9, "project \"p2\" has no members; nobody can submit jobs to it"),
		W(18, 16, "\"grace\" in project \"p3\" has no effect with on_exhausted: deny"),
		W(19, 18, "project \"p3\" has no members; nobody can submit jobs to it"),
		{0},
	};
	struct collected c = {0};
	struct aif_budgets *model;
	int errors;
	(void)state;

	errors = aif_budgets_parse("warn.yaml", yaml, strlen(yaml), &fake_nss, &model, collect, &c);
	expect_issues("warnings", errors, &c, want);
	assert_non_null(model);
	/* jaif's grace is used by p4 (cancel, no grace of its own): no warning for it. */
	assert_int_equal(model->factories[1].projects[0].policy.grace_seconds, 3600);
	assert_int_equal(model->factories[1].projects[0].policy.on_exhausted, AIF_ON_EXHAUSTED_CANCEL);
	aif_budgets_free(model);
}

/* Without a resolver in the options, members are looked up through NSS. */
static void test_nss_lookup(void **state)
{
	static const char yaml[] = HEAD FACTORY
		"    projects:\n"                                                   /* 10 */
		"      - id: p1\n"                                                  /* 11 */
		"        sectors: [health]\n"                                       /* 12 */
		"        members: {users: [root, aif-no-such-user], groups: [root]}\n"; /* 13 */
	static const struct want want[] = {
		W(13, 33, "user \"aif-no-such-user\" in members of project \"p1\" was not found through nss on this host"),
		{0},
	};
	struct collected c = {0};
	struct aif_budgets *model;
	int errors;
	(void)state;

	errors = aif_budgets_parse("nss.yaml", yaml, strlen(yaml), NULL, &model, collect, &c);
	expect_issues("nss", errors, &c, want);
	assert_non_null(model);
	assert_int_equal(model->factories[0].projects[0].n_users, 2);
	aif_budgets_free(model);
}

static const struct aif_budget *find_budget(const struct aif_budget *budgets, size_t n,
					    const char *period)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(budgets[i].period_id, period) == 0)
			return &budgets[i];
	return NULL;
}

static void assert_policy(const struct aif_policy *policy, const int *warn_at, size_t n_warn_at,
			  enum aif_on_exhausted on_exhausted, unsigned long grace_seconds)
{
	assert_int_equal(policy->n_warn_at, n_warn_at);
	for (size_t i = 0; i < n_warn_at; i++)
		assert_int_equal(policy->warn_at[i], warn_at[i]);
	assert_int_equal(policy->on_exhausted, on_exhausted);
	assert_int_equal(policy->grace_seconds, grace_seconds);
}

/* Version 2: what each cluster's GPU-hours cost; a version 1 cluster costs 1 per GPU-hour. */
static void test_charging_model(void **state)
{
	static const char yaml[] = "version: 2\n" S P "factories:\n"
		"  - id: ai2f\n"
		"    clusters:\n"
		"      jean-zay:\n"
		"        rates: {v100: 1.0, h100: 4, a100: 2, 1g.10gb: 0.25}\n"
		"        share: {cpus_per_gpu: 16, memory_per_gpu: 80G}\n"
		"      adastra: {rates: {mi250x: 2}, unrated: 3, share: {memory_per_gpu: 512}}\n"
		"      joliot-curie: {charge: billing}\n"
		"      alice-recoque:\n"
		"  - id: jaif\n"
		"    clusters: [jupiter]\n";
	struct collected c = {0};
	struct aif_budgets *m = NULL;
	const struct aif_charging *jz, *ad, *jc, *ar, *ju;
	(void)state;

	assert_int_equal(aif_budgets_parse("v2.yaml", yaml, strlen(yaml), &fake_nss, &m, collect, &c), 0);
	assert_int_equal(c.n, 0);
	assert_int_equal(m->version, 2);
	assert_int_equal(m->factories[0].n_clusters, 4);
	assert_string_equal(m->factories[0].clusters[2], "joliot-curie");
	jz = &m->factories[0].charging[0];
	assert_int_equal(jz->by, AIF_CHARGE_GPUS);
	assert_int_equal(jz->n_rates, 4); /* sorted by model */
	assert_string_equal(jz->rates[0].model, "1g.10gb");
	assert_true(jz->rates[0].rate == 0.25);
	assert_string_equal(jz->rates[1].model, "a100");
	assert_string_equal(jz->rates[2].model, "h100");
	assert_true(jz->rates[2].rate == 4);
	assert_string_equal(jz->rates[3].model, "v100");
	assert_true(jz->unrated == 4); /* the highest rate: an unknown model is never cheap */
	assert_int_equal(jz->cpus_per_gpu, 16);
	assert_int_equal(jz->memory_per_gpu_mb, 80 * 1024);
	ad = &m->factories[0].charging[1];
	assert_true(ad->unrated == 3);
	assert_int_equal(ad->cpus_per_gpu, 0);
	assert_int_equal(ad->memory_per_gpu_mb, 512);
	jc = &m->factories[0].charging[2];
	assert_int_equal(jc->by, AIF_CHARGE_BILLING);
	assert_int_equal(jc->n_rates, 0);
	ar = &m->factories[0].charging[3]; /* null: the defaults */
	assert_int_equal(ar->by, AIF_CHARGE_GPUS);
	assert_int_equal(ar->n_rates, 0);
	assert_true(ar->unrated == 1);
	ju = &m->factories[1].charging[0]; /* a list, as in version 1 */
	assert_int_equal(m->factories[1].n_clusters, 1);
	assert_int_equal(ju->n_rates, 0);
	assert_true(ju->unrated == 1);
	assert_int_equal(ju->memory_per_gpu_mb, 0);
	aif_budgets_free(m);
}

/*
 * With the GPU models Slurm gives a cluster's nodes (aifctl check --slurm), each must have a
 * rate where the cluster has rates: an error at its "rates" for each that has none. A cluster
 * without rates (every GPU at its unrated rate), charged by billing, or listed, has nothing to
 * miss; another cluster's models do not count.
 */
static void test_slurm_models(void **state)
{
	static const char yaml[] = "version: 2\n" S P "factories:\n"
		"  - id: ai2f\n"
		"    clusters:\n"
		"      jean-zay: {rates: {h100: 4, 1g.10gb: 0.25}}\n"
		"      adastra: {unrated: 2}\n"
		"      joliot-curie: {charge: billing}\n"
		"  - id: jaif\n"
		"    clusters: [jean-zay]\n";
	static const char *const jz[] = {"h100", "a100", "1g.10gb", "v100"};
	static const char *const other[] = {"mi250x"};
	const struct aif_cluster_models models[] = {{"jean-zay", jz, 4}, {"adastra", other, 1},
						     {"joliot-curie", other, 1}};
	struct aif_budgets_options o = fake_nss;
	struct collected c = {0};
	(void)state;

	o.cluster_models = models;
	o.n_cluster_models = 3;
	assert_int_equal(aif_budgets_parse("slurm.yaml", yaml, strlen(yaml), &o, NULL, collect, &c), 2);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.issues[0].message, "GPU model \"a100\" has no rate in cluster "
			    "\"jean-zay\" of factory \"ai2f\"; Slurm's nodes of the cluster have it: add "
			    "it to \"rates\"");
	assert_int_equal(c.issues[0].line, 9);
	assert_int_equal(c.issues[0].column, 25);
	assert_string_equal(c.issues[1].message, "GPU model \"v100\" has no rate in cluster "
			    "\"jean-zay\" of factory \"ai2f\"; Slurm's nodes of the cluster have it: add "
			    "it to \"rates\"");
	o.n_cluster_models = 0;
	c.n = 0;
	assert_int_equal(aif_budgets_parse("slurm.yaml", yaml, strlen(yaml), &o, NULL, collect, &c), 0);
}

/* The model of a valid file, with effective (inherited and default) values. */
static void test_valid_model(void **state)
{
	static const int default_warn_at[] = {80, 95}, fifty[] = {50},
			 eight[] = {10, 20, 30, 40, 50, 60, 70, 100};
	char path[4096];
	struct collected c = {0};
	struct aif_budgets *m;
	const struct aif_factory *ai2f, *jaif;
	const struct aif_project *p;
	(void)state;

	snprintf(path, sizeof(path), "%s/valid.yaml", fixtures_dir);
	assert_int_equal(aif_budgets_load(path, &fake_nss, &m, collect, &c), 0);
	assert_int_equal(c.n, 0);
	assert_non_null(m);
	assert_int_equal(m->version, 1);

	assert_int_equal(m->n_sectors, 4);
	assert_string_equal(m->sectors[0], "health");
	assert_string_equal(m->sectors[1], "energy");
	assert_string_equal(m->sectors[2], "language");
	assert_string_equal(m->sectors[3], "life-sciences");

	assert_int_equal(m->n_periods, 3);
	assert_string_equal(m->periods[0].id, "2026-h1");
	assert_string_equal(m->periods[0].start, "2026-01-01");
	assert_string_equal(m->periods[0].end, "2026-07-01");
	assert_int_equal(m->periods[0].start_epoch, 1767225600);
	assert_int_equal(m->periods[0].end_epoch, 1782864000);
	assert_string_equal(m->periods[1].id, "2026-h2");
	assert_int_equal(m->periods[1].start_epoch, 1782864000);
	assert_int_equal(m->periods[1].end_epoch, 1798761600);
	assert_string_equal(m->periods[2].id, "leap");
	assert_int_equal(m->periods[2].start_epoch, 1835395200);
	assert_int_equal(m->periods[2].end_epoch, 1835481600);

	assert_int_equal(m->n_factories, 2);
	ai2f = &m->factories[0];
	assert_string_equal(ai2f->id, "ai2f");
	assert_string_equal(ai2f->name, "AI Factory France");
	assert_int_equal(ai2f->n_clusters, 2);
	assert_string_equal(ai2f->clusters[0], "jean-zay");
	assert_string_equal(ai2f->clusters[1], "adastra");
	assert_int_equal(ai2f->charging[1].by, AIF_CHARGE_GPUS); /* version 1: 1 per GPU-hour */
	assert_int_equal(ai2f->charging[1].n_rates, 0);
	assert_true(ai2f->charging[1].unrated == 1);
	assert_int_equal(ai2f->n_budgets, 2);
	assert_true(find_budget(ai2f->budgets, ai2f->n_budgets, "2026-h1")->gpu_hours == 1500000);
	assert_true(find_budget(ai2f->budgets, ai2f->n_budgets, "2026-h2")->gpu_hours == 1800000.5);
	assert_false(ai2f->allow_overcommit);
	assert_policy(&ai2f->policy, default_warn_at, 2, AIF_ON_EXHAUSTED_DENY, 0);
	assert_int_equal(ai2f->policy.admission, AIF_ADMISSION_USED); /* the default */
	assert_int_equal(ai2f->n_projects, 2);

	p = &ai2f->projects[0];
	assert_string_equal(p->id, "genomics-eu");
	assert_string_equal(p->name, "European genomics");
	assert_int_equal(p->n_sectors, 2);
	assert_string_equal(p->sectors[0], "life-sciences"); /* the default sector */
	assert_string_equal(p->sectors[1], "health");
	assert_int_equal(p->n_budgets, 1);
	assert_string_equal(p->budgets[0].period_id, "2026-h1");
	assert_true(p->budgets[0].gpu_hours == 40000);
	assert_int_equal(p->n_users, 2);
	assert_string_equal(p->users[0], "alice");
	assert_string_equal(p->users[1], "bob");
	assert_int_equal(p->n_groups, 1);
	assert_string_equal(p->groups[0], "genomics");
	assert_policy(&p->policy, default_warn_at, 2, AIF_ON_EXHAUSTED_DENY, 0);

	p = &ai2f->projects[1];
	assert_string_equal(p->id, "grid-forecast");
	assert_null(p->name);
	assert_int_equal(p->n_budgets, 0);
	assert_int_equal(p->n_users, 0);
	assert_int_equal(p->n_groups, 1);
	assert_policy(&p->policy, fifty, 1, AIF_ON_EXHAUSTED_CANCEL, 900);

	jaif = &m->factories[1];
	assert_string_equal(jaif->id, "jaif");
	assert_null(jaif->name);
	assert_string_equal(jaif->clusters[1], "adastra"); /* shared with ai2f: allowed */
	assert_true(jaif->allow_overcommit);               /* 80 + 70 > 100 */
	assert_policy(&jaif->policy, NULL, 0, AIF_ON_EXHAUSTED_CANCEL, 7200);
	assert_int_equal(jaif->n_projects, 2);
	assert_policy(&jaif->projects[0].policy, NULL, 0, AIF_ON_EXHAUSTED_DENY, 7200);
	assert_policy(&jaif->projects[1].policy, eight, 8, AIF_ON_EXHAUSTED_CANCEL, 0);
	assert_int_equal(jaif->policy.admission, AIF_ADMISSION_RESERVE);
	assert_int_equal(jaif->projects[0].policy.admission, AIF_ADMISSION_RESERVE); /* inherited */
	assert_int_equal(ai2f->projects[1].policy.admission, AIF_ADMISSION_RESERVE); /* its own */
	assert_string_equal(jaif->projects[1].sectors[0], "language");

	aif_budgets_free(m);
}

static void test_example_file_is_valid(void **state)
{
	struct collected c = {0};
	struct aif_budgets *m;
	(void)state;

	/* Its members are made up: warnings about them are expected, errors are not. */
	assert_int_equal(aif_budgets_load(example_path, &fake_nss, &m, collect, &c), 0);
	for (size_t i = 0; i < c.n; i++)
		assert_true(c.issues[i].warning);
	assert_non_null(m);
	assert_true(m->n_factories >= 6);
	aif_budgets_free(m);
}

static void test_unreadable_file(void **state)
{
	struct collected c = {0};
	struct aif_budgets *m;
	char path[4096];
	(void)state;

	assert_int_equal(aif_budgets_load("/nonexistent/budgets.yaml", NULL, &m, collect, &c), 1);
	assert_null(m);
	assert_int_equal(c.n, 1);
	assert_int_equal(c.issues[0].line, 0);
	assert_string_equal(c.issues[0].file, "/nonexistent/budgets.yaml");
	assert_string_equal(c.issues[0].message,
			    "could not open /nonexistent/budgets.yaml: No such file or directory");

	memset(&c, 0, sizeof(c));
	snprintf(path, sizeof(path), "%s", fixtures_dir);
	assert_int_equal(aif_budgets_load(path, NULL, &m, collect, &c), 1);
	assert_null(m);
	assert_int_equal(c.n, 1);
	assert_int_equal(c.issues[0].line, 0);
}

/* report and out may be NULL: the count alone answers "is this file valid?". */
static void test_count_only(void **state)
{
	static const char yaml[] = HEAD FACTORY "    budget: 5\n    grace: x\n";
	(void)state;
	assert_int_equal(aif_budgets_parse("x.yaml", yaml, strlen(yaml), &fake_nss, NULL, NULL, NULL), 2);
	assert_int_equal(aif_budgets_parse(NULL, NULL, 0, NULL, NULL, NULL, NULL), 1);
}

/* Larger than any real budgets file: refused before parsing. */
static void test_too_large(void **state)
{
	const size_t len = (16u << 20) + 1;
	char *text = malloc(len);
	struct collected c = {0};
	(void)state;

	assert_non_null(text);
	memset(text, ' ', len);
	assert_int_equal(aif_budgets_parse("huge.yaml", text, len, NULL, NULL, collect, &c), 1);
	assert_int_equal(c.n, 1);
	assert_int_equal(c.issues[0].line, 0);
	assert_string_equal(c.issues[0].message,
			    "file is larger than 16 MiB; a budgets file is far smaller");
	free(text);
}

static void test_issue_format(void **state)
{
	struct aif_budgets_issue issue = {.file = "budgets.yaml", .line = 12, .column = 7};
	char buf[600];
	(void)state;

	snprintf(issue.message, sizeof(issue.message), "unknown key \"budget\"");
	assert_string_equal(aif_budgets_issue_format(&issue, buf, sizeof(buf)),
			    "budgets.yaml:12:7: error: unknown key \"budget\"");
	issue.warning = true;
	assert_string_equal(aif_budgets_issue_format(&issue, buf, sizeof(buf)),
			    "budgets.yaml:12:7: warning: unknown key \"budget\"");
	issue.line = issue.column = 0;
	issue.warning = false;
	assert_string_equal(aif_budgets_issue_format(&issue, buf, sizeof(buf)),
			    "budgets.yaml: error: unknown key \"budget\"");
	assert_string_equal(aif_budgets_issue_format(&issue, buf, 8), "budgets");
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_files),
		cmocka_unit_test(test_deep_nesting),
		cmocka_unit_test(test_too_many_issues),
		cmocka_unit_test(test_many_errors_in_one_run),
		cmocka_unit_test(test_warnings),
		cmocka_unit_test(test_nss_lookup),
		cmocka_unit_test(test_valid_model),
		cmocka_unit_test(test_charging_model),
		cmocka_unit_test(test_slurm_models),
		cmocka_unit_test(test_example_file_is_valid),
		cmocka_unit_test(test_unreadable_file),
		cmocka_unit_test(test_count_only),
		cmocka_unit_test(test_too_large),
		cmocka_unit_test(test_issue_format),
	};

	if (argc > 1)
		fixtures_dir = argv[1];
	if (argc > 2)
		example_path = argv[2];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
