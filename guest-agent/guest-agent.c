/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mm-guest-agent: reports the guest's memory (/proc/meminfo, vmstat and
 * pressure) to the host through xenstore or a virtio-serial port, or as
 * JSON on stdout. One libuv loop: a periodic timer, a PSI trigger (or a
 * MemAvailable check where the kernel has none) for immediate reports,
 * and a timer that holds reports apart so bursts coalesce.
 */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "daemon.h"
#include "guest-agent.h"
#include "log.h"

/* Exit status when no channel fits this machine: configuration, not a
 * crash, so systemd does not restart it (RestartPreventExitStatus). */
#define EXIT_NO_CHANNEL	78

const char *const agent_channel_names[] = {
	"auto", "xenstore", "virtio", "stdout", NULL
};

#define F(x) offsetof(struct agent_conf, x)

const struct conf_key agent_conf_keys[] = {
	{ "agent", "interval", CONF_DURATION_MS, 100, 3600000, "1s",
	  F(interval_ms), NULL, "how often the guest's memory is sampled" },
	{ "agent", "resend_interval", CONF_DURATION_MS, 100, 86400000, "2s",
	  F(resend_ms), NULL,
	  "unchanged stats are sent again no more often than this" },
	{ "agent", "min_gap", CONF_DURATION_MS, 0, 60000, "100ms",
	  F(min_gap_ms), NULL,
	  "shortest time between two reports; events within it coalesce" },
	{ "agent", "vm_id", CONF_STRING, 0, 64, NULL, F(vm_id), NULL,
	  "name in reports (default: the host name); the host may override" },
	{ "agent", "channel", CONF_ENUM, 0, 0, "auto", F(channel),
	  agent_channel_names, "auto, xenstore, virtio or stdout" },
	{ "agent", "proc_root", CONF_STRING, 1, 1024, "/proc", F(proc_root),
	  NULL, "where /proc is mounted" },
	{ "pressure", "psi_trigger", CONF_STRING, 0, 128,
	  "some 150000 2000000", F(psi_trigger), NULL,
	  "PSI trigger for an immediate report: some|full <stall us> "
	  "<window us> (a multiple of 2 s without CAP_SYS_RESOURCE); "
	  "empty disables it" },
	{ "pressure", "available_low_pct", CONF_INT, 0, 100, "10",
	  F(available_low_pct), NULL,
	  "without PSI: report at once when MemAvailable drops below this "
	  "percent of MemTotal (0: never)" },
	{ "pressure", "check_interval", CONF_DURATION_MS, 20, 60000, "250ms",
	  F(check_ms), NULL, "how often MemAvailable is checked between "
	  "reports (for rise, and available_low_pct without PSI)" },
	{ "pressure", "check_fast", CONF_DURATION_MS, 10, 60000, "50ms",
	  F(check_fast_ms), NULL, "how often it is checked while used memory "
	  "climbs (by an eighth of rise or more between two checks)" },
	{ "pressure", "rise", CONF_SIZE_KIB, 0, 1ll << 40, "32M", F(rise_kib),
	  NULL, "report at once when used memory rose this much since the "
	  "last report (0: never)" },
	{ "cold", "interval", CONF_DURATION_MS, 0, 86400000, "60s",
	  F(cold_ms), NULL, "how often MGLRU's generations are aged for the "
	  "cold-memory estimate (idle for 1 to 3 intervals); 0: no estimate" },
	{ "cold", "enable_lru_gen", CONF_BOOL, 0, 0, "no", F(cold_enable),
	  NULL, "turn MGLRU on when it is off (it changes how the guest "
	  "reclaims)" },
	{ "cold", "sys_root", CONF_STRING, 1, 1024, "/sys", F(sys_root), NULL,
	  "where sysfs is mounted (debugfs below it, at kernel/debug)" },
	{ "reclaim", "max", CONF_SIZE_KIB, 0, 1ll << 40, "1G",
	  F(reclaim_max_kib), NULL, "the most one host request may reclaim "
	  "into the guest's swap (0: no request is taken)" },
	{ "reclaim", "step", CONF_SIZE_KIB, 1024, 1ll << 30, "32M",
	  F(reclaim_step_kib), NULL, "reclaimed at once, the stall checked "
	  "between steps" },
	{ "reclaim", "cgroup", CONF_STRING, 1, 1024, "/sys/fs/cgroup",
	  F(reclaim_cgroup), NULL, "the cgroup v2 whose memory.reclaim is "
	  "written (the root: all of the guest)" },
	{ "reclaim", "control_port", CONF_STRING, 1, 1024,
	  "/dev/virtio-ports/org.mm.control.0", F(control_port), NULL,
	  "where the host's reclaim requests come in (read only)" },
	{ "virtio", "port", CONF_STRING, 1, 1024, AGENT_VIRTIO_PORT,
	  F(virtio_port), NULL, "the virtio-serial port" },
	{ "xenstore", "prefix", CONF_STRING, 1, 128, "data/mm",
	  F(xenstore_prefix), NULL,
	  "keys go below this path, relative to the domain's home" },
};

const size_t agent_conf_nkeys =
    sizeof(agent_conf_keys) / sizeof(agent_conf_keys[0]);

struct agent {
	struct agent_conf conf;
	uv_loop_t *loop;
	uv_timer_t tick;		/* periodic sampling */
	uv_timer_t deferred;		/* a report held back by min_gap */
	uv_timer_t check;		/* fallback MemAvailable check */
	uv_timer_t trim;		/* agent_trim_rss() once settled */
	uv_timer_t cold_timer;		/* cold_age() every [cold] interval */
	struct agent_cold_state cold;
	struct agent_reclaim reclaim;
	int channel;			/* enum agent_channel in use */
	struct chan_xenstore_watch *control;	/* xenstore: requests */
	uv_poll_t psi_poll;
	int psi_fd;			/* PSI trigger, or -1 */
	bool urgent_pending;		/* the deferred report is urgent */
	struct daemon_signals sig;
	struct agent_chan *chan;
	struct agent_sources src;
	struct report_state st;
	Mm__V1__Meminfo last_check;
	bool check_low;			/* no PSI: watch available_low_pct */
	bool climbing;			/* used rose at the last check */
	bool check_used_ok;
	uint64_t check_used_kib;	/* used at the last check */
	bool balloon_in_total;		/* deflate-on-oom balloon */
	int meminfo_fd;			/* <proc_root>/meminfo, or -1 */
	uint64_t check_free_kib;	/* sysinfo's free at the last check */
	uint64_t tight_kib;		/* below this free, page cache feeds */
	uint64_t seq;
	char vm_id[65];
};

static void deferred_cb(uv_timer_t *t);

/* Sample now and report it, hold it back or skip it. */
static void
sample_and_report(struct agent *a, bool urgent)
{
	struct agent_sample s;
	uint64_t now = uv_now(a->loop), at = 0;

	memset(&s, 0, sizeof(s));
	agent_sample_read(a->conf.proc_root, &a->src, &s);
	memcpy(s.vm_id, a->vm_id, sizeof(s.vm_id));
	s.cold = a->cold.last;
	reclaim_status(&a->reclaim, &s);
	switch (report_decide(&a->conf, &a->st, &s, now, urgent, &at)) {
	case REPORT_SKIP:
		log_debug("stats unchanged, not sent");
		return;
	case REPORT_DEFER:
		a->urgent_pending |= urgent;
		if (!uv_is_active((uv_handle_t *)&a->deferred))
			uv_timer_start(&a->deferred, deferred_cb,
			    at > now ? at - now : 0, 0);
		return;
	case REPORT_SEND:
		break;
	}
	uv_timer_stop(&a->deferred);
	a->urgent_pending = false;
	s.seq = a->seq++;
	s.time_ms = clock_ms(CLOCK_REALTIME);
	log_debug("report %llu%s", (unsigned long long)s.seq,
	    urgent ? " (pressure)" : "");
	a->chan->send(a->chan, &s);
	report_sent(&a->st, &s, now);
}

static void
deferred_cb(uv_timer_t *t)
{
	struct agent *a = t->data;

	sample_and_report(a, a->urgent_pending);
}

static void
tick_cb(uv_timer_t *t)
{
	sample_and_report(t->data, false);
}

/* After the first reports every code path of the loop has run once. */
#define TRIM_DELAY_MS	3000

static void
cold_cb(uv_timer_t *t)
{
	struct agent *a = t->data;

	cold_age(&a->cold);
}

static void
trim_cb(uv_timer_t *t)
{
	agent_trim_rss();
}

static void
psi_cb(uv_poll_t *p, int status, int events)
{
	struct agent *a = p->data;

	if (status < 0) {
		log_warnx("PSI trigger failed (%s); checking MemAvailable "
		    "instead", uv_strerror(status));
		uv_poll_stop(p);
		return;
	}
	if (events & UV_PRIORITIZED) {
		log_debug("memory pressure rose (PSI trigger)");
		sample_and_report(a, true);
	}
}

/*
 * Between reports the agent watches used memory (MemTotal - MemAvailable)
 * from /proc/meminfo, kept open. While use climbs it looks every
 * check_fast instead of every check_interval, so each rise of `rise` is
 * reported within check_fast.
 *
 * The file costs tens of microseconds, sysinfo(2) one: where /proc is the
 * machine's own, the file is read only when free memory fell by an eighth
 * of the rise since the last check or by the rise since the last report,
 * or is low. Used memory grows without free memory falling only when the
 * kernel feeds it from page cache, and it does that when free memory is
 * low: how a guest squeezed by its balloon grows.
 */
/* Free memory below which the kernel reclaims: well above its high
 * watermark (about 1.5 times min_free_kbytes), and twice the rise. */
static uint64_t
tight_kib(const struct agent *a)
{
	char buf[32];
	uint64_t t = 2 * (uint64_t)a->conf.rise_kib;
	unsigned long long min_free;

	if (hs_read_file("/proc/sys/vm/min_free_kbytes", buf, sizeof(buf),
	    NULL) > 0 && sscanf(buf, "%llu", &min_free) == 1 &&
	    4 * min_free > t)
		t = 4 * min_free;
	return t;
}

static bool
check_worth_reading(struct agent *a)
{
	const Mm__V1__Meminfo *last = &a->st.last.mem;
	uint64_t step = (uint64_t)a->conf.rise_kib / 8, was, free_kib;
	struct sysinfo si;

	if (a->check_low || a->meminfo_fd < 0 || !a->st.sent_once ||
	    !last->has_free_kib || sysinfo(&si) < 0)
		return true;
	free_kib = (uint64_t)si.freeram * si.mem_unit / 1024;
	was = a->check_free_kib;
	a->check_free_kib = free_kib;
	return free_kib < a->tight_kib || free_kib + step <= was ||
	    free_kib + (uint64_t)a->conf.rise_kib <= last->free_kib;
}

static int
check_read(struct agent *a, Mm__V1__Meminfo *m)
{
	if (a->meminfo_fd >= 0)
		return hs_pread_meminfo(a->meminfo_fd, m, NULL);
	return hs_load_meminfo(a->conf.proc_root, m, NULL);
}

static void
check_cb(uv_timer_t *t)
{
	struct agent *a = t->data;
	Mm__V1__Meminfo m;
	Mm__V1__Vmstat v;
	const Mm__V1__Vmstat *vp = &a->st.last.vm;
	uint64_t rise = (uint64_t)a->conf.rise_kib, used, ref;
	bool was = a->climbing;

	if (!was && !check_worth_reading(a)) {
		a->climbing = false;
		goto pace;
	}
	if (check_read(a, &m) < 0)
		return;
	/* While it climbs the host is growing it: a deflate-on-oom balloon
	 * then shrinks inside MemTotal, so count it afresh. */
	if (was && a->balloon_in_total &&
	    hs_load_vmstat(a->conf.proc_root, &v, NULL) == 0)
		vp = &v;
	if (!report_used_kib(&m, vp, a->balloon_in_total, &used)) {
		a->check_used_ok = a->climbing = false;
		goto pace;
	}
	a->climbing = rise > 0 && a->check_used_ok &&
	    used >= a->check_used_kib + (rise / 8 > 0 ? rise / 8 : 1);
	if (a->check_low && report_available_dropped(&a->last_check, &m,
	    a->conf.available_low_pct)) {
		log_debug("MemAvailable dropped below %lld%% of MemTotal",
		    (long long)a->conf.available_low_pct);
		sample_and_report(a, true);
	} else if (rise > 0 && a->st.sent_once &&
	    report_used_kib(&a->st.last.mem, &a->st.last.vm,
	    a->balloon_in_total, &ref) && used >= ref + rise) {
		/* Not urgent: a burst of rises still coalesces. */
		log_debug("used memory rose by %llu KiB or more",
		    (unsigned long long)rise);
		sample_and_report(a, false);
	}
	a->last_check = m;
	a->check_used_kib = used;
	a->check_used_ok = true;
pace:
	if (was != a->climbing) {
		uv_timer_set_repeat(t, (uint64_t)(a->climbing ?
		    a->conf.check_fast_ms : a->conf.check_ms));
		uv_timer_again(t);
	}
}

/*
 * Whether the guest's balloon is deflate-on-oom (virtio feature bit 2 of
 * the virtio-balloon device, id 5): its pages then stay in MemTotal,
 * counted as used.
 */
static bool
balloon_in_total(void)
{
	char buf[160], path[PATH_MAX];
	glob_t g;
	bool doo = false;

	if (glob("/sys/bus/virtio/devices/*/device", 0, NULL, &g) != 0)
		return false;
	for (size_t i = 0; i < g.gl_pathc && !doo; i++) {
		if (hs_read_file(g.gl_pathv[i], buf, sizeof(buf),
		    NULL) <= 0 || strtoul(buf, NULL, 0) != 5)
			continue;
		snprintf(path, sizeof(path), "%.*s/features",
		    (int)(strrchr(g.gl_pathv[i], '/') - g.gl_pathv[i]),
		    g.gl_pathv[i]);
		doo = hs_read_file(path, buf, sizeof(buf), NULL) > 2 &&
		    buf[2] == '1';
	}
	globfree(&g);
	return doo;
}

/*
 * Arm the kernel's PSI trigger: the file descriptor gets POLLPRI when
 * the stall time in the window exceeds the threshold. Returns 0 or a
 * negative errno (no PSI, or not allowed).
 */
static int
psi_start(struct agent *a)
{
	const char *trig = a->conf.psi_trigger;
	struct statfs fs;
	char path[1100];
	int r;

	if (trig == NULL || *trig == '\0')
		return -ENOTSUP;
	snprintf(path, sizeof(path), "%s/pressure/memory",
	    a->conf.proc_root);
	a->psi_fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (a->psi_fd < 0)
		return -errno;
	/* A proc_root of plain files (tests) must not get a trigger
	 * written into it. */
	if (fstatfs(a->psi_fd, &fs) < 0 || fs.f_type != PROC_SUPER_MAGIC) {
		r = -ENOTSUP;
		goto fail;
	}
	if (write(a->psi_fd, trig, strlen(trig) + 1) < 0) {
		r = -errno;
		goto fail;
	}
	r = uv_poll_init(a->loop, &a->psi_poll, a->psi_fd);
	if (r < 0)
		goto fail;
	a->psi_poll.data = a;
	r = uv_poll_start(&a->psi_poll, UV_PRIORITIZED, psi_cb);
	if (r < 0) {
		uv_close((uv_handle_t *)&a->psi_poll, NULL);
		goto fail;
	}
	return 0;
fail:
	close(a->psi_fd);
	a->psi_fd = -1;
	return r;
}

static void
stop_cb(void *arg)
{
	struct agent *a = arg;

	log_info("stopping");
	daemon_notify_stopping();
	uv_stop(a->loop);
}

static struct agent_chan *
open_channel(struct agent *a)
{
	const struct agent_conf *c = &a->conf;
	int kind = c->channel;
	struct agent_chan *ch;

	if (kind == AGENT_CHAN_AUTO) {
		if (chan_xenstore_detect()) {
			kind = AGENT_CHAN_XENSTORE;
		} else if (access(c->virtio_port, F_OK) == 0) {
			kind = AGENT_CHAN_VIRTIO;
		} else {
			log_warnx("no channel: not a Xen guest (no /proc/xen, "
			    "/sys/hypervisor/type is not xen) and no virtio "
			    "port \"%s\"; give the VM that port or set "
			    "channel (--channel stdout to print)",
			    c->virtio_port);
			return NULL;
		}
	}
	a->channel = kind;
	switch (kind) {
	case AGENT_CHAN_XENSTORE:
		ch = chan_xenstore_new(c->xenstore_prefix);
		if (ch == NULL)
			log_warn("cannot open xenstore");
		break;
	case AGENT_CHAN_VIRTIO:
		ch = chan_virtio_new(a->loop, c->virtio_port);
		break;
	default:
		ch = chan_stdout_new(stdout);
		break;
	}
	if (ch != NULL)
		log_info("reporting every %lld ms on %s",
		    (long long)c->interval_ms, ch->name);
	return ch;
}

/*
 * A reclaim request in the domain's control/mm/reclaim, written by the
 * host's xen driver. What the key holds when the agent starts is an old
 * request, perhaps hours old, for an agent that is gone: recorded, not
 * acted on (over virtio a request sent while no agent runs is lost too).
 */
static void
control_cb(const char *value, size_t len, bool initial, void *arg)
{
	struct agent *a = arg;

	if (value == NULL)
		return;		/* removed: nothing asked */
	if (initial) {
		log_debug("xenstore: %s holds \"%.*s\" from before, not "
		    "acted on", AGENT_XS_CONTROL_KEY, (int)(len > 80 ? 80 : len),
		    value);
		return;
	}
	(void)reclaim_request_text(&a->reclaim, "xenstore", value, len);
}

/* Where the host's requests come in: the control port, or on Xen the
 * watched key. */
static void
control_start(struct agent *a)
{
	bool xs = a->channel == AGENT_CHAN_XENSTORE;

	if (reclaim_start(&a->reclaim, a->loop, &a->conf, !xs) < 0 || !xs)
		return;
	a->control = chan_xenstore_watch_new(a->loop, AGENT_XS_CONTROL_KEY,
	    control_cb, a);
	if (a->control == NULL)
		log_warn("reclaim on the host's request: cannot watch "
		    "xenstore \"%s\"", AGENT_XS_CONTROL_KEY);
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: mm-guest-agent [-dnv] [-c file] "
	    "[--channel auto|xenstore|virtio|stdout] [--once]\n"
	    "  -c file    configuration file (default %s)\n"
	    "  -d         stay in the foreground, plain log lines on stderr\n"
	    "  -n         check the configuration and exit (-nv: print it)\n"
	    "  -v         verbose: debug logging\n"
	    "  --channel  where reports go, overriding the configuration\n"
	    "  --once     send one report and exit\n", AGENT_CONF_PATH);
}

/*
 * Take the agent's own long options out of argv, leaving the standard
 * ones for daemon_parse_args(). Returns the new argc.
 */
static int
take_own_args(int argc, char **argv, int *ret_channel, bool *ret_once)
{
	int i, j = 1, k;

	for (i = 1; i < argc; i++) {
		const char *arg = argv[i], *val = NULL;

		if (strcmp(arg, "--") == 0) {
			while (i < argc)
				argv[j++] = argv[i++];
			break;
		}
		if (strcmp(arg, "--once") == 0) {
			*ret_once = true;
			continue;
		}
		if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
			usage(stdout);
			exit(0);
		}
		if (strncmp(arg, "--channel=", 10) == 0)
			val = arg + 10;
		else if (strcmp(arg, "--channel") == 0 && i + 1 < argc)
			val = argv[++i];
		else if (strcmp(arg, "--channel") == 0)
			val = "";
		if (val == NULL) {
			argv[j++] = argv[i];
			continue;
		}
		for (k = 0; agent_channel_names[k] != NULL; k++)
			if (strcmp(val, agent_channel_names[k]) == 0)
				break;
		if (agent_channel_names[k] == NULL) {
			fprintf(stderr, "mm-guest-agent: unknown channel "
			    "\"%s\"\n", val);
			usage(stderr);
			exit(2);
		}
		*ret_channel = k;
	}
	argv[j] = NULL;
	return j;
}

int
main(int argc, char **argv)
{
	struct daemon_opts opts;
	struct agent a;
	uv_loop_t loop;
	int channel = -1, r, status = 0;
	bool once = false;

	memset(&a, 0, sizeof(a));
	a.psi_fd = a.meminfo_fd = -1;
	argc = take_own_args(argc, argv, &channel, &once);
	daemon_parse_args(argc, argv, "mm-guest-agent", AGENT_CONF_PATH,
	    &opts);
	if (daemon_load_conf(agent_conf_keys, agent_conf_nkeys, &a.conf,
	    &opts) < 0)
		exit(1);
	if (channel >= 0)
		a.conf.channel = channel;
	/* A port whose host side vanished must not kill us. */
	signal(SIGPIPE, SIG_IGN);
	agent_vm_id(a.conf.vm_id, a.vm_id);

	if (uv_loop_init(&loop) < 0)
		fatalx("cannot start the event loop");
	a.loop = &loop;
	a.chan = open_channel(&a);
	if (a.chan == NULL) {
		status = EXIT_NO_CHANNEL;
		goto out;
	}
	if (once) {
		a.conf.min_gap_ms = 0;
		sample_and_report(&a, false);
		/* Give a waiting virtio frame its chance to go out. */
		uv_run(&loop, UV_RUN_NOWAIT);
		goto out;
	}

	uv_timer_init(&loop, &a.tick);
	uv_timer_init(&loop, &a.deferred);
	uv_timer_init(&loop, &a.check);
	uv_timer_init(&loop, &a.trim);
	a.tick.data = a.deferred.data = a.check.data = &a;
	r = daemon_signals_init(&a.sig, &loop, stop_cb, NULL, &a);
	if (r < 0)
		fatalx("cannot watch signals: %s", uv_strerror(r));
	r = psi_start(&a);
	a.check_low = r < 0 && a.conf.available_low_pct > 0;
	if (a.check_low || a.conf.rise_kib > 0) {
		char path[1100];

		struct statfs fs;

		/* Kept open where it is procfs: a file replaced under the
		 * same name (tests) must be opened again. */
		snprintf(path, sizeof(path), "%s/meminfo", a.conf.proc_root);
		a.meminfo_fd = open(path, O_RDONLY | O_CLOEXEC);
		if (a.meminfo_fd >= 0 && (fstatfs(a.meminfo_fd, &fs) < 0 ||
		    fs.f_type != PROC_SUPER_MAGIC ||
		    strcmp(a.conf.proc_root, "/proc") != 0)) {
			close(a.meminfo_fd);
			a.meminfo_fd = -1;
		}
		a.tight_kib = tight_kib(&a);
		a.balloon_in_total = a.meminfo_fd >= 0 && balloon_in_total();
		if (a.balloon_in_total)
			log_info("deflate-on-oom balloon: its pages are not "
			    "counted as used");
	}
	if (a.check_low && r != -ENOTSUP)
		log_info("no PSI trigger on \"%s/pressure/memory\" (%s); "
		    "checking MemAvailable every %lld ms", a.conf.proc_root,
		    strerror(-r), (long long)a.conf.check_ms);
	if (a.check_low || a.conf.rise_kib > 0)
		uv_timer_start(&a.check, check_cb, (uint64_t)a.conf.check_ms,
		    (uint64_t)a.conf.check_ms);
	uv_timer_start(&a.tick, tick_cb, 0, (uint64_t)a.conf.interval_ms);
	uv_timer_start(&a.trim, trim_cb, TRIM_DELAY_MS, 0);
	uv_timer_init(&loop, &a.cold_timer);
	a.cold_timer.data = &a;
	if (cold_start(&a.cold, &a.conf) == 0)
		uv_timer_start(&a.cold_timer, cold_cb, 0,
		    (uint64_t)a.conf.cold_ms);
	control_start(&a);
	daemon_notify_ready("reporting");
	uv_run(&loop, UV_RUN_DEFAULT);

	daemon_signals_close(&a.sig);
	uv_close((uv_handle_t *)&a.tick, NULL);
	uv_close((uv_handle_t *)&a.deferred, NULL);
	uv_close((uv_handle_t *)&a.check, NULL);
	uv_close((uv_handle_t *)&a.trim, NULL);
	uv_close((uv_handle_t *)&a.cold_timer, NULL);
	chan_xenstore_watch_free(a.control);
	reclaim_stop(&a.reclaim);
	if (a.psi_fd >= 0)
		uv_close((uv_handle_t *)&a.psi_poll, NULL);
out:
	agent_chan_free(a.chan);
	uv_run(&loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&loop) != 0)
		log_debug("event loop: handles left open");
	if (a.psi_fd >= 0)
		close(a.psi_fd);
	if (a.meminfo_fd >= 0)
		close(a.meminfo_fd);
	conf_free(agent_conf_keys, agent_conf_nkeys, &a.conf);
	return status;
}
