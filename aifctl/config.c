/* aifctl's config file (default /etc/aif/aifctl.conf): "key = value" lines (docs/aifctl.md). */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "aif_settings.h"
#include "aifctl.h"

#define FIELD(name) offsetof(struct aifctl_config, name), sizeof(((struct aifctl_config *)0)->name)

static const struct aif_setting config_settings[] = {
	{"db", AIF_SETTING_STRING, FIELD(db), 0, 0, NULL},
	{"server", AIF_SETTING_STRING, FIELD(server), 0, 0, NULL},
	{"cluster", AIF_SETTING_STRING, FIELD(cluster), 0, 0, NULL},
	{"munge_socket", AIF_SETTING_STRING, FIELD(munge_socket), 0, 0, NULL},
	{"spool_dir", AIF_SETTING_STRING, FIELD(spool_dir), 0, 0, NULL},
};

static void report_config_error(const char *path, unsigned line, const struct aif_diag *diag, void *arg)
{
	(void)arg;
	if (line)
		fprintf(stderr, "aifctl: ERROR:  %s:%u: %s\n", path, line, diag->message);
	else
		fprintf(stderr, "aifctl: ERROR:  %s\n", diag->message);
	if (diag->hint[0])
		fprintf(stderr, "HINT:  %s\n", diag->hint);
}

int aifctl_read_config(const struct aifctl *ctl, struct aifctl_config *config)
{
	const char *path = ctl->config_path ? ctl->config_path : AIFCTL_DEFAULT_CONFIG;

	memset(config, 0, sizeof(*config));
	/* An explicit --config must exist; the default one is optional. */
	if (!ctl->config_path && access(AIFCTL_DEFAULT_CONFIG, F_OK) != 0)
		return 0;
	if (aif_settings_read_file(config_settings, sizeof(config_settings) / sizeof(config_settings[0]),
				   config, path, NULL, report_config_error, NULL) != 0)
		return -1;
	return 0;
}
