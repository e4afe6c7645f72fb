/* aif_units: GPU-hours and durations for people (aif_units.h). */
#include "aif_units.h"

#include <stdio.h>
#include <string.h>

char *aif_hours_trim(char *fixed)
{
	char *end = fixed + strlen(fixed);

	if (!strchr(fixed, '.'))
		return fixed;
	while (end > fixed && end[-1] == '0')
		*--end = '\0';
	if (end > fixed && end[-1] == '.')
		end[-1] = '\0';
	return fixed;
}

const char *aif_hours_text(char *buf, size_t size, double hours)
{
	snprintf(buf, size, "%.2f", hours);
	return aif_hours_trim(buf);
}

const char *aif_duration_text(char *buf, size_t size, int64_t seconds)
{
	long long d = seconds / 86400, h = seconds % 86400 / 3600, m = seconds % 3600 / 60,
		  s = seconds % 60;

	if (d)
		snprintf(buf, size, "%lld-%02lld:%02lld:%02lld", d, h, m, s);
	else
		snprintf(buf, size, "%02lld:%02lld:%02lld", h, m, s);
	return buf;
}
