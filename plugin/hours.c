/* GPU-hours as people read them (plugin.h). */
#include <stdio.h>
#include <string.h>

#include "plugin.h"

void hours_trim(char *fixed)
{
	size_t n = strlen(fixed);

	if (!strchr(fixed, '.'))
		return;
	while (n > 0 && fixed[n - 1] == '0')
		fixed[--n] = '\0';
	if (n > 0 && fixed[n - 1] == '.')
		fixed[--n] = '\0';
}

void hours_text(char *buf, size_t len, double hours)
{
	snprintf(buf, len, "%.2f", hours);
	hours_trim(buf);
}
