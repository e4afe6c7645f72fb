/*
 * What the files of aif.so share. One file per SPANK context, as the dispatch (aif.c) calls
 * them:
 *   settings.c  the plugstack.conf arguments (every context)
 *   options.c   --aif-project and --aif-sector, with AIF_PROJECT / AIF_SECTOR as defaults
 *   names.c     what a project or sector name is
 *   submit.c    allocator and local context: the submit-time check, a courtesy
 *   admit.c     remote context (slurmstepd): the authoritative admission; the refusal in task_init
 *   account.c   job_script context (prolog/epilog): per-node usage records, and the spool
 *   runs.c      job_script context: the run a node's prolog started, for its epilog
 *   client.c    one request to aifd, whole or in two halves
 * and aif-pelog, the program that records usage as Prolog= and Epilog= under
 * PrologFlags=RunInJob, where Slurm calls no SPANK job_prolog or job_epilog (docs/slurm.md):
 *   pelog.c     its main: which job, prolog or epilog, then account.c
 *   plugstack.c the aif.so line of plugstack.conf: aif-pelog's settings are aif.so's
 *   pelog_log.c what account.c, runs.c and settings.c call of their host (Slurm's logging)
 * account.c, runs.c, client.c, settings.c and names.c make no SPANK call, so that both link them.
 * And job_submit.c, slurmctld's job_submit/aif plugin (job_submit_aif.so): what a job can cost,
 * told at submission.
 *
 * Nothing here may abort, exit or wait without a bound: the plugin runs inside Slurm's
 * processes. Only submit.c (the user's own sbatch/salloc/srun) and the refusal in task_init
 * return an error to Slurm (docs/slurm.md says why).
 */
#ifndef AIF_PLUGIN_H
#define AIF_PLUGIN_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include <slurm/spank.h>

#include "aif_diag.h"
#include "aif_proto.h"

enum aif_unreachable { AIF_UNREACHABLE_ALLOW, AIF_UNREACHABLE_DENY };

/* The plugstack.conf arguments (docs/plugin.md lists them). */
struct plugin_settings {
	char server[256];          /* aifd: socket path, host, host:port, [IPv6]:port */
	unsigned long timeout_ms;  /* bound on each exchange with aifd */
	int on_unreachable;        /* enum aif_unreachable */
	bool require_project;      /* refuse jobs that resolve to no project */
	char spool_dir[256];       /* the node's durable spool of usage records */
	char munge_socket[108];    /* "" = libmunge's default */
};

/*
 * Parse ac/av into *s (defaults first). Every invalid argument is reported with
 * slurm_error(), naming it; returns 0, or -1 when any was invalid.
 */
int settings_parse(int ac, char **av, struct plugin_settings *s);

/* Register --aif-project and --aif-sector (allocator, local and remote contexts). */
int options_register(spank_t sp);
/* The project and sector asked for: the option, else AIF_PROJECT / AIF_SECTOR, else NULL. */
const char *options_project(spank_t sp);
const char *options_sector(spank_t sp);
/*
 * Remote context: false, with diag, when the job carried an invalid --aif-project or
 * --aif-sector, or (without the option) an invalid AIF_PROJECT or AIF_SECTOR in its
 * environment. Such a step is refused: the user controls these values.
 */
bool options_valid(spank_t sp, struct aif_diag *diag);
#define AIF_NAME_MAX 128
/* Whether v is a project or sector name aifd takes: 1 to 128 bytes of UTF-8, no control character. */
bool name_valid(const char *v);
bool name_has_control(const char *v);

/* Allocator/local context, init_post_opt: 0, or -1 after printing the refusal. */
int submit_check(spank_t sp, const struct plugin_settings *s);

/*
 * Remote context: ask aifd in init_post_opt (never fails), read its answer in user_init,
 * refuse in task_init (0 or -1); exit frees the client, in slurmstepd.
 */
void admit_step(spank_t sp, const struct plugin_settings *s);
void admit_answer(void);
int admit_task(spank_t sp);
void admit_exit(void);

/*
 * job_script context: the start (prolog) or end (epilog) of job's allocation on this node,
 * for uid, the rest from the environment Slurm gives the prolog and epilog. Never fails.
 */
void account_record(const struct plugin_settings *s, uint32_t job, uint32_t uid, bool end);

/*
 * The restart count of the run of job whose prolog ran on node, kept in spool_dir for
 * the epilog (a requeue raises the environment's count before the epilog); count 0 is kept as
 * no file. Recall removes it and gives 0 when there is none, fallback when it cannot be read.
 * Both never fail (problems are logged).
 */
void runs_remember(const char *spool_dir, const char *node, uint32_t job, uint32_t restart);
uint32_t runs_recall(const char *spool_dir, const char *node, uint32_t job, uint32_t fallback);

/* aif-pelog: the arguments of aif.so's line in plugstack.conf, and where that line is. */
#define AIF_PLUGSTACK_MAX_ARGS 64
struct plugstack {
	int ac;
	char *av[AIF_PLUGSTACK_MAX_ARGS];
	char where[PATH_MAX + 32];
};
/*
 * The plugstack.conf that slurm_conf names (PlugStackConfig, else the one beside it), with the
 * files it includes, searched for the line that loads aif.so: 0 with *out (free it with
 * plugstack_free), or -1 with diag naming the file and line.
 */
int plugstack_find(const char *slurm_conf, struct plugstack *out, struct aif_diag *diag);
void plugstack_free(struct plugstack *p);
/* aif-pelog: its log lines go to syslog too from here on (pelog_log.c). */
void pelog_log_open(void);

struct aif_client;

/* A client for aifd with the settings' server, timeout and munge_socket; NULL with diag. */
struct aif_client *client_new(const struct plugin_settings *s, struct aif_diag *diag);

/*
 * Send request to aifd (server, timeout, munge_socket from s) and read its answer into
 * *answer (initialized here: free it in every case). 0 when aifd answered, whatever the
 * answer; -1 with diag when it did not within the timeout.
 */
int client_ask(const struct plugin_settings *s, const struct aif_proto_msg *request,
	    struct aif_proto_msg *answer, struct aif_diag *diag);
/* The same, done by deadline_ms (aif_clock_ms()): for the prolog and epilog's one budget. */
int client_ask_by(const struct plugin_settings *s, const struct aif_proto_msg *request,
	       struct aif_proto_msg *answer, int64_t deadline_ms, struct aif_diag *diag);

/*
 * The first half of client_ask(): request sent by a new client, whose answer is then read with
 * aif_client_receive(); NULL with diag when it could not be sent.
 */
struct aif_client *client_send(const struct plugin_settings *s, const struct aif_proto_msg *request,
			       struct aif_diag *diag);

/*
 * aifd refused because no project was given and the user is a member of none (reason
 * "no-project"): with require_project=no such a job runs untagged.
 */
bool client_answer_is_no_project(const struct aif_proto_msg *answer);

/*
 * aifd answered "error": it could not decide (what: "admit", "check"), so the job is refused,
 * whatever on_unreachable says (that covers transport failures only). The refusal, in out.
 */
void client_error_refusal(const struct aif_proto_msg *answer, const char *what, struct aif_diag *out);

/*
 * A diagnostic in PostgreSQL's style: "error: aif: message" (slurm_error) or "warning: aif:
 * message", then DETAIL and HINT lines, all at error level (slurm_spank_log) so that sbatch,
 * salloc and srun always print them, prefixed with the program's name like Slurm's own lines.
 */
void log_diag(bool error, const struct aif_diag *diag);

#endif
