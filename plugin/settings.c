/* The plugstack.conf arguments: "key=value", each validated with a message naming it. */
#include <stddef.h>
#include <string.h>

#include <slurm/spank.h>

#include "aif_proto.h"
#include "aif_settings.h"
#include "plugin.h"

#define FIELD(name) offsetof(struct aif_plugin_settings, name), \
	sizeof(((struct aif_plugin_settings *)0)->name)

static const char *const unreachable_choices[] = {"allow", "deny", NULL};

static const struct aif_setting table[] = {
	{"server", AIF_SETTING_STRING, FIELD(server), 0, 0, NULL},
	{"timeout", AIF_SETTING_DURATION, FIELD(timeout_ms), 100, 60000, NULL},
	{"on_unreachable", AIF_SETTING_ENUM, FIELD(on_unreachable), 0, 0, unreachable_choices},
	{"require_project", AIF_SETTING_BOOL, FIELD(require_project), 0, 0, NULL},
	{"spool_dir", AIF_SETTING_STRING, FIELD(spool_dir), 0, 0, NULL},
	{"munge_socket", AIF_SETTING_STRING, FIELD(munge_socket), 0, 0, NULL},
};

static const struct aif_plugin_settings defaults = {
	.server = AIF_PROTO_DEFAULT_SOCKET,
	.timeout_ms = 5000,
	.on_unreachable = AIF_UNREACHABLE_ALLOW,
	.require_project = true,
	.spool_dir = "/var/spool/aif",
};

int aif_settings_parse(int ac, char **av, struct aif_plugin_settings *s)
{
	int errors = 0;

	*s = defaults;
	for (int i = 0; i < ac; i++) {
		struct aif_diag diag;

		aif_diag_clear(&diag);
		if (aif_setting_parse_arg(table, sizeof(table) / sizeof(table[0]), s, av[i], &diag) == 0)
			continue;
		slurm_error("aif: plugstack.conf argument %d \"%s\": %s", i + 1, av[i], diag.message);
		if (diag.detail[0])
			slurm_error("aif: DETAIL:  %s", diag.detail);
		if (diag.hint[0])
			slurm_error("aif: HINT:  %s", diag.hint);
		errors++;
	}
	if (!errors && s->spool_dir[0] != '/') {
		slurm_error("aif: plugstack.conf: invalid value for setting \"spool_dir\": \"%s\" is not an absolute path",
			    s->spool_dir);
		errors++;
	}
	return errors ? -1 : 0;
}

void aif_log_diag(bool error, const struct aif_diag *diag)
{
	if (error)
		slurm_error("aif: %s", diag->message);
	else
		slurm_info("aif: %s", diag->message);
	if (diag->detail[0])
		slurm_info("aif: DETAIL:  %s", diag->detail);
	if (diag->hint[0])
		slurm_info("aif: HINT:  %s", diag->hint);
}
