/*
 * Remote context (slurmstepd, root): the authoritative admission. init_post_opt asks aifd with
 * the uid and gid Slurm gives (never what the user claims); aifd decides once per job, so the
 * later steps of an admitted job get the same answer. A refusal cannot be returned here (that
 * drains the node: ../shared/SLURM-NOTES.md): it is kept, and task_init, which runs in each
 * task as the user, fails the task with the reason on the job's stderr.
 */
#include <stdio.h>
#include <string.h>

#include <slurm/slurm.h>
#include <slurm/spank.h>

#include "plugin.h"

/* This slurmstepd's step: decided in init_post_opt, read in task_init (forked after it). */
static struct {
	bool refused;
	struct aif_diag diag;
} step;

static void refuse(const struct aif_diag *diag)
{
	step.refused = true;
	step.diag = *diag;
}

static int item_u32(spank_t sp, spank_item_t item, uint32_t *out)
{
	return spank_get_item(sp, item, out) == ESPANK_SUCCESS ? 0 : -1;
}

/* What aifd's silence means, by on_unreachable. */
static void unreachable(const struct aif_plugin_settings *s, uint32_t job, const struct aif_diag *why)
{
	struct aif_diag d;

	if (s->on_unreachable == AIF_UNREACHABLE_ALLOW) {
		slurm_info("aif: job %u admitted without aifd (on_unreachable=allow): %s", job, why->message);
		return;
	}
	aif_diag_clear(&d);
	aif_diag_message(&d, "job refused: aifd could not be reached to admit it");
	aif_diag_detail(&d, "%s", why->message);
	aif_diag_hint(&d, "Try again later; if it persists, tell your site's support.");
	refuse(&d);
}

void aif_admit_step(spank_t sp, const struct aif_plugin_settings *s)
{
	uint32_t job, stepid, uid, gid;
	char cluster[128];
	const char *project = aif_option_project(sp), *sector = aif_option_sector(sp);
	struct aif_proto_msg req, ans;
	struct aif_diag diag;

	if (item_u32(sp, S_JOB_ID, &job) < 0 || item_u32(sp, S_JOB_STEPID, &stepid) < 0 ||
	    item_u32(sp, S_JOB_UID, &uid) < 0 || item_u32(sp, S_JOB_GID, &gid) < 0) {
		slurm_error("aif: could not read the job's id, step, uid or gid; not admitting it here");
		return;
	}
	if (stepid == SLURM_EXTERN_CONT)
		return; /* no tasks of the user's */
	if (spank_getenv(sp, "SLURM_CLUSTER_NAME", cluster, sizeof(cluster)) != ESPANK_SUCCESS)
		cluster[0] = '\0';
	aif_diag_clear(&diag);
	aif_proto_msg_init(&req, AIF_PROTO_ADMIT);
	aif_proto_msg_init(&ans, AIF_PROTO_NONE);
	if ((cluster[0] && aif_proto_set(&req.header, "cluster", cluster) < 0) ||
	    aif_proto_set_u64(&req.header, "job", job) < 0 ||
	    aif_proto_set_u64(&req.header, "uid", uid) < 0 ||
	    aif_proto_set_u64(&req.header, "gid", gid) < 0 ||
	    (project && aif_proto_set(&req.header, "project", project) < 0) ||
	    (sector && aif_proto_set(&req.header, "sector", sector) < 0)) {
		aif_diag_message(&diag, "invalid project or sector name");
		aif_diag_hint(&diag, "Check --aif-project, --aif-sector, AIF_PROJECT and AIF_SECTOR.");
		refuse(&diag);
	} else if (aif_ask(s, &req, &ans, &diag) < 0) {
		unreachable(s, job, &diag);
	} else if (ans.kind == AIF_PROTO_REFUSE && !s->require_project && aif_answer_is_no_project(&ans)) {
		slurm_info("aif: job %u runs untagged: its user is a member of no project (require_project=no)",
			   job);
	} else if (ans.kind == AIF_PROTO_REFUSE) {
		aif_proto_response_diag(&ans, &diag);
		refuse(&diag);
		slurm_info("aif: job %u refused: %s", job, diag.message);
	} else if (ans.kind == AIF_PROTO_ERROR) {
		aif_proto_response_diag(&ans, &diag);
		unreachable(s, job, &diag);
	}
	aif_proto_msg_free(&ans);
	aif_proto_msg_free(&req);
}

int aif_admit_task(spank_t sp)
{
	(void)sp;
	if (!step.refused)
		return 0;
	/* In task_init, slurm_error() writes to the job's stderr. */
	slurm_error("aif: %s", step.diag.message);
	if (step.diag.detail[0])
		slurm_error("aif: DETAIL:  %s", step.diag.detail);
	if (step.diag.hint[0])
		slurm_error("aif: HINT:  %s", step.diag.hint);
	return -1;
}
