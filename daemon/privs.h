/* privs: aifd gives up root before it serves anyone. */
#ifndef AIFD_PRIVS_H
#define AIFD_PRIVS_H

#include "config.h"

/*
 * Started as root: become config->user, with its primary and supplementary groups, for good
 * (verified: root cannot be regained). Started as another user: stay that user. Returns 0, or
 * -1 (logged) when aifd would otherwise keep running as root.
 */
int privs_drop(const struct aifd_config *config);

#endif
