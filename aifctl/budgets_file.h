/* Reading and validating a budgets file for check, plan and apply. */
#ifndef AIFCTL_BUDGETS_FILE_H
#define AIFCTL_BUDGETS_FILE_H

#include <stddef.h>
#include <stdio.h>

#include "aif_budgets.h"
#include "output.h"

struct budgets_file {
	const char *path;
	char *text; /* the bytes validated: apply records their digest */
	size_t len;
	struct aif_budgets *model; /* NULL when the file is invalid */
	int errors, warnings;
	struct output_table *issues; /* file, line, column, severity, message */
	FILE *lines_out;             /* where issues are printed as they are found, or NULL */
};

/*
 * Read and validate path. Returns 0 when valid (warnings allowed), AIFCTL_INVALID when the
 * file has errors, AIFCTL_FAILURE when it cannot be read. Every issue is collected in
 * f->issues and, when lines_out is not NULL, printed there at once in the compilers' style
 * ("file:line:column: error: message").
 */
int budgets_file_load(struct budgets_file *f, const char *path, FILE *lines_out,
		      const struct aif_budgets_options *options);
void budgets_file_free(struct budgets_file *f);

#endif
