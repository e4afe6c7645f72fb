/*
 * aif.so: the SPANK plugin. This file is only the dispatch: the entry points Slurm calls,
 * each handing over to the code for its context.
 *
 * Whatever happens, no callback that runs in slurmd, slurmstepd or the prolog/epilog may
 * return a negative value (that drains the node); see ../shared/SLURM-NOTES.md.
 */
#include <slurm/spank.h>

SPANK_PLUGIN(aif, 1);

int slurm_spank_init(spank_t sp, int ac, char **av)
{
	(void)sp;
	(void)ac;
	(void)av;
	return 0;
}
