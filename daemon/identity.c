#include "identity.h"

#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_GROUPS 4096 /* beyond this a user's further groups are not considered */

/* Names are copied into one growing arena; pointers are fixed up at the end. */
struct arena {
	char *text;
	size_t len, cap;
	size_t offsets[MAX_GROUPS + 1]; /* [0] the user, then the groups */
	size_t n;                       /* group names added */
	int has_user;
};

static int add(struct arena *a, const char *name)
{
	size_t n = strlen(name) + 1;

	if (a->len + n > a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 1024;
		char *text;
		while (cap < a->len + n)
			cap *= 2;
		text = realloc(a->text, cap);
		if (!text)
			return -1;
		a->text = text;
		a->cap = cap;
	}
	memcpy(a->text + a->len, name, n);
	a->len += n;
	return 0;
}

static void add_group(struct arena *a, gid_t gid, char *buf, size_t size)
{
	struct group gr, *found = NULL;

	if (a->n >= MAX_GROUPS)
		return;
	if (getgrgid_r(gid, &gr, buf, size, &found) != 0 || !found)
		return;
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->text + a->offsets[1 + i], gr.gr_name) == 0)
			return;
	a->offsets[1 + a->n] = a->len;
	if (add(a, gr.gr_name) == 0)
		a->n++;
}

void identity_lookup(uid_t uid, gid_t gid, struct identity *id)
{
	struct arena *a = calloc(1, sizeof(*a));
	char buf[16384];
	struct passwd pw, *found = NULL;
	const char **groups;

	memset(id, 0, sizeof(*id));
	if (!a)
		return;
	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &found) == 0 && found && add(a, pw.pw_name) == 0) {
		a->has_user = 1;
		if (gid == (gid_t)-1)
			gid = pw.pw_gid;
	}
	add_group(a, gid, buf, sizeof(buf));
	if (a->has_user) {
		/* getpwuid_r's buffer is reused: the name is already in the arena. */
		gid_t list[256], *gids = list;
		int n = 256;
		char *name = strdup(a->text);

		if (name && getgrouplist(name, gid, list, &n) < 0) {
			/* n is now the number needed; glibc fills as many as fit in any case. */
			int size = n > MAX_GROUPS ? MAX_GROUPS : n;
			gids = size > 256 ? malloc((size_t)size * sizeof(*gids)) : NULL;
			n = size;
			if (!gids) {
				gids = list;
				n = size < 256 ? size : 256;
			} else if (getgrouplist(name, gid, gids, &n) < 0 || n > size) {
				n = size;
			}
		}
		if (!name)
			n = 0;
		for (int i = 0; i < n; i++)
			add_group(a, gids[i], buf, sizeof(buf));
		if (gids != list)
			free(gids);
		free(name);
	}
	groups = malloc((a->n ? a->n : 1) * sizeof(*groups));
	if (!groups) {
		free(a->text);
		free(a);
		return;
	}
	for (size_t i = 0; i < a->n; i++)
		groups[i] = a->text + a->offsets[1 + i];
	id->user = a->has_user ? a->text : NULL;
	id->groups = groups;
	id->n_groups = a->n;
	id->mem = a;
}

void identity_free(struct identity *id)
{
	struct arena *a = id->mem;

	if (a) {
		free((void *)id->groups);
		free(a->text);
		free(a);
	}
	memset(id, 0, sizeof(*id));
}
