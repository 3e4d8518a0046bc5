/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers of the driver and collector tests; see tu_hv.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "tu_hv.h"

struct hv_vm *
tu_hv_find(struct hv *hv, const char *id)
{
	return hv_find(hv, id);
}

bool
tu_run_until_fn(uv_loop_t *loop, bool (*cond)(void), unsigned ms)
{
	uint64_t end;

	uv_update_time(loop);
	end = uv_now(loop) + ms;
	while (!cond() && uv_now(loop) < end) {
		bool no = false;

		tu_run_until(loop, &no, 10);
	}
	return cond();
}

struct hv_vm *
tu_vm_new(const char *id, pid_t pid, uint64_t actual_kib, uint64_t max_kib)
{
	struct hv_vm *vm = calloc(1, sizeof(*vm));

	if (vm == NULL)
		abort();
	snprintf(vm->id, sizeof(vm->id), "%s", id);
	vm->pid = pid;
	vm->balloon_known = actual_kib != 0;
	vm->balloon_actual_kib = actual_kib;
	vm->max_known = max_kib != 0;
	vm->max_kib = max_kib;
	return vm;
}

void
tu_vm_set_guest(struct hv_vm *vm, Mm__V1__GuestStats *g, uint64_t rx_ms)
{
	free(g->vm_id);
	g->vm_id = strdup(vm->id);
	if (g->vm_id == NULL)
		abort();
	msg_free(vm->guest ? (ProtobufCMessage *)&vm->guest->base : NULL);
	vm->guest = g;
	vm->guest_rx_ms = rx_ms;
}

void
tu_vm_free(struct hv_vm *vm)
{
	if (vm == NULL)
		return;
	msg_free(vm->guest ? (ProtobufCMessage *)&vm->guest->base : NULL);
	free(vm);
}

void
tu_msg_add_unknown(ProtobufCMessage *m, uint32_t tag, size_t len)
{
	ProtobufCMessageUnknownField *u;
	uint8_t *d;
	size_t n = 0, v = len;

	u = realloc(m->unknown_fields,
	    (m->n_unknown_fields + 1) * sizeof(*u));
	d = malloc(len + 10);
	if (u == NULL || d == NULL)
		abort();
	m->unknown_fields = u;
	u = &u[m->n_unknown_fields++];
	u->tag = tag;
	u->wire_type = PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED;
	do {
		d[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v > 0);
	memset(d + n, 'x', len);
	u->len = n + len;
	u->data = d;
}

unsigned
tu_guest_flags(const Mm__V1__GuestStats *g)
{
	unsigned f = 0;
	size_t i;

	for (i = 0; i < g->n_flags; i++)
		f |= 1u << (g->flags[i] - 1);
	return f;
}
