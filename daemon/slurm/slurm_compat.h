/*
 * slurm_compat: the libslurm calls whose form differs between the Slurm releases aif is built
 * against (22.05, 24.11, 26.05: docs/slurm.md, "Releases"), each in one place, keyed on
 * SLURM_VERSION_NUMBER. The rest of aifd calls these and never tests a version itself.
 */
#ifndef AIFD_SLURM_COMPAT_H
#define AIFD_SLURM_COMPAT_H

#include <errno.h>
#include <stdint.h>

#include <slurm/slurm.h>
#include <slurm/slurm_errno.h>

/*
 * Why the last libslurm call failed: an ESLURM_* or errno value. slurm_get_errno(), gone in
 * 24.11, only ever returned errno, so this is errno on every release.
 */
static inline int slurm_compat_errno(void)
{
	return errno;
}

/* SLURM_VERSION_NUM(26, 5, 0), spelt out: cppcheck, which reads no system header, knows no macro. */
#if SLURM_VERSION_NUMBER >= 0x1a0500
/* 26.05: a job is named by a slurm_step_id_t, by value (its step fields NO_VAL: the job). */
static inline slurm_step_id_t slurm_compat_job(uint32_t job)
{
	slurm_step_id_t id = SLURM_STEP_ID_INITIALIZER;

	id.job_id = job;
	return id;
}

static inline int slurm_compat_load_job(job_info_msg_t **msg, uint32_t job, uint16_t show_flags)
{
	return slurm_load_job(msg, slurm_compat_job(job), show_flags);
}

static inline int slurm_compat_kill_job(uint32_t job, uint16_t signal, uint16_t flags)
{
	return slurm_kill_job(slurm_compat_job(job), signal, flags);
}

static inline int slurm_compat_requeue(uint32_t job, uint32_t flags)
{
	return slurm_requeue(slurm_compat_job(job), flags);
}

static inline void slurm_compat_free_conf(slurm_conf_t *conf)
{
	slurm_free_conf(conf);
}
#else
static inline int slurm_compat_load_job(job_info_msg_t **msg, uint32_t job, uint16_t show_flags)
{
	return slurm_load_job(msg, job, show_flags);
}

static inline int slurm_compat_kill_job(uint32_t job, uint16_t signal, uint16_t flags)
{
	return slurm_kill_job(job, signal, flags);
}

static inline int slurm_compat_requeue(uint32_t job, uint32_t flags)
{
	return slurm_requeue(job, flags);
}

static inline void slurm_compat_free_conf(slurm_conf_t *conf)
{
	slurm_free_ctl_conf(conf);
}
#endif

#endif
