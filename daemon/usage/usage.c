/* usage: records as the arrays of aif.record_usage() (usage.h). */
#include "usage.h"

#include <string.h>

#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

const char usage_write_sql[] = "SELECT aif.record_usage($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,"
			       " $11, $12, $13, $14, $15, $16)";

void usage_params_start(struct usage_params *p)
{
	for (int j = 0; j < USAGE_NARRAYS; j++)
		pg_array_start(&p->arrays[j]);
}

static void put_time(struct pg_array *a, int64_t t)
{
	if (t < 0) /* USAGE_TIME_UNKNOWN */
		pg_array_null(a);
	else
		pg_array_int(a, t);
}

void usage_params_add(struct usage_params *p, const struct usage_record *r, bool final)
{
	struct pg_array *a = p->arrays;
	bool is_end = r->event == USAGE_END;

	pg_array_bool(&a[0], is_end);
	pg_array_text(&a[1], r->cluster);
	pg_array_int(&a[2], r->job);
	pg_array_text(&a[3], r->node);
	pg_array_int(&a[4], r->restart);
	pg_array_text(&a[5], r->project);
	pg_array_text(&a[6], r->sector);
	pg_array_int(&a[7], r->uid);
	pg_array_text(&a[8], r->user);
	pg_array_int(&a[9], r->gpus);
	put_time(&a[10], r->start);
	put_time(&a[11], is_end ? r->end : USAGE_TIME_UNKNOWN);
	pg_array_bool(&a[12], r->exact);
	pg_array_bool(&a[13], final);
	pg_array_text(&a[14], r->unattributed);
}

const char *const *usage_params_end(struct usage_params *p)
{
	bool ok = true;

	for (int j = 0; j < USAGE_NARRAYS; j++)
		ok = (p->values[j] = pg_array_end(&p->arrays[j])) != NULL && ok;
	p->values[USAGE_NARRAYS] = STRINGIFY(USAGE_CLOCK_TOLERANCE) " seconds";
	return ok ? p->values : NULL;
}

void usage_params_free(struct usage_params *p)
{
	for (int j = 0; j < USAGE_NARRAYS; j++)
		pg_array_free(&p->arrays[j]);
}
