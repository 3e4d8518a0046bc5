/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mmctl status and top: a status request to every scheduler on mm.control,
 * their replies merged into one view of the fleet, printed as a table or as
 * JSON. mmctl policy show gathers the same way.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "clock.h"
#include "conf.h"
#include "mmctl.h"
#include "policy.h"
#include "topology.h"

/* The reply is kept: unpacked again, since the one handed here is freed
 * when this returns. */
static enum bus_disposition
reply_cb(const ProtobufCMessage *msg, const struct bus_delivery *d, void *arg)
{
	struct gather *g = arg;
	ProtobufCMessage *m;
	char why[256];

	if (strcmp(d->correlation_id, g->correlation) != 0 ||
	    g->n == REPLIES_MAX)
		return BUS_ACK;	/* an older request's answer */
	if (msg_unpack(MSG_STATUS_REPLY, d->body, d->len, &m, why,
	    sizeof(why)) < 0) {
		fprintf(stderr, "mmctl: a malformed reply ignored: %s\n", why);
		return BUS_ACK;
	}
	g->replies[g->n++] = (Mm__V1__StatusReply *)m;
	uv_update_time(&g->s.loop);
	g->last_ms = uv_now(&g->s.loop);
	return BUS_ACK;
}

/* Done 500 ms after the last reply, or after 3 s without any. */
static void
quiet_cb(uv_timer_t *t)
{
	struct gather *g = t->data;
	uint64_t now = uv_now(&g->s.loop);

	if (g->n > 0 && now - g->last_ms >= 500)
		g->s.done = true;
}

static void
gather_free(struct gather *g)
{
	for (size_t i = 0; i < g->n; i++)
		msg_free(&g->replies[i]->base);
	g->n = 0;
}

int
gather(struct gather *g, const char *host, bool guests)
{
	Mm__V1__StatusRequest q = MM__V1__STATUS_REQUEST__INIT;
	char *hosts[1] = { (char *)host };
	struct bus_msg m;
	uint8_t *buf;
	int r;

	gather_free(g);
	g->s.done = false;
	g->s.status = 0;
	snprintf(g->correlation, sizeof(g->correlation), "%d-%ld",
	    (int)getpid(), (long)time(NULL) ^ (long)random());
	q.has_guests = true;
	q.guests = guests;
	if (host != NULL) {
		q.n_host_ids = 1;
		q.host_ids = hosts;
	}
	r = msg_to_bus(MSG_STATUS_REQUEST, (const ProtobufCMessage *)&q,
	    TOPO_EX_CONTROL, TOPO_CONTROL_STATUS, false, &m, &buf);
	if (r < 0) {
		fprintf(stderr, "mmctl: bad request: host \"%s\"?\n", host);
		return 2;
	}
	m.reply_to = g->s.reply_queue;
	m.correlation_id = g->correlation;
	m.expiration_ms = 5000;
	r = bus_publish(g->s.bus, &m, NULL, NULL);
	free(buf);
	if (r < 0)
		return 1;
	uv_timer_start(&g->quiet, quiet_cb, 100, 100);
	r = session_run(&g->s, 3000);
	uv_timer_stop(&g->quiet);
	if (g->n == 0 && r == 3)
		fprintf(stderr, "mmctl: no scheduler answered within 3 s\n");
	return g->n > 0 ? 0 : r;
}

void
gather_open(struct gather *g, const struct bus_config *broker)
{
	memset(g, 0, sizeof(*g));
	session_open(&g->s, broker, NULL, MSG_STATUS_REPLY, reply_cb, g);
	uv_timer_init(&g->s.loop, &g->quiet);
	g->quiet.data = g;
}

void
gather_close(struct gather *g)
{
	gather_free(g);
	uv_close((uv_handle_t *)&g->quiet, NULL);
	session_close(&g->s);
}

const char *
mode_name(Mm__V1__PolicyMode m)
{
	switch (m) {
	case MM__V1__POLICY_MODE__POLICY_MODE_ENFORCE:
		return "enforce";
	case MM__V1__POLICY_MODE__POLICY_MODE_SHADOW:
		return "shadow";
	case MM__V1__POLICY_MODE__POLICY_MODE_OFF:
		return "off";
	default:
		return "?";
	}
}

enum counters_shown { COUNTERS_NONE, COUNTERS_NONZERO, COUNTERS_ALL };

/* "  counters: name value, ..." wrapped at 80 columns. */
static void
print_counters(const Mm__V1__StatusReply *r, enum counters_shown which,
    FILE *f)
{
	size_t col = 0, shown = 0;

	if (which == COUNTERS_NONE || r->n_counters == 0)
		return;
	for (size_t i = 0; i < r->n_counters; i++) {
		const Mm__V1__Metric *m = r->counters[i];
		char item[128];
		int n;

		if (which == COUNTERS_NONZERO && m->value == 0)
			continue;
		n = snprintf(item, sizeof(item), "%s %.0f", m->name, m->value);
		if (col == 0) {
			col = (size_t)fprintf(f, "  counters:");
		} else if (col + (size_t)n + 2 > 80) {
			fprintf(f, ",\n");
			col = (size_t)fprintf(f, "   ");
		} else {
			col += (size_t)fprintf(f, ",");
		}
		col += (size_t)fprintf(f, " %s", item);
		shown++;
	}
	if (shown == 0)
		fprintf(f, "  counters: all 0 (-v lists them)");
	fputc('\n', f);
}

static void
print_table(const struct gather *g, enum counters_shown counters, FILE *f)
{
	char a[32], b[32], c[32], d[32], e[32];
	uint64_t now = clock_ms(CLOCK_REALTIME);

	for (size_t i = 0; i < g->n; i++) {
		const Mm__V1__StatusReply *r = g->replies[i];

		fprintf(f, "scheduler %s: policy %llu \"%s\" (%s)\n",
		    r->scheduler_id, (unsigned long long)r->policy_version,
		    r->policy_name != NULL ? r->policy_name : "",
		    mode_name(r->policy_mode));
		print_counters(r, counters, f);
	}
	for (size_t i = 0; i < g->n; i++) {
		const Mm__V1__StatusReply *r = g->replies[i];

		for (size_t j = 0; j < r->n_hosts; j++) {
			const Mm__V1__HostStatus *x = r->hosts[j];

			fprintf(f, "\nhost %s: free %s of %s, reserve %s, KSM "
			    "saves %s, %u VMs, report %.1f s ago\n",
			    x->host_id, fmt_kib(a, sizeof(a),
			    x->available_kib), fmt_kib(b, sizeof(b),
			    x->total_kib), fmt_kib(c, sizeof(c),
			    x->reserve_kib), fmt_kib(d, sizeof(d),
			    x->ksm_sharing_pages * 4), x->guest_count,
			    x->report_ms != 0 && now > x->report_ms ?
			    (double)(now - x->report_ms) / 1000 : 0);
			if (x->unconfirmed > 0 || x->resent > 0)
				fprintf(f, "  %u targets not confirmed by the "
				    "actuator, %llu sent again\n",
				    x->unconfirmed,
				    (unsigned long long)x->resent);
			if (x->n_guests == 0)
				continue;
			fprintf(f, "  %-16s %10s %10s %10s %10s %10s %6s  %s\n",
			    "VM", "USED", "TARGET", "ACTUAL", "MIN", "MAX",
			    "PSI", "LAST DECISION");
			for (size_t k = 0; k < x->n_guests; k++) {
				const Mm__V1__GuestStatus *v = x->guests[k];

				fprintf(f, "  %-16.16s %10s %10s %10s %10s "
				    "%10s %6.1f  %s\n", v->vm_name != NULL ?
				    v->vm_name : v->vm_id,
				    fmt_kib(a, sizeof(a), v->used_kib),
				    fmt_kib(b, sizeof(b),
				    v->balloon_target_kib),
				    fmt_kib(c, sizeof(c),
				    v->balloon_actual_kib),
				    fmt_kib(d, sizeof(d), v->min_kib),
				    fmt_kib(e, sizeof(e), v->max_kib),
				    v->psi_some_avg10_pct,
				    v->reason != NULL ? v->reason : "");
			}
		}
	}
}

static json_t *
guest_json(const Mm__V1__GuestStatus *v)
{
	return json_pack("{s:s, s:s?, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f,"
	    " s:s?, s:I}", "vm", v->vm_id, "name", v->vm_name,
	    "used_kib", (json_int_t)v->used_kib,
	    "need_kib", (json_int_t)v->need_kib,
	    "target_kib", (json_int_t)v->balloon_target_kib,
	    "actual_kib", (json_int_t)v->balloon_actual_kib,
	    "min_kib", (json_int_t)v->min_kib,
	    "max_kib", (json_int_t)v->max_kib,
	    "psi_some_avg10_pct", v->psi_some_avg10_pct,
	    "pressure_pct", v->pressure_pct,
	    "last_decision", v->reason,
	    "decision_ms", (json_int_t)v->decision_ms);
}

/* The view as one JSON document: indented, or compact on one line (a
 * line per view of mmctl top --json). */
static void
print_json(const struct gather *g, FILE *f, bool compact)
{
	json_t *root = json_object(), *scheds = json_array();
	json_t *hosts = json_array();

	for (size_t i = 0; i < g->n; i++) {
		const Mm__V1__StatusReply *r = g->replies[i];
		json_t *counters = json_object();

		for (size_t k = 0; k < r->n_counters; k++)
			json_object_set_new(counters, r->counters[k]->name,
			    json_integer((json_int_t)r->counters[k]->value));
		json_array_append_new(scheds, json_pack("{s:s, s:I, s:s?, "
		    "s:s, s:o}", "id", r->scheduler_id, "policy_version",
		    (json_int_t)r->policy_version, "policy_name",
		    r->policy_name, "mode", mode_name(r->policy_mode),
		    "counters", counters));
		for (size_t j = 0; j < r->n_hosts; j++) {
			const Mm__V1__HostStatus *x = r->hosts[j];
			json_t *vms = json_array();

			for (size_t k = 0; k < x->n_guests; k++)
				json_array_append_new(vms,
				    guest_json(x->guests[k]));
			json_array_append_new(hosts, json_pack("{s:s, s:s, "
			    "s:I, s:I, s:I, s:I, s:I, s:I, s:o}", "host",
			    x->host_id, "scheduler", r->scheduler_id,
			    "report_ms", (json_int_t)x->report_ms,
			    "total_kib", (json_int_t)x->total_kib,
			    "free_kib", (json_int_t)x->available_kib,
			    "reserve_kib", (json_int_t)x->reserve_kib,
			    "ksm_saved_kib",
			    (json_int_t)(x->ksm_sharing_pages * 4),
			    "vm_count", (json_int_t)x->guest_count,
			    "vms", vms));
		}
	}
	json_object_set_new(root, "schedulers", scheds);
	json_object_set_new(root, "hosts", hosts);
	json_dumpf(root, f, (compact ? JSON_COMPACT : JSON_INDENT(2)) |
	    JSON_SORT_KEYS);
	fputc('\n', f);
	json_decref(root);
}

static const struct option opts[] = {
	{ "json", no_argument, NULL, 'j' },
	{ "host", required_argument, NULL, 'H' },
	{ "interval", required_argument, NULL, 'i' },
	{ "log", required_argument, NULL, 'l' },
	{ "duration", required_argument, NULL, 'd' },
	{ "once", no_argument, NULL, 'o' },
	{ "verbose", no_argument, NULL, 'v' },
	{ NULL, 0, NULL, 0 },
};

/*
 * Append this view to dir, as the xenmm seed's mmserver logged: per VM
 * "<host>_<vm>.log" lines "time target used free" (seconds since start,
 * MiB; free is the guest's size less its use), per host "<host>.log"
 * lines "time free" (MiB).
 */
static void
log_view(const struct gather *g, const char *dir, double t)
{
	char path[1024];
	FILE *f;

	for (size_t i = 0; i < g->n; i++) {
		const Mm__V1__StatusReply *r = g->replies[i];

		for (size_t j = 0; j < r->n_hosts; j++) {
			const Mm__V1__HostStatus *x = r->hosts[j];

			snprintf(path, sizeof(path), "%s/%s.log", dir,
			    x->host_id);
			if ((f = fopen(path, "a")) != NULL) {
				fprintf(f, "%.1f %llu\n", t, (unsigned long long)
				    (x->available_kib / 1024));
				fclose(f);
			}
			for (size_t k = 0; k < x->n_guests; k++) {
				const Mm__V1__GuestStatus *v = x->guests[k];
				uint64_t size = v->balloon_actual_kib;

				snprintf(path, sizeof(path), "%s/%s_%s.log",
				    dir, x->host_id, v->vm_name != NULL ?
				    v->vm_name : v->vm_id);
				if ((f = fopen(path, "a")) == NULL)
					continue;
				fprintf(f, "%.1f %llu %llu %llu\n", t,
				    (unsigned long long)(v->balloon_target_kib /
				    1024), (unsigned long long)(v->used_kib /
				    1024), (unsigned long long)(size > v->used_kib ?
				    (size - v->used_kib) / 1024 : 0));
				fclose(f);
			}
		}
	}
}

int
cmd_status(const struct bus_config *broker, int argc, char **argv)
{
	struct gather g;
	const char *host = NULL;
	bool json = false, verbose = false;
	int c, r;

	optind = 1;
	while ((c = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
		if (c == 'j')
			json = true;
		else if (c == 'H')
			host = optarg;
		else if (c == 'v')
			verbose = true;
		else
			return 2;
	}
	if (host != NULL && !topo_id_valid(host)) {
		fprintf(stderr, "mmctl: \"%s\" is not a host id\n", host);
		return 2;
	}
	gather_open(&g, broker);
	r = gather(&g, host, true);
	if (r == 0) {
		if (json)
			print_json(&g, stdout, false);
		else
			print_table(&g, verbose ? COUNTERS_ALL :
			    COUNTERS_NONZERO, stdout);
	}
	gather_close(&g);
	return r;
}

static void
tick_cb(uv_timer_t *t)
{
	(void)t;
}

int
cmd_top(const struct bus_config *broker, int argc, char **argv)
{
	struct gather g;
	int64_t interval_ms = 1000, duration_ms = 0;
	const char *host = NULL, *logdir = NULL;
	bool once = false, json = false;
	uint64_t start;
	int c, r = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'o') {
			once = true;
		} else if (c == 'j') {
			json = true;
		} else if (c == 'i') {
			if (conf_parse_duration_ms(optarg, &interval_ms) < 0 ||
			    interval_ms < 200) {
				fprintf(stderr, "mmctl: interval \"%s\": at "
				    "least 200ms\n", optarg);
				return 2;
			}
		} else if (c == 'H') {
			host = optarg;
		} else if (c == 'l') {
			logdir = optarg;
		} else if (c == 'd') {
			if (conf_parse_duration_ms(optarg, &duration_ms) < 0 ||
			    duration_ms <= 0) {
				fprintf(stderr, "mmctl: --duration \"%s\" is not "
				    "a duration\n", optarg);
				return 2;
			}
		} else {
			return 2;
		}
	}
	gather_open(&g, broker);
	uv_update_time(&g.s.loop);
	start = uv_now(&g.s.loop);
	for (;;) {
		uv_timer_t pause;

		r = gather(&g, host, true);
		if (g.s.status == 130)
			break;
		if (json) {
			/* A line per view; none when nobody answered. */
			if (r == 0)
				print_json(&g, stdout, true);
		} else {
			if (!once)
				printf("\033[H\033[2J");
			printf("mmctl top: every %.1f s, Ctrl-C to quit\n\n",
			    (double)interval_ms / 1000);
			if (r == 0)
				print_table(&g, COUNTERS_NONE, stdout);
			else
				printf("no scheduler answered\n");
		}
		fflush(stdout);
		uv_update_time(&g.s.loop);
		if (r == 0 && logdir != NULL)
			log_view(&g, logdir, (double)(uv_now(&g.s.loop) -
			    start) / 1000);
		if (once || (duration_ms > 0 &&
		    uv_now(&g.s.loop) - start >= (uint64_t)duration_ms))
			break;
		uv_timer_init(&g.s.loop, &pause);
		uv_timer_start(&pause, tick_cb, (uint64_t)interval_ms, 0);
		while (uv_is_active((uv_handle_t *)&pause) && !g.s.done)
			uv_run(&g.s.loop, UV_RUN_ONCE);
		uv_close((uv_handle_t *)&pause, NULL);
		uv_run(&g.s.loop, UV_RUN_NOWAIT);
		if (g.s.status == 130)
			break;
		g.s.done = false;
	}
	gather_close(&g);
	/* One view asked for and nobody answered: as mmctl status. */
	return once && r != 0 ? r : 0;
}
