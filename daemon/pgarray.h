/*
 * pgarray: a PostgreSQL array literal ("{1,NULL,\"n1\"}"), built element by element, to send
 * many rows as one text parameter of one statement (group commit, reconciliation's closes).
 */
#ifndef AIFD_PGARRAY_H
#define AIFD_PGARRAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pg_array {
	char *data;
	size_t len, cap;
	size_t count;   /* elements added since pg_array_start() */
	bool failed;    /* out of memory: pg_array_end() says so */
};

/* Begin a new literal, keeping the memory of the last one. */
void pg_array_start(struct pg_array *a);
void pg_array_null(struct pg_array *a);
/* NULL is SQL NULL; the text is double-quoted, with " and \ escaped. */
void pg_array_text(struct pg_array *a, const char *text);
void pg_array_int(struct pg_array *a, int64_t v);
void pg_array_bool(struct pg_array *a, bool v);
/* The literal, valid until the next start; NULL when out of memory. */
const char *pg_array_end(struct pg_array *a);
void pg_array_free(struct pg_array *a);

#endif
