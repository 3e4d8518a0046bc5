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
#include <string.h>

#include <uv.h>

#include "actuator.h"
#include "daemon.h"
#include "log.h"

#define DEFAULT_CONF	"/etc/mm/actuator.conf"

static void
stop_cb(void *arg)
{
	struct actuator *a = arg;

	if (!a->stopping)
		daemon_notify_stopping();
	act_stop(a);
}

int
main(int argc, char **argv)
{
	static struct actuator a;
	struct daemon_opts opts;
	uv_loop_t loop;
	bool release;
	int r;

	release = act_release_arg(&argc, argv);
	daemon_host_conf(argc, argv, "mm-actuator", DEFAULT_CONF,
	    act_conf_table, act_conf_nkeys, &a.conf, &a.conf.host_id,
	    "actuator", &opts);
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
	if (daemon_signals_init(&a.sig, &loop, stop_cb, NULL, &a) < 0)
		fatalx("signals");
	a.sig_on = true;
	daemon_notify_ready("actuating");

	uv_run(&loop, UV_RUN_DEFAULT);
	r = uv_loop_close(&loop);
	if (r < 0)
		log_warnx("loop not closed cleanly: %s", uv_strerror(r));
	conf_free(act_conf_table, act_conf_nkeys, &a.conf);
	return 0;
}
