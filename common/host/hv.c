/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The driver-independent half of hv.h: choosing a driver, the registry of
 * VMs every driver keeps through it, and the events. Drivers are in hv/.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "guestmem.h"
#include "hv.h"
#include "hv/hv_impl.h"
#include "log.h"

static const char *const type_names[] = {
	[HV_TYPE_KVM] = "kvm",
	[HV_TYPE_XEN] = "xen",
	[HV_TYPE_SIM] = "sim",
	[HV_TYPE_LIBVIRT] = "libvirt",
};

const char *
hv_type_name(enum hv_type type)
{
	if ((unsigned)type >= sizeof(type_names) / sizeof(type_names[0]))
		return NULL;
	return type_names[type];
}

int
hv_type_from_name(const char *name, enum hv_type *ret_type)
{
	unsigned i;

	for (i = 0; name != NULL &&
	    i < sizeof(type_names) / sizeof(type_names[0]); i++) {
		if (strcmp(name, type_names[i]) == 0) {
			*ret_type = (enum hv_type)i;
			return 0;
		}
	}
	return -EINVAL;
}

/* A socket name extension: 1..16 of [A-Za-z0-9_-], not one of the
 * agent's or the pid file's. */
static bool
ext_valid(const char *s)
{
	size_t n = s != NULL ? strlen(s) : 1;

	if (n == 0 || n > 16 || (s != NULL && (strcmp(s, "agent") == 0 ||
	    strcmp(s, "pid") == 0)))
		return false;
	for (size_t i = 0; s != NULL && i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' &&
		    s[i] != '-')
			return false;
	return true;
}

static char *
dup_or(const char *s, const char *def)
{
	return strdup(s != NULL ? s : def);
}

struct hv *
hv_new(uv_loop_t *loop, const struct hv_config *config)
{
	struct hv *hv;

	if (loop == NULL || config == NULL ||
	    hv_type_name(config->type) == NULL ||
	    !ext_valid(config->qmp_ext)) {
		errno = EINVAL;
		return NULL;
	}
	hv = calloc(1, sizeof(*hv));
	if (hv == NULL)
		return NULL;
	hv->loop = loop;
	hv->cfg = *config;
	switch (config->type) {
	case HV_TYPE_KVM:
	case HV_TYPE_SIM:
		hv->ops = &hv_kvm_ops;
		break;
	case HV_TYPE_XEN:
		hv->ops = &hv_xen_ops;
		break;
	case HV_TYPE_LIBVIRT:
#ifdef MM_HAVE_LIBVIRT
		hv->ops = &hv_libvirt_ops;
		break;
#else
		free(hv);
		errno = ENOTSUP;
		return NULL;
#endif
	}
	hv->cfg.vm_dir = dup_or(config->vm_dir, "/run/mm/vm");
	hv->cfg.balloon_path = dup_or(config->balloon_path,
	    "/machine/peripheral/balloon0");
	hv->cfg.qmp_ext = dup_or(config->qmp_ext, "qmp");
	hv->cfg.uri = dup_or(config->uri, "qemu:///system");
	if (hv->cfg.vm_dir == NULL || hv->cfg.balloon_path == NULL ||
	    hv->cfg.qmp_ext == NULL || hv->cfg.uri == NULL)
		goto fail;
	if (hv->cfg.rescan_ms == 0)
		hv->cfg.rescan_ms = 1000;
	if (hv->cfg.poll_ms == 0)
		hv->cfg.poll_ms = 1000;
	if (hv->cfg.agent_timeout_ms == 0)
		hv->cfg.agent_timeout_ms = 3000;
	if (hv->cfg.op_timeout_ms == 0)
		hv->cfg.op_timeout_ms = 5000;
	if (hv->cfg.qmp_line_max == 0)
		hv->cfg.qmp_line_max = 64 * 1024;
	if (hv->cfg.frame_max == 0)
		hv->cfg.frame_max = msg_max_size(MSG_GUEST_STATS);
	return hv;
fail:
	free((char *)hv->cfg.vm_dir);
	free((char *)hv->cfg.balloon_path);
	free((char *)hv->cfg.qmp_ext);
	free((char *)hv->cfg.uri);
	free(hv);
	errno = ENOMEM;
	return NULL;
}

int
hv_start(struct hv *hv)
{
	return hv->ops->start(hv);
}

void
hv_foreach(struct hv *hv, void (*fn)(struct hv_vm *vm, void *arg), void *arg)
{
	size_t i;

	for (i = 0; i < hv->nvms; i++)
		fn(hv->vms[i], arg);
}

struct hv_vm *
hv_find(struct hv *hv, const char *id)
{
	return hv_vm_find(hv, id);
}

size_t
hv_vm_count(const struct hv *hv)
{
	return hv->nvms;
}

enum hv_type
hv_get_type(const struct hv *hv)
{
	return hv->cfg.type;
}

void
hv_get_stats(const struct hv *hv, struct hv_stats *ret_stats)
{
	*ret_stats = hv->stats;
}

int
hv_set_target(struct hv *hv, const char *vm_id, uint64_t target_kib,
    hv_done_cb cb, void *arg)
{
	struct hv_vm *vm;

	if (hv->ops->set_target == NULL)
		return -ENOTSUP;
	vm = hv_vm_find(hv, vm_id);
	if (vm == NULL)
		return -ENOENT;
	return hv->ops->set_target(hv, vm, target_kib, cb, arg);
}

int
hv_control_write(const char *path, const Mm__V1__ReclaimRequest *rq)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	uint8_t *frame;
	size_t len;
	ssize_t n;
	int fd, r;

	if (path[0] == '\0')
		return -ENOTCONN;	/* the VM has no control channel */
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	r = msg_pack_frame(MSG_RECLAIM_REQUEST, &rq->base, &frame, &len);
	if (r < 0)
		return r;
	/* A local socket and a frame of a few bytes: neither the connect
	 * nor the write waits (and would fail rather than block). */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		free(frame);
		return -errno;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = errno == ENOENT || errno == ECONNREFUSED ? -ENOTCONN :
		    -errno;
	} else {
		n = write(fd, frame, len);
		r = n == (ssize_t)len ? 0 : n < 0 ? -errno : -EIO;
	}
	close(fd);
	free(frame);
	return r;
}

int
hv_reclaim(struct hv *hv, const char *vm_id, uint64_t seq, uint64_t kib,
    double psi_budget_pct)
{
	Mm__V1__ReclaimRequest rq = MM__V1__RECLAIM_REQUEST__INIT;
	struct hv_vm *vm;

	if (hv->ops->reclaim == NULL)
		return -ENOTSUP;
	vm = hv_vm_find(hv, vm_id);
	if (vm == NULL)
		return -ENOENT;
	rq.has_seq = rq.has_kib = rq.has_psi_budget_pct = true;
	rq.seq = seq;
	rq.kib = kib;
	rq.psi_budget_pct = psi_budget_pct;
	/* The driver gets only a request the agent would take. */
	if (msg_validate(MSG_RECLAIM_REQUEST, &rq.base, NULL, 0) < 0)
		return -EINVAL;
	return hv->ops->reclaim(hv, vm, &rq);
}

int
hv_refresh(struct hv *hv, const char *vm_id, hv_done_cb cb, void *arg)
{
	struct hv_vm *vm;

	if (hv->ops->refresh == NULL)
		return -ENOTSUP;
	vm = hv_vm_find(hv, vm_id);
	if (vm == NULL)
		return -ENOENT;
	return hv->ops->refresh(hv, vm, cb, arg);
}

void
hv_close(struct hv *hv, void (*cb)(void *arg), void *arg)
{
	if (hv == NULL) {
		if (cb != NULL)
			cb(arg);
		return;
	}
	hv->closing = true;
	hv->close_cb = cb;
	hv->close_arg = arg;
	hv->ops->close(hv);
}

void
hv_closed(struct hv *hv)
{
	void (*cb)(void *) = hv->close_cb;
	void *arg = hv->close_arg;

	free(hv->vms);
	free((char *)hv->cfg.vm_dir);
	free((char *)hv->cfg.balloon_path);
	free((char *)hv->cfg.qmp_ext);
	free((char *)hv->cfg.uri);
	free(hv);
	if (cb != NULL)
		cb(arg);
}

int
hv_vm_register(struct hv *hv, struct hv_vm *vm)
{
	struct hv_vm **n;
	size_t cap;

	if (hv->nvms == hv->vms_cap) {
		cap = hv->vms_cap ? hv->vms_cap * 2 : 16;
		n = realloc(hv->vms, cap * sizeof(*n));
		if (n == NULL)
			return -ENOMEM;
		hv->vms = n;
		hv->vms_cap = cap;
	}
	hv->vms[hv->nvms++] = vm;
	return 0;
}

void
hv_vm_unregister(struct hv *hv, struct hv_vm *vm)
{
	size_t i;

	for (i = 0; i < hv->nvms; i++) {
		if (hv->vms[i] == vm) {
			hv->vms[i] = hv->vms[--hv->nvms];
			break;
		}
	}
	msg_free((ProtobufCMessage *)vm->guest);
	vm->guest = NULL;
}

bool
hv_id_valid(const char *s, size_t len)
{
	size_t i;

	if (s == NULL || len == 0 || len > MSG_ID_MAX)
		return false;
	for (i = 0; i < len; i++)
		if (!(s[i] == '_' || s[i] == '.' || s[i] == '-' ||
		    (s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= 'A' && s[i] <= 'Z')))
			return false;
	return true;
}

struct hv_vm *
hv_vm_find(struct hv *hv, const char *id)
{
	size_t i;

	for (i = 0; id != NULL && i < hv->nvms; i++)
		if (strcmp(hv->vms[i]->id, id) == 0)
			return hv->vms[i];
	return NULL;
}

void
hv_emit(struct hv *hv, enum hv_event ev, struct hv_vm *vm)
{
	if (!hv->closing && hv->cfg.event_cb != NULL)
		hv->cfg.event_cb(hv, ev, vm, hv->cfg.event_arg);
}

void
hv_reject(struct hv *hv, struct hv_vm *vm, enum hv_reject why)
{
	switch (why) {
	case HV_REJECT_TOO_BIG:
		hv->stats.frames_too_big++;
		break;
	case HV_REJECT_UNDECODABLE:
		hv->stats.frames_undecodable++;
		break;
	case HV_REJECT_INVALID:
		hv->stats.frames_invalid++;
		break;
	}
	vm->reject = why;
	hv_emit(hv, HV_EV_REJECTED, vm);
}

int
hv_vm_set_guest(struct hv *hv, struct hv_vm *vm, Mm__V1__GuestStats *g)
{
	char *id;

	if (g != NULL) {
		/* The guest's own idea of its name is not trusted. */
		id = strdup(vm->id);
		if (id == NULL) {
			msg_free(&g->base);
			return -ENOMEM;
		}
		free(g->vm_id);
		g->vm_id = id;
	}
	msg_free((ProtobufCMessage *)vm->guest);
	vm->guest = g;
	vm->guest_rx_ms = uv_now(hv->loop);
	return 0;
}

bool
hv_guest_used_kib(const struct hv_vm *vm, const Mm__V1__GuestStats *g,
    uint64_t *ret_kib)
{
	return gm_sample_used_kib(g, vm->doo_known, vm->deflate_on_oom,
	    vm->balloon_known, vm->balloon_actual_kib, ret_kib);
}

Mm__V1__GuestStats *
hv_guest_from_balloon(const struct hv_balloon_stats *s)
{
	Mm__V1__GuestStats *g;
	Mm__V1__Meminfo *mi;
	Mm__V1__Vmstat *vs;

	g = malloc(sizeof(*g));
	mi = malloc(sizeof(*mi));
	vs = malloc(sizeof(*vs));
	if (g == NULL || mi == NULL || vs == NULL) {
		free(g);
		free(mi);
		free(vs);
		return NULL;
	}
	mm__v1__guest_stats__init(g);
	mm__v1__meminfo__init(mi);
	mm__v1__vmstat__init(vs);
	g->meminfo = mi;
	g->vmstat = vs;
	g->has_source = 1;
	g->source = MM__V1__STATS_SOURCE__STATS_SOURCE_QMP;
	g->has_time_ms = 1;
	g->time_ms = (uint64_t)s->last_update_s * 1000;
#define BS(msg, member)							\
	do {								\
		msg->has_##member = s->has_##member;			\
		msg->member = s->member;				\
	} while (0)
	BS(mi, total_kib);
	BS(mi, free_kib);
	BS(mi, available_kib);
	BS(mi, cached_kib);
	BS(vs, major_faults);
	BS(vs, swap_in_pages);
	BS(vs, swap_out_pages);
#undef BS
	return g;
}
