/* Allocator and local context: the submit-time check (helper in progress). */
#include "plugin.h"

int aif_submit_check(spank_t sp, const struct aif_plugin_settings *s)
{
	(void)sp;
	(void)s;
	return 0;
}
