#include "output.h"

#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

/* PostgreSQL type OIDs (pg_type.dat) of the columns printed as numbers. */
enum { OID_INT8 = 20, OID_INT2 = 21, OID_INT4 = 23, OID_FLOAT4 = 700, OID_FLOAT8 = 701, OID_NUMERIC = 1700 };

struct output_table {
	size_t n_columns, n_rows, cap_rows;
	char **names;
	bool *numeric;
	char **cells; /* n_rows * n_columns, row-major; NULL is NULL */
	const char *note; /* under the text table, or NULL (output_table_note) */
};

struct output_table *output_table_new(size_t n_columns, const char *const *names, const bool *numeric)
{
	struct output_table *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->n_columns = n_columns;
	t->names = calloc(n_columns, sizeof(*t->names));
	t->numeric = calloc(n_columns, sizeof(*t->numeric));
	if (!t->names || !t->numeric) {
		output_table_free(t);
		return NULL;
	}
	for (size_t c = 0; c < n_columns; c++) {
		t->numeric[c] = numeric && numeric[c];
		if (!(t->names[c] = strdup(names[c]))) {
			output_table_free(t);
			return NULL;
		}
	}
	return t;
}

static bool oid_is_numeric(Oid oid)
{
	return oid == OID_INT2 || oid == OID_INT4 || oid == OID_INT8 || oid == OID_FLOAT4 ||
	       oid == OID_FLOAT8 || oid == OID_NUMERIC;
}

struct output_table *output_table_from_result(const PGresult *res)
{
	size_t n = (size_t)PQnfields(res);
	const char **names = calloc(n ? n : 1, sizeof(*names));
	const char **values = calloc(n ? n : 1, sizeof(*values));
	bool *numeric = calloc(n ? n : 1, sizeof(*numeric));
	struct output_table *t = NULL;

	if (!names || !values || !numeric)
		goto out;
	for (size_t c = 0; c < n; c++) {
		names[c] = PQfname(res, (int)c);
		numeric[c] = oid_is_numeric(PQftype(res, (int)c));
	}
	if (!(t = output_table_new(n, names, numeric)))
		goto out;
	for (int r = 0; r < PQntuples(res); r++) {
		for (size_t c = 0; c < n; c++)
			values[c] = PQgetisnull(res, r, (int)c) ? NULL : PQgetvalue(res, r, (int)c);
		if (output_table_add_row(t, values) < 0) {
			output_table_free(t);
			t = NULL;
			goto out;
		}
	}
out:
	free(names);
	free(values);
	free(numeric);
	return t;
}

int output_table_add_row(struct output_table *t, const char *const *values)
{
	if (t->n_rows == t->cap_rows) {
		size_t cap = t->cap_rows ? 2 * t->cap_rows : 16;
		char **cells = realloc(t->cells, cap * t->n_columns * sizeof(*cells));
		if (!cells)
			return -1;
		t->cells = cells;
		t->cap_rows = cap;
	}
	char **row = t->cells + t->n_rows * t->n_columns;
	for (size_t c = 0; c < t->n_columns; c++) {
		row[c] = NULL;
		if (values[c] && !(row[c] = strdup(values[c]))) {
			while (c--)
				free(row[c]);
			return -1;
		}
	}
	t->n_rows++;
	return 0;
}

size_t output_table_rows(const struct output_table *t)
{
	return t->n_rows;
}

static const char *cell(const struct output_table *t, size_t r, size_t c)
{
	return t->cells[r * t->n_columns + c];
}

/* Like psql's aligned format: header, a rule, rows; numbers right-aligned; "(N rows)". */
static void print_text(const struct output_table *t, FILE *out)
{
	size_t *width = calloc(t->n_columns ? t->n_columns : 1, sizeof(*width));
	if (!width)
		return;
	for (size_t c = 0; c < t->n_columns; c++) {
		width[c] = strlen(t->names[c]);
		for (size_t r = 0; r < t->n_rows; r++) {
			const char *v = cell(t, r, c);
			if (v && strlen(v) > width[c])
				width[c] = strlen(v);
		}
	}
	for (size_t c = 0; c < t->n_columns; c++)
		fprintf(out, "%s%-*s", c ? "  " : "", c + 1 < t->n_columns ? (int)width[c] : 0, t->names[c]);
	fputc('\n', out);
	for (size_t c = 0; c < t->n_columns; c++) {
		fputs(c ? "  " : "", out);
		for (size_t i = 0; i < width[c]; i++)
			fputc('-', out);
	}
	fputc('\n', out);
	for (size_t r = 0; r < t->n_rows; r++) {
		for (size_t c = 0; c < t->n_columns; c++) {
			const char *v = cell(t, r, c) ? cell(t, r, c) : "";
			bool last = c + 1 == t->n_columns;
			if (t->numeric[c])
				fprintf(out, "%s%*s", c ? "  " : "", (int)width[c], v);
			else
				fprintf(out, "%s%-*s", c ? "  " : "", last ? 0 : (int)width[c], v);
		}
		fputc('\n', out);
	}
	fprintf(out, "(%zu %s)\n", t->n_rows, t->n_rows == 1 ? "row" : "rows");
	if (t->note)
		fprintf(out, "%s\n", t->note);
	free(width);
}

static void print_csv_field(const char *v, FILE *out)
{
	if (!v)
		return;
	if (!strpbrk(v, ",\"\r\n")) {
		fputs(v, out);
		return;
	}
	fputc('"', out);
	for (; *v; v++) {
		if (*v == '"')
			fputc('"', out);
		fputc(*v, out);
	}
	fputc('"', out);
}

static void print_csv(const struct output_table *t, FILE *out)
{
	for (size_t c = 0; c < t->n_columns; c++) {
		fputs(c ? "," : "", out);
		print_csv_field(t->names[c], out);
	}
	fputs("\r\n", out);
	for (size_t r = 0; r < t->n_rows; r++) {
		for (size_t c = 0; c < t->n_columns; c++) {
			fputs(c ? "," : "", out);
			print_csv_field(cell(t, r, c), out);
		}
		fputs("\r\n", out);
	}
}

static int print_json(const struct output_table *t, FILE *out)
{
	json_object *rows = json_object_new_array();
	if (!rows)
		return -1;
	for (size_t r = 0; r < t->n_rows; r++) {
		json_object *row = json_object_new_object();
		if (!row || json_object_array_add(rows, row) < 0) {
			json_object_put(row);
			json_object_put(rows);
			return -1;
		}
		for (size_t c = 0; c < t->n_columns; c++) {
			const char *v = cell(t, r, c);
			json_object *value = NULL;
			if (v && t->numeric[c])
				/* The server's exact decimal text, not a double's rounding of it. */
				value = json_object_new_double_s(strtod(v, NULL), v);
			else if (v)
				value = json_object_new_string(v);
			json_object_object_add(row, t->names[c], value);
		}
	}
	fprintf(out, "%s\n", json_object_to_json_string_ext(rows, JSON_C_TO_STRING_PRETTY |
									   JSON_C_TO_STRING_SPACED |
									   JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(rows);
	return 0;
}

int output_table_print(const struct output_table *t, enum aifctl_format format, FILE *out)
{
	switch (format) {
	case AIFCTL_FORMAT_TABLE:
		print_text(t, out);
		break;
	case AIFCTL_FORMAT_CSV:
		print_csv(t, out);
		break;
	case AIFCTL_FORMAT_JSON:
		if (print_json(t, out) < 0)
			return -1;
		break;
	}
	return fflush(out) == 0 && !ferror(out) ? 0 : -1;
}

void output_table_note(struct output_table *t, const char *note)
{
	t->note = note;
}

void output_table_free(struct output_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n_rows * t->n_columns; i++)
		free(t->cells[i]);
	for (size_t c = 0; t->names && c < t->n_columns; c++)
		free(t->names[c]);
	free(t->cells);
	free(t->names);
	free(t->numeric);
	free(t);
}
