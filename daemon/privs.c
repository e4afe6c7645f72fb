#include "privs.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static const char *user_name(uid_t uid)
{
	const struct passwd *pw = getpwuid(uid);
	return pw ? pw->pw_name : "?";
}

int privs_drop(const struct aifd_config *config)
{
	uid_t uid = config->user_uid;
	gid_t gid = config->user_gid;

	if (geteuid() != 0) {
		log_info("running as user %s (uid %u); not started as root, so setting \"user\" is not used",
			 user_name(geteuid()), (unsigned)geteuid());
		return 0;
	}
	/* config_load() refused root as "user"; checked again because staying root is the one
	 * mistake this function exists to prevent. */
	if (uid == 0) {
		log_error("refusing to run as root");
		return -1;
	}
	/* Groups first: after setuid() aifd could no longer change them. */
	if (initgroups(config->user, gid) < 0 || setgid(gid) < 0 || setuid(uid) < 0) {
		log_error("could not switch to user \"%s\" (uid %u, gid %u): %s", config->user,
			  (unsigned)uid, (unsigned)gid, strerror(errno));
		return -1;
	}
	if (setuid(0) == 0 || geteuid() != uid || getuid() != uid || getegid() != gid) {
		log_error("still privileged after switching to user \"%s\"; refusing to run", config->user);
		return -1;
	}
	log_info("running as user %s (uid %u, gid %u)", config->user, (unsigned)uid, (unsigned)gid);
	return 0;
}
