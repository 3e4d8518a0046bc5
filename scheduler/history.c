/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Each VM's hourly peaks (the policy's history term, history_hours) kept
 * across restarts in [scheduler] history_file: saved every history_save
 * and at stop, read at start. A host's saved history waits until its
 * first report and goes to its engine state then; what no report claims
 * is saved again until it is a week old.
 *
 * The file, in this machine's byte order (it is this scheduler's own):
 *   "MMHIST01", then records until the end:
 *   u8 host id length, the id; u8 VM id length, the id;
 *   u64 newest hour (Unix time / 3600); u32 hours (1..168);
 *   hours x u32: the largest use of each hour, newest first, MiB.
 * The save is written by a thread of the loop's pool (it may be tens of
 * MiB for a large shard: it must not hold the loop), to a temporary file
 * then renamed, so a crash leaves the old file whole.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "scheduler.h"
#include "topology.h"

#define HIST_MAGIC	"MMHIST01"
/* VMs of one host read at most (a report carries at most 4,096). */
#define HIST_VMS_MAX	4096

struct buf {
	uint8_t *p;
	size_t len;
	size_t cap;
	bool failed;
};

static void
put(struct buf *b, const void *data, size_t len)
{
	if (b->failed)
		return;
	if (b->len + len > b->cap) {
		size_t cap = b->cap ? b->cap : 65536;
		uint8_t *p;

		while (cap < b->len + len)
			cap *= 2;
		p = realloc(b->p, cap);
		if (p == NULL) {
			b->failed = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, len);
	b->len += len;
}

static void
put_record(struct buf *b, const char *host, const struct pe_vm_history *v)
{
	uint8_t hl = (uint8_t)strlen(host), vl = (uint8_t)strlen(v->vm_id);

	put(b, &hl, 1);
	put(b, host, hl);
	put(b, &vl, 1);
	put(b, v->vm_id, vl);
	put(b, &v->hour, sizeof(v->hour));
	put(b, &v->hours, sizeof(v->hours));
	put(b, v->mib, v->hours * sizeof(v->mib[0]));
}

/* ---- reading ---- */

static bool
get(FILE *f, void *p, size_t len)
{
	return fread(p, 1, len, f) == len;
}

/* The next record of f into host and *v: 1, 0 at the end, -1 when it is
 * not one (why says what). */
static int
get_record(FILE *f, char host[65], struct pe_vm_history *v,
    const char **why)
{
	uint8_t hl, vl;

	if (!get(f, &hl, 1))
		return 0;
	memset(v, 0, sizeof(*v));
	*why = "an id of a bad length";
	if (hl == 0 || hl > 64)
		return -1;
	*why = "truncated";
	if (!get(f, host, hl) || !get(f, &vl, 1))
		return -1;
	if (vl == 0 || vl > PE_ID_MAX) {
		*why = "an id of a bad length";
		return -1;
	}
	if (!get(f, v->vm_id, vl) || !get(f, &v->hour, sizeof(v->hour)) ||
	    !get(f, &v->hours, sizeof(v->hours)))
		return -1;
	host[hl] = '\0';
	v->vm_id[vl] = '\0';
	if (v->hours == 0 || v->hours > PE_HIST_HOURS) {
		*why = "hours out of range";
		return -1;
	}
	if (!get(f, v->mib, v->hours * sizeof(v->mib[0])))
		return -1;
	if (!topo_id_valid(host) || strlen(host) != hl ||
	    strlen(v->vm_id) != vl) {
		*why = "a bad host or VM id";
		return -1;
	}
	return 1;
}

bool
history_recent(const struct pe_vm_history *v, uint64_t now_hour)
{
	/* A week old or from the future (a clock that is wrong): worth
	 * nothing. */
	return v->hour + PE_HIST_HOURS > now_hour && v->hour <= now_hour;
}

static struct hist_host *
pending_find(struct scheduler *s, const char *host)
{
	for (size_t i = 0; i < s->hist.n; i++)
		if (strcmp(s->hist.hosts[i].id, host) == 0)
			return &s->hist.hosts[i];
	return NULL;
}

static int
pending_add(struct scheduler *s, const char *host,
    const struct pe_vm_history *v)
{
	struct hist_host *h = pending_find(s, host);
	struct pe_vm_history *vms;

	if (h == NULL) {
		if (s->hist.n >= (size_t)s->conf.max_hosts)
			return -ENOSPC;
		if (s->hist.n == s->hist.cap) {
			size_t cap = s->hist.cap ? 2 * s->hist.cap : 64;
			struct hist_host *p = realloc(s->hist.hosts,
			    cap * sizeof(*p));

			if (p == NULL)
				return -ENOMEM;
			s->hist.hosts = p;
			s->hist.cap = cap;
		}
		h = &s->hist.hosts[s->hist.n++];
		memset(h, 0, sizeof(*h));
		snprintf(h->id, sizeof(h->id), "%s", host);
	}
	if (h->n >= HIST_VMS_MAX)
		return -ENOSPC;
	vms = realloc(h->vms, (h->n + 1) * sizeof(*vms));
	if (vms == NULL)
		return -ENOMEM;
	h->vms = vms;
	h->vms[h->n++] = *v;
	return 0;
}

int
history_pending_merge(struct scheduler *s, const char *host,
    const struct pe_vm_history *v, uint64_t expires_ms)
{
	struct hist_host *h = pending_find(s, host);
	int r;

	for (size_t i = 0; h != NULL && i < h->n; i++)
		if (strcmp(h->vms[i].vm_id, v->vm_id) == 0) {
			history_merge(&h->vms[i], v);
			if (h->expires_ms != 0 && h->expires_ms < expires_ms)
				h->expires_ms = expires_ms;
			return 0;
		}
	r = pending_add(s, host, v);
	if (r == 0 && h == NULL) {
		h = pending_find(s, host);
		h->expires_ms = expires_ms;
	}
	return r;
}

void
history_expire(struct scheduler *s, uint64_t now_ms)
{
	for (size_t i = 0; i < s->hist.n;) {
		struct hist_host *h = &s->hist.hosts[i];

		if (h->expires_ms == 0 || h->expires_ms > now_ms) {
			i++;
			continue;
		}
		free(h->vms);
		*h = s->hist.hosts[--s->hist.n];
	}
}

/* history_file, or scheduler.history in state_file's directory. */
static void
set_path(struct scheduler *s)
{
	const char *state = s->conf.state_file, *slash;

	s->hist.s = s;
	if (s->conf.history_file != NULL) {
		snprintf(s->hist.path, sizeof(s->hist.path), "%s",
		    s->conf.history_file);
		return;
	}
	slash = state != NULL ? strrchr(state, '/') : NULL;
	if (slash == NULL)
		snprintf(s->hist.path, sizeof(s->hist.path),
		    "scheduler.history");
	else
		snprintf(s->hist.path, sizeof(s->hist.path),
		    "%.*s/scheduler.history", (int)(slash - state), state);
}

int
history_read(struct scheduler *s, FILE *f, const char *path,
    uint64_t now_hour)
{
	const char *why = NULL;
	char magic[sizeof(HIST_MAGIC) - 1], host[65];
	struct pe_vm_history v;
	size_t kept = 0, old = 0;
	int r;

	if (!get(f, magic, sizeof(magic)) ||
	    memcmp(magic, HIST_MAGIC, sizeof(magic)) != 0) {
		s->n.history_refused++;
		log_warnx("history: \"%s\" is not a history file: not read, "
		    "and not saved over (move it away, or set history_file)",
		    path);
		return -EINVAL;
	}
	while ((r = get_record(f, host, &v, &why)) > 0) {
		if (!history_recent(&v, now_hour)) {
			old++;
			continue;
		}
		if (pending_add(s, host, &v) < 0) {
			s->n.history_refused++;
			why = "too many hosts or VMs, or out of memory";
			r = -1;
			break;
		}
		kept++;
	}
	if (r < 0) {
		s->n.history_refused++;
		log_warnx("history: \"%s\": %s after %zu VMs; the rest is "
		    "ignored", path, why, kept);
	}
	log_info("history: %zu VMs of %zu hosts from \"%s\" (%zu older than "
	    "a week, dropped)", kept, s->hist.n, path, old);
	return 0;
}

void
history_load(struct scheduler *s)
{
	FILE *f;

	set_path(s);
	if (s->hist.path[0] == '\0')
		return;
	f = fopen(s->hist.path, "rb");
	if (f == NULL) {
		if (errno != ENOENT)
			log_warn("history: cannot read \"%s\"", s->hist.path);
		return;
	}
	if (history_read(s, f, s->hist.path,
	    clock_ms(CLOCK_REALTIME) / 3600000) == -EINVAL)
		s->hist.path[0] = '\0';	/* not ours: never saved over */
	fclose(f);
}

void
history_claim(struct scheduler *s, struct host *h)
{
	struct hist_host *p = pending_find(s, h->id);

	if (p == NULL)
		return;
	for (size_t i = 0; i < p->n; i++)
		if (pe_history_put(h->pe, &p->vms[i]) < 0)
			s->n.history_refused++;
	free(p->vms);
	*p = s->hist.hosts[--s->hist.n];
}

/* ---- saving ---- */

static void
save_work(uv_work_t *w)
{
	struct sched_history *hs = w->data;
	char tmp[sizeof(hs->path) + 8];
	int fd, r = 0;

	snprintf(tmp, sizeof(tmp), "%s.tmp", hs->path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		hs->error = errno;
		return;
	}
	for (size_t off = 0; off < hs->len && r == 0;) {
		ssize_t n = write(fd, hs->data + off, hs->len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			r = n < 0 ? errno : EIO;
		else
			off += (size_t)n;
	}
	if (r == 0 && fsync(fd) < 0)
		r = errno;
	if (close(fd) < 0 && r == 0)
		r = errno;
	if (r == 0 && rename(tmp, hs->path) < 0)
		r = errno;
	if (r != 0)
		unlink(tmp);
	hs->error = r;
}

static void start_save(struct scheduler *s);

static void
save_done(uv_work_t *w, int status)
{
	struct sched_history *hs = w->data;
	struct scheduler *s = hs->s;

	hs->busy = false;
	free(hs->data);
	hs->data = NULL;
	if (status == 0 && hs->error != 0) {
		s->n.history_save_failed++;
		log_warnx_limited(&s->lim_history, "history: cannot save "
		    "\"%s\": %s", hs->path, strerror(hs->error));
	} else if (status == 0) {
		s->n.history_saved++;
	}
	if (hs->again) {
		hs->again = false;
		start_save(s);
	}
}

/* Snapshot every VM's history on the loop (a copy, fast), write it on a
 * thread. */
static void
start_save(struct scheduler *s)
{
	struct sched_history *hs = &s->hist;
	uint64_t now_hour = clock_ms(CLOCK_REALTIME) / 3600000;
	struct pe_vm_history v;
	struct buf b = { 0 };
	uint64_t t0 = clock_ms(CLOCK_MONOTONIC);
	size_t n = 0;

	if (hs->path[0] == '\0')
		return;
	if (hs->busy) {
		hs->again = true;
		return;
	}
	put(&b, HIST_MAGIC, sizeof(HIST_MAGIC) - 1);
	for (size_t i = 0; i < s->cap; i++) {
		const struct host *h = s->hosts[i];

		/* Every VM with history: one without may come before. */
		for (size_t k = 0; h != NULL && k < pe_history_vms(h->pe);
		    k++)
			if (pe_history_get(h->pe, k, &v)) {
				put_record(&b, h->id, &v);
				n++;
			}
	}
	/* Saved, not claimed yet: kept while less than a week old. */
	for (size_t i = 0; i < hs->n; i++)
		for (size_t k = 0; k < hs->hosts[i].n; k++)
			if (hs->hosts[i].vms[k].hour + PE_HIST_HOURS >
			    now_hour)
				put_record(&b, hs->hosts[i].id,
				    &hs->hosts[i].vms[k]);
	if (b.failed) {
		free(b.p);
		s->n.history_save_failed++;
		log_warnx_limited(&s->lim_history, "history: out of memory "
		    "for a save");
		return;
	}
	/* The part on the loop; the write follows on a thread. */
	log_info("history: %zu VMs to \"%s\" (%zu KiB, %llu ms on the "
	    "loop)", n, hs->path, b.len / 1024,
	    (unsigned long long)(clock_ms(CLOCK_MONOTONIC) - t0));
	hs->data = b.p;
	hs->len = b.len;
	hs->work.data = hs;
	hs->busy = true;
	if (uv_queue_work(s->loop, &hs->work, save_work, save_done) < 0) {
		hs->busy = false;
		free(hs->data);
		hs->data = NULL;
		s->n.history_save_failed++;
	}
}

static void
save_cb(uv_timer_t *t)
{
	start_save(t->data);
}

void
history_start(struct scheduler *s)
{
	if (s->hist.s == NULL)
		set_path(s);
	s->hist.started = true;
	uv_timer_init(s->loop, &s->hist.timer);
	s->hist.timer.data = s;
	uv_timer_start(&s->hist.timer, save_cb,
	    (uint64_t)s->conf.history_save_ms,
	    (uint64_t)s->conf.history_save_ms);
}

void
history_stop(struct scheduler *s)
{
	if (!s->hist.started)
		return;
	s->hist.started = false;
	uv_close((uv_handle_t *)&s->hist.timer, NULL);
	/* The last save: the loop runs until its thread is done. */
	start_save(s);
}

void
history_free(struct scheduler *s)
{
	for (size_t i = 0; i < s->hist.n; i++)
		free(s->hist.hosts[i].vms);
	free(s->hist.hosts);
	free(s->hist.data);
	memset(&s->hist, 0, sizeof(s->hist));
}
