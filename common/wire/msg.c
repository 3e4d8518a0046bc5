/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Packing, unpacking and structural validation of the mm.v1 messages, and
 * their AMQP glue. Validation walks protobuf-c's descriptors, so a field
 * added to a .proto is checked without touching this file: its unit suffix
 * selects the range rule, and the tables below name the exceptions.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "msg.h"

/* ASan cannot see into a bump allocator by itself: tell it what is live. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer) && !defined(__SANITIZE_ADDRESS__)
#define __SANITIZE_ADDRESS__ 1
#endif
#endif
#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/asan_interface.h>
#define ARENA_REDZONE	16	/* poisoned gap after each allocation */
#else
#define ASAN_POISON_MEMORY_REGION(p, n)		((void)(p), (void)(n))
#define ASAN_UNPOISON_MEMORY_REGION(p, n)	((void)(p), (void)(n))
#define ARENA_REDZONE	0
#endif

struct msg_type_info {
	const ProtobufCMessageDescriptor *desc;
	size_t max_size;
};

/*
 * Size limits leave room for the worst structurally valid message: 4096
 * guests with their NUMA placement make a HostReport of about 3.5 MiB, and
 * 4 MiB is also the bus's default max_body. A decision event of
 * MSG_EVENT_VMS_MAX VMs, each with the scheduler's five metrics and a
 * reason, packs to about 400 KiB.
 */
static const struct msg_type_info msg_types[MSG_TYPE_COUNT] = {
	[MSG_GUEST_STATS] = { &mm__v1__guest_stats__descriptor, 64 << 10 },
	[MSG_HOST_REPORT] = { &mm__v1__host_report__descriptor, 4 << 20 },
	[MSG_COMMAND_BATCH] = { &mm__v1__command_batch__descriptor, 1 << 20 },
	[MSG_ACTION_RESULT] = { &mm__v1__action_result__descriptor, 1 << 20 },
	[MSG_POLICY] = { &mm__v1__policy__descriptor, 1 << 20 },
	[MSG_EVENT] = { &mm__v1__event__descriptor, 1 << 20 },
	[MSG_STATUS_REQUEST] = { &mm__v1__status_request__descriptor,
	    512 << 10 },
	[MSG_STATUS_REPLY] = { &mm__v1__status_reply__descriptor, 4 << 20 },
	/* 4096 VMs of a week of hours: about 2.8 MiB. */
	[MSG_HOST_HISTORY] = { &mm__v1__host_history__descriptor, 4 << 20 },
	[MSG_RECLAIM_REQUEST] = { &mm__v1__reclaim_request__descriptor, 256 },
};

enum rule_kind {
	RULE_NONE,
	RULE_UINT,	/* integer 0..max */
	RULE_PCT,	/* finite double 0..100 */
	RULE_ID,	/* 1..MSG_ID_MAX of [A-Za-z0-9_.-] */
	RULE_NAME,	/* 1..MSG_NAME_MAX printable bytes */
	RULE_UUID,	/* 8-4-4-4-12 hex digits */
};

/*
 * A field's rule is found by "Message.field" first, then by the last word
 * of its name, which is its unit: total_kib is a "kib", vm_id an "id".
 * Strings without a rule are texts (printable, up to MSG_TEXT_MAX), doubles
 * must be finite, repeated fields hold at most MSG_REPEATED_MAX unless
 * max_count says otherwise.
 */
struct field_rule {
	const char *key;
	enum rule_kind kind;
	uint64_t max;
	size_t max_count;
};

static const struct field_rule field_rules[] = {
	{ "Param.name", RULE_ID, 0, 0 },
	{ "Metric.name", RULE_ID, 0, 0 },
	{ "Event.vms", RULE_NONE, 0, MSG_EVENT_VMS_MAX },
	{ "GuestStats.cold", RULE_NONE, 0, MSG_COLD_MAX },
	/* A week of hourly peaks, each at most 32 TiB (policy.h's
	 * PE_HIST_HOURS and PE_HIST_MIB_MAX). */
	{ "VmHistory.mib", RULE_UINT, 32u << 20, 168 },
	{ "hour", RULE_UINT, MSG_MS_MAX / 3600000, 0 },
	{ "kib", RULE_UINT, MSG_KIB_MAX, 0 },
	{ "pages", RULE_UINT, MSG_PAGES_MAX, 0 },
	{ "ms", RULE_UINT, MSG_MS_MAX, 0 },
	{ "pct", RULE_PCT, 0, 0 },
	{ "node", RULE_UINT, MSG_NODES_MAX - 1, 0 },
	{ "nodes", RULE_UINT, MSG_NODES_MAX - 1, MSG_NODES_MAX },
	{ "weight", RULE_UINT, 10000, 0 },
	{ "id", RULE_ID, 0, 0 },
	{ "ids", RULE_ID, 0, 0 },
	{ "algorithm", RULE_ID, 0, 0 },
	{ "name", RULE_NAME, 0, 0 },
	{ "pattern", RULE_NAME, 0, 0 },
	{ "author", RULE_NAME, 0, 0 },
	{ "uuid", RULE_UUID, 0, 0 },
	{ "flags", RULE_NONE, 0, 16 },
	{ "rules", RULE_NONE, 0, 1024 },
	{ "params", RULE_NONE, 0, 256 },
	{ "metrics", RULE_NONE, 0, 256 },
};

/* Fields mm needs; nonzero also refuses 0 (a version starts at 1). */
struct required_field {
	const ProtobufCMessageDescriptor *desc;
	const char *field;
	bool nonzero;
};

static const struct required_field required_fields[] = {
	{ &mm__v1__guest_stats__descriptor, "vm_id", false },
	{ &mm__v1__numa_node__descriptor, "node", false },
	{ &mm__v1__node_pages__descriptor, "node", false },
	{ &mm__v1__vm_numa__descriptor, "vm_id", false },
	{ &mm__v1__host_report__descriptor, "host_id", false },
	{ &mm__v1__host_report__descriptor, "seq", false },
	{ &mm__v1__host_report__descriptor, "time_ms", false },
	{ &mm__v1__set_balloon_target__descriptor, "vm_id", false },
	{ &mm__v1__set_balloon_target__descriptor, "target_kib", false },
	{ &mm__v1__set_ksm__descriptor, "settings", false },
	{ &mm__v1__migrate_numa__descriptor, "vm_id", false },
	{ &mm__v1__migrate_numa__descriptor, "to_node", false },
	{ &mm__v1__command_batch__descriptor, "host_id", false },
	{ &mm__v1__command_batch__descriptor, "scheduler_id", false },
	{ &mm__v1__command_batch__descriptor, "seq", false },
	{ &mm__v1__command_batch__descriptor, "issued_ms", false },
	{ &mm__v1__command_batch__descriptor, "expires_ms", false },
	{ &mm__v1__command_result__descriptor, "index", false },
	{ &mm__v1__command_result__descriptor, "status", false },
	{ &mm__v1__action_result__descriptor, "host_id", false },
	{ &mm__v1__action_result__descriptor, "batch_seq", false },
	{ &mm__v1__action_result__descriptor, "time_ms", false },
	{ &mm__v1__vm_rule__descriptor, "pattern", false },
	{ &mm__v1__param__descriptor, "name", false },
	{ &mm__v1__policy__descriptor, "version", true },
	{ &mm__v1__policy__descriptor, "mode", false },
	{ &mm__v1__metric__descriptor, "name", false },
	{ &mm__v1__event__descriptor, "kind", false },
	{ &mm__v1__event__descriptor, "time_ms", false },
	{ &mm__v1__vm_decision__descriptor, "vm_id", false },
	{ &mm__v1__guest_status__descriptor, "vm_id", false },
	{ &mm__v1__host_status__descriptor, "host_id", false },
	{ &mm__v1__status_reply__descriptor, "scheduler_id", false },
	{ &mm__v1__status_reply__descriptor, "time_ms", false },
	{ &mm__v1__cold_bucket__descriptor, "idle_ms", false },
	{ &mm__v1__reclaim_request__descriptor, "seq", true },
	{ &mm__v1__reclaim_request__descriptor, "kib", false },
	{ &mm__v1__reclaim_request__descriptor, "psi_budget_pct", false },
	{ &mm__v1__reclaim_status__descriptor, "seq", false },
	{ &mm__v1__reclaim_cold__descriptor, "vm_id", false },
	{ &mm__v1__reclaim_cold__descriptor, "kib", false },
	{ &mm__v1__reclaim_cold__descriptor, "psi_budget_pct", false },
	{ &mm__v1__vm_history__descriptor, "vm_id", false },
	{ &mm__v1__vm_history__descriptor, "newest_hour", true },
	{ &mm__v1__host_history__descriptor, "host_id", false },
	{ &mm__v1__host_history__descriptor, "scheduler_id", false },
	{ &mm__v1__host_history__descriptor, "time_ms", false },
};

/* Pairs of fields where lo <= hi when a message sets both. */
static const struct {
	const char *lo;
	const char *hi;
} ordered_fields[] = {
	{ "min_kib", "max_kib" },
	{ "min_pages_to_scan", "max_pages_to_scan" },
	{ "issued_ms", "expires_ms" },
	{ "start_available_pct", "stop_available_pct" },
};

/* Where validation is: the fields leading to the current message, turned
 * into a dotted path only when something fails (a report has hundreds of
 * sub-messages; formatting each path would cost more than checking it). */
#define VCTX_DEPTH	16

struct vctx {
	char *why;
	size_t whylen;
	size_t depth;
	struct {
		const char *field;
		long idx;
	} at[VCTX_DEPTH];
};

/* A scalar read from a message, whatever its protobuf type. */
struct scalar {
	bool is_double;
	bool negative;
	uint64_t u;
	double d;
};

static void
set_why(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why == NULL || whylen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

/* The dotted path of the current message, e.g. "guests[3].meminfo". */
static void
path_render(const struct vctx *c, char *buf, size_t size)
{
	size_t len = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < c->depth && i < VCTX_DEPTH && len < size; i++) {
		int n;

		if (c->at[i].idx >= 0)
			n = snprintf(buf + len, size - len, "%s%s[%ld]",
			    i > 0 ? "." : "", c->at[i].field, c->at[i].idx);
		else
			n = snprintf(buf + len, size - len, "%s%s",
			    i > 0 ? "." : "", c->at[i].field);
		if (n < 0)
			break;
		len += (size_t)n;
	}
}

/* Report a bad field as "<path>.<field>[<idx>]: <what>"; idx < 0: none. */
static int __attribute__((format(printf, 4, 5)))
fail(struct vctx *c, const char *field, long idx, const char *fmt, ...)
{
	char what[160];
	char path[256];
	char sub[24] = "";
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (idx >= 0)
		snprintf(sub, sizeof(sub), "[%ld]", idx);
	path_render(c, path, sizeof(path));
	set_why(c->why, c->whylen, "%s%s%s%s: %s", path,
	    c->depth > 0 && field[0] != '\0' ? "." : "", field, sub, what);
	return -EINVAL;
}

/* Deeper than VCTX_DEPTH still validates; the path shows the first levels. */
static void
path_push(struct vctx *c, const char *field, long idx)
{
	if (c->depth < VCTX_DEPTH) {
		c->at[c->depth].field = field;
		c->at[c->depth].idx = idx;
	}
	c->depth++;
}

static void
path_pop(struct vctx *c)
{
	c->depth--;
}

static const struct field_rule *
find_rule(const ProtobufCMessageDescriptor *desc, const char *field)
{
	const char *word = strrchr(field, '_');
	size_t mlen = strlen(desc->short_name);
	size_t i;

	word = word != NULL ? word + 1 : field;
	for (i = 0; i < sizeof(field_rules) / sizeof(field_rules[0]); i++) {
		const char *key = field_rules[i].key;

		if (strncmp(key, desc->short_name, mlen) == 0 &&
		    key[mlen] == '.' && strcmp(key + mlen + 1, field) == 0)
			return &field_rules[i];
	}
	for (i = 0; i < sizeof(field_rules) / sizeof(field_rules[0]); i++)
		if (strcmp(field_rules[i].key, word) == 0)
			return &field_rules[i];
	return NULL;
}

/*
 * What to check in one message type, worked out once from the tables above
 * (by field name) so that validating a message compares no strings.
 */
#define PLAN_MAX	64		/* message types in mm.v1 */
#define PLAN_FIELDS	1024		/* fields of all of them */
#define PLAN_REQUIRED	8
#define PLAN_ORDERED	4

struct plan {
	const ProtobufCMessageDescriptor *desc;
	const struct field_rule **rules;	/* per field index, or NULL */
	const ProtobufCFieldDescriptor *required[PLAN_REQUIRED];
	bool nonzero[PLAN_REQUIRED];
	unsigned n_required;
	const ProtobufCFieldDescriptor *lo[PLAN_ORDERED];
	const ProtobufCFieldDescriptor *hi[PLAN_ORDERED];
	unsigned n_ordered;
};

static struct plan plans[PLAN_MAX];
static unsigned n_plans;
static const struct field_rule *plan_rules[PLAN_FIELDS];
static unsigned n_plan_rules;

/* The plan of desc, built on first use; NULL only if the static tables
 * are too small for the protocol (a build-time mistake). */
static const struct plan *
plan_for(const ProtobufCMessageDescriptor *desc)
{
	struct plan *p;
	size_t i;

	for (i = 0; i < n_plans; i++)
		if (plans[i].desc == desc)
			return &plans[i];
	if (n_plans == PLAN_MAX || n_plan_rules + desc->n_fields > PLAN_FIELDS)
		return NULL;
	p = &plans[n_plans];
	memset(p, 0, sizeof(*p));
	p->rules = &plan_rules[n_plan_rules];
	for (i = 0; i < desc->n_fields; i++)
		p->rules[i] = find_rule(desc, desc->fields[i].name);
	for (i = 0; i < sizeof(required_fields) / sizeof(required_fields[0]);
	    i++) {
		if (required_fields[i].desc != desc)
			continue;
		if (p->n_required == PLAN_REQUIRED)
			return NULL;
		p->required[p->n_required] =
		    protobuf_c_message_descriptor_get_field_by_name(desc,
		    required_fields[i].field);
		if (p->required[p->n_required] == NULL)
			return NULL;
		p->nonzero[p->n_required++] = required_fields[i].nonzero;
	}
	for (i = 0; i < sizeof(ordered_fields) / sizeof(ordered_fields[0]);
	    i++) {
		const ProtobufCFieldDescriptor *lo, *hi;

		lo = protobuf_c_message_descriptor_get_field_by_name(desc,
		    ordered_fields[i].lo);
		hi = protobuf_c_message_descriptor_get_field_by_name(desc,
		    ordered_fields[i].hi);
		if (lo == NULL || hi == NULL)
			continue;
		if (p->n_ordered == PLAN_ORDERED)
			return NULL;
		p->lo[p->n_ordered] = lo;
		p->hi[p->n_ordered++] = hi;
	}
	p->desc = desc;
	n_plan_rules += desc->n_fields;
	n_plans++;
	return p;
}

static bool
field_present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd)
{
	const char *base = (const char *)m;

	if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
		return *(const uint32_t *)(base + fd->quantifier_offset) ==
		    fd->id;
	if (fd->label == PROTOBUF_C_LABEL_REQUIRED)
		return true;
	if (fd->label == PROTOBUF_C_LABEL_REPEATED)
		return *(const size_t *)(base + fd->quantifier_offset) > 0;
	if (fd->type == PROTOBUF_C_TYPE_STRING ||
	    fd->type == PROTOBUF_C_TYPE_MESSAGE)
		return *(void *const *)(base + fd->offset) != NULL;
	return *(const protobuf_c_boolean *)(base + fd->quantifier_offset);
}

/* Size of one element of a repeated field, as protobuf-c lays it out. */
static size_t
element_size(ProtobufCType type)
{
	switch (type) {
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
	case PROTOBUF_C_TYPE_DOUBLE:
		return 8;
	case PROTOBUF_C_TYPE_STRING:
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(void *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	default:
		return 4;
	}
}

static void
read_scalar(ProtobufCType type, const void *p, struct scalar *ret)
{
	int64_t s = 0;

	memset(ret, 0, sizeof(*ret));
	switch (type) {
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		ret->u = *(const uint32_t *)p;
		return;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		ret->u = *(const uint64_t *)p;
		return;
	case PROTOBUF_C_TYPE_FLOAT:
		ret->is_double = true;
		ret->d = *(const float *)p;
		return;
	case PROTOBUF_C_TYPE_DOUBLE:
		ret->is_double = true;
		ret->d = *(const double *)p;
		return;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		s = *(const int64_t *)p;
		break;
	default:
		/* int32, sint32, sfixed32, enum and bool are 4 bytes. */
		s = *(const int32_t *)p;
		break;
	}
	ret->negative = s < 0;
	ret->u = s < 0 ? 0 : (uint64_t)s;
}

static bool
id_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	    (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-';
}

/*
 * Printable: no control characters and well-formed UTF-8, so a text can
 * be logged and shown without escaping surprises. Returns the offset of
 * the first bad byte, or -1.
 */
static long
text_bad_offset(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	const unsigned char *start = p;

	while (*p != '\0') {
		unsigned char lo = 0x80, hi = 0xbf;
		int n, i;

		if (*p < 0x20 || *p == 0x7f)
			return p - start;
		if (*p < 0x80) {
			p++;
			continue;
		}
		if (*p >= 0xc2 && *p <= 0xdf)
			n = 1;
		else if (*p >= 0xe0 && *p <= 0xef)
			n = 2;
		else if (*p >= 0xf0 && *p <= 0xf4)
			n = 3;
		else
			return p - start;
		/* No overlong forms, surrogates or code points above
		 * U+10FFFF. */
		if (*p == 0xe0)
			lo = 0xa0;
		else if (*p == 0xed)
			hi = 0x9f;
		else if (*p == 0xf0)
			lo = 0x90;
		else if (*p == 0xf4)
			hi = 0x8f;
		for (i = 1; i <= n; i++) {
			if (p[i] < lo || p[i] > hi)
				return p - start;
			lo = 0x80;
			hi = 0xbf;
		}
		p += n + 1;
	}
	return -1;
}

static int
check_string(struct vctx *c, const char *field, long idx, const char *s,
    enum rule_kind kind)
{
	size_t max = kind == RULE_ID ? MSG_ID_MAX :
	    kind == RULE_NAME ? MSG_NAME_MAX : MSG_TEXT_MAX;
	size_t len, i;
	long bad;

	if (s == NULL)
		return fail(c, field, idx, "missing");
	len = strnlen(s, max + 1);
	if (len > max)
		return fail(c, field, idx, "longer than %zu bytes", max);
	if (len == 0 && kind != RULE_NONE)
		return fail(c, field, idx, "empty");
	switch (kind) {
	case RULE_ID:
		for (i = 0; i < len; i++)
			if (!id_char(s[i]))
				return fail(c, field, idx, "byte %zu is not "
				    "one of [A-Za-z0-9_.-]", i);
		return 0;
	case RULE_UUID:
		if (len != 36)
			return fail(c, field, idx, "not a UUID (length %zu)",
			    len);
		for (i = 0; i < len; i++) {
			bool dash = i == 8 || i == 13 || i == 18 || i == 23;

			if (dash ? s[i] != '-' :
			    strchr("0123456789abcdefABCDEF", s[i]) == NULL)
				return fail(c, field, idx, "not a UUID "
				    "(byte %zu)", i);
		}
		return 0;
	default:
		bad = text_bad_offset(s);
		if (bad >= 0)
			return fail(c, field, idx, "byte %ld is not printable "
			    "UTF-8", bad);
		return 0;
	}
}

static int
check_number(struct vctx *c, const char *field, long idx,
    const struct scalar *v, const struct field_rule *rule)
{
	if (v->is_double) {
		if (!isfinite(v->d))
			return fail(c, field, idx, "not a finite number");
		if (rule != NULL && rule->kind == RULE_PCT &&
		    (v->d < 0 || v->d > 100))
			return fail(c, field, idx, "%g outside 0..100", v->d);
		return 0;
	}
	if (rule == NULL || rule->kind != RULE_UINT)
		return 0;
	if (v->negative)
		return fail(c, field, idx, "negative");
	if (v->u > rule->max)
		return fail(c, field, idx, "%llu above %llu",
		    (unsigned long long)v->u, (unsigned long long)rule->max);
	return 0;
}

static int validate_message(struct vctx *c, const ProtobufCMessage *m,
    const ProtobufCMessageDescriptor *desc);

/* Check one value (an element, for repeated fields) at p. */
static int
check_value(struct vctx *c, const ProtobufCFieldDescriptor *fd, long idx,
    const void *p, const struct field_rule *rule)
{
	const ProtobufCMessage *sub;
	struct scalar v;
	int r;

	switch (fd->type) {
	case PROTOBUF_C_TYPE_STRING:
		return check_string(c, fd->name, idx, *(char *const *)p,
		    rule != NULL ? rule->kind : RULE_NONE);
	case PROTOBUF_C_TYPE_MESSAGE:
		sub = *(ProtobufCMessage *const *)p;
		if (sub == NULL)
			return fail(c, fd->name, idx, "missing");
		path_push(c, fd->name, idx);
		r = validate_message(c, sub, fd->descriptor);
		path_pop(c);
		return r;
	case PROTOBUF_C_TYPE_ENUM:
		/* Value 0 of every mm enum is UNSPECIFIED: never sent. */
		if (*(const int *)p == 0)
			return fail(c, fd->name, idx, "unspecified");
		if (protobuf_c_enum_descriptor_get_value(fd->descriptor,
		    *(const int *)p) == NULL)
			return fail(c, fd->name, idx, "unknown value %d",
			    *(const int *)p);
		return 0;
	case PROTOBUF_C_TYPE_BOOL:
	case PROTOBUF_C_TYPE_BYTES:
		return 0;
	default:
		read_scalar(fd->type, p, &v);
		return check_number(c, fd->name, idx, &v, rule);
	}
}

static int
check_field(struct vctx *c, const ProtobufCMessage *m,
    const ProtobufCFieldDescriptor *fd, const struct field_rule *rule)
{
	const char *base = (const char *)m;
	size_t max, n, i, size;
	const char *elems;
	int r;

	if (fd->label != PROTOBUF_C_LABEL_REPEATED)
		return check_value(c, fd, -1, base + fd->offset, rule);
	n = *(const size_t *)(base + fd->quantifier_offset);
	max = rule != NULL && rule->max_count > 0 ? rule->max_count :
	    MSG_REPEATED_MAX;
	if (n > max)
		return fail(c, fd->name, -1, "%zu elements, at most %zu", n,
		    max);
	elems = *(const char *const *)(base + fd->offset);
	size = element_size(fd->type);
	for (i = 0; i < n; i++) {
		r = check_value(c, fd, (long)i, elems + i * size, rule);
		if (r < 0)
			return r;
	}
	return 0;
}

static int
check_required(struct vctx *c, const ProtobufCMessage *m,
    const struct plan *p)
{
	const ProtobufCFieldDescriptor *fd;
	struct scalar v;
	size_t i;

	for (i = 0; i < p->n_required; i++) {
		fd = p->required[i];
		if (!field_present(m, fd))
			return fail(c, fd->name, -1, "missing");
		if (!p->nonzero[i])
			continue;
		read_scalar(fd->type, (const char *)m + fd->offset, &v);
		if (v.u == 0 && !v.is_double)
			return fail(c, fd->name, -1, "zero");
	}
	return 0;
}

static int
check_ordered(struct vctx *c, const ProtobufCMessage *m,
    const struct plan *p)
{
	const ProtobufCFieldDescriptor *lo, *hi;
	struct scalar a, b;
	size_t i;

	for (i = 0; i < p->n_ordered; i++) {
		lo = p->lo[i];
		hi = p->hi[i];
		if (!field_present(m, lo) || !field_present(m, hi))
			continue;
		read_scalar(lo->type, (const char *)m + lo->offset, &a);
		read_scalar(hi->type, (const char *)m + hi->offset, &b);
		if (a.is_double && a.d > b.d)
			return fail(c, lo->name, -1, "%g above %s %g", a.d,
			    hi->name, b.d);
		if (!a.is_double && a.u > b.u)
			return fail(c, lo->name, -1, "%llu above %s %llu",
			    (unsigned long long)a.u, hi->name,
			    (unsigned long long)b.u);
	}
	return 0;
}

static int
validate_message(struct vctx *c, const ProtobufCMessage *m,
    const ProtobufCMessageDescriptor *desc)
{
	const ProtobufCFieldDescriptor *fd;
	bool has_oneof = false, oneof_set = false;
	const struct plan *p;
	unsigned i;
	size_t k;
	int r;

	if (m->descriptor != desc)
		return fail(c, c->depth > 0 ? "" : "message", -1,
		    "a %s where a %s belongs",
		    m->descriptor != NULL ? m->descriptor->name : "(null)",
		    desc->name);
	p = plan_for(desc);
	if (p == NULL)
		return fail(c, "message", -1, "no validation plan for %s",
		    desc->name);
	/* protobuf-c takes field number 0 when its tag is encoded in more
	 * than one byte, and keeps it as unknown; packed again it is one
	 * byte, which it refuses: such a message would not decode again. */
	for (k = 0; k < m->n_unknown_fields; k++)
		if (m->unknown_fields[k].tag == 0)
			return fail(c, c->depth > 0 ? "" : "message", -1,
			    "a field numbered 0");
	for (i = 0; i < desc->n_fields; i++) {
		fd = &desc->fields[i];
		if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
			has_oneof = true;
		if (!field_present(m, fd))
			continue;
		if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
			oneof_set = true;
		r = check_field(c, m, fd, p->rules[i]);
		if (r < 0)
			return r;
	}
	/* mm's oneofs (Command.kind) say what a message is: one must be set. */
	if (has_oneof && !oneof_set)
		return fail(c, "kind", -1, "none set");
	r = check_required(c, m, p);
	if (r < 0)
		return r;
	return check_ordered(c, m, p);
}

const char *
msg_type_name(enum msg_type t)
{
	const ProtobufCMessageDescriptor *desc = msg_descriptor(t);

	return desc != NULL ? desc->name : NULL;
}

int
msg_type_from_name(const char *name, enum msg_type *ret_type)
{
	int t;

	if (name == NULL)
		return -ENOENT;
	for (t = 0; t < MSG_TYPE_COUNT; t++)
		if (strcmp(msg_types[t].desc->name, name) == 0) {
			*ret_type = (enum msg_type)t;
			return 0;
		}
	return -ENOENT;
}

const ProtobufCMessageDescriptor *
msg_descriptor(enum msg_type t)
{
	if ((unsigned)t >= MSG_TYPE_COUNT)
		return NULL;
	return msg_types[t].desc;
}

size_t
msg_max_size(enum msg_type t)
{
	if ((unsigned)t >= MSG_TYPE_COUNT)
		return 0;
	return msg_types[t].max_size;
}

int
msg_validate(enum msg_type t, const ProtobufCMessage *m, char *why,
    size_t whylen)
{
	const ProtobufCMessageDescriptor *desc = msg_descriptor(t);
	struct vctx c = { .why = why, .whylen = whylen };

	if (desc == NULL) {
		set_why(why, whylen, "unknown message type %d", (int)t);
		return -EINVAL;
	}
	if (m == NULL) {
		set_why(why, whylen, "no message");
		return -EINVAL;
	}
	return validate_message(&c, m, desc);
}

int
msg_pack(enum msg_type t, const ProtobufCMessage *m, uint8_t **ret_buf,
    size_t *ret_len)
{
	char why[256];
	uint8_t *buf;
	size_t len;
	int r;

	r = msg_validate(t, m, why, sizeof(why));
	if (r < 0) {
		log_debug("msg: not packing an invalid %s: %s",
		    msg_type_name(t) != NULL ? msg_type_name(t) : "message",
		    why);
		return r;
	}
	len = protobuf_c_message_get_packed_size(m);
	if (len > msg_max_size(t)) {
		log_debug("msg: not packing %s: %zu bytes, at most %zu",
		    msg_type_name(t), len, msg_max_size(t));
		return -EMSGSIZE;
	}
	/* An empty message packs to 0 bytes; malloc(0) may return NULL. */
	buf = malloc(len > 0 ? len : 1);
	if (buf == NULL)
		return -ENOMEM;
	if (protobuf_c_message_pack(m, buf) != len) {
		free(buf);
		return -EINVAL;
	}
	*ret_buf = buf;
	*ret_len = len;
	return 0;
}

int
msg_pack_frame(enum msg_type t, const ProtobufCMessage *m, uint8_t **ret_buf,
    size_t *ret_len)
{
	uint8_t *body, *frame;
	size_t len;
	int r;

	r = msg_pack(t, m, &body, &len);
	if (r < 0)
		return r;
	frame = malloc(len + 4);
	if (frame == NULL) {
		free(body);
		return -ENOMEM;
	}
	frame[0] = (uint8_t)(len >> 24);
	frame[1] = (uint8_t)(len >> 16);
	frame[2] = (uint8_t)(len >> 8);
	frame[3] = (uint8_t)len;
	memcpy(frame + 4, body, len);
	free(body);
	*ret_buf = frame;
	*ret_len = len + 4;
	return 0;
}

/* msg_unpack() with protobuf-c's allocator alloc (NULL: malloc). */
static int
unpack(enum msg_type t, const void *data, size_t len,
    ProtobufCAllocator *alloc, ProtobufCMessage **ret, char *why,
    size_t whylen)
{
	const ProtobufCMessageDescriptor *desc = msg_descriptor(t);
	ProtobufCMessage *m;
	int r;

	if (desc == NULL) {
		set_why(why, whylen, "unknown message type %d", (int)t);
		return -EINVAL;
	}
	if (len > msg_types[t].max_size) {
		set_why(why, whylen, "%s of %zu bytes, at most %zu",
		    desc->name, len, msg_types[t].max_size);
		return -EMSGSIZE;
	}
	if (data == NULL && len > 0) {
		set_why(why, whylen, "no data");
		return -EINVAL;
	}
	m = protobuf_c_message_unpack(desc, alloc, len, data);
	if (m == NULL) {
		set_why(why, whylen, "not a decodable %s", desc->name);
		return -EBADMSG;
	}
	r = msg_validate(t, m, why, whylen);
	if (r < 0) {
		protobuf_c_message_free_unpacked(m, alloc);
		return r;
	}
	*ret = m;
	return 0;
}

int
msg_unpack(enum msg_type t, const void *data, size_t len,
    ProtobufCMessage **ret, char *why, size_t whylen)
{
	return unpack(t, data, len, NULL, ret, why, whylen);
}

ProtobufCMessage *
msg_dup(enum msg_type t, const ProtobufCMessage *m)
{
	ProtobufCMessage *copy;
	uint8_t *buf;
	size_t len;
	int r;

	r = msg_pack(t, m, &buf, &len);
	if (r == 0) {
		r = msg_unpack(t, buf, len, &copy, NULL, 0);
		free(buf);
	}
	if (r < 0) {
		errno = -r;
		return NULL;
	}
	return copy;
}

void
msg_free(ProtobufCMessage *m)
{
	if (m != NULL)
		protobuf_c_message_free_unpacked(m, NULL);
}

int
msg_to_bus(enum msg_type t, const ProtobufCMessage *m,
    const char *exchange, const char *key, bool persistent,
    struct bus_msg *ret_msg, uint8_t **ret_buf)
{
	uint8_t *buf;
	size_t len;
	int r;

	r = msg_pack(t, m, &buf, &len);
	if (r < 0)
		return r;
	memset(ret_msg, 0, sizeof(*ret_msg));
	ret_msg->exchange = exchange;
	ret_msg->routing_key = key;
	ret_msg->body = buf;
	ret_msg->len = len;
	ret_msg->content_type = MSG_CONTENT_TYPE;
	ret_msg->type = msg_type_name(t);
	ret_msg->persistent = persistent;
	*ret_buf = buf;
	return 0;
}

/*
 * Where msg_dispatch() unpacks: a bump allocator, emptied when the handler
 * returns. protobuf-c allocates every sub-message, string and array of a
 * message on its own (some 200 for a HostReport of 50 guests) and frees
 * them one by one; here each is a pointer bump and all go in one reset.
 * The buffer grows to what the last message needed, up to ARENA_KEEP;
 * what does not fit comes from malloc and goes at the reset.
 */
#define ARENA_ALIGN	16		/* malloc's alignment on x86-64 */
#define ARENA_KEEP	(1u << 20)

struct arena_block {
	struct arena_block *next;
	max_align_t data[];
};

struct arena {
	unsigned char *buf;
	size_t cap;
	size_t used;
	size_t wanted;			/* by the message in it */
	struct arena_block *blocks;	/* what did not fit in buf */
	bool busy;			/* a message lives in it */
};

static struct arena dispatch_arena;

static void *
arena_alloc(void *data, size_t size)
{
	struct arena *a = data;
	struct arena_block *b;
	size_t need;
	void *p;

	if (size > SIZE_MAX / 2)
		return NULL;
	need = ((size > 0 ? size : 1) + ARENA_REDZONE + ARENA_ALIGN - 1) &
	    ~(size_t)(ARENA_ALIGN - 1);
	a->wanted += need;
	if (a->buf != NULL && need <= a->cap - a->used) {
		p = a->buf + a->used;
		a->used += need;
		ASAN_UNPOISON_MEMORY_REGION(p, size);
		return p;
	}
	b = malloc(sizeof(*b) + size);
	if (b == NULL)
		return NULL;
	b->next = a->blocks;
	a->blocks = b;
	return b->data;
}

/* Everything goes at the reset. */
static void
arena_free(void *data, void *p)
{
	(void)data;
	(void)p;
}

/* Empty a, making room for a message like the last one (plus a quarter). */
static void
arena_reset(struct arena *a)
{
	struct arena_block *b;
	size_t cap;

	while ((b = a->blocks) != NULL) {
		a->blocks = b->next;
		free(b);
	}
	if (a->wanted > a->cap && a->wanted <= ARENA_KEEP) {
		cap = a->wanted + a->wanted / 4;
		if (cap > ARENA_KEEP)
			cap = ARENA_KEEP;
		free(a->buf);
		a->buf = malloc(cap);
		a->cap = a->buf != NULL ? cap : 0;
	}
	if (a->buf != NULL)
		ASAN_POISON_MEMORY_REGION(a->buf, a->cap);
	a->used = 0;
	a->wanted = 0;
	a->busy = false;
}

/* A property for a log line: at most 64 bytes, non-printables as '?'. */
static const char *
quote_prop(char *dst, size_t size, const char *s)
{
	size_t i;

	if (s == NULL)
		s = "";
	for (i = 0; i + 1 < size && i < 64 && s[i] != '\0'; i++)
		dst[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	dst[i] = '\0';
	return dst;
}

static const struct msg_handler *
find_handler(const struct msg_handler *table, size_t n, enum msg_type t)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (table[i].type == t && table[i].fn != NULL)
			return &table[i];
	return NULL;
}

enum bus_disposition
msg_dispatch(const struct msg_handler *table, size_t n,
    const struct bus_delivery *d, void *arg,
    struct msg_dispatch_stats *stats, char *why, size_t whylen)
{
	struct msg_dispatch_stats scratch;
	ProtobufCAllocator pa = { arena_alloc, arena_free, &dispatch_arena };
	ProtobufCAllocator *alloc = NULL;
	const struct msg_handler *h;
	enum bus_disposition disp;
	char local_why[256], q[72];
	ProtobufCMessage *m;
	enum msg_type t;
	int r;

	if (stats == NULL)
		stats = &scratch;
	if (why == NULL || whylen == 0) {
		why = local_why;
		whylen = sizeof(local_why);
	}
	if (d->content_type == NULL ||
	    strcmp(d->content_type, MSG_CONTENT_TYPE) != 0) {
		stats->bad_content_type++;
		set_why(why, whylen, "content_type \"%s\" is not %s",
		    quote_prop(q, sizeof(q), d->content_type),
		    MSG_CONTENT_TYPE);
		goto reject;
	}
	if (msg_type_from_name(d->type, &t) < 0) {
		stats->unknown_type++;
		set_why(why, whylen, "type \"%s\" is not an mm message",
		    quote_prop(q, sizeof(q), d->type));
		goto reject;
	}
	h = find_handler(table, n, t);
	if (h == NULL) {
		stats->unexpected_type++;
		set_why(why, whylen, "no handler for %s here",
		    msg_type_name(t));
		goto reject;
	}
	/* A handler that dispatches again gets malloc's messages. */
	if (!dispatch_arena.busy) {
		dispatch_arena.busy = true;
		alloc = &pa;
	}
	r = unpack(t, d->body, d->len, alloc, &m, why, whylen);
	if (alloc != NULL && r < 0)
		arena_reset(&dispatch_arena);
	if (r == -EMSGSIZE) {
		stats->too_big++;
		goto reject;
	} else if (r == -EBADMSG) {
		stats->undecodable++;
		goto reject;
	} else if (r < 0) {
		stats->invalid++;
		goto reject;
	}
	stats->ok++;
	disp = h->fn(m, d, arg);
	if (alloc != NULL)
		arena_reset(&dispatch_arena);
	else
		msg_free(m);
	return disp;

reject:
	log_debug("msg: rejecting a message from queue \"%s\": %s",
	    quote_prop(q, sizeof(q), d->queue), why);
	return BUS_REJECT;
}

bool
msg_drop_unknown(ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *desc = m->descriptor;
	bool any = m->n_unknown_fields > 0;
	unsigned i;
	size_t k;

	for (k = 0; k < m->n_unknown_fields; k++)
		free(m->unknown_fields[k].data);
	free(m->unknown_fields);
	m->unknown_fields = NULL;
	m->n_unknown_fields = 0;
	for (i = 0; i < desc->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &desc->fields[i];
		void *at = (char *)m + f->offset;

		if (f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(size_t *)((char *)m + f->quantifier_offset);
			ProtobufCMessage **v = *(ProtobufCMessage ***)at;

			for (k = 0; k < n; k++)
				any |= msg_drop_unknown(v[k]);
		} else if (*(ProtobufCMessage **)at != NULL) {
			any |= msg_drop_unknown(*(ProtobufCMessage **)at);
		}
	}
	return any;
}

bool
msg_event_vm(const Mm__V1__Event *e, size_t i, Mm__V1__VmDecision *ret)
{
	if (e->n_vms > 0) {
		if (i >= e->n_vms)
			return false;
		*ret = *e->vms[i];
		return true;
	}
	if (i > 0 || e->vm_id == NULL)
		return false;
	mm__v1__vm_decision__init(ret);
	ret->vm_id = e->vm_id;
	ret->reason = e->reason;
	ret->n_metrics = e->n_metrics;
	ret->metrics = e->metrics;
	ret->has_balloon_target_kib = e->has_balloon_target_kib;
	ret->balloon_target_kib = e->balloon_target_kib;
	ret->has_balloon_actual_kib = e->has_balloon_actual_kib;
	ret->balloon_actual_kib = e->balloon_actual_kib;
	return true;
}

size_t
msg_packed_size(const ProtobufCMessage *m)
{
	return protobuf_c_message_get_packed_size(m);
}
