/*
 * aif_diag: one error or warning, in PostgreSQL's message style: a short primary message,
 * then optional detail (facts) and hint (what to do). Fixed-size buffers, no allocation,
 * so that the SPANK plugin can use it inside Slurm's processes.
 */
#ifndef AIF_DIAG_H
#define AIF_DIAG_H

#include <stddef.h>

struct aif_diag {
	char message[256];
	char detail[512];
	char hint[256];
};

void aif_diag_clear(struct aif_diag *d);
void aif_diag_message(struct aif_diag *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void aif_diag_detail(struct aif_diag *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void aif_diag_hint(struct aif_diag *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "message\nDETAIL:  detail\nHINT:  hint" (absent parts left out); returns buf. */
const char *aif_diag_format(const struct aif_diag *d, char *buf, size_t size);

#endif
