#include "budgets_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aifctl.h"

static void collect_issue(const struct aif_budgets_issue *issue, void *arg)
{
	struct budgets_file *f = arg;
	if (issue->warning)
		f->warnings++;
	if (f->issues) {
		char line[16], column[16];
		const char *row[5] = {issue->file, line, column, issue->warning ? "warning" : "error",
				      issue->message};
		snprintf(line, sizeof(line), "%u", issue->line);
		snprintf(column, sizeof(column), "%u", issue->column);
		output_table_add_row(f->issues, row);
	}
	if (f->lines_out) {
		char text[1024];
		fprintf(f->lines_out, "%s\n", aif_budgets_issue_format(issue, text, sizeof(text)));
	}
}

static int read_all(const char *path, char **text, size_t *len)
{
	FILE *in = fopen(path, "rb");
	char *buf = NULL;
	size_t used = 0, cap = 0;

	if (!in)
		return -1;
	for (;;) {
		if (used == cap) {
			char *grown = realloc(buf, cap = cap ? 2 * cap : 65536);
			if (!grown)
				break;
			buf = grown;
		}
		size_t n = fread(buf + used, 1, cap - used, in);
		used += n;
		if (n == 0)
			break;
	}
	if (ferror(in) || used == cap) {
		int saved = ferror(in) ? EIO : ENOMEM;
		fclose(in);
		free(buf);
		errno = saved;
		return -1;
	}
	fclose(in);
	buf[used] = '\0';
	*text = buf;
	*len = used;
	return 0;
}

int budgets_file_load(struct budgets_file *f, const char *path, FILE *lines_out,
		      const struct aif_budgets_options *options)
{
	static const char *const columns[] = {"file", "line", "column", "severity", "message"};
	static const bool numeric[] = {false, true, true, false, false};

	memset(f, 0, sizeof(*f));
	f->path = path;
	f->lines_out = lines_out;
	if (read_all(path, &f->text, &f->len) < 0) {
		aifctl_error("could not read budgets file \"%s\": %s", path, strerror(errno));
		return AIFCTL_FAILURE;
	}
	if (!(f->issues = output_table_new(5, columns, numeric))) {
		aifctl_error("out of memory");
		return AIFCTL_FAILURE;
	}
	f->errors = aif_budgets_parse(path, f->text, f->len, options, &f->model, collect_issue, f);
	return f->errors ? AIFCTL_INVALID : AIFCTL_OK;
}

void budgets_file_free(struct budgets_file *f)
{
	aif_budgets_free(f->model);
	output_table_free(f->issues);
	free(f->text);
	memset(f, 0, sizeof(*f));
}
