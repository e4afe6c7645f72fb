/*
 * Unit tests for aifd's limit on messages a peer can repeat at will (daemon/log.c,
 * struct log_limit): one warning a period by default, a burst of a given level when set, the
 * others counted and summed up once the period is over, and a full burst again in the period
 * after a summary.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "log.h"

#define T 5000000 /* "now" on aif_clock_ms()'s clock, in ms */

static void one_warning_a_period(void **state)
{
	struct log_limit l;

	(void)state;
	log_limit_init(&l, "things", 1000);
	assert_true(log_limit_pass(&l, T));
	assert_false(log_limit_pass(&l, T + 1));
	assert_false(log_limit_pass(&l, T + 999));
	assert_int_equal(l.more, 2);
	assert_true(log_limit_pass(&l, T + 1000)); /* after the summary of the 2 */
	assert_int_equal(l.more, 0);
}

/* A limit of 3 information messages a second. */
static void three_a_second(struct log_limit *l)
{
	log_limit_init(l, "things", 1000);
	log_limit_burst(l, LOG_LEVEL_INFO, 3);
}

static void a_burst_a_period(void **state)
{
	struct log_limit l;

	(void)state;
	three_a_second(&l);
	for (int i = 0; i < 3; i++)
		assert_true(log_limit_pass(&l, T + i));
	assert_false(log_limit_pass(&l, T + 3));
	assert_false(log_limit_pass(&l, T + 4));
	assert_int_equal(l.more, 2);
	for (int i = 0; i < 3; i++)
		assert_true(log_limit_pass(&l, T + 1000 + i));
	assert_false(log_limit_pass(&l, T + 1003));
}

/* A summary the flush writes starts a period with its whole burst: not one logged message. */
static void a_whole_burst_after_the_flush(void **state)
{
	struct log_limit l;

	(void)state;
	three_a_second(&l);
	for (int i = 0; i < 4; i++)
		log_limit_pass(&l, T + i);
	assert_int_equal(l.more, 1);
	assert_int_equal(log_limit_flush(&l, T + 500, INT64_MAX), T + 1000); /* not yet */
	assert_int_equal(log_limit_flush(&l, T + 1000, INT64_MAX), INT64_MAX); /* the summary */
	assert_int_equal(l.more, 0);
	for (int i = 0; i < 3; i++)
		assert_true(log_limit_pass(&l, T + 1001 + i));
	assert_false(log_limit_pass(&l, T + 1004));
}

static void nothing_counted_below_the_level(void **state)
{
	struct log_limit l;

	(void)state;
	log_setup(LOG_LEVEL_WARNING, false);
	three_a_second(&l);
	assert_false(log_limit_pass(&l, T));
	assert_int_equal(l.more, 0);
	log_setup(LOG_LEVEL_INFO, false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(one_warning_a_period),
		cmocka_unit_test(a_burst_a_period),
		cmocka_unit_test(a_whole_burst_after_the_flush),
		cmocka_unit_test(nothing_counted_below_the_level),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
