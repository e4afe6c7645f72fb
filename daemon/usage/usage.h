/*
 * usage: a usage record inside aifd (docs/protocol.md, "usage"), and how records are written:
 * as the arrays of aif.record_usage() (sql/repeatable/20_usage.sql), by the usage writer
 * (store.c) and by the settler (settle.c) alike.
 */
#ifndef AIFD_USAGE_H
#define AIFD_USAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgarray.h"

enum usage_event {
	USAGE_START,
	USAGE_END,
};

/* start of an end record whose allocation start time is not known. */
#define USAGE_TIME_UNKNOWN ((int64_t)-1)

/*
 * Seconds a node's time may differ from slurmctld's and still be the same event: MUNGE's
 * default credential lifetime, so any node that can talk to aifd at all is within it. A
 * larger difference means another job under a reused id.
 */
#define USAGE_CLOCK_TOLERANCE 300

/* How long an end waits for slurmctld's late answers before it closes at the nodes' times. */
#define USAGE_SETTLE_PATIENCE_MS 15000

/* Room for a node's GPUs by model in aif_gres_models()'s form ("a100:1,h100:2"). */
#define USAGE_MODELS_MAX 160

struct job_alloc; /* joballoc.h */

/*
 * One usage record. Times are Unix seconds, UTC. An end record may carry the allocation's
 * start time too, from a sender that knows it, so that an end alone is a complete interval
 * when its start never arrived (aif.so's epilog does not know it: a settled end takes
 * slurmctld's StartTime instead).
 */
struct usage_record {
	enum usage_event event;
	const char *cluster; /* Slurm ClusterName */
	uint32_t job;
	const char *node;
	uint32_t restart; /* SLURM_JOB_RESTART_COUNT */
	uint32_t gpus;    /* GPUs of the job on this node */
	int64_t start;    /* allocation start; required for a start, USAGE_TIME_UNKNOWN allowed for an end */
	int64_t end;      /* allocation end; required for an end, ignored for a start */
	const char *project; /* the project charged (handler.c decides it): stored as it is */
	const char *sector;
	uint32_t uid;
	const char *user; /* may be NULL */
	/*
	 * NULL, or why no project can be charged (decide_reason_name(): "no-project", ...): the
	 * record goes to aif.unattributed_intervals, project (may be NULL) is only what it named.
	 */
	const char *unattributed;
	/*
	 * start (and end, for an end record) are slurmctld's StartTime (and EndTime) of this run
	 * (jobtimes.h), not the node's clock: an exact end also settles the stored start.
	 */
	bool exact;
	/*
	 * Set by jobtimes_settle(): slurmctld was asked for this record's job and has not
	 * answered yet (it is slow, not down). The settler tries it again in its next round, for
	 * at most USAGE_SETTLE_PATIENCE_MS; then it keeps the nodes' times.
	 */
	bool unanswered;
	/* Set by jobtimes_settle(): slurmctld answered that it does not know the job (any more). */
	bool forgotten;
	/*
	 * Set by jobtimes_settle() for a start of a job still running, with exact: what slurmctld
	 * allocated to the job (joballoc.h; a reference the caller releases, shared by the job's
	 * records rather than copied into each) and which of its nodes is this record's. NULL
	 * otherwise: nothing of it came (the node's GPUs count, at the cluster's unrated rate).
	 */
	struct job_alloc *alloc;
	size_t alloc_node;
};

/* The statement that writes a group of records, and its parameters. */
#define USAGE_NARRAYS 15
#define USAGE_WRITE_NPARAMS (USAGE_NARRAYS + 1)
extern const char usage_write_sql[];

struct usage_params {
	struct pg_array arrays[USAGE_NARRAYS];
	const char *values[USAGE_WRITE_NPARAMS];
};

/* Begin a group (keeps the memory of the last one). */
void usage_params_start(struct usage_params *p);
/* Add a record; final: an end that closes its interval (else it goes to the inbox). */
void usage_params_add(struct usage_params *p, const struct usage_record *r, bool final);
/* The parameters of usage_write_sql, or NULL when out of memory. */
const char *const *usage_params_end(struct usage_params *p);
void usage_params_free(struct usage_params *p);

#endif
