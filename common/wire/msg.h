/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The protobuf envelope of every mm message: packing, size-checked unpacking
 * and structural validation of the mm.v1 messages, and their AMQP glue
 * (properties on publish, one dispatch table on consume). This is the only
 * code that calls protobuf-c to pack or unpack; docs/protocol.md describes
 * the messages and the limits enforced here.
 *
 * Call these from one thread (the loop's): validation keeps what it works
 * out per message type in static tables, built on first use.
 */
#ifndef MM_MSG_H
#define MM_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "bus.h"
#include "mm/v1/command.pb-c.h"
#include "mm/v1/control.pb-c.h"
#include "mm/v1/event.pb-c.h"
#include "mm/v1/history.pb-c.h"
#include "mm/v1/policy.pb-c.h"
#include "mm/v1/stats.pb-c.h"

/* AMQP content_type of every mm message. */
#define MSG_CONTENT_TYPE	"application/x-protobuf"

/* Structural limits enforced by msg_validate(). */
#define MSG_ID_MAX		64		/* ids: [A-Za-z0-9_.-] */
#define MSG_NAME_MAX		128		/* names and globs: printable */
#define MSG_TEXT_MAX		1024		/* reasons, errors: printable */
#define MSG_KIB_MAX		(1ull << 42)	/* 4 PiB */
#define MSG_PAGES_MAX		(1ull << 40)	/* 4 PiB in 4 KiB pages */
#define MSG_MS_MAX		(1ull << 45)	/* epoch ms: year 3084 */
#define MSG_NODES_MAX		64		/* NUMA nodes 0..63 */
#define MSG_COLD_MAX		4		/* GuestStats.cold buckets */
#define MSG_REPEATED_MAX	4096		/* guests, commands, results */
#define MSG_EVENT_VMS_MAX	1024		/* VmDecisions in one Event */

/* The top-level messages; each is one AMQP body. */
enum msg_type {
	MSG_GUEST_STATS,	/* Mm__V1__GuestStats */
	MSG_HOST_REPORT,	/* Mm__V1__HostReport */
	MSG_COMMAND_BATCH,	/* Mm__V1__CommandBatch */
	MSG_ACTION_RESULT,	/* Mm__V1__ActionResult */
	MSG_POLICY,		/* Mm__V1__Policy */
	MSG_EVENT,		/* Mm__V1__Event */
	MSG_STATUS_REQUEST,	/* Mm__V1__StatusRequest */
	MSG_STATUS_REPLY,	/* Mm__V1__StatusReply */
	MSG_HOST_HISTORY,	/* Mm__V1__HostHistory */
	MSG_RECLAIM_REQUEST,	/* Mm__V1__ReclaimRequest (host -> agent) */
	MSG_TYPE_COUNT
};

/*
 * The full protobuf name of t, e.g. "mm.v1.HostReport": the AMQP type
 * property. Static string; NULL for an unknown t.
 */
const char *msg_type_name(enum msg_type t);

/*
 * Map a full message name back to its type. name may be NULL. Returns 0
 * and writes *ret_type, or -ENOENT for a name that is not an mm message.
 */
int msg_type_from_name(const char *name, enum msg_type *ret_type);

/* The protobuf-c descriptor of t (static); NULL for an unknown t. */
const ProtobufCMessageDescriptor *msg_descriptor(enum msg_type t);

/*
 * Largest packed size accepted for t, in bytes; larger bodies are refused
 * before any decoding. 0 for an unknown t.
 */
size_t msg_max_size(enum msg_type t);

/*
 * Check m structurally: it is a t, the fields mm requires are present, ids
 * and texts are bounded and printable, enum values are known, repeated
 * fields are bounded, numbers are within absolute ranges (by the unit
 * suffix of the field name) and min <= max where both are set. Semantic
 * checks (used <= total...) are left to the consumer. m is borrowed; why
 * (may be NULL, whylen bytes) receives the reason naming the field, e.g.
 * "guests[3].meminfo.total_kib: 9007199254740992 above 4398046511104".
 * Returns 0 or -EINVAL (also for an unknown t or a NULL m).
 */
int msg_validate(enum msg_type t, const ProtobufCMessage *m, char *why,
    size_t whylen);

/*
 * Validate and pack m (borrowed). On success *ret_buf is a malloc'd buffer
 * of *ret_len bytes that the caller frees. Returns 0, -EINVAL (invalid; the
 * reason is logged at debug), -EMSGSIZE (above msg_max_size()), -ENOMEM.
 */
int msg_pack(enum msg_type t, const ProtobufCMessage *m, uint8_t **ret_buf,
    size_t *ret_len);

/*
 * msg_pack() with the 4-byte big-endian length in front: the frame of the
 * guest agent's virtio-serial channel (docs/protocol.md). Same returns;
 * the caller frees *ret_buf.
 */
int msg_pack_frame(enum msg_type t, const ProtobufCMessage *m,
    uint8_t **ret_buf, size_t *ret_len);

/*
 * Unpack len bytes of data (borrowed) as a t and validate the result. On
 * success *ret is a new message the caller frees with msg_free(). Returns
 * 0, -EMSGSIZE (len above msg_max_size(), nothing decoded), -EBADMSG (not a
 * decodable t), -EINVAL (decoded but invalid, or an unknown t). why (may be
 * NULL) receives the reason of any failure.
 */
int msg_unpack(enum msg_type t, const void *data, size_t len,
    ProtobufCMessage **ret, char *why, size_t whylen);

/*
 * A deep copy of m (borrowed), a t, through the wire format: validated, and
 * malloc'd throughout like msg_unpack()'s, so that it outlives m (a
 * delivery's message lives only as long as its handler) and is freed with
 * msg_free(). NULL with errno set (EINVAL invalid, EMSGSIZE too large,
 * ENOMEM).
 */
ProtobufCMessage *msg_dup(enum msg_type t, const ProtobufCMessage *m);

/*
 * Free a message returned by msg_unpack(), with everything below it. NULL
 * is a no-op. A message built by hand may be passed only if every string,
 * array and submessage in it was malloc'd.
 */
void msg_free(ProtobufCMessage *m);

/*
 * Drop what protobuf-c kept of fields this build does not know, in m and
 * every submessage (the descriptor says where they are): a message from
 * outside would have them re-encoded wherever it is passed on, and could
 * grow what carries it to the bus's limit. m is malloc'd throughout, as
 * from msg_unpack(). True when there were any.
 */
bool msg_drop_unknown(ProtobufCMessage *m);

/*
 * The i-th VM decision (from 0) of e, a DECISION event: e->vms[i] when e
 * has vms, else the event's own vm_id, reason, metrics and balloon fields
 * as its only one (an event of one VM, or from a scheduler before vms).
 * Fills *ret with pointers borrowed from e, so it lives as long as e.
 * Returns false past the last, and for an event that names no VM.
 */
bool msg_event_vm(const Mm__V1__Event *e, size_t i, Mm__V1__VmDecision *ret);

/* The bytes m (borrowed) packs to. */
size_t msg_packed_size(const ProtobufCMessage *m);

/*
 * Pack m (borrowed) and fill *ret_msg to publish it: content_type
 * MSG_CONTENT_TYPE, type msg_type_name(t), persistent as given, message_id
 * NULL (the bus makes one), timestamp 0 (the bus sets now). exchange and
 * key are borrowed and stored as they are, so they must outlive *ret_msg;
 * the body is *ret_buf, malloc'd, which the caller frees after
 * bus_publish() (the bus copies). Returns as msg_pack(); nothing is written
 * on failure.
 */
int msg_to_bus(enum msg_type t, const ProtobufCMessage *m,
    const char *exchange, const char *key, bool persistent,
    struct bus_msg *ret_msg, uint8_t **ret_buf);

/*
 * msg_to_bus() then bus_publish(bus, ..., cb, arg), freeing the buffer.
 * Everything is borrowed. cb (may be NULL) is called as bus_publish()
 * documents, only when this returns 0. Returns 0, the errors of msg_pack(),
 * or those of bus_publish().
 */
int msg_publish(struct bus *bus, enum msg_type t, const ProtobufCMessage *m,
    const char *exchange, const char *key, bool persistent,
    bus_confirm_cb cb, void *arg);

/*
 * A handler of one message type. m is a validated t, borrowed: it is freed
 * when the handler returns (its memory is reused for the next message), so
 * the handler copies what it keeps. d is the delivery, borrowed likewise.
 * The return value settles the delivery.
 */
typedef enum bus_disposition (*msg_handler_cb)(const ProtobufCMessage *m,
    const struct bus_delivery *d, void *arg);

struct msg_handler {
	enum msg_type type;
	msg_handler_cb fn;
};

/* Counters of msg_dispatch(); every delivery increments exactly one. */
struct msg_dispatch_stats {
	uint64_t ok;			/* handed to a handler */
	uint64_t bad_content_type;	/* not MSG_CONTENT_TYPE */
	uint64_t unknown_type;		/* type property not an mm message */
	uint64_t unexpected_type;	/* an mm message without a handler */
	uint64_t too_big;		/* body above msg_max_size() */
	uint64_t undecodable;		/* protobuf decoding failed */
	uint64_t invalid;		/* msg_validate() failed */
};

/* Write the n dispatchers' stats as mm_messages_handled_total and
 * mm_messages_refused_total{reason} into m, labelled queue=names[i]. */
struct mx;
void msg_dispatch_metrics(struct mx *m, const char *const *names,
    const struct msg_dispatch_stats *const *stats, size_t n);

/*
 * Route one delivery through table (n entries, borrowed): check the
 * content_type and type properties, the size, unpack and validate, then
 * call the handler of that type with arg and return its disposition. Any
 * failure is logged at debug, counted in *stats (may be NULL), described in
 * why (may be NULL) and returns BUS_REJECT, which dead-letters the message.
 * Messages are unpacked into one scratch arena, emptied when the handler
 * returns; a handler may call msg_dispatch() again (that message is
 * malloc'd). Memory kept between calls: at most 1 MiB.
 */
enum bus_disposition msg_dispatch(const struct msg_handler *table, size_t n,
    const struct bus_delivery *d, void *arg,
    struct msg_dispatch_stats *stats, char *why, size_t whylen);

#endif
