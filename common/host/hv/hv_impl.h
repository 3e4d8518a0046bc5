/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the hypervisor drivers share with the generic part of hv.c: the
 * vtable each driver fills in, and the VM registry and event helpers. Only
 * common/hv.c and the drivers in common/hv/ include it.
 */
#ifndef MM_HV_IMPL_H
#define MM_HV_IMPL_H

#include "hv.h"

struct hv_ops {
	const char *name;
	/* Begin discovering VMs. */
	int (*start)(struct hv *hv);
	/* Write side (NULL where not supported yet). */
	int (*set_target)(struct hv *hv, struct hv_vm *vm, uint64_t target_kib,
	    hv_done_cb cb, void *arg);
	/* Deliver a reclaim request (validated, borrowed) to the VM's agent:
	 * kvm and libvirt write it to the VM's control socket
	 * (hv_control_write()), xen to a xenstore key. NULL: none. 0 or
	 * -errno as hv_reclaim(). */
	int (*reclaim)(struct hv *hv, struct hv_vm *vm,
	    const Mm__V1__ReclaimRequest *rq);
	/* Read the balloon now (NULL where not supported). */
	int (*refresh)(struct hv *hv, struct hv_vm *vm, hv_done_cb cb,
	    void *arg);
	/* Close every handle and free every VM (hv_vm_unregister() each),
	 * then call hv_closed(hv) once, possibly from a close callback. */
	void (*close)(struct hv *hv);
};

struct hv {
	uv_loop_t *loop;
	struct hv_config cfg;	/* strings owned (copied) */
	const struct hv_ops *ops;
	void *priv;		/* the driver's */
	struct hv_stats stats;
	struct hv_vm **vms;
	size_t nvms;
	size_t vms_cap;
	bool closing;
	void (*close_cb)(void *arg);
	void *close_arg;
};

extern const struct hv_ops hv_kvm_ops;
extern const struct hv_ops hv_xen_ops;
extern const struct hv_ops hv_libvirt_ops;

/* Register vm (the driver's, which embeds it); returns 0 or -ENOMEM. */
int hv_vm_register(struct hv *hv, struct hv_vm *vm);

/* Forget vm; the driver frees it afterwards. */
void hv_vm_unregister(struct hv *hv, struct hv_vm *vm);

/* True for a usable VM id: [A-Za-z0-9_.-]{1,MSG_ID_MAX}, len bytes of s. */
bool hv_id_valid(const char *s, size_t len);

/* The VM called id, or NULL. */
struct hv_vm *hv_vm_find(struct hv *hv, const char *id);

/* Call the user's event callback (not while closing). */
void hv_emit(struct hv *hv, enum hv_event ev, struct hv_vm *vm);

/* Count a refusal of vm's guest data in hv's stats and emit
 * HV_EV_REJECTED. */
void hv_reject(struct hv *hv, struct hv_vm *vm, enum hv_reject why);

/* The driver has closed everything: free hv and call the user back. */
void hv_closed(struct hv *hv);

/* Replace vm->guest by g (owned; may be NULL), setting g's vm_id to the
 * VM's id and guest_rx_ms to now. Returns 0 or -ENOMEM (g freed). */
int hv_vm_set_guest(struct hv *hv, struct hv_vm *vm, Mm__V1__GuestStats *g);

/*
 * What a virtio balloon's statistics say of the guest (QMP guest-stats,
 * libvirt's virDomainMemoryStats), each with has_: turned into the guest
 * sample of the agentless fallback (source QMP) by hv_guest_from_balloon().
 */
struct hv_balloon_stats {
	bool has_total_kib, has_free_kib, has_available_kib, has_cached_kib;
	bool has_major_faults, has_swap_in_pages, has_swap_out_pages;
	uint64_t total_kib;
	uint64_t free_kib;
	uint64_t available_kib;
	uint64_t cached_kib;
	uint64_t major_faults;
	uint64_t swap_in_pages;
	uint64_t swap_out_pages;
	int64_t last_update_s;		/* the guest's, seconds */
};

/* A new sample of s (NULL without memory). */
Mm__V1__GuestStats *hv_guest_from_balloon(const struct hv_balloon_stats *s);

/*
 * The xen driver's parser (hv/xen.c) of what the guest agent writes under
 * its domain's data/mm/: get(arg, key) returns the malloc'd value of key
 * ("agent_seq", "time_ms", "<group>/<name>" of hoststats' tables,
 * "cold/<i>/<name>" of ColdBucket, "reclaim/<name>" of ReclaimStatus), or
 * NULL when absent. Returns the sample (source AGENT, no vm_id; the caller
 * validates it), or NULL without agent_seq (no agent yet) or on ENOMEM.
 * A value that is not a number, a cold bucket after a missing one or
 * beyond the fourth sets *ret_bad_key (static) and, below a group,
 * *ret_bad_group; the sample is still returned, for the caller to refuse.
 * Any thread; built with or without libxenstore.
 */
Mm__V1__GuestStats *hv_xen_guest_from_keys(char *(*get)(void *arg,
    const char *key), void *arg, const char **ret_bad_key,
    const char **ret_bad_group);

/*
 * The guest agent's channel (hv/agentconn.c): a Unix socket of
 * length-prefixed GuestStats frames, each bounded by frame_max and
 * validated; a sample is set on vm with HV_EV_GUEST, a bad frame is
 * HV_EV_REJECTED and drops the connection. The driver zeroes it, sets hv,
 * vm and closed (called on the loop once the socket's handle is closed).
 */
enum hv_agent_state {
	HV_AGENT_NONE, HV_AGENT_CONNECTING, HV_AGENT_UP, HV_AGENT_CLOSING
};

struct hv_agent {
	struct hv *hv;
	struct hv_vm *vm;
	void (*closed)(struct hv_agent *a);
	enum hv_agent_state state;
	uv_pipe_t pipe;
	uv_connect_t conn;
	uint8_t *buf;
	size_t len;
	uint64_t seen_ms;	/* uv_now() of the last frame or connect */
};

/* Connect to path if a socket is there and a is not open: 0 (a handle is
 * open until closed() is called), -EALREADY, -ENOENT, -ENOMEM, -EIO. */
int hv_agent_connect(struct hv_agent *a, const char *path);
/* Drop the connection (ours: counted as a reset of ours). */
void hv_agent_reset(struct hv_agent *a, bool ours);
/* Close it if open (no count). */
void hv_agent_close(struct hv_agent *a);
/* Free the buffer (after closed()). */
void hv_agent_free(struct hv_agent *a);

/*
 * The other way, host to agent: write rq as one frame to the VM's agent
 * control socket at path (QEMU's chardev of the port org.mm.control.0),
 * without waiting. Returns 0, -ENOTCONN (path "": no such channel, or
 * nothing listens there), -ENAMETOOLONG, -EAGAIN, -ENOMEM, -EIO.
 */
int hv_control_write(const char *path, const Mm__V1__ReclaimRequest *rq);

#endif
