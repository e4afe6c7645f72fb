/*
 * The plugstack.conf arguments: "key=value", each validated with a message naming it
 * (docs/plugin.md lists them), and the plugin's way of printing a diagnostic.
 */
#include <errno.h> /* program_invocation_short_name */
#include <stddef.h>
#include <string.h>

#include <slurm/spank.h>

#include "aif_client.h"
#include "aif_proto.h"
#include "aif_settings.h"
#include "plugin.h"

#define FIELD(name) offsetof(struct plugin_settings, name), \
	sizeof(((struct plugin_settings *)0)->name)

static const char *const unreachable_choices[] = {"allow", "deny", NULL};

static const struct aif_setting table[] = {
	{"server", AIF_SETTING_STRING, FIELD(server), 0, 0, NULL},
	{"timeout", AIF_SETTING_DURATION, FIELD(timeout_ms), 100, 60000, NULL},
	{"on_unreachable", AIF_SETTING_ENUM, FIELD(on_unreachable), 0, 0, unreachable_choices},
	{"require_project", AIF_SETTING_BOOL, FIELD(require_project), 0, 0, NULL},
	{"spool_dir", AIF_SETTING_STRING, FIELD(spool_dir), 0, 0, NULL},
	{"munge_socket", AIF_SETTING_STRING, FIELD(munge_socket), 0, 0, NULL},
};

static const struct plugin_settings defaults = {
	.server = AIF_PROTO_DEFAULT_SOCKET,
	.timeout_ms = 5000,
	.on_unreachable = AIF_UNREACHABLE_ALLOW,
	.require_project = true,
	.spool_dir = "/var/spool/aif",
};

/* What the table cannot say: a valid aifd address, absolute paths. 0, or -1 with diag. */
static int check_value(const char *arg, const struct plugin_settings *s, struct aif_diag *diag)
{
	const char *eq = strchr(arg, '=');
	size_t klen = (size_t)(eq - arg);
	const char *path = NULL;

	if (klen == 6 && strncmp(arg, "server", klen) == 0) {
		struct aif_client_options opts = {.server = s->server};
		struct aif_client *c = aif_client_new(&opts, diag); /* parses, connects nothing */
		if (!c) {
			aif_diag_clear(diag);
			aif_diag_message(diag, "invalid value for setting \"server\": \"%s\"", s->server);
			aif_diag_hint(diag, "Use an absolute Unix socket path, or host, host:port or "
					    "[IPv6]:port for TCP.");
			return -1;
		}
		aif_client_free(c);
		return 0;
	}
	if (klen == 9 && strncmp(arg, "spool_dir", klen) == 0)
		path = s->spool_dir;
	else if (klen == 12 && strncmp(arg, "munge_socket", klen) == 0)
		path = s->munge_socket;
	if (path && path[0] != '/') {
		aif_diag_message(diag, "invalid value for setting \"%.*s\": \"%s\"", (int)klen, arg, path);
		aif_diag_detail(diag, "The value must be an absolute path.");
		return -1;
	}
	return 0;
}

int settings_parse(int ac, char **av, struct plugin_settings *s)
{
	int errors = 0;

	*s = defaults;
	for (int i = 0; i < ac; i++) {
		struct aif_diag diag, shown;

		aif_diag_clear(&diag);
		if (aif_setting_parse_arg(table, sizeof(table) / sizeof(table[0]), s, av[i], &diag) == 0 &&
		    check_value(av[i], s, &diag) == 0)
			continue;
		/* The user of sbatch cannot fix this: say where it is. */
		shown = diag;
		aif_diag_message(&shown, "plugstack.conf: %s", diag.message);
		log_diag(true, &shown);
		errors++;
	}
	return errors ? -1 : 0;
}

/*
 * In sbatch, salloc and srun, Slurm prefixes its lines with the program's name ("sbatch: error:
 * ..."), except those of slurm_spank_log(), which prints at error level but as it is: give the
 * DETAIL and HINT lines the same prefix, so that the message reads as one. Elsewhere (slurmd's
 * log, a job's stderr) "aif: " says whose they are.
 */
void log_diag(bool error, const struct aif_diag *diag)
{
	spank_context_t ctx = spank_context();
	bool user = ctx == S_CTX_ALLOCATOR || ctx == S_CTX_LOCAL;
	const char *lead = user ? program_invocation_short_name : "aif";

	if (error)
		slurm_error("aif: %s", diag->message);
	else if (user)
		slurm_spank_log("%s: warning: aif: %s", lead, diag->message);
	else
		slurm_spank_log("aif: warning: %s", diag->message);
	if (diag->detail[0])
		slurm_spank_log("%s: DETAIL:  %s", lead, diag->detail);
	if (diag->hint[0])
		slurm_spank_log("%s: HINT:  %s", lead, diag->hint);
}
