/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the systemd notification protocol spoken by daemon.c without
 * libsystemd: datagrams reach $NOTIFY_SOCKET as a path or an abstract
 * name, and an unset or bogus variable is harmless.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon.h"
#include "testutil.h"

static int
bind_dgram(const char *name, bool abstract)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n = strlen(name);
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);

	assert_true(fd >= 0);
	memcpy(sa.sun_path + (abstract ? 1 : 0), name, n);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa,
	    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n +
	    (abstract ? 1 : 0))), 0);
	return fd;
}

static void
expect(int fd, const char *want)
{
	char buf[600];
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

	assert_true(n > 0);
	buf[n] = '\0';
	assert_string_equal(buf, want);
}

static void
test_notify_path(void **state)
{
	char *dir = tu_tmpdir(), path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/notify", dir);
	fd = bind_dgram(path, false);
	setenv("NOTIFY_SOCKET", path, 1);
	daemon_notify_ready("reporting");
	expect(fd, "READY=1\nSTATUS=reporting");
	daemon_notify_status("busy");
	expect(fd, "STATUS=busy");
	daemon_notify_reloading();
	expect(fd, "RELOADING=1");
	daemon_notify_stopping();
	expect(fd, "STOPPING=1");
	close(fd);
	tu_rmtree(dir);
	free(dir);
}

static void
test_notify_abstract(void **state)
{
	char *name = tu_unique("mm-notify"), env[256];
	int fd = bind_dgram(name, true);

	snprintf(env, sizeof(env), "@%s", name);
	setenv("NOTIFY_SOCKET", env, 1);
	daemon_notify_ready(NULL);
	expect(fd, "READY=1\nSTATUS=");
	close(fd);
	free(name);
}

static void
test_notify_unset_or_bogus(void **state)
{
	unsetenv("NOTIFY_SOCKET");
	daemon_notify_ready("x");
	setenv("NOTIFY_SOCKET", "relative/path", 1);
	daemon_notify_ready("x");
	setenv("NOTIFY_SOCKET", "/nonexistent/notify", 1);
	daemon_notify_stopping();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_notify_path),
		cmocka_unit_test(test_notify_abstract),
		cmocka_unit_test(test_notify_unset_or_bogus),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
