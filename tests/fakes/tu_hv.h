/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helpers of the hypervisor driver and collector tests: finding a driver's
 * VM by id, and running a loop until a condition function holds.
 */
#ifndef MM_TU_HV_H
#define MM_TU_HV_H

#include <stdbool.h>

#include <uv.h>

#include "hv.h"

/* The VM of hv called id (borrowed), or NULL. */
struct hv_vm *tu_hv_find(struct hv *hv, const char *id);

/* Run loop until cond() is true or ms pass; returns cond(). */
bool tu_run_until_fn(uv_loop_t *loop, bool (*cond)(void), unsigned ms);

#endif
