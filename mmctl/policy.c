/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mmctl policy apply: read and check a policy file with the schedulers'
 * own rules (nothing leaves when it is wrong), publish it on mm.policy, and
 * report what each scheduler answered: accepted, or rejected and why.
 * mmctl policy show: the policy each scheduler has in force, as a policy
 * file that apply reads back, or as JSON.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "clock.h"
#include "conf.h"
#include "mmctl.h"
#include "policyfile.h"
#include "policymsg.h"
#include "topology.h"

struct apply {
	struct session s;
	uint64_t version;
	unsigned accepted;
	unsigned rejected;
	uv_timer_t quiet;
	uint64_t last_ms;
};

static enum bus_disposition
on_event(const ProtobufCMessage *m, const struct bus_delivery *d, void *arg)
{
	const Mm__V1__Event *e = (const Mm__V1__Event *)m;
	struct apply *a = arg;

	if (e->kind != MM__V1__EVENT_KIND__EVENT_KIND_ALERT ||
	    e->policy_version != a->version || e->reason == NULL ||
	    strncmp(e->reason, "policy ", 7) != 0)
		return BUS_ACK;
	if (e->severity == MM__V1__SEVERITY__SEVERITY_INFO) {
		a->accepted++;
		printf("%s: %s\n", e->source_id, e->reason);
	} else {
		a->rejected++;
		printf("%s: %s\n", e->source_id, e->reason);
	}
	uv_update_time(&a->s.loop);
	a->last_ms = uv_now(&a->s.loop);
	return BUS_ACK;
}

/* Wait for more answers until 1 s after the last one. */
static void
quiet_cb(uv_timer_t *t)
{
	struct apply *a = t->data;

	if (a->accepted + a->rejected > 0 &&
	    uv_now(&a->s.loop) - a->last_ms >= 1000)
		a->s.done = true;
}

static void
confirm_cb(struct bus *bus, int status, void *arg)
{
	struct apply *a = arg;

	if (status != 0) {
		fprintf(stderr, "mmctl: the broker refused the policy\n");
		a->s.status = 1;
		a->s.done = true;
	}
}

static int
apply(const struct bus_config *broker, const char *path, unsigned wait_ms, bool reset)
{
	static const char *const keys[] = { "alert.#", NULL };
	struct pm_msg p;
	struct apply a;
	char err[600];
	int r;

	/* Seconds since the epoch: a later apply is a newer version. */
	if (pf_load(path, (uint64_t)time(NULL), &p, err, sizeof(err)) < 0) {
		fprintf(stderr, "mmctl: %s\n", err);
		fprintf(stderr, "mmctl: nothing was published\n");
		return 1;
	}
	/* The bound every scheduler applies, with nothing in force: a
	 * version no later apply could follow is not sent at all. */
	if (!reset && pm_version_check(p.msg.version, false, 0,
	    clock_ms(CLOCK_REALTIME), err, sizeof(err)) == PM_VERSION_JUMP) {
		fprintf(stderr, "mmctl: %s: %s\n", path, err);
		fprintf(stderr, "mmctl: nothing was published\n");
		return 1;
	}
	if (reset) {
		p.msg.has_reset = true;
		p.msg.reset = true;
	}
	memset(&a, 0, sizeof(a));
	a.version = p.msg.version;
	/* Listen before publishing, so that no answer is missed. */
	session_open(&a.s, broker, keys, MSG_EVENT, on_event, &a);
	uv_timer_init(&a.s.loop, &a.quiet);
	a.quiet.data = &a;
	r = msg_publish(a.s.bus, MSG_POLICY, (const ProtobufCMessage *)&p.msg,
	    TOPO_EX_POLICY, "", true, confirm_cb, &a);
	if (r < 0) {
		fprintf(stderr, "mmctl: cannot publish: %s\n", strerror(-r));
		uv_close((uv_handle_t *)&a.quiet, NULL);
		session_close(&a.s);
		return 1;
	}
	printf("policy %llu \"%s\" published%s; waiting for the schedulers\n",
	    (unsigned long long)a.version, p.msg.name != NULL ?
	    p.msg.name : "", reset ? " as a reset" : "");
	fflush(stdout);
	uv_timer_start(&a.quiet, quiet_cb, 100, 100);
	r = session_run(&a.s, wait_ms);
	uv_timer_stop(&a.quiet);
	if (r == 3 || (r == 0 && a.accepted + a.rejected == 0)) {
		fprintf(stderr, "mmctl: no scheduler answered within %u ms; "
		    "the policy waits in their queues\n", wait_ms);
		r = 3;
	} else if (r == 0 || a.s.done) {
		r = a.rejected > 0 ? 1 : 0;
	}
	uv_close((uv_handle_t *)&a.quiet, NULL);
	session_close(&a.s);
	return r;
}

/* The policy in force at a scheduler as a policy file. */
static void
print_policy(FILE *f, const Mm__V1__StatusReply *r)
{
	fprintf(f, "; in force at %s\n", r->scheduler_id);
	if (r->policy == NULL)
		fprintf(f, "; built-in defaults (no policy published): %s\n",
		    mode_name(r->policy_mode));
	else
		pf_write(f, r->policy);
}

static int
show(const struct bus_config *broker, bool json)
{
	struct gather g;
	int r;

	gather_open(&g, broker);
	/* No host is called this: the replies carry only the policy. */
	r = gather(&g, "-", false);
	if (r == 0) {
		for (size_t i = 0; i < g.n; i++) {
			if (json) {
				json_t *o = json_pack("{s:s, s:I, s:s?, s:s}",
				    "scheduler", g.replies[i]->scheduler_id,
				    "version", (json_int_t)
				    g.replies[i]->policy_version, "name",
				    g.replies[i]->policy_name, "mode",
				    mode_name(g.replies[i]->policy_mode));

				json_dumpf(o, stdout, JSON_SORT_KEYS);
				fputc('\n', stdout);
				json_decref(o);
			} else {
				print_policy(stdout, g.replies[i]);
				if (i + 1 < g.n)
					fputc('\n', stdout);
			}
		}
	}
	gather_close(&g);
	return r;
}

int
cmd_policy(const struct bus_config *broker, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "wait", required_argument, NULL, 'w' },
		{ "reset", no_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	int64_t wait_ms = 5000;
	bool json = false, reset = false;
	int c;

	if (argc < 2) {
		fprintf(stderr, "usage: mmctl policy apply FILE [--wait 5s] "
		    "[--reset] | mmctl policy show [--json]\n");
		return 2;
	}
	optind = 2;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'j') {
			json = true;
		} else if (c == 'r') {
			reset = true;
		} else if (c == 'w') {
			if (conf_parse_duration_ms(optarg, &wait_ms) < 0 ||
			    wait_ms <= 0) {
				fprintf(stderr, "mmctl: --wait \"%s\" is not a "
				    "duration\n", optarg);
				return 2;
			}
		} else {
			return 2;
		}
	}
	if (strcmp(argv[1], "show") == 0 && optind == argc && !reset)
		return show(broker, json);
	if (strcmp(argv[1], "apply") == 0 && optind == argc - 1)
		return apply(broker, argv[optind], (unsigned)wait_ms, reset);
	fprintf(stderr, "usage: mmctl policy apply FILE [--wait 5s] [--reset] "
	    "| mmctl policy show [--json]\n");
	return 2;
}
