/*
 * job_script context: which run of a job this node's prolog started, for its epilog.
 *
 * A requeue raises the job's restart count before the epilog of the run it ends, so the
 * epilog's SLURM_JOB_RESTART_COUNT is already the next run's (observed on Slurm 22.05): it
 * would close an interval that never opened and leave the real one open. The prolog of a
 * run after a requeue writes the count it saw to SPOOL/runs/NODE.JOB (the node's name too:
 * several slurmd of one host may share a spool); the epilog takes it from there and removes
 * the file. A first run, nearly every job, writes nothing: no file means count 0. That keeps
 * file creation, which waits for the file system's journal on a busy node (measured: 1.4 ms
 * at the median, 13 ms at p99, under bench_plugin.sh), out of the common prolog.
 * Not fsync()ed: after a crash of the node there is no epilog to read it, and reconciliation
 * closes the interval. Opened relative to the spool's checked directory fd (aif_spool_open),
 * never by path: a symbolic link planted by a user is never followed.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <slurm/spank.h>

#include "aif_proto.h"
#include "aif_spool.h"
#include "plugin.h"

#define RUNS_SUBDIR "runs"

/* NODE.JOB (suffix), or -1 when node cannot be part of a file name. */
static int run_name(const char *node, uint32_t job, const char *suffix, char name[NAME_MAX + 1])
{
	int n;

	if (strchr(node, '/'))
		return -1;
	n = snprintf(name, NAME_MAX + 1, "%s.%" PRIu32 "%s", node, job, suffix);
	return n < 0 || n > NAME_MAX ? -1 : 0;
}

/*
 * spool_dir/runs, opened through the spool's checked path (lib/aif_spool.h: no symbolic link
 * of another user is followed); -1 with diag when unsafe, or missing (*missing, if not create).
 */
static int open_runs(const char *spool_dir, bool create, bool *missing, struct aif_diag *diag)
{
	int fd, dirfd = aif_spool_open(spool_dir, create, missing, diag);

	if (dirfd < 0)
		return -1;
	fd = aif_spool_open_sub(dirfd, spool_dir, RUNS_SUBDIR, create, diag);
	*missing = fd < 0 && errno == ENOENT;
	close(dirfd);
	return fd;
}

void runs_remember(const char *spool_dir, const char *node, uint32_t job, uint32_t restart)
{
	char tmp[NAME_MAX + 1], name[NAME_MAX + 1], text[16];
	int fd, runs, len = snprintf(text, sizeof(text), "%" PRIu32 "\n", restart);
	struct aif_diag diag;
	bool missing;

	if (run_name(node, job, ".tmp", tmp) < 0 || run_name(node, job, "", name) < 0) {
		slurm_error("aif: job %" PRIu32 ": no file name for the run in %s", job, spool_dir);
		return;
	}
	if (restart == 0) {
		/* No file is count 0; one left by a crashed node under a reused job id goes. */
		if ((runs = open_runs(spool_dir, false, &missing, &diag)) >= 0) {
			unlinkat(runs, name, 0);
			close(runs);
		}
		return;
	}
	if ((runs = open_runs(spool_dir, true, &missing, &diag)) < 0) {
		log_diag(true, &diag);
		return;
	}
	fd = openat(runs, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, text, (size_t)len) != len || close(fd) < 0 || renameat(runs, tmp, runs, name) < 0) {
		slurm_error("aif: job %" PRIu32 ": could not write %s/" RUNS_SUBDIR "/%s: %s", job, spool_dir, name,
			    strerror(errno));
		if (fd >= 0)
			unlinkat(runs, tmp, 0);
	}
	close(runs);
}

uint32_t runs_recall(const char *spool_dir, const char *node, uint32_t job, uint32_t fallback)
{
	char name[NAME_MAX + 1], text[16] = "";
	struct aif_diag diag;
	bool missing;
	uint64_t v;
	ssize_t got;
	int fd, runs;

	if (run_name(node, job, "", name) < 0)
		return fallback;
	if ((runs = open_runs(spool_dir, false, &missing, &diag)) < 0)
		return missing ? 0 : fallback; /* no runs/: no run after a requeue on this node */
	fd = openat(runs, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		close(runs);
		return errno == ENOENT ? 0 : fallback; /* no file: a first run's prolog */
	}
	got = read(fd, text, sizeof(text) - 1);
	close(fd);
	unlinkat(runs, name, 0);
	close(runs);
	if (got <= 0)
		return fallback;
	text[got] = '\0';
	text[strcspn(text, "\n")] = '\0';
	if (aif_proto_parse_u64(text, UINT32_MAX, &v) < 0) {
		slurm_error("aif: job %" PRIu32 ": %s/" RUNS_SUBDIR "/%s is not a restart count; using the environment's",
			    job, spool_dir, name);
		return fallback;
	}
	return (uint32_t)v;
}
