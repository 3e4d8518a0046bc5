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

#endif
