/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `mm-actuator --release`: the explicit release, run once (the package's
 * removal runs it after stopping the unit). It starts the hypervisor
 * driver alone on its own loop, waits for the VMs it finds to report their
 * balloon and maximum, applies the release plan (release.c) and prints
 * what it did with each guest. KSM is not touched: the daemon's stop put
 * back the settings it found.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "actuator.h"
#include "daemon_host.h"
#include "hv.h"
#include "log.h"

/* The driver's first scan has connected what it found once no VM has been
 * added for this long. */
#define SETTLE_MS	500

struct oneshot {
	uv_loop_t loop;
	uv_timer_t timer;
	struct hv *hv;
	uint64_t start_ms, last_added_ms, deadline_ms;
	bool over;
};

bool
act_release_arg(int *argc, char **argv)
{
	bool found = false;
	int i, j;

	for (i = j = 1; i < *argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			while (i < *argc)
				argv[j++] = argv[i++];
			break;
		}
		if (strcmp(argv[i], "--release") == 0)
			found = true;
		else
			argv[j++] = argv[i];
	}
	*argc = j;
	argv[j] = NULL;
	return found;
}

static void
event_cb(struct hv *hv, enum hv_event ev, struct hv_vm *vm, void *arg)
{
	struct oneshot *o = arg;

	if (ev == HV_EV_ADDED)
		o->last_added_ms = uv_now(&o->loop);
}

static void
ready_cb(struct hv_vm *vm, void *arg)
{
	bool *all = arg;

	if (!vm->max_known || !vm->balloon_known)
		*all = false;
}

/* Every 50 ms: done once the scan has settled and every VM found has
 * told its balloon and maximum, or at the deadline. */
static void
wait_cb(uv_timer_t *t)
{
	struct oneshot *o = t->data;
	uint64_t now = uv_now(&o->loop);
	bool all = true;

	hv_foreach(o->hv, ready_cb, &all);
	if ((all && now - o->last_added_ms >= SETTLE_MS) ||
	    now >= o->deadline_ms) {
		o->over = true;
		uv_timer_stop(t);
	}
}

static void
applied_cb(struct act_rel_plan *p, void *arg)
{
	struct oneshot *o = arg;

	o->over = true;
}

static void
timeout_cb(uv_timer_t *t)
{
	struct oneshot *o = t->data;

	o->over = true;
}

/* Run the loop until o->over. */
static void
run_until_over(struct oneshot *o)
{
	while (!o->over && uv_run(&o->loop, UV_RUN_ONCE) != 0)
		;
}

int
act_release_oneshot(const struct actuator_conf *c)
{
	struct hv_config hc;
	struct oneshot o = { 0 };
	struct act_rel_plan p = { 0 };
	char line[MSG_TEXT_MAX];
	int r, status = 0;
	size_t i;

	if (uv_loop_init(&o.loop) < 0)
		fatalx("uv_loop_init");
	act_hv_config(c, &hc);
	hc.event_cb = event_cb;
	hc.event_arg = &o;
	o.hv = daemon_hv_start(&o.loop, &hc);
	uv_timer_init(&o.loop, &o.timer);
	o.timer.data = &o;
	o.start_ms = o.last_added_ms = uv_now(&o.loop);
	o.deadline_ms = o.start_ms + (uint64_t)c->release_timeout_ms;
	uv_timer_start(&o.timer, wait_cb, 50, 50);
	run_until_over(&o);

	r = act_release_collect(o.hv, c->proc_root,
	    (uint64_t)c->host_reserve_kib, &p);
	if (r < 0) {
		fprintf(stderr, "mm-actuator: release: host MemAvailable from "
		    "%s/meminfo: %s: nothing released\n", c->proc_root,
		    strerror(-r));
		status = 1;
		goto close;
	}
	o.over = false;
	if (act_release_apply(o.hv, &p, applied_cb, &o) > 0) {
		uv_timer_start(&o.timer, timeout_cb,
		    (uint64_t)c->release_timeout_ms, 0);
		run_until_over(&o);
		p.given_up = true;
	}
	for (i = 0; i < p.n; i++) {
		const struct act_rel_vm *v = &p.vms[i];

		act_release_describe(v, line, sizeof(line));
		printf("%s\n", line);
		if (v->outcome == ACT_REL_UNKNOWN || v->status < 0 ||
		    (v->target_kib > v->current_kib && !v->done))
			status = 1;
	}
	if (p.n == 0) {
		printf("release: no VM found in %s\n", c->driver ==
		    HV_TYPE_XEN ? "xenstore" : c->driver == HV_TYPE_LIBVIRT ?
		    c->libvirt_uri : c->vm_dir);
	} else {
		act_release_summary(&p, line, sizeof(line));
		printf("%s\n", line);
	}
	for (i = 0; i < p.n; i++)
		if (p.vms[i].outcome == ACT_REL_UNKNOWN) {
			printf("release: a VM whose monitor does not answer "
			    "may be held by a running mm-actuator: stop it "
			    "first (a stop keeps the guests as they are)\n");
			break;
		}
close:
	fflush(stdout);
	uv_close((uv_handle_t *)&o.timer, NULL);
	hv_close(o.hv, NULL, NULL);
	uv_run(&o.loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&o.loop) < 0)
		log_warnx("release: loop not closed cleanly");
	act_release_free(&p);
	return status;
}
