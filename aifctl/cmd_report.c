/*
 * aifctl report --by factory|sector|project|month [--period P]: physical GPU-hours from
 * aif_report, their share, and the charged hours (what the budgets were charged: the rates).
 */
#include <stdio.h>
#include <string.h>

#include "aifctl.h"

static const struct {
	const char *by;
	const char *keys; /* the grouping key columns, selected and grouped by */
	const char *group_by;
	const char *order;
} groupings[] = {
	{"factory", "factory", "1", "gpu_hours DESC, factory"},
	{"sector", "sector", "1", "gpu_hours DESC, sector"},
	{"project", "factory, project", "1, 2", "gpu_hours DESC, factory, project"},
	{"month", "to_char(u.first_day, 'YYYY-MM') AS month", "1", "month"},
};

int aifctl_cmd_report(const struct aifctl *ctl)
{
	char sql[1024];
	PGconn *conn;
	size_t g;
	int rc;

	if (!ctl->by) {
		fprintf(stderr, "aifctl: usage: aifctl report --by factory|sector|project|month [--period P]\n");
		return AIFCTL_INVALID;
	}
	for (g = 0; g < sizeof(groupings) / sizeof(groupings[0]); g++)
		if (strcmp(ctl->by, groupings[g].by) == 0)
			break;
	if (g == sizeof(groupings) / sizeof(groupings[0])) {
		fprintf(stderr, "aifctl: invalid --by \"%s\": expected factory, sector, project or month\n", ctl->by);
		return AIFCTL_INVALID;
	}
	if (!(conn = aifctl_connect(ctl, 1)))
		return AIFCTL_FAILURE;
	rc = ctl->period ? aifctl_check_period(conn, ctl->period) : AIFCTL_OK;
	/*
	 * The SQL text comes from the table above only; the period goes as a parameter. Without a
	 * period, the monthly view is enough and about ten times faster; periods are whole days,
	 * so with one, the daily view.
	 */
	snprintf(sql, sizeof(sql),
		 "SELECT %s, round(sum(gpu_hours)::numeric, 1) AS gpu_hours,"
		 "       round((100 * sum(gpu_hours) / nullif(sum(sum(gpu_hours)) OVER (), 0))::numeric, 1) AS pct,"
		 "       round(sum(charged_hours)::numeric, 1) AS charged_hours"
		 "  FROM %s"
		 " GROUP BY %s ORDER BY %s",
		 groupings[g].keys,
		 ctl->period ? "(SELECT d.*, d.day AS first_day FROM aif_report.usage_daily d) u"
			       " JOIN aif.periods p ON p.id = $1 AND u.day >= p.starts_on AND u.day < p.ends_on"
			     : "(SELECT m.*, m.month AS first_day FROM aif_report.usage_monthly m) u",
		 groupings[g].group_by, groupings[g].order);
	if (rc == AIFCTL_OK) {
		const char *params[] = {ctl->period};
		rc = aifctl_print_query(ctl, conn, NULL, sql, ctl->period ? 1 : 0, params);
	}
	PQfinish(conn);
	return rc;
}
