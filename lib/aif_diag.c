#include "aif_diag.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void aif_diag_clear(struct aif_diag *d)
{
	d->message[0] = d->detail[0] = d->hint[0] = '\0';
}

#define AIF_DIAG_SETTER(name, field)                                  \
	void name(struct aif_diag *d, const char *fmt, ...)           \
	{                                                             \
		va_list ap;                                           \
		va_start(ap, fmt);                                    \
		vsnprintf(d->field, sizeof(d->field), fmt, ap);       \
		va_end(ap);                                           \
	}

AIF_DIAG_SETTER(aif_diag_message, message)
AIF_DIAG_SETTER(aif_diag_detail, detail)
AIF_DIAG_SETTER(aif_diag_hint, hint)

const char *aif_diag_format(const struct aif_diag *d, char *buf, size_t size)
{
	snprintf(buf, size, "%s%s%s%s%s", d->message,
		 d->detail[0] ? "\nDETAIL:  " : "", d->detail,
		 d->hint[0] ? "\nHINT:  " : "", d->hint);
	return buf;
}
