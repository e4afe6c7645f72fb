/*
 * Unit tests for plugin/plugstack.c: aif-pelog finds aif.so's line as Slurm reads
 * plugstack.conf (PlugStackConfig or the file beside slurm.conf, comments, include globs
 * relative to the including file), and says which file when it cannot.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <sys/stat.h>
#include <unistd.h>

#include "plugin.h"

static char dir[64];

static void put(const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_non_null(f = fopen(path, "w"));
	fputs(text, f);
	fclose(f);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/aif-test-plugstack.XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static int find(struct plugstack *p, struct aif_diag *diag)
{
	char conf[128];

	snprintf(conf, sizeof(conf), "%s/slurm.conf", dir);
	aif_diag_clear(diag);
	return plugstack_find(conf, p, diag);
}

/* Beside slurm.conf by default; comments and blanks as Slurm takes them. */
static void test_default_beside(void **state)
{
	struct plugstack p;
	struct aif_diag diag;

	(void)state;
	put("slurm.conf", "ClusterName=x\n# PlugStackConfig=/nowhere\n");
	put("plugstack.conf", "# required /lib/aif.so server=no\n"
			      "optional  /usr/lib/pyxis.so  a=b\n"
			      "\n"
			      "required\t/usr/lib/slurm/aif.so  server=/run/a.sock timeout=2s # the end\n");
	assert_int_equal(find(&p, &diag), 0);
	assert_int_equal(p.ac, 2);
	assert_string_equal(p.av[0], "server=/run/a.sock");
	assert_string_equal(p.av[1], "timeout=2s");
	assert_non_null(strstr(p.where, "plugstack.conf, line 4"));
	plugstack_free(&p);
}

/*
 * PlugStackConfig (any case, blanks around "=", quoted, after another key on its line) in a
 * file slurm.conf includes after a line longer than 8 KiB; then an include glob relative to
 * plugstack.conf's own directory.
 */
static void test_setting_and_include(void **state)
{
	struct plugstack p;
	struct aif_diag diag;
	char text[256], *long_line = malloc(20000);

	(void)state;
	assert_non_null(long_line);
	assert_int_equal(mkdir(strcat(strcpy(text, dir), "/sub"), 0755), 0);
	assert_int_equal(mkdir(strcat(strcpy(text, dir), "/sub/d"), 0755), 0);
	memcpy(long_line, "PartitionName=p AllowAccounts=", 30);
	memset(long_line + 30, 'a', 19000);
	strcpy(long_line + 19030, "\nInclude more.conf # the site's\nClusterName=x\n");
	put("slurm.conf", long_line);
	free(long_line);
	snprintf(text, sizeof(text), "SlurmctldPort=6817 plugstackconfig = \"%s/sub/stack.conf\"\n", dir);
	put("more.conf", text);
	put("plugstack.conf", "required /x/aif.so server=wrong\n"); /* not the one named */
	put("sub/stack.conf", "include d/*.conf\n");
	put("sub/d/10-pyxis.conf", "required /p/pyxis.so\n");
	put("sub/d/20-aif.conf", "required aif.so spool_dir=/var/spool/aif\n");
	assert_int_equal(find(&p, &diag), 0);
	assert_int_equal(p.ac, 1);
	assert_string_equal(p.av[0], "spool_dir=/var/spool/aif");
	assert_non_null(strstr(p.where, "20-aif.conf, line 1"));
	plugstack_free(&p);
}

/* No line of aif's: the file read is named, with a hint. */
static void test_missing(void **state)
{
	struct plugstack p;
	struct aif_diag diag;
	char path[128];

	(void)state;
	put("slurm.conf", "ClusterName=x\n");
	put("plugstack.conf", "required /usr/lib/aifx.so\ninclude none/*.conf\n");
	assert_int_equal(find(&p, &diag), -1);
	assert_non_null(strstr(diag.message, "no line loads aif.so in "));
	assert_non_null(strstr(diag.message, "/plugstack.conf"));
	assert_true(diag.hint[0] != '\0');
	snprintf(path, sizeof(path), "%s/plugstack.conf", dir);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(find(&p, &diag), -1); /* a missing file is an empty one, as for Slurm */
	assert_non_null(strstr(diag.message, "no line loads aif.so"));
}

/* An include of itself stops at the depth bound, naming the file and line. */
static void test_include_loop(void **state)
{
	struct plugstack p;
	struct aif_diag diag;

	(void)state;
	put("slurm.conf", "");
	put("plugstack.conf", "include plugstack.conf\n");
	assert_int_equal(find(&p, &diag), -1);
	assert_non_null(strstr(diag.message, "plugstack.conf, line 1: includes nested deeper than"));
}

/* An unreadable slurm.conf is named. */
static void test_no_slurm_conf(void **state)
{
	struct plugstack p;
	struct aif_diag diag;

	(void)state;
	assert_int_equal(find(&p, &diag), -1);
	assert_non_null(strstr(diag.message, "could not open "));
	assert_non_null(strstr(diag.message, "slurm.conf"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_default_beside, setup, teardown),
		cmocka_unit_test_setup_teardown(test_setting_and_include, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_include_loop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_slurm_conf, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
