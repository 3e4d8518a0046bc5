/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mmctl events: decisions with their reasons, actuators' results and
 * alerts, one line each, as they are published on mm.events. The filters
 * become the binding keys of mmctl's own queue, so the broker does the
 * filtering.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf.h"
#include "mmctl.h"
#include "topology.h"

static const char *
clock_of(uint64_t ms, char *buf, size_t size)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	localtime_r(&t, &tm);
	snprintf(buf, size, "%02d:%02d:%02d.%03u", tm.tm_hour, tm.tm_min,
	    tm.tm_sec, (unsigned)(ms % 1000));
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

static enum bus_disposition
on_event(const ProtobufCMessage *m, const struct bus_delivery *d, void *arg)
{
	static const char *const sev[] = { "", "info", "warning", "critical" };
	const Mm__V1__Event *e = (const Mm__V1__Event *)m;
	char t[32];

	printf("%s ", clock_of(e->time_ms, t, sizeof(t)));
	switch (e->kind) {
	case MM__V1__EVENT_KIND__EVENT_KIND_DECISION:
		printf("decision %s %s: %s%s", e->host_id, e->vm_id != NULL ?
		    e->vm_id : "", e->reason != NULL ? e->reason : "",
		    e->shadow ? " [shadow: not sent]" : "");
		break;
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
	return BUS_ACK;
}

int
cmd_events(const char *url, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "follow", no_argument, NULL, 'f' },
		{ "host", required_argument, NULL, 'H' },
		{ "kind", required_argument, NULL, 'k' },
		{ "wait", required_argument, NULL, 'w' },
		{ NULL, 0, NULL, 0 },
	};
	const char *host = NULL, *kind = NULL;
	const char *keys[2] = { NULL, NULL };
	int64_t wait_ms = 5000;
	bool follow = false;
	struct session s;
	char key[160];
	int c, r;

	optind = 1;
	while ((c = getopt_long(argc, argv, "f", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			follow = true;
			break;
		case 'H':
			host = optarg;
			break;
		case 'k':
			kind = optarg;
			break;
		case 'w':
			if (conf_parse_duration_ms(optarg, &wait_ms) < 0 ||
			    wait_ms <= 0) {
				fprintf(stderr, "mmctl: --wait \"%s\" is not a "
				    "duration\n", optarg);
				return 2;
			}
			break;
		default:
			return 2;
		}
	}
	if (kind != NULL && strcmp(kind, TOPO_EV_DECISION) != 0 &&
	    strcmp(kind, TOPO_EV_RESULT) != 0 &&
	    strcmp(kind, TOPO_EV_ALERT) != 0) {
		fprintf(stderr, "mmctl: --kind \"%s\": one of decision, result, "
		    "alert\n", kind);
		return 2;
	}
	if (host != NULL && !topo_id_valid(host)) {
		fprintf(stderr, "mmctl: \"%s\" is not a host id\n", host);
		return 2;
	}
	snprintf(key, sizeof(key), "%s.%s", kind != NULL ? kind : "*",
	    host != NULL ? host : "#");
	keys[0] = key;
	session_open(&s, url, keys, MSG_EVENT, on_event, NULL);
	r = session_run(&s, follow ? 0 : (unsigned)wait_ms);
	session_close(&s);
	return r == 3 || r == 130 ? 0 : r;
}
