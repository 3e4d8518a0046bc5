/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the xenstore channel with the real libxenstore against the
 * xenstored test double (tests/fakes/xenstored.h): the key layout, one
 * transaction per report with only changed keys written, retries on
 * EAGAIN, watches a host would set, and xenstored going away and back.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <xenstore.h>

#include "fixture.h"
#include "guest-agent.h"
#include "log.h"
#include "testutil.h"
#include "xenstored.h"

#define DOMID 5

struct fx {
	char *dir;
	struct xsd_fake *xsd;
	struct agent_chan *ch;
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	f->dir = tu_tmpdir();
	f->xsd = xsd_fake_start(f->dir, DOMID);
	assert_non_null(f->xsd);
	setenv("XENSTORED_PATH", xsd_fake_path(f->xsd), 1);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	agent_chan_free(f->ch);
	xsd_fake_stop(f->xsd);
	tu_rmtree(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static void
assert_key(struct xsd_fake *x, const char *path, const char *want)
{
	char *v = xsd_fake_read(x, path);

	if (v == NULL)
		fail_msg("%s: absent", path);
	if (strcmp(v, want) != 0)
		fail_msg("%s: \"%s\", want \"%s\"", path, v, want);
	free(v);
}

static void
test_xenstore_layout(void **state)
{
	struct fx *f = *state;
	struct agent_sample s;
	unsigned long tx0, w0, rm0;

	/* A previous agent's leftovers go at the first report. */
	assert_int_equal(xsd_fake_write(f->xsd, "data/mm/old_key", "x"), 0);
	f->ch = chan_xenstore_new("data/mm");
	assert_non_null(f->ch);
	fixture_sample("normal", &s, 0);
	tx0 = xsd_fake_requests(f->xsd, XS_TRANSACTION_START);
	assert_int_equal(f->ch->send(f->ch, &s), 0);
	assert_int_equal(xsd_fake_requests(f->xsd, XS_TRANSACTION_START),
	    tx0 + 1);

	assert_null(xsd_fake_read(f->xsd, "data/mm/old_key"));
	assert_key(f->xsd, "/local/domain/5/data/mm/version", "1");
	assert_key(f->xsd, "data/mm/vm_id", "guest-1");
	assert_key(f->xsd, "data/mm/agent_seq", "0");
	assert_key(f->xsd, "data/mm/time_ms", "1700000000000");
	assert_key(f->xsd, "data/mm/meminfo/total_kib", "4028464");
	assert_key(f->xsd, "data/mm/meminfo/available_kib", "3301520");
	assert_key(f->xsd, "data/mm/meminfo/shmem_kib", "72288");
	assert_key(f->xsd, "data/mm/vmstat/refault_pages", "4220");
	assert_key(f->xsd, "data/mm/vmstat/oom_kills", "2");
	assert_key(f->xsd, "data/mm/psi/some_avg10_pct", "1.52");
	assert_key(f->xsd, "data/mm/psi/full_avg300_pct", "0.03");
	assert_key(f->xsd, "data/mm/psi/full_total_us", "402117");
	/* 10 + 5 + 8 values, 4 more keys, and the 3 directories. */
	assert_int_equal(xsd_fake_count_nodes(f->xsd, "data/mm"),
	    1 + 3 + 4 + 10 + 5 + 8);

	/* Same meminfo and vmstat, PSI gone: only what changed moves. */
	w0 = xsd_fake_requests(f->xsd, XS_WRITE);
	rm0 = xsd_fake_requests(f->xsd, XS_RM);
	fixture_sample("no-psi", &s, 1);
	assert_int_equal(f->ch->send(f->ch, &s), 0);
	assert_int_equal(xsd_fake_requests(f->xsd, XS_WRITE), w0 + 2);
	assert_int_equal(xsd_fake_requests(f->xsd, XS_RM), rm0 + 8);
	assert_key(f->xsd, "data/mm/agent_seq", "1");
	assert_null(xsd_fake_read(f->xsd, "data/mm/psi/some_avg10_pct"));
	assert_key(f->xsd, "data/mm/meminfo/total_kib", "4028464");

	/* The balloon shrinks MemTotal: the new value is written. */
	fixture_sample("balloon", &s, 2);
	assert_int_equal(f->ch->send(f->ch, &s), 0);
	assert_key(f->xsd, "data/mm/meminfo/total_kib", "1015808");
	assert_key(f->xsd, "data/mm/psi/some_avg10_pct", "12.50");
}

static void
test_xenstore_retries_conflicts(void **state)
{
	struct fx *f = *state;
	struct agent_sample s;
	unsigned long tx0;

	f->ch = chan_xenstore_new("data/mm");
	assert_non_null(f->ch);
	fixture_sample("normal", &s, 0);
	assert_int_equal(f->ch->send(f->ch, &s), 0);

	xsd_fake_fail_commits(f->xsd, 2);
	tx0 = xsd_fake_requests(f->xsd, XS_TRANSACTION_START);
	fixture_sample("balloon", &s, 1);
	assert_int_equal(f->ch->send(f->ch, &s), 0);
	assert_int_equal(xsd_fake_requests(f->xsd, XS_TRANSACTION_START),
	    tx0 + 3);
	assert_key(f->xsd, "data/mm/agent_seq", "1");
	assert_key(f->xsd, "data/mm/meminfo/total_kib", "1015808");

	/* Conflicts without end: the report is dropped, nothing torn. */
	xsd_fake_fail_commits(f->xsd, 1000);
	fixture_sample("normal", &s, 2);
	assert_int_equal(f->ch->send(f->ch, &s), -EAGAIN);
	assert_key(f->xsd, "data/mm/agent_seq", "1");
	assert_key(f->xsd, "data/mm/meminfo/total_kib", "1015808");
	xsd_fake_fail_commits(f->xsd, 0);
	fixture_sample("normal", &s, 3);
	assert_int_equal(f->ch->send(f->ch, &s), 0);
	assert_key(f->xsd, "data/mm/agent_seq", "3");
	assert_key(f->xsd, "data/mm/meminfo/total_kib", "4028464");
}

/* What a host's collector does: watch agent_seq, list and read. */
static void
test_xenstore_host_watch(void **state)
{
	struct fx *f = *state;
	struct agent_sample s;
	struct xs_handle *h;
	struct pollfd p;
	unsigned n;
	char **ev, **dir, *v, *home;

	f->ch = chan_xenstore_new("data/mm");
	assert_non_null(f->ch);
	h = xs_open(0);
	assert_non_null(h);
	home = xs_get_domain_path(h, DOMID);
	assert_string_equal(home, "/local/domain/5");
	free(home);
	assert_true(xs_watch(h, "/local/domain/5/data/mm/agent_seq", "tok"));
	ev = xs_read_watch(h, &n);	/* the initial event */
	assert_non_null(ev);
	free(ev);

	fixture_sample("normal", &s, 41);
	assert_int_equal(f->ch->send(f->ch, &s), 0);
	p = (struct pollfd){ .fd = xs_fileno(h), .events = POLLIN };
	assert_int_equal(poll(&p, 1, 2000), 1);
	ev = xs_read_watch(h, &n);
	assert_non_null(ev);
	assert_string_equal(ev[XS_WATCH_PATH],
	    "/local/domain/5/data/mm/agent_seq");
	assert_string_equal(ev[XS_WATCH_TOKEN], "tok");
	free(ev);
	v = xs_read(h, XBT_NULL, "/local/domain/5/data/mm/agent_seq", NULL);
	assert_string_equal(v, "41");
	free(v);
	dir = xs_directory(h, XBT_NULL, "/local/domain/5/data/mm/vmstat", &n);
	assert_non_null(dir);
	assert_int_equal(n, 5);
	free(dir);
	assert_true(xs_unwatch(h, "/local/domain/5/data/mm/agent_seq", "tok"));
	xs_close(h);
}

static void
test_xenstore_daemon_restart(void **state)
{
	struct fx *f = *state;
	struct agent_sample s;

	f->ch = chan_xenstore_new("data/mm");
	assert_non_null(f->ch);
	fixture_sample("normal", &s, 0);
	assert_int_equal(f->ch->send(f->ch, &s), 0);

	xsd_fake_stop(f->xsd);		/* xenstored goes away */
	fixture_sample("balloon", &s, 1);
	assert_true(f->ch->send(f->ch, &s) < 0);
	assert_true(f->ch->send(f->ch, &s) < 0);	/* logged once */

	f->xsd = xsd_fake_start(f->dir, DOMID);	/* empty, as after a crash */
	assert_non_null(f->xsd);
	fixture_sample("balloon", &s, 2);
	assert_int_equal(f->ch->send(f->ch, &s), 0);
	assert_key(f->xsd, "data/mm/agent_seq", "2");
	assert_key(f->xsd, "data/mm/version", "1");
	/* Everything is written again, not just what changed. */
	assert_key(f->xsd, "data/mm/vmstat/major_faults", "5872");
}

static void
test_xenstore_no_daemon(void **state)
{
	setenv("XENSTORED_PATH", "/nonexistent/socket", 1);
	assert_null(chan_xenstore_new("data/mm"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_xenstore_layout, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_xenstore_retries_conflicts,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_xenstore_host_watch,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_xenstore_daemon_restart,
		    setup, teardown),
		cmocka_unit_test(test_xenstore_no_daemon),
	};

	log_init("test_chan_xenstore", 0, false);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
