/* SPDX-License-Identifier: Apache-2.0 */
/* The actuator's test harness: mm-sim, the in-memory bus; see
 * act_harness.h. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "act_harness.h"
#include "bus_fake.h"
#include "clock.h"
#include "testutil.h"
#include "tu_hv.h"

#define SPECS_MAX	8

/* The harness being started, for the conditions of tu_run_until_fn(). */
static struct harness *cur;

static void
set_str(char **field, const char *fmt, ...)
{
	va_list ap;

	free(*field);
	va_start(ap, fmt);
	assert_true(vasprintf(field, fmt, ap) > 0);
	va_end(ap);
}

static bool
vm_ready(struct hv *hv, const struct actuator *a, const char *id)
{
	struct hv_vm *vm = tu_hv_find(hv, id);

	return vm != NULL && vm->max_known && vm->balloon_known &&
	    (a == NULL || act_vm_fresh(a, vm));
}

static const char *const *ready_ids;

static bool
c_ready(void)
{
	for (size_t i = 0; ready_ids[i] != NULL; i++)
		if (!vm_ready(cur->a.hv, &cur->a, ready_ids[i]) ||
		    !vm_ready(cur->watch, NULL, ready_ids[i]))
			return false;
	return bus_is_up(cur->a.bus);
}

void
th_start(struct harness *h, const char *const *specs,
    void (*conf_fn)(struct actuator_conf *c))
{
	th_start_host(h, specs, NULL, conf_fn);
}

void
th_start_host(struct harness *h, const char *const *specs,
    const char *host_mem, void (*conf_fn)(struct actuator_conf *c))
{
	struct hv_config wc = { .type = HV_TYPE_SIM, .no_agent = true,
	    .rescan_ms = 100, .poll_ms = 100 };
	char *argv[10 + 2 * SPECS_MAX], *bin;
	size_t n = 0, i;

	memset(h, 0, sizeof(*h));
	cur = h;
	bus_fake_reset();
	h->dir = tu_tmpdir();
	snprintf(h->vmdir, sizeof(h->vmdir), "%s/vm", h->dir);
	snprintf(h->root, sizeof(h->root), "%s/root", h->dir);
	bin = tu_bin_path("mm-sim");
	argv[n++] = bin;
	argv[n++] = "-s";
	argv[n++] = h->vmdir;
	argv[n++] = "-r";
	argv[n++] = h->root;
	argv[n++] = "-i";
	argv[n++] = "100ms";
	if (host_mem != NULL) {
		argv[n++] = "-H";
		argv[n++] = (char *)host_mem;
	}
	for (i = 0; specs[i] != NULL; i++) {
		assert_true(i < SPECS_MAX);
		argv[n++] = "-m";
		argv[n++] = (char *)specs[i];
		snprintf(h->ids[i], sizeof(h->ids[i]), "%.*s",
		    (int)strcspn(specs[i], ","), specs[i]);
		h->idp[i] = h->ids[i];
	}
	h->idp[i] = NULL;
	argv[n] = NULL;
	h->sim = tu_spawn(argv);
	free(bin);

	assert_int_equal(uv_loop_init(&h->loop), 0);
	assert_int_equal(conf_defaults(act_conf_table, act_conf_nkeys,
	    &h->a.conf), 0);
	set_str(&h->a.conf.host_id, "h1");
	h->a.conf.driver = HV_TYPE_SIM;
	set_str(&h->a.conf.vm_dir, "%s", h->vmdir);
	set_str(&h->a.conf.proc_root, "%s/proc", h->root);
	set_str(&h->a.conf.sys_root, "%s/sys", h->root);
	h->a.conf.rescan_ms = 100;
	h->a.conf.poll_ms = 100;
	if (conf_fn != NULL)
		conf_fn(&h->a.conf);

	/* mm-sim writes its tree and sockets at once: wait for the KSM
	 * files, which the actuator reads when it starts. */
	{
		char ksm[1100];

		snprintf(ksm, sizeof(ksm), "%s/kernel/mm/ksm/run",
		    h->a.conf.sys_root);
		for (i = 0; i < 500 && access(ksm, F_OK) != 0; i++)
			tu_run_for(&h->loop, 10);
	}
	assert_int_equal(act_start(&h->a, &h->loop), 0);
	h->started = true;
	wc.vm_dir = h->vmdir;
	h->watch = hv_new(&h->loop, &wc);
	assert_non_null(h->watch);
	assert_int_equal(hv_start(h->watch), 0);
	ready_ids = h->idp;
	assert_true(tu_run_until_fn(&h->loop, c_ready, 15000));
	ready_ids = NULL;
}

static bool
c_closed(void)
{
	return cur->a.closed;
}

void
th_stop(struct harness *h)
{
	cur = h;
	assert_true(h->started);
	act_stop(&h->a);
	assert_true(tu_run_until_fn(&h->loop, c_closed, 15000));
	/* The handles' close callbacks, the driver's end. */
	tu_run_for(&h->loop, 200);
	h->started = false;
}

void
th_restart(struct harness *h)
{
	struct actuator_conf c = h->a.conf;

	cur = h;
	assert_false(h->started);
	memset(&h->a, 0, sizeof(h->a));
	h->a.conf = c;
	assert_int_equal(act_start(&h->a, &h->loop), 0);
	h->started = true;
	ready_ids = h->idp;
	assert_true(tu_run_until_fn(&h->loop, c_ready, 15000));
	ready_ids = NULL;
}

void
th_finish(struct harness *h)
{
	cur = h;
	if (h->started) {
		act_stop(&h->a);
		assert_true(tu_run_until_fn(&h->loop, c_closed, 15000));
	}
	hv_close(h->watch, NULL, NULL);
	assert_int_equal(tu_loop_finish(&h->loop), 0);
	conf_free(act_conf_table, act_conf_nkeys, &h->a.conf);
	if (h->sim > 0)
		tu_stop(h->sim, 5000);
	tu_rmtree(h->dir);
	free(h->dir);
	bus_fake_reset();
	cur = NULL;
}

int
th_teardown(void **state)
{
	if (cur != NULL)
		th_finish(cur);
	return 0;
}

/* Deliver a batch of the commands cp to the actuator's queue. */
static enum bus_disposition
send_batch(struct harness *h, const char *host_id, const char *sched,
    uint64_t seq, uint64_t issued_ms, uint64_t expires_ms,
    Mm__V1__Command **cp, size_t n)
{
	Mm__V1__CommandBatch b = MM__V1__COMMAND_BATCH__INIT;
	enum bus_disposition disp;
	struct bus_msg bm;
	uint8_t *buf;

	b.host_id = (char *)(host_id != NULL ? host_id : "h1");
	b.scheduler_id = (char *)(sched != NULL ? sched : "sched-t");
	b.has_seq = b.has_issued_ms = b.has_expires_ms = 1;
	b.seq = seq;
	b.issued_ms = issued_ms;
	b.expires_ms = expires_ms;
	b.n_commands = n;
	b.commands = cp;
	assert_int_equal(msg_to_bus(MSG_COMMAND_BATCH, &b.base,
	    TOPO_EX_COMMANDS, b.host_id, false, &bm, &buf), 0);
	assert_int_equal(bus_fake_deliver(h->a.queue, &bm, &disp), 0);
	free(buf);
	return disp;
}

enum bus_disposition
th_batch(struct harness *h, const char *host_id, const char *sched,
    uint64_t seq, uint64_t issued_ms, uint64_t expires_ms,
    const struct th_cmd *cmds, size_t n)
{
	Mm__V1__Command c[8], *cp[8];
	Mm__V1__SetBalloonTarget sb[8];
	Mm__V1__SetKsm sk[8];

	assert_true(n <= 8);
	for (size_t i = 0; i < n; i++) {
		mm__v1__command__init(&c[i]);
		if (cmds[i].ksm != NULL) {
			mm__v1__set_ksm__init(&sk[i]);
			sk[i].settings = (Mm__V1__KsmSettings *)cmds[i].ksm;
			c[i].kind_case = MM__V1__COMMAND__KIND_KSM;
			c[i].ksm = &sk[i];
		} else {
			mm__v1__set_balloon_target__init(&sb[i]);
			sb[i].vm_id = (char *)cmds[i].vm_id;
			sb[i].has_target_kib = 1;
			sb[i].target_kib = cmds[i].target_kib;
			c[i].kind_case = MM__V1__COMMAND__KIND_BALLOON;
			c[i].balloon = &sb[i];
		}
		cp[i] = &c[i];
	}
	return send_batch(h, host_id, sched, seq, issued_ms, expires_ms, cp,
	    n);
}

enum bus_disposition
th_batch_commands(struct harness *h, uint64_t seq, Mm__V1__Command **cp,
    size_t n)
{
	uint64_t now = tu_wall_ms();

	return send_batch(h, NULL, NULL, seq, now, now + 10000, cp, n);
}


enum bus_disposition
th_batch_now(struct harness *h, uint64_t seq, const struct th_cmd *cmds,
    size_t n)
{
	uint64_t now = tu_wall_ms();

	return th_batch(h, NULL, NULL, seq, now, now + 10000, cmds, n);
}

Mm__V1__Event *
th_event(size_t i)
{
	const struct bus_fake_msg *m = bus_fake_msg(i);
	ProtobufCMessage *ev;

	if (m == NULL || strcmp(m->exchange, TOPO_EX_EVENTS) != 0 ||
	    msg_unpack(MSG_EVENT, m->body, m->len, &ev, NULL, 0) < 0)
		return NULL;
	return (Mm__V1__Event *)ev;
}

/* The index of the RESULT of batch seq from *from on, or false. */
static bool
find_result(uint64_t seq, size_t *from)
{
	for (; *from < bus_fake_count(); (*from)++) {
		Mm__V1__Event *ev = th_event(*from);
		bool hit = ev != NULL &&
		    ev->kind == MM__V1__EVENT_KIND__EVENT_KIND_RESULT &&
		    ev->result != NULL && ev->result->batch_seq == seq;

		msg_free(ev ? &ev->base : NULL);
		if (hit)
			return true;
	}
	return false;
}

Mm__V1__Event *
th_result(struct harness *h, uint64_t seq, size_t from_index, unsigned ms,
    size_t *ret_index)
{
	uint64_t end;

	uv_update_time(&h->loop);
	end = uv_now(&h->loop) + ms;
	while (!find_result(seq, &from_index)) {
		if (uv_now(&h->loop) >= end)
			return NULL;
		tu_run_for(&h->loop, 10);
	}
	if (ret_index != NULL)
		*ret_index = from_index;
	return th_event(from_index);
}

size_t
th_alerts(const char *text)
{
	size_t n = 0;

	for (size_t i = 0; i < bus_fake_count(); i++) {
		Mm__V1__Event *ev = th_event(i);

		n += ev != NULL && ev->kind ==
		    MM__V1__EVENT_KIND__EVENT_KIND_ALERT && ev->reason != NULL &&
		    strstr(ev->reason, text) != NULL;
		msg_free(ev ? &ev->base : NULL);
	}
	return n;
}

uint64_t
th_actual_kib(struct harness *h, const char *vm_id)
{
	struct hv_vm *vm = tu_hv_find(h->watch, vm_id);

	return vm != NULL && vm->balloon_known ? vm->balloon_actual_kib : 0;
}

static const char *wait_id;
static uint64_t wait_kib;

static bool
c_actual(void)
{
	uint64_t kib = th_actual_kib(cur, wait_id);

	return kib + MIB >= wait_kib && kib <= wait_kib + MIB;
}

bool
th_wait_actual(struct harness *h, const char *vm_id, uint64_t kib,
    unsigned ms)
{
	cur = h;
	wait_id = vm_id;
	wait_kib = kib;
	return tu_run_until_fn(&h->loop, c_actual, ms);
}

uint64_t
th_target_kib(struct harness *h, const char *vm_id)
{
	struct hv_vm *vm = h->a.hv ? tu_hv_find(h->a.hv, vm_id) : NULL;

	return vm != NULL && vm->target_known ? vm->balloon_target_kib : 0;
}

uint64_t
th_ksm(struct harness *h, const char *name)
{
	char path[2048];
	unsigned long long v = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/sys/kernel/mm/ksm/%s", h->root,
	    name);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_int_equal(fscanf(f, "%llu", &v), 1);
	fclose(f);
	return v;
}
