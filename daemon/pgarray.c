#include "pgarray.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void reserve(struct pg_array *a, size_t more)
{
	size_t cap;
	char *data;

	if (a->failed || a->len + more + 1 <= a->cap)
		return;
	cap = a->cap ? a->cap : 4096;
	while (cap < a->len + more + 1)
		cap *= 2;
	data = realloc(a->data, cap);
	if (!data) {
		a->failed = true;
		return;
	}
	a->data = data;
	a->cap = cap;
}

static void put(struct pg_array *a, const char *text, size_t len)
{
	reserve(a, len);
	if (a->failed)
		return;
	memcpy(a->data + a->len, text, len);
	a->len += len;
	a->data[a->len] = '\0';
}

static void put_char(struct pg_array *a, char c)
{
	put(a, &c, 1);
}

/* The separator before an element. */
static void element(struct pg_array *a)
{
	if (a->count++)
		put_char(a, ',');
}

void pg_array_start(struct pg_array *a)
{
	a->len = 0;
	a->count = 0;
	a->failed = false;
	put_char(a, '{');
}

void pg_array_null(struct pg_array *a)
{
	element(a);
	put(a, "NULL", 4);
}

void pg_array_text(struct pg_array *a, const char *text)
{
	if (!text) {
		pg_array_null(a);
		return;
	}
	element(a);
	put_char(a, '"');
	for (const char *p = text; *p; p++) {
		if (*p == '"' || *p == '\\')
			put_char(a, '\\');
		put_char(a, *p);
	}
	put_char(a, '"');
}

void pg_array_int(struct pg_array *a, int64_t v)
{
	char text[24];
	int len = snprintf(text, sizeof(text), "%" PRId64, v);

	element(a);
	put(a, text, (size_t)len);
}

void pg_array_bool(struct pg_array *a, bool v)
{
	element(a);
	put_char(a, v ? 't' : 'f');
}

const char *pg_array_end(struct pg_array *a)
{
	put_char(a, '}');
	return a->failed ? NULL : a->data;
}

void pg_array_free(struct pg_array *a)
{
	free(a->data);
	memset(a, 0, sizeof(*a));
}
