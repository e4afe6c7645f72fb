/*
 * log: aifd's messages, with a level, to stderr or to syslog.
 *
 * On stderr every line carries a timestamp, the pid and the level; when stderr is the systemd
 * journal (JOURNAL_STREAM names it), lines carry a "<N>" priority prefix instead, since the
 * journal records the time and pid itself. To syslog: facility LOG_DAEMON, ident "aifd", with
 * the pid. Messages follow lib/aif_diag.h: a short primary message, then DETAIL and HINT lines.
 */
#ifndef AIFD_LOG_H
#define AIFD_LOG_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "aif_diag.h"

/* The order is the config file's: log_level = error|warning|info|debug. */
enum log_level {
	LOG_LEVEL_ERROR,
	LOG_LEVEL_WARNING,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
};

/* "error", "warning", "info", "debug", NULL: the choices of the log_level setting. */
extern const char *const log_level_names[];

/*
 * Log messages up to level, to syslog or to stderr. May be called again (SIGHUP); before the
 * first call aifd logs to stderr at LOG_LEVEL_INFO.
 */
void log_setup(enum log_level level, bool use_syslog);
void log_close(void);

/* Whether messages of this level are written (to skip building costly ones). */
bool log_enabled(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The message, then its DETAIL and HINT as lines of their own; where ("file:line") prefixes it. */
void log_diag(enum log_level level, const char *where, const struct aif_diag *diag);

/*
 * A kind of message that a hostile peer could repeat at will: a warning logged at most once per
 * every_ms (or, set with log_limit_burst(), up to burst messages of level per every_ms), the
 * others counted and said in one line, "N more <what>", when the next passes or
 * log_limit_flush() finds the period over. Any thread.
 */
struct log_limit {
	pthread_mutex_t lock;
	const char *what; /* "connections closed to make room for new ones" */
	int every_ms;
	enum log_level level;
	int burst;        /* messages logged per period */
	int passed;       /* of them, in this period */
	int64_t next_ms;  /* aif_clock_ms(): when this period ends */
	unsigned long more;
};
void log_limit_init(struct log_limit *l, const char *what, int every_ms);
/* Up to burst messages of level a period, rather than one warning (before any is logged). */
void log_limit_burst(struct log_limit *l, enum log_level level, int burst);

/* Whether to log one now (after the summary of those left out); if not, it is counted. */
bool log_limit_pass(struct log_limit *l, int64_t now_ms);
/* The summary of those left out once their period is over; the sooner of next and when it is due. */
int64_t log_limit_flush(struct log_limit *l, int64_t now_ms, int64_t next);

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif
