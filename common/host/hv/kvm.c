/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The kvm driver (and the sim driver, which is the same code against
 * mm-sim's sockets): one QMP connection and one agent channel per VM found
 * in a directory of <id>.qmp and <id>.agent Unix sockets. QMP gives the
 * balloon (query-balloon, BALLOON_CHANGE) and, when the agent is silent, the
 * virtio balloon's guest-stats; the agent channel carries length-prefixed
 * GuestStats frames. Everything is asynchronous on the loop, and every line
 * and frame is bounded: a hostile agent is cut off and reconnected later.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "hv/hv_impl.h"
#include "log.h"

enum qmp_state { QMP_CONNECTING, QMP_GREETING, QMP_CAPS, QMP_READY };

/* A QMP server that does not greet or answer is forgotten (and found
 * again by the next rescan): QEMU's monitor hangs for a second client. */
#define QMP_HANDSHAKE_MS	10000
#define QMP_PENDING_MAX		32

struct kvm_vm;

typedef void (*qmp_reply_cb)(struct kvm_vm *v, json_t *ret, json_t *err,
    void *arg);

struct qmp_cmd {
	struct qmp_cmd *next;
	uint64_t id;
	qmp_reply_cb fn;
	void *arg;
};

struct kvm_vm {
	struct hv_vm pub;	/* first: hv's registry holds &pub */
	struct hv *hv;
	int handles;		/* open uv handles; freed at 0 once dead */
	bool dead;
	bool seen;		/* in the current rescan */

	uv_pipe_t qmp;
	uv_connect_t qmp_conn;
	enum qmp_state qstate;
	char *qbuf;
	size_t qlen;
	struct qmp_cmd *pending;
	unsigned npending;
	uint64_t qmp_since_ms;	/* connected at */
	uint64_t next_id;
	bool stats_polling;	/* guest-stats-polling-interval set */
	bool stats_inflight;
	int64_t stats_last_update;

	struct hv_agent agent;
};

struct kvm {
	struct hv *hv;
	uv_timer_t rescan;
	uv_timer_t poll;
	uv_fs_event_t watch;
	bool watch_init;
	int refs;		/* own handles and live VMs: freed at 0 */
};

static void vm_kill(struct kvm_vm *v);
static void kvm_unref(struct kvm *k);

static void
path_of(const struct kvm_vm *v, const char *suffix, char *buf, size_t size)
{
	snprintf(buf, size, "%s/%s.%s", v->hv->cfg.vm_dir, v->pub.id, suffix);
}

static void
vm_free_maybe(struct kvm_vm *v)
{
	struct kvm *k = v->hv->priv;
	struct qmp_cmd *c;

	if (!v->dead || v->handles > 0)
		return;
	while ((c = v->pending) != NULL) {
		v->pending = c->next;
		if (c->fn != NULL)
			c->fn(v, NULL, NULL, c->arg);
		free(c);
	}
	free(v->qbuf);
	hv_agent_free(&v->agent);
	free(v);
	kvm_unref(k);
}

static void
vm_handle_closed_cb(uv_handle_t *h)
{
	struct kvm_vm *v = h->data;

	v->handles--;
	vm_free_maybe(v);
}

/* ---- agent channel (hv/agentconn.c) ---- */

static void
agent_closed(struct hv_agent *a)
{
	struct kvm_vm *v = (struct kvm_vm *)((char *)a -
	    offsetof(struct kvm_vm, agent));

	v->handles--;
	vm_free_maybe(v);
}

static void
agent_connect(struct kvm_vm *v)
{
	char path[4096];

	if (v->agent.state != HV_AGENT_NONE || v->dead ||
	    v->hv->cfg.no_agent)
		return;
	path_of(v, "agent", path, sizeof(path));
	if (hv_agent_connect(&v->agent, path) == 0)
		v->handles++;
}

/* ---- QMP ---- */

struct write_req {
	uv_write_t req;
	char *buf;
};

static void
write_cb(uv_write_t *req, int status)
{
	struct write_req *w = (struct write_req *)req;

	free(w->buf);
	free(w);
}

static int
qmp_write(struct kvm_vm *v, json_t *j)
{
	struct write_req *w;
	uv_buf_t b;
	char *s;
	int r;

	s = json_dumps(j, JSON_COMPACT);
	if (s == NULL)
		return -ENOMEM;
	w = malloc(sizeof(*w));
	if (w == NULL) {
		free(s);
		return -ENOMEM;
	}
	w->buf = malloc(strlen(s) + 2);
	if (w->buf == NULL) {
		free(s);
		free(w);
		return -ENOMEM;
	}
	b.len = (size_t)sprintf(w->buf, "%s\n", s);
	b.base = w->buf;
	free(s);
	r = uv_write(&w->req, (uv_stream_t *)&v->qmp, &b, 1, write_cb);
	if (r < 0) {
		free(w->buf);
		free(w);
		return -EIO;
	}
	return 0;
}

/* Send {"execute": cmd, "arguments": args (stolen, may be NULL)}. */
static int
qmp_exec(struct kvm_vm *v, const char *cmd, json_t *args, qmp_reply_cb fn,
    void *arg)
{
	struct qmp_cmd *c, **tail;
	json_t *j;
	int r;

	if (v->dead || v->qstate < QMP_CAPS) {
		json_decref(args);
		return -ENOTCONN;
	}
	c = calloc(1, sizeof(*c));
	j = json_pack("{s:s, s:I}", "execute", cmd, "id",
	    (json_int_t)v->next_id);
	if (c == NULL || j == NULL) {
		free(c);
		json_decref(j);
		json_decref(args);
		return -ENOMEM;
	}
	if (args != NULL)
		json_object_set_new(j, "arguments", args);
	c->id = v->next_id++;
	c->fn = fn;
	c->arg = arg;
	r = qmp_write(v, j);
	json_decref(j);
	if (r < 0) {
		free(c);
		return r;
	}
	for (tail = &v->pending; *tail != NULL; tail = &(*tail)->next)
		;
	*tail = c;
	v->npending++;
	return 0;
}

static void
balloon_actual(struct kvm_vm *v, json_t *actual)
{
	json_int_t bytes;

	if (!json_is_integer(actual))
		return;
	bytes = json_integer_value(actual);
	if (bytes < 0)
		return;
	if (v->pub.balloon_known &&
	    v->pub.balloon_actual_kib == (uint64_t)bytes / 1024)
		return;
	v->pub.balloon_known = true;
	v->pub.balloon_actual_kib = (uint64_t)bytes / 1024;
	hv_emit(v->hv, HV_EV_BALLOON, &v->pub);
}

static void
query_balloon_cb(struct kvm_vm *v, json_t *ret, json_t *err, void *arg)
{
	if (ret != NULL)
		balloon_actual(v, json_object_get(ret, "actual"));
}

/* The virtio balloon's stat-* (bytes or counts; -1 when unknown). */
static bool
qstat(json_t *stats, const char *name, uint64_t div, uint64_t *ret)
{
	json_t *j = json_object_get(stats, name);

	if (!json_is_integer(j) || json_integer_value(j) < 0)
		return false;
	*ret = (uint64_t)json_integer_value(j) / div;
	return true;
}

static Mm__V1__GuestStats *
guest_from_qmp(json_t *stats, int64_t last_update)
{
	struct hv_balloon_stats s = { .last_update_s = last_update };

#define QS(name, div, member)						\
	s.has_##member = qstat(stats, name, div, &s.member)
	QS("stat-total-memory", 1024, total_kib);
	QS("stat-free-memory", 1024, free_kib);
	QS("stat-available-memory", 1024, available_kib);
	QS("stat-disk-caches", 1024, cached_kib);
	QS("stat-major-faults", 1, major_faults);
	QS("stat-swap-in", 4096, swap_in_pages);
	QS("stat-swap-out", 4096, swap_out_pages);
#undef QS
	return hv_guest_from_balloon(&s);
}

static void
guest_stats_cb(struct kvm_vm *v, json_t *ret, json_t *err, void *arg)
{
	Mm__V1__GuestStats *g;
	json_t *stats, *lu;

	v->stats_inflight = false;
	if (ret == NULL)
		return;
	stats = json_object_get(ret, "stats");
	lu = json_object_get(ret, "last-update");
	if (!json_is_object(stats) || !json_is_integer(lu) ||
	    json_integer_value(lu) <= 0)
		return;	/* stale until the guest's first update */
	if (json_integer_value(lu) == v->stats_last_update)
		return;
	v->stats_last_update = json_integer_value(lu);
	g = guest_from_qmp(stats, v->stats_last_update);
	if (g == NULL)
		return;
	v->hv->stats.qmp_fallbacks++;
	if (hv_vm_set_guest(v->hv, &v->pub, g) == 0)
		hv_emit(v->hv, HV_EV_GUEST, &v->pub);
}

/* A write or refresh waiting for its QMP answer. */
struct kvm_done {
	hv_done_cb cb;
	void *arg;
	bool balloon;	/* the answer is query-balloon's */
};

static void
done_cb(struct kvm_vm *v, json_t *ret, json_t *err, void *arg)
{
	struct kvm_done *d = arg;
	int status = ret != NULL ? 0 : err != NULL ? -EIO : -ECANCELED;

	if (ret != NULL && d->balloon)
		balloon_actual(v, json_object_get(ret, "actual"));
	if (d->cb != NULL)
		d->cb(v->hv, status, d->arg);
	free(d);
}

static int
exec_done(struct kvm_vm *v, const char *cmd, json_t *args, hv_done_cb cb,
    void *arg)
{
	struct kvm_done *d;
	int r;

	d = malloc(sizeof(*d));
	if (d == NULL) {
		json_decref(args);
		return -ENOMEM;
	}
	d->cb = cb;
	d->arg = arg;
	d->balloon = strcmp(cmd, "query-balloon") == 0;
	r = qmp_exec(v, cmd, args, done_cb, d);
	if (r < 0)
		free(d);
	return r;
}

static int
kvm_set_target(struct hv *hv, struct hv_vm *vm, uint64_t target_kib,
    hv_done_cb cb, void *arg)
{
	struct kvm_vm *v = (struct kvm_vm *)vm;
	int r;

	/* QMP balloon takes the guest's new size in bytes. */
	r = exec_done(v, "balloon", json_pack("{s:I}", "value",
	    (json_int_t)(target_kib * 1024)), cb, arg);
	if (r < 0)
		return r;
	v->pub.target_known = true;
	v->pub.balloon_target_kib = target_kib;
	return 0;
}

static int
kvm_refresh(struct hv *hv, struct hv_vm *vm, hv_done_cb cb, void *arg)
{
	return exec_done((struct kvm_vm *)vm, "query-balloon", NULL, cb, arg);
}

/* One poll of a ready VM: the balloon, and guest-stats if the agent is
 * silent. */
static void
vm_poll(struct kvm_vm *v)
{
	struct hv *hv = v->hv;
	uint64_t now = uv_now(hv->loop);
	unsigned secs;

	if (v->dead || v->qstate == QMP_CONNECTING)
		return;
	if ((v->qstate != QMP_READY &&
	    now - v->qmp_since_ms > QMP_HANDSHAKE_MS) ||
	    v->npending > QMP_PENDING_MAX) {
		hv->stats.qmp_hangs++;
		log_debug("kvm: vm \"%s\": qmp not answering, reconnecting",
		    v->pub.id);
		vm_kill(v);
		return;
	}
	if (v->qstate != QMP_READY)
		return;
	qmp_exec(v, "query-balloon", NULL, query_balloon_cb, NULL);
	/* The agent had its chance since the VM was found or since its
	 * last frame; a reconnecting agent keeps it. */
	if (!hv->cfg.no_agent &&
	    now - v->agent.seen_ms < hv->cfg.agent_timeout_ms)
		return;
	if (!v->stats_polling) {
		secs = (hv->cfg.poll_ms + 999) / 1000;
		if (qmp_exec(v, "qom-set", json_pack("{s:s, s:s, s:i}",
		    "path", hv->cfg.balloon_path, "property",
		    "guest-stats-polling-interval", "value", (int)secs),
		    NULL, NULL) == 0)
			v->stats_polling = true;
		return;
	}
	if (v->stats_inflight)
		return;
	if (qmp_exec(v, "qom-get", json_pack("{s:s, s:s}", "path",
	    hv->cfg.balloon_path, "property", "guest-stats"),
	    guest_stats_cb, NULL) == 0)
		v->stats_inflight = true;
}

/* The boot memory is the most the balloon can give the guest. */
static void
memory_size_cb(struct kvm_vm *v, json_t *ret, json_t *err, void *arg)
{
	json_t *base = json_object_get(ret, "base-memory");

	/* Less than a MiB is no VM's boot memory (found by fuzz_qmp: 4
	 * bytes made a known maximum of 0 KiB). */
	if (!json_is_integer(base) || json_integer_value(base) < (1 << 20))
		return;
	v->pub.max_known = true;
	v->pub.max_kib = (uint64_t)json_integer_value(base) / 1024;
	hv_emit(v->hv, HV_EV_BALLOON, &v->pub);
}

/* A balloon that deflates on OOM stays in the guest's MemTotal. */
static void
deflate_on_oom_cb(struct kvm_vm *v, json_t *ret, json_t *err, void *arg)
{
	if (!json_is_boolean(ret))
		return;
	v->pub.doo_known = true;
	v->pub.deflate_on_oom = json_is_true(ret);
}

/* Free page reporting: the guest hands freed pages back to the host as it
 * frees them (QEMU discards them), without a balloon command. */
static void
free_page_reporting_cb(struct kvm_vm *v, json_t *ret, json_t *err,
    void *arg)
{
	if (!json_is_boolean(ret))
		return;
	v->pub.free_page_reporting = json_is_true(ret);
}

static void
qmp_reply(struct kvm_vm *v, json_t *j)
{
	struct qmp_cmd *c, **pp;
	json_t *ret = json_object_get(j, "return");
	json_t *err = json_object_get(j, "error");
	json_t *id = json_object_get(j, "id");

	if (err != NULL) {
		v->hv->stats.qmp_errors++;
		log_debug("kvm: vm \"%s\": qmp error: %s", v->pub.id,
		    json_string_value(json_object_get(err, "desc")));
	}
	for (pp = &v->pending; (c = *pp) != NULL; pp = &c->next) {
		if (json_is_integer(id) &&
		    (uint64_t)json_integer_value(id) == c->id)
			break;
	}
	if (c == NULL)
		return;
	*pp = c->next;
	v->npending--;
	if (v->qstate == QMP_CAPS && ret != NULL) {
		v->qstate = QMP_READY;
		qmp_exec(v, "query-memory-size-summary", NULL, memory_size_cb,
		    NULL);
		qmp_exec(v, "qom-get", json_pack("{s:s, s:s}", "path",
		    v->hv->cfg.balloon_path, "property", "deflate-on-oom"),
		    deflate_on_oom_cb, NULL);
		qmp_exec(v, "qom-get", json_pack("{s:s, s:s}", "path",
		    v->hv->cfg.balloon_path, "property",
		    "free-page-reporting"), free_page_reporting_cb, NULL);
		vm_poll(v);
	}
	if (c->fn != NULL)
		c->fn(v, ret, err == NULL && ret == NULL ? j : err, c->arg);
	free(c);
}

/*
 * QEMU prints a balloon statistic the guest has not sent yet as -1 in a
 * uint64: 18446744073709551615, which jansson refuses (above INT64_MAX),
 * losing the whole answer. Make each one a -1 and spaces, in place.
 */
static void
u64_max_to_minus_one(char *line, size_t len)
{
	static const char u64max[] = "18446744073709551615";
	const size_t n = sizeof(u64max) - 1;
	char *p = line, *end = line + len;

	while ((p = memmem(p, (size_t)(end - p), u64max, n)) != NULL) {
		memset(p, ' ', n);
		p[0] = '-';
		p[1] = '1';
		p += n;
	}
}

static void
qmp_line(struct kvm_vm *v, char *line, size_t len)
{
	json_error_t jerr;
	json_t *j, *ev;

	u64_max_to_minus_one(line, len);
	j = json_loadb(line, len, 0, &jerr);
	if (!json_is_object(j)) {
		v->hv->stats.qmp_bad_lines++;
		json_decref(j);
		return;
	}
	if (v->qstate == QMP_GREETING && json_object_get(j, "QMP") != NULL) {
		v->qstate = QMP_CAPS;
		if (qmp_exec(v, "qmp_capabilities", NULL, NULL, NULL) < 0)
			vm_kill(v);
	} else if ((ev = json_object_get(j, "event")) != NULL) {
		if (json_is_string(ev) &&
		    strcmp(json_string_value(ev), "BALLOON_CHANGE") == 0)
			balloon_actual(v, json_object_get(
			    json_object_get(j, "data"), "actual"));
	} else {
		qmp_reply(v, j);
	}
	json_decref(j);
}

static void
qmp_alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct kvm_vm *v = h->data;

	buf->base = v->qbuf + v->qlen;
	buf->len = v->hv->cfg.qmp_line_max - v->qlen;
}

static void
qmp_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct kvm_vm *v = s->data;
	char *start, *nl;

	if (n < 0) {
		log_debug("kvm: vm \"%s\": qmp: %s", v->pub.id,
		    uv_strerror((int)n));
		vm_kill(v);
		return;
	}
	v->qlen += (size_t)n;
	start = v->qbuf;
	while (!v->dead &&
	    (nl = memchr(start, '\n', v->qlen - (size_t)(start - v->qbuf)))) {
		qmp_line(v, start, (size_t)(nl - start));
		start = nl + 1;
	}
	if (v->dead)
		return;
	v->qlen -= (size_t)(start - v->qbuf);
	memmove(v->qbuf, start, v->qlen);
	if (v->qlen == v->hv->cfg.qmp_line_max) {
		v->hv->stats.qmp_bad_lines++;
		log_debug("kvm: vm \"%s\": qmp line too long", v->pub.id);
		vm_kill(v);
	}
}

static pid_t
vm_pid(struct kvm_vm *v)
{
	char path[4096], buf[32];
	struct ucred cred;
	socklen_t len = sizeof(cred);
	uv_os_fd_t fd;
	ssize_t n;
	long pid;
	int f;

	path_of(v, "pid", path, sizeof(path));
	f = open(path, O_RDONLY | O_CLOEXEC);
	if (f >= 0) {
		n = read(f, buf, sizeof(buf) - 1);
		close(f);
		if (n > 0) {
			buf[n] = '\0';
			pid = strtol(buf, NULL, 10);
			if (pid > 0 && pid < (1l << 22))
				return (pid_t)pid;
		}
	}
	if (uv_fileno((uv_handle_t *)&v->qmp, &fd) == 0 &&
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
		return cred.pid;
	return 0;
}

static void
qmp_connect_cb(uv_connect_t *req, int status)
{
	struct kvm_vm *v = req->data;

	if (v->dead)
		return;
	if (status < 0) {
		log_debug("kvm: vm \"%s\": qmp: %s", v->pub.id,
		    uv_strerror(status));
		vm_kill(v);
		return;
	}
	v->qstate = QMP_GREETING;
	v->qmp_since_ms = uv_now(v->hv->loop);
	v->agent.seen_ms = uv_now(v->hv->loop);
	v->pub.pid = vm_pid(v);
	if (uv_read_start((uv_stream_t *)&v->qmp, qmp_alloc_cb,
	    qmp_read_cb) < 0) {
		vm_kill(v);
		return;
	}
	hv_emit(v->hv, HV_EV_ADDED, &v->pub);
	agent_connect(v);
}

/* Forget v: REMOVED event if it was announced, close its handles. */
static void
vm_kill(struct kvm_vm *v)
{
	bool announced = v->qstate != QMP_CONNECTING;

	if (v->dead)
		return;
	v->dead = true;
	if (announced)
		hv_emit(v->hv, HV_EV_REMOVED, &v->pub);
	hv_vm_unregister(v->hv, &v->pub);
	hv_agent_close(&v->agent);
	uv_close((uv_handle_t *)&v->qmp, vm_handle_closed_cb);
}

static void
vm_add(struct hv *hv, const char *id, size_t len)
{
	struct kvm_vm *v;
	char path[4096];

	v = calloc(1, sizeof(*v));
	if (v == NULL)
		return;
	v->hv = hv;
	v->agent.hv = hv;
	v->agent.vm = &v->pub;
	v->agent.closed = agent_closed;
	memcpy(v->pub.id, id, len);
	v->qbuf = malloc(hv->cfg.qmp_line_max);
	v->next_id = 1;
	v->seen = true;
	if (v->qbuf == NULL || uv_pipe_init(hv->loop, &v->qmp, 0) < 0) {
		free(v->qbuf);
		free(v);
		return;
	}
	v->qmp.data = v;
	v->handles = 1;
	((struct kvm *)hv->priv)->refs++;
	if (hv_vm_register(hv, &v->pub) < 0) {
		v->dead = true;
		uv_close((uv_handle_t *)&v->qmp, vm_handle_closed_cb);
		return;
	}
	v->qmp_conn.data = v;
	path_of(v, hv->cfg.qmp_ext, path, sizeof(path));
	uv_pipe_connect(&v->qmp_conn, &v->qmp, path, qmp_connect_cb);
}

static void
rescan(struct hv *hv)
{
	struct kvm_vm *v;
	struct dirent *de;
	size_t i, len, ext = strlen(hv->cfg.qmp_ext);
	DIR *d;

	d = opendir(hv->cfg.vm_dir);
	if (d == NULL) {
		log_debug("kvm: %s: %s", hv->cfg.vm_dir, strerror(errno));
		return;
	}
	for (i = 0; i < hv->nvms; i++)
		((struct kvm_vm *)hv->vms[i])->seen = false;
	while ((de = readdir(d)) != NULL) {
		char id[MSG_ID_MAX + 1];
		size_t idlen;

		len = strlen(de->d_name);
		if (len < ext + 2 || de->d_name[len - ext - 1] != '.' ||
		    strcmp(de->d_name + len - ext, hv->cfg.qmp_ext) != 0)
			continue;
		idlen = len - ext - 1;
		if (!hv_id_valid(de->d_name, idlen))
			continue;
		memcpy(id, de->d_name, idlen);
		id[idlen] = '\0';
		v = (struct kvm_vm *)hv_vm_find(hv, id);
		if (v != NULL)
			v->seen = true;
		else
			vm_add(hv, id, idlen);
	}
	closedir(d);
	for (i = hv->nvms; i-- > 0;) {
		v = (struct kvm_vm *)hv->vms[i];
		if (!v->seen)
			vm_kill(v);
		else if (v->qstate != QMP_CONNECTING)
			agent_connect(v);
	}
}

static void
rescan_cb(uv_timer_t *t)
{
	struct kvm *k = t->data;

	rescan(k->hv);
}

static void
watch_cb(uv_fs_event_t *h, const char *name, int events, int status)
{
	struct kvm *k = h->data;

	/* Sockets appear before QEMU listens: rescan a little later. */
	if (uv_timer_get_due_in(&k->rescan) > 50)
		uv_timer_start(&k->rescan, rescan_cb, 50, k->hv->cfg.rescan_ms);
}

static void
poll_cb(uv_timer_t *t)
{
	struct kvm *k = t->data;
	struct hv *hv = k->hv;
	size_t i;

	for (i = hv->nvms; i-- > 0;)
		if (i < hv->nvms)
			vm_poll((struct kvm_vm *)hv->vms[i]);
}

static int
kvm_start(struct hv *hv)
{
	struct kvm *k;

	k = calloc(1, sizeof(*k));
	if (k == NULL)
		return -ENOMEM;
	k->hv = hv;
	hv->priv = k;
	uv_timer_init(hv->loop, &k->rescan);
	uv_timer_init(hv->loop, &k->poll);
	k->rescan.data = k;
	k->poll.data = k;
	k->refs = 2;
	if (uv_fs_event_init(hv->loop, &k->watch) == 0) {
		k->watch.data = k;
		k->refs++;
		k->watch_init = true;
		/* Without it (no such directory yet) the timer rescans. */
		uv_fs_event_start(&k->watch, watch_cb, hv->cfg.vm_dir, 0);
	}
	uv_timer_start(&k->rescan, rescan_cb, 0, hv->cfg.rescan_ms);
	uv_timer_start(&k->poll, poll_cb, hv->cfg.poll_ms, hv->cfg.poll_ms);
	return 0;
}

static void
kvm_unref(struct kvm *k)
{
	struct hv *hv = k->hv;

	if (--k->refs > 0)
		return;
	free(k);
	hv_closed(hv);
}

static void
kvm_handle_closed_cb(uv_handle_t *h)
{
	kvm_unref(h->data);
}

static void
kvm_close(struct hv *hv)
{
	struct kvm *k = hv->priv;

	while (hv->nvms > 0)
		vm_kill((struct kvm_vm *)hv->vms[hv->nvms - 1]);
	if (k == NULL) {
		hv_closed(hv);
		return;
	}
	uv_close((uv_handle_t *)&k->rescan, kvm_handle_closed_cb);
	uv_close((uv_handle_t *)&k->poll, kvm_handle_closed_cb);
	if (k->watch_init)
		uv_close((uv_handle_t *)&k->watch, kvm_handle_closed_cb);
}

static int
kvm_reclaim(struct hv *hv, struct hv_vm *vm, const Mm__V1__ReclaimRequest *rq)
{
	char path[4096];

	(void)hv;
	path_of((const struct kvm_vm *)vm, "control", path, sizeof(path));
	return hv_control_write(path, rq);
}

const struct hv_ops hv_kvm_ops = {
	.name = "kvm",
	.start = kvm_start,
	.set_target = kvm_set_target,
	.reclaim = kvm_reclaim,
	.refresh = kvm_refresh,
	.close = kvm_close,
};
