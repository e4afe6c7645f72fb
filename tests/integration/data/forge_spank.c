/*
 * A SPANK plugin any user can build and load in their own sbatch, through a private
 * SLURM_CONF whose PlugStackConfig names it (plugin_admit.sh). In the allocator context it
 * sets AIF_PROJECT in the job control environment to $FORGE_PROJECT, overwriting what aif.so
 * put there when both are loaded (this one after it): the prolog and epilog then read
 * SPANK_AIF_PROJECT=$FORGE_PROJECT, which the user chose and aifd must not believe.
 */
#include <stdlib.h>

#include <slurm/spank.h>

SPANK_PLUGIN(forge, 1);

int slurm_spank_init_post_opt(spank_t sp, int ac, char **av)
{
	const char *project = getenv("FORGE_PROJECT");

	(void)ac;
	(void)av;
	if (spank_context() != S_CTX_ALLOCATOR || !project)
		return 0;
	if (spank_job_control_setenv(sp, "AIF_PROJECT", project, 1) != ESPANK_SUCCESS) {
		slurm_error("forge: could not set AIF_PROJECT in the job control environment");
		return -1;
	}
	return 0;
}
