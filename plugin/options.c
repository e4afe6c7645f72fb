/*
 * --aif-project and --aif-sector for sbatch, salloc and srun. Registered with
 * spank_option_register() (a static spank_options[] table is invisible to sbatch:
 * docs/slurm.md). AIF_PROJECT and AIF_SECTOR in the environment are the defaults.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <slurm/spank.h>

#include "plugin.h"

enum { OPT_PROJECT = 1, OPT_SECTOR };

/* Set by the option callbacks, in this process (allocator, local, or slurmstepd with remote=1). */
static char project[AIF_NAME_MAX + 1];
static char sector[AIF_NAME_MAX + 1];
/*
 * In slurmstepd: the option that arrived with an invalid value, or NULL. The user controls
 * that value (a private SLURM_CONF skips the submit-time check), so it is never passed over
 * for the environment's: the admission refuses the step (options_valid()).
 */
static const char *remote_invalid;

/*
 * "invalid value for --aif-project" / "... for AIF_PROJECT", with the rule as DETAIL; v NULL
 * when it is not known (too long to read, or not kept).
 */
static void invalid_diag(struct aif_diag *d, const char *what, const char *v)
{
	aif_diag_clear(d);
	/* Not printed when it could garble the terminal. */
	if (!v || name_has_control(v) || strlen(v) > AIF_NAME_MAX)
		aif_diag_message(d, "invalid value for %s", what);
	else
		aif_diag_message(d, "invalid value for %s: \"%s\"", what, v);
	aif_diag_detail(d, "A name has 1 to %d characters, none of them a control character.",
			AIF_NAME_MAX);
}

static void report_invalid(const char *what, const char *v)
{
	struct aif_diag d;

	invalid_diag(&d, what, v);
	log_diag(true, &d);
}

static int option_cb(int val, const char *optarg, int remote)
{
	char *dst = val == OPT_PROJECT ? project : sector;

	if (!name_valid(optarg)) {
		/* Only on the user's side is an error harmless (and helpful). */
		if (!remote) {
			report_invalid(val == OPT_PROJECT ? "--aif-project" : "--aif-sector", optarg);
			return -1;
		}
		remote_invalid = val == OPT_PROJECT ? "--aif-project" : "--aif-sector";
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

int options_register(spank_t sp)
{
	spank_context_t ctx = spank_context();

	for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++) {
		spank_err_t e = spank_option_register(sp, &options[i]);
		if (e != ESPANK_SUCCESS) {
			slurm_error("aif: could not register --%s: %s", options[i].name, spank_strerror(e));
			return -1;
		}
	}
	/* The defaults from the user's environment, checked as the options are. */
	if (ctx == S_CTX_ALLOCATOR || ctx == S_CTX_LOCAL) {
		static const char *const vars[] = {"AIF_PROJECT", "AIF_SECTOR"};
		for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
			const char *v = getenv(vars[i]);
			if (v && v[0] && !name_valid(v)) {
				report_invalid(vars[i], v);
				return -1;
			}
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

const char *options_project(spank_t sp)
{
	static char buf[AIF_NAME_MAX + 1];
	return value(sp, project, "AIF_PROJECT", buf, sizeof(buf));
}

const char *options_sector(spank_t sp)
{
	static char buf[AIF_NAME_MAX + 1];
	return value(sp, sector, "AIF_SECTOR", buf, sizeof(buf));
}

bool options_valid(spank_t sp, struct aif_diag *diag)
{
	static const struct {
		const char *option, *var;
	} names[] = {{project, "AIF_PROJECT"}, {sector, "AIF_SECTOR"}};
	char buf[AIF_NAME_MAX + 1];

	if (remote_invalid) {
		invalid_diag(diag, remote_invalid, NULL);
		return false;
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		spank_err_t e;

		if (names[i].option[0])
			continue; /* the option wins over the variable */
		e = spank_getenv(sp, names[i].var, buf, (int)sizeof(buf));
		if (e == ESPANK_NOSPACE || (e == ESPANK_SUCCESS && buf[0] && !name_valid(buf))) {
			invalid_diag(diag, names[i].var, e == ESPANK_SUCCESS ? buf : NULL);
			return false;
		}
	}
	return true;
}
