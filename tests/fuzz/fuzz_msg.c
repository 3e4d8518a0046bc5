/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The bus's way in: msg_dispatch() on a delivery whose type property is
 * chosen by the first input byte (one of the eight mm.v1 messages, or a
 * name that is none) and whose body is the rest. What a handler receives
 * must validate again, pack, and come back from its own bytes identical;
 * a Policy that pm_from_msg() accepts must survive pm_to_msg() and be
 * accepted again; a DECISION event's VMs all have an id.
 */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "msg.h"
#include "policymsg.h"

static void
check_policy(const ProtobufCMessage *m)
{
	static struct pm_policy p, again;
	static struct pm_msg out;
	char why[256];

	if (pm_from_msg((const Mm__V1__Policy *)m, &p, why, sizeof(why)) < 0)
		return;
	pm_to_msg(&p, &out);
	FZ_CHECK(msg_validate(MSG_POLICY, &out.msg.base, why,
	    sizeof(why)) == 0);
	FZ_CHECK(pm_from_msg(&out.msg, &again, why, sizeof(why)) == 0);
	FZ_CHECK(again.version == p.version && again.mode == p.mode);
	FZ_CHECK(strcmp(again.name, p.name) == 0);
}

static void
check_event(const ProtobufCMessage *m)
{
	const Mm__V1__Event *e = (const Mm__V1__Event *)m;
	Mm__V1__VmDecision vd;
	size_t i;

	for (i = 0; msg_event_vm(e, i, &vd); i++) {
		FZ_CHECK(i < MSG_EVENT_VMS_MAX);
		FZ_CHECK(vd.vm_id != NULL);
	}
}

static enum bus_disposition
handle_cb(const ProtobufCMessage *m, const struct bus_delivery *d, void *arg)
{
	enum msg_type t = *(enum msg_type *)arg;
	ProtobufCMessage *copy, *again;
	uint8_t *buf, *buf2;
	size_t len, len2;
	int r;

	FZ_CHECK(m->descriptor == msg_descriptor(t));
	FZ_CHECK(msg_validate(t, m, NULL, 0) == 0);
	r = msg_pack(t, m, &buf, &len);
	/* Packed repeated fields re-encode longer, unpacked. */
	FZ_CHECK(r == 0 || r == -EMSGSIZE);
	if (r == 0) {
		FZ_CHECK(len <= msg_max_size(t));
		FZ_CHECK(msg_unpack(t, buf, len, &copy, NULL, 0) == 0);
		FZ_CHECK(msg_pack(t, copy, &buf2, &len2) == 0);
		FZ_CHECK(len2 == len && memcmp(buf, buf2, len) == 0);
		msg_drop_unknown(copy);
		again = msg_dup(t, copy);
		FZ_CHECK(again != NULL);
		FZ_CHECK(again->n_unknown_fields == 0);
		msg_free(again);
		msg_free(copy);
		free(buf2);
		free(buf);
	}
	if (t == MSG_POLICY)
		check_policy(m);
	else if (t == MSG_EVENT)
		check_event(m);
	return BUS_ACK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct msg_handler table[MSG_TYPE_COUNT];
	struct msg_dispatch_stats st = { 0 };
	struct bus_delivery d = { 0 };
	enum msg_type t;
	enum bus_disposition disp;
	char why[256];
	unsigned i;

	if (size < 1)
		return 0;
	for (i = 0; i < MSG_TYPE_COUNT; i++)
		table[i] = (struct msg_handler){ (enum msg_type)i, handle_cb };
	t = (enum msg_type)(data[0] % (MSG_TYPE_COUNT + 1));
	d.queue = "fuzz";
	d.content_type = MSG_CONTENT_TYPE;
	d.type = t < MSG_TYPE_COUNT ? msg_type_name(t) : "mm.v1.Nothing";
	d.body = data + 1;
	d.len = size - 1;
	d.stream_offset = -1;
	disp = msg_dispatch(table, MSG_TYPE_COUNT, &d, &t, &st, why,
	    sizeof(why));
	FZ_CHECK(st.ok + st.unknown_type + st.too_big + st.undecodable +
	    st.invalid == 1);
	FZ_CHECK((disp == BUS_ACK) == (st.ok == 1));
	if (t < MSG_TYPE_COUNT && st.ok == 0)
		FZ_CHECK(why[0] != '\0');
	return 0;
}
