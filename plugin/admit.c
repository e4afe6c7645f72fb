/* Remote context: the authoritative admission (in progress). */
#include "plugin.h"

void aif_admit_step(spank_t sp, const struct aif_plugin_settings *s)
{
	(void)sp;
	(void)s;
}

int aif_admit_task(spank_t sp)
{
	(void)sp;
	return 0;
}
