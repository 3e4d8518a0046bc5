/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the xenstore channel with the real libxenstore against the
 * xenstored test double (tests/fakes/xenstored.h): the key layout, one
 * transaction per report with only changed keys written, retries on
 * EAGAIN, watches a host would set, and xenstored going away and back;
 * with the host's xen driver on the same xenstored, cold buckets and
 * reclaim progress one way and reclaim requests the other.
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
#include "hv.h"
#include "log.h"
#include "testutil.h"
#include "tu_hv.h"
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

/* ---- with the host's xen driver on the same xenstored ---- */

static struct {
	uv_loop_t loop;
	struct hv *hv;
	struct agent_reclaim rc;
	unsigned calls, initial;
	int last_r;
} H;

static bool
c_vm(void)
{
	return hv_find(H.hv, "guest-5") != NULL;
}

static uint64_t want_seq;
static bool
c_seq(void)
{
	struct hv_vm *vm = hv_find(H.hv, "guest-5");

	return vm != NULL && vm->guest != NULL &&
	    vm->guest->agent_seq == want_seq;
}

/* The xen driver on H.loop, seeing domain 5 ("guest-5"). */
static void
host_up(struct fx *f)
{
	struct hv_config cfg = { .type = HV_TYPE_XEN };

	assert_int_equal(xsd_fake_write(f->xsd, "/local/domain/5/name",
	    "guest-5"), 0);
	assert_int_equal(uv_loop_init(&H.loop), 0);
	H.hv = hv_new(&H.loop, &cfg);
	assert_non_null(H.hv);
	assert_int_equal(hv_start(H.hv), 0);
	assert_true(tu_run_until_fn(&H.loop, c_vm, 5000));
}

static void
host_down(void)
{
	hv_close(H.hv, NULL, NULL);
	assert_int_equal(tu_loop_finish(&H.loop), 0);
}

/*
 * The agent's cold buckets and reclaim progress reach the host: the
 * driver's sample holds what the agent's sample held, and when the agent
 * has none any more, neither does the host's (the keys are removed).
 */
static void
test_xenstore_cold_reclaim_to_host(void **state)
{
	struct fx *f = *state;
	const Mm__V1__GuestStats *g;
	struct agent_sample s;

	memset(&H, 0, sizeof(H));
	host_up(f);
	f->ch = chan_xenstore_new("data/mm");
	assert_non_null(f->ch);
	fixture_sample("normal", &s, 1);
	s.cold.n = 3;
	s.cold.b[0].idle_ms = 60000;
	s.cold.b[0].anon_kib = 4096;
	s.cold.b[0].file_kib = 8192;
	s.cold.b[1].idle_ms = 120000;
	s.cold.b[1].anon_kib = 2048;
	s.cold.b[2].idle_ms = 180000;
	s.cold.b[2].file_kib = 1024;
	s.has_reclaim = true;
	s.reclaim_seq = 42;
	s.reclaim_kib = 32768;
	s.reclaim_state = MM__V1__RECLAIM_STATE__RECLAIM_STATE_PRESSURE;
	s.reclaim_stall_pct = 12.5;
	assert_int_equal(f->ch->send(f->ch, &s), 0);
	assert_key(f->xsd, "data/mm/cold/2/file_kib", "1024");
	assert_key(f->xsd, "data/mm/reclaim/state", "3");
	assert_key(f->xsd, "data/mm/reclaim/stall_pct", "12.50");

	want_seq = 1;
	assert_true(tu_run_until_fn(&H.loop, c_seq, 5000));
	g = hv_find(H.hv, "guest-5")->guest;
	assert_int_equal(g->n_cold, 3);
	assert_int_equal(g->cold[0]->idle_ms, 60000);
	assert_int_equal(g->cold[0]->anon_kib, 4096);
	assert_int_equal(g->cold[0]->file_kib, 8192);
	assert_int_equal(g->cold[1]->anon_kib, 2048);
	assert_int_equal(g->cold[2]->idle_ms, 180000);
	assert_int_equal(g->cold[2]->file_kib, 1024);
	assert_non_null(g->reclaim);
	assert_int_equal(g->reclaim->seq, 42);
	assert_int_equal(g->reclaim->reclaimed_kib, 32768);
	assert_int_equal(g->reclaim->state,
	    MM__V1__RECLAIM_STATE__RECLAIM_STATE_PRESSURE);
	assert_true(g->reclaim->stall_pct == 12.5);
	assert_int_equal(g->meminfo->total_kib, 4028464);

	/* One bucket fewer, then none and no status: keys go. */
	s.seq = 2;
	s.cold.n = 2;
	s.reclaim_kib = 40960;
	assert_int_equal(f->ch->send(f->ch, &s), 0);
	assert_null(xsd_fake_read(f->xsd, "data/mm/cold/2/idle_ms"));
	want_seq = 2;
	assert_true(tu_run_until_fn(&H.loop, c_seq, 5000));
	g = hv_find(H.hv, "guest-5")->guest;
	assert_int_equal(g->n_cold, 2);
	assert_int_equal(g->reclaim->reclaimed_kib, 40960);
	s.seq = 3;
	s.cold.n = 0;
	s.has_reclaim = false;
	assert_int_equal(f->ch->send(f->ch, &s), 0);
	assert_null(xsd_fake_read(f->xsd, "data/mm/reclaim/seq"));
	want_seq = 3;
	assert_true(tu_run_until_fn(&H.loop, c_seq, 5000));
	g = hv_find(H.hv, "guest-5")->guest;
	assert_int_equal(g->n_cold, 0);
	assert_null(g->reclaim);

	host_down();
}

/* What the agent's main does with the watched key (guest-agent.c's
 * control_cb(), which ignores the initial value), observably. */
static void
control_cb(const char *value, size_t len, bool initial, void *arg)
{
	H.calls++;
	H.initial += initial;
	if (value != NULL && !initial)
		H.last_r = reclaim_request_text(arg, "xenstore", value, len);
}

static unsigned want_calls;
static bool
c_calls(void)
{
	return H.calls >= want_calls && !H.rc.busy && !H.rc.running;
}

/*
 * hv_reclaim() on the host writes control/mm/reclaim; the agent's watch
 * sees it and its reclaim code acts on it (memory.reclaim is a plain file
 * here: two steps of 32 MiB). Values that are not a request, or a request
 * msg_validate() refuses, are counted and not acted on; the value there
 * when the watch starts is reported as initial.
 */
static void
test_xenstore_reclaim_request(void **state)
{
	static const char *const bad[] = {
		"6 1024", "6 1024 10 1", "6  1024 10", " 6 1024 10",
		"6 -1 10", "6 1e3 10", "6 1024 10.", "6 1024 1.2.3",
		"6 1024 0x10", "6 99999999999999999999 10", "6 1024 nan",
		"0 1024 10", "6 1024 100.5", "6 1024 10\n",
	};
	struct fx *f = *state;
	char file[512], *text;
	struct agent_conf rconf = {
		.reclaim_max_kib = 1024 * 1024,
		.reclaim_step_kib = 32 * 1024,
	};
	struct chan_xenstore_watch *w;

	memset(&H, 0, sizeof(H));
	host_up(f);
	rconf.proc_root = rconf.reclaim_cgroup = rconf.control_port = f->dir;
	snprintf(file, sizeof(file), "%s/memory.reclaim", f->dir);
	free(tu_write_file(f->dir, "memory.reclaim", ""));
	assert_int_equal(reclaim_start(&H.rc, &H.loop, &rconf, false), 0);
	assert_int_equal(xsd_fake_write(f->xsd, AGENT_XS_CONTROL_KEY,
	    "1 1024 10"), 0);
	w = chan_xenstore_watch_new(&H.loop, AGENT_XS_CONTROL_KEY,
	    control_cb, &H.rc);
	assert_non_null(w);
	assert_int_equal(H.calls, 1);
	assert_int_equal(H.initial, 1);
	tu_run_for(&H.loop, 100);	/* xenstored's own first event */
	assert_int_equal(H.calls, 1);
	assert_int_equal(H.rc.seq, 0);

	assert_int_equal(hv_reclaim(H.hv, "guest-5", 5, 64 * 1024, 10), 0);
	want_calls = 2;
	assert_true(tu_run_until_fn(&H.loop, c_calls, 5000));
	assert_int_equal(H.last_r, 0);
	assert_int_equal(H.rc.seq, 5);
	assert_int_equal(H.rc.reclaimed_kib, 64 * 1024);
	assert_int_equal(H.rc.state, MM__V1__RECLAIM_STATE__RECLAIM_STATE_DONE);
	assert_true(H.rc.budget_pct == 10.0);
	text = tu_read_file(file, NULL);
	assert_string_equal(text, "33554432");
	free(text);

	/* Malformed or invalid: refused, counted, nothing done. */
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(xsd_fake_write(f->xsd, AGENT_XS_CONTROL_KEY,
		    bad[i]), 0);
		want_calls = 3 + (unsigned)i;
		assert_true(tu_run_until_fn(&H.loop, c_calls, 5000));
		if (H.last_r != -EINVAL)
			fail_msg("\"%s\" taken", bad[i]);
	}
	assert_int_equal(H.rc.refused, sizeof(bad) / sizeof(bad[0]));
	assert_int_equal(H.rc.seq, 5);
	assert_false(H.rc.running);

	/* The host stops one running: 0 KiB. */
	assert_int_equal(hv_reclaim(H.hv, "guest-5", 7, 0, 10), 0);
	want_calls = 3 + sizeof(bad) / sizeof(bad[0]);
	assert_true(tu_run_until_fn(&H.loop, c_calls, 5000));
	assert_int_equal(H.last_r, 0);
	assert_int_equal(H.rc.seq, 7);

	chan_xenstore_watch_free(w);
	reclaim_stop(&H.rc);
	host_down();
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
		cmocka_unit_test_setup_teardown(
		    test_xenstore_cold_reclaim_to_host, setup, teardown),
		cmocka_unit_test_setup_teardown(test_xenstore_reclaim_request,
		    setup, teardown),
		cmocka_unit_test(test_xenstore_no_daemon),
	};

	log_init("test_chan_xenstore", 0, false);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
