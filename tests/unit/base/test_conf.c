/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the INI configuration loader: every value type, defaults, each
 * kind of error with its exact file:line message, range limits, and that
 * conf_print's output reads back to the same configuration.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "conf.h"
#include "testutil.h"

struct tconf {
	bool enabled;
	int64_t prefetch;
	char *name;
	int64_t interval_ms;
	int64_t offset;
	int64_t limit_kib;
	int mode;
	char *path;
};

static const char *const modes[] = { "off", "gentle", "aggressive", NULL };

#define F(x) offsetof(struct tconf, x)
#define TIB (1024LL * 1024 * 1024)

/* [collector] is split in two to check that conf_print groups sections. */
static const struct conf_key table[] = {
	{ "collector", "enabled", CONF_BOOL, 0, 0, "yes", F(enabled), NULL,
	  "collect at all" },
	{ "collector", "prefetch", CONF_INT, 1, 10000, "100", F(prefetch),
	  NULL, "messages in flight" },
	{ "collector", "name", CONF_STRING, 1, 16, "host", F(name), NULL,
	  NULL },
	{ "collector", "interval", CONF_DURATION_MS, 100, 3600 * 1000, "2s",
	  F(interval_ms), NULL, "sampling period" },
	{ "memory", "limit", CONF_SIZE_KIB, 1024, TIB, "768M", F(limit_kib),
	  NULL, "upper bound" },
	{ "memory", "mode", CONF_ENUM, 0, 0, "gentle", F(mode), modes, NULL },
	{ "memory", "path", CONF_STRING, 0, 0, NULL, F(path), NULL, NULL },
	{ "collector", "offset", CONF_INT, -100, 100, "-5", F(offset), NULL,
	  NULL },
};

#define N (sizeof(table) / sizeof(table[0]))

struct fixture {
	char *dir;
	char *path;
	struct tconf c;
	char err[512];
};

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	fx->dir = tu_tmpdir();
	assert_int_equal(conf_defaults(table, N, &fx->c), 0);
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;

	conf_free(table, N, &fx->c);
	tu_rmtree(fx->dir);
	free(fx->dir);
	free(fx->path);
	free(fx);
	return 0;
}

/* Write text to <dir>/t.conf and load it into fx->c. */
static int
load(struct fixture *fx, const char *text)
{
	free(fx->path);
	fx->path = tu_write_file(fx->dir, "t.conf", text);
	return conf_load(table, N, &fx->c, fx->path, fx->err,
	    sizeof(fx->err));
}

/* Load text, expect -EINVAL and the message "<path>:<line>: <msg>", and
 * check that the configuration was left alone. */
static void
expect_error(struct fixture *fx, const char *text, int line, const char *msg)
{
	struct tconf before;
	char want[600];

	memcpy(&before, &fx->c, sizeof(before));
	assert_int_equal(load(fx, text), -EINVAL);
	snprintf(want, sizeof(want), "%s:%d: %s", fx->path, line, msg);
	assert_string_equal(fx->err, want);
	assert_memory_equal(&fx->c, &before, sizeof(before));
}

static void
test_conf_defaults_when_keys_absent(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(load(fx, "; nothing but comments\n# here\n\n"
	    "[collector]\n[memory]\n"), 0);
	assert_string_equal(fx->err, "");
	assert_true(fx->c.enabled);
	assert_int_equal(fx->c.prefetch, 100);
	assert_string_equal(fx->c.name, "host");
	assert_int_equal(fx->c.interval_ms, 2000);
	assert_int_equal(fx->c.offset, -5);
	assert_int_equal(fx->c.limit_kib, 768 * 1024);
	assert_int_equal(fx->c.mode, 1);
	assert_null(fx->c.path);
}

static void
test_conf_good_file_sets_every_type(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(load(fx,
	    "# a comment\n"
	    "[collector]\n"
	    "  enabled = Off\n"
	    "\tprefetch=250 ; inline comment\n"
	    "name = web-1\n"
	    "interval = 250ms\n"
	    "offset = -100\n"
	    "[memory]\n"
	    "limit = 2G\n"
	    "mode = AGGRESSIVE\n"
	    "path = /var/lib/mm/state file\n"), 0);
	assert_false(fx->c.enabled);
	assert_int_equal(fx->c.prefetch, 250);
	assert_string_equal(fx->c.name, "web-1");
	assert_int_equal(fx->c.interval_ms, 250);
	assert_int_equal(fx->c.offset, -100);
	assert_int_equal(fx->c.limit_kib, 2 * 1024 * 1024);
	assert_int_equal(fx->c.mode, 2);
	assert_string_equal(fx->c.path, "/var/lib/mm/state file");
}

static void
test_conf_later_file_overlays_earlier(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(load(fx, "[collector]\nname = first\nprefetch = 7\n"),
	    0);
	assert_int_equal(load(fx, "[collector]\nname = second\n"), 0);
	assert_string_equal(fx->c.name, "second");
	assert_int_equal(fx->c.prefetch, 7);
}

struct parse_case {
	const char *s;
	int64_t v;
};

/* Each good text parses to its value; each bad one is rejected and leaves
 * the result alone. */
static void
check_parser(int (*parse)(const char *, int64_t *),
    const struct parse_case *ok, size_t n_ok, const char *const *bad,
    size_t n_bad)
{
	int64_t v;

	for (size_t i = 0; i < n_ok; i++) {
		v = -1;
		assert_int_equal(parse(ok[i].s, &v), 0);
		assert_int_equal(v, ok[i].v);
	}
	for (size_t i = 0; i < n_bad; i++) {
		v = 42;
		assert_int_equal(parse(bad[i], &v), -EINVAL);
		assert_int_equal(v, 42);
	}
}

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static void
test_conf_sizes_are_kib_based(void **state)
{
	static const struct parse_case ok[] = {
		{ "0", 0 }, { "512", 512 }, { "512K", 512 }, { "512k", 512 },
		{ "768M", 786432 }, { "2G", 2097152 }, { "1T", TIB },
		{ "3MiB", 3072 }, { "1gib", 1048576 },
	};
	static const char *const bad[] = {
		"", "M", "1.5G", "-1M", "+1M", " 5", "5 M", "5MB", "5X", "0x10",
	};
	int64_t v;

	check_parser(conf_parse_size_kib, ok, NELEM(ok), bad, NELEM(bad));
	assert_int_equal(conf_parse_size_kib("9000000000T", &v), -ERANGE);
	assert_int_equal(conf_parse_size_kib("99999999999999999999", &v),
	    -ERANGE);
}

static void
test_conf_durations_are_ms_based(void **state)
{
	static const struct parse_case ok[] = {
		{ "0", 0 }, { "300", 300 }, { "250ms", 250 }, { "2s", 2000 },
		{ "5m", 300000 }, { "1h", 3600000 }, { "7d", 604800000 },
	};
	static const char *const bad[] = {
		"", "s", "2S", "1.5s", "-2s", "2 s", "2sec", "5M", "1D", "1day",
	};
	int64_t v;

	check_parser(conf_parse_duration_ms, ok, NELEM(ok), bad, NELEM(bad));
	assert_int_equal(conf_parse_duration_ms("3000000000000000h", &v),
	    -ERANGE);
}

static void
test_conf_bools_accept_usual_words(void **state)
{
	static const char *const yes[] = { "yes", "TRUE", "on", "1" };
	static const char *const no[] = { "no", "False", "OFF", "0" };
	bool b;

	for (size_t i = 0; i < 4; i++) {
		b = false;
		assert_int_equal(conf_parse_bool(yes[i], &b), 0);
		assert_true(b);
		assert_int_equal(conf_parse_bool(no[i], &b), 0);
		assert_false(b);
	}
	assert_int_equal(conf_parse_bool("2", &b), -EINVAL);
	assert_int_equal(conf_parse_bool("", &b), -EINVAL);
	assert_int_equal(conf_parse_bool("y", &b), -EINVAL);
}

static void
test_conf_format_uses_largest_exact_unit(void **state)
{
	char buf[32];

	assert_int_equal(conf_format_size_kib(buf, sizeof(buf), 786432), 0);
	assert_string_equal(buf, "768M");
	conf_format_size_kib(buf, sizeof(buf), TIB);
	assert_string_equal(buf, "1T");
	conf_format_size_kib(buf, sizeof(buf), 1536);
	assert_string_equal(buf, "1536K");
	conf_format_size_kib(buf, sizeof(buf), 0);
	assert_string_equal(buf, "0");
	conf_format_duration_ms(buf, sizeof(buf), 90000);
	assert_string_equal(buf, "90s");
	conf_format_duration_ms(buf, sizeof(buf), 7200000);
	assert_string_equal(buf, "2h");
	conf_format_duration_ms(buf, sizeof(buf), 3 * 86400000LL);
	assert_string_equal(buf, "3d");
	conf_format_duration_ms(buf, sizeof(buf), 1001);
	assert_string_equal(buf, "1001ms");
	assert_int_equal(conf_format_duration_ms(buf, 3, 250), -ENOSPC);
}

static void
test_conf_unknown_key_names_file_and_line(void **state)
{
	expect_error(*state, "[collector]\n\nintervall = 2s\n", 3,
	    "unknown key \"intervall\" in section [collector]");
}

static void
test_conf_unknown_section_is_an_error(void **state)
{
	/* Even an empty one: a misspelt header hides its keys. */
	expect_error(*state, "[collector]\nprefetch = 5\n\n[colector]\n", 4,
	    "unknown section [colector]");
}

static void
test_conf_key_outside_section_is_an_error(void **state)
{
	expect_error(*state, "; comment\nprefetch = 5\n", 2,
	    "key \"prefetch\" is outside any [section]");
}

static void
test_conf_duplicate_key_is_an_error(void **state)
{
	expect_error(*state,
	    "[collector]\nprefetch = 5\n[memory]\nmode = off\n"
	    "[collector]\nprefetch = 6\n", 6,
	    "duplicate key \"prefetch\" in section [collector], "
	    "first set on line 2");
}

static void
test_conf_bad_values_are_explained(void **state)
{
	struct fixture *fx = *state;

	expect_error(fx, "[collector]\nprefetch = 5\n\n\n\n\ninterval = abc\n",
	    7, "value \"abc\" of \"interval\" is not a duration "
	    "(e.g. 500ms, 2s)");
	expect_error(fx, "[collector]\nprefetch = 12x\n", 2,
	    "value \"12x\" of \"prefetch\" is not an integer");
	expect_error(fx, "[collector]\nenabled = maybe\n", 2,
	    "value \"maybe\" of \"enabled\" is not a boolean "
	    "(yes/no, true/false, on/off, 1/0)");
	expect_error(fx, "[memory]\nlimit = 1.5G\n", 2,
	    "value \"1.5G\" of \"limit\" is not a size "
	    "(e.g. 512M, 2G; a plain number is KiB)");
	expect_error(fx, "[memory]\nmode = fast\n", 2,
	    "value \"fast\" of \"mode\" is not one of: off, gentle, "
	    "aggressive");
	expect_error(fx, "[collector]\nname =\n", 2,
	    "value \"\" of \"name\" must have 1..16 characters");
	expect_error(fx, "[collector]\nname = 0123456789abcdefg\n", 2,
	    "value \"0123456789abcdefg\" of \"name\" must have 1..16 "
	    "characters");
}

static void
test_conf_out_of_range_names_the_range(void **state)
{
	struct fixture *fx = *state;

	expect_error(fx, "[collector]\n\n\n\n\n\n\n\nprefetch = 99999\n", 9,
	    "value 99999 of \"prefetch\" is out of range 1..10000");
	expect_error(fx, "[memory]\nlimit = 2T\n", 2,
	    "value 2T of \"limit\" is out of range 1M..1T");
	expect_error(fx, "[collector]\ninterval = 99\n", 2,
	    "value 99 of \"interval\" is out of range 100ms..1h");
	expect_error(fx, "[collector]\nprefetch = 99999999999999999999\n", 2,
	    "value 99999999999999999999 of \"prefetch\" is out of range "
	    "1..10000");
}

static void
test_conf_limits_are_inclusive(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(load(fx, "[collector]\nprefetch = 1\n"
	    "interval = 100ms\noffset = -100\n[memory]\nlimit = 1M\n"), 0);
	assert_int_equal(fx->c.prefetch, 1);
	assert_int_equal(fx->c.interval_ms, 100);
	assert_int_equal(fx->c.offset, -100);
	assert_int_equal(fx->c.limit_kib, 1024);
	assert_int_equal(load(fx, "[collector]\nprefetch = 10000\n"
	    "interval = 1h\noffset = 100\n[memory]\nlimit = 1T\n"), 0);
	assert_int_equal(fx->c.prefetch, 10000);
	assert_int_equal(fx->c.interval_ms, 3600000);
	assert_int_equal(fx->c.offset, 100);
	assert_int_equal(fx->c.limit_kib, TIB);

	expect_error(fx, "[collector]\nprefetch = 0\n", 2,
	    "value 0 of \"prefetch\" is out of range 1..10000");
	expect_error(fx, "[collector]\nprefetch = 10001\n", 2,
	    "value 10001 of \"prefetch\" is out of range 1..10000");
	expect_error(fx, "[collector]\noffset = -101\n", 2,
	    "value -101 of \"offset\" is out of range -100..100");
	expect_error(fx, "[memory]\nlimit = 1023\n", 2,
	    "value 1023 of \"limit\" is out of range 1M..1T");
	expect_error(fx, "[memory]\nlimit = 1073741825K\n", 2,
	    "value 1073741825K of \"limit\" is out of range 1M..1T");
	expect_error(fx, "[collector]\ninterval = 3600001\n", 2,
	    "value 3600001 of \"interval\" is out of range 100ms..1h");
}

static void
test_conf_syntax_error_names_its_line(void **state)
{
	struct fixture *fx = *state;

	expect_error(fx, "[collector]\nprefetch = 5\njust some words\n", 3,
	    "syntax error, expected \"[section]\" or \"key = value\"");
	expect_error(fx, "[collector\nprefetch = 5\n", 1,
	    "syntax error, expected \"[section]\" or \"key = value\"");
	/* The first error wins, whichever kind. */
	expect_error(fx, "[collector]\nnonsense\nprefetch = 0\n", 2,
	    "syntax error, expected \"[section]\" or \"key = value\"");
}

static void
test_conf_long_line_is_an_error(void **state)
{
	struct fixture *fx = *state;
	char text[1200], want[64];

	snprintf(text, sizeof(text), "[memory]\npath = /%01000d\n", 0);
	assert_int_equal(load(fx, text), -EINVAL);
	snprintf(want, sizeof(want), "%s:2: line is longer than ", fx->path);
	assert_memory_equal(fx->err, want, strlen(want));
	assert_null(fx->c.path);
}

static void
test_conf_missing_file_says_why(void **state)
{
	struct fixture *fx = *state;
	char path[600], want[700];

	snprintf(path, sizeof(path), "%s/missing.conf", fx->dir);
	assert_int_equal(conf_load(table, N, &fx->c, path, fx->err,
	    sizeof(fx->err)), -ENOENT);
	snprintf(want, sizeof(want),
	    "cannot open \"%s\": No such file or directory", path);
	assert_string_equal(fx->err, want);

	/* A directory opens but cannot be read. */
	assert_int_equal(conf_load(table, N, &fx->c, fx->dir, fx->err,
	    sizeof(fx->err)), -EISDIR);
	snprintf(want, sizeof(want), "cannot read \"%s\": Is a directory",
	    fx->dir);
	assert_string_equal(fx->err, want);
}

static void
test_conf_error_leaves_config_untouched(void **state)
{
	struct fixture *fx = *state;
	char *name;

	assert_int_equal(load(fx, "[collector]\nname = kept\n"), 0);
	name = fx->c.name;
	/* Good keys before the bad one must not be applied. */
	expect_error(fx, "[collector]\nname = lost\nprefetch = 3\n"
	    "[memory]\nlimit = 5X\n", 5,
	    "value \"5X\" of \"limit\" is not a size "
	    "(e.g. 512M, 2G; a plain number is KiB)");
	assert_ptr_equal(fx->c.name, name);
	assert_string_equal(fx->c.name, "kept");
	assert_int_equal(fx->c.prefetch, 100);
}

static void
test_conf_error_message_is_truncated_safely(void **state)
{
	struct fixture *fx = *state;
	char small[12];

	free(fx->path);
	fx->path = tu_write_file(fx->dir, "t.conf", "[nope]\n");
	memset(small, 'x', sizeof(small));
	assert_int_equal(conf_load(table, N, &fx->c, fx->path, small,
	    sizeof(small)), -EINVAL);
	assert_int_equal(strlen(small), sizeof(small) - 1);
	assert_int_equal(conf_load(table, N, &fx->c, fx->path, NULL, 0),
	    -EINVAL);
}

static void
test_conf_print_reads_back_the_same(void **state)
{
	struct fixture *fx = *state;
	struct tconf again = { 0 };
	char *printed, *out_path;
	FILE *f;
	long len;

	assert_int_equal(load(fx, "[collector]\nenabled = no\nprefetch = 42\n"
	    "name = db-7\ninterval = 90s\noffset = 0\n"
	    "[memory]\nlimit = 1536K\nmode = off\n"), 0);

	out_path = tu_write_file(fx->dir, "printed.conf", "");
	f = fopen(out_path, "w");
	assert_non_null(f);
	assert_int_equal(conf_print(table, N, &fx->c, f), 0);
	fclose(f);

	f = fopen(out_path, "r");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	printed = calloc(1, len + 1);
	assert_int_equal(fread(printed, 1, len, f), (size_t)len);
	fclose(f);
	assert_string_equal(printed,
	    "[collector]\n"
	    "; collect at all\n"
	    "enabled = no\n"
	    "; messages in flight\n"
	    "prefetch = 42\n"
	    "name = db-7\n"
	    "; sampling period\n"
	    "interval = 90s\n"
	    "offset = 0\n"
	    "\n"
	    "[memory]\n"
	    "; upper bound\n"
	    "limit = 1536K\n"
	    "mode = off\n"
	    "; path is not set\n");

	/* Reads back from defaults that differ in every field. */
	assert_int_equal(conf_defaults(table, N, &again), 0);
	assert_int_equal(conf_load(table, N, &again, out_path, fx->err,
	    sizeof(fx->err)), 0);
	assert_int_equal(again.enabled, fx->c.enabled);
	assert_int_equal(again.prefetch, 42);
	assert_string_equal(again.name, "db-7");
	assert_int_equal(again.interval_ms, 90000);
	assert_int_equal(again.offset, 0);
	assert_int_equal(again.limit_kib, 1536);
	assert_int_equal(again.mode, 0);
	assert_null(again.path);

	conf_free(table, N, &again);
	free(printed);
	free(out_path);
}

static void
test_conf_defaults_reject_bad_tables(void **state)
{
	static const struct conf_key out_of_range[] = {
		{ "s", "k", CONF_INT, 1, 10, "11", 0, NULL, NULL },
	};
	static const struct conf_key no_choices[] = {
		{ "s", "k", CONF_ENUM, 0, 0, "a", 0, NULL, NULL },
	};
	static const struct conf_key no_default[] = {
		{ "s", "k", CONF_DURATION_MS, 0, 10, NULL, 0, NULL, NULL },
	};
	static const struct conf_key bad_choice[] = {
		{ "s", "k", CONF_ENUM, 0, 0, "fast", 0, modes, NULL },
	};
	int64_t buf[2] = { 0 };

	assert_int_equal(conf_defaults(out_of_range, 1, buf), -EINVAL);
	assert_int_equal(conf_defaults(no_choices, 1, buf), -EINVAL);
	assert_int_equal(conf_defaults(no_default, 1, buf), -EINVAL);
	assert_int_equal(conf_defaults(bad_choice, 1, buf), -EINVAL);
}

static void
test_conf_free_clears_strings(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(load(fx, "[memory]\npath = /x\n"), 0);
	conf_free(table, N, &fx->c);
	assert_null(fx->c.name);
	assert_null(fx->c.path);
	conf_free(table, N, &fx->c);
	conf_free(table, N, NULL);
}

/* A reload takes the live keys that changed, keeps the others (they
 * need a restart), and a bad file changes nothing. */
static void
test_conf_reload_takes_live_keys_only(void **state)
{
	static const char *const live[] = { "collector.interval",
	    "memory.path", "memory.mode", NULL };
	struct fixture *fx = *state;
	struct tconf before;

	fx->path = tu_write_file(fx->dir, "t.conf",
	    "[collector]\ninterval = 5s\nprefetch = 7\nname = other\n"
	    "[memory]\npath = /x\nmode = off\n");
	assert_int_equal(conf_reload(table, N, &fx->c, sizeof(fx->c),
	    fx->path, live, fx->err, sizeof(fx->err)), 3);
	assert_int_equal(fx->c.interval_ms, 5000);
	assert_string_equal(fx->c.path, "/x");
	assert_int_equal(fx->c.mode, 0);
	/* Not live: kept as they were. */
	assert_int_equal(fx->c.prefetch, 100);
	assert_string_equal(fx->c.name, "host");

	/* The same file again: nothing to change. */
	assert_int_equal(conf_reload(table, N, &fx->c, sizeof(fx->c),
	    fx->path, live, fx->err, sizeof(fx->err)), 0);

	/* A key removed from the file goes back to its default. */
	free(fx->path);
	fx->path = tu_write_file(fx->dir, "t.conf", "[memory]\npath = /x\n");
	assert_int_equal(conf_reload(table, N, &fx->c, sizeof(fx->c),
	    fx->path, live, fx->err, sizeof(fx->err)), 2);
	assert_int_equal(fx->c.interval_ms, 2000);
	assert_int_equal(fx->c.mode, 1);

	/* A bad file: an error naming it, nothing changed. */
	memcpy(&before, &fx->c, sizeof(before));
	free(fx->path);
	fx->path = tu_write_file(fx->dir, "t.conf",
	    "[collector]\ninterval = 1s\nintervall = 2s\n");
	assert_int_equal(conf_reload(table, N, &fx->c, sizeof(fx->c),
	    fx->path, live, fx->err, sizeof(fx->err)), -EINVAL);
	assert_non_null(strstr(fx->err, "intervall"));
	assert_memory_equal(&fx->c, &before, sizeof(before));
	assert_int_equal(conf_reload(table, N, &fx->c, sizeof(fx->c),
	    "/nonexistent/t.conf", live, fx->err, sizeof(fx->err)), -ENOENT);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_conf_defaults_when_keys_absent),
		T(test_conf_good_file_sets_every_type),
		T(test_conf_later_file_overlays_earlier),
		T(test_conf_sizes_are_kib_based),
		T(test_conf_durations_are_ms_based),
		T(test_conf_bools_accept_usual_words),
		T(test_conf_format_uses_largest_exact_unit),
		T(test_conf_unknown_key_names_file_and_line),
		T(test_conf_unknown_section_is_an_error),
		T(test_conf_key_outside_section_is_an_error),
		T(test_conf_duplicate_key_is_an_error),
		T(test_conf_bad_values_are_explained),
		T(test_conf_out_of_range_names_the_range),
		T(test_conf_limits_are_inclusive),
		T(test_conf_syntax_error_names_its_line),
		T(test_conf_long_line_is_an_error),
		T(test_conf_missing_file_says_why),
		T(test_conf_error_leaves_config_untouched),
		T(test_conf_error_message_is_truncated_safely),
		T(test_conf_print_reads_back_the_same),
		T(test_conf_defaults_reject_bad_tables),
		T(test_conf_free_clears_strings),
		T(test_conf_reload_takes_live_keys_only),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
