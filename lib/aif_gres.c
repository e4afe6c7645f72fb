/* aif_gres: the GPUs a GRES or TRES list names (aif_gres.h). */
#include "aif_gres.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The count of a GPU entry from what follows its name, [p, end): "" (1), ":h100" or
 * ":1g.10gb" (a type alone, MIG profiles included: 1), ":2", ":h100:2" or "=2". Slurm takes a
 * trailing token of digits for the count, and digits with a k, m or g for 2^10, 2^20, 2^30
 * times them: -1 for those (absurd for GPUs), and when malformed ("gpu:", "gpu=x").
 */
static int64_t entry_count(const char *p, const char *end)
{
	const char *last = p;
	bool digits = true;
	int64_t n = 0;

	if (p == end)
		return 1;
	for (const char *c = p; c < end; c++)
		if (*c == ':' || *c == '=')
			last = c + 1;
	if (last == end)
		return -1;
	for (const char *c = last; c < end && digits; c++) {
		if (!(digits = *c >= '0' && *c <= '9'))
			break;
		if ((n = n * 10 + (*c - '0')) > INT32_MAX)
			return -1;
	}
	if (digits)
		return n;
	if (last[-1] == '=')
		return -1;
	/* Not a number: a type ("gpu:h100"), unless a number with a suffix ("2k"). */
	for (const char *c = last; c < end; c++)
		if (*c < '0' || *c > '9')
			return c > last && c + 1 == end && strchr("kKmMgG", *c) ? -1 : 1;
	return 1;
}

int64_t aif_gres_gpus(const char *list)
{
	int64_t gpus = 0;

	for (const char *p = list; p && *p;) {
		const char *end = p + strcspn(p, ",;"), *name = p;

		if (end - p > 5 && (strncmp(p, "gres:", 5) == 0 || strncmp(p, "gres/", 5) == 0))
			name = p + 5;
		if (end - name >= 3 && strncmp(name, "gpu", 3) == 0 &&
		    (name + 3 == end || name[3] == ':' || name[3] == '=')) {
			int64_t n = entry_count(name + 3, end);

			if (n < 0)
				return -1;
			gpus += n;
		}
		p = *end ? end + 1 : end;
	}
	return gpus;
}

/* a x b, both >= 0, at most 2^40: a count past that is absurd, and must not overflow. */
static int64_t times(int64_t a, int64_t b)
{
	const int64_t most = (int64_t)1 << 40;

	if (a == 0 || b == 0)
		return 0;
	return a > most / b ? most : a * b > most ? most : a * b;
}

int64_t aif_gres_most_gpus(const struct aif_gres_request *r)
{
	int64_t job = aif_gres_gpus(r->per_job), node = aif_gres_gpus(r->per_node),
		task = aif_gres_gpus(r->per_task), socket = aif_gres_gpus(r->per_socket);
	int64_t nodes = r->max_nodes ? r->max_nodes : r->min_nodes ? r->min_nodes : 1;
	int64_t tasks = r->tasks ? r->tasks : times(nodes, r->tasks_per_node ? r->tasks_per_node : 1);
	int64_t most = job;

	if (job < 0 || node < 0 || task < 0 || socket < 0)
		return -1;
	if (times(node, nodes) > most)
		most = times(node, nodes);
	if (times(task, tasks) > most)
		most = times(task, tasks);
	if (socket > 0) {
		if (!r->sockets_per_node)
			return -1;
		if (times(times(socket, r->sockets_per_node), nodes) > most)
			most = times(times(socket, r->sockets_per_node), nodes);
	}
	return most;
}

/* One model of a node: its name within the detail string, and its GPUs. */
struct model_count {
	const char *name;
	size_t len;
	int64_t gpus;
};

static int by_model_name(const void *a, const void *b)
{
	const struct model_count *x = a, *y = b;
	int c = strncmp(x->name, y->name, x->len < y->len ? x->len : y->len);

	return c ? c : (x->len > y->len) - (x->len < y->len);
}

#define MODELS_MAX 32 /* distinct GPU models on one node: far more than any node has */

int64_t aif_gres_models(const char *detail, char *out, size_t size)
{
	struct model_count models[MODELS_MAX] = {0};
	size_t n = 0, used = 0;
	int64_t total = 0;

	if (!size)
		return -1;
	out[0] = '\0';
	for (const char *p = detail; p && *p;) {
		/* An entry ends at a ',' outside its "(IDX:0,2-3)". */
		const char *end = p, *paren, *colon;
		int depth = 0;

		for (; *end && (depth || *end != ','); end++)
			depth += *end == '(' ? 1 : *end == ')' ? -1 : 0;
		paren = memchr(p, '(', (size_t)(end - p));
		if (!paren)
			paren = end;
		if (paren - p >= 4 && strncmp(p, "gpu:", 4) == 0) {
			const char *name = p + 4, *c;
			int64_t count = 0;

			colon = NULL;
			for (c = name; c < paren; c++)
				if (*c == ':')
					colon = c;
			c = colon ? colon + 1 : name;
			if (c == paren)
				return -1;
			for (; c < paren; c++) {
				if (*c < '0' || *c > '9' || (count = count * 10 + (*c - '0')) > INT32_MAX)
					return -1;
			}
			if (colon && memchr(name, ':', (size_t)(colon - name)))
				return -1; /* gpu:a:b:2 */
			if (count) {
				size_t len = colon ? (size_t)(colon - name) : 0, i;

				for (i = 0; i < n && (models[i].len != len ||
						      strncmp(models[i].name, name, len) != 0); i++)
					;
				if (i == n) {
					if (n == MODELS_MAX)
						return -1;
					models[n++] = (struct model_count){name, len, 0};
				}
				models[i].gpus += count;
				total += count;
			}
		}
		p = *end ? end + 1 : end;
	}
	qsort(models, n, sizeof(models[0]), by_model_name);
	for (size_t i = 0; i < n; i++) {
		int w = snprintf(out + used, size - used, "%s%.*s:%lld", i ? "," : "",
				 (int)models[i].len, models[i].name, (long long)models[i].gpus);

		if (w < 0 || (size_t)w >= size - used) {
			out[0] = '\0';
			return -1;
		}
		used += (size_t)w;
	}
	return total;
}

int aif_tres_value(const char *tres, const char *name, int64_t *out)
{
	size_t len = strlen(name);

	for (const char *p = tres; p && *p;) {
		const char *end = p + strcspn(p, ",");

		if ((size_t)(end - p) > len && strncmp(p, name, len) == 0 && p[len] == '=') {
			const char *v = p + len + 1;
			int64_t n = 0, scale = 1;

			if (v == end)
				return -1;
			for (; v < end && *v >= '0' && *v <= '9'; v++)
				if ((n = n * 10 + (*v - '0')) > ((int64_t)1 << 50))
					return -1;
			if (v < end) {
				const char *units = "MGTP", *u = memchr(units, *v, 4);

				if (!u || v + 1 != end)
					return -1;
				for (; u > units; u--)
					scale *= 1024;
			}
			if (n > ((int64_t)1 << 50) / scale)
				return -1;
			*out = n * scale;
			return 0;
		}
		p = *end ? end + 1 : end;
	}
	return -1;
}
