/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mm-scheduler's main(): options, configuration, its id, signals, and the
 * loop. Everything else is mm_scheduler_lib (scheduler.h), which tests run
 * on their own loop.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "scheduler.h"
#include "topology.h"

/* "sched-<hostname>", with anything an id may not hold made a '-'. */
static void
default_id(char *buf, size_t size, const char *hostname)
{
	snprintf(buf, size, "sched-%.50s", hostname);
	for (char *c = buf; *c != '\0'; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		    (*c >= '0' && *c <= '9') || *c == '_' || *c == '-'))
			*c = '-';
}

/* What a reload (SIGHUP) changes in a running scheduler; its id, state
 * file, sharding and the broker take a restart. */
static const char *const live_keys[] = {
	DAEMON_LOG_LIVE, "scheduler.command_ttl", "scheduler.heartbeat",
	"scheduler.mode", "scheduler.resend", "scheduler.clock_skew",
	"scheduler.max_hosts", "scheduler.host_forget", NULL
};

/* systemctl status' line, every STATUS_MS. */
#define STATUS_MS	5000

static struct daemon_opts opts;
static uv_timer_t status_timer;

static void
status_cb(uv_timer_t *t)
{
	struct scheduler *s = t->data;
	char line[256];

	snprintf(line, sizeof(line), "%s: %zu hosts, %" PRIu64 " reports, "
	    "%" PRIu64 " batches, %" PRIu64 " results, policy v%" PRIu64
	    ", broker %s", s->id, s->nhosts, s->n.reports, s->n.batches,
	    s->n.results, (uint64_t)s->policy.version,
	    bus_is_up(s->bus) ? "up" : "DOWN");
	daemon_notify_status(line);
}

static void
reload_cb(void *arg)
{
	struct scheduler *s = arg;

	daemon_reload_conf(&opts, sched_conf_table, sched_conf_n, &s->conf,
	    sizeof(s->conf), live_keys, &s->conf.log_level, "reloaded");
}

static void
stop_cb(void *arg)
{
	struct scheduler *s = arg;

	if (s->stopping)
		return;
	daemon_signals_close(&s->sig);
	uv_close((uv_handle_t *)&status_timer, NULL);
	sched_stop(s);
}

int
main(int argc, char **argv)
{
	static struct scheduler s;
	struct daemon_opts load;
	uv_loop_t loop;
	int r;

	daemon_parse_args(argc, argv, "mm-scheduler",
	    "/etc/mm/scheduler.conf", &opts);
	load = opts;
	load.check_only = false;	/* -n waits for the [bus] checks */
	if (daemon_load_conf(sched_conf_table, sched_conf_n, &s.conf,
	    &load) < 0)
		return 1;
	bus_conf_daemon_check(&s.conf.bus, &opts);
	daemon_check_done(&opts, sched_conf_table, sched_conf_n, &s.conf);
	daemon_set_log_level(&opts, s.conf.log_level);
	if (s.conf.id != NULL) {
		snprintf(s.id, sizeof(s.id), "%s", s.conf.id);
	} else {
		char hn[64] = "local";

		gethostname(hn, sizeof(hn) - 1);
		default_id(s.id, sizeof(s.id), hn);
	}
	if (!topo_id_valid(s.id))
		fatalx("scheduler id \"%s\" is not valid: 1..64 of "
		    "[A-Za-z0-9_.-]", s.id);
	if (uv_loop_init(&loop) != 0)
		fatalx("cannot create the event loop");
	r = sched_start(&s, &loop);
	if (r < 0)
		fatalx("bus: %s", strerror(-r));
	r = daemon_signals_init(&s.sig, &loop, stop_cb, reload_cb, &s);
	if (r == 0)
		r = daemon_watchdog_start(&s.sig, &loop);
	if (r == 0)
		r = uv_timer_init(&loop, &status_timer);
	if (r < 0)
		fatalx("signals: %s", uv_strerror(r));
	status_timer.data = &s;
	uv_unref((uv_handle_t *)&status_timer);
	/* The first a second after start, then every STATUS_MS. */
	uv_timer_start(&status_timer, status_cb, 1000, STATUS_MS);
	uv_run(&loop, UV_RUN_DEFAULT);
	sched_free(&s);
	r = uv_loop_close(&loop);
	if (r != 0)
		log_warnx("event loop not empty at exit: %s", uv_strerror(r));
	return 0;
}
