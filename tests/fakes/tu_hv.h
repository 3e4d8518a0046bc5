/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helpers of the hypervisor driver and collector tests: finding a driver's
 * VM by id, running a loop until a condition function holds, VMs as a
 * driver shows them, without a driver (a fake hypervisor for the
 * collector's report builder), padding a guest's sample and reading its
 * sanitizer flags.
 */
#ifndef MM_TU_HV_H
#define MM_TU_HV_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <uv.h>

#include "hv.h"

/* The VM of hv called id (borrowed), or NULL. */
struct hv_vm *tu_hv_find(struct hv *hv, const char *id);

/* Run loop until cond() is true or ms pass; returns cond(). */
bool tu_run_until_fn(uv_loop_t *loop, bool (*cond)(void), unsigned ms);

/*
 * A VM as a driver shows it: id, its process pid (0: none), the balloon's
 * actual size and the VM's maximum in KiB (0: unknown); no guest sample,
 * user NULL. Free with tu_vm_free(). Aborts the test on ENOMEM.
 */
struct hv_vm *tu_vm_new(const char *id, pid_t pid, uint64_t actual_kib,
    uint64_t max_kib);

/* A new guest sample g for vm (taken over, freed with the next one or by
 * tu_vm_free()), its vm_id set to vm's id and guest_rx_ms to rx_ms, as a
 * driver does before HV_EV_GUEST. */
void tu_vm_set_guest(struct hv_vm *vm, Mm__V1__GuestStats *g,
    uint64_t rx_ms);

/* Free vm and its sample, not vm->user. NULL: no-op. */
void tu_vm_free(struct hv_vm *vm);

/*
 * Attach to m an unknown length-delimited field number tag with len bytes
 * of payload, as protobuf-c keeps one it cannot place (the bytes after the
 * tag, the length's varint first): a guest padding its samples. Freed with
 * m. Aborts the test on ENOMEM.
 */
void tu_msg_add_unknown(ProtobufCMessage *m, uint32_t tag, size_t len);

/* g's SanitizerFlags as a mask: bit (flag - 1) for each. */
unsigned tu_guest_flags(const Mm__V1__GuestStats *g);

#endif
