/*
 * Remote context (slurmstepd, root): the authoritative admission. init_post_opt asks aifd with
 * the job id, uid and gid Slurm gives (never what the user claims); aifd decides once per job,
 * so the later steps of an admitted job get the same answer. A refusal cannot be returned here
 * (that drains the node: docs/slurm.md): it is kept, and task_init, which runs in each task as
 * the user, fails the task with the reason on the job's stderr.
 *
 * The job's environment is the user's (a private SLURM_CONF skips the submit-time check), so
 * nothing that matters is taken from it: no cluster name (aifd serves one cluster and knows
 * it), and a project or sector that is not a valid name refuses the step. Only a transport
 * failure (aifd not reached, no answer in time) is left to on_unreachable; any answer that is
 * not "ok" or "warn" refuses, "error" included: an admission aifd could not accept is no
 * admission (docs/protocol.md).
 *
 * The answer is read in user_init, the last callback before slurmstepd forks the tasks: aifd
 * decides while slurmstepd sets the step up (its task plugins, its I/O, the GPUs' environment),
 * so the admission adds to the step's start only what is left of its wait then.
 * No task runs before it is read: should the tasks start without it (with contain_spank, when
 * slurmstepd's child for user_init dies before aif.so's runs: docs/slurm.md "A step's
 * callbacks, in order"), task_init refuses.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <slurm/slurm.h>
#include <slurm/spank.h>

#include "aif_client.h"
#include "plugin.h"

/*
 * This slurmstepd's step: asked in init_post_opt, answered in user_init, read in task_init
 * (forked after both). The client is freed in exit, by slurmstepd: with
 * SlurmdParameters=contain_spank, user_init runs in a child that shares this memory but not
 * the descriptors (docs/slurm.md), which reads the answer and ends the connection but leaves
 * the descriptor to slurmstepd (lib/aif_client.h).
 */
static struct {
	struct aif_client *asking; /* the admit sent; freed in exit */
	bool answered;             /* its answer read (in this process or contain_spank's child) */
	pid_t sender;
	uint32_t job;
	const struct plugin_settings *settings;
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
static void unreachable(const struct plugin_settings *s, uint32_t job, const struct aif_diag *why)
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

void admit_step(spank_t sp, const struct plugin_settings *s)
{
	uint32_t job, stepid, uid, gid;
	const char *project = options_project(sp), *sector = options_sector(sp);
	struct aif_proto_msg req;
	struct aif_diag diag;

	if (item_u32(sp, S_JOB_ID, &job) < 0 || item_u32(sp, S_JOB_STEPID, &stepid) < 0 ||
	    item_u32(sp, S_JOB_UID, &uid) < 0 || item_u32(sp, S_JOB_GID, &gid) < 0) {
		slurm_error("aif: could not read the job's id, step, uid or gid; not admitting it here");
		return;
	}
	if (stepid == SLURM_EXTERN_CONT)
		return; /* no tasks of the user's */
	aif_diag_clear(&diag);
	if (!options_valid(sp, &diag)) {
		aif_diag_hint(&diag, "Check --aif-project, --aif-sector, AIF_PROJECT and AIF_SECTOR.");
		refuse(&diag);
		slurm_info("aif: job %u step refused: %s", job, diag.message);
		return;
	}
	aif_proto_msg_init(&req, AIF_PROTO_ADMIT);
	if (aif_proto_set_u64(&req.header, "job", job) < 0 ||
	    aif_proto_set_u64(&req.header, "uid", uid) < 0 ||
	    aif_proto_set_u64(&req.header, "gid", gid) < 0 ||
	    (project && aif_proto_set(&req.header, "project", project) < 0) ||
	    (sector && aif_proto_set(&req.header, "sector", sector) < 0)) {
		aif_diag_message(&diag, "invalid project or sector name");
		aif_diag_hint(&diag, "Check --aif-project, --aif-sector, AIF_PROJECT and AIF_SECTOR.");
		refuse(&diag);
	} else if (!(step.asking = client_send(s, &req, &diag))) {
		unreachable(s, job, &diag);
	} else {
		step.sender = getpid();
		step.job = job;
		step.settings = s;
	}
	aif_proto_msg_free(&req);
}

/* aifd's answer to the admit sent, or the transport's failure (rc < 0, diag). */
static void judge(int rc, struct aif_proto_msg *ans, struct aif_diag *diag)
{
	const struct plugin_settings *s = step.settings;
	uint32_t job = step.job;

	if (rc < 0) {
		unreachable(s, job, diag);
	} else if (ans->kind == AIF_PROTO_REFUSE && !s->require_project && client_answer_is_no_project(ans)) {
		slurm_info("aif: job %u runs untagged: its user is a member of no project (require_project=no)",
			   job);
	} else if (ans->kind == AIF_PROTO_REFUSE) {
		aif_proto_response_diag(ans, diag);
		refuse(diag);
		slurm_info("aif: job %u refused: %s", job, diag->message);
	} else if (ans->kind == AIF_PROTO_ERROR) {
		client_error_refusal(ans, "admit", diag);
		refuse(diag);
		slurm_info("aif: job %u refused: aifd answered error: %s", job, step.diag.detail);
	}
}

void admit_answer(void)
{
	struct aif_proto_msg ans;
	struct aif_diag diag;
	int rc;

	if (!step.asking || step.answered)
		return;
	aif_diag_clear(&diag);
	rc = aif_client_receive(step.asking, &ans, &diag);
	judge(rc, &ans, &diag);
	step.answered = true; /* after the verdict: a process that dies between leaves it unread */
	aif_proto_msg_free(&ans);
	aif_client_disconnect(step.asking);
}

void admit_exit(void)
{
	if (step.asking && getpid() == step.sender) {
		aif_client_free(step.asking);
		step.asking = NULL;
	}
}

/*
 * The tasks were forked and aifd's answer was never read (above): refused, whatever
 * on_unreachable says, since aifd may have refused. No task reads the connection they all
 * inherit: each would take a part of the answer or none.
 */
static void refuse_unread(void)
{
	struct aif_diag d;

	aif_diag_clear(&d);
	aif_diag_message(&d, "job refused: its admission was not read before its tasks started");
	aif_diag_detail(&d, "slurmstepd forked the step's tasks without aif.so's user_init having read "
			    "aifd's answer.");
	aif_diag_hint(&d, "Tell your site's support: slurmd's log on this node may say why.");
	refuse(&d);
}

int admit_task(spank_t sp)
{
	(void)sp;
	if (step.asking && !step.answered)
		refuse_unread();
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
