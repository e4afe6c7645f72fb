#include "aif_names.h"

#include <string.h>

/* 1 to 63 bytes from charset, starting with a lower-case letter or a digit. */
static bool valid_name(const char *s, const char *charset)
{
	size_t len = strlen(s);

	if (len < 1 || len > 63)
		return false;
	if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
		return false;
	return strspn(s, charset) == len;
}

bool aif_name_valid_id(const char *id)
{
	return valid_name(id, "abcdefghijklmnopqrstuvwxyz0123456789._-");
}

/* Slurm lower-cases ClusterName anyway. */
bool aif_name_valid_cluster(const char *name)
{
	return valid_name(name, "abcdefghijklmnopqrstuvwxyz0123456789_-");
}
