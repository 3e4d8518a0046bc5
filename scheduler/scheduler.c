/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mm-scheduler: keeps the fleet's state and turns every HostReport into a
 * CommandBatch for that host's actuator, under the policy in force. Event
 * driven: a host is decided when its report arrives and when the policy
 * changes. Policies come from mm.policy, are validated and versioned, and
 * the last accepted one survives a restart in the state file.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "scheduler.h"
#include "topology.h"

static const char *const mode_names[] = { "enforce", "shadow", "off", NULL };

#define C(f)	offsetof(struct sched_conf, f)
static const struct conf_key conf_table[] = {
	{ "scheduler", "id", CONF_STRING, 1, 64, NULL, C(id), NULL,
	  "this scheduler's id; default sched-<hostname>" },
	{ "scheduler", "state_file", CONF_STRING, 1, 4096,
	  "/var/lib/mm/scheduler.policy", C(state_file), NULL,
	  "where the last accepted policy is kept across restarts" },
	{ "scheduler", "command_ttl", CONF_DURATION_MS, 1000, 3600000, "10s",
	  C(command_ttl_ms), NULL,
	  "a command batch expires this long after it is issued" },
	{ "scheduler", "heartbeat", CONF_DURATION_MS, 0, 3600000, "10s",
	  C(heartbeat_ms), NULL,
	  "an empty batch to a host that had none this long, so that its "
	  "actuator knows the scheduler is there (0: never)" },
	{ "scheduler", "mode", CONF_ENUM, 0, 0, "enforce", C(mode),
	  mode_names, "mode until a policy is published: enforce, shadow, off" },
	{ "scheduler", "stats_pattern", CONF_STRING, 1, 255, "host.#",
	  C(stats_pattern), NULL, "which hosts' reports to read (mm.stats key)" },
	{ "scheduler", "shard", CONF_BOOL, 0, 0, "no", C(shard), NULL,
	  "share the hosts with other schedulers (consistent hashing)" },
	{ "scheduler", "shard_weight", CONF_INT, 1, 1000, "20",
	  C(shard_weight), NULL, "this scheduler's share of the hosts" },
	DAEMON_BUS_KEYS(struct sched_conf, bus),
};
#define CONF_N	(sizeof(conf_table) / sizeof(conf_table[0]))

/* ---- the state file ---- */

static int
state_save(struct scheduler *s, const void *data, size_t len)
{
	char tmp[4200];
	int fd, r = 0;

	snprintf(tmp, sizeof(tmp), "%s.tmp", s->conf.state_file);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (write(fd, data, len) != (ssize_t)len || fsync(fd) < 0)
		r = errno ? -errno : -EIO;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, s->conf.state_file) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}

/* Keep the packed policy in force, for status replies. */
static int
keep_policy_msg(struct scheduler *s, const void *data, size_t len)
{
	uint8_t *copy = malloc(len > 0 ? len : 1);

	if (copy == NULL)
		return -ENOMEM;
	memcpy(copy, data, len);
	free(s->policy_msg);
	s->policy_msg = copy;
	s->policy_len = len;
	return 0;
}

static void
state_load(struct scheduler *s)
{
	uint8_t buf[1 << 20];
	ProtobufCMessage *m;
	struct pm_policy p;
	char why[512];
	ssize_t n;
	int fd;

	fd = open(s->conf.state_file, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			log_warn("cannot read \"%s\"", s->conf.state_file);
		return;
	}
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n < 0 || msg_unpack(MSG_POLICY, buf, (size_t)n, &m, why,
	    sizeof(why)) < 0) {
		log_warnx("\"%s\": not a policy, ignored", s->conf.state_file);
		return;
	}
	if (pm_from_msg((const Mm__V1__Policy *)m, &p, why, sizeof(why)) < 0)
		log_warnx("\"%s\": policy refused: %s", s->conf.state_file,
		    why);
	else if (keep_policy_msg(s, buf, (size_t)n) == 0)
		s->policy = p;
	msg_free(m);
}

/* ---- consumers ---- */

static enum bus_disposition
on_report(const ProtobufCMessage *m, const struct bus_delivery *d, void *arg)
{
	const Mm__V1__HostReport *r = (const Mm__V1__HostReport *)m;
	struct scheduler *s = arg;
	struct host *h;
	uint8_t *copy;

	if (!topo_id_valid(r->host_id)) {
		s->n.reports_bad++;
		log_debug("report from \"%s\": bad host id", r->host_id);
		return BUS_REJECT;
	}
	h = host_get(s, r->host_id);
	if (h == NULL)
		return BUS_REQUEUE;
	/* At least once: a report seen already (or older) is dropped. A
	 * collector that restarts begins again at seq 0 with a later time. */
	if (h->last_time_ms != 0 && r->seq <= h->last_seq &&
	    r->time_ms <= h->last_time_ms) {
		s->n.reports_old++;
		return BUS_ACK;
	}
	h->last_seq = r->seq;
	h->last_time_ms = r->time_ms;
	s->n.reports++;
	/* Kept for decisions made without a new report (a policy change). */
	if (d->len > h->report_cap) {
		copy = realloc(h->report, d->len);
		if (copy != NULL) {
			h->report = copy;
			h->report_cap = d->len;
		}
	}
	if (h->report != NULL && d->len <= h->report_cap) {
		memcpy(h->report, d->body, d->len);
		h->report_len = d->len;
	}
	if (decide_host(s, h, r) < 0)
		log_warnx("host \"%s\": no decision: out of memory", h->id);
	return BUS_ACK;
}

static enum bus_disposition
on_policy(const ProtobufCMessage *m, const struct bus_delivery *d, void *arg)
{
	const Mm__V1__Policy *pm = (const Mm__V1__Policy *)m;
	struct scheduler *s = arg;
	struct pm_policy p;
	char why[512];
	int r;

	if (pm->version <= s->policy.version) {
		s->n.policies_old++;
		log_info("policy %llu ignored: version %llu is in force",
		    (unsigned long long)pm->version,
		    (unsigned long long)s->policy.version);
		return BUS_ACK;
	}
	if (pm_from_msg(pm, &p, why, sizeof(why)) < 0) {
		s->n.policies_rejected++;
		log_warnx("policy %llu rejected: %s",
		    (unsigned long long)pm->version, why);
		publish_alert(s, NULL, NULL, 2, pm->version,
		    "policy %llu rejected: %s; policy %llu stays in force",
		    (unsigned long long)pm->version, why,
		    (unsigned long long)s->policy.version);
		return BUS_REJECT;
	}
	if (keep_policy_msg(s, d->body, d->len) < 0)
		return BUS_REQUEUE;
	r = state_save(s, d->body, d->len);
	if (r < 0)
		log_warnx("policy %llu: cannot save \"%s\": %s",
		    (unsigned long long)pm->version, s->conf.state_file,
		    strerror(-r));
	s->policy = p;
	s->n.policies_accepted++;
	log_info("policy %llu \"%s\" accepted: %s, algorithm %s",
	    (unsigned long long)p.version, p.name, pm_mode_name(p.mode),
	    pe_algo_name(p.balloon.algo));
	publish_alert(s, NULL, NULL, 1, p.version, "policy %llu \"%s\" "
	    "accepted by %s: %s, algorithm %s", (unsigned long long)p.version,
	    p.name, s->id, pm_mode_name(p.mode), pe_algo_name(p.balloon.algo));
	decide_all(s);
	return BUS_ACK;
}

static enum bus_disposition
stats_cb(struct bus *bus, const struct bus_delivery *d, void *arg)
{
	static const struct msg_handler table[] = {
		{ MSG_HOST_REPORT, on_report },
	};
	struct scheduler *s = arg;

	return msg_dispatch(table, 1, d, s, &s->stats_dispatch, NULL, 0);
}

static enum bus_disposition
control_cb(struct bus *bus, const struct bus_delivery *d, void *arg)
{
	static const struct msg_handler table[] = {
		{ MSG_STATUS_REQUEST, on_status_request },
	};
	struct scheduler *s = arg;

	return msg_dispatch(table, 1, d, s, &s->control_dispatch, NULL, 0);
}

static enum bus_disposition
policy_cb(struct bus *bus, const struct bus_delivery *d, void *arg)
{
	static const struct msg_handler table[] = {
		{ MSG_POLICY, on_policy },
	};
	struct scheduler *s = arg;
	char why[256];
	enum bus_disposition disp;

	disp = msg_dispatch(table, 1, d, s, &s->policy_dispatch, why,
	    sizeof(why));
	if (disp == BUS_REJECT && s->policy_dispatch.ok == 0)
		log_warnx("malformed policy message dead-lettered: %s", why);
	return disp;
}

/* ---- lifecycle ---- */

static void
state_cb(struct bus *bus, bool up, const char *reason, void *arg)
{
	struct scheduler *s = arg;

	if (up) {
		log_info("connected to the broker");
		if (!s->ready) {
			s->ready = true;
			daemon_notify_ready("connected");
		}
	} else {
		log_warnx("broker: %s", reason);
	}
}

static void
closed_cb(void *arg)
{
	(void)arg;
}

static void
stop_cb(void *arg)
{
	struct scheduler *s = arg;

	if (s->stopping)
		return;
	s->stopping = true;
	log_info("stopping: %llu reports, %llu batches, %llu events",
	    (unsigned long long)s->n.reports,
	    (unsigned long long)s->n.batches, (unsigned long long)s->n.events);
	daemon_notify_stopping();
	daemon_signals_close(&s->sig);
	bus_close(s->bus, 2000, closed_cb, NULL);
}

static int
setup_bus(struct scheduler *s)
{
	struct bus_config bc;
	int r;

	daemon_bus_config(&s->conf.bus, s->id, &bc);
	bc.state_cb = state_cb;
	bc.state_arg = s;
	s->bus = bus_new(s->loop, &bc);
	if (s->bus == NULL)
		return -errno;
	if (s->conf.shard) {
		r = topo_declare_shard_queue(s->bus, s->id,
		    s->conf.stats_pattern, (unsigned)s->conf.shard_weight,
		    s->stats_queue, sizeof(s->stats_queue));
	} else {
		r = topo_declare_stats_queue(s->bus, s->conf.stats_pattern);
		snprintf(s->stats_queue, sizeof(s->stats_queue), "%s",
		    TOPO_Q_SCHED_STATS);
	}
	if (r == 0)
		r = topo_declare_commands_exchange(s->bus);
	if (r == 0)
		r = topo_declare_events_log(s->bus);
	if (r == 0)
		r = topo_declare_policy_queue(s->bus, s->id, s->policy_queue,
		    sizeof(s->policy_queue));
	if (r == 0)
		r = topo_declare_control_queue(s->bus, s->id, s->control_queue,
		    sizeof(s->control_queue));
	if (r == 0)
		r = bus_consume(s->bus, s->control_queue, false, control_cb, s);
	if (r == 0)
		r = bus_consume(s->bus, s->policy_queue, false, policy_cb, s);
	if (r == 0)
		r = bus_consume(s->bus, s->stats_queue, false, stats_cb, s);
	if (r == 0)
		r = bus_start(s->bus);
	return r;
}

/* "sched-<hostname>", with anything an id may not hold made a '-'. */
static void
default_id(char *buf, size_t size, const char *hostname)
{
	snprintf(buf, size, "sched-%.50s", hostname);
	for (char *c = buf; *c != '\0'; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		    (*c >= '0' && *c <= '9') || *c == '_' || *c == '-'))
			*c = '-';
}

int
main(int argc, char **argv)
{
	static struct scheduler s;
	struct daemon_opts opts;
	uv_loop_t loop;
	int r;

	daemon_parse_args(argc, argv, "mm-scheduler",
	    "/etc/mm/scheduler.conf", &opts);
	if (daemon_load_conf(conf_table, CONF_N, &s.conf, &opts) < 0)
		return 1;
	if (s.conf.id != NULL) {
		snprintf(s.id, sizeof(s.id), "%s", s.conf.id);
	} else {
		char hn[64] = "local";

		gethostname(hn, sizeof(hn) - 1);
		default_id(s.id, sizeof(s.id), hn);
	}
	if (!topo_id_valid(s.id))
		fatalx("scheduler id \"%s\" is not valid: 1..64 of "
		    "[A-Za-z0-9_.-]", s.id);
	pm_defaults(&s.policy, (enum pm_mode)(s.conf.mode + 1));
	state_load(&s);
	log_info("%s starting: policy %llu \"%s\" (%s, algorithm %s)", s.id,
	    (unsigned long long)s.policy.version, s.policy.name,
	    pm_mode_name(s.policy.mode), pe_algo_name(s.policy.balloon.algo));

	if (uv_loop_init(&loop) != 0)
		fatalx("cannot create the event loop");
	s.loop = &loop;
	r = setup_bus(&s);
	if (r < 0)
		fatalx("bus: %s", strerror(-r));
	r = daemon_signals_init(&s.sig, &loop, stop_cb, NULL, &s);
	if (r < 0)
		fatalx("signals: %s", uv_strerror(r));
	uv_run(&loop, UV_RUN_DEFAULT);
	hosts_free(&s);
	free(s.policy_msg);
	conf_free(conf_table, CONF_N, &s.conf);
	r = uv_loop_close(&loop);
	if (r != 0)
		log_warnx("event loop not empty at exit: %s", uv_strerror(r));
	return 0;
}
