/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mm-guest-agent's private interfaces: its configuration, one sample of the
 * guest's memory, the decision when to report, and the channels a report
 * goes out on (xenstore, virtio-serial, stdout). The agent never talks to
 * the message bus; the host's collector reads what it writes.
 */
#ifndef MM_GUEST_AGENT_H
#define MM_GUEST_AGENT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <uv.h>

#include "conf.h"
#include "hoststats.h"

#define AGENT_CONF_PATH		"/etc/mm/guest-agent.conf"
#define AGENT_VIRTIO_PORT	"/dev/virtio-ports/org.mm.agent.0"
/* On Xen the host's reclaim requests are in this key of the domain's home
 * (the host's XEN_RECLAIM_KEY, docs/protocol.md). */
#define AGENT_XS_CONTROL_KEY	"control/mm/reclaim"

enum agent_channel {
	AGENT_CHAN_AUTO,
	AGENT_CHAN_XENSTORE,
	AGENT_CHAN_VIRTIO,
	AGENT_CHAN_STDOUT,
};

/* /etc/mm/guest-agent.conf; see agent_conf_keys in guest-agent.c. */
struct agent_conf {
	int64_t interval_ms;	/* periodic sampling */
	int64_t resend_ms;	/* unchanged stats are resent this often */
	int64_t min_gap_ms;	/* reports are at least this far apart */
	char *psi_trigger;	/* "some 150000 2000000"; NULL: no trigger */
	int64_t available_low_pct;	/* fallback: MemAvailable below this
					 * percent of MemTotal is pressure */
	int64_t check_ms;	/* MemAvailable checked this often */
	int64_t check_fast_ms;	/* ... and this often while use climbs */
	int64_t rise_kib;	/* used memory up this much: report at once */
	char *proc_root;	/* "/proc" */
	int channel;		/* enum agent_channel */
	char *virtio_port;
	char *xenstore_prefix;	/* relative to the domain's home: "data/mm" */
	char *vm_id;		/* NULL: the host name */
	int64_t cold_ms;	/* MGLRU aged this often; 0: no estimate */
	int64_t reclaim_max_kib;	/* a request's cap; 0: none taken */
	int64_t reclaim_step_kib;	/* written to memory.reclaim at once */
	char *reclaim_cgroup;	/* its memory.reclaim: "/sys/fs/cgroup" */
	char *control_port;	/* the host's requests come in here */
	bool cold_enable;	/* turn MGLRU on when it is off */
	char *sys_root;		/* "/sys" */
};

extern const struct conf_key agent_conf_keys[];
extern const size_t agent_conf_nkeys;
extern const char *const agent_channel_names[];

/* One report's content: the GuestStats fields, as hoststats.h parses
 * them. A file that cannot be read or holds nothing valid leaves its
 * struct initialised with no field set. */
/* Cold memory (cold.c): memory not touched for at least idle_ms. */
struct agent_cold {
	size_t n;
	struct {
		uint64_t idle_ms, anon_kib, file_kib;
	} b[MSG_COLD_MAX];
};

struct agent_sample {
	char vm_id[65];
	uint64_t seq;
	uint64_t time_ms;
	Mm__V1__Meminfo mem;
	Mm__V1__Vmstat vm;
	Mm__V1__Psi psi;
	struct agent_cold cold;
	/* The last reclaim request's progress (reclaim.c). */
	bool has_reclaim;
	uint64_t reclaim_seq, reclaim_kib;
	int reclaim_state;		/* Mm__V1__ReclaimState, not 0 */
	double reclaim_stall_pct;	/* 0..100 */
};

/* What went wrong reading each file last time, to warn once per change. */
struct agent_sources {
	int mem_err, vm_err, psi_err;	/* 0 or negative errno */
	bool mem_bad, vm_bad, psi_bad;	/* malformed content seen */
};

/*
 * sample.c: read the three files under proc_root (borrowed) into *ret
 * (time_ms, seq and vm_id are left for the caller). A missing or malformed
 * file is logged once when its state changes, tracked in *src, and leaves
 * its fields absent. Never fails.
 */
void agent_sample_read(const char *proc_root, struct agent_sources *src,
    struct agent_sample *ret);

/* True when a and b hold the same values (time, seq and counts of bad
 * lines aside). */
bool agent_sample_equal(const struct agent_sample *a,
    const struct agent_sample *b);

/* A value of a sample, as channels print it: an integer or a percent. */
struct agent_value {
	const char *group;	/* "meminfo", "vmstat", "psi" (hs_fields) */
	const char *name;	/* the mm.v1 field name, e.g. "total_kib" */
	bool is_pct;
	uint64_t u;
	double pct;
};

/* Call cb for each field s has, in the order of the proto; stops early
 * and returns cb's value when it is nonzero, else returns 0. */
int agent_sample_foreach(const struct agent_sample *s,
    int (*cb)(const struct agent_value *v, void *arg), void *arg);

/* Write vm_id sanitized to [A-Za-z0-9_.-]{1,64} into buf (65 bytes):
 * name (may be NULL) or the host name, other bytes become '-'. */
void agent_vm_id(const char *name, char buf[65]);

/* cold.c: the cold-memory estimate from MGLRU's generations. */
struct agent_cold_state {
	bool on;		/* MGLRU there, on, and debugfs usable */
	bool failing;		/* the last aging could not read lru_gen */
	char path[1100];	/* <sys_root>/kernel/debug/lru_gen */
	unsigned page_kib;
	struct agent_cold last;	/* after the last aging */
};

/* Generations of one memcg on one node, as lru_gen lists them (oldest
 * first, at most the youngest MSG_COLD_MAX). */
struct cold_lruvec {
	unsigned long memcg, node;
	size_t n;
	struct {
		unsigned long long seq, age_ms, anon, file;
	} g[MSG_COLD_MAX];
};

/* Whether the estimate can run ([cold] interval, MGLRU on or turned on
 * by enable_lru_gen, debugfs mounted or mountable); logs why not once.
 * Returns 0 or a negative errno. */
int cold_start(struct agent_cold_state *c, const struct agent_conf *conf);
/* Age every lruvec once and read the generations into c->last (no
 * buckets when lru_gen cannot be read). */
void cold_age(struct agent_cold_state *c);
/* lru_gen's text into v (at most max lruvecs): how many, or -EINVAL. */
int cold_parse(const char *text, struct cold_lruvec *v, size_t max);
/* The buckets of n lruvecs, pages of page_kib, shortest idle first. */
void cold_buckets(const struct cold_lruvec *v, size_t n, unsigned page_kib,
    struct agent_cold *ret);

/* reclaim.c: proactive reclaim on the host's request, read from the
 * control port. */
struct agent_reclaim {
	uv_loop_t *loop;
	const char *proc_root;
	char path[1100];	/* <cgroup>/memory.reclaim */
	char port[1100];
	int fd;			/* the control port, or -1 */
	uv_poll_t *poll;
	uv_timer_t retry, pause;
	uv_work_t work;
	uint8_t buf[260];	/* a frame being read */
	size_t len;
	uint64_t refused;	/* frames refused */
	uint64_t max_kib, max_step_kib;
	/* the request */
	uint64_t seq, want_kib, reclaimed_kib, step_kib;
	double budget_pct, stall_pct;
	int state;		/* Mm__V1__ReclaimState */
	bool running, busy, closing, started;
	int step_err;		/* the step's write: 0 or negative errno */
	int64_t stall0;		/* PSI some total before the step, us */
	uint64_t t0_ms;
};
/* Take requests ([reclaim] max above 0): with port, open the control
 * port (it must be there); without, they come from the xenstore channel
 * through reclaim_request_text(). 0 or a negative errno, said once.
 * reclaim_stop() in any case. */
int reclaim_start(struct agent_reclaim *rc, uv_loop_t *loop,
    const struct agent_conf *conf, bool port);
void reclaim_stop(struct agent_reclaim *rc);
/* Act on a validated request (the control port's, or a test's). */
void reclaim_request(struct agent_reclaim *rc,
    const Mm__V1__ReclaimRequest *rq);
/*
 * A request as xenstore carries it (docs/protocol.md): text (borrowed,
 * len bytes and a NUL) is "<seq> <kib> <psi_budget_pct>", two strict
 * decimals and one with an optional fraction, single spaces, nothing
 * else (no NUL inside), at most RECLAIM_TEXT_MAX bytes. It goes through the control port's checks
 * (msg_validate()) and on to reclaim_request(); anything else is counted
 * in rc->refused and logged (rate-limited), naming from ("xenstore").
 * Returns 0 or -EINVAL.
 */
#define RECLAIM_TEXT_MAX	80
int reclaim_request_text(struct agent_reclaim *rc, const char *from,
    const char *text, size_t len);
/* Its progress into s. */
void reclaim_status(const struct agent_reclaim *rc, struct agent_sample *s);

/* footprint.c: drop the pages of read-only file mappings that fault-around
 * brought in, and stop fault-around on them, so RSS is what the agent uses.
 * Call once the loop runs; safe at any time on one thread. */
void agent_trim_rss(void);

/*
 * report.c: when to report. The loop calls report_decide() for each
 * sample; urgent means memory pressure rose.
 */
struct report_state {
	bool sent_once;
	uint64_t last_sent_ms;		/* monotonic ms of the last report */
	struct agent_sample last;	/* what it held */
};

enum report_action {
	REPORT_SKIP,		/* unchanged and resent recently */
	REPORT_SEND,		/* send now */
	REPORT_DEFER,		/* send at *ret_at_ms (min_gap) */
};

/*
 * Decide what to do with sample s taken at monotonic now_ms. Changed
 * stats, urgent ones and unchanged ones last sent resend_ms ago or more
 * are sent, but never within min_gap_ms of the previous report: those are
 * deferred to *ret_at_ms, where the caller takes a new sample (so bursts
 * coalesce into one report). Does not change st; call report_sent().
 */
enum report_action report_decide(const struct agent_conf *c,
    const struct report_state *st, const struct agent_sample *s,
    uint64_t now_ms, bool urgent, uint64_t *ret_at_ms);

/* Record that s was sent at now_ms. */
void report_sent(struct report_state *st, const struct agent_sample *s,
    uint64_t now_ms);

/* True when MemAvailable crossed below pct percent of MemTotal between
 * prev (may lack the fields) and cur. */
bool report_available_dropped(const Mm__V1__Meminfo *prev,
    const Mm__V1__Meminfo *cur, int64_t pct);

/*
 * Used memory in m, in *ret, as guestmem.h defines it for everyone:
 * MemTotal - MemAvailable, less what a deflate-on-oom balloon
 * (balloon_in_total) holds, its pages staying in MemTotal as used: taken
 * out when v (may be NULL) says how many it holds, so that a deflating
 * balloon does not look like the guest using less. False when m lacks the
 * fields or has more available than total.
 */
bool report_used_kib(const Mm__V1__Meminfo *m, const Mm__V1__Vmstat *v,
    bool balloon_in_total, uint64_t *ret);

/*
 * A channel. send() delivers one report or keeps it to deliver later
 * (coalescing: a newer report replaces an undelivered one); it returns 0
 * (sent or kept) or a negative errno, already logged, when the report is
 * dropped. free() closes it; NULL is a no-op.
 */
struct agent_chan {
	const char *name;
	int (*send)(struct agent_chan *ch, const struct agent_sample *s);
	void (*free)(struct agent_chan *ch);
};

static inline void
agent_chan_free(struct agent_chan *ch)
{
	if (ch != NULL)
		ch->free(ch);
}

/* chan_stdout.c: one JSON object per line on f (borrowed, stays open). */
struct agent_chan *chan_stdout_new(FILE *f);

/*
 * chan_virtio.c: 4-byte big-endian length then a packed mm.v1.GuestStats,
 * written without blocking to the port at path (borrowed), which is opened
 * (O_WRONLY | O_NONBLOCK) when the channel is created and reopened when it
 * fails; a report that cannot be written now waits for the port on loop
 * (borrowed), replaced by any newer one. Returns NULL with errno set only
 * on allocation failure: an absent port is retried at each report.
 */
struct agent_chan *chan_virtio_new(uv_loop_t *loop, const char *path);

/* As chan_virtio_new() on an open fd (taken over, closed by free()), for
 * tests; a failed fd is not reopened. */
struct agent_chan *chan_virtio_new_fd(uv_loop_t *loop, int fd);

/* Encode s as one frame into a malloc'd *ret_buf of *ret_len bytes.
 * Returns 0 or the errors of msg_pack(). */
int chan_virtio_frame(const struct agent_sample *s, uint8_t **ret_buf,
    size_t *ret_len);

/*
 * chan_xenstore.c: the sample's values under prefix (borrowed, relative to
 * the domain's home, e.g. "data/mm") through libxenstore, one transaction
 * per report: agent_sample_foreach()'s as <group>/<name>, the cold
 * buckets as cold/<i>/<name> and the reclaim status as reclaim/<name>
 * (GuestStats' field names). Returns NULL with errno set when xenstore cannot be opened.
 */
struct agent_chan *chan_xenstore_new(const char *prefix);

/*
 * chan_xenstore.c: watch key (borrowed, relative to the domain's home,
 * e.g. "control/mm/reclaim") on a xenstore connection of its own, polled
 * on loop (borrowed). cb(value, len, initial, arg) is called on the loop
 * when the key's value differs from the last one seen (value borrowed for
 * the call, NUL-terminated; NULL when the key is absent), initial for the
 * first read after the watch started. A broken connection is opened again
 * a second later, and the value read then compared with the last one
 * seen. Returns NULL with errno set when xenstore cannot be opened or
 * watched. Free with chan_xenstore_watch_free() (NULL: a no-op), which
 * closes its handles (the loop must run once more to free them).
 */
struct chan_xenstore_watch;
struct chan_xenstore_watch *chan_xenstore_watch_new(uv_loop_t *loop,
    const char *key, void (*cb)(const char *value, size_t len, bool initial,
    void *arg), void *arg);
void chan_xenstore_watch_free(struct chan_xenstore_watch *w);

/* True when running under Xen: /proc/xen exists or
 * /sys/hypervisor/type says xen. */
bool chan_xenstore_detect(void);

#endif
