/* SPDX-License-Identifier: Apache-2.0 */
/* Real guests under the real daemons: see fleet.h. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet.h"
#include "policy.h"
#include "policymsg.h"
#include "testutil.h"
#include "topology.h"

static void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("fleet: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static enum bus_disposition
delivery_cb(struct bus *bus, const struct bus_delivery *d, void *arg)
{
	struct fleet *f = arg;
	const struct msg_handler table[] = {
		{ MSG_EVENT, f->on_event },
		{ MSG_HOST_REPORT, f->on_report },
	};

	(void)bus;
	if (f->on_event == NULL || f->on_report == NULL) {
		struct msg_handler one = f->on_event != NULL ? table[0] :
		    table[1];

		return msg_dispatch(&one, 1, d, f, NULL, NULL, 0);
	}
	return msg_dispatch(table, 2, d, f, NULL, NULL, 0);
}

static void
state_cb(struct bus *bus, bool up, const char *reason, void *arg)
{
	struct fleet *f = arg;

	(void)bus;
	(void)reason;
	f->up = up;
}

/* Host and scheduler ids go into routing keys: no dots. */
static char *
unique_id(const char *prefix)
{
	char *s = tu_unique(prefix);

	for (char *p = s; *p != '\0'; p++)
		if (*p == '.')
			*p = '-';
	return s;
}

void
fleet_open(struct fleet *f, const char *name)
{
	struct bus_config cfg = {
		.url = tu_broker_url(),
		.app_id = name,
		.state_cb = state_cb,
		.state_arg = f,
	};
	const struct bus_queue_opts q = { .exclusive = true,
	    .auto_delete = true };
	static const char *const kinds[] = { TOPO_EV_DECISION, TOPO_EV_RESULT,
	    TOPO_EV_ALERT };
	char key[160], *eq, *sq;

	signal(SIGPIPE, SIG_IGN);
	f->host = unique_id("vmh");
	f->sched = unique_id("vms");
	f->dir = tu_tmpdir();
	if (asprintf(&f->vmdir, "%s/vm", f->dir) < 0)
		die("out of memory");
	free(tu_write_file(f->vmdir, ".keep", ""));
	uv_loop_init(&f->loop);
	f->bus = bus_new(&f->loop, &cfg);
	if (f->bus == NULL)
		die("bus_new: %s", tu_broker_url());
	topo_declare_stats_queue(f->bus, "host.#");
	topo_declare_events_exchange(f->bus);
	topo_declare_policy_exchange(f->bus);
	topo_declare_actuator_queue(f->bus, f->host);
	if (f->on_event != NULL) {
		eq = tu_unique("mm.test.fleet.events");
		bus_declare_queue(f->bus, eq, &q);
		for (size_t i = 0; i < 3; i++) {
			topo_event_key(key, sizeof(key), kinds[i], f->host);
			bus_bind(f->bus, eq, TOPO_EX_EVENTS, key);
		}
		bus_consume(f->bus, eq, false, delivery_cb, f);
		free(eq);
	}
	if (f->on_report != NULL) {
		sq = tu_unique("mm.test.fleet.stats");
		bus_declare_queue(f->bus, sq, &q);
		snprintf(key, sizeof(key), "host.%s", f->host);
		bus_bind(f->bus, sq, TOPO_EX_STATS, key);
		bus_consume(f->bus, sq, false, delivery_cb, f);
		free(sq);
	}
	if (bus_start(f->bus) < 0 || !tu_run_until(&f->loop, &f->up, 15000))
		die("no broker at %s", tu_broker_url());
}

/* Start $MM_BINARY_DIR/bin/<name> -d with conf_text as its config. */
static int
start_daemon(struct fleet *f, const char *name, const char *conf_text)
{
	char file[64], *conf, *bin;
	int pid;

	snprintf(file, sizeof(file), "%s.conf", name);
	conf = tu_write_file(f->dir, file, conf_text);
	bin = tu_bin_path(name);
	{
		char *argv[] = { bin, "-d", "-c", conf, NULL };

		pid = tu_spawn(argv);
	}
	free(bin);
	free(conf);
	if (pid <= 0)
		die("cannot start %s", name);
	return pid;
}

void
fleet_start_scheduler(struct fleet *f, uint64_t host_reserve_kib,
    const struct fleet_param *params, size_t n)
{
	char text[1024], pq[128];

	snprintf(text, sizeof(text), "[scheduler]\nid = %s\n"
	    "state_file = %s/policy\n[bus]\nurl = %s\n", f->sched, f->dir,
	    tu_broker_url());
	f->sch = start_daemon(f, "mm-scheduler", text);
	/* Its queue is declared here too, so the policy waits for it. */
	if (topo_declare_policy_queue(f->bus, f->sched, pq, sizeof(pq)) < 0)
		die("policy queue");
	fleet_policy(f, 1, host_reserve_kib, params, n);
}

void
fleet_policy(struct fleet *f, uint64_t version, uint64_t host_reserve_kib,
    const struct fleet_param *params, size_t n)
{
	Mm__V1__Policy pol = MM__V1__POLICY__INIT;
	Mm__V1__Param *p = calloc(n + 1, sizeof(*p)), **pp;

	pp = calloc(n + 1, sizeof(*pp));
	if (p == NULL || pp == NULL)
		die("out of memory");
	for (size_t i = 0; i < n; i++) {
		mm__v1__param__init(&p[i]);
		p[i].name = (char *)params[i].name;
		p[i].has_value = true;
		p[i].value = params[i].value;
		pp[i] = &p[i];
	}
	pol.has_version = pol.has_mode = true;
	pol.version = version;
	pol.mode = MM__V1__POLICY_MODE__POLICY_MODE_ENFORCE;
	pol.name = "fleet";
	pol.has_host_reserve_kib = host_reserve_kib > 0;
	pol.host_reserve_kib = host_reserve_kib;
	pol.n_params = n;
	pol.params = pp;
	pol.ksm = f->ksm;
	if (msg_publish(f->bus, MSG_POLICY, (const ProtobufCMessage *)&pol,
	    TOPO_EX_POLICY, "", true, NULL, NULL) < 0)
		die("cannot publish the policy");
	free(p);
	free(pp);
}

void
fleet_start_collector(struct fleet *f, const char *extra)
{
	char text[2048];

	snprintf(text, sizeof(text), "[collector]\nhost_id = %s\n"
	    "driver = kvm\nvm_dir = %s\ninterval = 1s\n"
	    "fast_min_interval = 100ms\nrescan = 200ms\n%s[bus]\nurl = %s\n",
	    f->host, f->vmdir, extra != NULL ? extra : "",
	    tu_broker_url_as("collector", "collector"));
	f->col = start_daemon(f, "mm-collector", text);
}

void
fleet_start_actuator(struct fleet *f, const char *extra)
{
	char text[2048];

	/* KSM and NUMA stay as they are unless extra says otherwise. */
	snprintf(text, sizeof(text), "[actuator]\nhost_id = %s\n"
	    "driver = kvm\nvm_dir = %s\nrescan = 200ms\npoll = 500ms\n"
	    "release_on_stop = yes\nrelease_timeout = 10s\n%s"
	    "[bus]\nurl = %s\n", f->host, f->vmdir,
	    extra != NULL ? extra : "ksm = no\nnuma = no\n",
	    tu_broker_url_as("actuator", "actuator"));
	f->act = start_daemon(f, "mm-actuator", text);
}

int
fleet_stop(struct fleet *f, int *pid)
{
	int r = 0;

	(void)f;
	if (*pid > 0)
		r = tu_stop(*pid, 15000);
	*pid = 0;
	return r;
}

struct vm *
fleet_boot(struct fleet *f, const char *id, unsigned mem_mib,
    const char *workload)
{
	struct vm_opts o = {
		.id = id,
		.dir = f->vmdir,
		.mem_mib = mem_mib,
		.workload = workload,
		.interval = "500ms",
		.resend = "1s",
	};

	return vm_start(&o);
}

void
fleet_close(struct fleet *f)
{
	fleet_stop(f, &f->act);
	fleet_stop(f, &f->col);
	fleet_stop(f, &f->sch);
	if (f->bus != NULL)
		bus_close(f->bus, 1000, NULL, NULL);
	f->bus = NULL;
	tu_loop_finish(&f->loop);
	/* MM_TEST_KEEP=1 leaves the consoles and daemon files to read. */
	if (f->dir != NULL && getenv("MM_TEST_KEEP") == NULL)
		tu_rmtree(f->dir);
	else if (f->dir != NULL)
		fprintf(stderr, "fleet: kept %s\n", f->dir);
	free(f->dir);
	free(f->vmdir);
	free(f->host);
	free(f->sched);
	f->dir = f->vmdir = f->host = f->sched = NULL;
}

bool
fleet_used_kib(const Mm__V1__GuestStats *g, uint64_t *ret)
{
	struct pe_guest pg = { 0 };

	/* The same count as the scheduler's. */
	pm_guest_memory(&pg, g);
	if (!pg.has_meminfo || pg.available_kib > pg.total_kib)
		return false;
	*ret = pe_guest_used_kib(&pg);
	return true;
}
