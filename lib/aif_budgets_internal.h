/*
 * Private to lib/aif_budgets*.c: the issue list every stage reports into, and the small
 * YAML tree (with positions) that the schema validator walks.
 */
#ifndef AIF_BUDGETS_INTERNAL_H
#define AIF_BUDGETS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "aif_budgets.h"

/* Past this many, issues are counted but not kept: a broken file must not exhaust memory. */
#define AIF_BUDGETS_MAX_ISSUES 1000
/* Deeper than the schema ever goes (it needs 8 levels); deeper stops the parse. */
#define AIF_BUDGETS_MAX_DEPTH 32
/* A large factory file has tens of thousands of nodes. */
#define AIF_BUDGETS_MAX_NODES 1000000
#define AIF_BUDGETS_MAX_BYTES (16u << 20)

struct budgets_issue_slot {
	struct aif_budgets_issue issue;
	size_t seq; /* order of finding, to keep sorting stable */
};

/* Findings of one load, handed to the caller sorted by position (file order). */
struct budgets_issues {
	const char *file;
	struct budgets_issue_slot *slots;
	size_t n, cap;
	size_t dropped; /* not kept: past AIF_BUDGETS_MAX_ISSUES or out of memory */
	int errors;
	int warnings;
};

void budgets_issue(struct budgets_issues *issues, bool warning, unsigned line, unsigned column,
		   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Sort by position, hand each to report (which may be NULL), and free the list. */
void budgets_issues_deliver(struct budgets_issues *issues, aif_budgets_report_fn report, void *arg);

enum ynode_kind {
	YNODE_SCALAR,
	YNODE_LIST,
	YNODE_MAP,
	YNODE_BAD, /* already reported (an alias, a NUL in a string): validators skip it */
};

struct ynode {
	enum ynode_kind kind;
	bool quoted; /* a quoted or block scalar is always a string; a plain one may be a number */
	unsigned line, column; /* 1-based */
	char *text;            /* YNODE_SCALAR: NUL-terminated */
	/* YNODE_LIST: the items; YNODE_MAP: key, value, key, value, ... */
	struct ynode **child;
	size_t n_child, cap_child;
};

/*
 * Parse one YAML document into a tree. Syntax errors, anchors, aliases, tags, extra documents
 * and excessive nesting are reported; returns NULL when there is nothing to validate (empty
 * input, syntax error, too deep, too many nodes, out of memory), which is then always reported.
 */
struct ynode *budgets_tree_parse(const char *text, size_t len, struct budgets_issues *issues);
void budgets_tree_free(struct ynode *node);

#endif
