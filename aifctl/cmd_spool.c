/*
 * aifctl spool flush: send the usage records spooled on this node (lib/aif_spool.c) to aifd,
 * as the prolog and epilog do, for the systemd timer conf/aif-spool-flush.timer: records whose
 * job left no more prolog or epilog on the node are delivered too.
 * aifctl spool list: what the spool holds, and what is in its bad/ and why, for operators.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "aif_client.h"
#include "aif_spool.h"
#include "aifctl.h"

/* Each round's bound: a flush reads AIF_SPOOL_FLUSH_MAX records, in a few requests. */
#define ROUND_MS 60000
/*
 * How long to wait for a prolog or epilog flushing the same spool: longer than the plugin's
 * longest timeout (60 s), so that the timer finds the spool free afterwards.
 */
#define LOCK_WAIT_MS 65000

static void pause_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static const char *plural(size_t n)
{
	return n == 1 ? "" : "s";
}

/* Flush until the spool is empty or aifd stops taking records. Returns an exit code. */
static int flush(const char *dir, struct aif_client *client)
{
	int64_t lock_deadline = aif_clock_ms() + LOCK_WAIT_MS;
	size_t sent = 0, bad = 0;
	struct aif_spool_stats st;
	struct aif_diag diag;
	int rc;

	for (;;) {
		rc = aif_spool_flush(dir, client, 0, aif_clock_ms() + ROUND_MS, &st, &diag);
		if (st.busy && aif_clock_ms() < lock_deadline) {
			pause_ms(200);
			continue;
		}
		sent += st.sent;
		bad += st.bad;
		if (st.bad) {
			aifctl_report("WARNING", &st.bad_diag);
			if (st.bad > 1)
				fprintf(stderr, "aifctl: WARNING:  %zu more spooled usage record%s moved to %s/bad (each with a .why file that says why)\n",
					st.bad - 1, plural(st.bad - 1), dir);
		}
		/* another round only while records remain and this one made progress */
		if (rc < 0 || st.busy || st.kept == 0 || st.sent + st.bad == 0)
			break;
	}
	if (rc < 0)
		aifctl_report_error(&diag);
	else if (st.busy)
		aifctl_error("another process has been flushing spool directory \"%s\" for %d s", dir,
			     LOCK_WAIT_MS / 1000);
	else if (st.kept)
		aifctl_error("timed out flushing spool directory \"%s\"", dir);
	printf("%s: %zu usage record%s sent, %zu moved to bad/, %zu left\n", dir, sent, plural(sent), bad,
	       st.kept);
	/* records left, or a spool that could not be read: the timer's next run tries again */
	return rc < 0 || st.kept ? AIFCTL_FAILURE : AIFCTL_OK;
}

struct listing {
	size_t waiting, bad;
};

/* One line per file, its name in the spool; a bad/ file's reason below it, indented. */
static void list_item(void *arg, const struct aif_spool_item *item)
{
	struct listing *l = arg;
	const char *why = item->why;

	if (!item->bad) {
		l->waiting++;
		printf("%s\n", item->name);
		return;
	}
	l->bad++;
	printf("bad/%s\n", item->name);
	if (!why || !*why)
		why = "(no .why file: the reason is in the log of the prolog, epilog or flush that put it there)\n";
	while (*why) {
		size_t n = strcspn(why, "\n");
		printf("    %.*s\n", (int)n, why);
		why += n + (why[n] == '\n');
	}
}

static int list(const char *dir)
{
	struct listing l = {0};
	struct aif_diag diag;

	if (aif_spool_list(dir, list_item, &l, &diag) < 0) {
		aifctl_report_error(&diag);
		return AIFCTL_FAILURE;
	}
	printf("%s: %zu usage record%s waiting, %zu in bad/\n", dir, l.waiting, plural(l.waiting), l.bad);
	return AIFCTL_OK;
}

int aifctl_cmd_spool(const struct aifctl *ctl)
{
	struct aifctl_config config;
	struct aif_client_options opts = {0};
	struct aif_client *client;
	struct aif_diag diag;
	const char *dir;
	int rc;

	bool flushing = strcmp(ctl->args[0], "flush") == 0;

	if (!flushing && strcmp(ctl->args[0], "list") != 0) {
		fprintf(stderr, "aifctl: unknown spool command \"%s\"; expected \"flush\" or \"list\"\n", ctl->args[0]);
		return AIFCTL_INVALID;
	}
	if (aifctl_read_config(ctl, &config) < 0)
		return AIFCTL_INVALID;
	dir = ctl->spool_dir_option ? ctl->spool_dir_option
				    : config.spool_dir[0] ? config.spool_dir : AIF_SPOOL_DEFAULT_DIR;
	if (dir[0] != '/') {
		aifctl_error("invalid spool directory \"%s\": not an absolute path", dir);
		return AIFCTL_INVALID;
	}
	if (!flushing)
		return list(dir);
	opts.server = ctl->server_option ? ctl->server_option : config.server[0] ? config.server : NULL;
	opts.munge_socket = config.munge_socket[0] ? config.munge_socket : NULL;
	client = aif_client_new(&opts, &diag);
	if (!client) {
		aifctl_report_error(&diag);
		return AIFCTL_INVALID;
	}
	rc = flush(dir, client);
	aif_client_free(client);
	return rc;
}
