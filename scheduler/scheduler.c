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

#include "clock.h"
#include "log.h"
#include "scheduler.h"
#include "topology.h"

static const char *const mode_names[] = { "enforce", "shadow", "off", NULL };

/* Largest state file read (a policy: far below the bus's 4 MiB). */
#define STATE_FILE_MAX		(1 << 20)
/* What bus_close() waits for unconfirmed messages at stop. */
#define CLOSE_FLUSH_MS		2000

#define C(f)	offsetof(struct sched_conf, f)
const struct conf_key sched_conf_table[] = {
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
	{ "scheduler", "handover_after", CONF_DURATION_MS, 2000, 3600000,
	  "15s", C(handover_after_ms), NULL,
	  "shard: a host silent this long moved to another scheduler, which "
	  "gets its history (mm.history)" },
	{ "scheduler", "resend", CONF_DURATION_MS, 500, 600000, "3s",
	  C(resend_ms), NULL,
	  "a target the actuator has not confirmed this long is sent again "
	  "(then after twice as long, up to 16 times)" },
	{ "scheduler", "clock_skew", CONF_DURATION_MS, 1000, 3600000, "30s",
	  C(clock_skew_ms), NULL,
	  "a report or result dated further ahead of this clock is refused" },
	{ "scheduler", "max_hosts", CONF_INT, 1, 1000000, "10000",
	  C(max_hosts), NULL,
	  "hosts this scheduler keeps at most; reports of more are dropped" },
	{ "scheduler", "host_forget", CONF_DURATION_MS, 60000, 86400000,
	  "10m", C(host_forget_ms), NULL,
	  "a host that sent no report this long is forgotten" },
	{ "scheduler", "history_file", CONF_STRING, 0, 4096, NULL,
	  C(history_file), NULL,
	  "where each VM's hourly peaks of use (the policy's history term) "
	  "are kept across restarts; default scheduler.history beside "
	  "state_file; empty: nowhere" },
	{ "scheduler", "history_save", CONF_DURATION_MS, 1000, 86400000,
	  "15m", C(history_save_ms), NULL,
	  "how often the history is saved (and at stop)" },
	{ "scheduler", "events_max_age", CONF_DURATION_MS, 60000,
	  3650LL * 86400000, "1d", C(events_max_age_ms), NULL,
	  "how long the event history (mm.events.log) keeps an event; set "
	  "when the stream is created" },
	{ "scheduler", "events_max_bytes", CONF_SIZE_KIB, 4096,
	  1024LL * 1024 * 1024, "256M", C(events_max_kib), NULL,
	  "the most the event history keeps on each broker node; set when "
	  "the stream is created" },
	BUS_CONF_KEYS(struct sched_conf, bus),
	METRICS_CONF_KEYS(struct sched_conf, metrics_listen),
	DAEMON_LOG_KEYS(struct sched_conf, log_level),
};
const size_t sched_conf_n = sizeof(sched_conf_table) /
    sizeof(sched_conf_table[0]);

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
	uint8_t buf[STATE_FILE_MAX];
	const Mm__V1__Policy *pol;
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
	pol = (const Mm__V1__Policy *)m;
	/* Saved by a scheduler without the version bound: a version far
	 * ahead would leave every later apply ignored. */
	if (pm_version_check(pol->version, pol->has_reset && pol->reset, 0,
	    clock_ms(CLOCK_REALTIME), why, sizeof(why)) ==
	    PM_VERSION_JUMP)
		log_warnx("\"%s\": %s; starting with the built-in policy",
		    s->conf.state_file, why);
	else if (pm_from_msg(pol, &p, why, sizeof(why)) < 0)
		log_warnx("\"%s\": policy refused: %s", s->conf.state_file,
		    why);
	else if (keep_policy_msg(s, buf, (size_t)n) == 0)
		s->policy = p;
	msg_free(m);
}

/* ---- consumers ---- */

/* A report's seq this far above the last one is not the same collector
 * counting: at one report a second, eleven days without a report (a
 * silent host is forgotten long before). */
#define REPORT_SEQ_JUMP_MAX	1000000ull
/* How often silent hosts are looked for. */
#define SWEEP_MS		60000

/* True when key is "<prefix>.<host_id>". */
static bool
key_names_host(const char *key, const char *prefix, const char *host_id)
{
	size_t n = strlen(prefix);

	return key != NULL && host_id != NULL &&
	    strncmp(key, prefix, n) == 0 && key[n] == '.' &&
	    strcmp(key + n + 1, host_id) == 0;
}

static enum bus_disposition
on_report(const ProtobufCMessage *m, const struct bus_delivery *d, void *arg)
{
	const Mm__V1__HostReport *r = (const Mm__V1__HostReport *)m;
	struct scheduler *s = arg;
	uint64_t now = clock_ms(CLOCK_REALTIME), t0;
	struct host *h;
	uint8_t *copy;

	if (!topo_id_valid(r->host_id)) {
		s->n.reports_bad++;
		log_warnx_limited(&s->lim_reports, "report with a bad host id, "
		    "dead-lettered");
		return BUS_REJECT;
	}
	/* The broker lets a host's user publish with its own key only
	 * (topic permissions): a body naming another host is forged. */
	if (!key_names_host(d->routing_key, "host", r->host_id)) {
		s->n.reports_wrong_key++;
		log_warnx_limited(&s->lim_reports, "report for host \"%s\" "
		    "published with key \"%s\": forged, dead-lettered",
		    r->host_id, d->routing_key != NULL ? d->routing_key : "");
		return BUS_REJECT;
	}
	/* A report from the future would hold every real one back. */
	if (r->time_ms > now + (uint64_t)s->conf.clock_skew_ms) {
		s->n.reports_future++;
		log_warnx_limited(&s->lim_reports, "host \"%s\": report %llu dated "
		    "%llu s ahead of this clock (clock_skew %llu s), "
		    "dead-lettered", r->host_id, (unsigned long long)r->seq,
		    (unsigned long long)(r->time_ms - now) / 1000,
		    (unsigned long long)s->conf.clock_skew_ms / 1000);
		return BUS_REJECT;
	}
	h = host_get(s, r->host_id);
	if (h == NULL) {
		if (errno != EAGAIN)
			return BUS_REQUEUE;
		s->n.hosts_refused++;
		log_warnx_limited(&s->lim_hosts, "host \"%s\": not managed: this "
		    "scheduler has max_hosts (%lld) hosts", r->host_id,
		    (long long)s->conf.max_hosts);
		return BUS_ACK;
	}
	if (h->last_time_ms != 0 && r->seq > h->last_seq &&
	    r->seq - h->last_seq > REPORT_SEQ_JUMP_MAX) {
		s->n.reports_seq_jump++;
		log_warnx_limited(&s->lim_reports, "host \"%s\": report seq %llu jumps "
		    "from %llu, dead-lettered", h->id,
		    (unsigned long long)r->seq,
		    (unsigned long long)h->last_seq);
		return BUS_REJECT;
	}
	/* At least once: a report seen already (or older) is dropped. A
	 * collector that restarts begins again at seq 0 with a later time.
	 * The time kept is never ahead of this clock, so that a report
	 * dated ahead cannot hold back the host's next real ones. */
	if (h->last_time_ms != 0 && r->seq <= h->last_seq &&
	    r->time_ms <= h->last_time_ms) {
		s->n.reports_old++;
		return BUS_ACK;
	}
	h->last_seq = r->seq;
	h->last_time_ms = r->time_ms < now ? r->time_ms : now;
	h->seen_ms = clock_ms(CLOCK_MONOTONIC);
	h->handed_over = false;
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
	t0 = uv_hrtime();
	if (decide_host(s, h, r) < 0)
		log_warnx("host \"%s\": no decision: out of memory", h->id);
	mx_hist_observe(&s->decide_s, (double)(uv_hrtime() - t0) / 1e9);
	if (now >= r->time_ms)
		mx_hist_observe(&s->report_age_s,
		    (double)(now - r->time_ms) / 1000.0);
	return BUS_ACK;
}

/* An actuator's result: what it set, or that it asks for its targets. */
static enum bus_disposition
on_result(const ProtobufCMessage *m, const struct bus_delivery *d, void *arg)
{
	const Mm__V1__Event *ev = (const Mm__V1__Event *)m;
	const Mm__V1__ActionResult *ar = ev->result;
	struct scheduler *s = arg;
	uint64_t now = clock_ms(CLOCK_REALTIME);
	struct host *h;

	if (ev->kind != MM__V1__EVENT_KIND__EVENT_KIND_RESULT || ar == NULL)
		return BUS_ACK;
	if (!key_names_host(d->routing_key, TOPO_EV_RESULT, ar->host_id)) {
		s->n.results_wrong_key++;
		log_warnx_limited(&s->lim_results, "result for host \"%s\" "
		    "published with key \"%s\": forged, ignored",
		    ar->host_id != NULL ? ar->host_id : "",
		    d->routing_key != NULL ? d->routing_key : "");
		return BUS_ACK;
	}
	/* Another scheduler's host (sharding), or none. */
	h = host_find(s, ar->host_id);
	if (h == NULL) {
		s->n.results_ignored++;
		return BUS_ACK;
	}
	if (ar->time_ms > now + (uint64_t)s->conf.clock_skew_ms) {
		s->n.results_future++;
		log_warnx_limited(&s->lim_results, "host \"%s\": result of batch %llu "
		    "dated %llu s ahead of this clock, ignored", h->id,
		    (unsigned long long)ar->batch_seq,
		    (unsigned long long)(ar->time_ms - now) / 1000);
		return BUS_ACK;
	}
	recon_result(s, h, ar);
	return BUS_ACK;
}

static void
sweep_cb(uv_timer_t *t)
{
	struct scheduler *s = t->data;

	/* Before forgetting: handover_after is below host_forget. */
	handover_silent(s);
	history_expire(s, clock_ms(CLOCK_MONOTONIC));
	hosts_sweep(s);
}

/* The policy in force again, its reset flag aside: a repeat of at least
 * once delivery, or the same file applied again. */
static bool
policy_repeat(const struct scheduler *s, const Mm__V1__Policy *pm)
{
	ProtobufCMessage *kept = NULL;
	Mm__V1__Policy a = *pm, *b;
	uint8_t *pa = NULL, *pb = NULL;
	size_t la = 0, lb = 0;
	bool same = false;

	if (s->policy_msg == NULL || pm->version != s->policy.version ||
	    msg_unpack(MSG_POLICY, s->policy_msg, s->policy_len, &kept, NULL,
	    0) < 0)
		return false;
	b = (Mm__V1__Policy *)kept;
	a.has_reset = b->has_reset = false;
	a.reset = b->reset = false;
	if (msg_pack(MSG_POLICY, &a.base, &pa, &la) == 0 &&
	    msg_pack(MSG_POLICY, &b->base, &pb, &lb) == 0)
		same = la == lb && memcmp(pa, pb, la) == 0;
	free(pa);
	free(pb);
	msg_free(kept);
	return same;
}

static enum bus_disposition
on_policy(const ProtobufCMessage *m, const struct bus_delivery *d, void *arg)
{
	const Mm__V1__Policy *pm = (const Mm__V1__Policy *)m;
	struct scheduler *s = arg;
	bool reset = pm->has_reset && pm->reset;
	uint64_t before = s->policy.version;
	struct pm_policy p;
	char why[512];
	int r;

	switch (pm_version_check(pm->version, reset, s->policy.version,
	    clock_ms(CLOCK_REALTIME), why, sizeof(why))) {
	case PM_VERSION_OLD:
		s->n.policies_old++;
		/* Said either way, so that mmctl policy apply does not wait
		 * in vain: the same policy again is no refusal. */
		if (policy_repeat(s, pm)) {
			log_info("policy %llu again: already in force",
			    (unsigned long long)pm->version);
			publish_alert(s, NULL, NULL, 1, pm->version, "policy "
			    "%llu \"%s\" already in force at %s",
			    (unsigned long long)pm->version, s->policy.name,
			    s->id);
			return BUS_ACK;
		}
		log_warnx_limited(&s->lim_policy, "%s", why);
		publish_alert(s, NULL, NULL, 2, pm->version, "%s", why);
		return BUS_ACK;
	case PM_VERSION_JUMP:
		s->n.policies_jump++;
		log_warnx_limited(&s->lim_policy, "%s; policy %llu stays in force", why,
		    (unsigned long long)before);
		publish_alert(s, NULL, NULL, 2, pm->version, "%s; policy %llu "
		    "stays in force", why, (unsigned long long)before);
		return BUS_REJECT;
	case PM_VERSION_NEWER:
	case PM_VERSION_RESET:
		break;
	}
	if (pm_from_msg(pm, &p, why, sizeof(why)) < 0) {
		s->n.policies_rejected++;
		log_warnx_limited(&s->lim_policy, "policy %llu rejected: %s",
		    (unsigned long long)pm->version, why);
		publish_alert(s, NULL, NULL, 2, pm->version,
		    "policy %llu rejected: %s; policy %llu stays in force",
		    (unsigned long long)pm->version, why,
		    (unsigned long long)before);
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
	why[0] = '\0';
	if (reset) {
		s->n.policies_reset++;
		snprintf(why, sizeof(why), " (reset: version %llu was in "
		    "force)", (unsigned long long)before);
	}
	log_info("policy %llu \"%s\" accepted: %s, algorithm %s%s",
	    (unsigned long long)p.version, p.name, pm_mode_name(p.mode),
	    pe_algo_name(p.balloon.algo), why);
	publish_alert(s, NULL, NULL, 1, p.version, "policy %llu \"%s\" "
	    "accepted by %s: %s, algorithm %s%s", (unsigned long long)p.version,
	    p.name, s->id, pm_mode_name(p.mode), pe_algo_name(p.balloon.algo),
	    why);
	decide_all(s);
	return BUS_ACK;
}

/*
 * Dispatch d through table; a delivery msg_dispatch() itself refused
 * (content type, type, size, decoding, validation: its handler was not
 * called) is counted in *counter and logged, within l's rate, with what
 * identifies its sender: its routing key and app_id, made printable.
 */
static enum bus_disposition
dispatch_counted(struct scheduler *s, const struct msg_handler *table,
    const struct bus_delivery *d, struct msg_dispatch_stats *st,
    uint64_t *counter, struct log_limit *l, const char *what)
{
	char why[256], key[65], app[65];
	uint64_t ok = st->ok;
	enum bus_disposition disp;
	const char *src[2] = { d->routing_key, d->app_id };
	char *dst[2] = { key, app };

	disp = msg_dispatch(table, 1, d, s, st, why, sizeof(why));
	if (st->ok != ok)
		return disp;
	(*counter)++;
	for (int i = 0; i < 2; i++) {
		size_t n = 0;

		for (const char *c = src[i]; c != NULL && *c != '\0' &&
		    n < sizeof(key) - 1; c++)
			dst[i][n++] = *c >= 0x20 && *c < 0x7f ? *c : '?';
		dst[i][n] = '\0';
	}
	log_warnx_limited(l, "malformed %s dead-lettered (key \"%s\", app \"%s\"): %s",
	    what, key, app, why);
	return disp;
}

static enum bus_disposition
stats_cb(struct bus *bus, const struct bus_delivery *d, void *arg)
{
	static const struct msg_handler table[] = {
		{ MSG_HOST_REPORT, on_report },
	};
	struct scheduler *s = arg;

	return dispatch_counted(s, table, d, &s->stats_dispatch,
	    &s->n.stats_malformed, &s->lim_malformed, "report");
}

static enum bus_disposition
results_cb(struct bus *bus, const struct bus_delivery *d, void *arg)
{
	static const struct msg_handler table[] = {
		{ MSG_EVENT, on_result },
	};
	struct scheduler *s = arg;

	return dispatch_counted(s, table, d, &s->results_dispatch,
	    &s->n.results_malformed, &s->lim_results, "result");
}

static enum bus_disposition
control_cb(struct bus *bus, const struct bus_delivery *d, void *arg)
{
	static const struct msg_handler table[] = {
		{ MSG_STATUS_REQUEST, on_status_request },
	};
	struct scheduler *s = arg;

	return dispatch_counted(s, table, d, &s->control_dispatch,
	    &s->n.control_malformed, &s->lim_control, "control request");
}

static enum bus_disposition
policy_cb(struct bus *bus, const struct bus_delivery *d, void *arg)
{
	static const struct msg_handler table[] = {
		{ MSG_POLICY, on_policy },
	};
	struct scheduler *s = arg;

	return dispatch_counted(s, table, d, &s->policy_dispatch,
	    &s->n.policies_malformed, &s->lim_malformed_policy, "policy");
}

static enum bus_disposition
history_cb(struct bus *bus, const struct bus_delivery *d, void *arg)
{
	static const struct msg_handler table[] = {
		{ MSG_HOST_HISTORY, on_history },
	};
	struct scheduler *s = arg;

	return dispatch_counted(s, table, d, &s->history_dispatch,
	    &s->n.history_malformed, &s->lim_history, "history");
}

/* ---- lifecycle ---- */

static void
state_cb(struct bus *bus, bool up, const char *reason, void *arg)
{
	struct scheduler *s = arg;

	if (up) {
		log_info("connected to the broker at %s",
		    bus_current_url(bus));
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

void
sched_stop(struct scheduler *s)
{
	struct bus_stats bs;

	if (s->stopping)
		return;
	s->stopping = true;
	log_info("stopping: %llu reports, %llu batches (%llu superseded, "
	    "%llu not sent), %llu events; "
	    "refused: %llu malformed reports, %llu malformed policies, "
	    "%llu malformed control requests, %llu malformed results, "
	    "%llu invalid policies, %llu policy versions too far ahead, "
	    "%llu older policies, "
	    "%llu reports (bad host id, key of another host, ahead of the "
	    "clock, seq jump)",
	    (unsigned long long)s->n.reports,
	    (unsigned long long)s->n.batches,
	    (unsigned long long)s->n.batches_superseded,
	    (unsigned long long)s->n.batches_refused,
	    (unsigned long long)s->n.events,
	    (unsigned long long)s->n.stats_malformed,
	    (unsigned long long)s->n.policies_malformed,
	    (unsigned long long)s->n.control_malformed,
	    (unsigned long long)s->n.results_malformed,
	    (unsigned long long)s->n.policies_rejected,
	    (unsigned long long)s->n.policies_jump,
	    (unsigned long long)s->n.policies_old,
	    (unsigned long long)(s->n.reports_bad + s->n.reports_wrong_key +
	    s->n.reports_future + s->n.reports_seq_jump));
	bus_get_stats(s->bus, &bs);
	log_info("broker: %llu published, %llu confirmed, %llu refused, "
	    "%llu sent again, %zu unconfirmed, %zu waiting; %llu connects, "
	    "%llu confirm timeouts",
	    (unsigned long long)bs.published,
	    (unsigned long long)bs.confirmed, (unsigned long long)bs.nacked,
	    (unsigned long long)bs.resent, bs.unconfirmed, bs.outbox,
	    (unsigned long long)bs.connects,
	    (unsigned long long)bs.confirm_timeouts);
	daemon_notify_stopping();
	/* Sharded: the others take this one's hosts, and their history. */
	handover_all(s);
	uv_close((uv_handle_t *)&s->sweep, NULL);
	mx_server_close(s->metrics);
	s->metrics = NULL;
	history_stop(s);
	bus_close(s->bus, CLOSE_FLUSH_MS, closed_cb, NULL);
}

static int
setup_bus(struct scheduler *s)
{
	struct bus_config bc;
	int r;

	bus_conf_apply(&s->conf.bus, s->id, &bc);
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
	if (r == 0 && s->conf.shard)
		r = topo_declare_history_queue(s->bus, s->id,
		    s->history_queue, sizeof(s->history_queue));
	if (r == 0 && s->conf.shard)
		r = bus_consume(s->bus, s->history_queue, false, history_cb,
		    s);
	if (r == 0)
		r = topo_declare_commands_exchange(s->bus);
	if (r == 0)
		r = topo_declare_events_log(s->bus,
		    (uint32_t)(s->conf.events_max_age_ms / 1000),
		    (uint64_t)s->conf.events_max_kib * 1024);
	if (r == 0)
		r = topo_declare_policy_queue(s->bus, s->id, s->policy_queue,
		    sizeof(s->policy_queue));
	if (r == 0)
		r = topo_declare_control_queue(s->bus, s->id, s->control_queue,
		    sizeof(s->control_queue));
	if (r == 0)
		r = topo_declare_results_queue(s->bus, s->id, s->results_queue,
		    sizeof(s->results_queue));
	if (r == 0)
		r = bus_consume(s->bus, s->results_queue, false, results_cb, s);
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

int
sched_start(struct scheduler *s, uv_loop_t *loop)
{
	uint64_t period;
	int r;

	pm_defaults(&s->policy, (enum pm_mode)(s->conf.mode + 1));
	state_load(s);
	history_load(s);
	log_info("%s starting: policy %llu \"%s\" (%s, algorithm %s)", s->id,
	    (unsigned long long)s->policy.version, s->policy.name,
	    pm_mode_name(s->policy.mode), pe_algo_name(s->policy.balloon.algo));
	s->loop = loop;
	mx_hist_init(&s->decide_s, mx_bounds_fast, mx_bounds_fast_n);
	mx_hist_init(&s->report_age_s, mx_bounds_latency,
	    mx_bounds_latency_n);
	r = setup_bus(s);
	if (r < 0)
		return r;
	s->metrics = mx_server_start(loop, s->conf.metrics_listen,
	    sched_metrics_cb, s);
	uv_timer_init(loop, &s->sweep);
	s->sweep.data = s;
	/* Sharded: often enough to hand over a silent host in time. */
	if (s->conf.shard && s->conf.handover_after_ms >=
	    s->conf.host_forget_ms) {
		log_warnx("handover_after (%llu s) is not below host_forget: "
		    "%llu s used", (unsigned long long)
		    s->conf.handover_after_ms / 1000, (unsigned long long)
		    s->conf.host_forget_ms / 2000);
		s->conf.handover_after_ms = s->conf.host_forget_ms / 2;
	}
	period = SWEEP_MS;
	if (s->conf.shard && (uint64_t)s->conf.handover_after_ms / 3 < period)
		period = (uint64_t)s->conf.handover_after_ms / 3;
	uv_timer_start(&s->sweep, sweep_cb, period, period);
	history_start(s);
	return 0;
}

void
sched_free(struct scheduler *s)
{
	hosts_free(s);
	history_free(s);
	free(s->policy_msg);
	s->policy_msg = NULL;
	conf_free(sched_conf_table, sched_conf_n, &s->conf);
}
