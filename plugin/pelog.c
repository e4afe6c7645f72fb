/*
 * aif-pelog: aif.so's accounting of a job's start and end on a node, run as slurm.conf's
 * Prolog= and Epilog= where Slurm calls no SPANK job_prolog or job_epilog: with
 * PrologFlags=RunInJob (24.05 and later), the prolog and epilog run inside the job's extern
 * slurmstepd, which runs the Prolog= and Epilog= programs but never aif.so's job_prolog
 * (docs/slurm.md "RunInJob"). The same code as aif.so's (account.c), with aif.so's settings
 * (its line of plugstack.conf: plugstack.c), on the same environment Slurm gives both.
 *
 * Run by slurmd itself (without RunInJob), aif.so records the job already: aif-pelog then
 * records nothing, so that no usage is counted twice. Its exit status is always 0 in a job's
 * prolog or epilog (SLURM_JOB_ID set): a failing one fails the job or drains the node.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aif_proto.h"
#include "plugin.h"

#define ANCESTORS_MAX 16

/* The parent and the command name of pid, from /proc/PID/stat; -1 when it is gone. */
static int process_parent(pid_t pid, pid_t *parent, char *comm, size_t size)
{
	char path[64], buf[512];
	const char *open_paren, *close_paren;
	FILE *f;
	size_t n;
	int ppid;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (!(f = fopen(path, "re")))
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* "PID (COMM) STATE PPID ...": COMM may hold blanks and parentheses. */
	if (!(open_paren = strchr(buf, '(')) || !(close_paren = strrchr(buf, ')')) ||
	    sscanf(close_paren + 1, " %*c %d", &ppid) != 1)
		return -1;
	snprintf(comm, size, "%.*s", (int)(close_paren - open_paren - 1), open_paren + 1);
	*parent = (pid_t)ppid;
	return 0;
}

/*
 * Which Slurm daemon runs this prolog or epilog, directly or through a site's script:
 * "slurmstepd" (RunInJob), "slurmd", or NULL when neither is among the first ancestors.
 */
static const char *run_by(void)
{
	static char comm[64];
	pid_t pid = getppid();

	for (int i = 0; i < ANCESTORS_MAX && pid > 1; i++) {
		if (process_parent(pid, &pid, comm, sizeof(comm)) < 0)
			return NULL;
		if (strcmp(comm, "slurmstepd") == 0 || strcmp(comm, "slurmd") == 0)
			return comm;
	}
	return NULL;
}

/* A job id or uid that Slurm set in the environment; -1 (logged) when absent or invalid. */
static int env_u32(const char *name, uint32_t *out)
{
	const char *v = getenv(name);
	uint64_t n;

	if (!v) {
		slurm_error("aif: %s is not set; usage not recorded", name);
		return -1;
	}
	if (aif_proto_parse_u64(v, UINT32_MAX, &n) != 0) {
		slurm_error("aif: %s is \"%.40s\", not a number; usage not recorded", name, v);
		return -1;
	}
	*out = (uint32_t)n;
	return 0;
}

/* Why this run records nothing, when it is not the job's slurmstepd's prolog or epilog. */
static void not_in_job(struct aif_diag *diag, const char *what, uint32_t job, const char *daemon)
{
	if (daemon) {
		aif_diag_message(diag, "the %s of job %u was run by slurmd, not in the job's slurmstepd; "
				       "nothing recorded", what, job);
		aif_diag_detail(diag, "aif-pelog records usage only with PrologFlags=RunInJob; without "
				      "it, aif.so records it itself.");
		aif_diag_hint(diag, "Remove aif-pelog from Prolog= and Epilog=, or set "
				    "PrologFlags=RunInJob.");
	} else {
		aif_diag_message(diag, "the %s of job %u was run by neither slurmd nor slurmstepd; "
				       "nothing recorded", what, job);
		aif_diag_detail(diag, "None of its first %d ancestors is: it was detached (setsid, nohup "
				      "... &) or run by hand.", ANCESTORS_MAX);
		aif_diag_hint(diag, "Run it in the foreground, from the Prolog= and Epilog= programs.");
	}
}

/*
 * Run without root: the record could neither be authenticated as root nor spooled. Slurm
 * 24.11.0 to 24.11.5 start a RunInJob epilog with the job user's identity now and then: the
 * extern slurmstepd forks it while another of its threads has dropped privileges for the X11
 * clean-up (docs/slurm.md "RunInJob"). aifd's reconciliation closes the interval instead.
 */
static void not_root(struct aif_diag *diag, const char *what, uint32_t job)
{
	const char *node = getenv("SLURMD_NODENAME");

	aif_diag_message(diag, "the %s of job %u on %.64s runs as uid %u, not as root; nothing recorded",
			 what, job, node ? node : "?", (unsigned)geteuid());
	aif_diag_detail(diag, "Slurm 24.11.0 to 24.11.5 can start a RunInJob epilog as the job's user "
			      "(fixed in 24.11.6, SchedMD ticket 22736). aifd closes the job's interval "
			      "at slurmctld's end time when it reconciles.");
	aif_diag_hint(diag, "Upgrade Slurm to 24.11.6 or later, or run aif-pelog as root.");
}

int main(int argc, char **argv)
{
	const char *context = getenv("SLURM_SCRIPT_CONTEXT"), *daemon, *slurm_conf, *what;
	struct plugin_settings settings;
	struct plugstack line;
	struct aif_diag diag;
	uint32_t job, uid;
	bool end;

	/* munged, or a site script's log pipe, gone: an error of one record, never a killed prolog. */
	signal(SIGPIPE, SIG_IGN);
	if (!getenv("SLURM_JOB_ID")) {
		fprintf(stderr, "Usage: %s (no arguments), as slurm.conf's Prolog= and Epilog= with "
				"PrologFlags=RunInJob.\nSlurm runs it with SLURM_JOB_ID and "
				"SLURM_SCRIPT_CONTEXT set; see aif-pelog(8).\n", argv[0]);
		return 2;
	}
	/* From here on a job's prolog or epilog: exit 0, whatever happens (pelog.c's comment). */
	pelog_log_open();
	if (argc > 1 || !context ||
	    (strcmp(context, "prolog_slurmd") != 0 && strcmp(context, "epilog_slurmd") != 0)) {
		slurm_error("aif: not run as slurmd's prolog or epilog (SLURM_SCRIPT_CONTEXT is \"%.40s\"%s); "
			    "nothing recorded", context ? context : "", argc > 1 ? ", with arguments" : "");
		return 0;
	}
	end = strcmp(context, "epilog_slurmd") == 0;
	what = end ? "epilog" : "prolog";
	if (env_u32("SLURM_JOB_ID", &job) < 0 || env_u32("SLURM_JOB_UID", &uid) < 0)
		return 0;
	aif_diag_clear(&diag);
	if (geteuid() != 0) {
		not_root(&diag, what, job);
		log_diag(true, &diag);
		return 0;
	}
	if (!(daemon = run_by()) || strcmp(daemon, "slurmstepd") != 0) {
		not_in_job(&diag, what, job, daemon);
		log_diag(true, &diag);
		return 0;
	}
	slurm_conf = getenv("SLURM_CONF");
	if (plugstack_find(slurm_conf && slurm_conf[0] ? slurm_conf : AIF_SLURM_CONF, &line,
			       &diag) < 0) {
		char why[sizeof(diag.message)];

		snprintf(why, sizeof(why), "%s", diag.message);
		aif_diag_message(&diag, "the %s of job %u recorded nothing: %s", what, job, why);
		log_diag(true, &diag);
		return 0;
	}
	if (settings_parse(line.ac, line.av, &settings) == 0)
		account_record(&settings, job, uid, end);
	else
		slurm_error("aif: the %s of job %u recorded nothing: invalid settings in %s", what, job,
			    line.where);
	plugstack_free(&line);
	return 0;
}
