/*
 * aif-decide: for tests only, aifd's admission decision on real data: loads a snapshot
 * (daemon/budgets/snapshot.c) from a database and runs decide() (daemon/budgets/decide.c) once.
 *
 *   aif-decide [--admit] [--now=EPOCH] [--groups=G1,G2] [--project=P] [--sector=S]
 *              CONNINFO CLUSTER USER
 *   aif-decide --usage CONNINFO
 *
 * Without --groups, USER's groups are resolved through NSS (getpwnam_r, getgrouplist), as
 * aifd does. Prints verdict=, reason=, project=, sector=, message=, detail= and hint= lines
 * and exits 0 whatever the verdict; 1 when the snapshot cannot be loaded, 2 on bad usage.
 * With --usage, prints the snapshot's time (taken_at=), then its usage rows, one per period
 * and project: "PERIOD PROJECT USED_US RUNNING_GPUS".
 */
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "aif_db.h"
#include "decide.h"
#include "snapshot.h"

#define MAX_GROUPS 256

static int usage(void)
{
	fprintf(stderr, "usage: aif-decide [--admit] [--now=EPOCH] [--groups=G1,G2] [--project=P] "
			"[--sector=S] CONNINFO CLUSTER USER\n"
			"       aif-decide --usage CONNINFO\n");
	return 2;
}

/* The names of USER's groups through NSS; returns how many, -1 when USER is unknown. */
static int nss_groups(const char *user, char *store, size_t size, const char **names)
{
	struct passwd pw, *pwp = NULL;
	char buf[4096];
	gid_t gids[MAX_GROUPS];
	int n = MAX_GROUPS, used = 0;
	size_t off = 0;

	if (getpwnam_r(user, &pw, buf, sizeof(buf), &pwp) != 0 || !pwp)
		return -1;
	if (getgrouplist(user, pw.pw_gid, gids, &n) < 0)
		n = MAX_GROUPS;
	for (int i = 0; i < n; i++) {
		struct group gr, *grp = NULL;
		char gbuf[4096];
		size_t len;
		if (getgrgid_r(gids[i], &gr, gbuf, sizeof(gbuf), &grp) != 0 || !grp)
			continue;
		len = strlen(gr.gr_name) + 1;
		if (off + len > size)
			break;
		memcpy(store + off, gr.gr_name, len);
		names[used++] = store + off;
		off += len;
	}
	return used;
}

int main(int argc, char **argv)
{
	struct decide_request req = {.now = (int64_t)time(NULL)};
	const char *groups[MAX_GROUPS];
	static char store[65536];
	char *list = NULL;
	int i, n = 0, admit = 0, show_usage = 0;
	struct aif_diag diag;
	struct snapshot *s;
	struct decision d;
	struct db db;

	for (i = 1; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--admit") == 0)
			admit = 1;
		else if (strcmp(a, "--usage") == 0)
			show_usage = 1;
		else if (strncmp(a, "--now=", 6) == 0)
			req.now = strtoll(a + 6, NULL, 10);
		else if (strncmp(a, "--groups=", 9) == 0)
			list = strdup(a + 9);
		else if (strncmp(a, "--project=", 10) == 0)
			req.project = a + 10;
		else if (strncmp(a, "--sector=", 9) == 0)
			req.sector = a + 9;
		else
			return usage();
	}
	if (argc - i != (show_usage ? 1 : 3))
		return usage();
	req.kind = admit ? DECIDE_ADMIT : DECIDE_CHECK;
	req.cluster = show_usage ? "" : argv[i + 1];
	req.user = show_usage ? "" : argv[i + 2];
	if (list) {
		char *save = NULL;
		for (char *g = strtok_r(list, ",", &save); g && n < MAX_GROUPS; g = strtok_r(NULL, ",", &save))
			groups[n++] = g;
	} else if (!show_usage && (n = nss_groups(req.user, store, sizeof(store), groups)) < 0) {
		n = 0;
	}
	req.groups = groups;
	req.n_groups = (size_t)n;

	aif_diag_clear(&diag);
	/* As aifd's budget refresh connects and loads. */
	if (db_init(&db, argv[i], "aif-decide", "aif-decide", 60000) < 0 ||
	    snapshot_load(&db, &s, &diag) < 0) {
		char buf[1200];
		fprintf(stderr, "aif-decide: %s\n", aif_diag_format(&diag, buf, sizeof(buf)));
		db_close(&db);
		free(list);
		return 1;
	}
	db_close(&db);
	if (show_usage) {
		printf("taken_at=%lld\n", (long long)s->taken_at);
		for (size_t u = 0; u < s->n_usage; u++)
			printf("%s %s %lld %lld\n", s->periods[s->usage[u].period].id,
			       s->projects[s->usage[u].project].id, (long long)s->usage[u].used_us,
			       (long long)s->usage[u].running_gpus);
		snapshot_free(s);
		free(list);
		return 0;
	}
	decide(s, &req, &d);
	printf("verdict=%s\nreason=%s\nproject=%s\nsector=%s\nmessage=%s\ndetail=%s\nhint=%s\n",
	       decide_verdict_name(d.verdict), decide_reason_name(d.reason),
	       d.project ? d.project : "", d.sector ? d.sector : "", d.diag.message, d.diag.detail,
	       d.diag.hint);
	snapshot_free(s);
	free(list);
	return 0;
}
