/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mm-scheduler's main(): options, configuration, its id, signals, and the
 * loop. Everything else is mm_scheduler_lib (scheduler.h), which tests run
 * on their own loop.
 */
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

static void
stop_cb(void *arg)
{
	struct scheduler *s = arg;

	if (s->stopping)
		return;
	daemon_signals_close(&s->sig);
	sched_stop(s);
}

int
main(int argc, char **argv)
{
	static struct scheduler s;
	struct daemon_opts opts;
	uv_loop_t loop;
	int r;

	daemon_parse_args(argc, argv, "mm-scheduler",
	    "/etc/mm/scheduler.conf", &opts);
	if (daemon_load_conf(sched_conf_table, sched_conf_n, &s.conf,
	    &opts) < 0)
		return 1;
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
	r = daemon_signals_init(&s.sig, &loop, stop_cb, NULL, &s);
	if (r < 0)
		fatalx("signals: %s", uv_strerror(r));
	uv_run(&loop, UV_RUN_DEFAULT);
	sched_free(&s);
	r = uv_loop_close(&loop);
	if (r != 0)
		log_warnx("event loop not empty at exit: %s", uv_strerror(r));
	return 0;
}
