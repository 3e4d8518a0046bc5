/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The xen driver: domains under /local/domain through libxenstore, driven by
 * watches rather than polling. @introduceDomain and @releaseDomain rescan
 * the domain list; per domain a watch on data/mm/agent_seq (written last by
 * the guest agent) reads the agent's keys, and one on memory/ reads the
 * target and static-max. The write side sets memory/target (never above
 * memory/static-max) and reads it back, and hands reclaim requests to the
 * agent under the domain's control/mm/. This is the only file that
 * includes xenstore.h.
 * libxenstore's calls are synchronous round trips to the local xenstored;
 * they are short, and the watches arrive through a pipe polled on the loop.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hoststats.h"
#include "hv/hv_impl.h"
#include "log.h"

/* The agent's data/mm/ layout: <group>/<name> of hoststats' tables (the
 * report's own field names), in the sample's three parts. */
static const struct hs_fields *const xgroups[] = {
	&hs_meminfo_fields, &hs_vmstat_fields, &hs_psi_fields,
};

/* Strict decimal: the whole string, no sign, no spaces. */
static bool
parse_u64(const char *s, uint64_t *ret)
{
	unsigned long long v;
	char *end;

	if (s == NULL || *s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return false;
	*ret = v;
	return true;
}

static bool
parse_pct(const char *s, double *ret)
{
	char *end;
	double v;

	if (s == NULL || *s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || *end != '\0' || !(v >= 0.0 && v <= 1e6))
		return false;
	*ret = v;
	return true;
}

static Mm__V1__GuestStats *
guest_new(void)
{
	Mm__V1__GuestStats *g = calloc(1, sizeof(*g));
	Mm__V1__Meminfo *mi = calloc(1, sizeof(*mi));
	Mm__V1__Vmstat *vs = calloc(1, sizeof(*vs));
	Mm__V1__Psi *p = calloc(1, sizeof(*p));

	if (g == NULL || mi == NULL || vs == NULL || p == NULL) {
		free(g);
		free(mi);
		free(vs);
		free(p);
		return NULL;
	}
	mm__v1__guest_stats__init(g);
	mm__v1__meminfo__init(mi);
	mm__v1__vmstat__init(vs);
	mm__v1__psi__init(p);
	g->meminfo = mi;
	g->vmstat = vs;
	g->psi = p;
	return g;
}

/* Drop submessages the guest wrote nothing into. */
static void
guest_trim(Mm__V1__GuestStats *g, const bool *any)
{
	if (!any[0]) {
		free(g->meminfo);
		g->meminfo = NULL;
	}
	if (!any[1]) {
		free(g->vmstat);
		g->vmstat = NULL;
	}
	if (!any[2]) {
		free(g->psi);
		g->psi = NULL;
	}
}

/*
 * Fields f[0..n) of the message at m (a struct of that table) from the keys
 * <group>/<name>: a value that is not a number marks its key bad (the
 * caller refuses the sample). Returns how many keys were there, good or
 * bad; *ret_good (may be NULL) is set when one was good.
 */
static size_t
read_fields(char *(*get)(void *arg, const char *key), void *arg,
    const char *group, const struct hs_field *f, size_t n, void *m,
    bool *ret_good, const char **ret_bad_key, const char **ret_bad_group)
{
	char key[128], *s;
	size_t there = 0;
	uint64_t u = 0;
	double d = 0;

	for (size_t i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "%s/%s", group, f[i].name);
		s = get(arg, key);
		if (s == NULL)
			continue;
		there++;
		if (f[i].pct ? parse_pct(s, &d) : parse_u64(s, &u)) {
			if (f[i].pct)
				*(double *)((char *)m + f[i].off) = d;
			else
				*(uint64_t *)((char *)m + f[i].off) = u;
			*(protobuf_c_boolean *)((char *)m + f[i].has_off) = 1;
			if (ret_good != NULL)
				*ret_good = true;
		} else {
			*ret_bad_key = f[i].name;
			*ret_bad_group = group;
		}
		free(s);
	}
	return there;
}

#define FIELD(type, name, pct)						\
	{ #name, NULL, NULL, offsetof(type, name),			\
	  offsetof(type, has_##name), 0, pct, false }

/* The cold buckets, cold/<i>/{idle_ms,anon_kib,file_kib}, i from 0 with no
 * gap: as many as msg_validate() allows (GuestStats.cold), and a key of
 * one more bucket is refused rather than ignored, so that a guest cannot
 * hide a layout the host does not read. */
static const char *const cold_groups[MSG_COLD_MAX + 1] = {
	"cold/0", "cold/1", "cold/2", "cold/3", "cold/4",
};

static const struct hs_field cold_fields[] = {
	FIELD(Mm__V1__ColdBucket, idle_ms, false),
	FIELD(Mm__V1__ColdBucket, anon_kib, false),
	FIELD(Mm__V1__ColdBucket, file_kib, false),
};

/* reclaim/<name> but state, an enum. */
static const struct hs_field reclaim_fields[] = {
	FIELD(Mm__V1__ReclaimStatus, seq, false),
	FIELD(Mm__V1__ReclaimStatus, reclaimed_kib, false),
	FIELD(Mm__V1__ReclaimStatus, stall_pct, true),
};

#define NFIELDS(f)	(sizeof(f) / sizeof((f)[0]))

/* cold/<i>/ into g->cold; false on ENOMEM. */
static bool
guest_cold(Mm__V1__GuestStats *g, char *(*get)(void *arg,
    const char *key), void *arg, const char **ret_bad_key,
    const char **ret_bad_group)
{
	Mm__V1__ColdBucket *b = NULL;
	bool gap = false;
	size_t i;

	for (i = 0; i <= MSG_COLD_MAX; i++) {
		if (b == NULL) {
			b = calloc(1, sizeof(*b));
			if (b == NULL)
				return false;
			mm__v1__cold_bucket__init(b);
		}
		if (read_fields(get, arg, cold_groups[i], cold_fields,
		    NFIELDS(cold_fields), b, NULL, ret_bad_key,
		    ret_bad_group) == 0) {
			gap = true;
			continue;
		}
		if (gap || i == MSG_COLD_MAX) {
			/* After a missing bucket, or one too many. */
			*ret_bad_key = "idle_ms";
			*ret_bad_group = cold_groups[i];
			continue;
		}
		if (g->cold == NULL) {
			g->cold = calloc(MSG_COLD_MAX, sizeof(*g->cold));
			if (g->cold == NULL) {
				free(b);
				return false;
			}
		}
		g->cold[g->n_cold++] = b;
		b = NULL;
	}
	free(b);
	return true;
}

/* reclaim/{seq,reclaimed_kib,state,stall_pct} into g->reclaim (absent
 * without any of them); false on ENOMEM. */
static bool
guest_reclaim(Mm__V1__GuestStats *g, char *(*get)(void *arg,
    const char *key), void *arg, const char **ret_bad_key,
    const char **ret_bad_group)
{
	Mm__V1__ReclaimStatus *rs = calloc(1, sizeof(*rs));
	bool any = false;
	char *s;

	if (rs == NULL)
		return false;
	mm__v1__reclaim_status__init(rs);
	(void)read_fields(get, arg, "reclaim", reclaim_fields,
	    NFIELDS(reclaim_fields), rs, &any, ret_bad_key, ret_bad_group);
	s = get(arg, "reclaim/state");
	if (s != NULL) {
		uint64_t u = 0;

		/* msg_validate() refuses a value ReclaimState lacks. */
		if (!parse_u64(s, &u) || u > INT32_MAX) {
			*ret_bad_key = "state";
			*ret_bad_group = "reclaim";
		}
		rs->has_state = 1;
		rs->state = (Mm__V1__ReclaimState)(u > INT32_MAX ? 0 : u);
		any = true;
		free(s);
	}
	/* Only with a field set (a sample with a bad one is refused). */
	if (any)
		g->reclaim = rs;
	else
		free(rs);
	return true;
}

Mm__V1__GuestStats *
hv_xen_guest_from_keys(char *(*get)(void *arg, const char *key), void *arg,
    const char **ret_bad_key, const char **ret_bad_group)
{
	Mm__V1__GuestStats *g;
	bool any[3] = { false };
	char *s;
	size_t k;

	*ret_bad_key = NULL;
	*ret_bad_group = NULL;
	s = get(arg, "agent_seq");
	if (s == NULL)
		return NULL;	/* no agent (yet) */
	g = guest_new();
	if (g == NULL) {
		free(s);
		return NULL;
	}
	if (!parse_u64(s, &g->agent_seq))
		*ret_bad_key = "agent_seq";
	g->has_agent_seq = 1;
	free(s);
	s = get(arg, "time_ms");
	if (s != NULL) {
		if (!parse_u64(s, &g->time_ms))
			*ret_bad_key = "time_ms";
		g->has_time_ms = 1;
		free(s);
	}
	for (k = 0; k < NFIELDS(xgroups); k++) {
		const struct hs_fields *fs = xgroups[k];
		void *m = k == 0 ? (void *)g->meminfo :
		    k == 1 ? (void *)g->vmstat : (void *)g->psi;

		(void)read_fields(get, arg, fs->group, fs->f, fs->n, m,
		    &any[k], ret_bad_key, ret_bad_group);
	}
	guest_trim(g, any);
	if (!guest_cold(g, get, arg, ret_bad_key, ret_bad_group) ||
	    !guest_reclaim(g, get, arg, ret_bad_key, ret_bad_group)) {
		msg_free(&g->base);
		return NULL;
	}
	g->has_source = 1;
	g->source = MM__V1__STATS_SOURCE__STATS_SOURCE_AGENT;
	return g;
}

#ifndef MM_HAVE_XENSTORE

static int
xen_start(struct hv *hv)
{
	return -ENOTSUP;
}

static void
xen_close(struct hv *hv)
{
	hv_closed(hv);
}

#else

#include <xenstore.h>

#define DOM_ROOT	"/local/domain"
/* Below a domain's home: where hv_reclaim() puts a request for its agent
 * (docs/protocol.md, "xenstore"). */
#define XEN_RECLAIM_KEY	"control/mm/reclaim"

/* Least time between two reads of one domain's keys: the collector takes
 * at most guest_rate (default 5) samples a second anyway. */
#define XEN_READ_MIN_MS	200

/* What a domain's watches asked to be read. */
enum {
	RD_GUEST = 1,	/* data/mm: the agent's sample */
	RD_MEM = 2,	/* memory/target and static-max */
};

struct xen_dom {
	struct hv_vm pub;	/* first: hv's registry holds &pub */
	unsigned domid;
	bool seen;
	unsigned want;		/* RD_* to read once allowed */
	uint64_t next_ms;	/* loop time of the next allowed read */
	unsigned mem_gen;	/* memory/ read on the loop: older batches
				 * do not overwrite it */
	char tok_seq[32];
	char tok_mem[32];
};

/* One domain's keys as a worker read them, for the loop to apply. */
struct xen_read {
	unsigned domid;
	unsigned what;		/* RD_* */
	unsigned mem_gen;	/* the domain's when the batch started */
	bool has_target, has_max;
	uint64_t target_kib, max_kib;
	Mm__V1__GuestStats *g;	/* NULL: no agent yet (or no memory) */
	const char *bad_key;	/* a key that is not a number, static */
	const char *bad_group;	/* its group below data/mm/, or NULL */
};

/* The reads in flight: one at a time, off the loop. */
struct xen_batch {
	uv_work_t req;
	struct xen *x;
	size_t n;
	struct xen_read r[];
};

/* A completion deferred to the loop: libxenstore answers synchronously,
 * but hv_done_cb is never called from inside the request. */
struct xen_done {
	uv_timer_t timer;
	struct xen *x;
	struct xen_done *next;
	hv_done_cb cb;
	void *arg;
	int status;
};

struct xen {
	struct hv *hv;
	struct xs_handle *xs;	/* the loop's: watches, domains, writes */
	struct xs_handle *wxs;	/* the workers': reads of domains' keys */
	uv_poll_t poll;
	uv_timer_t kick;	/* the next read a domain waits for */
	bool poll_init, kick_init;
	bool closing;
	unsigned open_handles;	/* closing: close callbacks to come */
	struct xen_batch *inflight;
	struct xen_done *done;	/* pending completions */
};

/* Read a key; NULL when absent. The result is malloc'd. Any thread, on
 * a handle no other thread uses meanwhile. */
static char *
xread(struct xs_handle *xs, xs_transaction_t t, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static char *
xread(struct xs_handle *xs, xs_transaction_t t, const char *fmt, ...)
{
	char path[512];
	unsigned len;
	va_list ap;
	char *v;

	va_start(ap, fmt);
	vsnprintf(path, sizeof(path), fmt, ap);
	va_end(ap);
	v = xs_read(xs, t, path, &len);
	return v;
}

static struct xen_dom *
dom_find(struct hv *hv, unsigned domid)
{
	size_t i;

	for (i = 0; i < hv->nvms; i++)
		if (((struct xen_dom *)hv->vms[i])->domid == domid)
			return (struct xen_dom *)hv->vms[i];
	return NULL;
}

/* memory/target and static-max of domid into r (any thread). */
static void
fetch_memory(struct xs_handle *xs, unsigned domid, struct xen_read *r)
{
	char *s;

	s = xread(xs, XBT_NULL, DOM_ROOT "/%u/memory/target", domid);
	r->has_target = parse_u64(s, &r->target_kib);
	free(s);
	s = xread(xs, XBT_NULL, DOM_ROOT "/%u/memory/static-max", domid);
	r->has_max = parse_u64(s, &r->max_kib);
	free(s);
}

static void
apply_memory(struct xen *x, struct xen_dom *d, const struct xen_read *r)
{
	bool changed = false;

	if (r->has_target && (!d->pub.target_known ||
	    d->pub.balloon_target_kib != r->target_kib)) {
		d->pub.target_known = true;
		d->pub.balloon_target_kib = r->target_kib;
		changed = true;
	}
	if (r->has_max && (!d->pub.max_known ||
	    d->pub.max_kib != r->max_kib)) {
		d->pub.max_known = true;
		d->pub.max_kib = r->max_kib;
		changed = true;
	}
	if (changed)
		hv_emit(x->hv, HV_EV_BALLOON, &d->pub);
}

/* The write side's read, now and on the loop. */
static void
read_memory(struct xen *x, struct xen_dom *d)
{
	struct xen_read r = { .domid = d->domid };

	fetch_memory(x->xs, d->domid, &r);
	d->mem_gen++;
	apply_memory(x, d, &r);
}

/* What xen_key_cb() reads from: one domain's data/mm, in a transaction. */
struct xen_keys {
	struct xs_handle *xs;
	xs_transaction_t t;
	unsigned domid;
};

static char *
xen_key_cb(void *arg, const char *key)
{
	struct xen_keys *k = arg;

	return xread(k->xs, k->t, DOM_ROOT "/%u/data/mm/%s", k->domid, key);
}

/* The agent's data/mm keys of domid into r->g, in one read-only
 * transaction (any thread). r->g stays NULL without agent_seq. */
static void
fetch_guest(struct xs_handle *xs, unsigned domid, struct xen_read *r)
{
	struct xen_keys k = { .xs = xs, .domid = domid };

	k.t = xs_transaction_start(xs);
	r->g = hv_xen_guest_from_keys(xen_key_cb, &k, &r->bad_key,
	    &r->bad_group);
	xs_transaction_end(xs, k.t, true);
}

/* Check what fetch_guest() read (msg_validate() is the loop's) and hand
 * it out; r->g is taken. */
static void
apply_guest(struct xen *x, struct xen_dom *d, struct xen_read *r)
{
	struct hv *hv = x->hv;
	Mm__V1__GuestStats *g = r->g;
	char why[256];

	r->g = NULL;
	if (g == NULL)
		return;
	g->vm_id = strdup(d->pub.id);
	if (g->vm_id == NULL) {
		msg_free(&g->base);
		return;
	}
	if (r->bad_key != NULL) {
		hv_reject(hv, &d->pub, HV_REJECT_UNDECODABLE);
		log_debug("xen: domain \"%s\": data/mm/%s%s%s is not a "
		    "number", d->pub.id, r->bad_group ? r->bad_group : "",
		    r->bad_group ? "/" : "", r->bad_key);
		msg_free(&g->base);
		return;
	}
	if (msg_validate(MSG_GUEST_STATS, &g->base, why, sizeof(why)) < 0) {
		hv_reject(hv, &d->pub, HV_REJECT_INVALID);
		log_debug("xen: domain \"%s\": invalid data/mm: %s", d->pub.id,
		    why);
		msg_free(&g->base);
		return;
	}
	hv->stats.frames++;
	if (hv_vm_set_guest(hv, &d->pub, g) == 0)
		hv_emit(hv, HV_EV_GUEST, &d->pub);
}

/* ---- reads off the loop ---- */

static void schedule(struct xen *x);
static void finish_close(struct xen *x);

static void
batch_work_cb(uv_work_t *req)
{
	struct xen_batch *b = req->data;
	size_t i;

	for (i = 0; i < b->n; i++) {
		if (b->r[i].what & RD_MEM)
			fetch_memory(b->x->wxs, b->r[i].domid, &b->r[i]);
		if (b->r[i].what & RD_GUEST)
			fetch_guest(b->x->wxs, b->r[i].domid, &b->r[i]);
	}
}

static void
batch_done_cb(uv_work_t *req, int status)
{
	struct xen_batch *b = req->data;
	struct xen *x = b->x;
	struct xen_dom *d;
	size_t i;

	/* Still in flight while its events run: a callback that closes the
	 * driver leaves the freeing to the end of this one. */
	for (i = 0; i < b->n; i++) {
		struct xen_read *r = &b->r[i];

		d = x->closing || status < 0 ? NULL : dom_find(x->hv, r->domid);
		if (d != NULL && (r->what & RD_MEM) && r->mem_gen == d->mem_gen)
			apply_memory(x, d, r);
		if (d != NULL && (r->what & RD_GUEST))
			apply_guest(x, d, r);
		msg_free(r->g ? &r->g->base : NULL);
	}
	x->inflight = NULL;
	free(b);
	if (x->closing)
		finish_close(x);
	else
		schedule(x);
}

static void
kick_cb(uv_timer_t *t)
{
	schedule(t->data);
}

/* Start reading every domain whose keys changed and whose last read is
 * XEN_READ_MIN_MS old, unless a batch is in flight (its end calls this
 * again); wake up for the next one that has to wait. */
static void
schedule(struct xen *x)
{
	struct hv *hv = x->hv;
	uint64_t now = uv_now(hv->loop), wait = UINT64_MAX;
	struct xen_batch *b;
	struct xen_dom *d;
	size_t i, n = 0;

	if (x->inflight != NULL || x->closing)
		return;
	for (i = 0; i < hv->nvms; i++) {
		d = (struct xen_dom *)hv->vms[i];
		if (d->want == 0)
			continue;
		if (d->next_ms <= now)
			n++;
		else if (d->next_ms - now < wait)
			wait = d->next_ms - now;
	}
	if (n > 0) {
		b = calloc(1, sizeof(*b) + n * sizeof(b->r[0]));
		if (b == NULL) {
			wait = XEN_READ_MIN_MS;	/* try again */
			goto arm;
		}
		b->x = x;
		b->req.data = b;
		for (i = 0; i < hv->nvms && b->n < n; i++) {
			d = (struct xen_dom *)hv->vms[i];
			if (d->want == 0 || d->next_ms > now)
				continue;
			b->r[b->n].domid = d->domid;
			b->r[b->n].what = d->want;
			b->r[b->n].mem_gen = d->mem_gen;
			b->n++;
			d->want = 0;
			d->next_ms = now + XEN_READ_MIN_MS;
		}
		if (uv_queue_work(hv->loop, &b->req, batch_work_cb,
		    batch_done_cb) < 0) {
			free(b);
			wait = XEN_READ_MIN_MS;
			goto arm;
		}
		x->inflight = b;
	}
arm:
	if (wait != UINT64_MAX)
		uv_timer_start(&x->kick, kick_cb, wait, 0);
}

/* A watch says d's keys changed: read them once allowed. Events while a
 * read is already due fold into it. */
static void
want_read(struct xen *x, struct xen_dom *d, unsigned what)
{
	/* Due already: the read that is scheduled (a batch in flight ends
	 * with schedule(), the kick timer waits for it) covers this too,
	 * and a flood of events costs no walk over every domain. */
	if ((d->want & what) == what) {
		x->hv->stats.watch_coalesced++;
		return;
	}
	d->want |= what;
	schedule(x);
}

static void
dom_add(struct xen *x, unsigned domid)
{
	struct xen_dom *d;
	char path[128], *name;

	d = calloc(1, sizeof(*d));
	if (d == NULL)
		return;
	d->domid = domid;
	d->seen = true;
	name = xread(x->xs, XBT_NULL, DOM_ROOT "/%u/name", domid);
	if (name != NULL && hv_id_valid(name, strlen(name)))
		snprintf(d->pub.id, sizeof(d->pub.id), "%s", name);
	else
		snprintf(d->pub.id, sizeof(d->pub.id), "domain-%u", domid);
	free(name);
	if (hv_vm_register(x->hv, &d->pub) < 0) {
		free(d);
		return;
	}
	hv_emit(x->hv, HV_EV_ADDED, &d->pub);
	/* Read at once; the watches' first events fold into this. */
	d->want = RD_MEM | RD_GUEST;
	schedule(x);
	snprintf(d->tok_seq, sizeof(d->tok_seq), "seq/%u", domid);
	snprintf(d->tok_mem, sizeof(d->tok_mem), "mem/%u", domid);
	snprintf(path, sizeof(path), DOM_ROOT "/%u/data/mm/agent_seq", domid);
	if (!xs_watch(x->xs, path, d->tok_seq))
		log_debug("xen: watch %s: %s", path, strerror(errno));
	snprintf(path, sizeof(path), DOM_ROOT "/%u/memory", domid);
	if (!xs_watch(x->xs, path, d->tok_mem))
		log_debug("xen: watch %s: %s", path, strerror(errno));
}

static void
dom_remove(struct xen *x, struct xen_dom *d, bool announce)
{
	char path[128];

	if (announce)
		hv_emit(x->hv, HV_EV_REMOVED, &d->pub);
	snprintf(path, sizeof(path), DOM_ROOT "/%u/data/mm/agent_seq",
	    d->domid);
	xs_unwatch(x->xs, path, d->tok_seq);
	snprintf(path, sizeof(path), DOM_ROOT "/%u/memory", d->domid);
	xs_unwatch(x->xs, path, d->tok_mem);
	hv_vm_unregister(x->hv, &d->pub);
	free(d);
}

static void
rescan(struct xen *x)
{
	struct hv *hv = x->hv;
	struct xen_dom *d;
	unsigned n = 0, i;
	char **ents;
	uint64_t id;
	size_t k;

	ents = xs_directory(x->xs, XBT_NULL, DOM_ROOT, &n);
	for (k = 0; k < hv->nvms; k++)
		((struct xen_dom *)hv->vms[k])->seen = false;
	for (i = 0; ents != NULL && i < n; i++) {
		if (!parse_u64(ents[i], &id) || id == 0 || id >= 0x7ff0)
			continue;	/* dom0 and the special ids */
		d = dom_find(hv, (unsigned)id);
		if (d != NULL)
			d->seen = true;
		else
			dom_add(x, (unsigned)id);
	}
	free(ents);
	for (k = hv->nvms; k-- > 0;) {
		d = (struct xen_dom *)hv->vms[k];
		if (!d->seen)
			dom_remove(x, d, true);
	}
}

static void
watch_event(struct xen *x, const char *path, const char *token)
{
	struct xen_dom *d;
	uint64_t id;

	if (strcmp(token, "domains") == 0) {
		rescan(x);
		return;
	}
	if (strlen(token) < 5 || !parse_u64(token + 4, &id))
		return;
	d = dom_find(x->hv, (unsigned)id);
	if (d == NULL)
		return;
	if (strncmp(token, "seq/", 4) == 0)
		want_read(x, d, RD_GUEST);
	else if (strncmp(token, "mem/", 4) == 0)
		want_read(x, d, RD_MEM);
}

static void
poll_cb(uv_poll_t *p, int status, int events)
{
	struct xen *x = p->data;
	char **vec;

	while ((vec = xs_check_watch(x->xs)) != NULL) {
		watch_event(x, vec[XS_WATCH_PATH], vec[XS_WATCH_TOKEN]);
		free(vec);
	}
}

static void
done_closed_cb(uv_handle_t *h)
{
	free(h->data);
}

static void
done_timer_cb(uv_timer_t *t)
{
	struct xen_done *d = t->data, **pp;

	for (pp = &d->x->done; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == d) {
			*pp = d->next;
			break;
		}
	}
	if (d->cb != NULL)
		d->cb(d->x->hv, d->status, d->arg);
	uv_close((uv_handle_t *)t, done_closed_cb);
}

static int
defer_done(struct xen *x, int status, hv_done_cb cb, void *arg)
{
	struct xen_done *d = calloc(1, sizeof(*d));

	if (d == NULL)
		return -ENOMEM;
	d->x = x;
	d->cb = cb;
	d->arg = arg;
	d->status = status;
	uv_timer_init(x->hv->loop, &d->timer);
	d->timer.data = d;
	uv_timer_start(&d->timer, done_timer_cb, 0, 0);
	d->next = x->done;
	x->done = d;
	return 0;
}

/* Write a key from the loop: 0, -EACCES or -EPERM (xenstored's
 * permissions), or -EIO. */
static int
xwrite(struct xen *x, const char *path, const char *val)
{
	int r;

	if (xs_write(x->xs, XBT_NULL, path, val, (unsigned)strlen(val)))
		return 0;
	r = errno ? -errno : -EIO;
	log_debug("xen: write %s: %s", path, strerror(-r));
	return r == -EACCES || r == -EPERM ? r : -EIO;
}

static int
xen_set_target(struct hv *hv, struct hv_vm *vm, uint64_t target_kib,
    hv_done_cb cb, void *arg)
{
	struct xen *x = hv->priv;
	struct xen_dom *d = (struct xen_dom *)vm;
	char path[128], val[32];
	uint64_t max;
	char *s;
	int n;

	if (x == NULL)
		return -ENOTCONN;
	/* static-max is read now, not taken from the watch's last value:
	 * the toolstack may have lowered it since. */
	s = xread(x->xs, XBT_NULL, DOM_ROOT "/%u/memory/static-max",
	    d->domid);
	if (!parse_u64(s, &max)) {
		free(s);
		log_debug("xen: domain \"%s\": no memory/static-max",
		    d->pub.id);
		return -EIO;
	}
	free(s);
	if (target_kib > max || target_kib == 0)
		return -ERANGE;
	snprintf(path, sizeof(path), DOM_ROOT "/%u/memory/target", d->domid);
	snprintf(val, sizeof(val), "%" PRIu64, target_kib);
	n = xwrite(x, path, val);
	if (n < 0)
		return n;
	read_memory(x, d);
	return defer_done(x, 0, cb, arg);
}

/*
 * The guest agent watches its domain's control/mm/reclaim: the request as
 * one line it parses strictly, written whole by one xs_write() so that
 * the guest never reads half of it. The node is created by dom0 and so
 * gets the permissions of control/ (libxl: dom0's, readable by the
 * domain); the guest reads it and cannot write it.
 */
static int
xen_reclaim(struct hv *hv, struct hv_vm *vm, const Mm__V1__ReclaimRequest *rq)
{
	struct xen *x = hv->priv;
	struct xen_dom *d = (struct xen_dom *)vm;
	char path[128], val[80];

	if (x == NULL)
		return -ENOTCONN;
	snprintf(path, sizeof(path), DOM_ROOT "/%u/" XEN_RECLAIM_KEY,
	    d->domid);
	snprintf(val, sizeof(val), "%" PRIu64 " %" PRIu64 " %.2f", rq->seq,
	    rq->kib, rq->psi_budget_pct);
	return xwrite(x, path, val);
}

static int
xen_refresh(struct hv *hv, struct hv_vm *vm, hv_done_cb cb, void *arg)
{
	struct xen *x = hv->priv;

	if (x == NULL)
		return -ENOTCONN;
	read_memory(x, (struct xen_dom *)vm);
	return defer_done(x, 0, cb, arg);
}

static int
xen_start(struct hv *hv)
{
	struct xen *x;
	int r, fd;

	x = calloc(1, sizeof(*x));
	if (x == NULL)
		return -ENOMEM;
	x->hv = hv;
	x->xs = xs_open(0);
	if (x->xs == NULL) {
		r = errno ? -errno : -ENOENT;
		log_debug("xen: xs_open: %s", strerror(-r));
		free(x);
		return r;
	}
	hv->priv = x;
	x->wxs = xs_open(0);
	if (x->wxs == NULL)
		return errno ? -errno : -ENOENT;
	uv_timer_init(hv->loop, &x->kick);
	x->kick.data = x;
	x->kick_init = true;
	fd = xs_fileno(x->xs);
	if (fd < 0 || uv_poll_init(hv->loop, &x->poll, fd) < 0)
		return -EIO;
	x->poll.data = x;
	x->poll_init = true;
	if (!xs_watch(x->xs, "@introduceDomain", "domains") ||
	    !xs_watch(x->xs, "@releaseDomain", "domains"))
		return errno ? -errno : -EIO;
	rescan(x);
	return uv_poll_start(&x->poll, UV_READABLE, poll_cb) < 0 ? -EIO : 0;
}

/* The last of: the handles' close callbacks and the batch in flight. */
static void
finish_close(struct xen *x)
{
	struct hv *hv = x->hv;

	if (x->open_handles > 0 || x->inflight != NULL)
		return;
	xs_close(x->xs);
	if (x->wxs != NULL)
		xs_close(x->wxs);
	free(x);
	hv_closed(hv);
}

static void
xen_handle_closed_cb(uv_handle_t *h)
{
	struct xen *x = h->data;

	x->open_handles--;
	finish_close(x);
}

static void
xen_close(struct hv *hv)
{
	struct xen *x = hv->priv;

	if (x == NULL) {
		hv_closed(hv);
		return;
	}
	x->closing = true;
	while (hv->nvms > 0)
		dom_remove(x, (struct xen_dom *)hv->vms[hv->nvms - 1], false);
	/* Closed before the other handles, so freed before x is. */
	while (x->done != NULL) {
		struct xen_done *d = x->done;

		x->done = d->next;
		uv_close((uv_handle_t *)&d->timer, done_closed_cb);
	}
	/* A batch not started yet is dropped; one running ends first. */
	if (x->inflight != NULL)
		uv_cancel((uv_req_t *)&x->inflight->req);
	if (x->kick_init) {
		x->open_handles++;
		uv_close((uv_handle_t *)&x->kick, xen_handle_closed_cb);
	}
	if (x->poll_init) {
		x->open_handles++;
		uv_close((uv_handle_t *)&x->poll, xen_handle_closed_cb);
	}
	finish_close(x);
}

#endif

const struct hv_ops hv_xen_ops = {
	.name = "xen",
	.start = xen_start,
#ifdef MM_HAVE_XENSTORE
	.set_target = xen_set_target,
	.reclaim = xen_reclaim,
	.refresh = xen_refresh,
#endif
	.close = xen_close,
};
