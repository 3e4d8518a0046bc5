/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the mm-guest-agent program itself, run as a child process on a
 * fixture /proc tree: the first report at start, silence while nothing
 * changes, an immediate report when MemAvailable drops (the fallback used
 * where no PSI trigger can be armed), an immediate report when used memory
 * rises by the configured step, --once, exit status 78 without a
 * channel, and a clean stop on SIGTERM.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "clock.h"
#include "testutil.h"

struct child {
	pid_t pid;
	int out;		/* its stdout */
	char buf[65536];
	size_t len;
};

static char *
agent_path(void)
{
	static char path[1024];
	const char *bin = getenv("MM_BINARY_DIR");

	assert_non_null(bin);
	snprintf(path, sizeof(path), "%s/bin/mm-guest-agent", bin);
	return path;
}

static void
spawn(struct child *c, char *const argv[])
{
	int p[2];

	assert_int_equal(pipe(p), 0);
	memset(c, 0, sizeof(*c));
	c->pid = fork();
	assert_true(c->pid >= 0);
	if (c->pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(p[1], 1);
		dup2(null, 2);
		close(p[0]);
		execv(agent_path(), argv);
		_exit(127);
	}
	close(p[1]);
	c->out = p[0];
}

/* The next line the agent prints within timeout_ms, parsed, or NULL. */
static json_t *
next_report(struct child *c, int timeout_ms)
{
	struct pollfd p = { .fd = c->out, .events = POLLIN };
	char *nl;
	json_t *j;
	ssize_t n;

	for (;;) {
		nl = memchr(c->buf, '\n', c->len);
		if (nl != NULL) {
			*nl = '\0';
			j = json_loads(c->buf, 0, NULL);
			assert_non_null(j);
			c->len -= (size_t)(nl + 1 - c->buf);
			memmove(c->buf, nl + 1, c->len);
			return j;
		}
		if (poll(&p, 1, timeout_ms) <= 0)
			return NULL;
		n = read(c->out, c->buf + c->len, sizeof(c->buf) - c->len);
		if (n <= 0)
			return NULL;
		c->len += (size_t)n;
	}
}

static int
finish(struct child *c, int sig)
{
	int status;

	if (sig != 0)
		kill(c->pid, sig);
	assert_int_equal(waitpid(c->pid, &status, 0), c->pid);
	close(c->out);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static json_int_t
field(json_t *j, const char *group, const char *name)
{
	return json_integer_value(json_object_get(json_object_get(j, group),
	    name));
}

static char *
copy_fixture(const char *dir, const char *name)
{
	char cmd[2048], *src;

	src = tu_source_path("tests/fixtures/proc");
	snprintf(cmd, sizeof(cmd), "cp -r '%s/%s' '%s/proc'", src, name, dir);
	assert_int_equal(system(cmd), 0);
	free(src);
	snprintf(cmd, sizeof(cmd), "%s/proc", dir);
	return strdup(cmd);
}

/* An agent on a copy of the "normal" fixture, on stdout, reporting only
 * at start (the interval and resend are an hour) and on what the
 * [pressure] lines ask for. */
struct run {
	char *dir, *root, *conf;
	struct child c;
};

static void
run_start(struct run *r, const char *pressure)
{
	char text[1024];

	r->dir = tu_tmpdir();
	r->root = copy_fixture(r->dir, "normal");
	snprintf(text, sizeof(text), "[agent]\ninterval = 1h\n"
	    "resend_interval = 1h\nmin_gap = 0\nproc_root = %s\n"
	    "vm_id = loop-test\n[pressure]\n%s", r->root, pressure);
	r->conf = tu_write_file(r->dir, "agent.conf", text);
	spawn(&r->c, (char *const[]){ "mm-guest-agent", "-d", "-c", r->conf,
	    "--channel", "stdout", NULL });
}

static void
run_end(struct run *r)
{
	assert_int_equal(finish(&r->c, SIGTERM), 0);
	free(r->conf);
	free(r->root);
	tu_rmtree(r->dir);
	free(r->dir);
}

static void
test_agent_loop_pressure_report(void **state)
{
	char text[1024], *mem;
	struct run r;
	json_t *j;
	uint64_t t0, ms;

	run_start(&r, "available_low_pct = 10\ncheck_interval = 50ms\n");
	j = next_report(&r.c, 5000);		/* at start */
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "vm_id")),
	    "loop-test");
	assert_int_equal(json_integer_value(json_object_get(j, "agent_seq")),
	    0);
	assert_int_equal(field(j, "meminfo", "available_kib"), 3301520);
	json_decref(j);
	/* Nothing changes, the interval is an hour: silence. */
	assert_null(next_report(&r.c, 400));

	/* MemAvailable falls to 4.7 % of MemTotal: reported at once. */
	mem = tu_source_path("tests/fixtures/proc/deflate-on-oom/meminfo");
	snprintf(text, sizeof(text), "cp '%s' '%s/meminfo'", mem, r.root);
	t0 = clock_ms(CLOCK_MONOTONIC);
	assert_int_equal(system(text), 0);
	j = next_report(&r.c, 3000);
	ms = clock_ms(CLOCK_MONOTONIC) - t0;
	assert_non_null(j);
	assert_true(ms < 1000);
	assert_int_equal(json_integer_value(json_object_get(j, "agent_seq")),
	    1);
	assert_int_equal(field(j, "meminfo", "available_kib"), 190000);
	assert_int_equal(field(j, "meminfo", "total_kib"), 4028464);
	json_decref(j);
	/* Staying low is not news. */
	assert_null(next_report(&r.c, 400));

	free(mem);
	run_end(&r);
}

/* Write root/meminfo: the "normal" fixture with MemAvailable set. */
static void
write_available(const char *root, long kib)
{
	char *src = tu_source_path("tests/fixtures/proc/normal/meminfo");
	char cmd[4096];

	snprintf(cmd, sizeof(cmd), "sed 's/^MemAvailable:.*/MemAvailable: "
	    "%ld kB/' '%s' > '%s/meminfo.new' && mv '%s/meminfo.new' "
	    "'%s/meminfo'", kib, src, root, root, root);
	assert_int_equal(system(cmd), 0);
	free(src);
}

static void
test_agent_loop_rise_report(void **state)
{
	struct run r;
	json_t *j;

	run_start(&r, "available_low_pct = 0\nrise = 32M\n"
	    "check_interval = 50ms\n");
	j = next_report(&r.c, 5000);		/* at start */
	assert_non_null(j);
	json_decref(j);

	/* 20 MiB more in use: below the step, and the interval is an
	 * hour: nothing. */
	write_available(r.root, 3301520 - 20 * 1024);
	assert_null(next_report(&r.c, 400));
	/* 40 MiB more than at the last report: sent at once. */
	write_available(r.root, 3301520 - 40 * 1024);
	j = next_report(&r.c, 1000);
	assert_non_null(j);
	assert_int_equal(json_integer_value(json_object_get(j, "agent_seq")),
	    1);
	assert_int_equal(field(j, "meminfo", "available_kib"),
	    3301520 - 40 * 1024);
	json_decref(j);
	/* The step counts from that report: 20 MiB more is not one; a
	 * fall is not one either. */
	write_available(r.root, 3301520 - 60 * 1024);
	assert_null(next_report(&r.c, 400));
	write_available(r.root, 3301520);
	assert_null(next_report(&r.c, 400));

	run_end(&r);
}

static void
test_agent_loop_once(void **state)
{
	char *dir = tu_tmpdir(), *root, *conf, text[512];
	struct child c;
	json_t *j;

	root = copy_fixture(dir, "no-psi");
	snprintf(text, sizeof(text), "[agent]\nproc_root = %s\n", root);
	conf = tu_write_file(dir, "agent.conf", text);
	spawn(&c, (char *const[]){ "mm-guest-agent", "-c", conf,
	    "--channel=stdout", "--once", NULL });
	j = next_report(&c, 5000);
	assert_non_null(j);
	assert_int_equal(field(j, "vmstat", "major_faults"), 5872);
	assert_null(json_object_get(j, "psi"));
	json_decref(j);
	assert_null(next_report(&c, 2000));	/* EOF: it exited */
	assert_int_equal(finish(&c, 0), 0);
	free(conf);
	free(root);
	tu_rmtree(dir);
	free(dir);
}

static void
test_agent_loop_no_channel(void **state)
{
	char *dir = tu_tmpdir(), *conf;
	struct child c;

	if (access("/proc/xen", F_OK) == 0) {
		tu_rmtree(dir);
		free(dir);
		skip();	/* a Xen machine always has a channel */
	}
	conf = tu_write_file(dir, "agent.conf",
	    "[virtio]\nport = /nonexistent/port\n");
	spawn(&c, (char *const[]){ "mm-guest-agent", "-c", conf, NULL });
	assert_int_equal(finish(&c, 0), 78);
	/* A bad channel name is a usage error. */
	spawn(&c, (char *const[]){ "mm-guest-agent", "--channel", "carrier",
	    NULL });
	assert_int_equal(finish(&c, 0), 2);
	free(conf);
	tu_rmtree(dir);
	free(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_agent_loop_pressure_report),
		cmocka_unit_test(test_agent_loop_rise_report),
		cmocka_unit_test(test_agent_loop_once),
		cmocka_unit_test(test_agent_loop_no_channel),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
