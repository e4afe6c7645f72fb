/*
 * Unit tests for aif_gres_gpus() (lib/aif_gres.c): the GPUs in slurmctld's GRES totals of a
 * running job and in the tres_per_* strings of a submission, as the three Slurm releases write
 * them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

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

/* A node's GPUs by model, from gres_detail_str[] (scontrol -d show job's per-node GRES=). */
static const struct {
	const char *detail;
	int64_t gpus;
	const char *models;
} detail_cases[] = {
	{NULL, 0, ""},
	{"", 0, ""},
	{"gpu:h100:2(IDX:0-1)", 2, "h100:2"},
	{"gpu:h100:2(IDX:0-1),gpu:a100:1(IDX:2)", 3, "a100:1,h100:2"},
	{"gpu:h100:3(IDX:0,2-3)", 3, "h100:3"}, /* a comma inside the indices */
	{"gpu:2(IDX:0-1)", 2, ":2"},             /* no type */
	{"nic:1(IDX:0),gpu:1g.10gb:2(IDX:0-1),gpu:3g.40gb:1(IDX:2)", 3, "1g.10gb:2,3g.40gb:1"},
	{"gpu:h100:1(IDX:0),gpu:h100:1(IDX:3)", 2, "h100:2"}, /* merged */
	{"gpu:h100:0(IDX:N/A)", 0, ""},
	{"gpu:h100:2", 2, "h100:2"},
	{"gpus:2(IDX:0-1)", 0, ""},
	{"gpu:(IDX:0)", -1, ""},
	{"gpu:h100:x(IDX:0)", -1, ""},
	{"gpu:a:b:2(IDX:0)", -1, ""},
	{"gpu:h100:2147483648(IDX:0)", -1, ""},
};

static void test_models(void **state)
{
	char out[64], tiny[7];
	(void)state;
	for (size_t i = 0; i < sizeof(detail_cases) / sizeof(detail_cases[0]); i++) {
		int64_t got = aif_gres_models(detail_cases[i].detail, out, sizeof(out));

		if (got != detail_cases[i].gpus || strcmp(out, detail_cases[i].models) != 0)
			fail_msg("\"%s\": %lld GPUs \"%s\", not %lld \"%s\"",
				 detail_cases[i].detail ? detail_cases[i].detail : "(null)",
				 (long long)got, out, (long long)detail_cases[i].gpus,
				 detail_cases[i].models);
	}
	assert_int_equal(aif_gres_models("gpu:h100:2(IDX:0-1)", tiny, 6), -1);
	assert_string_equal(tiny, "");
	assert_int_equal(aif_gres_models("gpu:h100:2(IDX:0-1)", tiny, sizeof(tiny)), 2); /* "h100:2" fits */
}

/* A job's TRES as slurmctld writes them (tres_alloc_str). */
static void test_tres(void **state)
{
	const char *tres = "cpu=8,mem=16G,node=2,billing=12,gres/gpu=4,gres/gpu:h100=4";
	int64_t v = -7;
	(void)state;

	assert_int_equal(aif_tres_value(tres, "cpu", &v), 0);
	assert_int_equal(v, 8);
	assert_int_equal(aif_tres_value(tres, "mem", &v), 0);
	assert_int_equal(v, 16 * 1024);
	assert_int_equal(aif_tres_value(tres, "billing", &v), 0);
	assert_int_equal(v, 12);
	assert_int_equal(aif_tres_value(tres, "node", &v), 0);
	assert_int_equal(v, 2);
	assert_int_equal(aif_tres_value("cpu=2,mem=2000M", "mem", &v), 0);
	assert_int_equal(v, 2000);
	assert_int_equal(aif_tres_value("mem=1T", "mem", &v), 0);
	assert_int_equal(v, 1024 * 1024);
	assert_int_equal(aif_tres_value(tres, "gres/gpu", &v), 0);
	assert_int_equal(v, 4);
	assert_int_equal(aif_tres_value(tres, "energy", &v), -1);
	assert_int_equal(aif_tres_value("cpu=", "cpu", &v), -1);
	assert_int_equal(aif_tres_value("mem=2X", "mem", &v), -1);
	assert_int_equal(aif_tres_value("mem=2GB", "mem", &v), -1);
	assert_int_equal(aif_tres_value("cpu=99999999999999999999", "cpu", &v), -1);
	assert_int_equal(aif_tres_value(NULL, "cpu", &v), -1);
	assert_int_equal(aif_tres_value("cpux=2,cpu=3", "cpu", &v), 0);
	assert_int_equal(v, 3);
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
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_cases), cmocka_unit_test(test_most),
					   cmocka_unit_test(test_models), cmocka_unit_test(test_tres)};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
