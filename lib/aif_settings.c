#include "aif_settings.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct aif_setting *find(const struct aif_setting *table, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(table[i].key, key) == 0)
			return &table[i];
	return NULL;
}

static void list_keys(const struct aif_setting *table, size_t n, char *buf, size_t size)
{
	size_t used = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < n && used < size; i++) {
		int w = snprintf(buf + used, size - used, "%s%s", i ? ", " : "", table[i].key);
		if (w < 0)
			break;
		used += (size_t)w;
	}
}

static int parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

/* Digits only: strtoul alone would accept "-1", " 5" and "0x10". */
static int parse_number(const char *v, unsigned long *out, const char **rest)
{
	char *end;
	if (!isdigit((unsigned char)v[0]))
		return -1;
	errno = 0;
	*out = strtoul(v, &end, 10);
	if (errno == ERANGE)
		return -1;
	*rest = end;
	return 0;
}

int aif_parse_duration_ms(const char *text, unsigned long *ms)
{
	static const struct {
		const char *unit;
		unsigned long ms;
	} units[] = {{"", 1000}, {"ms", 1}, {"s", 1000}, {"min", 60000}, {"h", 3600000}};
	unsigned long n;
	const char *unit;
	if (parse_number(text, &n, &unit) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(unit, units[i].unit) == 0) {
			if (n > (unsigned long)-1 / units[i].ms)
				return -1;
			*ms = n * units[i].ms;
			return 0;
		}
	}
	return -1;
}

int aif_setting_set(const struct aif_setting *table, size_t n, void *dst, const char *key,
		    const char *value, struct aif_diag *diag)
{
	const struct aif_setting *s = find(table, n, key);
	char *field;
	unsigned long number;
	const char *rest;
	bool flag;

	aif_diag_clear(diag);
	if (!s) {
		char keys[256];
		list_keys(table, n, keys, sizeof(keys));
		aif_diag_message(diag, "unrecognized setting \"%s\"", key);
		aif_diag_hint(diag, "Valid settings are: %s.", keys);
		return -1;
	}
	field = (char *)dst + s->offset;
	switch (s->type) {
	case AIF_SETTING_STRING:
		if (value[0] == '\0' || strlen(value) >= s->size) {
			aif_diag_message(diag, "invalid value for setting \"%s\": \"%s\"", key, value);
			aif_diag_detail(diag, "The value must be 1 to %zu characters long.", s->size - 1);
			return -1;
		}
		memcpy(field, value, strlen(value) + 1);
		return 0;
	case AIF_SETTING_BOOL:
		if (parse_bool(value, &flag) < 0) {
			aif_diag_message(diag, "invalid value for setting \"%s\": \"%s\"", key, value);
			aif_diag_hint(diag, "Use yes or no.");
			return -1;
		}
		*(bool *)field = flag;
		return 0;
	case AIF_SETTING_UINT:
		if (parse_number(value, &number, &rest) < 0 || *rest || number < s->min ||
		    number > s->max) {
			aif_diag_message(diag, "invalid value for setting \"%s\": \"%s\"", key, value);
			aif_diag_detail(diag, "The value must be a whole number from %lu to %lu.", s->min,
					s->max);
			return -1;
		}
		*(unsigned long *)field = number;
		return 0;
	case AIF_SETTING_DURATION:
		if (aif_parse_duration_ms(value, &number) < 0 || number < s->min || number > s->max) {
			aif_diag_message(diag, "invalid value for setting \"%s\": \"%s\"", key, value);
			aif_diag_detail(diag, "The value must be a duration from %lums to %lums.", s->min,
					s->max);
			aif_diag_hint(diag, "Write a whole number with a unit: ms, s, min or h (a bare "
					    "number is seconds).");
			return -1;
		}
		*(unsigned long *)field = number;
		return 0;
	case AIF_SETTING_ENUM:
		for (int i = 0; s->choices[i]; i++) {
			if (strcmp(value, s->choices[i]) == 0) {
				*(int *)field = i;
				return 0;
			}
		}
		aif_diag_message(diag, "invalid value for setting \"%s\": \"%s\"", key, value);
		{
			char choices[256] = "";
			size_t used = 0;
			for (int i = 0; s->choices[i] && used < sizeof(choices); i++) {
				int w = snprintf(choices + used, sizeof(choices) - used, "%s%s",
						 i ? ", " : "", s->choices[i]);
				if (w < 0)
					break;
				used += (size_t)w;
			}
			aif_diag_hint(diag, "Valid values are: %s.", choices);
		}
		return -1;
	}
	aif_diag_message(diag, "internal error: setting \"%s\" has an unknown type", key);
	return -1;
}

int aif_setting_parse_arg(const struct aif_setting *table, size_t n, void *dst, const char *arg,
			  struct aif_diag *diag)
{
	const char *eq = strchr(arg, '=');
	char key[64];
	size_t klen;

	if (!eq || eq == arg) {
		aif_diag_clear(diag);
		aif_diag_message(diag, "invalid argument \"%s\"", arg);
		aif_diag_hint(diag, "Arguments have the form key=value.");
		return -1;
	}
	klen = (size_t)(eq - arg);
	if (klen >= sizeof(key))
		klen = sizeof(key) - 1; /* too long to be a valid key: reported as unrecognized */
	memcpy(key, arg, klen);
	key[klen] = '\0';
	return aif_setting_set(table, n, dst, key, eq + 1, diag);
}

static char *trim(char *s)
{
	char *end;
	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

int aif_settings_read_file(const struct aif_setting *table, size_t n, void *dst, const char *path,
			   unsigned *lines, aif_setting_report_fn report, void *arg)
{
	FILE *f = fopen(path, "r");
	char line[1024];
	unsigned lineno = 0;
	int errors = 0;
	struct aif_diag diag;

	if (lines)
		memset(lines, 0, n * sizeof(*lines));

	if (!f) {
		aif_diag_clear(&diag);
		aif_diag_message(&diag, "could not open config file \"%s\": %s", path, strerror(errno));
		report(path, 0, &diag, arg);
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		char *hash, *eq, *key;
		const char *value;
		lineno++;
		aif_diag_clear(&diag);
		if (!strchr(line, '\n') && !feof(f)) {
			int c;
			aif_diag_message(&diag, "line is longer than %zu characters", sizeof(line) - 2);
			report(path, lineno, &diag, arg);
			errors++;
			while ((c = fgetc(f)) != EOF && c != '\n')
				;
			continue;
		}
		if ((hash = strchr(line, '#')))
			*hash = '\0';
		key = trim(line);
		if (*key == '\0')
			continue;
		eq = strchr(key, '=');
		if (!eq) {
			aif_diag_message(&diag, "syntax error: expected \"key = value\"");
			report(path, lineno, &diag, arg);
			errors++;
			continue;
		}
		*eq = '\0';
		key = trim(key);
		value = trim(eq + 1);
		if (aif_setting_set(table, n, dst, key, value, &diag) < 0) {
			report(path, lineno, &diag, arg);
			errors++;
		} else if (lines) {
			lines[find(table, n, key) - table] = lineno;
		}
	}
	if (ferror(f)) {
		aif_diag_clear(&diag);
		aif_diag_message(&diag, "could not read config file \"%s\"", path);
		report(path, lineno, &diag, arg);
		errors++;
	}
	fclose(f);
	return errors;
}
