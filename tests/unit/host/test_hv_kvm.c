/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The kvm driver against a fake QEMU on the same loop: a QMP server and an
 * agent chardev socket per VM in a temporary directory. It must find VMs and
 * notice them go, follow the balloon, take agent frames (and refuse hostile
 * ones by dropping the connection, then reconnect), fall back to the
 * balloon's guest-stats without an agent, and send balloon commands.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "hv.h"
#include "qmp_server.h"
#include "testutil.h"
#include "tu_hv.h"

#define GIB	(1024ll * 1024 * 1024)

/* A fake QEMU's socket: QMP (the one QMP double, sim/qmp_server.h) or the
 * agent's chardev, and what its QMP commands did. */
struct fake {
	struct qmp_server *srv;
	char cmds[4096];	/* commands received, space separated */
	long long balloon_value;
	long long actual;
};

struct ctx {
	uv_loop_t loop;
	char *dir;
	struct hv *hv;
	struct fake qmp1, agent1, qmp2;
	unsigned added, removed, guests, balloons, rejected;	/* guests: vm1's */
	char last_guest_vm[80];
	bool done;
	int set_status;
	bool set_done;
	unsigned long agent1_drops;	/* before the agent was last dropped */
};

static struct ctx T;

/* To the driver, which is f's one client. */
static void
fake_write(struct fake *f, const void *data, size_t len)
{
	assert_int_equal(qmp_server_send(f->srv, data, len), 1);
}

static void
qmp_cb(struct qmp_conn *c, const char *cmd, json_t *args, void *arg)
{
	struct fake *f = arg;
	json_t *ret;

	assert_non_null(cmd);
	strncat(f->cmds, cmd, sizeof(f->cmds) - strlen(f->cmds) - 2);
	if (json_is_string(json_object_get(args, "property"))) {
		strncat(f->cmds, "/", sizeof(f->cmds) - strlen(f->cmds) - 2);
		strncat(f->cmds, json_string_value(json_object_get(args,
		    "property")), sizeof(f->cmds) - strlen(f->cmds) - 2);
	}
	strcat(f->cmds, " ");
	if (strcmp(cmd, "query-memory-size-summary") == 0) {
		ret = json_pack("{s:I}", "base-memory", (json_int_t)(4 * GIB));
	} else if (strcmp(cmd, "query-balloon") == 0) {
		ret = json_pack("{s:I}", "actual", (json_int_t)f->actual);
	} else if (strcmp(cmd, "qom-get") == 0 &&
	    strcmp(json_string_value(json_object_get(args, "property")),
	    "deflate-on-oom") == 0) {
		ret = json_true();
	} else if (strcmp(cmd, "qom-get") == 0) {
		char *s;

		/* As QEMU prints a statistic the guest never sent: -1 as a
		 * uint64, beyond what a JSON int64 holds. */
		assert_true(asprintf(&s, "{\"stats\": {"
		    "\"stat-total-memory\": %llu, \"stat-free-memory\": %llu, "
		    "\"stat-major-faults\": 42, \"stat-swap-in\": "
		    "18446744073709551615}, \"last-update\": 1700000000}",
		    (unsigned long long)(2 * GIB), (unsigned long long)GIB) >
		    0);
		assert_int_equal(qmp_conn_return_raw(c, s), 0);
		free(s);
		return;
	} else if (strcmp(cmd, "balloon") == 0) {
		f->balloon_value = json_integer_value(
		    json_object_get(args, "value"));
		ret = json_object();
	} else {
		ret = json_object();
	}
	assert_int_equal(qmp_conn_return(c, ret), 0);
	if (strcmp(cmd, "balloon") == 0)
		qmp_conn_send_json(c, json_pack("{s:s, s:{s:I}}", "event",
		    "BALLOON_CHANGE", "data", "actual",
		    (json_int_t)f->balloon_value));
}

static void
fake_listen(struct fake *f, const char *name, bool qmp)
{
	char path[4096];

	memset(f, 0, sizeof(*f));
	f->actual = GIB;
	snprintf(path, sizeof(path), "%s/%s", T.dir, name);
	f->srv = qmp_server_new(&T.loop, path, qmp ? qmp_cb : NULL, f);
	assert_non_null(f->srv);
}

/* Whether the driver is connected; never twice at once. */
static bool
fake_connected(const struct fake *f)
{
	unsigned n = qmp_server_clients(f->srv);

	assert_true(n <= 1);
	return n == 1;
}

static void
fake_close(struct fake *f)
{
	qmp_server_close(f->srv);
}

/* A GuestStats frame: 4-byte big-endian length, then the body. */
static void
send_frame(struct fake *f, const Mm__V1__GuestStats *g)
{
	uint8_t *body, hdr[4];
	size_t len;

	assert_int_equal(msg_pack(MSG_GUEST_STATS, &g->base, &body, &len), 0);
	hdr[0] = (uint8_t)(len >> 24);
	hdr[1] = (uint8_t)(len >> 16);
	hdr[2] = (uint8_t)(len >> 8);
	hdr[3] = (uint8_t)len;
	fake_write(f, hdr, 4);
	fake_write(f, body, len);
	free(body);
}

static void
event_cb(struct hv *hv, enum hv_event ev, struct hv_vm *vm, void *arg)
{
	switch (ev) {
	case HV_EV_ADDED:
		T.added++;
		break;
	case HV_EV_REMOVED:
		T.removed++;
		break;
	case HV_EV_GUEST:
		if (strcmp(vm->id, "vm1") == 0)
			T.guests++;
		snprintf(T.last_guest_vm, sizeof(T.last_guest_vm), "%s",
		    vm->id);
		break;
	case HV_EV_BALLOON:
		T.balloons++;
		break;
	case HV_EV_REJECTED:
		T.rejected++;
		break;
	}
}

static struct hv_vm *
find(const char *id)
{
	return tu_hv_find(T.hv, id);
}

static bool
run_until(bool (*cond)(void))
{
	return tu_run_until_fn(&T.loop, cond, 5000);
}

static bool c_added(void) { return T.added == 2; }
static bool c_agent(void) { return fake_connected(&T.agent1) &&
    find("vm1") != NULL && find("vm1")->agent_up; }
static bool c_guest(void) { return find("vm1") && find("vm1")->guest; }
static bool c_balloon(void) { return find("vm1") &&
    find("vm1")->balloon_known; }
static bool c_vm2_guest(void) { return find("vm2") && find("vm2")->guest; }
static bool c_agent_dropped(void) { return
    qmp_server_dropped(T.agent1.srv) > T.agent1_drops; }
static bool c_set(void) { return T.set_done && find("vm1")->
    balloon_actual_kib == 768 * 1024; }
static bool c_done(void) { return T.set_done; }
static bool c_removed(void) { return T.removed == 1; }
static bool c_removed2(void) { return T.removed == 2; }
static bool c_vm2_back(void) { return T.added == 3 &&
    fake_connected(&T.qmp2); }

static void
set_cb(struct hv *hv, int status, void *arg)
{
	T.set_status = status;
	T.set_done = true;
}

static Mm__V1__GuestStats *
good_stats(const char *claimed_id, uint64_t seq)
{
	static Mm__V1__GuestStats g;
	static Mm__V1__Meminfo mi;

	mm__v1__guest_stats__init(&g);
	mm__v1__meminfo__init(&mi);
	g.vm_id = (char *)claimed_id;
	g.has_agent_seq = 1;
	g.agent_seq = seq;
	g.meminfo = &mi;
	mi.has_total_kib = mi.has_free_kib = 1;
	mi.total_kib = 1000000;
	mi.free_kib = 400000;
	return &g;
}

static void
reconnect_agent(void)
{
	T.agent1_drops = qmp_server_dropped(T.agent1.srv);
	assert_true(run_until(c_agent_dropped));
	assert_true(run_until(c_agent));
}

static void
test_hv_kvm_driver(void **state)
{
	struct hv_config cfg = {
		.type = HV_TYPE_KVM,
		.rescan_ms = 100,
		.poll_ms = 100,
		.agent_timeout_ms = 300,
		.event_cb = event_cb,
	};
	struct hv_stats st;
	struct hv_vm *vm;
	char path[4096];
	uint8_t junk[9] = { 0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0xff };
	uint8_t huge[4] = { 0x7f, 0xff, 0xff, 0xff };
	unsigned g0;

	memset(&T, 0, sizeof(T));
	uv_loop_init(&T.loop);
	T.dir = tu_tmpdir();
	fake_listen(&T.qmp1, "vm1.qmp", true);
	fake_listen(&T.agent1, "vm1.agent", false);
	fake_listen(&T.qmp2, "vm2.qmp", true);	/* no agent */
	cfg.vm_dir = T.dir;
	T.hv = hv_new(&T.loop, &cfg);
	assert_non_null(T.hv);
	assert_int_equal(hv_start(T.hv), 0);

	assert_true(run_until(c_added));
	assert_int_equal(hv_vm_count(T.hv), 2);
	assert_true(run_until(c_agent));
	assert_int_equal(find("vm1")->pid, getpid());

	/* The balloon, from query-balloon. */
	assert_true(run_until(c_balloon));
	assert_int_equal(find("vm1")->balloon_actual_kib, 1024 * 1024);
	assert_true(find("vm1")->max_known);
	assert_int_equal(find("vm1")->max_kib, 4 * 1024 * 1024);

	/* A good frame; the guest's claimed name is replaced. */
	send_frame(&T.agent1, good_stats("someone-else", 1));
	assert_true(run_until(c_guest));
	vm = find("vm1");
	assert_string_equal(vm->guest->vm_id, "vm1");
	assert_int_equal(vm->guest->meminfo->total_kib, 1000000);
	assert_int_equal(vm->guest->source,
	    MM__V1__STATS_SOURCE__STATS_SOURCE_AGENT);

	/* Hostile frames: each is dropped, counted, and the connection
	 * reset; the driver reconnects on its rescan. */
	g0 = T.guests;
	fake_write(&T.agent1, huge, sizeof(huge));
	reconnect_agent();
	fake_write(&T.agent1, junk, sizeof(junk));
	reconnect_agent();
	send_frame(&T.agent1, good_stats("x", 2));
	{
		/* An absurd total is invalid; msg_pack would refuse it, so
		 * pack it by hand. */
		Mm__V1__GuestStats *g = good_stats("x", 3);
		uint8_t *body, hdr[4];
		size_t len;

		g->meminfo->total_kib = 1ull << 50;
		len = protobuf_c_message_get_packed_size(&g->base);
		body = malloc(len);
		protobuf_c_message_pack(&g->base, body);
		hdr[0] = hdr[1] = 0;
		hdr[2] = (uint8_t)(len >> 8);
		hdr[3] = (uint8_t)len;
		fake_write(&T.agent1, hdr, 4);
		fake_write(&T.agent1, body, len);
		free(body);
	}
	reconnect_agent();
	hv_get_stats(T.hv, &st);
	assert_int_equal(st.frames_too_big, 1);
	assert_int_equal(st.frames_undecodable, 1);
	assert_int_equal(st.frames_invalid, 1);
	assert_int_equal(st.agent_resets, 3);
	assert_int_equal(T.rejected, 3);
	assert_int_equal(st.frames, 2);
	assert_int_equal(T.guests, g0 + 1);
	assert_int_equal(find("vm1")->guest->meminfo->total_kib, 1000000);

	/* vm2 has no agent: the balloon's guest-stats after the timeout. */
	assert_true(run_until(c_vm2_guest));
	vm = find("vm2");
	assert_int_equal(vm->guest->source,
	    MM__V1__STATS_SOURCE__STATS_SOURCE_QMP);
	assert_int_equal(vm->guest->meminfo->total_kib, 2 * 1024 * 1024);
	assert_int_equal(vm->guest->meminfo->free_kib, 1024 * 1024);
	assert_int_equal(vm->guest->vmstat->major_faults, 42);
	assert_false(vm->guest->vmstat->has_swap_in_pages);
	/* The polling interval is set before the first read. */
	assert_non_null(strstr(T.qmp2.cmds, "qom-get/guest-stats"));
	assert_true(strstr(T.qmp2.cmds, "qom-set") <
	    strstr(T.qmp2.cmds, "qom-get/guest-stats"));
	assert_null(strstr(T.qmp1.cmds, "qom-get/guest-stats"));
	/* Whether the balloon stays in the guest's MemTotal. */
	assert_true(vm->doo_known);
	assert_true(vm->deflate_on_oom);

	/* The write side: balloon, then BALLOON_CHANGE. */
	assert_int_equal(hv_set_target(T.hv, "vm1", 768 * 1024, set_cb, NULL),
	    0);
	assert_int_equal(hv_set_target(T.hv, "nope", 1, set_cb, NULL),
	    -ENOENT);
	T.qmp1.actual = 768 * 1024 * 1024;
	assert_true(run_until(c_set));
	assert_int_equal(T.set_status, 0);
	/* QMP balloon takes the guest's new size in bytes. */
	assert_int_equal(T.qmp1.balloon_value, 768 * 1024 * 1024);
	assert_true(find("vm1")->target_known);
	assert_int_equal(find("vm1")->balloon_target_kib, 768 * 1024);

	/* hv_refresh: query-balloon now, its answer in the hv_vm before
	 * the callback. */
	T.qmp1.actual = 700 * 1024 * 1024;
	T.set_done = false;
	T.qmp1.cmds[0] = '\0';
	assert_int_equal(hv_refresh(T.hv, "vm1", set_cb, NULL), 0);
	assert_true(run_until(c_done));
	assert_int_equal(T.set_status, 0);
	assert_non_null(strstr(T.qmp1.cmds, "query-balloon"));
	assert_int_equal(find("vm1")->balloon_actual_kib, 700 * 1024);
	assert_int_equal(hv_refresh(T.hv, "nope", set_cb, NULL), -ENOENT);

	/* A QMP line without end drops the connection; the VM is found
	 * again by the rescan. */
	{
		size_t n = 70 * 1024;
		char *line = malloc(n);

		memset(line, 'x', n);
		fake_write(&T.qmp2, line, n);
		free(line);
	}
	assert_true(run_until(c_removed));
	hv_get_stats(T.hv, &st);
	assert_int_equal(st.qmp_bad_lines, 1);
	assert_true(run_until(c_vm2_back));

	/* vm2 goes away. */
	snprintf(path, sizeof(path), "%s/vm2.qmp", T.dir);
	unlink(path);
	assert_true(run_until(c_removed2));
	assert_null(find("vm2"));

	hv_close(T.hv, NULL, NULL);
	fake_close(&T.qmp1);
	fake_close(&T.agent1);
	fake_close(&T.qmp2);
	assert_int_equal(tu_loop_finish(&T.loop), 0);
	tu_rmtree(T.dir);
	free(T.dir);
}

static void
test_hv_kvm_config(void **state)
{
	struct hv_config cfg = { .type = (enum hv_type)7 };
	enum hv_type t;
	uv_loop_t loop;

	uv_loop_init(&loop);
	assert_null(hv_new(&loop, &cfg));
	assert_int_equal(errno, EINVAL);
	assert_int_equal(hv_type_from_name("sim", &t), 0);
	assert_int_equal(t, HV_TYPE_SIM);
	assert_int_equal(hv_type_from_name("vmware", &t), -EINVAL);
	assert_string_equal(hv_type_name(HV_TYPE_XEN), "xen");
	assert_int_equal(uv_loop_close(&loop), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hv_kvm_config),
		cmocka_unit_test(test_hv_kvm_driver),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
