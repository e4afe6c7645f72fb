/*
 * aif_settings: typed "key=value" settings, described by a table and stored into a struct.
 * One parser serves the plugin's plugstack.conf arguments and aifd's config file, so both
 * accept the same value syntax and report errors the same way.
 */
#ifndef AIF_SETTINGS_H
#define AIF_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>

#include "aif_diag.h"

enum aif_setting_type {
	AIF_SETTING_STRING,   /* char[size] at offset; must fit */
	AIF_SETTING_BOOL,     /* bool: yes/no, true/false, on/off, 1/0 */
	AIF_SETTING_UINT,     /* unsigned long in [min, max] */
	AIF_SETTING_DURATION, /* unsigned long milliseconds in [min, max]; "250ms", "5s", "2min", "1h"; bare = s */
	AIF_SETTING_ENUM,     /* int: index into choices */
};

struct aif_setting {
	const char *key;
	enum aif_setting_type type;
	size_t offset;              /* offsetof() the field in the settings struct */
	size_t size;                /* AIF_SETTING_STRING: sizeof the buffer */
	unsigned long min, max;     /* AIF_SETTING_UINT and AIF_SETTING_DURATION */
	const char *const *choices; /* AIF_SETTING_ENUM: NULL-terminated */
};

/*
 * Parse a duration: a whole number with a unit, ms, s, min or h ("250ms", "30min", "2h"); a bare
 * number is seconds. Returns 0 with *ms set, or -1 (bad syntax, overflow) with *ms unchanged.
 */
int aif_parse_duration_ms(const char *text, unsigned long *ms);

/* Set one setting by key. Returns 0, or -1 with *diag filled; *dst is unchanged on error. */
int aif_setting_set(const struct aif_setting *table, size_t n, void *dst, const char *key,
		    const char *value, struct aif_diag *diag);

/* Parse "key=value" (a plugstack.conf argument) and set it. */
int aif_setting_parse_arg(const struct aif_setting *table, size_t n, void *dst, const char *arg,
			  struct aif_diag *diag);

/*
 * Read a config file of "key = value" lines ('#' starts a comment). Every error is reported
 * through report() with the file's path and line; returns the number of errors (0 = ok),
 * or -1 if the file cannot be read (also reported, with line 0). When lines is not NULL (an
 * array of n), lines[i] is set to the line that last set table[i], or 0: so that checks made
 * after reading (a user that must exist, say) can name the line too.
 */
typedef void (*aif_setting_report_fn)(const char *path, unsigned line, const struct aif_diag *diag,
				      void *arg);
int aif_settings_read_file(const struct aif_setting *table, size_t n, void *dst, const char *path,
			   unsigned *lines, aif_setting_report_fn report, void *arg);

#endif
