/* job_script context: per-node usage records (in progress). */
#include "plugin.h"

void aif_account(spank_t sp, const struct aif_plugin_settings *s, bool end)
{
	(void)sp;
	(void)s;
	(void)end;
}
