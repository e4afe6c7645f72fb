/*
 * Unit tests for aif_gres_gpus() (lib/aif_gres.c): the GPUs in slurmctld's GRES totals of a
 * running job and in the tres_per_* strings of a submission, as the three Slurm releases write
 * them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "aif_gres.h"

static const struct {
	const char *list;
	int64_t gpus;
} cases[] = {
	{NULL, 0},
	{"", 0},
	/* slurmctld's totals of an allocation (gres_total) */
	{"gpu:4", 4},
	{"gpu:h100:2,gpu:a100:1,nic:1", 3},
	{"nic:1", 0},
	{"gpus:2", 0}, /* another GRES, whose name starts like gpu */
	/* what sbatch sends: 22.05 "gres:", 24.11 and later "gres/" */
	{"gres:gpu:2", 2},
	{"gres/gpu:2", 2},
	{"gres/gpu:h100:3", 3},
	{"gres/gpu", 1},
	{"gres:gpu:h100", 1},
	{"cpu:4,gres/gpu:1", 1}, /* 24.11's tres_per_task */
	{"cpu=4;gres/gpu=2", 2},
	{"gres/gpu:a100:1,gres/gpu:v100:2", 3},
	/* a trailing number is the count, as Slurm reads it */
	{"gres/gpu:4090", 4090},
	/* MIG profiles are types (Slurm's GRES types name them) */
	{"gres/gpu:1g.10gb", 1},
	{"gres/gpu:1g.10gb:2,gres/gpu:3g.40gb:1", 3},
	{"gpu:7g.80gb:1", 1},
	{"gres/gpu:2147483647", 2147483647},
	/* malformed: the caller does not know */
	{"gres/gpu:", -1},
	{"gres/gpu=x", -1},
	{"gres/gpu:2k", -1},
	{"gres/gpu:h100:1G", -1},
	{"gres/gpu:2147483648", -1},
	{"gres/gpu:99999999999999999999999", -1},
	{"gres/nic:1,gres/gpu:h100:", -1},
};

static void test_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t got = aif_gres_gpus(cases[i].list);

		if (got != cases[i].gpus)
			fail_msg("\"%s\": %lld GPUs, not %lld", cases[i].list ? cases[i].list : "(null)",
				 (long long)got, (long long)cases[i].gpus);
	}
}

/* The most GPUs of a request: per job, node, task, socket, with nodes and tasks given or not. */
static void test_most(void **state)
{
	const struct {
		struct aif_gres_request r;
		int64_t gpus;
	} most[] = {
		{{0}, 0},
		{{.per_node = "gres/gpu:2"}, 2},                                   /* one node */
		{{.per_node = "gres/gpu:2", .min_nodes = 2}, 4},
		{{.per_node = "gres/gpu:2", .min_nodes = 1, .max_nodes = 3}, 6},   /* -N1-3 */
		{{.per_job = "gres/gpu:3"}, 3},
		{{.per_job = "gres/gpu:4", .per_node = "gres/gpu:2", .min_nodes = 2}, 4},
		{{.per_task = "gres/gpu:1", .tasks = 3}, 3},
		{{.per_task = "gres/gpu:1", .min_nodes = 2, .tasks_per_node = 2}, 4},
		{{.per_task = "cpu:2,gres/gpu:1"}, 1},                             /* one task */
		{{.per_socket = "gres/gpu:1", .sockets_per_node = 2, .min_nodes = 2}, 4},
		{{.per_socket = "gres/gpu:1"}, -1},                                /* sockets unknown */
		{{.per_node = "gres/gpu:2k"}, -1},
		{{.per_node = "gres/gpu:2147483647", .max_nodes = 4294967294u}, (int64_t)1 << 40},
		{{.per_task = "gres/gpu:65535", .min_nodes = 4294967294u, .tasks_per_node = 65534},
		 (int64_t)1 << 40},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(most) / sizeof(most[0]); i++) {
		int64_t got = aif_gres_most_gpus(&most[i].r);

		if (got != most[i].gpus)
			fail_msg("request %zu: %lld GPUs, not %lld", i, (long long)got,
				 (long long)most[i].gpus);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_cases), cmocka_unit_test(test_most)};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
