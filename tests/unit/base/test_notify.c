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

/* Count the datagrams equal to want waiting on fd. */
static int
count(int fd, const char *want)
{
	char buf[600];
	ssize_t n;
	int k = 0;

	while ((n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT)) > 0) {
		buf[n] = '\0';
		if (strcmp(buf, want) == 0)
			k++;
	}
	return k;
}

static void
stop_loop(uv_timer_t *t)
{
	uv_stop(t->loop);
}

/* Under WatchdogSec=200ms the loop pings every 100 ms while it turns;
 * nothing without the variables or for another process's watchdog. */
static void
test_watchdog_pings_from_the_loop(void **state)
{
	char *dir = tu_tmpdir(), path[512], pid[32];
	struct daemon_signals sig;
	uv_loop_t loop;
	uv_timer_t stop;
	int fd, k;

	snprintf(path, sizeof(path), "%s/notify", dir);
	fd = bind_dgram(path, false);
	setenv("NOTIFY_SOCKET", path, 1);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("WATCHDOG_PID", pid, 1);
	setenv("WATCHDOG_USEC", "200000", 1);
	assert_int_equal(daemon_watchdog_ms(), 200);

	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(daemon_signals_init(&sig, &loop, NULL, NULL, NULL),
	    0);
	assert_int_equal(daemon_watchdog_start(&sig, &loop), 0);
	/* Run the loop for 550 ms: one ping at start, one per 100 ms. */
	uv_timer_init(&loop, &stop);
	uv_timer_start(&stop, stop_loop, 550, 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	k = count(fd, "WATCHDOG=1");
	assert_in_range(k, 4, 7);

	/* A loop that does not turn sends nothing. */
	usleep(300 * 1000);
	assert_int_equal(count(fd, "WATCHDOG=1"), 0);

	daemon_signals_close(&sig);
	uv_close((uv_handle_t *)&stop, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);

	/* Another process's watchdog, or none: no pings. */
	setenv("WATCHDOG_PID", "1", 1);
	assert_int_equal(daemon_watchdog_ms(), 0);
	unsetenv("WATCHDOG_PID");
	unsetenv("WATCHDOG_USEC");
	assert_int_equal(daemon_watchdog_ms(), 0);
	setenv("WATCHDOG_USEC", "soon", 1);
	assert_int_equal(daemon_watchdog_ms(), 0);
	unsetenv("WATCHDOG_USEC");
	close(fd);
	tu_rmtree(dir);
	free(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_notify_path),
		cmocka_unit_test(test_notify_abstract),
		cmocka_unit_test(test_notify_unset_or_bogus),
		cmocka_unit_test(test_watchdog_pings_from_the_loop),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
