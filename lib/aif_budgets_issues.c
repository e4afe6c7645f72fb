/*
 * The issues of one budgets file: collected while parsing and validating (which find them in
 * no particular order), then handed over sorted by line and column.
 */
#include "aif_budgets_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void budgets_issue(struct budgets_issues *issues, bool warning, unsigned line, unsigned column,
		   const char *fmt, ...)
{
	struct budgets_issue_slot *slot;
	va_list ap;

	if (warning)
		issues->warnings++;
	else
		issues->errors++;
	if (issues->n == issues->cap) {
		size_t cap = issues->cap ? issues->cap * 2 : 16;
		struct budgets_issue_slot *grown;
		if (cap > AIF_BUDGETS_MAX_ISSUES)
			cap = AIF_BUDGETS_MAX_ISSUES;
		if (cap == issues->cap) {
			issues->dropped++;
			return;
		}
		grown = realloc(issues->slots, cap * sizeof(*grown));
		if (!grown) {
			issues->dropped++;
			return;
		}
		issues->slots = grown;
		issues->cap = cap;
	}
	slot = &issues->slots[issues->n];
	slot->seq = issues->n++;
	slot->issue.file = issues->file;
	slot->issue.line = line;
	slot->issue.column = column;
	slot->issue.warning = warning;
	va_start(ap, fmt);
	vsnprintf(slot->issue.message, sizeof(slot->issue.message), fmt, ap);
	va_end(ap);
}

static int by_position(const void *a, const void *b)
{
	const struct budgets_issue_slot *x = a, *y = b;
	if (x->issue.line != y->issue.line)
		return x->issue.line < y->issue.line ? -1 : 1;
	if (x->issue.column != y->issue.column)
		return x->issue.column < y->issue.column ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void budgets_issues_deliver(struct budgets_issues *issues, aif_budgets_report_fn report, void *arg)
{
	if (issues->n)
		qsort(issues->slots, issues->n, sizeof(issues->slots[0]), by_position);
	for (size_t i = 0; report && i < issues->n; i++)
		report(&issues->slots[i].issue, arg);
	if (report && issues->dropped) {
		/* A summary, not a finding of its own: not counted as an error. */
		struct aif_budgets_issue more = {.file = issues->file};
		snprintf(more.message, sizeof(more.message),
			 "%zu more issues not shown; fix the ones above first", issues->dropped);
		report(&more, arg);
	}
	free(issues->slots);
	issues->slots = NULL;
	issues->n = issues->cap = 0;
}

const char *aif_budgets_issue_format(const struct aif_budgets_issue *issue, char *buf, size_t size)
{
	const char *file = issue->file ? issue->file : "<input>";
	const char *severity = issue->warning ? "warning" : "error";

	if (!size)
		return buf;
	if (issue->line && issue->column)
		snprintf(buf, size, "%s:%u:%u: %s: %s", file, issue->line, issue->column, severity,
			 issue->message);
	else if (issue->line)
		snprintf(buf, size, "%s:%u: %s: %s", file, issue->line, severity, issue->message);
	else
		snprintf(buf, size, "%s: %s: %s", file, severity, issue->message);
	return buf;
}
