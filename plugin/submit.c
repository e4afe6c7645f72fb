/*
 * Allocator and local context (sbatch, salloc, srun: the user's own process): the submit-time
 * check. A courtesy, since the user controls this process; the authoritative check is the
 * admission in slurmstepd (admit.c).
 *
 * One "check" request to aifd (docs/protocol.md), authenticated by MUNGE as the user:
 *   ok      the job is submitted; the resolved project and sector go into the job control
 *           environment (SPANK_AIF_PROJECT / SPANK_AIF_SECTOR in the prolog and epilog);
 *   warn    likewise, after printing the warning;
 *   refuse  the refusal is printed and nothing is submitted, except with require_project=no
 *           when no project was asked for and the user is a member of none: then the job is
 *           submitted untagged, silently (it is not an AI Factory job);
 *   error   refused, whatever on_unreachable says: aifd answered, but could not decide
 *           (a credential it could not check, a request it could not read);
 *   no answer within the timeout: on_unreachable decides; a job submitted unchecked
 *           carries the project and sector the user asked for, if any.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <slurm/spank.h>

#include "aif_proto.h"
#include "aif_units.h"
#include "plugin.h"

/* aifd said nothing useful: on_unreachable=allow submits with a warning, deny refuses. */
static int unreachable(const struct plugin_settings *s, const struct aif_diag *why)
{
	struct aif_diag d;

	aif_diag_clear(&d);
	if (s->on_unreachable == AIF_UNREACHABLE_ALLOW) {
		/* One line: the job goes ahead, and the site's admins are the ones to act. */
		aif_diag_message(&d, "%s; the job is submitted without a budget check", why->message);
		log_diag(false, &d);
		return 0;
	}
	aif_diag_message(&d, "job refused: %s", why->message);
	aif_diag_detail(&d, "This cluster refuses jobs while aifd, which checks GPU-hour budgets, "
			    "cannot answer (on_unreachable=deny).");
	aif_diag_hint(&d, "Try again in a few minutes. If it persists, contact your site's support.");
	log_diag(true, &d);
	return -1;
}

/*
 * The project and sector for the prolog, the epilog and the job (NULL: not set). A convenience
 * only: aifd charges what the job was admitted for, and never a project its user may not use.
 */
static void keep(spank_t sp, const char *project, const char *sector)
{
	const char *const kv[][2] = {{"AIF_PROJECT", project}, {"AIF_SECTOR", sector}};

	for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++) {
		spank_err_t e = kv[i][1] ? spank_job_control_setenv(sp, kv[i][0], kv[i][1], 1) : ESPANK_SUCCESS;
		if (e != ESPANK_SUCCESS)
			slurm_verbose("aif: could not set %s in the job control environment: %s",
				      kv[i][0], spank_strerror(e));
	}
}

/*
 * A project that reserves: the job starts only once its GPUs x its time limit fit what the
 * project and its AI Factory have not yet used or reserved, and waits, held, until then.
 * Said at every submission (sbatch --quiet hides it): the job's own cost is known only to
 * slurmctld, which SPANK does not ask here, and is told when the job waits or starts.
 */
static void tell_reservation(const struct aif_proto_msg *answer)
{
	const char *field = aif_proto_get(&answer->header, "left_gpu_hours");
	const char *period = aif_proto_get(&answer->header, "left_period");
	char left[32];

	if (!aif_proto_get(&answer->header, "admission") || !field || !period)
		return;
	/* The field's fixed decimals ("0.50"), as people read hours: "0.5", "12". */
	snprintf(left, sizeof(left), "%s", field);
	aif_hours_trim(left);
	slurm_info("aif: project \"%s\": %s charged GPU-hours of period %s are neither used nor reserved "
		   "(its or its AI Factory's, whichever is less)",
		   aif_proto_get(&answer->header, "project"), left, period);
	slurm_info("aif: this job reserves its GPUs x its time limit (--time), at the cluster's "
		   "rates, when it starts, and waits, held, until that fits");
}

int submit_check(spank_t sp, const struct plugin_settings *s)
{
	const char *project = options_project(sp);
	const char *sector = options_sector(sp);
	struct aif_proto_msg req, answer;
	struct aif_diag diag;
	int rc;

	/* srun inside an allocation starts a step of a job that was checked and admitted. */
	if (spank_context() == S_CTX_LOCAL && getenv("SLURM_JOB_ID"))
		return 0;

	aif_proto_msg_init(&req, AIF_PROTO_CHECK);
	if ((project && aif_proto_set(&req.header, "project", project) < 0) ||
	    (sector && aif_proto_set(&req.header, "sector", sector) < 0)) {
		/* options.c lets no such value through: not valid UTF-8, or too long */
		aif_diag_clear(&diag);
		aif_diag_message(&diag, "invalid project or sector name");
		aif_diag_hint(&diag, "Check --aif-project, --aif-sector, AIF_PROJECT and AIF_SECTOR.");
		log_diag(true, &diag);
		aif_proto_msg_free(&req);
		return -1;
	}
	rc = client_ask(s, &req, &answer, &diag);
	aif_proto_msg_free(&req);
	if (rc < 0) {
		rc = unreachable(s, &diag);
		/* Submitted unchecked: what the user asked for, for the records (resolved by aifd). */
		if (rc == 0)
			keep(sp, project, sector);
		aif_proto_msg_free(&answer);
		return rc;
	}
	aif_proto_response_diag(&answer, &diag);
	switch (answer.kind) {
	case AIF_PROTO_WARN:
		log_diag(false, &diag);
		/* fall through */
	case AIF_PROTO_OK:
		slurm_verbose("aif: project \"%s\", sector \"%s\"",
			      aif_proto_get(&answer.header, "project"),
			      aif_proto_get(&answer.header, "sector"));
		keep(sp, aif_proto_get(&answer.header, "project"), aif_proto_get(&answer.header, "sector"));
		tell_reservation(&answer);
		break;
	case AIF_PROTO_REFUSE:
		if (!project && !s->require_project && client_answer_is_no_project(&answer)) {
			slurm_verbose("aif: %s; the job is not an AI Factory job", diag.message);
			break;
		}
		log_diag(true, &diag);
		rc = -1;
		break;
	default: /* AIF_PROTO_ERROR: aifd answered but could not decide; not a transport failure */
		client_error_refusal(&answer, "check", &diag);
		log_diag(true, &diag);
		rc = -1;
		break;
	}
	aif_proto_msg_free(&answer);
	return rc;
}
