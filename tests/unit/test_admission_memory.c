/*
 * Unit tests for aifd's memory of admissions (daemon/budgets/admission_memory.c): it answers
 * only for the job, uid and cluster it holds, as the database's one row per job would, a
 * later job of the same id or slot replaces it, and it forgets by age.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "admission_memory.h"

#define T 5000000 /* "now" on aif_clock_ms()'s clock, in ms */

static struct admission admitted(const char *verdict, const char *project)
{
	struct admission a;

	memset(&a, 0, sizeof(a));
	snprintf(a.verdict, sizeof(a.verdict), "%s", verdict);
	snprintf(a.reason, sizeof(a.reason), "%s", strcmp(verdict, "refuse") ? "ok" : "not-member");
	snprintf(a.project, sizeof(a.project), "%s", project);
	snprintf(a.sector, sizeof(a.sector), "%s", project[0] ? "health" : "");
	snprintf(a.diag.message, sizeof(a.diag.message), "not remembered");
	a.unreserved = true;
	return a;
}

static void remembers_what_it_was_given(void **state)
{
	struct admission in = admitted("ok", "proja"), out;

	(void)state;
	admission_memory_put("c1", 10, 1000, &in, T);
	assert_true(admission_memory_get("c1", 10, 1000, &out, T));
	assert_string_equal(out.verdict, "ok");
	assert_string_equal(out.reason, "ok");
	assert_string_equal(out.project, "proja");
	assert_string_equal(out.sector, "health");
	/* what changes with the job's runs, or is not needed to charge, is not remembered */
	assert_false(out.unreserved);
	assert_string_equal(out.diag.message, "");
}

static void answers_only_its_job_uid_and_cluster(void **state)
{
	struct admission in = admitted("ok", "proja"), out;

	(void)state;
	admission_memory_put("c1", 20, 1000, &in, T);
	assert_false(admission_memory_get("c1", 20, 1001, &out, T)); /* a reused id, another user */
	assert_false(admission_memory_get("c2", 20, 1000, &out, T));
	assert_false(admission_memory_get("c1", 21, 1000, &out, T));
	assert_false(admission_memory_get("c1", 20 + ADMISSION_MEMORY_SLOTS, 1000, &out, T));
	assert_true(admission_memory_get("c1", 20, 1000, &out, T));
}

static void a_later_job_of_the_slot_replaces_it(void **state)
{
	struct admission first = admitted("ok", "proja"), later = admitted("refuse", ""), out;

	(void)state;
	admission_memory_put("c1", 30, 1000, &first, T);
	admission_memory_put("c1", 30, 1001, &later, T); /* the same id, kept for another uid */
	assert_false(admission_memory_get("c1", 30, 1000, &out, T));
	assert_true(admission_memory_get("c1", 30, 1001, &out, T));
	assert_string_equal(out.verdict, "refuse");
	assert_string_equal(out.project, "");
	admission_memory_put("c1", 30 + ADMISSION_MEMORY_SLOTS, 1000, &first, T);
	assert_false(admission_memory_get("c1", 30, 1001, &out, T));
	assert_true(admission_memory_get("c1", 30 + ADMISSION_MEMORY_SLOTS, 1000, &out, T));
}

static void forgets_only_what_it_holds(void **state)
{
	struct admission in = admitted("warn", "projb"), out;

	(void)state;
	admission_memory_put("c1", 40, 1000, &in, T);
	admission_memory_forget("c1", 40, 1001); /* another uid's: not this one */
	admission_memory_forget("c2", 40, 1000);
	assert_true(admission_memory_get("c1", 40, 1000, &out, T));
	admission_memory_forget("c1", 40, 1000);
	assert_false(admission_memory_get("c1", 40, 1000, &out, T));
}

static void a_cluster_name_too_long_is_not_remembered(void **state)
{
	struct admission in = admitted("ok", "proja"), out;
	char cluster[200];

	(void)state;
	memset(cluster, 'c', sizeof(cluster) - 1);
	cluster[sizeof(cluster) - 1] = '\0';
	admission_memory_put(cluster, 50, 1000, &in, T);
	assert_false(admission_memory_get(cluster, 50, 1000, &out, T));
	cluster[63] = '\0'; /* what a truncated copy would hold */
	assert_false(admission_memory_get(cluster, 50, 1000, &out, T));
}

static void forgets_after_an_hour(void **state)
{
	struct admission in = admitted("ok", "proja"), out;

	(void)state;
	admission_memory_put("c1", 60, 1000, &in, T);
	assert_true(admission_memory_get("c1", 60, 1000, &out, T + ADMISSION_MEMORY_MS - 1));
	assert_false(admission_memory_get("c1", 60, 1000, &out, T + ADMISSION_MEMORY_MS));
	/* remembered again, it ages from then */
	admission_memory_put("c1", 60, 1000, &in, T + ADMISSION_MEMORY_MS);
	assert_true(admission_memory_get("c1", 60, 1000, &out, T + 2 * ADMISSION_MEMORY_MS - 1));
	assert_false(admission_memory_get("c1", 60, 1000, &out, T + 2 * ADMISSION_MEMORY_MS));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(remembers_what_it_was_given),
		cmocka_unit_test(answers_only_its_job_uid_and_cluster),
		cmocka_unit_test(a_later_job_of_the_slot_replaces_it),
		cmocka_unit_test(forgets_only_what_it_holds),
		cmocka_unit_test(a_cluster_name_too_long_is_not_remembered),
		cmocka_unit_test(forgets_after_an_hour),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
