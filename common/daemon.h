/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What every mm daemon does the same way: its command line (-c FILE, -n,
 * -v, -d), loading its configuration with a check mode, logging set up for
 * a terminal or journald, signals on the loop (TERM and INT stop, HUP
 * reloads), and readiness notification to systemd (its protocol, spoken
 * directly: mm does not link libsystemd).
 */
#ifndef MM_DAEMON_H
#define MM_DAEMON_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

#include "bus.h"
#include "conf.h"

/* The [bus] section every daemon's configuration has. */
struct daemon_bus_conf {
	char *url;		/* amqp://user:password@host:port/vhost */
	int64_t heartbeat_ms;
	int64_t prefetch;
	int64_t outbox;		/* messages kept while the broker is away */
};

/* The conf_key entries of the [bus] section, for a program's table:
 * type is its config struct, member its struct daemon_bus_conf field. */
#define DAEMON_BUS_KEYS(type, member)					\
	{ "bus", "url", CONF_STRING, 1, 1024,				\
	  "amqp://guest:guest@127.0.0.1:5672/mm",			\
	  offsetof(type, member.url), NULL,				\
	  "broker: amqp://user:password@host:port/vhost" },		\
	{ "bus", "heartbeat", CONF_DURATION_MS, 1000, 600000, "10s",	\
	  offsetof(type, member.heartbeat_ms), NULL,			\
	  "AMQP heartbeat; a silent broker is dropped after two" },	\
	{ "bus", "prefetch", CONF_INT, 1, 65535, "64",			\
	  offsetof(type, member.prefetch), NULL,			\
	  "unacknowledged deliveries per consumer" },			\
	{ "bus", "outbox", CONF_INT, 1, 1000000, "10000",		\
	  offsetof(type, member.outbox), NULL,				\
	  "messages kept for the broker while it is unreachable" }

/* Fill *ret (zeroed first) from c; strings are borrowed from c. */
void daemon_bus_config(const struct daemon_bus_conf *c, const char *app_id,
    struct bus_config *ret);

struct daemon_opts {
	const char *conf_path;	/* -c, or the program's default */
	bool conf_explicit;	/* -c was given: a missing file is an error */
	bool check_only;	/* -n: check the configuration and exit */
	int verbose;		/* -v, repeatable: debug logging (and -nv
				 * prints the effective configuration) */
	bool foreground;	/* -d: log to stderr without priorities */
};

/*
 * Parse the standard options; prog and default_conf are static strings.
 * Prints usage and exits(2) on a bad option, exits(0) on -h. Also sets up
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

/*
 * The host id of section's host_id key: *id (malloc'd or NULL) is set to
 * the hostname when NULL, then checked with topo_id_valid(). An invalid
 * id is printed with conf_path and exits(1).
 */
void daemon_host_id(char **id, const char *conf_path, const char *section);

/*
 * The start of a per-host daemon: daemon_parse_args(), then the
 * configuration into conf (a load error exits 1 with -n, else is fatal),
 * daemon_host_id() on *host_id (a field of conf) with section, and
 * daemon_check_done(): with -n, exits once the host id has been checked too.
 */
void daemon_host_conf(int argc, char **argv, const char *prog,
    const char *default_conf, const struct conf_key *table, size_t n,
    void *conf, char **host_id, const char *section,
    struct daemon_opts *ret_opts);

struct hv;
struct hv_config;

/* hv_new() and hv_start() for a per-host daemon: failure is fatal. */
struct hv *daemon_hv_start(uv_loop_t *loop, const struct hv_config *hc);

struct daemon_signals {
	uv_signal_t term;
	uv_signal_t intr;
	uv_signal_t hup;
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

/* Close the three handles (their close callbacks run on the loop). */
void daemon_signals_close(struct daemon_signals *s);

/* Tell systemd (Type=notify) we are ready, reloading, or stopping, and set
 * the status line; no-ops without $NOTIFY_SOCKET. A program links one of
 * the libraries mm_notify_systemd (libsystemd, the daemons) or
 * mm_notify_raw (mm-guest-agent) for them. */
void daemon_notify_ready(const char *status);
void daemon_notify_reloading(void);
void daemon_notify_stopping(void);
void daemon_notify_status(const char *status);

#endif
