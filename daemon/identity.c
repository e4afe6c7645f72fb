#include "identity.h"

#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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

/* One allocation holding the pointer array and the names: copied whole by the cache. */
static int pack(const char *user, const char *const *groups, size_t n, struct identity *id)
{
	size_t size = (n ? n : 1) * sizeof(char *), off;
	char *mem, **ptrs;

	memset(id, 0, sizeof(*id));
	size += user ? strlen(user) + 1 : 0;
	for (size_t i = 0; i < n; i++)
		size += strlen(groups[i]) + 1;
	mem = malloc(size);
	if (!mem)
		return -1;
	ptrs = (char **)mem;
	off = (n ? n : 1) * sizeof(char *);
	if (user) {
		id->user = strcpy(mem + off, user);
		off += strlen(user) + 1;
	}
	for (size_t i = 0; i < n; i++) {
		ptrs[i] = strcpy(mem + off, groups[i]);
		off += strlen(groups[i]) + 1;
	}
	id->groups = (const char *const *)ptrs;
	id->n_groups = n;
	id->mem = mem;
	return 0;
}

/* Ask NSS; on out of memory, an empty identity (only a member by name can match, and none). */
static void resolve(uid_t uid, gid_t gid, struct identity *id)
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
	if (groups) {
		for (size_t i = 0; i < a->n; i++)
			groups[i] = a->text + a->offsets[1 + i];
		pack(a->has_user ? a->text : NULL, groups, a->n, id);
	}
	free(groups);
	free(a->text);
	free(a);
}

/*
 * NSS answers are kept for IDENTITY_TTL_MS, as nscd and sssd do: a lookup in /etc files
 * costs ~0.2 ms here (more against LDAP), too much for every submit-time check.
 */
#define IDENTITY_TTL_MS 60000
#define CACHE_SLOTS 1024

static struct {
	pthread_mutex_t lock;
	struct {
		bool used;
		uid_t uid;
		gid_t gid;
		int64_t at_ms;
		struct identity id;
	} slot[CACHE_SLOTS];
} cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void identity_lookup(uid_t uid, gid_t gid, struct identity *id)
{
	size_t i = ((size_t)uid * 2654435761u ^ (size_t)gid) % CACHE_SLOTS;
	struct identity fresh;
	int64_t now = now_ms();
	int hit = 0;

	pthread_mutex_lock(&cache.lock);
	if (cache.slot[i].used && cache.slot[i].uid == uid && cache.slot[i].gid == gid &&
	    now - cache.slot[i].at_ms < IDENTITY_TTL_MS)
		hit = pack(cache.slot[i].id.user, cache.slot[i].id.groups, cache.slot[i].id.n_groups, id) == 0;
	pthread_mutex_unlock(&cache.lock);
	if (hit)
		return;
	resolve(uid, gid, id);
	if (pack(id->user, id->groups, id->n_groups, &fresh) < 0)
		return;
	pthread_mutex_lock(&cache.lock);
	identity_free(&cache.slot[i].id);
	cache.slot[i].used = true;
	cache.slot[i].uid = uid;
	cache.slot[i].gid = gid;
	cache.slot[i].at_ms = now;
	cache.slot[i].id = fresh;
	pthread_mutex_unlock(&cache.lock);
}

void identity_free(struct identity *id)
{
	free(id->mem);
	memset(id, 0, sizeof(*id));
}
