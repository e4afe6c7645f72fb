/*
 * Unit tests for slurmdbd_match() (daemon/slurm/slurmdbd.c): which of slurmdbd's records of a
 * job id is the run whose interval aifd closes, and when none is.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <slurm/slurm.h>

#include "slurmdbd.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define NOW 100000

/* Sorted by job, as the lookup sorts them. */
static const struct slurmdbd_record recs[] = {
	/* job 5: an older job of the same id (ids wrapped), then the run aif knows */
	{5, JOB_COMPLETE, 1000, 2000, 1000},
	{5, JOB_COMPLETE, 50000, 50600, 1000},
	/* job 7: requeued (its first run's record kept as JOB_REQUEUE), then completed */
	{7, JOB_REQUEUE, 60000, 60100, 1000},
	{7, JOB_COMPLETE, 60200, 60900, 1000},
	/* job 8: still running in slurmdbd; job 9: an end in the future */
	{8, JOB_RUNNING, 70000, 0, 1000},
	{9, JOB_COMPLETE, 70000, NOW + 500, 1000},
	/* job 10: a job whose end alone reached aifd, after slurmctld forgot it */
	{10, JOB_COMPLETE, 80000, 80100, 4242},
};

static struct slurmdbd_run run(uint32_t job, time_t first, time_t seen)
{
	struct slurmdbd_run r = {.job = job, .first = first, .seen = seen, .start = -1, .end = -1};

	slurmdbd_match(&r, recs, N(recs), NOW);
	return r;
}

static void test_the_run_aif_knows(void **state)
{
	/* the prolog's time a second after slurmctld's StartTime, seen running later */
	struct slurmdbd_run r = run(5, 50001, 50300);

	(void)state;
	assert_int_equal(50000, r.start);
	assert_int_equal(50600, r.end);
	assert_int_equal(JOB_COMPLETE, r.state);
}

static void test_not_an_older_job_of_the_same_id(void **state)
{
	/* this run's own record is missing (slurmctld has not sent it yet): the older job's
	 * record started before it but ended long before it began */
	static const struct slurmdbd_record old_only[] = {{5, JOB_COMPLETE, 1000, 2000, 1000}};
	struct slurmdbd_run r = {.job = 5, .first = 50001, .seen = 50300};

	(void)state;
	slurmdbd_match(&r, old_only, N(old_only), NOW);
	assert_int_equal(0, r.start);
	assert_int_equal(0, r.end);
}

static void test_requeued_runs(void **state)
{
	struct slurmdbd_run first = run(7, 60001, 60050), second = run(7, 60201, 60500);

	(void)state;
	assert_int_equal(60000, first.start);
	assert_int_equal(60100, first.end);
	assert_int_equal(60200, second.start);
	assert_int_equal(60900, second.end);
}

static void test_ended_before_last_seen(void **state)
{
	/* aifd saw the run alive after the record's end: the record is not this run's */
	struct slurmdbd_run r = run(7, 60001, 60150);

	(void)state;
	assert_int_equal(0, r.end);
}

static void test_an_end_alone(void **state)
{
	/* the settler's run of an end whose start never came: started by the epilog's time (4 s
	 * after slurmctld's EndTime), running until that time less the clock tolerance */
	struct slurmdbd_run r = run(10, 80104, 80104 - 300);

	(void)state;
	assert_int_equal(80000, r.start);
	assert_int_equal(80100, r.end);
	assert_int_equal(4242, r.uid);
	/* each run of a requeued job, by its epilog's time */
	r = run(7, 60101, 60101 - 300);
	assert_int_equal(60000, r.start);
	assert_int_equal(60100, r.end);
	r = run(7, 60901, 60901 - 300);
	assert_int_equal(60200, r.start);
	assert_int_equal(60900, r.end);
}

static void test_not_ended(void **state)
{
	(void)state;
	assert_int_equal(0, run(8, 70001, 0).end);  /* running in slurmdbd */
	assert_int_equal(0, run(9, 70001, 0).end);  /* an end after now */
	assert_int_equal(0, run(6, 70001, 0).end);  /* no record of the id */
	assert_int_equal(0, run(5, 900, 0).end);    /* every record starts after the run */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_the_run_aif_knows),
		cmocka_unit_test(test_not_an_older_job_of_the_same_id),
		cmocka_unit_test(test_requeued_runs),
		cmocka_unit_test(test_ended_before_last_seen),
		cmocka_unit_test(test_an_end_alone),
		cmocka_unit_test(test_not_ended),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
