/*
 * identity: a uid's user name and group names, through NSS (files, sssd, LDAP: whatever
 * nsswitch.conf says), for the membership check. Thread-safe. Answers are cached for a
 * minute per (uid, gid), as nscd does: a change of group membership counts within a minute.
 */
#ifndef AIFD_IDENTITY_H
#define AIFD_IDENTITY_H

#include <stddef.h>
#include <sys/types.h>

struct identity {
	const char *user;           /* NULL when the uid has no passwd entry */
	const char *const *groups;  /* names of gid and the user's other groups */
	size_t n_groups;
	void *mem;                  /* owns all of the above */
};

/*
 * Look up uid, with gid as its primary group: the gid MUNGE or Slurm reports, which may
 * differ from the passwd entry's, or (gid_t)-1 for the passwd entry's. Never fails: what
 * cannot be resolved is left out (an unknown gid has no name; without a passwd entry only
 * gid counts). Free with identity_free.
 */
void identity_lookup(uid_t uid, gid_t gid, struct identity *id);
void identity_free(struct identity *id);

#endif
