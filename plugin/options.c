/*
 * --aif-project and --aif-sector for sbatch, salloc and srun. Registered with
 * spank_option_register() (a static spank_options[] table is invisible to sbatch:
 * ../shared/SLURM-NOTES.md). AIF_PROJECT and AIF_SECTOR in the environment are the defaults.
 */
#include <stdlib.h>
#include <string.h>

#include <slurm/spank.h>

#include "plugin.h"

#define MAX_NAME 128 /* longer values are refused as they are given */

enum { OPT_PROJECT = 1, OPT_SECTOR };

/* Set by the option callbacks, in this process (allocator, local, or slurmstepd with remote=1). */
static char project[MAX_NAME + 1];
static char sector[MAX_NAME + 1];

static int option_cb(int val, const char *optarg, int remote)
{
	char *dst = val == OPT_PROJECT ? project : sector;

	if (!optarg || !optarg[0] || strlen(optarg) > MAX_NAME) {
		/* Only on the user's side is an error harmless (and helpful). */
		if (!remote) {
			slurm_error("aif: invalid value for --aif-%s: \"%s\"",
				    val == OPT_PROJECT ? "project" : "sector", optarg ? optarg : "");
			return -1;
		}
		return 0;
	}
	strcpy(dst, optarg);
	return 0;
}

static struct spank_option options[] = {
	{"aif-project", "NAME",
	 "EuroHPC AI Factory project to charge this job's GPU-hours to (default: $AIF_PROJECT, "
	 "else your only project)",
	 1, OPT_PROJECT, option_cb},
	{"aif-sector", "SECTOR",
	 "sector of the work, one of the project's (default: $AIF_SECTOR, else the project's first)",
	 1, OPT_SECTOR, option_cb},
};

int aif_options_register(spank_t sp)
{
	for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++) {
		spank_err_t e = spank_option_register(sp, &options[i]);
		if (e != ESPANK_SUCCESS) {
			slurm_error("aif: could not register --%s: %s", options[i].name, spank_strerror(e));
			return -1;
		}
	}
	return 0;
}

/* The option, else the variable from the user's environment (job environment when remote). */
static const char *value(spank_t sp, const char *option, const char *var, char *buf, size_t size)
{
	if (option[0])
		return option;
	if (spank_context() == S_CTX_REMOTE)
		return spank_getenv(sp, var, buf, (int)size) == ESPANK_SUCCESS && buf[0] ? buf : NULL;
	{
		const char *env = getenv(var);
		return env && env[0] ? env : NULL;
	}
}

const char *aif_option_project(spank_t sp)
{
	static char buf[MAX_NAME + 1];
	return value(sp, project, "AIF_PROJECT", buf, sizeof(buf));
}

const char *aif_option_sector(spank_t sp)
{
	static char buf[MAX_NAME + 1];
	return value(sp, sector, "AIF_SECTOR", buf, sizeof(buf));
}
