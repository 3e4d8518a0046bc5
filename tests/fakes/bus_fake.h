/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The in-memory bus: common/wire/bus.h implemented without a broker, for
 * tests that run a daemon's logic on their own loop. A test links it in
 * place of mm_bus's connection code (bus_fake.c defines every function of
 * bus.h, so the real one is never pulled from the archive), and then acts
 * as the broker: it reads what was published, delivers messages to the
 * consumers the daemon registered, and takes the connection down and up.
 *
 * What it models: bus_start() brings the connection up on the next loop
 * turn (state_cb), publishing needs a declared exchange (or "" and amq.*)
 * and is confirmed on the next loop turn, a delivery is handed to the
 * queue's consumer at once and its disposition returned, bus_close() lets
 * the pending confirms through. What it does not: routing (bindings are
 * accepted, not followed), the outbox bound, stream offsets, redelivery.
 * One thread, like the real bus; state is process-wide, one "broker".
 */
#ifndef MM_BUS_FAKE_H
#define MM_BUS_FAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bus.h"

/* A published message as the fake keeps it; strings are never NULL ("" for
 * unset properties). */
struct bus_fake_msg {
	char *exchange;
	char *routing_key;
	char *content_type;
	char *type;
	char *message_id;
	char *correlation_id;
	char *reply_to;
	char *app_id;		/* the publishing bus's app_id */
	void *body;
	size_t len;
	bool persistent;
	char *supersede_key;	/* "" for none */
	/* Published while the fake was down or held (bus_fake_hold()):
	 * waiting, so a newer one with its supersede_key replaces it. */
	bool held;
	size_t pend;		/* its confirm, while held */
	const struct bus *bus;
};

/* Messages published since the last bus_fake_reset(), by any bus, in
 * order; also those of buses closed since. */
size_t bus_fake_count(void);

/* The i-th of them (borrowed until bus_fake_reset()), or NULL. */
const struct bus_fake_msg *bus_fake_msg(size_t i);

/*
 * Hand m (borrowed) to the consumer of queue, as the broker would: once,
 * now, on the caller's thread (which must be the loop's, outside a
 * callback of the same bus). The handler's answer goes to *ret_disp (may
 * be NULL). Returns 0, -ENOENT when no open bus consumes queue, -ENOTCONN
 * while the connection is down, -EINVAL without a body.
 */
int bus_fake_deliver(const char *queue, const struct bus_msg *m,
    enum bus_disposition *ret_disp);

/* True when an open bus consumes queue. */
bool bus_fake_consumed(const char *queue);

/* True when an open bus declared queue (bus_declare_queue()). */
bool bus_fake_queue_declared(const char *queue);

/* While hold is true the buses stay up, deliver and accept messages, but
 * send nothing: published messages wait (bus_pending() says so, a newer
 * one with the same supersede_key replaces one waiting) and are confirmed
 * only after bus_fake_hold(false). A broker short of room, or a full
 * window. */
void bus_fake_hold(bool hold);

/*
 * Take every started bus's connection down (reason given to state_cb) or
 * bring it back up (state_cb with NULL), now. Deliveries fail while down;
 * publishes are kept and confirmed once it is up again.
 */
void bus_fake_set_up(bool up, const char *reason);

/* Forget the published messages. Buses still open keep working. */
void bus_fake_reset(void);

#endif
