/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The libvirt driver: the VMs are the active domains of one libvirt
 * connection (uri), a VM's id is its domain name. One listing at connect,
 * then lifecycle and balloon-change events; every poll_ms the balloon and
 * the virtio balloon's statistics (virDomainMemoryStats, with a stats period
 * set live once per VM), which make the guest sample when the agent is
 * silent; targets with virDomainSetMemoryFlags(LIVE), never the persistent
 * definition. The guest agent is read (unless no_agent) on the domain's
 * <channel type='unix'> whose virtio target is named org.mm.agent.0, at the
 * path of its <source> in the live XML; reclaim requests go to the one named
 * org.mm.control.0 the same way (hv_reclaim(), written by the caller's
 * thread, not libvirt's).
 *
 * Threads: libvirt's default event loop runs in a thread of ours; its
 * callbacks queue what they saw under a mutex and wake the libuv loop with
 * a uv_async_t. Every other libvirt call, which may block on libvirtd,
 * runs on libuv's thread pool (a struct lv_work), with its own reference to
 * the connection; the loop never calls libvirt but for references. A
 * caller's request unanswered after op_timeout_ms is answered -ETIMEDOUT
 * and its late result ignored; keepalive makes calls on a dead libvirtd
 * fail. When the connection goes (close callback, or a call failing on
 * it), the VMs are kept and the driver reconnects every rescan_ms, with
 * backoff, then lists again: what is gone is REMOVED, what is new ADDED.
 * Calls on a connection run one at a time. hv_close() completes without
 * waiting for a call still blocked (a connect to a hung libvirtd, which
 * keepalive does not cover yet): the driver's state outlives hv until it
 * returns.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "hv/hv_impl.h"
#include "log.h"

#define AGENT_PORT	"org.mm.agent.0"
#define CONTROL_PORT	"org.mm.control.0"
#define KEEPALIVE_S	5
#define KEEPALIVE_COUNT	3
#define BACKOFF_MAX_MS	30000
#define DEADLINE_TICK	100
#define PATH_MAX_SUN	108	/* sun_path */
#define ERRMSG_MAX	256

/* What libvirt's event thread saw. */
struct lv_ev {
	struct lv_ev *next;
	enum { EV_STARTED, EV_STOPPED, EV_BALLOON, EV_CLOSED } type;
	char name[MSG_ID_MAX + 1];
	uint64_t actual_kib;
	const void *conn;	/* EV_CLOSED: which connection (not used) */
};

struct lv_vm {
	struct hv_vm pub;	/* first: hv's registry holds &pub */
	struct lv *lv;
	int refs;		/* registry, works, agent handle */
	bool dead;
	bool announced;		/* ADDED sent */
	bool seen;		/* in the current listing */
	bool stats_inflight;
	int64_t stats_last_update;
	char agent_path[PATH_MAX_SUN];
	char control_path[PATH_MAX_SUN];	/* "" without the channel */
	struct hv_agent agent;
};

struct lv {
	struct hv *hv;		/* NULL once closed (works may outlive it) */
	uv_loop_t *loop;
	char *uri;
	bool no_agent;
	unsigned poll_ms;
	int refs;		/* handles, VMs, works: freed at 0 */
	int handles;		/* open: hv_closed() at 0 */
	bool closing;
	virConnectPtr conn;	/* NULL while not connected */
	uint64_t gen;		/* of conn: one more per connection */
	int cb_life, cb_balloon;
	bool connecting;
	bool lost_logged;
	unsigned backoff_ms;
	uv_timer_t reconnect, poll, deadline;
	uv_async_t async;
	struct lv_work *pending;	/* callers' requests, oldest first */
	/* Calls on conn run one at a time (a hung libvirtd holds one thread
	 * of the pool, and libvirt's client has crashed with several
	 * callers waiting when keepalive closed it): the one running, and
	 * those waiting their turn. */
	struct lv_work *busy;
	struct lv_work *q_head, **q_tail;

	pthread_mutex_t mu;	/* the rest, with the event thread */
	struct lv_ev *evq, **evtail;
	bool async_live;
	pthread_t thread;
	bool thread_started;
	int stop;		/* __atomic: the event thread ends */
};

enum lv_op { OP_CONNECT, OP_PROBE, OP_STATS, OP_SET, OP_REFRESH, OP_DROP,
	OP_STOP };

/* A domain's limits and channel, from the API and its live XML. */
struct lv_info {
	char name[MSG_ID_MAX + 1];
	uint64_t max_kib;
	bool has_cur;
	uint64_t cur_kib;
	bool has_balloon, doo, fpr;
	unsigned numa;
	char agent_path[PATH_MAX_SUN];
	char control_path[PATH_MAX_SUN];
	pid_t pid;
};

struct lv_work {
	uv_work_t req;
	struct lv *lv;
	struct lv_vm *vm;	/* a reference, or NULL */
	enum lv_op op;
	virConnectPtr conn;	/* a reference, or NULL */
	uint64_t gen;		/* lv->gen of conn */
	char name[MSG_ID_MAX + 1];
	uint64_t target_kib;
	int period_s;		/* set the stats period (connect, probe) */
	bool no_agent;
	char uri[1024];
	int err;		/* 0 or -errno; -ENOTCONN: connection lost */
	char errmsg[ERRMSG_MAX];
	/* OP_CONNECT */
	int cb_life, cb_balloon;
	bool unregister;	/* OP_DROP: the close callback too */
	struct lv_info *infos;
	size_t ninfos;
	/* OP_PROBE, OP_REFRESH */
	struct lv_info info;
	/* OP_STATS, OP_REFRESH */
	bool has_actual;
	uint64_t actual_kib;
	bool has_stats;
	struct hv_balloon_stats bs;
	/* a caller's request */
	hv_done_cb cb;
	void *arg;
	bool answered;
	uint64_t deadline_ms;
	struct lv_work *next;		/* in pending */
	struct lv_work *q_next;		/* in the queue of conn's calls */
};

static void vm_unref(struct lv_vm *v);
static void lv_unref(struct lv *lv);
static void conn_lost(struct lv *lv, uint64_t gen, const char *why);

/* ---- off the loop: libvirt calls ---- */

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_status;

static void
quiet_error(void *arg, virErrorPtr e)
{
	/* Errors are read with virGetLastError() and logged on the loop. */
}

static void
lv_init_once(void)
{
	virSetErrorFunc(NULL, quiet_error);
	if (virInitialize() < 0 || virEventRegisterDefaultImpl() < 0)
		init_status = -EIO;
}

/* The last libvirt error of this thread as -errno; -ENOTCONN when the
 * connection is gone, -ENOENT when the domain is. */
static int
vir_errno(struct lv_work *w, virConnectPtr c, virDomainPtr d)
{
	virErrorPtr e = virGetLastError();
	int code = e != NULL ? e->code : VIR_ERR_INTERNAL_ERROR;

	snprintf(w->errmsg, sizeof(w->errmsg), "%s",
	    e != NULL && e->message != NULL ? e->message : "unknown error");
	switch (code) {
	case VIR_ERR_NO_DOMAIN:
		return -ENOENT;
	case VIR_ERR_NO_CONNECT:
	case VIR_ERR_INVALID_CONN:
	case VIR_ERR_RPC:
		return -ENOTCONN;
	default:
		break;
	}
	if (c != NULL && virConnectIsAlive(c) == 0)
		return -ENOTCONN;
	/* "domain is not running": it went away. */
	if (code == VIR_ERR_OPERATION_INVALID && d != NULL &&
	    virDomainIsActive(d) == 0)
		return -ENOENT;
	if (code == VIR_ERR_SYSTEM_ERROR)
		return -ENOTCONN;
	if (code == VIR_ERR_INVALID_ARG)
		return -ERANGE;
	return -EIO;
}

/* The start tag of the first <tag ...> in [p, end), or NULL. */
static const char *
xml_elem(const char *p, const char *end, const char *tag)
{
	size_t n = strlen(tag);

	while (p < end && (p = memchr(p, '<', (size_t)(end - p))) != NULL) {
		p++;
		if ((size_t)(end - p) > n && strncmp(p, tag, n) == 0 &&
		    (p[n] == ' ' || p[n] == '>' || p[n] == '/' ||
		    p[n] == '\n'))
			return p - 1;
	}
	return NULL;
}

/* The value of attribute name of the start tag at p, entities decoded;
 * false when absent or longer than size - 1. */
static bool
xml_attr(const char *p, const char *name, char *out, size_t size)
{
	const char *gt = strchr(p, '>'), *q, *v;
	size_t n = strlen(name), o = 0;
	char quote;

	if (gt == NULL)
		return false;
	for (q = p; (q = strstr(q, name)) != NULL && q < gt; q += n) {
		if (!isspace((unsigned char)q[-1]) || q[n] != '=' ||
		    (q[n + 1] != '\'' && q[n + 1] != '"'))
			continue;
		quote = q[n + 1];
		for (v = q + n + 2; *v != quote && *v != '\0'; v++) {
			char c = *v;

			if (c == '&') {
				static const struct { const char *e; char c; }
				    ents[] = { { "&apos;", '\'' },
				    { "&quot;", '"' }, { "&amp;", '&' },
				    { "&lt;", '<' }, { "&gt;", '>' } };
				size_t i;

				for (i = 0; i < 5 && strncmp(v, ents[i].e,
				    strlen(ents[i].e)) != 0; i++)
					;
				if (i == 5)
					return false;
				c = ents[i].c;
				v += strlen(ents[i].e) - 1;
			}
			if (o + 1 >= size)
				return false;
			out[o++] = c;
		}
		out[o] = '\0';
		return *v == quote;
	}
	return false;
}

static bool
xml_attr_is(const char *p, const char *name, const char *value)
{
	char buf[64];

	return xml_attr(p, name, buf, sizeof(buf)) && strcmp(buf, value) == 0;
}

/* Memballoon, NUMA cells and the agent's channel from the live XML. */
static void
parse_xml(const char *xml, struct lv_info *i)
{
	const char *end = xml + strlen(xml), *e, *blk, *cpu_end, *t, *s;

	e = xml_elem(xml, end, "memballoon");
	i->has_balloon = e != NULL && !xml_attr_is(e, "model", "none");
	i->doo = e != NULL && xml_attr_is(e, "autodeflate", "on");
	i->fpr = e != NULL && xml_attr_is(e, "freePageReporting", "on");
	i->numa = 0;
	if ((e = xml_elem(xml, end, "cpu")) != NULL &&
	    (cpu_end = strstr(e, "</cpu>")) != NULL &&
	    (e = xml_elem(e, cpu_end, "numa")) != NULL)
		for (e++; (e = xml_elem(e, cpu_end, "cell")) != NULL; e++)
			i->numa++;
	i->agent_path[0] = i->control_path[0] = '\0';
	for (e = xml; (e = xml_elem(e, end, "channel")) != NULL; e = blk) {
		char *path;

		blk = strstr(e, "</channel>");
		if (blk == NULL)
			break;
		if (!xml_attr_is(e, "type", "unix"))
			continue;
		t = xml_elem(e, blk, "target");
		s = xml_elem(e, blk, "source");
		if (t == NULL || s == NULL || !xml_attr_is(t, "type", "virtio"))
			continue;
		if (xml_attr_is(t, "name", AGENT_PORT))
			path = i->agent_path;
		else if (xml_attr_is(t, "name", CONTROL_PORT))
			path = i->control_path;
		else
			continue;
		if (path[0] == '\0' && !xml_attr(s, "path", path,
		    sizeof(i->agent_path)))
			path[0] = '\0';
	}
}

static pid_t
read_pid(const char *path)
{
	char buf[32];
	ssize_t n;
	long pid;
	int f;

	f = open(path, O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return 0;
	n = read(f, buf, sizeof(buf) - 1);
	close(f);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	pid = strtol(buf, NULL, 10);
	return pid > 0 && pid < (1l << 22) ? (pid_t)pid : 0;
}

/* True when pid's command line has "-name guest=<name>[,...]" (or
 * "-name <name>"), as libvirt starts QEMU. */
static bool
pid_is_guest(pid_t pid, const char *name)
{
	char path[64], buf[8192], want[MSG_ID_MAX + 8];
	size_t wl;
	ssize_t n;
	char *p, *end;
	int f;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	f = open(path, O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return false;
	n = read(f, buf, sizeof(buf) - 1);
	close(f);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	end = buf + n;
	wl = (size_t)snprintf(want, sizeof(want), "guest=%s", name);
	for (p = buf; p < end; p += strlen(p) + 1) {
		char *a = p + strlen(p) + 1;

		if (strcmp(p, "-name") != 0 || a >= end)
			continue;
		if (strcmp(a, name) == 0 || (strncmp(a, want, wl) == 0 &&
		    (a[wl] == '\0' || a[wl] == ',')))
			return true;
	}
	return false;
}

/*
 * The QEMU pid of domain name: libvirt's pid file for qemu:///system
 * (/run/libvirt/qemu/<name>.pid) or qemu:///session
 * ($XDG_RUNTIME_DIR/libvirt/qemu/run/<name>.pid), checked against the
 * process's -name; else the process whose -name is the domain's (a libvirtd
 * with its own run directory). 0 for a remote URI or when not found.
 */
static pid_t
find_pid(const char *uri, const char *name)
{
	char path[4096];
	const char *rt, *p = strstr(uri, "://");
	struct dirent *de;
	char *e;
	pid_t pid = 0;
	DIR *d;

	if (p == NULL || p[3] != '/')
		return 0;	/* remote (or not a URI we know) */
	if (strncmp(uri, "qemu", 4) != 0)
		return 0;
	path[0] = '\0';
	if (strncmp(p + 3, "/system", 7) == 0)
		snprintf(path, sizeof(path), "/run/libvirt/qemu/%s.pid", name);
	else if (strncmp(p + 3, "/session", 8) == 0 &&
	    (rt = getenv("XDG_RUNTIME_DIR")) != NULL)
		snprintf(path, sizeof(path), "%s/libvirt/qemu/run/%s.pid",
		    rt, name);
	if (path[0] != '\0' && (pid = read_pid(path)) > 0 &&
	    pid_is_guest(pid, name))
		return pid;
	d = opendir("/proc");
	if (d == NULL)
		return 0;
	pid = 0;
	while (pid == 0 && (de = readdir(d)) != NULL) {
		long n = strtol(de->d_name, &e, 10);

		if (n > 0 && *e == '\0' && pid_is_guest((pid_t)n, name))
			pid = (pid_t)n;
	}
	closedir(d);
	return pid;
}

/* Limits, balloon and XML of d; 0 or -errno. */
static int
dom_info(struct lv_work *w, virConnectPtr c, virDomainPtr d,
    struct lv_info *i)
{
	virDomainInfo di;
	unsigned long max;
	char *xml;

	snprintf(i->name, sizeof(i->name), "%s", virDomainGetName(d));
	max = virDomainGetMaxMemory(d);
	if (max == 0 || virDomainGetInfo(d, &di) < 0)
		return vir_errno(w, c, d);
	if (di.state == VIR_DOMAIN_SHUTOFF) {
		snprintf(w->errmsg, sizeof(w->errmsg), "shut off");
		return -ENOENT;
	}
	i->max_kib = max;
	i->has_cur = true;
	i->cur_kib = di.memory;
	xml = virDomainGetXMLDesc(d, 0);
	if (xml == NULL)
		return vir_errno(w, c, d);
	parse_xml(xml, i);
	free(xml);
	i->pid = find_pid(w->uri, i->name);
	if (w->period_s > 0 && i->has_balloon)
		(void)virDomainSetMemoryStatsPeriod(d, w->period_s,
		    VIR_DOMAIN_AFFECT_LIVE);
	return 0;
}

static void
read_stats(struct lv_work *w, virDomainPtr d)
{
	virDomainMemoryStatStruct st[VIR_DOMAIN_MEMORY_STAT_NR];
	struct hv_balloon_stats *s = &w->bs;
	int n, i;

	n = virDomainMemoryStats(d, st, VIR_DOMAIN_MEMORY_STAT_NR, 0);
	if (n < 0) {
		w->err = vir_errno(w, w->conn, d);
		return;
	}
	for (i = 0; i < n; i++) {
		uint64_t v = st[i].val;

		switch (st[i].tag) {
		case VIR_DOMAIN_MEMORY_STAT_ACTUAL_BALLOON:
			w->has_actual = true;
			w->actual_kib = v;
			break;
		case VIR_DOMAIN_MEMORY_STAT_AVAILABLE:
			s->has_total_kib = true;
			s->total_kib = v;
			break;
		case VIR_DOMAIN_MEMORY_STAT_UNUSED:
			s->has_free_kib = true;
			s->free_kib = v;
			break;
		case VIR_DOMAIN_MEMORY_STAT_USABLE:
			s->has_available_kib = true;
			s->available_kib = v;
			break;
		case VIR_DOMAIN_MEMORY_STAT_DISK_CACHES:
			s->has_cached_kib = true;
			s->cached_kib = v;
			break;
		case VIR_DOMAIN_MEMORY_STAT_MAJOR_FAULT:
			s->has_major_faults = true;
			s->major_faults = v;
			break;
		case VIR_DOMAIN_MEMORY_STAT_SWAP_IN:	/* KiB */
			s->has_swap_in_pages = true;
			s->swap_in_pages = v / 4;
			break;
		case VIR_DOMAIN_MEMORY_STAT_SWAP_OUT:
			s->has_swap_out_pages = true;
			s->swap_out_pages = v / 4;
			break;
		case VIR_DOMAIN_MEMORY_STAT_LAST_UPDATE:
			s->last_update_s = (int64_t)v;
			break;
		default:
			break;
		}
	}
	w->has_stats = s->has_total_kib || s->has_free_kib ||
	    s->has_available_kib;
}

/* Event callbacks, in the event thread. */
static void
ev_push(struct lv *lv, int type, const char *name, uint64_t actual,
    const void *conn)
{
	struct lv_ev *e;

	if (name != NULL && strlen(name) > MSG_ID_MAX)
		return;
	e = calloc(1, sizeof(*e));
	if (e == NULL)
		return;
	e->type = type;
	if (name != NULL)
		snprintf(e->name, sizeof(e->name), "%s", name);
	e->actual_kib = actual;
	e->conn = conn;
	pthread_mutex_lock(&lv->mu);
	if (!lv->async_live) {
		pthread_mutex_unlock(&lv->mu);
		free(e);
		return;
	}
	*lv->evtail = e;
	lv->evtail = &e->next;
	uv_async_send(&lv->async);
	pthread_mutex_unlock(&lv->mu);
}

static int
life_cb(virConnectPtr c, virDomainPtr d, int event, int detail, void *opaque)
{
	if (event == VIR_DOMAIN_EVENT_STARTED ||
	    event == VIR_DOMAIN_EVENT_RESUMED)
		ev_push(opaque, EV_STARTED, virDomainGetName(d), 0, c);
	else if (event == VIR_DOMAIN_EVENT_STOPPED)
		ev_push(opaque, EV_STOPPED, virDomainGetName(d), 0, c);
	return 0;
}

static void
balloon_cb(virConnectPtr c, virDomainPtr d, unsigned long long actual,
    void *opaque)
{
	ev_push(opaque, EV_BALLOON, virDomainGetName(d), actual, c);
}

static void
close_cb(virConnectPtr c, int reason, void *opaque)
{
	ev_push(opaque, EV_CLOSED, NULL, 0, c);
}

static void
wake_cb(int timer, void *opaque)
{
	virEventRemoveTimeout(timer);
}

static void *
event_thread(void *arg)
{
	struct lv *lv = arg;

	while (!__atomic_load_n(&lv->stop, __ATOMIC_SEQ_CST))
		if (virEventRunDefaultImpl() < 0)
			break;
	return NULL;
}

/* Deregister what w->conn had and drop it. */
static void
drop_conn(struct lv_work *w)
{
	if (w->conn == NULL)
		return;
	if (w->cb_life >= 0)
		virConnectDomainEventDeregisterAny(w->conn, w->cb_life);
	if (w->cb_balloon >= 0)
		virConnectDomainEventDeregisterAny(w->conn, w->cb_balloon);
	if (w->unregister)
		virConnectUnregisterCloseCallback(w->conn, close_cb);
	virConnectClose(w->conn);
	w->conn = NULL;
}

static void
op_connect(struct lv_work *w)
{
	virDomainPtr *doms = NULL;
	virConnectPtr c;
	int n, i, r;

	c = virConnectOpen(w->uri);
	if (c == NULL) {
		w->err = vir_errno(w, NULL, NULL);
		if (w->err == -ENOENT || w->err == -ERANGE)
			w->err = -EIO;
		return;
	}
	w->conn = c;
	/* 1: not supported (a driver without a remote side). */
	(void)virConnectSetKeepAlive(c, KEEPALIVE_S, KEEPALIVE_COUNT);
	(void)virConnectRegisterCloseCallback(c, close_cb, w->lv, NULL);
	w->cb_life = virConnectDomainEventRegisterAny(c, NULL,
	    VIR_DOMAIN_EVENT_ID_LIFECYCLE,
	    VIR_DOMAIN_EVENT_CALLBACK(life_cb), w->lv, NULL);
	w->cb_balloon = virConnectDomainEventRegisterAny(c, NULL,
	    VIR_DOMAIN_EVENT_ID_BALLOON_CHANGE,
	    VIR_DOMAIN_EVENT_CALLBACK(balloon_cb), w->lv, NULL);
	if (w->cb_life < 0) {
		w->err = vir_errno(w, c, NULL);
		goto fail;
	}
	n = virConnectListAllDomains(c, &doms,
	    VIR_CONNECT_LIST_DOMAINS_ACTIVE);
	if (n < 0) {
		w->err = vir_errno(w, c, NULL);
		goto fail;
	}
	w->infos = calloc((size_t)n + 1, sizeof(*w->infos));
	for (i = 0; i < n; i++) {
		const char *name = virDomainGetName(doms[i]);

		if (w->infos != NULL && name != NULL &&
		    hv_id_valid(name, strlen(name))) {
			r = dom_info(w, c, doms[i], &w->infos[w->ninfos]);
			if (r == 0)
				w->ninfos++;
			else if (r == -ENOTCONN)
				w->err = r;
		}
		virDomainFree(doms[i]);
	}
	free(doms);
	if (w->infos == NULL && w->err == 0)
		w->err = -ENOMEM;
	if (w->err == 0)
		return;
fail:
	if (w->err != -ENOTCONN && w->err != -ENOMEM)
		w->err = -EIO;
	w->unregister = true;
	drop_conn(w);
	free(w->infos);
	w->infos = NULL;
	w->ninfos = 0;
}

static void
work_cb(uv_work_t *req)
{
	struct lv_work *w = req->data;
	virDomainPtr d = NULL;

	switch (w->op) {
	case OP_CONNECT:
		op_connect(w);
		return;
	case OP_DROP:
		drop_conn(w);
		return;
	case OP_STOP:
		w->unregister = true;
		drop_conn(w);
		if (w->lv->thread_started) {
			__atomic_store_n(&w->lv->stop, 1, __ATOMIC_SEQ_CST);
			if (virEventAddTimeout(0, wake_cb, NULL, NULL) < 0)
				pthread_cancel(w->lv->thread);
			pthread_join(w->lv->thread, NULL);
		}
		return;
	default:
		break;
	}
	d = virDomainLookupByName(w->conn, w->name);
	if (d == NULL) {
		w->err = vir_errno(w, w->conn, NULL);
		return;
	}
	switch (w->op) {
	case OP_PROBE:
		w->err = dom_info(w, w->conn, d, &w->info);
		break;
	case OP_STATS:
		read_stats(w, d);
		break;
	case OP_SET:
		/* KiB; LIVE only: the persistent definition stays. */
		if (virDomainSetMemoryFlags(d, (unsigned long)w->target_kib,
		    VIR_DOMAIN_AFFECT_LIVE) < 0)
			w->err = vir_errno(w, w->conn, d);
		break;
	case OP_REFRESH:
		w->err = dom_info(w, w->conn, d, &w->info);
		if (w->err == 0) {
			read_stats(w, d);
			w->err = w->err == -ENOTCONN || w->err == -ENOENT ?
			    w->err : 0;
		}
		break;
	default:
		break;
	}
	virDomainFree(d);
}

/* A call on a domain; its connection released here, off the loop (the
 * last reference of a lost connection closes it). */
static void
dom_work_cb(uv_work_t *req)
{
	struct lv_work *w = req->data;

	work_cb(req);
	if (w->op != OP_CONNECT && w->conn != NULL) {
		virConnectClose(w->conn);
		w->conn = NULL;
	}
}

/* ---- on the loop ---- */

static struct lv_work *
work_new(struct lv *lv, enum lv_op op, struct lv_vm *v)
{
	struct lv_work *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return NULL;
	w->req.data = w;
	w->lv = lv;
	w->op = op;
	w->cb_life = w->cb_balloon = -1;
	w->no_agent = lv->no_agent;
	/* The balloon's stats period, set live when a domain is found. */
	if (op == OP_CONNECT || op == OP_PROBE)
		w->period_s = (int)((lv->poll_ms + 999) / 1000);
	snprintf(w->uri, sizeof(w->uri), "%s", lv->uri);
	if (v != NULL) {
		w->vm = v;
		v->refs++;
		snprintf(w->name, sizeof(w->name), "%s", v->pub.id);
	}
	if (lv->conn != NULL && op != OP_CONNECT) {
		w->conn = lv->conn;
		w->gen = lv->gen;
		virConnectRef(w->conn);
	}
	return w;
}

static void after_work_cb(uv_work_t *req, int status);

static bool
serial(const struct lv_work *w)
{
	return w->op == OP_PROBE || w->op == OP_STATS || w->op == OP_SET ||
	    w->op == OP_REFRESH;
}

static int
work_queue(struct lv_work *w)
{
	struct lv *lv = w->lv;

	if (serial(w) && lv->busy != NULL) {
		w->q_next = NULL;
		*lv->q_tail = w;
		lv->q_tail = &w->q_next;
		lv->refs++;
		return 0;
	}
	if (uv_queue_work(lv->loop, &w->req, dom_work_cb, after_work_cb) < 0)
		return -EIO;
	if (serial(w))
		lv->busy = w;
	lv->refs++;
	return 0;
}

/* Complete w without calling libvirt: its connection is gone. */
static void
work_skip(struct lv_work *w, int err)
{
	w->err = err;
	snprintf(w->errmsg, sizeof(w->errmsg), "connection lost");
	if (w->conn != NULL) {
		/* Lost (closed already: no call) or still lv's. */
		virConnectClose(w->conn);
		w->conn = NULL;
	}
	after_work_cb(&w->req, UV_ECANCELED);
}

/* The next call waiting for conn, if any. */
static void
queue_pump(struct lv *lv)
{
	struct lv_work *w;

	while (lv->busy == NULL && (w = lv->q_head) != NULL) {
		lv->q_head = w->q_next;
		if (lv->q_head == NULL)
			lv->q_tail = &lv->q_head;
		if (lv->closing || lv->conn == NULL || w->gen != lv->gen) {
			work_skip(w, lv->closing ? -ECANCELED : -ENOTCONN);
			continue;
		}
		if (uv_queue_work(lv->loop, &w->req, dom_work_cb,
		    after_work_cb) < 0) {
			work_skip(w, -EIO);
			continue;
		}
		lv->busy = w;
	}
}

/* Fail every call waiting for a connection that is gone. */
static void
queue_flush(struct lv *lv, int err)
{
	struct lv_work *w;

	lv->busy = NULL;	/* its call ends on its own */
	while ((w = lv->q_head) != NULL) {
		lv->q_head = w->q_next;
		if (lv->q_head == NULL)
			lv->q_tail = &lv->q_head;
		work_skip(w, err);
	}
}

/* A work that could not be queued. */
static void
work_free(struct lv_work *w)
{
	if (w->conn != NULL)
		virConnectClose(w->conn);	/* not the last reference */
	if (w->vm != NULL)
		vm_unref(w->vm);
	free(w->infos);
	free(w);
}

static void
deadline_cb(uv_timer_t *t)
{
	struct lv *lv = t->data;
	uint64_t now = uv_now(lv->loop);
	struct lv_work *w;

	while ((w = lv->pending) != NULL && w->deadline_ms <= now) {
		lv->pending = w->next;
		w->answered = true;
		if (w->cb != NULL)
			w->cb(lv->hv, -ETIMEDOUT, w->arg);
	}
	if (lv->pending == NULL)
		uv_timer_stop(t);
}

/* Queue a caller's request, answered by after_work_cb or -ETIMEDOUT. */
static int
request(struct lv_work *w, hv_done_cb cb, void *arg)
{
	struct lv *lv = w->lv;
	struct lv_work **tail;
	int r;

	w->cb = cb;
	w->arg = arg;
	w->deadline_ms = uv_now(lv->loop) + lv->hv->cfg.op_timeout_ms;
	r = work_queue(w);
	if (r < 0) {
		work_free(w);
		return r;
	}
	for (tail = &lv->pending; *tail != NULL; tail = &(*tail)->next)
		;
	*tail = w;
	if (!uv_is_active((uv_handle_t *)&lv->deadline))
		uv_timer_start(&lv->deadline, deadline_cb, DEADLINE_TICK,
		    DEADLINE_TICK);
	return 0;
}

static void
answer(struct lv_work *w, int status)
{
	struct lv_work **pp;

	if (w->answered)
		return;
	w->answered = true;
	for (pp = &w->lv->pending; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	}
	if (w->cb != NULL)
		w->cb(w->lv->hv, status, w->arg);
}

static void
vm_agent_closed(struct hv_agent *a)
{
	vm_unref((struct lv_vm *)((char *)a - offsetof(struct lv_vm, agent)));
}

static void
vm_unref(struct lv_vm *v)
{
	struct lv *lv = v->lv;

	if (--v->refs > 0)
		return;
	hv_agent_free(&v->agent);
	free(v);
	lv_unref(lv);
}

/* v is gone: REMOVED if it was announced, then forgotten. */
static void
vm_gone(struct lv_vm *v)
{
	if (v->dead)
		return;
	v->dead = true;
	hv_agent_close(&v->agent);
	if (v->announced)
		hv_emit(v->lv->hv, HV_EV_REMOVED, &v->pub);
	hv_vm_unregister(v->lv->hv, &v->pub);
	vm_unref(v);
}

static struct lv_vm *
vm_new(struct lv *lv, const char *name)
{
	struct lv_vm *v;

	v = calloc(1, sizeof(*v));
	if (v == NULL)
		return NULL;
	v->lv = lv;
	v->refs = 1;
	v->agent.hv = lv->hv;
	v->agent.vm = &v->pub;
	v->agent.closed = vm_agent_closed;
	snprintf(v->pub.id, sizeof(v->pub.id), "%s", name);
	if (hv_vm_register(lv->hv, &v->pub) < 0) {
		free(v);
		return NULL;
	}
	lv->refs++;
	return v;
}

static void
set_balloon(struct lv_vm *v, uint64_t kib)
{
	if (v->pub.balloon_known && v->pub.balloon_actual_kib == kib)
		return;
	v->pub.balloon_known = true;
	v->pub.balloon_actual_kib = kib;
	if (v->announced)
		hv_emit(v->lv->hv, HV_EV_BALLOON, &v->pub);
}

static void
agent_connect(struct lv_vm *v)
{
	if (v->dead || v->lv->hv->cfg.no_agent || v->agent_path[0] == '\0' ||
	    v->agent.state != HV_AGENT_NONE)
		return;
	if (hv_agent_connect(&v->agent, v->agent_path) == 0)
		v->refs++;
}

/* What the API and the XML say of v; ADDED the first time. */
static void
vm_apply(struct lv_vm *v, const struct lv_info *i)
{
	struct hv_vm *p = &v->pub;
	bool changed = !p->max_known || p->max_kib != i->max_kib;

	p->max_known = true;
	p->max_kib = i->max_kib;
	p->doo_known = i->has_balloon;
	p->deflate_on_oom = i->doo;
	p->has_balloon = i->has_balloon;
	p->free_page_reporting = i->fpr;
	p->numa_cells = i->numa;
	p->pid = i->pid;
	if (strcmp(v->agent_path, i->agent_path) != 0) {
		hv_agent_close(&v->agent);
		snprintf(v->agent_path, sizeof(v->agent_path), "%s",
		    i->agent_path);
	}
	snprintf(v->control_path, sizeof(v->control_path), "%s",
	    i->control_path);
	if (!v->announced) {
		p->balloon_known = i->has_cur;
		p->balloon_actual_kib = i->cur_kib;
		v->announced = true;
		v->agent.seen_ms = uv_now(v->lv->hv->loop);
		hv_emit(v->lv->hv, HV_EV_ADDED, p);
		agent_connect(v);
		return;
	}
	if (i->has_cur && (!p->balloon_known ||
	    p->balloon_actual_kib != i->cur_kib)) {
		set_balloon(v, i->cur_kib);
		return;
	}
	if (changed)
		hv_emit(v->lv->hv, HV_EV_BALLOON, p);
}

static void
probe(struct lv *lv, const char *name)
{
	struct lv_vm *v;
	struct lv_work *w;

	if (lv->conn == NULL || hv_vm_find(lv->hv, name) != NULL ||
	    !hv_id_valid(name, strlen(name)))
		return;
	v = vm_new(lv, name);
	if (v == NULL)
		return;
	w = work_new(lv, OP_PROBE, v);
	if (w == NULL) {
		vm_gone(v);
		return;
	}
	if (work_queue(w) < 0) {
		work_free(w);
		vm_gone(v);
	}
}

static void reconnect_cb(uv_timer_t *t);

static void
reconnect_later(struct lv *lv)
{
	if (lv->closing)
		return;
	uv_timer_start(&lv->reconnect, reconnect_cb, lv->backoff_ms, 0);
	lv->backoff_ms = lv->backoff_ms * 2 > BACKOFF_MAX_MS ?
	    BACKOFF_MAX_MS : lv->backoff_ms * 2;
}

static void
drain_events(struct lv *lv)
{
	struct lv_ev *e, *next;
	struct lv_vm *v;

	if (lv->connecting || lv->closing)
		return;
	pthread_mutex_lock(&lv->mu);
	e = lv->evq;
	lv->evq = NULL;
	lv->evtail = &lv->evq;
	pthread_mutex_unlock(&lv->mu);
	for (; e != NULL; e = next) {
		next = e->next;
		v = (struct lv_vm *)hv_vm_find(lv->hv, e->name);
		switch (e->type) {
		case EV_STARTED:
			probe(lv, e->name);
			break;
		case EV_STOPPED:
			if (v != NULL)
				vm_gone(v);
			break;
		case EV_BALLOON:
			if (v != NULL && !v->dead)
				set_balloon(v, e->actual_kib);
			break;
		case EV_CLOSED:
			if (e->conn == lv->conn)
				conn_lost(lv, lv->gen,
				    "libvirtd closed the connection");
			break;
		}
		free(e);
	}
}

static void
async_cb(uv_async_t *a)
{
	drain_events(a->data);
}

static void
connected(struct lv *lv, struct lv_work *w)
{
	struct lv_vm *v;
	size_t i;

	lv->conn = w->conn;
	lv->gen++;
	w->conn = NULL;
	lv->cb_life = w->cb_life;
	lv->cb_balloon = w->cb_balloon;
	lv->backoff_ms = lv->hv->cfg.rescan_ms;
	log_info("libvirt: connected to %s, %zu running domain%s",
	    lv->uri, w->ninfos, w->ninfos == 1 ? "" : "s");
	lv->lost_logged = false;
	for (i = 0; i < lv->hv->nvms; i++)
		((struct lv_vm *)lv->hv->vms[i])->seen = false;
	for (i = 0; i < w->ninfos; i++) {
		v = (struct lv_vm *)hv_vm_find(lv->hv, w->infos[i].name);
		if (v == NULL)
			v = vm_new(lv, w->infos[i].name);
		if (v == NULL)
			continue;
		v->seen = true;
		vm_apply(v, &w->infos[i]);
	}
	for (i = lv->hv->nvms; i-- > 0;) {
		v = (struct lv_vm *)lv->hv->vms[i];
		/* Those being probed are not in this listing. */
		if (!v->seen && v->announced)
			vm_gone(v);
	}
}

/* Release c off the loop, with its callbacks when unregister. */
static void
conn_dropped_work(struct lv *lv, virConnectPtr c, int life, int balloon,
    bool unregister)
{
	struct lv_work *w;

	if (c == NULL)
		return;
	w = work_new(lv, OP_DROP, NULL);
	if (w == NULL) {
		virConnectClose(c);
		return;
	}
	w->conn = c;
	w->cb_life = life;
	w->cb_balloon = balloon;
	w->unregister = unregister;
	if (work_queue(w) < 0) {
		w->conn = NULL;
		work_free(w);
		virConnectClose(c);
	}
}

/* The connection c failed: forget it, keep the VMs, reconnect later. An
 * older connection's failure is no news. */
static void
conn_lost(struct lv *lv, uint64_t gen, const char *why)
{
	if (lv->conn == NULL || gen != lv->gen)
		return;
	log_warnx("libvirt: %s: connection lost (%s), reconnecting",
	    lv->uri, why);
	conn_dropped_work(lv, lv->conn, lv->cb_life, lv->cb_balloon, true);
	lv->conn = NULL;
	lv->backoff_ms = lv->hv->cfg.rescan_ms;
	queue_flush(lv, -ENOTCONN);
	reconnect_later(lv);
}

/* After a call on v failed: gone, lost connection or an error. */
static void
vm_failed(struct lv_vm *v, struct lv_work *w)
{
	if (w->err == -ENOENT)
		vm_gone(v);
	else if (w->err == -ENOTCONN)
		conn_lost(v->lv, w->gen, w->errmsg);
	else
		log_debug("libvirt: domain \"%s\": %s", v->pub.id, w->errmsg);
}

static void
stats_done(struct lv_vm *v, struct lv_work *w)
{
	struct hv *hv = v->lv->hv;
	Mm__V1__GuestStats *g;
	uint64_t now = uv_now(hv->loop);

	v->stats_inflight = false;
	if (w->has_actual)
		set_balloon(v, w->actual_kib);
	/* The agent had its chance since the VM was found or since its
	 * last frame. */
	if (!w->has_stats || w->bs.last_update_s <= 0 ||
	    w->bs.last_update_s == v->stats_last_update ||
	    (!hv->cfg.no_agent &&
	    now - v->agent.seen_ms < hv->cfg.agent_timeout_ms))
		return;
	v->stats_last_update = w->bs.last_update_s;
	g = hv_guest_from_balloon(&w->bs);
	if (g == NULL)
		return;
	hv->stats.qmp_fallbacks++;
	if (hv_vm_set_guest(hv, &v->pub, g) == 0)
		hv_emit(hv, HV_EV_GUEST, &v->pub);
}

static void
after_work_cb(uv_work_t *req, int status)
{
	struct lv_work *w = req->data;
	struct lv *lv = w->lv;
	struct lv_vm *v = w->vm;
	bool live = !lv->closing && (v == NULL || !v->dead);

	if (lv->busy == w)
		lv->busy = NULL;

	switch (w->op) {
	case OP_CONNECT:
		lv->connecting = false;
		if (lv->closing) {
			conn_dropped_work(lv, w->conn, w->cb_life,
			    w->cb_balloon, true);
			w->conn = NULL;
		} else if (w->err < 0) {
			if (!lv->lost_logged)
				log_warnx("libvirt: %s: %s; retrying",
				    lv->uri, w->errmsg);
			lv->lost_logged = true;
			reconnect_later(lv);
		} else {
			connected(lv, w);
		}
		drain_events(lv);
		break;
	case OP_PROBE:
		if (!live)
			break;
		if (w->err < 0) {
			if (w->err != -ENOENT)
				log_debug("libvirt: domain \"%s\": %s",
				    v->pub.id, w->errmsg);
			if (w->err == -ENOTCONN)
				conn_lost(lv, w->gen, w->errmsg);
			/* Found again by the next listing. */
			vm_gone(v);
			break;
		}
		vm_apply(v, &w->info);
		break;
	case OP_STATS:
		if (!live)
			break;
		if (w->err < 0) {
			v->stats_inflight = false;
			vm_failed(v, w);
		} else {
			stats_done(v, w);
		}
		break;
	case OP_SET:
	case OP_REFRESH:
		if (live && w->err == 0 && w->op == OP_REFRESH) {
			vm_apply(v, &w->info);
			if (w->has_actual)
				set_balloon(v, w->actual_kib);
		}
		answer(w, w->err == -ENOTCONN ? -EIO : w->err);
		if (live && w->err < 0)
			vm_failed(v, w);
		break;
	case OP_DROP:
	case OP_STOP:
		break;
	}
	if (w->conn != NULL)	/* OP_CONNECT's, unused */
		conn_dropped_work(lv, w->conn, -1, -1, true);
	w->conn = NULL;
	if (w->vm != NULL)
		vm_unref(w->vm);
	free(w->infos);
	free(w);
	if (status != UV_ECANCELED)
		queue_pump(lv);
	lv_unref(lv);
}

static void
reconnect_cb(uv_timer_t *t)
{
	struct lv *lv = t->data;
	struct lv_work *w;

	if (lv->closing || lv->connecting || lv->conn != NULL)
		return;
	w = work_new(lv, OP_CONNECT, NULL);
	if (w == NULL || work_queue(w) < 0) {
		if (w != NULL)
			work_free(w);
		reconnect_later(lv);
		return;
	}
	lv->connecting = true;
}

static void
poll_cb(uv_timer_t *t)
{
	struct lv *lv = t->data;
	struct lv_vm *v;
	struct lv_work *w;
	size_t i;

	for (i = 0; i < lv->hv->nvms; i++) {
		v = (struct lv_vm *)lv->hv->vms[i];
		if (!v->announced || v->dead)
			continue;
		agent_connect(v);
		if (lv->conn == NULL || v->stats_inflight)
			continue;
		w = work_new(lv, OP_STATS, v);
		if (w == NULL)
			continue;
		if (work_queue(w) < 0)
			work_free(w);
		else
			v->stats_inflight = true;
	}
}

static int
lv_set_target(struct hv *hv, struct hv_vm *vm, uint64_t target_kib,
    hv_done_cb cb, void *arg)
{
	struct lv *lv = hv->priv;
	struct lv_vm *v = (struct lv_vm *)vm;
	struct lv_work *w;
	int r;

	if (v->dead || !v->announced)
		return -ENOENT;
	if (lv->conn == NULL)
		return -EIO;
	if (!vm->has_balloon)
		return -ENOTSUP;
	if (vm->max_known && target_kib > vm->max_kib)
		return -ERANGE;
	w = work_new(lv, OP_SET, v);
	if (w == NULL)
		return -ENOMEM;
	w->target_kib = target_kib;
	r = request(w, cb, arg);
	if (r < 0)
		return r;
	vm->target_known = true;
	vm->balloon_target_kib = target_kib;
	return 0;
}

static int
lv_refresh(struct hv *hv, struct hv_vm *vm, hv_done_cb cb, void *arg)
{
	struct lv *lv = hv->priv;
	struct lv_vm *v = (struct lv_vm *)vm;
	struct lv_work *w;

	if (v->dead || !v->announced)
		return -ENOENT;
	if (lv->conn == NULL)
		return -EIO;
	w = work_new(lv, OP_REFRESH, v);
	if (w == NULL)
		return -ENOMEM;
	return request(w, cb, arg);
}

/* Freed when its last work is done, which may be after hv_closed(). */
static void
lv_unref(struct lv *lv)
{
	struct lv_ev *e;

	if (--lv->refs > 0)
		return;
	while ((e = lv->evq) != NULL) {
		lv->evq = e->next;
		free(e);
	}
	pthread_mutex_destroy(&lv->mu);
	free(lv->uri);
	free(lv);
}

/* The handles closed, the VMs forgotten: hv is done, even while a call
 * (a connect to a hung libvirtd) still runs; lv outlives it. */
static void
handle_closed_cb(uv_handle_t *h)
{
	struct lv *lv = h->data;
	struct hv *hv = lv->hv;

	if (--lv->handles == 0) {
		lv->hv = NULL;
		hv_closed(hv);
	}
	lv_unref(lv);
}

static int
lv_start(struct hv *hv)
{
	struct lv *lv;

	pthread_once(&init_once, lv_init_once);
	if (init_status < 0)
		return init_status;
	lv = calloc(1, sizeof(*lv));
	if (lv == NULL)
		return -ENOMEM;
	lv->hv = hv;
	lv->loop = hv->loop;
	lv->uri = strdup(hv->cfg.uri);
	lv->no_agent = hv->cfg.no_agent;
	lv->poll_ms = hv->cfg.poll_ms;
	lv->cb_life = lv->cb_balloon = -1;
	lv->evtail = &lv->evq;
	lv->q_tail = &lv->q_head;
	lv->backoff_ms = hv->cfg.rescan_ms;
	pthread_mutex_init(&lv->mu, NULL);
	if (lv->uri == NULL || uv_async_init(hv->loop, &lv->async,
	    async_cb) < 0) {
		int r = lv->uri == NULL ? -ENOMEM : -EIO;

		pthread_mutex_destroy(&lv->mu);
		free(lv->uri);
		free(lv);
		return r;
	}
	hv->priv = lv;
	lv->async.data = lv;
	lv->async_live = true;
	uv_timer_init(hv->loop, &lv->reconnect);
	uv_timer_init(hv->loop, &lv->poll);
	uv_timer_init(hv->loop, &lv->deadline);
	lv->reconnect.data = lv->poll.data = lv->deadline.data = lv;
	lv->refs = lv->handles = 4;
	if (pthread_create(&lv->thread, NULL, event_thread, lv) == 0)
		lv->thread_started = true;
	else
		log_warnx("libvirt: no event thread: no events");
	uv_timer_start(&lv->reconnect, reconnect_cb, 0, 0);
	uv_timer_start(&lv->poll, poll_cb, hv->cfg.poll_ms, hv->cfg.poll_ms);
	return 0;
}

static void
lv_close(struct hv *hv)
{
	struct lv *lv = hv->priv;
	struct lv_work *w;

	if (lv == NULL) {
		hv_closed(hv);
		return;
	}
	lv->closing = true;
	while (hv->nvms > 0)
		vm_gone((struct lv_vm *)hv->vms[hv->nvms - 1]);
	while ((w = lv->pending) != NULL)
		answer(w, -ECANCELED);
	queue_flush(lv, -ECANCELED);
	pthread_mutex_lock(&lv->mu);
	lv->async_live = false;
	pthread_mutex_unlock(&lv->mu);
	/* Drop the connection, then end the event thread, off the loop. */
	w = work_new(lv, OP_STOP, NULL);
	if (w != NULL) {
		w->cb_life = lv->cb_life;
		w->cb_balloon = lv->cb_balloon;
		if (lv->conn != NULL) {
			virConnectClose(w->conn);	/* work_new's ref */
			w->conn = lv->conn;
			lv->conn = NULL;
		}
		if (work_queue(w) < 0)
			work_free(w);
	}
	uv_close((uv_handle_t *)&lv->async, handle_closed_cb);
	uv_close((uv_handle_t *)&lv->reconnect, handle_closed_cb);
	uv_close((uv_handle_t *)&lv->poll, handle_closed_cb);
	uv_close((uv_handle_t *)&lv->deadline, handle_closed_cb);
}

/* To the control channel's path in the live XML ("" without one:
 * -ENOTCONN). */
static int
lv_reclaim(struct hv *hv, struct hv_vm *vm, const Mm__V1__ReclaimRequest *rq)
{
	(void)hv;
	return hv_control_write(((const struct lv_vm *)vm)->control_path, rq);
}

const struct hv_ops hv_libvirt_ops = {
	.name = "libvirt",
	.start = lv_start,
	.set_target = lv_set_target,
	.reclaim = lv_reclaim,
	.refresh = lv_refresh,
	.close = lv_close,
};
