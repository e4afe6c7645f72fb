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

/* The gids of name's groups, gid first, at most MAX_GROUPS; *out malloc()ed. Returns how many. */
static int list_groups(const char *name, gid_t gid, gid_t **out)
{
	int size = 64;

	for (;;) {
		gid_t *gids = malloc((size_t)size * sizeof(*gids));
		int n = size;

		if (!gids)
			return 0;
		if (getgrouplist(name, gid, gids, &n) >= 0 || size == MAX_GROUPS) {
			/* Too many groups even for MAX_GROUPS: glibc filled the first ones. */
			*out = gids;
			return n < size ? n : size;
		}
		free(gids);
		size = n > MAX_GROUPS ? MAX_GROUPS : n; /* n: how many there are */
	}
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
		char *name = strdup(a->text);
		gid_t *gids = NULL;
		int n = name ? list_groups(name, gid, &gids) : 0;

		for (int i = 0; i < n; i++)
			add_group(a, gids[i], buf, sizeof(buf));
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
