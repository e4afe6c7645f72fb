/*
 * What a project or sector name is, as aifd takes it: options.c checks the user's, account.c
 * the ones a job's environment hands the prolog and epilog. No SPANK call: aif-pelog links it.
 */
#include <stdbool.h>
#include <string.h>

#include "aif_proto.h"
#include "plugin.h"

bool name_has_control(const char *v)
{
	for (; *v; v++)
		if ((unsigned char)*v < 0x20 || *v == 0x7f)
			return true;
	return false;
}

bool name_valid(const char *v)
{
	return v && v[0] && strlen(v) <= AIF_NAME_MAX && !name_has_control(v) &&
	       aif_proto_utf8_valid(v);
}
