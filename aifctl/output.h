/*
 * output: one table of strings printed as an aligned text table, CSV (RFC 4180) or JSON (an
 * array of objects, json-c). Every aifctl command prints its results through this.
 */
#ifndef AIFCTL_OUTPUT_H
#define AIFCTL_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <libpq-fe.h>

#include "aifctl.h"

struct output_table;

/* numeric: the column prints right-aligned and as JSON numbers. */
struct output_table *output_table_new(size_t n_columns, const char *const *names, const bool *numeric);
/* The rows of a query result, with column names and numeric columns as the server typed them. */
struct output_table *output_table_from_result(const PGresult *res);
/* Append a row of n_columns values (copied; NULL is SQL NULL / JSON null). */
int output_table_add_row(struct output_table *t, const char *const *values);
size_t output_table_rows(const struct output_table *t);
/* A line under the text table (as psql's footers), not in CSV or JSON: note must outlive t. */
void output_table_note(struct output_table *t, const char *note);
int output_table_print(const struct output_table *t, enum aifctl_format format, FILE *out);
void output_table_free(struct output_table *t);

#endif
