/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mm-actuator: one per host. It consumes the host's CommandBatches from
 * mm.actuator.<host-id>, applies them in order through the hypervisor
 * driver (balloons), sysfs (KSM) and migrate_pages(2) (NUMA) within the
 * host's own safety rules, and answers each batch with an ActionResult on
 * mm.events. Alone it keeps guests under pressure alive (fail-safe). A
 * stop leaves the guests' targets in force (a restart resumes with them)
 * and puts KSM's settings back; `--release` grows the guests toward their
 * maximum within the host's free memory, once, and exits. This file is
 * its command line and loop; run.c starts and stops it.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "actuator.h"
#include "bus.h"
#include "daemon.h"
#include "log.h"

#define DEFAULT_CONF	"/etc/mm/actuator.conf"

/* What a reload (SIGHUP) changes in a running actuator: its limits, the
 * fail-safe's, the release. The driver, its sockets, the host id, KSM
 * and NUMA on or off, the schedulers and the broker take a restart. */
static const char *const live_keys[] = {
	DAEMON_LOG_LIVE, "actuator.vm_min", "actuator.used_margin",
	"actuator.stale_after", "actuator.balloon_interval",
	"actuator.op_timeout", "actuator.failsafe_after",
	"actuator.failsafe_interval", "actuator.failsafe_step",
	"actuator.failsafe_psi", "actuator.failsafe_faults",
	"actuator.failsafe_available", "actuator.host_reserve",
	"actuator.release_on_stop", "actuator.release_timeout",
	"actuator.clock_skew", NULL
};

/* systemctl status' line, every STATUS_MS. */
#define STATUS_MS	5000

static struct daemon_opts opts;
static uv_timer_t status_timer;

static void
status_cb(uv_timer_t *t)
{
	struct actuator *a = t->data;
	char line[256];

	snprintf(line, sizeof(line), "host %s: %llu batches (%llu clamped, "
	    "%llu failed), fail-safe %s, broker %s", a->host_id,
	    (unsigned long long)a->batches, (unsigned long long)a->clamped,
	    (unsigned long long)a->failed, a->failsafe_on ? "ON" : "off",
	    a->bus != NULL && bus_is_up(a->bus) ? "up" : "DOWN");
	daemon_notify_status(line);
}

static void
reload_cb(void *arg)
{
	struct actuator *a = arg;

	if (daemon_reload_conf(&opts, act_conf_table, act_conf_nkeys,
	    &a->conf, sizeof(a->conf), live_keys, &a->conf.log_level,
	    "actuating") <= 0)
		return;
	act_apply_limits(a);
}

static void
stop_cb(void *arg)
{
	struct actuator *a = arg;

	if (!a->stopping) {
		daemon_notify_stopping();
		uv_close((uv_handle_t *)&status_timer, NULL);
	}
	act_stop(a);
}

int
main(int argc, char **argv)
{
	static struct actuator a;
	uv_loop_t loop;
	bool release;
	int r;

	release = act_release_arg(&argc, argv);
	daemon_host_conf(argc, argv, "mm-actuator", DEFAULT_CONF,
	    act_conf_table, act_conf_nkeys, &a.conf, &a.conf.host_id,
	    &a.conf.bus, "actuator", act_conf_check, &opts);
	daemon_set_log_level(&opts, a.conf.log_level);
	if (release) {
		r = act_release_oneshot(&a.conf);
		conf_free(act_conf_table, act_conf_nkeys, &a.conf);
		return r;
	}
	/* A VM or broker gone mid-write is an EPIPE error, not a death. */
	signal(SIGPIPE, SIG_IGN);
	if (uv_loop_init(&loop) < 0)
		fatalx("uv_loop_init");
	r = act_start(&a, &loop);
	if (r < 0)
		fatalx("starting: %s", strerror(-r));
	if (daemon_signals_init(&a.sig, &loop, stop_cb, reload_cb, &a) < 0 ||
	    daemon_watchdog_start(&a.sig, &loop) < 0 ||
	    uv_timer_init(&loop, &status_timer) < 0)
		fatalx("signals");
	a.sig_on = true;
	status_timer.data = &a;
	uv_unref((uv_handle_t *)&status_timer);
	/* The first a second after start, then every STATUS_MS. */
	uv_timer_start(&status_timer, status_cb, 1000, STATUS_MS);
	daemon_notify_ready("actuating");

	uv_run(&loop, UV_RUN_DEFAULT);
	r = uv_loop_close(&loop);
	if (r < 0)
		log_warnx("loop not closed cleanly: %s", uv_strerror(r));
	conf_free(act_conf_table, act_conf_nkeys, &a.conf);
	return 0;
}
