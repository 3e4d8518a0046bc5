/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mmctl events: decisions with their reasons, actuators' results and
 * alerts, one line each (a decision event: one per VM), read from the
 * stream mm.events.log (the recent history of mm.events): from --since ago
 * up to now, then, with --follow, as they are published. "Now" is a mark
 * mmctl appends to the stream itself: everything published before it is
 * read before it. Filters are applied here, on the routing key of each
 * delivery.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "conf.h"
#include "mmctl.h"
#include "topology.h"

/* What to print and where the history ends. */
struct events {
	struct session s;
	const char *host;	/* NULL: every host */
	const char *kind;	/* NULL: every kind */
	uint64_t since_ms;	/* older events are not printed */
	bool follow;
	bool json;		/* a JSON object a line */
	bool history_done;	/* our mark was read */
	bool mark_failed;
	char mark_id[96];	/* message_id of our mark */
	uint64_t printed;
};

/* The history spans days: the date too, in local time. */
static const char *
clock_of(uint64_t ms, char *buf, size_t size)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	size_t n;

	localtime_r(&t, &tm);
	n = strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm);
	snprintf(buf + n, size - n, ".%03u", (unsigned)(ms % 1000));
	return buf;
}

static const char *
status_name(Mm__V1__ResultStatus s)
{
	static const char *const names[] = { "?", "ok", "clamped", "failed",
	    "skipped", "expired", "out-of-order" };

	return (unsigned)s < sizeof(names) / sizeof(*names) ? names[s] : "?";
}

static void
print_result(const Mm__V1__ActionResult *r)
{
	char a[32], b[32];

	if (r == NULL)
		return;
	printf(" batch %llu:", (unsigned long long)r->batch_seq);
	for (size_t i = 0; i < r->n_results; i++) {
		const Mm__V1__CommandResult *c = r->results[i];

		printf("%s %s %s", i ? ";" : "", c->vm_id != NULL ? c->vm_id :
		    "host", status_name(c->status));
		if (c->has_balloon_target_kib)
			printf(" target %s actual %s", fmt_kib(a, sizeof(a),
			    c->balloon_target_kib), fmt_kib(b, sizeof(b),
			    c->balloon_actual_kib));
		if (c->error != NULL && *c->error != '\0')
			printf(" (%s)", c->error);
	}
}

/* One line per VM of a decision event, as when each VM had an event of
 * its own. Returns the lines printed. */
static uint64_t
print_decisions(const Mm__V1__Event *e, const char *when)
{
	const char *shadow = e->shadow ? " [shadow: not sent]" : "";
	const char *host = e->host_id != NULL ? e->host_id : "";
	Mm__V1__VmDecision vd;
	size_t i;

	for (i = 0; msg_event_vm(e, i, &vd); i++)
		printf("%s decision %s %s: %s%s\n", when, host, vd.vm_id,
		    vd.reason != NULL ? vd.reason : "", shadow);
	if (i == 0)
		printf("%s decision %s : %s%s\n", when, host,
		    e->reason != NULL ? e->reason : "", shadow);
	fflush(stdout);
	return i > 0 ? i : 1;
}

static const char *const severity[] = { "", "info", "warning",
    "critical" };

/* One line, compact, flushed; frees o. */
static void
json_line(json_t *o)
{
	json_dumpf(o, stdout, JSON_COMPACT | JSON_SORT_KEYS);
	putchar('\n');
	fflush(stdout);
	json_decref(o);
}

/* --json: the same lines as objects ("kind", "time_ms", "time", "host"
 * and per kind: decision "vm", "reason", "shadow", and the numbers;
 * result "batch", "results"; alert "vm", "severity", "reason"). Returns
 * the lines printed. */
static uint64_t
print_json(const Mm__V1__Event *e, const char *when)
{
	json_t *o;
	Mm__V1__VmDecision vd;
	size_t i;

	switch (e->kind) {
	case MM__V1__EVENT_KIND__EVENT_KIND_DECISION:
		for (i = 0; msg_event_vm(e, i, &vd); i++)
			json_line(json_pack("{s:s, s:I, s:s, s:s?, s:s, s:s?, "
			    "s:b, s:I, s:I}", "kind", "decision", "time_ms",
			    (json_int_t)e->time_ms, "time", when, "host",
			    e->host_id, "vm", vd.vm_id, "reason", vd.reason,
			    "shadow", (int)e->shadow, "target_kib",
			    (json_int_t)vd.balloon_target_kib, "actual_kib",
			    (json_int_t)vd.balloon_actual_kib));
		if (i > 0)
			return i;
		json_line(json_pack("{s:s, s:I, s:s, s:s?, s:s?, s:b}",
		    "kind", "decision", "time_ms", (json_int_t)e->time_ms,
		    "time", when, "host", e->host_id, "reason", e->reason,
		    "shadow", (int)e->shadow));
		return 1;
	case MM__V1__EVENT_KIND__EVENT_KIND_RESULT: {
		json_t *rs = json_array();

		for (i = 0; e->result != NULL && i < e->result->n_results;
		    i++) {
			const Mm__V1__CommandResult *c = e->result->results[i];
			json_t *x = json_pack("{s:s?, s:s, s:s?}", "vm",
			    c->vm_id, "status", status_name(c->status),
			    "error", c->error != NULL && *c->error != '\0' ?
			    c->error : NULL);

			if (c->has_balloon_target_kib) {
				json_object_set_new(x, "target_kib",
				    json_integer((json_int_t)
				    c->balloon_target_kib));
				json_object_set_new(x, "actual_kib",
				    json_integer((json_int_t)
				    c->balloon_actual_kib));
			}
			json_array_append_new(rs, x);
		}
		o = json_pack("{s:s, s:I, s:s, s:s?, s:s?, s:o}", "kind",
		    "result", "time_ms", (json_int_t)e->time_ms, "time", when,
		    "host", e->host_id, "reason", e->reason, "results", rs);
		if (e->result != NULL)
			json_object_set_new(o, "batch",
			    json_integer((json_int_t)e->result->batch_seq));
		json_line(o);
		return 1;
	}
	default:
		json_line(json_pack("{s:s, s:I, s:s, s:s?, s:s?, s:s, s:s?}",
		    "kind", "alert", "time_ms", (json_int_t)e->time_ms, "time",
		    when, "host", e->host_id, "vm", e->vm_id, "severity",
		    (unsigned)e->severity < 4 ? severity[e->severity] : "?",
		    "reason", e->reason));
		return 1;
	}
}

static enum bus_disposition
on_event(const ProtobufCMessage *m, const struct bus_delivery *d, void *arg)
{
	const char *const *sev = severity;
	const Mm__V1__Event *e = (const Mm__V1__Event *)m;
	struct events *ev = arg;
	char t[32];

	/* The stream starts at a chunk written at --since or later, which
	 * may hold a few older events. */
	if (e->time_ms < ev->since_ms)
		return BUS_ACK;
	clock_of(e->time_ms, t, sizeof(t));
	if (ev->json) {
		ev->printed += print_json(e, t);
		return BUS_ACK;
	}
	if (e->kind == MM__V1__EVENT_KIND__EVENT_KIND_DECISION) {
		ev->printed += print_decisions(e, t);
		return BUS_ACK;
	}
	printf("%s ", t);
	switch (e->kind) {
	case MM__V1__EVENT_KIND__EVENT_KIND_RESULT:
		printf("result %s", e->host_id);
		print_result(e->result);
		if (e->reason != NULL)
			printf(" %s", e->reason);
		break;
	default:
		printf("alert %s%s%s (%s): %s", e->host_id != NULL ?
		    e->host_id : "", e->vm_id != NULL ? " " : "",
		    e->vm_id != NULL ? e->vm_id : "",
		    (unsigned)e->severity < 4 ? sev[e->severity] : "?",
		    e->reason != NULL ? e->reason : "");
		break;
	}
	putchar('\n');
	fflush(stdout);
	ev->printed++;
	return BUS_ACK;
}

/* Does routing key "<kind>.<host-id>" pass the filters? */
static bool
wanted(const struct events *ev, const char *key)
{
	const char *dot = strchr(key, '.');
	size_t kind_len = dot != NULL ? (size_t)(dot - key) : strlen(key);

	if (ev->kind != NULL && (strlen(ev->kind) != kind_len ||
	    strncmp(key, ev->kind, kind_len) != 0))
		return false;
	if (ev->host != NULL && (dot == NULL || strcmp(dot + 1, ev->host) != 0))
		return false;
	return true;
}

static enum bus_disposition
log_cb(struct bus *bus, const struct bus_delivery *d, void *arg)
{
	struct events *ev = arg;

	/* A long history is fine while it flows: --wait is the longest
	 * time without a delivery. */
	if (!ev->history_done)
		uv_timer_again(&ev->s.deadline);
	/* Marks of every mmctl run share the log; only ours matters. */
	if (strncmp(d->routing_key, TOPO_EV_MARK ".",
	    strlen(TOPO_EV_MARK ".")) == 0) {
		if (strcmp(d->message_id, ev->mark_id) == 0 &&
		    !ev->history_done) {
			ev->history_done = true;
			if (!ev->follow)
				ev->s.done = true;
		}
		return BUS_ACK;
	}
	if (!wanted(ev, d->routing_key))
		return BUS_ACK;
	return session_dispatch_cb(bus, d, &ev->s);
}

static void
mark_confirm_cb(struct bus *bus, int status, void *arg)
{
	struct events *ev = arg;

	if (status != 0 && status != -ECANCELED) {
		ev->mark_failed = true;
		ev->s.done = true;
	}
}

/* Append our mark to the log through mm.events (key mark.<unique>, which
 * only the log's "#" binding matches). */
static int
publish_mark(struct events *ev)
{
	static const char body[] = "end of history";
	char key[128];
	struct bus_msg msg = {
		.exchange = TOPO_EX_EVENTS,
		.routing_key = key,
		.body = body,
		.len = sizeof(body) - 1,
		.content_type = "text/plain",
		.type = "mm.mmctl.mark",
		.message_id = ev->mark_id,
	};

	snprintf(key, sizeof(key), "%s.%s", TOPO_EV_MARK, ev->s.unique);
	snprintf(ev->mark_id, sizeof(ev->mark_id), "mmctl.%s.%llu",
	    ev->s.unique, (unsigned long long)uv_hrtime());
	return bus_publish(ev->s.bus, &msg, mark_confirm_cb, ev);
}

static int
parse_duration(const char *opt, const char *s, int64_t *ret_ms)
{
	int64_t ms;

	if (conf_parse_duration_ms(s, &ms) < 0 || ms <= 0) {
		fprintf(stderr, "mmctl: %s \"%s\" is not a duration (e.g. "
		    "90s, 15m, 24h)\n", opt, s);
		return -EINVAL;
	}
	*ret_ms = ms;
	return 0;
}

int
cmd_events(const struct bus_config *broker, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "follow", no_argument, NULL, 'f' },
		{ "json", no_argument, NULL, 'j' },
		{ "host", required_argument, NULL, 'H' },
		{ "kind", required_argument, NULL, 'k' },
		{ "since", required_argument, NULL, 's' },
		{ "wait", required_argument, NULL, 'w' },
		{ NULL, 0, NULL, 0 },
	};
	struct events ev = { 0 };
	int64_t wait_ms = 10000, since_ms = 3600 * 1000;
	uint64_t now_ms;
	int c, r;

	optind = 1;
	while ((c = getopt_long(argc, argv, "f", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			ev.follow = true;
			break;
		case 'j':
			ev.json = true;
			break;
		case 'H':
			ev.host = optarg;
			break;
		case 'k':
			ev.kind = optarg;
			break;
		case 's':
			if (parse_duration("--since", optarg, &since_ms) < 0)
				return 2;
			break;
		case 'w':
			if (parse_duration("--wait", optarg, &wait_ms) < 0)
				return 2;
			break;
		default:
			return 2;
		}
	}
	if (ev.kind != NULL && strcmp(ev.kind, TOPO_EV_DECISION) != 0 &&
	    strcmp(ev.kind, TOPO_EV_RESULT) != 0 &&
	    strcmp(ev.kind, TOPO_EV_ALERT) != 0) {
		fprintf(stderr, "mmctl: --kind \"%s\": one of decision, result, "
		    "alert\n", ev.kind);
		return 2;
	}
	if (ev.host != NULL && !topo_id_valid(ev.host)) {
		fprintf(stderr, "mmctl: \"%s\" is not a host id\n", ev.host);
		return 2;
	}
	now_ms = (uint64_t)time(NULL) * 1000;
	ev.since_ms = now_ms > (uint64_t)since_ms ? now_ms -
	    (uint64_t)since_ms : 0;
	session_init(&ev.s, broker, MSG_EVENT, on_event, &ev);
	topo_declare_events_exchange(ev.s.bus);
	bus_consume_stream(ev.s.bus, TOPO_Q_EVENTS_LOG, BUS_STREAM_TIME,
	    ev.since_ms / 1000, log_cb, &ev);
	if (session_connect(&ev.s) == -ENOENT) {
		fprintf(stderr, "mmctl: no event history: the broker has no "
		    "queue \"%s\" (mm-scheduler declares it when it starts; "
		    "is one running?)\n", TOPO_Q_EVENTS_LOG);
		session_close(&ev.s);
		return 1;
	}
	if (publish_mark(&ev) < 0) {
		fprintf(stderr, "mmctl: cannot publish to \"%s\"\n",
		    TOPO_EX_EVENTS);
		session_close(&ev.s);
		return 1;
	}
	/* --wait bounds a silence before the end of the history; with
	 * --follow the wait after it is endless. */
	r = session_run(&ev.s, ev.follow ? 0 : (unsigned)wait_ms);
	session_close(&ev.s);
	if (ev.mark_failed) {
		fprintf(stderr, "mmctl: the broker refused mmctl's mark on "
		    "\"%s\": cannot tell where the history ends\n",
		    TOPO_EX_EVENTS);
		return 1;
	}
	if (r == 3) {
		fprintf(stderr, "mmctl: nothing came for %lld ms before the "
		    "end of the event history\n", (long long)wait_ms);
		return 1;
	}
	return r == 130 ? 0 : r;
}
