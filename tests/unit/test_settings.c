/* Unit tests for lib/aif_settings.c: the key=value parser shared by aif.so and aifd. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "aif_settings.h"

struct conf {
	char server[32];
	bool require_project;
	unsigned long retries;
	unsigned long timeout_ms;
	int on_unreachable;
};

static const char *const unreachable_choices[] = {"allow", "deny", NULL};

static const struct aif_setting table[] = {
	{"server", AIF_SETTING_STRING, offsetof(struct conf, server), sizeof(((struct conf *)0)->server), 0, 0, NULL},
	{"require_project", AIF_SETTING_BOOL, offsetof(struct conf, require_project), 0, 0, 0, NULL},
	{"retries", AIF_SETTING_UINT, offsetof(struct conf, retries), 0, 1, 10, NULL},
	{"timeout", AIF_SETTING_DURATION, offsetof(struct conf, timeout_ms), 0, 10, 60000, NULL},
	{"on_unreachable", AIF_SETTING_ENUM, offsetof(struct conf, on_unreachable), 0, 0, 0, unreachable_choices},
};
#define N (sizeof(table) / sizeof(table[0]))

static int parse(struct conf *c, const char *arg, struct aif_diag *d)
{
	return aif_setting_parse_arg(table, N, c, arg, d);
}

static void test_valid_values(void **state)
{
	struct conf c = {0};
	struct aif_diag d;
	(void)state;
	assert_int_equal(parse(&c, "server=aifd.example.org:7023", &d), 0);
	assert_string_equal(c.server, "aifd.example.org:7023");
	assert_int_equal(parse(&c, "require_project=YES", &d), 0);
	assert_true(c.require_project);
	assert_int_equal(parse(&c, "require_project=off", &d), 0);
	assert_false(c.require_project);
	assert_int_equal(parse(&c, "retries=10", &d), 0);
	assert_int_equal(c.retries, 10);
	assert_int_equal(parse(&c, "on_unreachable=deny", &d), 0);
	assert_int_equal(c.on_unreachable, 1);
}

static void test_durations(void **state)
{
	static const struct {
		const char *arg;
		unsigned long ms;
	} cases[] = {{"timeout=250ms", 250}, {"timeout=2s", 2000}, {"timeout=2", 2000},
		     {"timeout=1min", 60000}, {"timeout=10ms", 10}};
	struct conf c = {0};
	struct aif_diag d;
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(parse(&c, cases[i].arg, &d), 0);
		assert_int_equal(c.timeout_ms, cases[i].ms);
	}
}

/* Each bad argument gets its exact message and leaves the struct as it was. */
static void test_errors(void **state)
{
	static const struct {
		const char *arg, *message, *detail, *hint;
	} cases[] = {
		{"timeout", "invalid argument \"timeout\"", "", "Arguments have the form key=value."},
		{"=5s", "invalid argument \"=5s\"", "", "Arguments have the form key=value."},
		{"tiemout=5s", "unrecognized setting \"tiemout\"", "",
		 "Valid settings are: server, require_project, retries, timeout, on_unreachable."},
		{"timeout=5 s", "invalid value for setting \"timeout\": \"5 s\"",
		 "The value must be a duration from 10ms to 60000ms.",
		 "Write a whole number with a unit: ms, s, min or h (a bare number is seconds)."},
		{"timeout=2h", "invalid value for setting \"timeout\": \"2h\"",
		 "The value must be a duration from 10ms to 60000ms.",
		 "Write a whole number with a unit: ms, s, min or h (a bare number is seconds)."},
		{"timeout=-1s", "invalid value for setting \"timeout\": \"-1s\"",
		 "The value must be a duration from 10ms to 60000ms.",
		 "Write a whole number with a unit: ms, s, min or h (a bare number is seconds)."},
		{"timeout=99999999999999999999999ms", "invalid value for setting \"timeout\": \"99999999999999999999999ms\"",
		 "The value must be a duration from 10ms to 60000ms.",
		 "Write a whole number with a unit: ms, s, min or h (a bare number is seconds)."},
		{"retries=0", "invalid value for setting \"retries\": \"0\"",
		 "The value must be a whole number from 1 to 10.", ""},
		{"retries=0x5", "invalid value for setting \"retries\": \"0x5\"",
		 "The value must be a whole number from 1 to 10.", ""},
		{"require_project=maybe", "invalid value for setting \"require_project\": \"maybe\"", "",
		 "Use yes or no."},
		{"on_unreachable=ignore", "invalid value for setting \"on_unreachable\": \"ignore\"", "",
		 "Valid values are: allow, deny."},
		{"server=", "invalid value for setting \"server\": \"\"",
		 "The value must be 1 to 31 characters long.", ""},
		{"server=a-host-name-that-is-far-too-long.example.org",
		 "invalid value for setting \"server\": \"a-host-name-that-is-far-too-long.example.org\"",
		 "The value must be 1 to 31 characters long.", ""},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct conf c = {.server = "keep", .retries = 3, .timeout_ms = 1000};
		struct aif_diag d;
		assert_int_equal(parse(&c, cases[i].arg, &d), -1);
		assert_string_equal(d.message, cases[i].message);
		assert_string_equal(d.detail, cases[i].detail);
		assert_string_equal(d.hint, cases[i].hint);
		assert_string_equal(c.server, "keep");
		assert_int_equal(c.retries, 3);
		assert_int_equal(c.timeout_ms, 1000);
	}
}

struct reported {
	unsigned lines[8];
	char messages[8][256];
	int n;
};

static void collect(const char *path, unsigned line, const struct aif_diag *d, void *arg)
{
	struct reported *r = arg;
	(void)path;
	if (r->n < 8) {
		r->lines[r->n] = line;
		snprintf(r->messages[r->n], sizeof(r->messages[0]), "%s", d->message);
		r->n++;
	}
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_file_reports_every_error_with_line(void **state)
{
	char path[] = "/tmp/aif-test-settings.XXXXXX";
	int fd = mkstemp(path);
	struct conf c = {0};
	struct reported r = {0};
	(void)state;
	assert_true(fd >= 0);
	close(fd);
	write_file(path, "# aifd test config\n"
			 "server = db.example.org   # trailing comment\n"
			 "\n"
			 "retries = 11\n"
			 "this line has no equals sign\n"
			 "timeout=3s\n"
			 "colour = blue\n");
	unsigned lines[N];
	assert_int_equal(aif_settings_read_file(table, N, &c, path, lines, collect, &r), 3);
	assert_int_equal(r.n, 3);
	assert_int_equal(r.lines[0], 4);
	assert_string_equal(r.messages[0], "invalid value for setting \"retries\": \"11\"");
	assert_int_equal(r.lines[1], 5);
	assert_string_equal(r.messages[1], "syntax error: expected \"key = value\"");
	assert_int_equal(r.lines[2], 7);
	assert_string_equal(r.messages[2], "unrecognized setting \"colour\"");
	assert_string_equal(c.server, "db.example.org");
	assert_int_equal(c.timeout_ms, 3000);
	/* the line that set each setting; 0 for unset and for invalid values */
	assert_int_equal(lines[0], 2); /* server */
	assert_int_equal(lines[1], 0); /* require_project */
	assert_int_equal(lines[2], 0); /* retries: invalid on line 4 */
	assert_int_equal(lines[3], 6); /* timeout */
	unlink(path);
}

static void test_missing_file(void **state)
{
	struct conf c = {0};
	struct reported r = {0};
	(void)state;
	assert_int_equal(aif_settings_read_file(table, N, &c, "/nonexistent/aifd.conf", NULL, collect, &r), -1);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.lines[0], 0);
	assert_string_equal(r.messages[0],
			    "could not open config file \"/nonexistent/aifd.conf\": No such file or directory");
}

static void test_diag_format(void **state)
{
	struct aif_diag d;
	char buf[512];
	(void)state;
	aif_diag_clear(&d);
	aif_diag_message(&d, "project \"%s\" is exhausted", "genomics-eu");
	assert_string_equal(aif_diag_format(&d, buf, sizeof(buf)), "project \"genomics-eu\" is exhausted");
	aif_diag_hint(&d, "Ask your factory for more GPU-hours.");
	assert_string_equal(aif_diag_format(&d, buf, sizeof(buf)),
			    "project \"genomics-eu\" is exhausted\nHINT:  Ask your factory for more GPU-hours.");
	aif_diag_detail(&d, "Used %d of %d GPU-hours.", 40012, 40000);
	assert_string_equal(aif_diag_format(&d, buf, sizeof(buf)),
			    "project \"genomics-eu\" is exhausted\nDETAIL:  Used 40012 of 40000 GPU-hours.\n"
			    "HINT:  Ask your factory for more GPU-hours.");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_values),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_file_reports_every_error_with_line),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_diag_format),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
