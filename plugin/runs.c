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
 * closes the interval.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <slurm/spank.h>

#include "aif_proto.h"
#include "plugin.h"

#define RUNS_SUBDIR "runs"

static int run_path(const char *spool_dir, const char *node, uint32_t job, const char *suffix,
		    char *path, size_t size)
{
	int n;

	if (strchr(node, '/'))
		return -1;
	n = snprintf(path, size, "%s/" RUNS_SUBDIR "/%s.%" PRIu32 "%s", spool_dir, node, job, suffix);

	return n < 0 || (size_t)n >= size ? -1 : 0;
}

void aif_run_remember(const char *spool_dir, const char *node, uint32_t job, uint32_t restart)
{
	char dir[PATH_MAX], tmp[PATH_MAX], path[PATH_MAX], text[16];
	int fd, len = snprintf(text, sizeof(text), "%" PRIu32 "\n", restart);

	if (restart == 0) {
		/* No file is count 0; one left by a crashed node under a reused job id goes. */
		if (run_path(spool_dir, node, job, "", path, sizeof(path)) == 0)
			unlink(path);
		return;
	}
	if (snprintf(dir, sizeof(dir), "%s/" RUNS_SUBDIR, spool_dir) >= (int)sizeof(dir) ||
	    run_path(spool_dir, node, job, ".tmp", tmp, sizeof(tmp)) < 0 ||
	    run_path(spool_dir, node, job, "", path, sizeof(path)) < 0) {
		slurm_error("aif: job %" PRIu32 ": no file name for the run in %s", job, spool_dir);
		return;
	}
	if ((mkdir(spool_dir, 0700) < 0 && errno != EEXIST) || (mkdir(dir, 0700) < 0 && errno != EEXIST)) {
		slurm_error("aif: job %" PRIu32 ": could not create %s: %s", job, dir, strerror(errno));
		return;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, text, (size_t)len) != len || close(fd) < 0 || rename(tmp, path) < 0) {
		slurm_error("aif: job %" PRIu32 ": could not write %s: %s", job, path, strerror(errno));
		if (fd >= 0)
			unlink(tmp);
	}
}

uint32_t aif_run_recall(const char *spool_dir, const char *node, uint32_t job, uint32_t fallback)
{
	char path[PATH_MAX], text[16] = "";
	uint64_t v;
	ssize_t got;
	int fd;

	if (run_path(spool_dir, node, job, "", path, sizeof(path)) < 0)
		return fallback;
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : fallback; /* no file: a first run's prolog */
	got = read(fd, text, sizeof(text) - 1);
	close(fd);
	unlink(path);
	if (got <= 0)
		return fallback;
	text[got] = '\0';
	text[strcspn(text, "\n")] = '\0';
	if (aif_proto_parse_u64(text, UINT32_MAX, &v) < 0) {
		slurm_error("aif: job %" PRIu32 ": %s is not a restart count; using the environment's", job, path);
		return fallback;
	}
	return (uint32_t)v;
}
