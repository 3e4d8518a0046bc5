/* SPDX-License-Identifier: Apache-2.0 */
/* Real guests under the real daemons: see fleet.h. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet.h"
#include "libvirtd.h"
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

int
fleet_vm_index(const struct fleet_record *rec, const char *id)
{
	for (int i = 0; i < rec->n; i++)
		if (id != NULL && strcmp(id, rec->names[i]) == 0)
			return i;
	return -1;
}

static double
metric(const Mm__V1__VmDecision *vd, const char *name)
{
	for (size_t i = 0; i < vd->n_metrics; i++)
		if (strcmp(vd->metrics[i]->name, name) == 0)
			return vd->metrics[i]->value;
	return -1;
}

/* Every VM of a decision event of f's host is one decision. */
static enum bus_disposition
record_event(const ProtobufCMessage *m, const struct bus_delivery *d,
    void *arg)
{
	const Mm__V1__Event *e = (const Mm__V1__Event *)m;
	struct fleet *f = arg;
	struct fleet_record *rec = f->rec;
	struct fleet_decision *x;
	Mm__V1__VmDecision vd;

	(void)d;
	if (e->kind != MM__V1__EVENT_KIND__EVENT_KIND_DECISION ||
	    e->host_id == NULL || strcmp(e->host_id, f->host) != 0)
		return BUS_ACK;
	for (size_t i = 0; msg_event_vm(e, i, &vd); i++) {
		int k = fleet_vm_index(rec, vd.vm_id);

		if (k < 0 || rec->ndec == FLEET_MAXDEC)
			continue;
		x = &rec->dec[rec->ndec++];
		x->vm = k;
		x->rx_ms = uv_now(&f->loop);
		x->target_kib = vd.balloon_target_kib;
		x->batch = e->batch_seq;
		x->used_kib = metric(&vd, "used_kib");
		x->need_kib = metric(&vd, "need_kib");
		x->min_kib = metric(&vd, "min_kib");
		x->max_kib = metric(&vd, "max_kib");
		x->has_reason = vd.reason != NULL && vd.reason[0] != '\0';
		snprintf(x->reason, sizeof(x->reason), "%s",
		    x->has_reason ? vd.reason : "");
	}
	return BUS_ACK;
}

static enum bus_disposition
record_report(const ProtobufCMessage *m, const struct bus_delivery *d,
    void *arg)
{
	const Mm__V1__HostReport *r = (const Mm__V1__HostReport *)m;
	struct fleet *f = arg;
	struct fleet_record *rec = f->rec;

	(void)d;
	for (size_t i = 0; i < r->n_guests; i++) {
		const Mm__V1__GuestStats *g = r->guests[i];
		int k = fleet_vm_index(rec, g->vm_id);
		struct fleet_seen *s;

		if (k < 0)
			continue;
		s = &rec->seen[k];
		s->fresh = !g->stale && g->source ==
		    MM__V1__STATS_SOURCE__STATS_SOURCE_AGENT &&
		    g->meminfo != NULL && g->meminfo->total_kib > 0;
		fleet_used_kib(g, &s->used_kib);
		if (g->has_max_kib)
			s->max_kib = g->max_kib;
		if (!g->has_balloon_actual_kib)
			continue;
		s->actual_kib = g->balloon_actual_kib;
		if (s->min_actual_kib == 0 ||
		    s->actual_kib < s->min_actual_kib)
			s->min_actual_kib = s->actual_kib;
		if (s->actual_kib > s->max_actual_kib)
			s->max_actual_kib = s->actual_kib;
		if (s->actual_kib > rec->max_mib[k] * 1024ULL)
			s->out_of_range = true;
	}
	rec->reports++;
	return BUS_ACK;
}

void
fleet_record(struct fleet *f, struct fleet_record *rec)
{
	if (rec->n < 0 || rec->n > FLEET_MAXVM)
		die("%d guests to record, at most %d", rec->n, FLEET_MAXVM);
	f->rec = rec;
	f->on_event = record_event;
	f->on_report = record_report;
}

bool
fleet_all_fresh(const struct fleet_record *rec)
{
	for (int i = 0; i < rec->n; i++)
		if (!rec->seen[i].fresh)
			return false;
	return true;
}

bool
fleet_all_at_max(const struct fleet_record *rec)
{
	for (int i = 0; i < rec->n; i++)
		if (rec->seen[i].actual_kib != rec->max_mib[i] * 1024ULL)
			return false;
	return true;
}

void
fleet_use_libvirt(struct fleet *f, struct libvirtd *d)
{
	f->lv = d;
}

bool
fleet_require_driver(const char *driver)
{
	if (strcmp(driver, "kvm") == 0)
		vm_require();
	else if (strcmp(driver, "libvirt") == 0 ||
	    strcmp(driver, "both") == 0)
		libvirtd_require();
	else
		return false;
	return true;
}

struct libvirtd *
fleet_libvirtd_start(void)
{
	char *dir = tu_tmpdir();
	struct libvirtd *d = libvirtd_start(dir);

	if (d == NULL)
		tu_rmtree(dir);
	free(dir);
	return d;
}

void
fleet_libvirtd_stop(struct libvirtd *d)
{
	char *dir;

	if (d == NULL)
		return;
	dir = strdup(d->dir);
	libvirtd_stop(d);
	if (dir != NULL)
		tu_rmtree(dir);
	free(dir);
}

const char *
fleet_ratio(char *buf, size_t len, double b, double a)
{
	if (a == 0)
		snprintf(buf, len, "%s", b == 0 ? "=" : "-");
	else
		snprintf(buf, len, "%.2f", b / a);
	return buf;
}

/* The driver lines of the collector's and the actuator's section. */
static char *
driver_lines(const struct fleet *f)
{
	return f->lv != NULL ? vm_asprintf("driver = libvirt\n"
	    "libvirt_uri = %s\n", f->lv->uri) : vm_asprintf("driver = kvm\n"
	    "vm_dir = %s\n", f->vmdir);
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
	pol.n_rules = f->n_rules;
	pol.rules = f->rules;
	if (msg_publish(f->bus, MSG_POLICY, (const ProtobufCMessage *)&pol,
	    TOPO_EX_POLICY, "", true, NULL, NULL) < 0)
		die("cannot publish the policy");
	free(p);
	free(pp);
}

void
fleet_start_collector(struct fleet *f, const char *extra)
{
	char text[2048], *drv = driver_lines(f);

	snprintf(text, sizeof(text), "[collector]\nhost_id = %s\n"
	    "%sinterval = 1s\nfast_min_interval = 100ms\nrescan = 200ms\n"
	    "%s[bus]\nurl = %s\n", f->host, drv, extra != NULL ? extra : "",
	    tu_broker_url_as("collector", "collector"));
	free(drv);
	f->col = start_daemon(f, "mm-collector", text);
}

void
fleet_start_actuator(struct fleet *f, const char *extra)
{
	char text[2048], *drv = driver_lines(f);

	/* KSM and NUMA stay as they are unless extra says otherwise. */
	snprintf(text, sizeof(text), "[actuator]\nhost_id = %s\n"
	    "%srescan = 200ms\npoll = 500ms\n"
	    "release_on_stop = yes\nrelease_timeout = 10s\n%s"
	    "[bus]\nurl = %s\n", f->host, drv,
	    extra != NULL ? extra : "ksm = no\nnuma = no\n",
	    tu_broker_url_as("actuator", "actuator"));
	free(drv);
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

	return fleet_boot_opts(f, &o);
}

struct vm *
fleet_boot_opts(struct fleet *f, const struct vm_opts *o)
{
	struct vm_opts in_dir = *o;
	struct vm **slot = NULL;

	in_dir.dir = f->vmdir;
	for (size_t i = 0; i < FLEET_MAXVM && slot == NULL; i++)
		if (f->vms[i] == NULL)
			slot = &f->vms[i];
	if (slot == NULL) {
		fprintf(stderr, "fleet: vm \"%s\": already %d guests\n",
		    o->id, FLEET_MAXVM);
		return NULL;
	}
	*slot = f->lv != NULL ? libvirtd_boot(f->lv, &in_dir, 0) :
	    vm_start(&in_dir);
	return *slot;
}

void
fleet_stop_vm(struct fleet *f, struct vm *vm)
{
	if (vm == NULL)
		return;
	for (size_t i = 0; i < FLEET_MAXVM; i++)
		if (f->vms[i] == vm)
			f->vms[i] = NULL;
	if (f->lv != NULL)
		libvirtd_destroy(f->lv, vm);
	else
		vm_stop(vm);
}

void
fleet_close(struct fleet *f)
{
	fleet_stop(f, &f->act);
	for (size_t i = 0; i < FLEET_MAXVM; i++)
		fleet_stop_vm(f, f->vms[i]);
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
	f->lv = NULL;
	f->rec = NULL;
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
