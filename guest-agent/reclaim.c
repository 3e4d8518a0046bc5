/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Proactive reclaim on the host's request (ReclaimRequest), the one thing
 * the agent accepts from the host, on its control port
 * (/dev/virtio-ports/org.mm.control.0, read-only here):
 *
 * - frames are length-prefixed (4 bytes, big endian) ReclaimRequests of at
 *   most 256 bytes, unpacked and validated; anything else is counted,
 *   logged (rate-limited) and dropped, and a frame too long closes the
 *   port (reopened a second later);
 * - a request asks for at most kib, capped at [reclaim] max; the agent
 *   writes [reclaim] step at a time to <cgroup>/memory.reclaim (cgroup v2;
 *   the kernel reclaims from the cold end of its LRUs: with swap on zram
 *   or zswap, anonymous memory is compressed, not lost), each write on the
 *   loop's thread pool, a short pause between steps;
 * - around each step it reads the memory stall (/proc/pressure/memory,
 *   some total): when the stall over the step is above the request's
 *   psi_budget_pct, it stops (PRESSURE); when the kernel finds nothing
 *   more to reclaim (EAGAIN: no swap, or only hot memory left), it stops
 *   (EXHAUSTED); a request of 0 KiB stops it;
 * - its progress goes into every report (GuestStats.reclaim).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "guest-agent.h"
#include "log.h"
#include "msg.h"

#define CONTROL_FRAME_MAX	256
#define RETRY_MS		1000
#define STEP_PAUSE_MS		100

static struct log_limit lim_bad;

/* The stall so far: PSI memory "some total" in us, or -1. */
static int64_t
stall_us(const char *proc_root)
{
	Mm__V1__Psi psi;
	int r = hs_load_psi(proc_root, &psi, NULL);

	if (r < 0 || !psi.has_some_total_us)
		return -1;
	return (int64_t)psi.some_total_us;
}

static void reclaim_next(struct agent_reclaim *rc);

static void
pause_cb(uv_timer_t *t)
{
	reclaim_next(t->data);
}

static void
step_work(uv_work_t *w)
{
	struct agent_reclaim *rc = w->data;
	char buf[32];
	int fd;
	ssize_t n;

	rc->step_err = 0;
	fd = open(rc->path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		rc->step_err = -errno;
		return;
	}
	snprintf(buf, sizeof(buf), "%llu",
	    (unsigned long long)rc->step_kib * 1024);
	n = write(fd, buf, strlen(buf));
	if (n < 0)
		rc->step_err = -errno;
	close(fd);
}

static void
finish(struct agent_reclaim *rc, Mm__V1__ReclaimState st)
{
	rc->state = st;
	rc->running = false;
	log_info("reclaim %llu: %s after %llu KiB (the last step's stall "
	    "%.1f %%)", (unsigned long long)rc->seq,
	    st == MM__V1__RECLAIM_STATE__RECLAIM_STATE_DONE ? "done" :
	    st == MM__V1__RECLAIM_STATE__RECLAIM_STATE_PRESSURE ?
	    "stopped: stall above the budget" :
	    st == MM__V1__RECLAIM_STATE__RECLAIM_STATE_EXHAUSTED ?
	    "stopped: nothing more to reclaim" :
	    st == MM__V1__RECLAIM_STATE__RECLAIM_STATE_STOPPED ?
	    "stopped by the host" : "failed",
	    (unsigned long long)rc->reclaimed_kib, rc->stall_pct);
}

static void
step_done(uv_work_t *w, int status)
{
	struct agent_reclaim *rc = w->data;
	int64_t stall = stall_us(rc->proc_root);
	uint64_t now = clock_ms(CLOCK_MONOTONIC);

	rc->busy = false;
	if (rc->closing)
		return;
	if (status == 0 && rc->step_err == 0)
		rc->reclaimed_kib += rc->step_kib;
	/* Stall in us over the step's ms: a step shorter than a
	 * millisecond counts as one. */
	if (stall >= 0 && rc->stall0 >= 0)
		rc->stall_pct = (double)(stall - rc->stall0) / 10.0 /
		    (double)(now > rc->t0_ms ? now - rc->t0_ms : 1);
	if (!rc->running)
		return;		/* stopped meanwhile */
	if (status < 0 || (rc->step_err != 0 && rc->step_err != -EAGAIN)) {
		log_warnx("reclaim: writing \"%s\": %s", rc->path,
		    strerror(status < 0 ? EIO : -rc->step_err));
		finish(rc, MM__V1__RECLAIM_STATE__RECLAIM_STATE_FAILED);
	} else if (rc->stall_pct > rc->budget_pct) {
		finish(rc, MM__V1__RECLAIM_STATE__RECLAIM_STATE_PRESSURE);
	} else if (rc->step_err == -EAGAIN) {
		finish(rc, MM__V1__RECLAIM_STATE__RECLAIM_STATE_EXHAUSTED);
	} else if (rc->reclaimed_kib >= rc->want_kib) {
		finish(rc, MM__V1__RECLAIM_STATE__RECLAIM_STATE_DONE);
	} else {
		uv_timer_start(&rc->pause, pause_cb, STEP_PAUSE_MS, 0);
	}
}

static void
reclaim_next(struct agent_reclaim *rc)
{
	uint64_t left;

	if (!rc->running || rc->busy)
		return;
	left = rc->want_kib - rc->reclaimed_kib;
	rc->step_kib = left < rc->max_step_kib ? left : rc->max_step_kib;
	rc->stall0 = stall_us(rc->proc_root);
	rc->t0_ms = clock_ms(CLOCK_MONOTONIC);
	rc->work.data = rc;
	rc->busy = true;
	if (uv_queue_work(rc->loop, &rc->work, step_work, step_done) < 0) {
		rc->busy = false;
		finish(rc, MM__V1__RECLAIM_STATE__RECLAIM_STATE_FAILED);
	}
}

void
reclaim_request(struct agent_reclaim *rc, const Mm__V1__ReclaimRequest *rq)
{
	if (rq->seq == rc->seq && (rc->running || rq->kib > 0))
		return;		/* the same again */
	if (rq->kib == 0) {
		if (rc->running)
			finish(rc, MM__V1__RECLAIM_STATE__RECLAIM_STATE_STOPPED);
		/* A stop before any request: reports now carry this seq,
		 * and a state of UNSPECIFIED would not validate. */
		else if (rc->state ==
		    MM__V1__RECLAIM_STATE__RECLAIM_STATE_UNSPECIFIED)
			rc->state = MM__V1__RECLAIM_STATE__RECLAIM_STATE_STOPPED;
		rc->seq = rq->seq;
		return;
	}
	rc->seq = rq->seq;
	rc->want_kib = rq->kib < rc->max_kib ? rq->kib : rc->max_kib;
	rc->budget_pct = rq->psi_budget_pct;
	rc->reclaimed_kib = 0;
	rc->stall_pct = 0;
	rc->state = MM__V1__RECLAIM_STATE__RECLAIM_STATE_RUNNING;
	if (access(rc->path, W_OK) < 0) {
		log_warn("reclaim %llu: \"%s\"", (unsigned long long)rq->seq,
		    rc->path);
		rc->running = true;
		finish(rc, MM__V1__RECLAIM_STATE__RECLAIM_STATE_FAILED);
		return;
	}
	log_info("reclaim %llu: up to %llu KiB, %llu KiB a step, stall "
	    "budget %.1f %%", (unsigned long long)rq->seq,
	    (unsigned long long)rc->want_kib,
	    (unsigned long long)rc->max_step_kib, rc->budget_pct);
	rc->running = true;
	reclaim_next(rc);
}

void
reclaim_status(const struct agent_reclaim *rc, struct agent_sample *s)
{
	s->has_reclaim = rc->seq != 0;
	s->reclaim_seq = rc->seq;
	s->reclaim_kib = rc->reclaimed_kib;
	s->reclaim_state = (int)rc->state;
	/* A step's stall can read above 100 % (several tasks); reports
	 * carry a percent. */
	s->reclaim_stall_pct = rc->stall_pct > 100 ? 100 :
	    rc->stall_pct < 0 ? 0 : rc->stall_pct;
}

/* The one door of a request, whichever way it came (from names it): rq
 * NULL is a refusal, counted and logged with why; else it is acted on. */
static void
take(struct agent_reclaim *rc, const char *from,
    const Mm__V1__ReclaimRequest *rq, const char *why)
{
	if (rq == NULL) {
		rc->refused++;
		log_warnx_limited(&lim_bad, "%s: request refused: %s", from,
		    why);
		return;
	}
	reclaim_request(rc, rq);
}

/* Strict decimal up to the byte end stops at: digits only, one dot at
 * most where frac allows it. Returns the byte after it, or NULL. */
static const char *
decimal(const char *s, char end, bool frac, uint64_t *ret_u, double *ret_d)
{
	const char *p = s;
	unsigned dots = 0;
	char *q;

	for (; (*p >= '0' && *p <= '9') || (frac && *p == '.'); p++)
		dots += *p == '.';
	if (p == s || *p != end || *s == '.' || p[-1] == '.' || dots > 1)
		return NULL;
	errno = 0;
	if (frac)
		*ret_d = strtod(s, &q);
	else
		*ret_u = strtoull(s, &q, 10);
	if (errno != 0 || q != p)
		return NULL;
	return end == '\0' ? p : p + 1;
}

int
reclaim_request_text(struct agent_reclaim *rc, const char *from,
    const char *text, size_t len)
{
	Mm__V1__ReclaimRequest rq = MM__V1__RECLAIM_REQUEST__INIT;
	char why[160];
	const char *p = text;

	if (len > RECLAIM_TEXT_MAX || strlen(text) != len ||
	    (p = decimal(p, ' ', false, &rq.seq, NULL)) == NULL ||
	    (p = decimal(p, ' ', false, &rq.kib, NULL)) == NULL ||
	    decimal(p, '\0', true, NULL, &rq.psi_budget_pct) == NULL) {
		/* Whoever could write the key chose these bytes: quoted
		 * and cut short in the log. */
		snprintf(why, sizeof(why), "\"%.60s\" is not \"<seq> <kib> "
		    "<psi_budget_pct>\"", text);
		take(rc, from, NULL, why);
		return -EINVAL;
	}
	rq.has_seq = rq.has_kib = rq.has_psi_budget_pct = true;
	if (msg_validate(MSG_RECLAIM_REQUEST, &rq.base, why, sizeof(why)) < 0) {
		take(rc, from, NULL, why);
		return -EINVAL;
	}
	take(rc, from, &rq, NULL);
	return 0;
}

/* ---- the control port ---- */

static void control_open(struct agent_reclaim *rc);

static void
free_handle_cb(uv_handle_t *h)
{
	free(h);
}

static void
control_close(struct agent_reclaim *rc)
{
	if (rc->fd < 0)
		return;
	if (rc->poll != NULL) {
		uv_close((uv_handle_t *)rc->poll, free_handle_cb);
		rc->poll = NULL;
	}
	close(rc->fd);
	rc->fd = -1;
	rc->len = 0;
}

static void poll_cb(uv_poll_t *p, int status, int events);

/* Open again, or watch again the port kept open while the host side was
 * away. */
static void
retry_cb(uv_timer_t *t)
{
	struct agent_reclaim *rc = t->data;

	if (rc->closing)
		return;
	if (rc->fd < 0)
		control_open(rc);
	else if (rc->poll != NULL)
		uv_poll_start(rc->poll, UV_READABLE, poll_cb);
}

/* Take the complete frames out of rc->buf. */
static void
frames(struct agent_reclaim *rc)
{
	while (rc->len >= 4) {
		uint32_t n = (uint32_t)rc->buf[0] << 24 |
		    (uint32_t)rc->buf[1] << 16 | (uint32_t)rc->buf[2] << 8 |
		    rc->buf[3];
		ProtobufCMessage *m;
		char why[128];

		if (n > CONTROL_FRAME_MAX) {
			rc->refused++;
			log_warnx_limited(&lim_bad, "control port: a frame of "
			    "%u bytes (at most %d): port reset", n,
			    CONTROL_FRAME_MAX);
			control_close(rc);
			uv_timer_start(&rc->retry, retry_cb, RETRY_MS, 0);
			return;
		}
		if (rc->len < 4 + n)
			return;
		if (msg_unpack(MSG_RECLAIM_REQUEST, rc->buf + 4, n, &m, why,
		    sizeof(why)) < 0)
			m = NULL;
		take(rc, "control port", (const Mm__V1__ReclaimRequest *)m,
		    why);
		msg_free(m);
		memmove(rc->buf, rc->buf + 4 + n, rc->len - 4 - n);
		rc->len -= 4 + n;
	}
}

static void
poll_cb(uv_poll_t *p, int status, int events)
{
	struct agent_reclaim *rc = p->data;
	ssize_t n;

	if (status == 0 && (events & UV_READABLE) != 0) {
		n = read(rc->fd, rc->buf + rc->len, sizeof(rc->buf) - rc->len);
		if (n > 0) {
			rc->len += (size_t)n;
			frames(rc);
			return;
		}
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0 && errno != EPIPE && errno != ECONNRESET) {
			/* Broken: open it again later. */
			control_close(rc);
			uv_timer_start(&rc->retry, retry_cb, RETRY_MS, 0);
			return;
		}
	}
	/*
	 * The host side is not connected (POLLHUP, or end of file): the
	 * port stays open, so that QEMU takes what the host writes when it
	 * connects and the kernel keeps it for us; epoll would report the
	 * hang-up at every turn of the loop, so look again in a while.
	 */
	uv_poll_stop(p);
	uv_timer_start(&rc->retry, retry_cb, RETRY_MS / 4, 0);
}

static void
control_open(struct agent_reclaim *rc)
{
	rc->fd = open(rc->port, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (rc->fd < 0) {
		uv_timer_start(&rc->retry, retry_cb, RETRY_MS, 0);
		return;
	}
	rc->poll = malloc(sizeof(*rc->poll));
	if (rc->poll == NULL || uv_poll_init(rc->loop, rc->poll, rc->fd) < 0) {
		free(rc->poll);
		rc->poll = NULL;
		close(rc->fd);
		rc->fd = -1;
		uv_timer_start(&rc->retry, retry_cb, RETRY_MS, 0);
		return;
	}
	rc->poll->data = rc;
	uv_poll_start(rc->poll, UV_READABLE, poll_cb);
}

int
reclaim_start(struct agent_reclaim *rc, uv_loop_t *loop,
    const struct agent_conf *conf, bool port)
{
	memset(rc, 0, sizeof(*rc));
	rc->fd = -1;
	rc->loop = loop;
	rc->proc_root = conf->proc_root;
	rc->max_kib = (uint64_t)conf->reclaim_max_kib;
	rc->max_step_kib = (uint64_t)conf->reclaim_step_kib;
	snprintf(rc->path, sizeof(rc->path), "%s/memory.reclaim",
	    conf->reclaim_cgroup);
	snprintf(rc->port, sizeof(rc->port), "%s", conf->control_port);
	uv_timer_init(loop, &rc->retry);
	uv_timer_init(loop, &rc->pause);
	rc->retry.data = rc->pause.data = rc;
	rc->started = true;
	if (rc->max_kib == 0) {
		log_info("reclaim on the host's request: off ([reclaim] max "
		    "is 0)");
		return -ENOTSUP;
	}
	if (!port)
		return 0;	/* requests come from xenstore */
	if (access(rc->port, F_OK) < 0) {
		log_info("reclaim on the host's request: no control port "
		    "\"%s\"", rc->port);
		return -ENOENT;
	}
	control_open(rc);
	return 0;
}

void
reclaim_stop(struct agent_reclaim *rc)
{
	if (!rc->started)
		return;
	rc->closing = true;
	rc->running = false;
	control_close(rc);
	uv_close((uv_handle_t *)&rc->retry, NULL);
	uv_close((uv_handle_t *)&rc->pause, NULL);
}
