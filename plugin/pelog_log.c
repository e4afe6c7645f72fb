/*
 * What account.c, runs.c and settings.c call of their host, for aif-pelog: Slurm's logging
 * functions (in aif.so, slurmstepd's own) and the SPANK context. aif-pelog's lines go to
 * syslog ("aif-pelog[PID]: ", facility daemon) and to stderr, which Slurm keeps for the
 * prolog and epilog only at its debug levels. Not through syslog(3): it blocks while the log
 * daemon does not read, and the prolog must never wait beyond aif.so's timeout; a line that
 * the log daemon cannot take at once is dropped.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include <slurm/spank.h>

#include "plugin.h"

static int log_fd = -1;

void pelog_log_open(void)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX, .sun_path = "/dev/log"};

	log_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (log_fd >= 0 && connect(log_fd, (const struct sockaddr *)&addr, sizeof(addr)) < 0) {
		close(log_fd);
		log_fd = -1; /* no log daemon: stderr only */
	}
}

static void emit(int priority, const char *level, const char *fmt, va_list ap)
{
	char text[1024];

	vsnprintf(text, sizeof(text), fmt, ap);
	if (log_fd >= 0) {
		char line[1100];
		int n = snprintf(line, sizeof(line), "<%d>aif-pelog[%d]: %s%s", LOG_DAEMON | priority,
				 (int)getpid(), level, text);

		if (n > 0)
			(void)send(log_fd, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1,
				   MSG_DONTWAIT | MSG_NOSIGNAL);
	}
	fprintf(stderr, "%s%s\n", level, text);
}

void slurm_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit(LOG_ERR, "error: ", fmt, ap);
	va_end(ap);
}

void slurm_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit(LOG_INFO, "", fmt, ap);
	va_end(ap);
}

/* A DETAIL or HINT line of a diagnostic (settings.c), after its slurm_error(). */
void slurm_spank_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit(LOG_ERR, "", fmt, ap);
	va_end(ap);
}

spank_context_t spank_context(void)
{
	return S_CTX_JOB_SCRIPT;
}
