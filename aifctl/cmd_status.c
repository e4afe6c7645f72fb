/* aifctl status [--period P]: the budget status of every factory and project. */
#include "aifctl.h"

int aifctl_cmd_status(const struct aifctl *ctl)
{
	PGconn *conn = aifctl_connect(ctl, 1);
	int rc;

	if (!conn)
		return AIFCTL_FAILURE;
	rc = ctl->period ? aifctl_check_period(conn, ctl->period) : AIFCTL_OK;
	if (rc == AIFCTL_OK) {
		const char *params[] = {ctl->period};
		rc = aifctl_print_query(ctl, conn,
			"SELECT period, factory, project,"
			"       round(budget_gpu_hours::numeric, 1) AS budget_gpu_hours,"
			"       round(used_gpu_hours::numeric, 1) AS used_gpu_hours,"
			"       round(remaining_gpu_hours::numeric, 1) AS remaining_gpu_hours,"
			"       round(pct_used::numeric, 1) AS pct_used, state"
			"  FROM aif_report.budget_status"
			" WHERE $1::text IS NULL OR period = $1"
			" ORDER BY period, factory, project NULLS FIRST",
			1, params);
	}
	PQfinish(conn);
	return rc;
}
