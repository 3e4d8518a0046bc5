/* SPDX-License-Identifier: Apache-2.0 */
/* The log sink: what lands on stderr, with and without journald prefixes. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

/* Run fn with stderr captured; returns what it wrote (static buffer). */
static const char *
capture(void (*fn)(void))
{
	static char buf[4096];
	char path[] = "/tmp/mm-test-log.XXXXXX";
	int fd = mkstemp(path);
	int saved = dup(STDERR_FILENO);
	ssize_t n;

	assert_true(fd >= 0);
	dup2(fd, STDERR_FILENO);
	fn();
	dup2(saved, STDERR_FILENO);
	close(saved);
	lseek(fd, 0, SEEK_SET);
	n = read(fd, buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	close(fd);
	unlink(path);
	return buf;
}

static void
emit_warn(void)
{
	errno = ENOENT;
	log_warn("cannot open \"%s\"", "x.conf");
	log_info("vm \"%s\": target %d MiB", "web-1", 512);
	log_debug("hidden unless verbose");
}

static void
test_log_plain_lines_name_the_program(void **state)
{
	const char *out;

	log_init("mm-test", 0, false);
	out = capture(emit_warn);
	assert_string_equal(out,
	    "mm-test: cannot open \"x.conf\": No such file or directory\n"
	    "mm-test: vm \"web-1\": target 512 MiB\n");
}

static void
test_log_journald_prefixes_and_debug(void **state)
{
	const char *out;

	log_init("mm-test", 1, true);
	assert_true(log_debug_enabled());
	out = capture(emit_warn);
	assert_string_equal(out,
	    "<4>cannot open \"x.conf\": No such file or directory\n"
	    "<6>vm \"web-1\": target 512 MiB\n"
	    "<7>hidden unless verbose\n");
	log_init("mm-test", 0, false);
	assert_false(log_debug_enabled());
}

static void
emit_long(void)
{
	char big[5000];

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	log_warnx("%s", big);
}

static void
test_log_long_message_is_one_line(void **state)
{
	const char *out;

	log_init("mm-test", 0, false);
	out = capture(emit_long);
	assert_int_equal(strchr(out, '\n') - out, (long)strlen(out) - 1);
	assert_true(strlen(out) > 1000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_log_plain_lines_name_the_program),
		cmocka_unit_test(test_log_journald_prefixes_and_debug),
		cmocka_unit_test(test_log_long_message_is_one_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
