/*
 * The budgets file, schema versions 1 and 2: the tree from aif_budgets_tree.c checked against the
 * schema, and the model built along the way. Validation never stops at the first problem: each
 * part of the file is checked on its own, and a part that cannot be read (wrong type, already
 * reported) is skipped so that one mistake gives one message. The model is handed out only
 * when no error was found. docs/budgets-yaml.md lists every rule and message.
 */
#include "aif_budgets.h"
#include "aif_names.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aif_budgets_internal.h"
#include "aif_settings.h"

/* Far above any grant (all of Europe's GPUs for a century); sums of such numbers stay precise. */
#define BUDGET_MAX_GPU_HOURS 1e12
#define ID_RULE                                                                                    \
	"ids are 1 to 63 lower-case letters, digits, '.', '_' or '-', starting with a letter or "  \
	"digit"
#define CLUSTER_RULE                                                                               \
	"slurm cluster names are 1 to 63 lower-case letters, digits, '_' or '-', starting with "   \
	"a letter or digit"
#define MEMBER_RULE "names are 1 to 255 characters without spaces, control characters, ':' or '/'"
#define NO_INDEX SIZE_MAX

const char *const aif_on_exhausted_names[2] = {"deny", "cancel"};
const char *const aif_admission_names[2] = {"used", "reserve"};

static const struct aif_policy default_policy = {
	.warn_at = {80, 95},
	.n_warn_at = 2,
	.on_exhausted = AIF_ON_EXHAUSTED_DENY,
	.grace_seconds = 0,
	.admission = AIF_ADMISSION_USED,
};

/* A string set over the tree's own text, for duplicates and references; open addressing. */
struct name_entry {
	const char *name; /* NULL: free slot */
	const struct ynode *node;
	size_t index; /* into the model, or NO_INDEX when the name itself is invalid */
};

struct name_set {
	struct name_entry *slots;
	size_t cap, n; /* cap: 0 or a power of two */
};

struct loader {
	struct budgets_issues *issues;
	const struct aif_budgets_options *options;
	struct aif_budgets *model;
	/* Every sector and period written, valid or not, so a bad one is reported once only. */
	struct name_set sectors, periods;
	bool sectors_known, periods_known; /* their lists could be read at all */
	struct name_set factory_ids, project_ids;
	bool out_of_memory;
};

/* What a factory's projects add up to, per period (indexed like model->periods). */
struct period_tally {
	double *factory;                 /* the factory's own budget; < 0 when not valid */
	const struct ynode **factory_at; /* where the factory gives it; NULL: not given */
	double *projects;                /* sum of the projects' budgets */
	bool factory_budgets_unreadable; /* "budgets" of the factory is broken: already reported */
};

/* ---- allocation: every failure is remembered and reported once, as an error ---- */

static void *zalloc(struct loader *L, size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);
	if (!p)
		L->out_of_memory = true;
	return p;
}

static char *copy(struct loader *L, const char *s)
{
	char *p = strdup(s);
	if (!p)
		L->out_of_memory = true;
	return p;
}

static void free_rates(struct aif_gpu_rate *rates, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(rates[i].model);
	free(rates);
}

/* ---- reporting ---- */

/*
 * Names and values shown in messages are cut to fit their buffers on purpose: a message with a
 * shortened name beats no message. (Through vsnprintf, which GCC's -Wformat-truncation does not
 * second-guess, so that optimized builds accept the deliberate truncation.)
 */
static void format_cut(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void format_cut(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, size, fmt, ap);
	va_end(ap);
}

static void report_at(struct loader *L, bool is_warning, const struct ynode *node, const char *fmt,
		      va_list ap) __attribute__((format(printf, 4, 0)));
static void report_at(struct loader *L, bool is_warning, const struct ynode *node, const char *fmt,
		      va_list ap)
{
	char message[sizeof(((struct aif_budgets_issue *)0)->message)];
	vsnprintf(message, sizeof(message), fmt, ap);
	budgets_issue(L->issues, is_warning, node ? node->line : 0, node ? node->column : 0, "%s",
		      message);
}

static void error(struct loader *L, const struct ynode *node, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void error(struct loader *L, const struct ynode *node, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	report_at(L, false, node, fmt, ap);
	va_end(ap);
}

static void warning(struct loader *L, const struct ynode *node, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void warning(struct loader *L, const struct ynode *node, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	report_at(L, true, node, fmt, ap);
	va_end(ap);
}

/* A value shown in a message: quoted and escaped, or described ("a list"). */
struct shown {
	char text[96];
};

#define QUOTE_MAX 56 /* bytes of a value shown before "..." */

/* text in double quotes: escaped, and cut short at a character boundary. */
static struct shown quote(const char *text)
{
	struct shown out;
	const unsigned char *s = (const unsigned char *)text;
	size_t used = 0;

	out.text[used++] = '"';
	for (; *s && used < QUOTE_MAX; s++) {
		if (*s == '"' || *s == '\\') {
			out.text[used++] = '\\';
			out.text[used++] = (char)*s;
		} else if (*s < 0x20 || *s == 0x7f) {
			used += (size_t)snprintf(out.text + used, sizeof(out.text) - used,
						 "\\x%02x", *s);
		} else {
			out.text[used++] = (char)*s;
		}
	}
	if (*s) {
		while (used > 1 && ((unsigned char)out.text[used - 1] & 0xc0) == 0x80)
			used--; /* don't cut a UTF-8 character in two */
		if (used > 1 && ((unsigned char)out.text[used - 1] & 0xc0) == 0xc0)
			used--;
		memcpy(out.text + used, "...", 3);
		used += 3;
	}
	out.text[used++] = '"';
	out.text[used] = '\0';
	return out;
}

/* Names joined with ", " for "expected one of: ...", cut with "..." when too long. */
static const char *join(char *buf, size_t size, const char *const *names, size_t n)
{
	size_t used = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(names[i]) + (i ? 2 : 0);
		if (used + len + 5 >= size) {
			snprintf(buf + used, size - used, "%s...", i ? ", " : "");
			break;
		}
		used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? ", " : "", names[i]);
	}
	return buf;
}

/* ---- scalars, read as YAML 1.2's core schema does ---- */

static bool is_null(const struct ynode *node)
{
	static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
	if (node->kind != YNODE_SCALAR || node->quoted)
		return false;
	for (size_t i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++)
		if (strcmp(node->text, nulls[i]) == 0)
			return true;
	return false;
}

static bool is_string(const struct ynode *node)
{
	return node->kind == YNODE_SCALAR && !is_null(node);
}

enum number_kind { NOT_A_NUMBER, NUMBER, NOT_FINITE };

/* [-+]?(digits[.digits?]|.digits)([eE][-+]?digits)? and .inf/.nan; plain scalars only. */
static enum number_kind read_number(const struct ynode *node, double *value)
{
	static const char *const not_finite[] = {
		".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF",
		"-.inf", "-.Inf", "-.INF", ".nan", ".NaN", ".NAN",
	};
	const char *p;
	size_t digits = 0;

	if (node->kind != YNODE_SCALAR || node->quoted)
		return NOT_A_NUMBER;
	for (size_t i = 0; i < sizeof(not_finite) / sizeof(not_finite[0]); i++)
		if (strcmp(node->text, not_finite[i]) == 0)
			return NOT_FINITE;
	p = node->text;
	if (*p == '+' || *p == '-')
		p++;
	for (; *p >= '0' && *p <= '9'; p++)
		digits++;
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++)
			digits++;
	if (!digits)
		return NOT_A_NUMBER;
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (!(*p >= '0' && *p <= '9'))
			return NOT_A_NUMBER;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p)
		return NOT_A_NUMBER;
	*value = strtod(node->text, NULL); /* overflow gives HUGE_VAL: caught as too large */
	return NUMBER;
}

/* [-+]?digits, clamped to the range of long; plain scalars only. */
static bool read_integer(const struct ynode *node, long *value)
{
	const char *p;

	if (node->kind != YNODE_SCALAR || node->quoted)
		return false;
	p = node->text + (node->text[0] == '+' || node->text[0] == '-');
	if (!*p || strspn(p, "0123456789") != strlen(p))
		return false;
	/* Clamped to LONG_MIN or LONG_MAX when too long: out of range anyway. */
	*value = strtol(node->text, NULL, 10);
	return true;
}

/* What a node is, for "found ...": a mapping, a list, null, 5, "text", the string "text". */
static struct shown describe(const struct ynode *node)
{
	struct shown out;
	double ignored;

	switch (node->kind) {
	case YNODE_MAP:
		format_cut(out.text, sizeof(out.text), "a mapping");
		return out;
	case YNODE_LIST:
		format_cut(out.text, sizeof(out.text), "a list");
		return out;
	case YNODE_BAD:
		format_cut(out.text, sizeof(out.text), "an invalid value");
		return out;
	case YNODE_SCALAR:
		break;
	}
	if (is_null(node))
		format_cut(out.text, sizeof(out.text), "null");
	else if (!node->quoted && read_number(node, &ignored) != NOT_A_NUMBER)
		format_cut(out.text, sizeof(out.text), "%.*s", QUOTE_MAX, node->text);
	else
		format_cut(out.text, sizeof(out.text), "%s%s", node->quoted ? "the string " : "",
			 quote(node->text).text);
	return out;
}

bool aif_budgets_valid_member(const char *s)
{
	size_t len = strlen(s);
	if (len < 1 || len > 255)
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p <= 0x20 || *p == 0x7f || *p == ':' || *p == '/')
			return false;
	return true;
}

/* YYYY-MM-DD, a real calendar day; days since 1970-01-01 (proleptic Gregorian). */
static bool read_date(const char *s, int64_t *days)
{
	static const int month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int y, m, d, last;
	int64_t era, yoe, doy, doe, yy;

	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return false;
	for (int i = 0; i < 10; i++)
		if (i != 4 && i != 7 && !(s[i] >= '0' && s[i] <= '9'))
			return false;
	y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
	m = (s[5] - '0') * 10 + (s[6] - '0');
	d = (s[8] - '0') * 10 + (s[9] - '0');
	if (m < 1 || m > 12 || d < 1)
		return false;
	last = month_days[m - 1] + (m == 2 && (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)));
	if (d > last)
		return false;
	/* Howard Hinnant's days_from_civil. */
	yy = m <= 2 ? y - 1 : y;
	era = (yy >= 0 ? yy : yy - 399) / 400;
	yoe = yy - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	*days = era * 146097 + doe - 719468;
	return true;
}

/* ---- name sets ---- */

static size_t hash_name(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return (size_t)h;
}

static struct name_entry *name_set_find(const struct name_set *set, const char *name)
{
	if (!set->cap)
		return NULL;
	for (size_t i = hash_name(name) & (set->cap - 1);; i = (i + 1) & (set->cap - 1)) {
		if (!set->slots[i].name)
			return NULL;
		if (strcmp(set->slots[i].name, name) == 0)
			return &set->slots[i];
	}
}

/* Add name; returns the entry already there (a duplicate), or NULL once added. */
static const struct name_entry *name_set_add(struct loader *L, struct name_set *set,
					     const char *name, const struct ynode *node,
					     size_t index)
{
	struct name_entry *found = name_set_find(set, name);
	size_t i;

	if (found)
		return found;
	if ((set->n + 1) * 2 > set->cap) {
		struct name_set grown = {.cap = set->cap ? set->cap * 2 : 16, .n = set->n};
		grown.slots = zalloc(L, grown.cap, sizeof(*grown.slots));
		if (!grown.slots)
			return NULL;
		for (size_t j = 0; j < set->cap; j++) {
			if (!set->slots[j].name)
				continue;
			for (i = hash_name(set->slots[j].name) & (grown.cap - 1);
			     grown.slots[i].name; i = (i + 1) & (grown.cap - 1))
				;
			grown.slots[i] = set->slots[j];
		}
		free(set->slots);
		*set = grown;
	}
	for (i = hash_name(name) & (set->cap - 1); set->slots[i].name; i = (i + 1) & (set->cap - 1))
		;
	set->slots[i] = (struct name_entry){.name = name, .node = node, .index = index};
	set->n++;
	return NULL;
}

static void name_set_free(struct name_set *set)
{
	free(set->slots);
	set->slots = NULL;
	set->cap = set->n = 0;
}

/* ---- mappings ---- */

static const struct ynode *get(const struct ynode *map, const char *key)
{
	for (size_t i = 0; i + 1 < map->n_child; i += 2) {
		const struct ynode *k = map->child[i];
		if (is_string(k) && strcmp(k->text, key) == 0)
			return map->child[i + 1];
	}
	return NULL;
}

/* Keys must be strings, known, and given once. Only the first of a duplicate key is used. */
static void check_keys(struct loader *L, const struct ynode *map, const char *const *allowed,
		       size_t n_allowed, const char *ctx)
{
	const struct ynode *first[16] = {0};
	char expected[256];

	for (size_t i = 0; i + 1 < map->n_child; i += 2) {
		const struct ynode *k = map->child[i];
		size_t a;

		if (k->kind == YNODE_BAD)
			continue;
		if (!is_string(k)) {
			error(L, k, "expected a key name %s, found %s", ctx, describe(k).text);
			continue;
		}
		if (!k->quoted && strcmp(k->text, "<<") == 0) {
			error(L, k,
			      "yaml merge keys (<<) are not supported; write the keys out in full");
			continue;
		}
		for (a = 0; a < n_allowed && strcmp(k->text, allowed[a]) != 0; a++)
			;
		if (a == n_allowed) {
			error(L, k, "unknown key %s %s; expected one of: %s", quote(k->text).text,
			      ctx, join(expected, sizeof(expected), allowed, n_allowed));
		} else if (a < sizeof(first) / sizeof(first[0]) && first[a]) {
			error(L, k, "duplicate key %s %s; first given at line %u",
			      quote(k->text).text, ctx, first[a]->line);
		} else if (a < sizeof(first) / sizeof(first[0])) {
			first[a] = k;
		}
	}
}

static const struct ynode *require(struct loader *L, const struct ynode *map, const char *key,
				   const char *ctx)
{
	const struct ynode *value = get(map, key);
	if (!value)
		error(L, map, "missing key \"%s\" %s", key, ctx);
	return value;
}

/* ---- values shared by factories and projects ---- */

static char *read_name(struct loader *L, const struct ynode *node, const char *ctx)
{
	if (!node || node->kind == YNODE_BAD)
		return NULL;
	if (!is_string(node) || !node->text[0]) {
		error(L, node, "expected a non-empty string for \"name\" %s, found %s", ctx,
		      describe(node).text);
		return NULL;
	}
	return copy(L, node->text);
}

/*
 * budgets: {period: gpu-hours}. Appends to *out; when add_to is given, adds each valid amount
 * to add_to[period index]; when at is given, records where each period is given (the value node).
 * Returns false when the mapping itself cannot be read.
 */
static bool read_budgets(struct loader *L, const struct ynode *node, const char *owner,
			 struct aif_budget **out, size_t *n_out, double *add_to,
			 const struct ynode **at)
{
	char expected[400];
	struct name_set seen = {0};
	const char **period_ids;

	if (node->kind == YNODE_BAD)
		return false;
	if (node->kind != YNODE_MAP) {
		error(L, node,
		      "expected a mapping of period ids to gpu-hours for \"budgets\" in %s, found "
		      "%s",
		      owner, describe(node).text);
		return false;
	}
	*out = zalloc(L, node->n_child / 2, sizeof(**out));
	period_ids = zalloc(L, L->model->n_periods, sizeof(*period_ids));
	for (size_t i = 0; period_ids && i < L->model->n_periods; i++)
		period_ids[i] = L->model->periods[i].id;
	for (size_t i = 0; i + 1 < node->n_child; i += 2) {
		const struct ynode *k = node->child[i], *v = node->child[i + 1];
		const struct name_entry *known = NULL, *dup;
		double amount = 0;
		enum number_kind kind;

		if (k->kind == YNODE_BAD)
			continue;
		if (!is_string(k)) {
			error(L, k, "expected a period id in budgets of %s, found %s", owner,
			      describe(k).text);
			continue;
		}
		struct shown period = quote(k->text);
		dup = name_set_add(L, &seen, k->text, k, 0);
		if (dup) {
			error(L, k, "duplicate period %s in budgets of %s; first given at line %u",
			      period.text, owner, dup->node->line);
			continue;
		}
		if (L->periods_known) {
			known = name_set_find(&L->periods, k->text);
			if (!known) {
				error(L, k,
				      "unknown period %s in budgets of %s; expected one of: %s",
				      period.text, owner,
				      join(expected, sizeof(expected), period_ids,
					   period_ids ? L->model->n_periods : 0));
				continue;
			}
		}
		if (at && known && known->index < L->model->n_periods)
			at[known->index] = v;
		if (v->kind == YNODE_BAD)
			continue;
		kind = read_number(v, &amount);
		if (kind != NUMBER || !(amount > 0)) {
			error(L, v,
			      "expected a positive number of gpu-hours for period %s in budgets of "
			      "%s, found %s",
			      period.text, owner, describe(v).text);
			continue;
		}
		if (amount > BUDGET_MAX_GPU_HOURS) {
			error(L, v,
			      "expected at most %.0f gpu-hours for period %s in budgets of %s, "
			      "found %s",
			      BUDGET_MAX_GPU_HOURS, period.text, owner, describe(v).text);
			continue;
		}
		if (add_to && known && known->index < L->model->n_periods)
			add_to[known->index] += amount;
		if (*out) {
			struct aif_budget *b = &(*out)[*n_out];
			b->period_id = copy(L, k->text);
			if (b->period_id) {
				b->gpu_hours = amount;
				(*n_out)++;
			}
		}
	}
	free(period_ids);
	name_set_free(&seen);
	return true;
}

/* A key whose value is one of two words: *out is the index of the one given (unchanged if none). */
static void read_word(struct loader *L, const struct ynode *node, const char *key,
		      const char *const words[2], const char *owner, int *out)
{
	if (!node || node->kind == YNODE_BAD)
		return;
	for (int i = 0; i < 2; i++)
		if (is_string(node) && strcmp(node->text, words[i]) == 0) {
			*out = i;
			return;
		}
	error(L, node, "expected %s or %s for \"%s\" in %s, found %s", words[0], words[1], key,
	      owner, describe(node).text);
}

/* on_exhausted and admission, in the order of their enums. */
static void read_policy_words(struct loader *L, const struct ynode *map, const char *owner,
			      struct aif_policy *policy)
{
	int v = (int)policy->on_exhausted;

	read_word(L, get(map, "on_exhausted"), "on_exhausted", aif_on_exhausted_names, owner, &v);
	policy->on_exhausted = (enum aif_on_exhausted)v;
	v = (int)policy->admission;
	read_word(L, get(map, "admission"), "admission", aif_admission_names, owner, &v);
	policy->admission = (enum aif_admission)v;
}

/* grace: the duration syntax of aifd's settings, in whole seconds. */
static bool read_grace(struct loader *L, const struct ynode *node, const char *owner,
		       struct aif_policy *policy)
{
	unsigned long ms;

	if (!node || node->kind == YNODE_BAD)
		return false;
	if (!is_string(node) || aif_parse_duration_ms(node->text, &ms) < 0 || ms % 1000) {
		error(L, node,
		      "expected a duration in whole seconds such as 90s, 30min, 2h or 0 for "
		      "\"grace\" in %s, found %s",
		      owner, describe(node).text);
		return false;
	}
	policy->grace_seconds = ms / 1000;
	return true;
}

static void read_warn_at(struct loader *L, const struct ynode *node, const char *owner,
			 struct aif_policy *policy)
{
	int values[AIF_WARN_AT_MAX];
	size_t n = 0;
	bool ok = true;

	if (!node || node->kind == YNODE_BAD)
		return;
	if (node->kind != YNODE_LIST) {
		error(L, node, "expected a list of percents for \"warn_at\" in %s, found %s", owner,
		      describe(node).text);
		return;
	}
	for (size_t i = 0; i < node->n_child; i++) {
		const struct ynode *item = node->child[i];
		long percent;

		if (item->kind == YNODE_BAD) {
			ok = false;
			continue;
		}
		if (i == AIF_WARN_AT_MAX) {
			error(L, item, "too many values in \"warn_at\" of %s; at most %d", owner,
			      AIF_WARN_AT_MAX);
			ok = false;
			break;
		}
		if (!read_integer(item, &percent) || percent < 1 || percent > 100) {
			error(L, item,
			      "expected a whole percent from 1 to 100 in \"warn_at\" of %s, found "
			      "%s",
			      owner, describe(item).text);
			ok = false;
			continue;
		}
		if (n && percent <= values[n - 1]) {
			error(L, item,
			      "values in \"warn_at\" of %s must be strictly increasing; found %ld "
			      "after %d",
			      owner, percent, values[n - 1]);
			ok = false;
			continue;
		}
		values[n++] = (int)percent;
	}
	if (!ok)
		return;
	memcpy(policy->warn_at, values, n * sizeof(values[0]));
	policy->n_warn_at = n;
}

/* ---- members and NSS ---- */

enum lookup { FOUND, NOT_FOUND, LOOKUP_FAILED };

static enum lookup nss_lookup(const char *name, bool group, int *err)
{
	long size = sysconf(group ? _SC_GETGR_R_SIZE_MAX : _SC_GETPW_R_SIZE_MAX);

	if (size <= 0)
		size = 16384;
	for (;;) {
		char *buf = malloc((size_t)size);
		struct passwd pw, *pw_found = NULL;
		struct group gr, *gr_found = NULL;
		int rc;
		bool found;

		if (!buf) {
			*err = ENOMEM;
			return LOOKUP_FAILED;
		}
		if (group)
			rc = getgrnam_r(name, &gr, buf, (size_t)size, &gr_found);
		else
			rc = getpwnam_r(name, &pw, buf, (size_t)size, &pw_found);
		found = group ? gr_found != NULL : pw_found != NULL;
		free(buf);
		if (rc == ERANGE && size < (1L << 20)) {
			size *= 2;
			continue;
		}
		if (rc == 0)
			return found ? FOUND : NOT_FOUND;
		/* NSS modules disagree on how to say "no such name". */
		if (rc == ENOENT || rc == ESRCH || rc == EBADF || rc == EPERM)
			return NOT_FOUND;
		*err = rc;
		return LOOKUP_FAILED;
	}
}

static void resolve_member(struct loader *L, const struct ynode *node, bool group,
			   const char *owner)
{
	const struct aif_budgets_options *o = L->options;
	bool (*exists)(const char *, void *) =
		o ? (group ? o->group_exists : o->user_exists) : NULL;
	enum lookup result;
	int err = 0;

	if (exists)
		result = exists(node->text, o->arg) ? FOUND : NOT_FOUND;
	else
		result = nss_lookup(node->text, group, &err);
	if (result == NOT_FOUND)
		warning(L, node, "%s %s in members of %s was not found through nss on this host",
			group ? "group" : "user", quote(node->text).text, owner);
	else if (result == LOOKUP_FAILED)
		warning(L, node, "could not look up %s %s in members of %s: %s",
			group ? "group" : "user", quote(node->text).text, owner, strerror(err));
}

/* users: or groups: of a project's members. */
static void read_members_list(struct loader *L, const struct ynode *node, bool group,
			      const char *owner, char ***out, size_t *n_out)
{
	const char *what = group ? "group" : "user";
	struct name_set seen = {0};

	if (node->kind == YNODE_BAD)
		return;
	if (node->kind != YNODE_LIST) {
		error(L, node, "expected a list of %s names for \"%ss\" in members of %s, found %s",
		      what, what, owner, describe(node).text);
		return;
	}
	*out = zalloc(L, node->n_child, sizeof(**out));
	for (size_t i = 0; i < node->n_child; i++) {
		const struct ynode *item = node->child[i];
		const struct name_entry *dup;

		if (item->kind == YNODE_BAD)
			continue;
		if (!is_string(item)) {
			error(L, item, "expected a %s name in \"%ss\" of members of %s, found %s",
			      what, what, owner, describe(item).text);
			continue;
		}
		if ((dup = name_set_add(L, &seen, item->text, item, 0))) {
			error(L, item, "duplicate %s %s in members of %s; first given at line %u",
			      what, quote(item->text).text, owner, dup->node->line);
			continue;
		}
		if (!aif_budgets_valid_member(item->text)) {
			error(L, item, "invalid %s name %s in members of %s; " MEMBER_RULE, what,
			      quote(item->text).text, owner);
			continue;
		}
		resolve_member(L, item, group, owner);
		if (*out && ((*out)[*n_out] = copy(L, item->text)))
			(*n_out)++;
	}
	name_set_free(&seen);
}

static void read_members(struct loader *L, const struct ynode *project, const char *owner,
			 struct aif_project *p)
{
	static const char *const keys[] = {"users", "groups"};
	const struct ynode *members = get(project, "members"), *users, *groups;
	char ctx[200];
	int errors_before = L->issues->errors;

	if (!members) {
		warning(L, project, "%s has no members; nobody can submit jobs to it", owner);
		return;
	}
	if (members->kind == YNODE_BAD)
		return;
	if (members->kind != YNODE_MAP) {
		error(L, members,
		      "expected a mapping with users and groups for \"members\" in %s, found %s",
		      owner, describe(members).text);
		return;
	}
	format_cut(ctx, sizeof(ctx), "in members of %s", owner);
	check_keys(L, members, keys, 2, ctx);
	if ((users = get(members, "users")))
		read_members_list(L, users, false, owner, &p->users, &p->n_users);
	if ((groups = get(members, "groups")))
		read_members_list(L, groups, true, owner, &p->groups, &p->n_groups);
	/* Only when members was read without error: a mistake there is reported already. */
	if (L->issues->errors == errors_before && !p->n_users && !p->n_groups)
		warning(L, members, "%s has no members; nobody can submit jobs to it", owner);
}

/* ---- projects ---- */

static void read_project_sectors(struct loader *L, const struct ynode *node, const char *owner,
				 struct aif_project *p)
{
	char expected[400];
	struct name_set seen = {0};

	if (node->kind == YNODE_BAD)
		return;
	if (node->kind != YNODE_LIST) {
		error(L, node, "expected a list of sector ids for \"sectors\" in %s, found %s",
		      owner, describe(node).text);
		return;
	}
	if (!node->n_child) {
		error(L, node,
		      "\"sectors\" in %s is empty; expected at least one sector (the first is "
		      "the project's default)",
		      owner);
		return;
	}
	p->sectors = zalloc(L, node->n_child, sizeof(*p->sectors));
	for (size_t i = 0; i < node->n_child; i++) {
		const struct ynode *item = node->child[i];
		const struct name_entry *dup;

		if (item->kind == YNODE_BAD)
			continue;
		if (!is_string(item)) {
			error(L, item, "expected a sector id in \"sectors\" of %s, found %s", owner,
			      describe(item).text);
			continue;
		}
		struct shown name = quote(item->text);
		if ((dup = name_set_add(L, &seen, item->text, item, 0))) {
			error(L, item,
			      "duplicate sector %s in \"sectors\" of %s; first given at line %u",
			      name.text, owner, dup->node->line);
			continue;
		}
		if (L->sectors_known && !name_set_find(&L->sectors, item->text)) {
			error(L, item,
			      "unknown sector %s in \"sectors\" of %s; expected one of: %s",
			      name.text, owner,
			      join(expected, sizeof(expected),
				   (const char *const *)L->model->sectors, L->model->n_sectors));
			continue;
		}
		if (p->sectors && (p->sectors[p->n_sectors] = copy(L, item->text)))
			p->n_sectors++;
	}
	name_set_free(&seen);
}

/* Where an id gives a name to its owner: "factory \"ai2f\"", else "factory #2". */
static void owner_name(char *buf, size_t size, const char *kind, const struct ynode *id,
		       size_t position, const char *parent)
{
	if (id && is_string(id))
		format_cut(buf, size, "%s %s", kind, quote(id->text).text);
	else if (parent)
		format_cut(buf, size, "%s #%zu of %s", kind, position, parent);
	else
		format_cut(buf, size, "%s #%zu", kind, position);
}

/* An id: present, a string, valid, unique in set. Returns the text when all holds, else NULL. */
static const char *read_id(struct loader *L, const struct ynode *map, const char *kind,
			   const char *ctx, struct name_set *set, const char *unique_note)
{
	const struct ynode *id = require(L, map, "id", ctx);
	const struct name_entry *dup;

	if (!id || id->kind == YNODE_BAD)
		return NULL;
	if (!is_string(id)) {
		error(L, id, "expected a %s id for \"id\" %s, found %s", kind, ctx,
		      describe(id).text);
		return NULL;
	}
	struct shown name = quote(id->text);
	if ((dup = name_set_add(L, set, id->text, id, 0))) {
		error(L, id, "duplicate %s id %s; first given at line %u%s", kind, name.text,
		      dup->node->line, unique_note);
		return NULL;
	}
	if (!aif_name_valid_id(id->text)) {
		error(L, id, "invalid %s id %s; " ID_RULE, kind, name.text);
		return NULL;
	}
	return id->text;
}

static void read_project(struct loader *L, struct aif_factory *f, const char *factory_owner,
			 const struct ynode *node, size_t position, struct period_tally *tally,
			 bool *inherits_grace_with_cancel)
{
	static const char *const keys[] = {
		"id", "name", "sectors", "budgets", "members", "warn_at", "on_exhausted", "grace",
		"admission",
	};
	char owner[200], ctx[220];
	const struct ynode *sectors, *budgets, *grace;
	struct aif_project *p;
	const char *id;
	bool grace_given;

	if (node->kind == YNODE_BAD)
		return;
	if (node->kind != YNODE_MAP) {
		error(L, node, "expected a mapping for project #%zu of %s, found %s", position,
		      factory_owner, describe(node).text);
		return;
	}
	if (!f->projects)
		return; /* out of memory, already noted */
	p = &f->projects[f->n_projects++];
	owner_name(owner, sizeof(owner), "project", get(node, "id"), position, factory_owner);
	format_cut(ctx, sizeof(ctx), "in %s", owner);
	check_keys(L, node, keys, sizeof(keys) / sizeof(keys[0]), ctx);
	id = read_id(L, node, "project", ctx, &L->project_ids,
		     " (project ids are unique across all factories)");
	if (id)
		p->id = copy(L, id);
	p->name = read_name(L, get(node, "name"), ctx);
	if ((sectors = require(L, node, "sectors", ctx)))
		read_project_sectors(L, sectors, owner, p);
	if ((budgets = get(node, "budgets")))
		read_budgets(L, budgets, owner, &p->budgets, &p->n_budgets, tally->projects, NULL);
	read_members(L, node, owner, p);

	p->policy = f->policy;
	read_warn_at(L, get(node, "warn_at"), owner, &p->policy);
	read_policy_words(L, node, owner, &p->policy);
	/* A factory that reserves holds its budget only if every job of it reserves. */
	if (f->policy.admission == AIF_ADMISSION_RESERVE &&
	    p->policy.admission != AIF_ADMISSION_RESERVE)
		error(L, get(node, "admission"), "%s admits by used, but its factory reserves; "
		      "remove \"admission\" from the project, or set it on the factory only", owner);
	grace = get(node, "grace");
	grace_given = read_grace(L, grace, owner, &p->policy);
	if (grace_given && p->policy.grace_seconds &&
	    p->policy.on_exhausted == AIF_ON_EXHAUSTED_DENY)
		warning(L, grace, "\"grace\" in %s has no effect with on_exhausted: deny", owner);
	if (!grace && p->policy.on_exhausted == AIF_ON_EXHAUSTED_CANCEL)
		*inherits_grace_with_cancel = true;
}

/* ---- factories ---- */

/* ---- clusters and what their GPU-hours cost ---- */

/*
 * A GPU-hour charged more than a thousand budget units is a typo; it also keeps charged
 * microseconds (bigint) of a day of ten thousand such GPUs far from overflowing.
 */
#define RATE_MAX 1000.0
#define MODEL_RULE                                                                                 \
	"gpu models are slurm gres types: 1 to 63 letters, digits, '.', '_' or '-', starting "     \
	"with a letter or digit"
#define MEMORY_SYNTAX "expected a memory size such as 80G, 512M or 1T (MiB without a suffix)"

const char *const aif_charge_by_names[2] = {"gpus", "billing"};

static const struct aif_charging default_charging = {.by = AIF_CHARGE_GPUS, .unrated = 1};

/* A GRES type as gres.conf's Type= may give it, including MIG profiles ("1g.10gb"). */
static bool valid_model(const char *s)
{
	size_t len = strlen(s);
	if (len < 1 || len > 63 || !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
				      (*s >= '0' && *s <= '9')))
		return false;
	return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == len;
}

static int rate_by_model(const void *a, const void *b)
{
	return strcmp(((const struct aif_gpu_rate *)a)->model, ((const struct aif_gpu_rate *)b)->model);
}

/* A number of budget units per hour: 0 to RATE_MAX. */
static bool read_rate(struct loader *L, const struct ynode *node, const char *what,
		      const char *owner, double *out)
{
	double rate;

	if (node->kind == YNODE_BAD)
		return false;
	if (read_number(node, &rate) != NUMBER || !(rate >= 0) || rate > RATE_MAX) {
		error(L, node, "expected a rate from 0 to %.0f for %s of %s, found %s", RATE_MAX,
		      what, owner, describe(node).text);
		return false;
	}
	*out = rate;
	return true;
}

static void read_rates(struct loader *L, const struct ynode *node, const char *owner,
		       struct aif_charging *c)
{
	struct name_set seen = {0};

	if (node->kind == YNODE_BAD)
		return;
	if (node->kind != YNODE_MAP) {
		error(L, node, "expected a mapping of gpu models to rates for \"rates\" of %s, found %s",
		      owner, describe(node).text);
		return;
	}
	c->rates = zalloc(L, node->n_child / 2, sizeof(*c->rates));
	for (size_t i = 0; i + 1 < node->n_child; i += 2) {
		const struct ynode *k = node->child[i], *v = node->child[i + 1];
		const struct name_entry *dup;
		char what[120];
		double rate;

		if (k->kind == YNODE_BAD)
			continue;
		if (!is_string(k)) {
			error(L, k, "expected a gpu model in \"rates\" of %s, found %s", owner,
			      describe(k).text);
			continue;
		}
		struct shown model = quote(k->text);
		if ((dup = name_set_add(L, &seen, k->text, k, 0))) {
			error(L, k, "duplicate gpu model %s in \"rates\" of %s; first given at line %u",
			      model.text, owner, dup->node->line);
			continue;
		}
		if (!valid_model(k->text)) {
			error(L, k, "invalid gpu model %s in \"rates\" of %s; " MODEL_RULE, model.text,
			      owner);
			continue;
		}
		format_cut(what, sizeof(what), "gpu model %s", model.text);
		if (!read_rate(L, v, what, owner, &rate))
			continue;
		if (rate == 0)
			warning(L, v, "gpu model %s of %s costs nothing: its usage is recorded but "
				"never charged", model.text, owner);
		if (c->rates && (c->rates[c->n_rates].model = copy(L, k->text)))
			c->rates[c->n_rates++].rate = rate;
	}
	if (c->n_rates)
		qsort(c->rates, c->n_rates, sizeof(*c->rates), rate_by_model);
	name_set_free(&seen);
}

/* 80G, 512M, 1T, or MiB without a suffix, as Slurm writes memory; binary units. */
static bool parse_memory_mb(const char *s, uint64_t *mb)
{
	uint64_t value = 0, scale = 1;
	const char *p = s;

	if (!(*p >= '0' && *p <= '9'))
		return false;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (value > (UINT64_C(1) << 40))
			return false;
		value = value * 10 + (uint64_t)(*p - '0');
	}
	if (*p == 'M' || *p == 'm')
		p++;
	else if (*p == 'G' || *p == 'g')
		scale = 1024, p++;
	else if (*p == 'T' || *p == 't')
		scale = 1024 * 1024, p++;
	if (*p || !value || value > (UINT64_C(1) << 40) / scale)
		return false;
	*mb = value * scale;
	return true;
}

static void read_share(struct loader *L, const struct ynode *node, const char *owner,
		       struct aif_charging *c)
{
	static const char *const keys[] = {"cpus_per_gpu", "memory_per_gpu"};
	const struct ynode *v;
	char ctx[240];
	long cpus;

	if (node->kind == YNODE_BAD)
		return;
	if (node->kind != YNODE_MAP) {
		error(L, node, "expected a mapping with keys cpus_per_gpu and memory_per_gpu for "
		      "\"share\" of %s, found %s", owner, describe(node).text);
		return;
	}
	format_cut(ctx, sizeof(ctx), "in \"share\" of %s", owner);
	check_keys(L, node, keys, sizeof(keys) / sizeof(keys[0]), ctx);
	if ((v = get(node, "cpus_per_gpu")) && v->kind != YNODE_BAD) {
		if (!read_integer(v, &cpus) || cpus < 1 || cpus > 65535)
			error(L, v, "expected a whole number of cpus from 1 to 65535 for "
			      "\"cpus_per_gpu\" %s, found %s", ctx, describe(v).text);
		else
			c->cpus_per_gpu = (uint32_t)cpus;
	}
	if ((v = get(node, "memory_per_gpu")) && v->kind != YNODE_BAD) {
		if (!(v->kind == YNODE_SCALAR && !is_null(v)) ||
		    !parse_memory_mb(v->text, &c->memory_per_gpu_mb))
			error(L, v, MEMORY_SYNTAX " for \"memory_per_gpu\" %s, found %s", ctx,
			      describe(v).text);
	}
	if (!get(node, "cpus_per_gpu") && !get(node, "memory_per_gpu"))
		error(L, node, "\"share\" of %s is empty; give cpus_per_gpu, memory_per_gpu or "
		      "both, or remove it", owner);
}

/* One cluster's settings: {rates, unrated, share, charge}, or null for the defaults. */
static void read_charging(struct loader *L, const struct ynode *node, const char *owner,
			  struct aif_charging *c)
{
	static const char *const keys[] = {"charge", "rates", "unrated", "share"};
	static const char *const gpus_only[] = {"rates", "unrated", "share"};
	const struct ynode *v;
	char ctx[240];
	int by = AIF_CHARGE_GPUS;

	*c = default_charging;
	if (node->kind == YNODE_BAD || is_null(node))
		return;
	if (node->kind != YNODE_MAP) {
		error(L, node, "expected a mapping with keys charge, rates, unrated and share for "
		      "%s, found %s", owner, describe(node).text);
		return;
	}
	format_cut(ctx, sizeof(ctx), "in %s", owner);
	check_keys(L, node, keys, sizeof(keys) / sizeof(keys[0]), ctx);
	read_word(L, get(node, "charge"), "charge", aif_charge_by_names, owner, &by);
	c->by = (enum aif_charge_by)by;
	if (c->by == AIF_CHARGE_BILLING) {
		for (size_t i = 0; i < sizeof(gpus_only) / sizeof(gpus_only[0]); i++)
			if ((v = get(node, gpus_only[i])))
				error(L, v, "\"%s\" of %s has no effect with charge: billing (slurm's "
				      "TRESBillingWeights set the cost); remove it", gpus_only[i],
				      owner);
		return;
	}
	if ((v = get(node, "rates")))
		read_rates(L, v, owner, c);
	c->unrated = 0;
	for (size_t i = 0; i < c->n_rates; i++)
		if (c->rates[i].rate > c->unrated)
			c->unrated = c->rates[i].rate;
	if (!c->n_rates)
		c->unrated = 1;
	if ((v = get(node, "unrated")))
		read_rate(L, v, "\"unrated\"", owner, &c->unrated);
	if ((v = get(node, "share")))
		read_share(L, v, owner, c);
}

/* Whether c has a rate for model (c->rates sorted by model). */
static bool has_rate(const struct aif_charging *c, const char *model)
{
	for (size_t i = 0; i < c->n_rates; i++)
		if (strcmp(c->rates[i].model, model) == 0)
			return true;
	return false;
}

/*
 * Every GPU model Slurm gives cluster (options->cluster_models) has a rate in c, when c
 * charges by GPUs with rates; an error at at for each that has none.
 */
static void check_models_rated(struct loader *L, const struct ynode *at, const char *cluster,
			       const char *owner, const struct aif_charging *c)
{
	const struct aif_budgets_options *o = L->options;

	if (!o || c->by != AIF_CHARGE_GPUS || !c->n_rates)
		return;
	for (size_t i = 0; i < o->n_cluster_models; i++) {
		const struct aif_cluster_models *m = &o->cluster_models[i];

		if (strcmp(m->cluster, cluster) != 0)
			continue;
		for (size_t j = 0; j < m->n_models; j++)
			if (!has_rate(c, m->models[j]))
				error(L, at, "GPU model %s has no rate in %s; Slurm's nodes of the "
				      "cluster have it: add it to \"rates\"", quote(m->models[j]).text,
				      owner);
	}
}

/* A list of names (every GPU costs 1), or, from version 2, a mapping name -> settings. */
static void read_clusters(struct loader *L, const struct ynode *node, const char *owner,
			  struct aif_factory *f)
{
	struct name_set seen = {0};
	bool map = node->kind == YNODE_MAP;
	size_t n;

	if (node->kind == YNODE_BAD)
		return;
	if (map && L->model->version == 1) {
		error(L, node, "settings for each cluster in \"clusters\" of %s need version: 2; "
		      "with version: 1, list the cluster names", owner);
		return;
	}
	if (node->kind != YNODE_LIST && !map) {
		error(L, node,
		      "expected a list of slurm cluster names for \"clusters\" in %s, found %s",
		      owner, describe(node).text);
		return;
	}
	n = map ? node->n_child / 2 : node->n_child;
	if (!n) {
		error(L, node,
		      "\"clusters\" in %s is empty; expected at least one slurm cluster name",
		      owner);
		return;
	}
	f->clusters = zalloc(L, n, sizeof(*f->clusters));
	f->charging = zalloc(L, n, sizeof(*f->charging));
	for (size_t i = 0; i < n; i++) {
		const struct ynode *item = node->child[map ? 2 * i : i];
		const struct name_entry *dup;
		struct aif_charging charging = default_charging;

		if (item->kind == YNODE_BAD)
			continue;
		if (!is_string(item)) {
			error(L, item,
			      "expected a slurm cluster name in \"clusters\" of %s, found %s",
			      owner, describe(item).text);
			continue;
		}
		struct shown name = quote(item->text);
		if ((dup = name_set_add(L, &seen, item->text, item, 0))) {
			error(L, item,
			      "duplicate cluster %s in \"clusters\" of %s; first given at line %u",
			      name.text, owner, dup->node->line);
			continue;
		}
		if (!aif_name_valid_cluster(item->text)) {
			error(L, item,
			      "invalid cluster name %s in \"clusters\" of %s; " CLUSTER_RULE,
			      name.text, owner);
			continue;
		}
		if (map) {
			char cluster_owner[300];

			format_cut(cluster_owner, sizeof(cluster_owner), "cluster %s of %s", name.text,
				   owner);
			read_charging(L, node->child[2 * i + 1], cluster_owner, &charging);
			check_models_rated(L, get(node->child[2 * i + 1], "rates") ?
					      get(node->child[2 * i + 1], "rates") : item,
					   item->text, cluster_owner, &charging);
		}
		if (f->clusters && f->charging &&
		    (f->clusters[f->n_clusters] = copy(L, item->text)))
			f->charging[f->n_clusters++] = charging;
		else
			free_rates(charging.rates, charging.n_rates);
	}
	name_set_free(&seen);
}

static void read_bool(struct loader *L, const struct ynode *node, const char *key,
		      const char *owner, bool *out)
{
	static const char *const yes[] = {"true", "True", "TRUE"}, *const no[] = {"false", "False",
										  "FALSE"};

	if (!node || node->kind == YNODE_BAD)
		return;
	for (size_t i = 0; node->kind == YNODE_SCALAR && !node->quoted && i < 3; i++) {
		if (strcmp(node->text, yes[i]) == 0) {
			*out = true;
			return;
		}
		if (strcmp(node->text, no[i]) == 0) {
			*out = false;
			return;
		}
	}
	error(L, node, "expected true or false for \"%s\" in %s, found %s", key, owner,
	      describe(node).text);
}

/* Project budgets must fit in the factory's, period by period, unless overcommit is allowed. */
static void check_tally(struct loader *L, const struct aif_factory *f, const struct ynode *factory,
			const char *owner, const struct period_tally *tally)
{
	const struct ynode *budgets = get(factory, "budgets");

	for (size_t i = 0; i < L->model->n_periods; i++) {
		double sum = tally->projects[i], own = tally->factory[i];

		if (!(sum > 0))
			continue;
		struct shown period = quote(L->model->periods[i].id);
		if (!tally->factory_at[i]) {
			if (!tally->factory_budgets_unreadable)
				error(L, budgets ? budgets : factory,
				      "projects of %s have budgets for period %s but the factory has "
				      "none; give the factory a budget for it",
				      owner, period.text);
		} else if (own > 0 && !f->allow_overcommit && sum > own * (1 + 1e-12)) {
			error(L, tally->factory_at[i],
			      "projects of %s have %.15g gpu-hours for period %s, more than the "
			      "factory's %.15g; lower them or set allow_overcommit: true",
			      owner, sum, period.text, own);
		}
	}
}

static void read_factory(struct loader *L, const struct ynode *node, size_t position)
{
	static const char *const keys[] = {
		"id", "name", "clusters", "budgets", "on_exhausted", "grace", "warn_at",
		"allow_overcommit", "admission", "projects",
	};
	struct aif_budgets *m = L->model;
	char owner[200], ctx[220];
	const struct ynode *clusters, *budgets, *projects, *grace;
	struct period_tally tally = {0};
	struct aif_factory *f;
	const char *id;
	bool grace_given, grace_used = false;

	if (node->kind == YNODE_BAD)
		return;
	if (node->kind != YNODE_MAP) {
		error(L, node, "expected a mapping for factory #%zu in \"factories\", found %s",
		      position, describe(node).text);
		return;
	}
	if (!m->factories)
		return; /* out of memory, already noted */
	f = &m->factories[m->n_factories++];
	owner_name(owner, sizeof(owner), "factory", get(node, "id"), position, NULL);
	format_cut(ctx, sizeof(ctx), "in %s", owner);
	check_keys(L, node, keys, sizeof(keys) / sizeof(keys[0]), ctx);
	if ((id = read_id(L, node, "factory", ctx, &L->factory_ids, "")))
		f->id = copy(L, id);
	f->name = read_name(L, get(node, "name"), ctx);
	if ((clusters = require(L, node, "clusters", ctx)))
		read_clusters(L, clusters, owner, f);
	read_bool(L, get(node, "allow_overcommit"), "allow_overcommit", owner,
		  &f->allow_overcommit);

	f->policy = default_policy;
	read_warn_at(L, get(node, "warn_at"), owner, &f->policy);
	read_policy_words(L, node, owner, &f->policy);
	grace = get(node, "grace");
	grace_given = read_grace(L, grace, owner, &f->policy);

	tally.factory = zalloc(L, m->n_periods, sizeof(*tally.factory));
	tally.factory_at = zalloc(L, m->n_periods, sizeof(*tally.factory_at));
	tally.projects = zalloc(L, m->n_periods, sizeof(*tally.projects));
	if (!tally.factory || !tally.factory_at || !tally.projects)
		goto out;
	if ((budgets = get(node, "budgets")))
		tally.factory_budgets_unreadable =
			!read_budgets(L, budgets, owner, &f->budgets, &f->n_budgets, tally.factory,
				      tally.factory_at);
	for (size_t i = 0; i < m->n_periods; i++)
		if (tally.factory_at[i] && !(tally.factory[i] > 0))
			tally.factory[i] = -1; /* given but not valid: reported already */

	if ((projects = get(node, "projects")) && projects->kind != YNODE_BAD) {
		if (projects->kind != YNODE_LIST) {
			error(L, projects,
			      "expected a list of projects for \"projects\" in %s, found %s", owner,
			      describe(projects).text);
		} else {
			f->projects = zalloc(L, projects->n_child, sizeof(*f->projects));
			for (size_t i = 0; i < projects->n_child; i++)
				read_project(L, f, owner, projects->child[i], i + 1, &tally,
					     &grace_used);
		}
	}
	check_tally(L, f, node, owner, &tally);
	if (grace_given && f->policy.grace_seconds &&
	    f->policy.on_exhausted == AIF_ON_EXHAUSTED_DENY && !grace_used)
		warning(L, grace, "\"grace\" in %s has no effect with on_exhausted: deny", owner);
out:
	free(tally.factory);
	free(tally.factory_at);
	free(tally.projects);
}

/* ---- top level ---- */

static void read_sectors(struct loader *L, const struct ynode *node)
{
	struct aif_budgets *m = L->model;

	if (node->kind == YNODE_BAD)
		return;
	if (node->kind != YNODE_LIST) {
		error(L, node,
		      "expected a list of sector ids for \"sectors\" at the top level, found %s",
		      describe(node).text);
		return;
	}
	L->sectors_known = true;
	if (!node->n_child)
		error(L, node,
		      "\"sectors\" at the top level is empty; expected at least one sector id");
	m->sectors = zalloc(L, node->n_child, sizeof(*m->sectors));
	for (size_t i = 0; i < node->n_child; i++) {
		const struct ynode *item = node->child[i];
		const struct name_entry *dup;
		bool valid;

		if (item->kind == YNODE_BAD)
			continue;
		if (!is_string(item)) {
			error(L, item,
			      "expected a sector id in \"sectors\" at the top level, found %s",
			      describe(item).text);
			continue;
		}
		struct shown name = quote(item->text);
		valid = aif_name_valid_id(item->text);
		if ((dup = name_set_add(L, &L->sectors, item->text, item,
					valid ? m->n_sectors : NO_INDEX))) {
			error(L, item,
			      "duplicate sector %s at the top level; first given at line %u",
			      name.text, dup->node->line);
			continue;
		}
		if (!valid) {
			error(L, item, "invalid sector id %s; " ID_RULE, name.text);
			continue;
		}
		if (m->sectors && (m->sectors[m->n_sectors] = copy(L, item->text)))
			m->n_sectors++;
	}
}

static bool read_period_date(struct loader *L, const struct ynode *node, const char *key,
			     const char *owner, char out[11], int64_t *epoch)
{
	int64_t days;

	if (node->kind == YNODE_BAD)
		return false;
	if (!is_string(node) || strlen(node->text) != 10 || node->text[4] != '-' ||
	    node->text[7] != '-' || strspn(node->text, "0123456789-") != 10) {
		error(L, node, "expected a date YYYY-MM-DD for \"%s\" in %s, found %s", key, owner,
		      describe(node).text);
		return false;
	}
	if (!read_date(node->text, &days)) {
		error(L, node, "invalid date %s for \"%s\" in %s: there is no such day", node->text,
		      key, owner);
		return false;
	}
	memcpy(out, node->text, 11);
	*epoch = days * 86400;
	return true;
}

static void read_period(struct loader *L, const struct ynode *key, const struct ynode *node,
			struct aif_period *period)
{
	static const char *const keys[] = {"start", "end"};
	char owner[120], ctx[130];
	const struct ynode *start, *end;
	bool start_ok = false, end_ok = false;

	format_cut(owner, sizeof(owner), "period %s", quote(key->text).text);
	format_cut(ctx, sizeof(ctx), "in %s", owner);
	if (node->kind == YNODE_BAD)
		return;
	if (node->kind != YNODE_MAP) {
		error(L, node, "expected a mapping with start and end for %s, found %s", owner,
		      describe(node).text);
		return;
	}
	check_keys(L, node, keys, 2, ctx);
	if ((start = require(L, node, "start", ctx)))
		start_ok = read_period_date(L, start, "start", owner, period->start,
					    &period->start_epoch);
	if ((end = require(L, node, "end", ctx)))
		end_ok = read_period_date(L, end, "end", owner, period->end, &period->end_epoch);
	if (start_ok && end_ok && period->end_epoch <= period->start_epoch)
		error(L, end, "%s ends on %s, not after its start %s", owner, period->end,
		      period->start);
}

static void read_periods(struct loader *L, const struct ynode *node)
{
	struct aif_budgets *m = L->model;

	if (node->kind == YNODE_BAD)
		return;
	if (node->kind != YNODE_MAP) {
		error(L, node,
		      "expected a mapping of period ids to {start, end} for \"periods\" at the top "
		      "level, found %s",
		      describe(node).text);
		return;
	}
	L->periods_known = true;
	if (!node->n_child)
		error(L, node,
		      "\"periods\" at the top level is empty; expected at least one period");
	m->periods = zalloc(L, node->n_child / 2, sizeof(*m->periods));
	for (size_t i = 0; i + 1 < node->n_child; i += 2) {
		const struct ynode *k = node->child[i], *v = node->child[i + 1];
		struct aif_period scratch = {0}, *period = &scratch;
		const struct name_entry *dup;
		bool valid;

		if (k->kind == YNODE_BAD)
			continue;
		if (!is_string(k)) {
			error(L, k,
			      "expected a period id in \"periods\" at the top level, found %s",
			      describe(k).text);
			continue;
		}
		struct shown name = quote(k->text);
		valid = aif_name_valid_id(k->text);
		if ((dup = name_set_add(L, &L->periods, k->text, k,
					valid ? m->n_periods : NO_INDEX))) {
			error(L, k, "duplicate period id %s; first given at line %u", name.text,
			      dup->node->line);
			continue;
		}
		if (!valid)
			error(L, k, "invalid period id %s; " ID_RULE, name.text);
		else if (m->periods && (m->periods[m->n_periods].id = copy(L, k->text)))
			period = &m->periods[m->n_periods++];
		/* An invalid period is still checked, into scratch: its dates may be wrong too. */
		read_period(L, k, v, period);
	}
}

static void read_version(struct loader *L, const struct ynode *node)
{
	long version;

	if (node->kind == YNODE_BAD)
		return;
	if (!read_integer(node, &version)) {
		error(L, node, "expected 1 or %d for \"version\" at the top level, found %s",
		      AIF_BUDGETS_SCHEMA_VERSION, describe(node).text);
		return;
	}
	if (version < 1 || version > AIF_BUDGETS_SCHEMA_VERSION) {
		error(L, node, "unsupported schema version %s; this aif reads versions 1 to %d",
		      node->text, AIF_BUDGETS_SCHEMA_VERSION);
		return;
	}
	L->model->version = (int)version;
}

static void read_root(struct loader *L, const struct ynode *root)
{
	static const char *const keys[] = {"version", "sectors", "periods", "factories"};
	static const char *const ctx = "at the top level";
	const struct ynode *node;

	if (root->kind == YNODE_BAD)
		return;
	if (root->kind != YNODE_MAP) {
		error(L, root,
		      "expected a mapping with keys version, sectors, periods and factories at the "
		      "top level, found %s",
		      describe(root).text);
		return;
	}
	check_keys(L, root, keys, sizeof(keys) / sizeof(keys[0]), ctx);
	if ((node = require(L, root, "version", ctx)))
		read_version(L, node);
	if ((node = require(L, root, "sectors", ctx)))
		read_sectors(L, node);
	if ((node = require(L, root, "periods", ctx)))
		read_periods(L, node);
	if (!(node = require(L, root, "factories", ctx)) || node->kind == YNODE_BAD)
		return;
	if (node->kind != YNODE_LIST) {
		error(L, node,
		      "expected a list of factories for \"factories\" at the top level, found %s",
		      describe(node).text);
		return;
	}
	if (!node->n_child)
		error(L, node,
		      "\"factories\" at the top level is empty; expected at least one factory");
	L->model->factories = zalloc(L, node->n_child, sizeof(*L->model->factories));
	for (size_t i = 0; i < node->n_child; i++)
		read_factory(L, node->child[i], i + 1);
}

/* ---- public ---- */

static void free_strings(char **strings, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(strings[i]);
	free(strings);
}

static void free_budget_list(struct aif_budget *budgets, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(budgets[i].period_id);
	free(budgets);
}

void aif_budgets_free(struct aif_budgets *budgets)
{
	if (!budgets)
		return;
	free_strings(budgets->sectors, budgets->n_sectors);
	for (size_t i = 0; i < budgets->n_periods; i++)
		free(budgets->periods[i].id);
	free(budgets->periods);
	for (size_t i = 0; i < budgets->n_factories; i++) {
		struct aif_factory *f = &budgets->factories[i];
		free(f->id);
		free(f->name);
		for (size_t j = 0; f->charging && j < f->n_clusters; j++)
			free_rates(f->charging[j].rates, f->charging[j].n_rates);
		free(f->charging);
		free_strings(f->clusters, f->n_clusters);
		free_budget_list(f->budgets, f->n_budgets);
		for (size_t j = 0; j < f->n_projects; j++) {
			struct aif_project *p = &f->projects[j];
			free(p->id);
			free(p->name);
			free_strings(p->sectors, p->n_sectors);
			free_budget_list(p->budgets, p->n_budgets);
			free_strings(p->users, p->n_users);
			free_strings(p->groups, p->n_groups);
		}
		free(f->projects);
	}
	free(budgets->factories);
	free(budgets);
}

int aif_budgets_parse(const char *file, const char *text, size_t len,
		      const struct aif_budgets_options *options, struct aif_budgets **out,
		      aif_budgets_report_fn report, void *arg)
{
	struct budgets_issues issues = {.file = file};
	struct loader L = {.issues = &issues, .options = options};
	struct ynode *root = NULL;
	int errors;

	if (out)
		*out = NULL;
	if (len > AIF_BUDGETS_MAX_BYTES)
		budgets_issue(&issues, false, 0, 0,
			      "file is larger than %u MiB; a budgets file is far smaller",
			      AIF_BUDGETS_MAX_BYTES >> 20);
	else
		root = budgets_tree_parse(text ? text : "", text ? len : 0, &issues);
	if (root) {
		L.model = zalloc(&L, 1, sizeof(*L.model));
		if (L.model)
			read_root(&L, root);
		if (L.out_of_memory)
			budgets_issue(&issues, false, 0, 0, "out of memory");
	}
	budgets_tree_free(root);
	name_set_free(&L.sectors);
	name_set_free(&L.periods);
	name_set_free(&L.factory_ids);
	name_set_free(&L.project_ids);
	errors = issues.errors;
	budgets_issues_deliver(&issues, report, arg);
	if (errors == 0 && out)
		*out = L.model;
	else
		aif_budgets_free(L.model);
	return errors;
}

/*
 * The file's bytes, at most one past AIF_BUDGETS_MAX_BYTES (enough for the parser to say it
 * is too large). Returns 0, or -1 with the reason reported.
 */
static int read_file(const char *path, char **text, size_t *len, struct budgets_issues *issues)
{
	FILE *f = fopen(path, "rb");
	size_t cap = 0;

	*text = NULL;
	*len = 0;
	if (!f) {
		budgets_issue(issues, false, 0, 0, "could not open %s: %s", path, strerror(errno));
		return -1;
	}
	while (*len <= AIF_BUDGETS_MAX_BYTES) {
		size_t got;
		if (*len == cap) {
			char *grown = realloc(*text, cap = cap ? cap * 2 : 65536);
			if (!grown) {
				budgets_issue(issues, false, 0, 0, "out of memory");
				break;
			}
			*text = grown;
		}
		got = fread(*text + *len, 1, cap - *len, f);
		*len += got;
		if (got == 0)
			break;
	}
	if (ferror(f))
		budgets_issue(issues, false, 0, 0, "could not read %s: %s", path, strerror(errno));
	fclose(f);
	if (issues->errors) {
		free(*text);
		*text = NULL;
		return -1;
	}
	return 0;
}

int aif_budgets_load(const char *path, const struct aif_budgets_options *options,
		     struct aif_budgets **out, aif_budgets_report_fn report, void *arg)
{
	struct budgets_issues issues = {.file = path};
	char *text;
	size_t len;
	int errors;

	if (out)
		*out = NULL;
	if (read_file(path, &text, &len, &issues) < 0) {
		errors = issues.errors;
		budgets_issues_deliver(&issues, report, arg);
		return errors;
	}
	errors = aif_budgets_parse(path, text, len, options, out, report, arg);
	free(text);
	return errors;
}
