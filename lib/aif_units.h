/*
 * aif_units: how aif writes GPU-hours and durations for people, the same in sbatch's lines,
 * slurmctld's job_submit/aif, aifd's refusals and the comments of jobs that wait.
 */
#ifndef AIF_UNITS_H
#define AIF_UNITS_H

#include <stddef.h>
#include <stdint.h>

/* GPU-hours, at most two decimals, without trailing zeros: "12", "0.5", "1234.57". */
const char *aif_hours_text(char *buf, size_t size, double hours);
/* The same trimming of a number written with fixed decimals, in place: "0.50" -> "0.5". */
char *aif_hours_trim(char *fixed);
/* A duration as Slurm prints a time limit: [D-]HH:MM:SS ("00:40:00", "1-00:00:00"). */
const char *aif_duration_text(char *buf, size_t size, int64_t seconds);

#endif
