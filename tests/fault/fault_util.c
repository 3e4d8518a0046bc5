/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The fault suite's simulated host (fault_util.h): mm-sim, the three
 * daemons with their logs, and the test's view of the whole.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "bus.h"
#include "clock.h"
#include "fault_util.h"
#include "hv.h"
#include "msg.h"
#include "testutil.h"
#include "topology.h"
#include "tu_hv.h"

static enum bus_disposition
event_cb(const ProtobufCMessage *m, const struct bus_delivery *d, void *arg)
{
	const Mm__V1__Event *ev = (const Mm__V1__Event *)m;
	struct fu *f = arg;
	Mm__V1__VmDecision vd;

	switch (ev->kind) {
	case MM__V1__EVENT_KIND__EVENT_KIND_ALERT:
		f->alerts++;
		break;
	case MM__V1__EVENT_KIND__EVENT_KIND_RESULT:
		if (ev->result == NULL)
			break;
		f->results++;
		for (size_t i = 0; i < ev->result->n_results; i++)
			if (ev->result->results[i]->status ==
			    MM__V1__RESULT_STATUS__RESULT_STATUS_FAILED)
				f->failed_results++;
		break;
	case MM__V1__EVENT_KIND__EVENT_KIND_DECISION:
		f->decisions++;
		for (size_t k = 0; msg_event_vm(ev, k, &vd); k++)
			for (int i = 0; i < FU_NVM; i++) {
				struct fu_vm *v = &f->vm[i];

				if (strcmp(vd.vm_id, v->id) != 0 ||
				    vd.balloon_target_kib == 0)
					continue;
				v->decided_kib = vd.balloon_target_kib;
				if (v->decided_kib > v->max_kib ||
				    v->decided_kib < FU_VM_MIN_KIB) {
					f->bad_decisions++;
					snprintf(f->bad_decision,
					    sizeof(f->bad_decision), "vm %s: "
					    "target %llu MiB", v->id,
					    (unsigned long long)
					    v->decided_kib / FU_MIB);
				}
			}
		break;
	default:
		break;
	}
	return BUS_ACK;
}

static enum bus_disposition
report_cb(const ProtobufCMessage *m, const struct bus_delivery *d, void *arg)
{
	struct fu *f = arg;

	f->reports++;
	return BUS_ACK;
}

static const struct msg_handler handlers[] = {
	{ MSG_EVENT, event_cb },
	{ MSG_HOST_REPORT, report_cb },
};

static enum bus_disposition
delivery_cb(struct bus *bus, const struct bus_delivery *d, void *arg)
{
	return msg_dispatch(handlers, 2, d, arg, NULL, NULL, 0);
}

static void
state_cb(struct bus *bus, bool up, const char *reason, void *arg)
{
	struct fu *f = arg;

	f->up = up;
}

uint64_t
fu_balloon_kib(struct fu *f, int vm)
{
	struct hv_vm *v = tu_hv_find(f->hv, f->vm[vm].id);

	return v != NULL && v->balloon_known ? v->balloon_actual_kib : 0;
}

/* Never above the maximum, never below what the guest uses nor vm_min. */
static void
sampler_cb(uv_timer_t *t)
{
	struct fu *f = t->data;

	f->samples++;
	if (f->extra_id[0] != '\0') {
		struct hv_vm *x = tu_hv_find(f->hv, f->extra_id);

		if (x != NULL && x->balloon_known) {
			f->extra_samples++;
			if (x->balloon_actual_kib > f->extra_highest_kib)
				f->extra_highest_kib = x->balloon_actual_kib;
			f->extra_over += x->balloon_actual_kib >
			    f->extra_max_kib;
		}
	}
	for (int i = 0; i < FU_NVM; i++) {
		struct fu_vm *v = &f->vm[i];
		uint64_t kib = fu_balloon_kib(f, i);
		uint64_t floor = v->used_kib > FU_VM_MIN_KIB ? v->used_kib :
		    FU_VM_MIN_KIB;

		if (kib == 0)
			continue;
		if (v->lowest_kib == 0 || kib < v->lowest_kib)
			v->lowest_kib = kib;
		if (kib > v->highest_kib)
			v->highest_kib = kib;
		if (kib > v->max_kib || kib < floor) {
			f->unsafe++;
			snprintf(f->unsafe_what, sizeof(f->unsafe_what),
			    "vm %s at %llu MiB (floor %llu, max %llu)", v->id,
			    (unsigned long long)kib / FU_MIB,
			    (unsigned long long)floor / FU_MIB,
			    (unsigned long long)v->max_kib / FU_MIB);
		}
	}
}

void
fu_run_for(struct fu *f, unsigned ms)
{
	tu_run_for(&f->loop, ms);
}

long
fu_run_until(struct fu *f, bool (*cond)(struct fu *), unsigned timeout_ms)
{
	uint64_t t0 = tu_wall_ms();

	for (;;) {
		if (cond(f))
			return (long)(tu_wall_ms() - t0);
		if (tu_wall_ms() - t0 >= timeout_ms)
			return -1;
		tu_run_for(&f->loop, 20);
	}
}

/* ---- daemons ---- */

void
fu_daemon_start(struct fu *f, struct fu_daemon *d)
{
	pid_t pid;

	(void)f;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char *argv[] = { d->bin, "-c", d->conf, "-d", NULL };
		int fd;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
		    0644);
		if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(127);
		execv(argv[0], argv);
		perror(argv[0]);
		_exit(127);
	}
	d->pid = pid;
}

void
fu_daemon_kill9(struct fu_daemon *d)
{
	assert_true(d->pid > 0);
	kill(d->pid, SIGKILL);
	waitpid(d->pid, NULL, 0);
	d->pid = 0;
}

int
fu_daemon_stop(struct fu_daemon *d)
{
	int st;

	assert_true(d->pid > 0);
	st = tu_stop(d->pid, 10000);
	d->pid = 0;
	return st;
}

bool
fu_daemon_alive(struct fu_daemon *d)
{
	int st;

	if (d->pid <= 0)
		return false;
	if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
		fprintf(stderr, "fault: %s (pid %d) died: %s %d\n", d->name,
		    (int)d->pid, WIFSIGNALED(st) ? "signal" : "status",
		    WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
		d->pid = 0;
		return false;
	}
	return true;
}

unsigned
fu_log_count(const struct fu_daemon *d, const char *needle)
{
	return tu_file_count(d->log, needle);
}

const char *
fu_log_line(const struct fu_daemon *d, const char *needle)
{
	return tu_file_line(d->log, needle);
}

long
fu_wait_log(struct fu *f, const struct fu_daemon *d, const char *needle,
    unsigned after, unsigned timeout_ms)
{
	uint64_t t0 = tu_wall_ms();

	for (;;) {
		if (fu_log_count(d, needle) > after)
			return (long)(tu_wall_ms() - t0);
		if (tu_wall_ms() - t0 >= timeout_ms)
			return -1;
		tu_run_for(&f->loop, 20);
	}
}

/* ---- the host ---- */

static void
daemon_init(struct fu *f, struct fu_daemon *d, const char *name,
    const char *prog, const char *conf)
{
	char *bin = tu_bin_path(prog), *path;

	d->name = name;
	snprintf(d->bin, sizeof(d->bin), "%s", bin);
	free(bin);
	path = tu_write_file(f->dir, name, conf);
	snprintf(d->conf, sizeof(d->conf), "%s", path);
	free(path);
	snprintf(d->log, sizeof(d->log), "%s/%s.log", f->dir, name);
}

void
fu_publish_policy(struct fu *f, uint64_t version, const char *name,
    uint64_t headroom_kib)
{
	Mm__V1__Policy p = MM__V1__POLICY__INIT;
	Mm__V1__VmLimits lim = MM__V1__VM_LIMITS__INIT;
	Mm__V1__Param hold = MM__V1__PARAM__INIT, pool = MM__V1__PARAM__INIT;
	Mm__V1__Param *params[2] = { &hold, &pool };

	p.has_version = p.has_mode = 1;
	p.version = version;
	p.mode = MM__V1__POLICY_MODE__POLICY_MODE_ENFORCE;
	p.name = (char *)name;
	p.algorithm = "pressure";
	hold.name = "hold_ms";
	hold.has_value = 1;
	hold.value = 2000;
	pool.name = "guest_capacity_kib";
	pool.has_value = 1;
	pool.value = 1536 * 1024;
	if (headroom_kib != 0) {
		lim.has_headroom_kib = 1;
		lim.headroom_kib = headroom_kib;
		p.defaults = &lim;
		pool.value = 3 * FU_GIB;
	}
	p.n_params = 2;
	p.params = params;
	assert_int_equal(msg_publish(f->bus, MSG_POLICY, &p.base,
	    TOPO_EX_POLICY, "", true, NULL, NULL), 0);
}

static bool
guests_seen(struct fu *f)
{
	return fu_balloon_kib(f, 0) != 0 && fu_balloon_kib(f, 1) != 0;
}

bool
fu_converged(struct fu *f)
{
	for (int i = 0; i < FU_NVM; i++) {
		struct fu_vm *v = &f->vm[i];
		uint64_t want = v->decided_kib, kib = fu_balloon_kib(f, i);

		if (want == 0 || kib == 0)
			return false;
		if (want < v->used_kib + FU_MARGIN_KIB)
			want = v->used_kib + FU_MARGIN_KIB;
		if (want > v->max_kib)
			want = v->max_kib;
		if ((kib > want ? kib - want : want - kib) > FU_NEAR_KIB)
			return false;
	}
	return true;
}

/* The scheduler shrank db: the loop is closed. */
static bool
db_shrunk(struct fu *f)
{
	return fu_converged(f) && fu_balloon_kib(f, 1) < f->vm[1].max_kib;
}

void
fu_start(struct fu *f, const struct fu_opts *o)
{
	struct bus_queue_opts qo = { .exclusive = true, .auto_delete = true };
	struct bus_config bc = { 0 };
	struct hv_config hc = { 0 };
	char key[160], conf[8192], *tmp, ksm[1200], simlog[1200];
	const char *kinds[] = { TOPO_EV_DECISION, TOPO_EV_RESULT,
	    TOPO_EV_ALERT };
	long ms;

	memset(f, 0, sizeof(*f));
	tmp = tu_tmpdir();
	snprintf(f->dir, sizeof(f->dir), "%s", tmp);
	free(tmp);
	snprintf(f->vmdir, sizeof(f->vmdir), "%s/vm", f->dir);
	snprintf(f->root, sizeof(f->root), "%s/root", f->dir);
	snprintf(f->sys, sizeof(f->sys), "%s/sys", f->dir);
	snprintf(f->state, sizeof(f->state), "%s/scheduler.policy", f->dir);
	snprintf(f->daemon_vmdir, sizeof(f->daemon_vmdir), "%s", f->vmdir);
	/* The actuator's KSM and NUMA: a fixture tree of its own (mm-sim
	 * rewrites the one under its root). */
	free(tu_write_file(f->sys, "kernel/mm/ksm/run", "1\n"));
	free(tu_write_file(f->sys, "kernel/mm/ksm/pages_to_scan", "100\n"));
	free(tu_write_file(f->sys, "kernel/mm/ksm/sleep_millisecs", "20\n"));
	free(tu_write_file(f->sys, "kernel/mm/ksm/merge_across_nodes",
	    "1\n"));
	free(tu_write_file(f->sys, "devices/system/node/node0/cpulist",
	    "0-3\n"));
	f->host_id = tu_unique("fault");
	f->sched_id = tu_unique("fsched");
	for (char *c = f->sched_id; *c; c++)
		if (*c == '.')
			*c = '-';
	f->vm[0] = (struct fu_vm){ .id = "web", .max_kib = 2 * FU_GIB,
	    .used_kib = FU_GIB };
	f->vm[1] = (struct fu_vm){ .id = "db", .max_kib = FU_GIB,
	    .used_kib = 256 * FU_MIB };

	uv_loop_init(&f->loop);
	bc.url = tu_broker_url();
	bc.app_id = "fault";
	bc.state_cb = state_cb;
	bc.state_arg = f;
	bc.reconnect_max_ms = 500;
	f->bus = bus_new(&f->loop, &bc);
	assert_non_null(f->bus);
	f->queue = tu_unique("mm.test.fault");
	assert_int_equal(topo_declare_events_exchange(f->bus), 0);
	assert_int_equal(topo_declare_stats_exchange(f->bus), 0);
	/* Where the tests publish, as mmctl or a scheduler would. */
	assert_int_equal(topo_declare_commands_exchange(f->bus), 0);
	assert_int_equal(topo_declare_control_exchange(f->bus), 0);
	assert_int_equal(topo_declare_policy_exchange(f->bus), 0);
	assert_int_equal(bus_declare_queue(f->bus, f->queue, &qo), 0);
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		topo_event_key(key, sizeof(key), kinds[i], f->host_id);
		assert_int_equal(bus_bind(f->bus, f->queue, TOPO_EX_EVENTS,
		    key), 0);
	}
	snprintf(key, sizeof(key), "host.%s", f->host_id);
	assert_int_equal(bus_bind(f->bus, f->queue, TOPO_EX_STATS, key), 0);
	assert_int_equal(bus_consume(f->bus, f->queue, false, delivery_cb, f),
	    0);
	assert_int_equal(bus_start(f->bus), 0);
	assert_true(tu_run_until(&f->loop, &f->up, 15000));

	if (o != NULL && o->prepare != NULL)
		o->prepare(f);

	{
		char *bin = tu_bin_path("mm-sim");
		char *argv[] = { bin, "-s", f->vmdir, "-r", f->root, "-H",
		    "16G", "-m", "web,2G,static:1G", "-m", "db,1G,idle", NULL,
		    NULL, NULL };

		if (o != NULL && o->extra_vm != NULL) {
			argv[11] = "-m";
			argv[12] = (char *)o->extra_vm;
			snprintf(f->extra_id, sizeof(f->extra_id), "%.*s",
			    (int)strcspn(o->extra_vm, ","), o->extra_vm);
			f->extra_max_kib = o->extra_max_kib;
		}
		pid_t pid;

		snprintf(simlog, sizeof(simlog), "%s/sim.log", f->dir);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			int fd = open(simlog, O_WRONLY | O_CREAT | O_APPEND,
			    0644);

			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
				_exit(127);
			execv(argv[0], argv);
			_exit(127);
		}
		f->sim = pid;
		free(bin);
	}

	snprintf(conf, sizeof(conf), "[collector]\nhost_id = %s\n"
	    "driver = sim\nvm_dir = %s\nproc_root = %s/proc\n"
	    "sys_root = %s/sys\nrescan = 200ms\n[bus]\nurl = %s\n",
	    f->host_id, f->daemon_vmdir, f->root, f->root,
	    tu_broker_url_as("collector", "collector"));
	daemon_init(f, &f->col, "collector", "mm-collector", conf);
	snprintf(ksm, sizeof(ksm), "%s", f->sys);
	snprintf(conf, sizeof(conf), "[actuator]\nhost_id = %s\n"
	    "driver = sim\nvm_dir = %s\nproc_root = %s/proc\n"
	    "sys_root = %s\nrescan = 200ms\npoll = 200ms\nvm_min = 256M\n"
	    "used_margin = 256M\nballoon_interval = 1s\n"
	    "release_on_stop = no\n%s[bus]\nurl = %s\n", f->host_id,
	    f->daemon_vmdir, f->root, ksm,
	    o != NULL && o->act_extra ? o->act_extra : "",
	    tu_broker_url_as("actuator", "actuator"));
	daemon_init(f, &f->act, "actuator", "mm-actuator", conf);
	snprintf(conf, sizeof(conf), "[scheduler]\nid = %s\n"
	    "state_file = %s\n%s[bus]\nurl = %s\n", f->sched_id, f->state,
	    o != NULL && o->sched_extra ? o->sched_extra : "",
	    tu_broker_url_as("scheduler", "scheduler"));
	daemon_init(f, &f->sched, "scheduler", "mm-scheduler", conf);

	fu_daemon_start(f, &f->sched);
	fu_daemon_start(f, &f->act);
	fu_daemon_start(f, &f->col);

	hc.type = HV_TYPE_SIM;
	hc.vm_dir = f->vmdir;
	hc.no_agent = true;
	hc.rescan_ms = 100;
	hc.poll_ms = 100;
	f->hv = hv_new(&f->loop, &hc);
	assert_non_null(f->hv);
	assert_int_equal(hv_start(f->hv), 0);
	if (fu_run_until(f, guests_seen, 15000) < 0)
		fail_msg("mm-sim's guests not seen in 15 s (log %s)", simlog);
	uv_timer_init(&f->loop, &f->sampler);
	f->sampler.data = f;
	uv_timer_start(&f->sampler, sampler_cb, 0, 100);

	/* The scheduler's policy queue exists once it is connected. */
	if (fu_wait_log(f, &f->sched, "connected to the broker at", 0,
	    20000) < 0)
		fail_msg("mm-scheduler not connected in 20 s: %s",
		    fu_log_line(&f->sched, ""));
	f->policy_version = clock_ms(CLOCK_REALTIME);
	fu_publish_policy(f, f->policy_version, "fault", 0);
	ms = fu_run_until(f, db_shrunk, 60000);
	if (ms < 0)
		fail_msg("not converged in 60 s: web at %llu MiB (wanted %llu),"
		    " db at %llu MiB (wanted %llu), %u decisions",
		    (unsigned long long)fu_balloon_kib(f, 0) / FU_MIB,
		    (unsigned long long)f->vm[0].decided_kib / FU_MIB,
		    (unsigned long long)fu_balloon_kib(f, 1) / FU_MIB,
		    (unsigned long long)f->vm[1].decided_kib / FU_MIB,
		    f->decisions);
	fprintf(stderr, "fault: host %s converged %ld ms after the policy: "
	    "web %llu MiB, db %llu MiB\n", f->host_id, ms,
	    (unsigned long long)fu_balloon_kib(f, 0) / FU_MIB,
	    (unsigned long long)fu_balloon_kib(f, 1) / FU_MIB);
}

void
fu_assert_safe(struct fu *f, const char *when)
{
	fprintf(stderr, "fault: %s: %u samples; web %llu..%llu MiB, db "
	    "%llu..%llu MiB; %u unsafe, %u decisions out of limits, %u failed "
	    "commands\n", when, f->samples,
	    (unsigned long long)f->vm[0].lowest_kib / FU_MIB,
	    (unsigned long long)f->vm[0].highest_kib / FU_MIB,
	    (unsigned long long)f->vm[1].lowest_kib / FU_MIB,
	    (unsigned long long)f->vm[1].highest_kib / FU_MIB, f->unsafe,
	    f->bad_decisions, f->failed_results);
	if (f->unsafe > 0)
		fail_msg("%s: %u unsafe samples, last %s", when, f->unsafe,
		    f->unsafe_what);
	if (f->bad_decisions > 0)
		fail_msg("%s: %u targets out of limits, last %s", when,
		    f->bad_decisions, f->bad_decision);
	assert_int_equal(f->failed_results, 0);
}

void
fu_move_balloon(struct fu *f, int vm, uint64_t kib)
{
	assert_int_equal(hv_set_target(f->hv, f->vm[vm].id, kib, NULL, NULL),
	    0);
}

void
fu_kill_all(struct fu *f)
{
	struct fu_daemon *d[] = { &f->col, &f->act, &f->sched };

	for (size_t i = 0; i < 3; i++)
		if (d[i]->pid > 0) {
			kill(d[i]->pid, SIGKILL);
			waitpid(d[i]->pid, NULL, 0);
			d[i]->pid = 0;
		}
	if (f->sim > 0) {
		kill(f->sim, SIGKILL);
		waitpid(f->sim, NULL, 0);
		f->sim = 0;
	}
}

void
fu_stop_all(struct fu *f)
{
	struct fu_daemon *d[] = { &f->sched, &f->col, &f->act };

	for (size_t i = 0; i < 3; i++)
		if (d[i]->pid > 0) {
			int st = fu_daemon_stop(d[i]);

			if (st != 0)
				fail_msg("%s exited with %d; log %s",
				    d[i]->name, st, d[i]->log);
		}
	assert_int_equal(tu_stop(f->sim, 5000), 0);
	f->sim = 0;
	uv_close((uv_handle_t *)&f->sampler, NULL);
	hv_close(f->hv, NULL, NULL);
	bus_close(f->bus, 0, NULL, NULL);
	assert_int_equal(tu_loop_finish(&f->loop), 0);
}

void
fu_cleanup(struct fu *f)
{
	if (getenv("MM_FAULT_KEEP") == NULL)
		tu_rmtree(f->dir);
	else
		fprintf(stderr, "fault: kept %s\n", f->dir);
	free(f->host_id);
	free(f->sched_id);
	free(f->queue);
	f->host_id = f->sched_id = f->queue = NULL;
}

void
fu_finish(struct fu *f)
{
	fu_stop_all(f);
	fu_cleanup(f);
}

/* ---- the broker ---- */

void
fu_broker_ctl(const char *verb)
{
	char cmd[1200];

	snprintf(cmd, sizeof(cmd), "%s %s >/dev/null", tu_broker_ctl(), verb);
	assert_int_equal(system(cmd), 0);
}

pid_t
fu_broker_start_async(void)
{
	const char *ctl = tu_broker_ctl();
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);

		if (fd >= 0)
			dup2(fd, 1);
		execl(ctl, ctl, "start", (char *)NULL);
		_exit(127);
	}
	return pid;
}

void
fu_publish_garbage(struct fu *f, const char *exchange, const char *key,
    const char *type, const char *message_id)
{
	static const uint8_t garbage[] = { 0xff, 0xff, 0xff, 0xff, 0x0f,
	    0x42, 0x13, 0x37 };
	struct bus_msg m = {
		.exchange = exchange,
		.routing_key = key,
		.body = garbage,
		.len = sizeof(garbage),
		.content_type = MSG_CONTENT_TYPE,
		.type = type,
		.message_id = message_id,
		.persistent = true,
	};

	assert_int_equal(bus_publish(f->bus, &m, NULL, NULL), 0);
}

struct dead_search {
	struct fu_dead *want;
	size_t n, found;
};

static enum bus_disposition
dead_cb(struct bus *bus, const struct bus_delivery *d, void *arg)
{
	struct dead_search *s = arg;

	for (size_t i = 0; i < s->n; i++) {
		struct fu_dead *w = &s->want[i];

		if (w->found || d->message_id == NULL ||
		    strcmp(d->message_id, w->message_id) != 0)
			continue;
		w->found = true;
		snprintf(w->type, sizeof(w->type), "%s",
		    d->type != NULL ? d->type : "");
		s->found++;
	}
	return BUS_ACK;
}

static void
dead_state_cb(struct bus *bus, bool up, const char *reason, void *arg)
{
	*(bool *)arg = up;
}

static bool
dead_all_found(struct dead_search *s)
{
	return s->found == s->n;
}

void
fu_find_dead(struct fu_dead *want, size_t n, unsigned timeout_ms)
{
	uv_loop_t loop;
	struct bus *bus;
	struct bus_config bc = { 0 };
	struct dead_search s = { .want = want, .n = n };
	bool up = false;
	uint64_t t0 = tu_wall_ms();

	uv_loop_init(&loop);
	bc.url = tu_broker_url();
	bc.app_id = "fault-dead";
	bc.state_cb = dead_state_cb;
	bc.state_arg = &up;
	bus = bus_new(&loop, &bc);
	assert_non_null(bus);
	assert_int_equal(topo_declare_dead(bus), 0);
	assert_int_equal(bus_consume(bus, TOPO_Q_DEAD, false, dead_cb, &s), 0);
	assert_int_equal(bus_start(bus), 0);
	while (!dead_all_found(&s) && tu_wall_ms() - t0 < timeout_ms)
		tu_run_for(&loop, 50);
	bus_close(bus, 0, NULL, NULL);
	assert_int_equal(tu_loop_finish(&loop), 0);
}
