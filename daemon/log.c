#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

const char *const log_level_names[] = {"error", "warning", "info", "debug", NULL};

static const struct {
	const char *label; /* as PostgreSQL labels its messages */
	int priority;      /* syslog's, also the journal's "<N>" prefix */
} levels[] = {
	[LOG_LEVEL_ERROR] = {"ERROR", LOG_ERR},
	[LOG_LEVEL_WARNING] = {"WARNING", LOG_WARNING},
	[LOG_LEVEL_INFO] = {"INFO", LOG_INFO},
	[LOG_LEVEL_DEBUG] = {"DEBUG", LOG_DEBUG},
};

static struct {
	enum log_level level;
	bool syslog_open;
	bool stderr_is_journal;
} state = {LOG_LEVEL_INFO, false, false};

/* systemd sets JOURNAL_STREAM=DEV:INODE when stderr goes to the journal. */
static bool stderr_is_journal(void)
{
	const char *stream = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (!stream || sscanf(stream, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_setup(enum log_level level, bool use_syslog)
{
	state.level = level;
	state.stderr_is_journal = stderr_is_journal();
	if (use_syslog && !state.syslog_open)
		openlog("aifd", LOG_PID, LOG_DAEMON);
	else if (!use_syslog && state.syslog_open)
		closelog();
	state.syslog_open = use_syslog;
}

void log_close(void)
{
	if (state.syslog_open)
		closelog();
	state.syslog_open = false;
}

bool log_enabled(enum log_level level)
{
	return level <= state.level;
}

/* One write() per line, so that lines from several processes on one stderr do not mix. */
static void write_stderr(enum log_level level, const char *label, const char *text)
{
	char line[2048];
	int len;

	if (state.stderr_is_journal) {
		len = snprintf(line, sizeof(line), "<%d>%s:  %s\n", levels[level].priority, label,
			       text);
	} else {
		struct timespec now;
		struct tm tm;
		char stamp[32];

		clock_gettime(CLOCK_REALTIME, &now);
		gmtime_r(&now.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
		len = snprintf(line, sizeof(line), "%s.%03ld UTC [%ld] %s:  %s\n", stamp,
			       now.tv_nsec / 1000000, (long)getpid(), label, text);
	}
	if (len < 0)
		return;
	if ((size_t)len >= sizeof(line)) { /* cut, but keep the line a line */
		len = sizeof(line) - 1;
		line[len - 1] = '\n';
	}
	/* Nothing sensible is left to do when stderr fails. */
	if (write(STDERR_FILENO, line, (size_t)len) < 0)
		return;
}

/* label: the level's, or DETAIL and HINT, which PostgreSQL too writes as lines of their own */
static void log_text(enum log_level level, const char *label, char *text)
{
	size_t len = strlen(text);

	/* libpq's and strerror's messages may end with a newline; the line ends here anyway. */
	while (len > 0 && text[len - 1] == '\n')
		text[--len] = '\0';
	/* One message, one line: libpq's multi-line messages would otherwise lose their prefix. */
	for (char *c = text; *c; c++)
		if (*c == '\n' || *c == '\t')
			*c = ' ';
	if (state.syslog_open)
		syslog(levels[level].priority, "%s:  %s", label, text);
	else
		write_stderr(level, label, text);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char text[1536];
	va_list ap;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	log_text(level, levels[level].label, text);
}

void log_diag(enum log_level level, const char *where, const struct aif_diag *diag)
{
	char text[1536];

	if (!log_enabled(level))
		return;
	snprintf(text, sizeof(text), "%s%s%s", where ? where : "", where ? ": " : "", diag->message);
	log_text(level, levels[level].label, text);
	if (diag->detail[0]) {
		snprintf(text, sizeof(text), "%s", diag->detail);
		log_text(level, "DETAIL", text);
	}
	if (diag->hint[0]) {
		snprintf(text, sizeof(text), "%s", diag->hint);
		log_text(level, "HINT", text);
	}
}

void log_limit_init(struct log_limit *l, const char *what, int every_ms)
{
	pthread_mutex_init(&l->lock, NULL);
	l->what = what;
	l->every_ms = every_ms;
	l->level = LOG_LEVEL_WARNING;
	l->burst = 1;
	l->passed = 0;
	l->next_ms = 0;
	l->more = 0;
}

void log_limit_burst(struct log_limit *l, enum log_level level, int burst)
{
	l->level = level;
	l->burst = burst > 0 ? burst : 1;
}

/* Under l->lock, l->more > 0. */
static void limit_summary(struct log_limit *l, int64_t now_ms)
{
	struct aif_diag diag;
	long long secs = (now_ms - l->next_ms + l->every_ms + 999) / 1000;

	aif_diag_clear(&diag);
	aif_diag_message(&diag, "%lu more %s", l->more, l->what);
	if (l->burst == 1)
		aif_diag_detail(&diag, "In the last %lld s. aifd logs one warning of a kind at most every %d s, and counts the others.",
				secs, l->every_ms / 1000);
	else
		aif_diag_detail(&diag, "In the last %lld s. aifd logs at most %d of these every %d s, and counts the others.",
				secs, l->burst, l->every_ms / 1000);
	log_diag(l->level, NULL, &diag);
	l->more = 0;
}

bool log_limit_pass(struct log_limit *l, int64_t now_ms)
{
	bool pass = false;

	if (!log_enabled(l->level))
		return false;
	pthread_mutex_lock(&l->lock);
	if (now_ms >= l->next_ms) {
		if (l->more)
			limit_summary(l, now_ms);
		l->next_ms = now_ms + l->every_ms;
		l->passed = 1;
		pass = true;
	} else if (l->passed < l->burst) {
		l->passed++;
		pass = true;
	} else {
		l->more++;
	}
	pthread_mutex_unlock(&l->lock);
	return pass;
}

int64_t log_limit_flush(struct log_limit *l, int64_t now_ms, int64_t next)
{
	pthread_mutex_lock(&l->lock);
	if (l->more && now_ms >= l->next_ms) {
		limit_summary(l, now_ms);
		l->next_ms = now_ms + l->every_ms; /* a period of its own, none of its burst used */
		l->passed = 0;
	} else if (l->more && l->next_ms < next) {
		next = l->next_ms;
	}
	pthread_mutex_unlock(&l->lock);
	return next;
}
