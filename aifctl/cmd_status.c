/* aifctl status [--period P]: the budget status of every factory and project. */
#include "aifctl.h"

/*
 * GPU-hours with 1 decimal, or, below 0.05 (a tiny budget, a job of seconds), as many as the
 * views keep (6): never "0.0" for what is not 0.
 */
#define HOURS(col) \
	"CASE WHEN abs(" col ") >= 0.05 OR " col " = 0 THEN round(" col "::numeric, 1)" \
	" ELSE trim_scale(round(" col "::numeric, 6)) END"

int aifctl_cmd_status(const struct aifctl *ctl)
{
	PGconn *conn = aifctl_connect(ctl, 1);
	int rc;

	if (!conn)
		return AIFCTL_FAILURE;
	rc = ctl->period ? aifctl_check_period(conn, ctl->period) : AIFCTL_OK;
	if (rc == AIFCTL_OK) {
		const char *params[] = {ctl->period};
		rc = aifctl_print_query(ctl, conn, AIFCTL_CHARGED_NOTE,
			"SELECT period, factory, project,"
			"       " HOURS("budget_gpu_hours") " AS budget_gpu_hours,"
			"       " HOURS("used_gpu_hours") " AS used_gpu_hours,"
			"       " HOURS("remaining_gpu_hours") " AS remaining_gpu_hours,"
			"       round(pct_used::numeric, 1) AS pct_used, state"
			"  FROM aif_report.budget_status"
			" WHERE $1::text IS NULL OR period = $1"
			" ORDER BY period, factory, project NULLS FIRST",
			1, params);
	}
	PQfinish(conn);
	return rc;
}
