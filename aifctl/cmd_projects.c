/*
 * aifctl projects: the caller's projects on this cluster and what is left of their budgets,
 * asked from aifd with a MUNGE-authenticated "status" request, so that users need no access
 * to the database. aifd decides which projects the caller (the MUNGE uid) may see.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "aif_client.h"
#include "aif_proto.h"
#include "aifctl.h"
#include "output.h"

static const char *const columns[] = {"period", "factory", "project", "budget_gpu_hours",
				      "used_gpu_hours", "remaining_gpu_hours", "state", "limited_by"};
static const char *const keys[] = {"period", "factory", "project", "budget_gpu_hours",
				   "used_gpu_hours", "remaining_gpu_hours", "state", "scope"};
static const bool numeric[] = {false, false, false, true, true, true, false, false};
#define N_COLUMNS (sizeof(columns) / sizeof(columns[0]))

static int print_answer(const struct aifctl *ctl, const struct aif_proto_msg *answer)
{
	struct output_table *t = output_table_new(N_COLUMNS, columns, numeric);
	int rc = AIFCTL_OK;

	if (!t) {
		aifctl_error("out of memory");
		return AIFCTL_FAILURE;
	}
	for (size_t i = 0; i < answer->nrecords && rc == AIFCTL_OK; i++) {
		const char *row[N_COLUMNS];
		for (size_t c = 0; c < N_COLUMNS; c++)
			row[c] = aif_proto_get(&answer->records[i], keys[c]);
		if (output_table_add_row(t, row) < 0) {
			aifctl_error("out of memory");
			rc = AIFCTL_FAILURE;
		}
	}
	output_table_note(t, AIFCTL_CHARGED_NOTE);
	if (rc == AIFCTL_OK && output_table_print(t, ctl->format, stdout) < 0)
		rc = AIFCTL_FAILURE;
	output_table_free(t);
	return rc;
}

int aifctl_cmd_projects(const struct aifctl *ctl)
{
	struct aifctl_config config;
	struct aif_client_options opts = {0};
	struct aif_proto_msg request, answer;
	struct aif_client *client;
	struct aif_diag diag;
	const char *cluster;
	int rc;

	if (aifctl_read_config(ctl, &config) < 0)
		return AIFCTL_INVALID;
	cluster = ctl->cluster_option ? ctl->cluster_option : config.cluster;
	if (!cluster[0]) {
		aif_diag_clear(&diag);
		aif_diag_message(&diag, "no cluster given");
		aif_diag_hint(&diag, "Give --cluster=NAME (slurm.conf's ClusterName), or set \"cluster\" in %s.",
			      AIFCTL_DEFAULT_CONFIG);
		aifctl_report_error(&diag);
		return AIFCTL_INVALID;
	}
	opts.server = ctl->server_option ? ctl->server_option : config.server[0] ? config.server : NULL;
	opts.munge_socket = config.munge_socket[0] ? config.munge_socket : NULL;
	aif_diag_clear(&diag);
	client = aif_client_new(&opts, &diag);
	if (!client) {
		aifctl_report_error(&diag);
		return AIFCTL_INVALID;
	}
	aif_proto_msg_init(&request, AIF_PROTO_STATUS);
	aif_proto_msg_init(&answer, AIF_PROTO_NONE);
	if (aif_proto_set(&request.header, "cluster", cluster) < 0) {
		aifctl_error("invalid cluster name \"%s\"", cluster);
		rc = AIFCTL_INVALID;
	} else if (aif_client_request(client, &request, &answer, &diag) < 0) {
		aifctl_report_error(&diag);
		rc = AIFCTL_FAILURE;
	} else if (answer.kind != AIF_PROTO_OK && answer.kind != AIF_PROTO_WARN) {
		aif_proto_response_diag(&answer, &diag);
		aifctl_report_error(&diag);
		rc = AIFCTL_FAILURE;
	} else {
		rc = print_answer(ctl, &answer);
	}
	aif_proto_msg_free(&answer);
	aif_proto_msg_free(&request);
	aif_client_free(client);
	return rc;
}
