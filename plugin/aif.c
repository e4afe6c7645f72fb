/*
 * aif.so: the SPANK plugin. This file is only the dispatch: the entry points Slurm calls,
 * each handing over to the code for its context (plugin.h).
 *
 * Whatever happens, no callback that runs in slurmd, slurmstepd or the prolog/epilog returns
 * a negative value (that drains the node; docs/slurm.md). The two exceptions are
 * the user's own processes (allocator and local context: a refusal there submits nothing) and
 * task_init, which refuses a job at start by failing its tasks.
 */
#include <stdbool.h>

#include <slurm/spank.h>

#include "plugin.h"

SPANK_PLUGIN(aif, 1);

/* Per process: slurm_spank_init parses once for the callbacks that follow it. */
static struct plugin_settings settings;
static bool settings_ok;

static bool user_side(spank_context_t ctx)
{
	return ctx == S_CTX_ALLOCATOR || ctx == S_CTX_LOCAL;
}

int slurm_spank_init(spank_t sp, int ac, char **av)
{
	spank_context_t ctx = spank_context();

	if (ctx != S_CTX_ALLOCATOR && ctx != S_CTX_LOCAL && ctx != S_CTX_REMOTE)
		return 0; /* slurmd: nothing to do */
	/* The options first, whatever the settings: a job that carries --aif-project must still
	 * find them registered in slurmstepd. */
	if (options_register(sp) != 0)
		return user_side(ctx) ? -1 : 0;
	settings_ok = settings_parse(ac, av, &settings) == 0;
	return settings_ok || !user_side(ctx) ? 0 : -1;
}

int slurm_spank_init_post_opt(spank_t sp, int ac, char **av)
{
	spank_context_t ctx = spank_context();

	(void)ac;
	(void)av;
	if (!settings_ok)
		return 0;
	if (user_side(ctx))
		return submit_check(sp, &settings);
	if (ctx == S_CTX_REMOTE)
		admit_step(sp, &settings);
	return 0;
}

/* The last callback before the tasks fork (as the user): aifd's answer to the admit. */
int slurm_spank_user_init(spank_t sp, int ac, char **av)
{
	(void)sp;
	(void)ac;
	(void)av;
	if (settings_ok && spank_context() == S_CTX_REMOTE)
		admit_answer();
	return 0;
}

int slurm_spank_task_init(spank_t sp, int ac, char **av)
{
	(void)ac;
	(void)av;
	if (!settings_ok || spank_context() != S_CTX_REMOTE)
		return 0;
	return admit_task(sp);
}

int slurm_spank_exit(spank_t sp, int ac, char **av)
{
	(void)sp;
	(void)ac;
	(void)av;
	if (spank_context() == S_CTX_REMOTE)
		admit_exit();
	return 0;
}

/* job_prolog and job_epilog: init is not called in this context; parse here. */
static int account(spank_t sp, int ac, char **av, bool end)
{
	struct plugin_settings s;
	uint32_t job, uid;

	if (settings_parse(ac, av, &s) != 0)
		return 0;
	if (spank_get_item(sp, S_JOB_ID, &job) != ESPANK_SUCCESS ||
	    spank_get_item(sp, S_JOB_UID, &uid) != ESPANK_SUCCESS) {
		slurm_error("aif: %s: no job id or uid; usage not recorded", end ? "epilog" : "prolog");
		return 0;
	}
	account_record(&s, job, uid, end);
	return 0;
}

int slurm_spank_job_prolog(spank_t sp, int ac, char **av)
{
	return account(sp, ac, av, false);
}

int slurm_spank_job_epilog(spank_t sp, int ac, char **av)
{
	return account(sp, ac, av, true);
}
