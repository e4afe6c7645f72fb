/*
 * What account.c, runs.c and settings.c call of their host, for aif-pelog: Slurm's logging
 * functions (in aif.so, slurmstepd's own) and the SPANK context. aif-pelog's lines go to
 * syslog (facility daemon, "aif-pelog[PID]: ") and to stderr, which Slurm keeps for the prolog
 * and epilog only at its debug levels.
 */
#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>

#include <slurm/spank.h>

static void emit(int priority, const char *level, const char *fmt, va_list ap)
{
	va_list copy;

	va_copy(copy, ap);
	vsyslog(priority, fmt, copy);
	va_end(copy);
	fputs(level, stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
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
