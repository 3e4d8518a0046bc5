/* SPDX-License-Identifier: Apache-2.0 */
/*
 * msg_publish(): packing and publishing in one call. Kept apart from msg.c
 * so that programs that only pack messages (mm-guest-agent) do not pull the
 * bus, and with it librabbitmq, into their link.
 */
#include <stdlib.h>

#include "msg.h"

int
msg_publish(struct bus *bus, enum msg_type t, const ProtobufCMessage *m,
    const char *exchange, const char *key, bool persistent,
    bus_confirm_cb cb, void *arg)
{
	struct bus_msg bm;
	uint8_t *buf;
	int r;

	r = msg_to_bus(t, m, exchange, key, persistent, &bm, &buf);
	if (r < 0)
		return r;
	r = bus_publish(bus, &bm, cb, arg);
	free(buf);
	return r;
}
