/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What every mm daemon does the same way: its command line (-c FILE, -n,
 * -v, -d), loading its configuration with a check mode, logging set up for
 * a terminal or journald, signals on the loop (TERM and INT stop, HUP
 * reloads), and readiness notification to systemd. The [bus] keys are the
 * wire layer's (bus_conf.h), a per-host daemon's start the host layer's
 * (daemon_host.h).
 */
#ifndef MM_DAEMON_H
#define MM_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "conf.h"

struct daemon_opts {
	const char *prog;	/* the program's name, for logs and --version */
	const char *conf_path;	/* -c, or the program's default */
	bool conf_explicit;	/* -c was given: a missing file is an error */
	bool check_only;	/* -n: check the configuration and exit */
	int verbose;		/* -v, repeatable: debug logging (and -nv
				 * prints the effective configuration) */
	bool foreground;	/* -d: log to stderr without priorities */
};

/*
 * Parse the standard options; prog and default_conf are static strings.
 * Prints usage and exits(2) on a bad option, exits(0) on -h and on
 * --version (which prints "<prog> <version>"). Also sets up
 * logging: "<N>" priority prefixes when stderr goes to journald (and not
 * with -d), debug with -v.
 */
void daemon_parse_args(int argc, char **argv, const char *prog,
    const char *default_conf, struct daemon_opts *ret_opts);

/*
 * conf_defaults() then conf_load() of opts->conf_path into out. A missing
 * default file means defaults (logged); a missing -c file is an error.
 * With -n, prints "configuration OK" (and with -v the effective
 * configuration) to stdout and exits(0), or the error and exits(1).
 * Otherwise returns 0, or logs the error and returns it (negative errno).
 */
int daemon_load_conf(const struct conf_key *table, size_t n, void *out,
    const struct daemon_opts *opts);

/*
 * With -n (opts->check_only): print "configuration OK", with -v also the
 * effective configuration conf, and exit(0). Otherwise return. For a
 * program that checks more than daemon_load_conf() does (loading with
 * check_only cleared first).
 */
void daemon_check_done(const struct daemon_opts *opts,
    const struct conf_key *table, size_t n, const void *conf);

struct daemon_signals {
	uv_signal_t term;
	uv_signal_t intr;
	uv_signal_t hup;
	uv_timer_t watchdog;	/* WATCHDOG=1 every half WatchdogSec */
	bool watchdog_on;
	void (*stop_cb)(void *arg);
	void (*reload_cb)(void *arg);
	void *arg;
};

/*
 * Watch TERM and INT (stop_cb) and HUP (reload_cb, may be NULL) on loop.
 * The handles are unreferenced, so they alone do not keep the loop
 * running. Returns 0 or a negative errno.
 */
int daemon_signals_init(struct daemon_signals *s, uv_loop_t *loop,
    void (*stop_cb)(void *), void (*reload_cb)(void *), void *arg);

/*
 * Under a systemd watchdog ($WATCHDOG_USEC, for this process by
 * $WATCHDOG_PID), send WATCHDOG=1 from an (unreferenced) timer on loop
 * every half period: a loop that stops turning (stuck, SIGSTOP) stops the
 * pings and systemd restarts the service. A no-op without one. Call after
 * daemon_signals_init(); daemon_signals_close() stops it. In the notify
 * libraries (below). Returns 0 or a negative errno.
 */
int daemon_watchdog_start(struct daemon_signals *s, uv_loop_t *loop);

/* Close the handles (their close callbacks run on the loop). */
void daemon_signals_close(struct daemon_signals *s);

/* Tell systemd (Type=notify) we are ready, reloading, or stopping, and set
 * the status line; no-ops without $NOTIFY_SOCKET. A program links one of
 * the libraries mm_notify_systemd (libsystemd, the daemons) or
 * mm_notify_raw (mm-guest-agent) for them. */
void daemon_notify_ready(const char *status);
void daemon_notify_reloading(void);
void daemon_notify_stopping(void);
void daemon_notify_status(const char *status);
void daemon_notify_watchdog(void);

/*
 * A decision for the journal, at info: the message (fmt) and, when logging
 * goes to journald, the fields HOST_ID, VM_ID and REASON (NULL: left out)
 * beside it, so that "journalctl -o json HOST_ID=h1" finds it; else one
 * log line. In the notify libraries (notify_raw logs the line only).
 */
void daemon_journal_decision(const char *host_id, const char *vm_id,
    const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The watchdog period systemd asked of this process, in ms, from
 * $WATCHDOG_USEC and $WATCHDOG_PID; 0 when there is none. */
uint64_t daemon_watchdog_ms(void);

/*
 * The [log] section every daemon has: level = info or debug (-v forces
 * debug). type is the program's config struct, member an int field.
 */
extern const char *const daemon_log_levels[];
#define DAEMON_LOG_KEYS(type, member)					\
	{ "log", "level", CONF_ENUM, 0, 0, "info",			\
	  offsetof(type, member), daemon_log_levels,			\
	  "info, or debug (more lines; -v sets it too)" }
#define DAEMON_LOG_LIVE	"log.level"

/* Apply the [log] level (an index into daemon_log_levels) with opts' -v. */
void daemon_set_log_level(const struct daemon_opts *opts, int level);

/*
 * SIGHUP: re-read opts->conf_path with conf_reload() (conf.h), taking the
 * keys in live (NULL-terminated "section.key" names; include
 * DAEMON_LOG_LIVE and give log_level, the config's [log] level field, to
 * have it applied). Tells systemd RELOADING=1 and, after, READY=1 with
 * status. Returns the number of live keys changed, or a negative errno
 * when the file is bad (logged; nothing changed). In the notify libraries.
 */
int daemon_reload_conf(const struct daemon_opts *opts,
    const struct conf_key *table, size_t n, void *conf, size_t size,
    const char *const *live, const int *log_level, const char *status);

#endif
