/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The guest agent's channel as the kvm and libvirt drivers read it: a Unix
 * socket carrying length-prefixed (4 bytes, big endian) GuestStats frames.
 * Every frame is bounded by frame_max and validated; a guest that sends
 * more or garbage is cut off and reconnected by its driver later.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hv/hv_impl.h"
#include "log.h"

static void
agent_closed_cb(uv_handle_t *h)
{
	struct hv_agent *a = h->data;

	a->state = HV_AGENT_NONE;
	a->closed(a);
}

void
hv_agent_reset(struct hv_agent *a, bool ours)
{
	if (a->state == HV_AGENT_NONE || a->state == HV_AGENT_CLOSING)
		return;
	if (ours)
		a->hv->stats.agent_resets++;
	a->state = HV_AGENT_CLOSING;
	a->vm->agent_up = false;
	a->len = 0;
	uv_close((uv_handle_t *)&a->pipe, agent_closed_cb);
}

static void
agent_alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct hv_agent *a = h->data;
	size_t cap = 4 + a->hv->cfg.frame_max;

	buf->base = (char *)a->buf + a->len;
	buf->len = cap - a->len;
}

/* One complete frame: unpack, validate, hand over. */
static bool
agent_frame(struct hv_agent *a, const uint8_t *data, size_t len)
{
	struct hv *hv = a->hv;
	ProtobufCMessage *m;
	Mm__V1__GuestStats *g;
	char why[256];
	int r;

	r = msg_unpack(MSG_GUEST_STATS, data, len, &m, why, sizeof(why));
	if (r == -EBADMSG || r == -EMSGSIZE) {
		hv_reject(hv, a->vm, HV_REJECT_UNDECODABLE);
		log_debug("%s: vm \"%s\": undecodable agent frame: %s",
		    hv->ops->name, a->vm->id, why);
		return false;
	}
	if (r < 0) {
		hv_reject(hv, a->vm, HV_REJECT_INVALID);
		log_debug("%s: vm \"%s\": invalid agent frame: %s",
		    hv->ops->name, a->vm->id, why);
		return false;
	}
	hv->stats.frames++;
	a->seen_ms = uv_now(hv->loop);
	/* Where it came from is ours to say, not the guest's. */
	g = (Mm__V1__GuestStats *)m;
	g->has_source = 1;
	g->source = hv->cfg.type == HV_TYPE_SIM ?
	    MM__V1__STATS_SOURCE__STATS_SOURCE_SIM :
	    MM__V1__STATS_SOURCE__STATS_SOURCE_AGENT;
	if (hv_vm_set_guest(hv, a->vm, g) == 0)
		hv_emit(hv, HV_EV_GUEST, a->vm);
	return true;
}

static void
agent_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct hv_agent *a = s->data;
	size_t off = 0;
	uint32_t len;

	if (n < 0) {
		hv_agent_reset(a, false);
		return;
	}
	a->len += (size_t)n;
	while (a->len - off >= 4) {
		const uint8_t *p = a->buf + off;

		len = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
		    (uint32_t)p[2] << 8 | p[3];
		if (len > a->hv->cfg.frame_max) {
			hv_reject(a->hv, a->vm, HV_REJECT_TOO_BIG);
			log_debug("%s: vm \"%s\": agent frame of %" PRIu32
			    " bytes, dropping the connection",
			    a->hv->ops->name, a->vm->id, len);
			hv_agent_reset(a, true);
			return;
		}
		if (a->len - off - 4 < len)
			break;
		if (!agent_frame(a, p + 4, len)) {
			hv_agent_reset(a, true);
			return;
		}
		/* The event's handler may have dropped the VM. */
		if (a->state != HV_AGENT_UP)
			return;
		off += 4 + len;
	}
	memmove(a->buf, a->buf + off, a->len - off);
	a->len -= off;
}

static void
agent_connect_cb(uv_connect_t *req, int status)
{
	struct hv_agent *a = req->data;

	if (a->state != HV_AGENT_CONNECTING)
		return;
	if (status < 0) {
		log_debug("%s: vm \"%s\": agent: %s", a->hv->ops->name,
		    a->vm->id, uv_strerror(status));
		hv_agent_reset(a, false);
		return;
	}
	a->state = HV_AGENT_UP;
	a->vm->agent_up = true;
	a->len = 0;
	a->seen_ms = uv_now(a->hv->loop);
	if (uv_read_start((uv_stream_t *)&a->pipe, agent_alloc_cb,
	    agent_read_cb) < 0)
		hv_agent_reset(a, false);
}

int
hv_agent_connect(struct hv_agent *a, const char *path)
{
	struct stat st;

	if (a->state != HV_AGENT_NONE)
		return -EALREADY;
	if (stat(path, &st) < 0 || !S_ISSOCK(st.st_mode))
		return -ENOENT;
	if (a->buf == NULL) {
		a->buf = malloc(4 + a->hv->cfg.frame_max);
		if (a->buf == NULL)
			return -ENOMEM;
	}
	if (uv_pipe_init(a->hv->loop, &a->pipe, 0) < 0)
		return -EIO;
	a->pipe.data = a;
	a->state = HV_AGENT_CONNECTING;
	a->conn.data = a;
	uv_pipe_connect(&a->conn, &a->pipe, path, agent_connect_cb);
	return 0;
}

void
hv_agent_close(struct hv_agent *a)
{
	if (a->state != HV_AGENT_CONNECTING && a->state != HV_AGENT_UP)
		return;
	a->state = HV_AGENT_CLOSING;
	a->vm->agent_up = false;
	uv_close((uv_handle_t *)&a->pipe, agent_closed_cb);
}

void
hv_agent_free(struct hv_agent *a)
{
	free(a->buf);
	a->buf = NULL;
}
