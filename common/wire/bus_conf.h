/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The [bus] section every program that talks to the broker has in its
 * configuration: its conf_key entries, its checks (for -n and every
 * start), and its translation to the bus_config that bus_new() takes.
 */
#ifndef MM_BUS_CONF_H
#define MM_BUS_CONF_H

#include <stddef.h>
#include <stdint.h>

#include "bus.h"
#include "conf.h"
#include "daemon.h"

/* The [bus] section. */
struct bus_conf {
	char *url;		/* amqp[s]://user:password@host:port/vhost */
	char *password_file;	/* may be NULL, as the three below */
	char *ca_file;
	char *cert_file;
	char *key_file;
	bool verify_peer;
	bool verify_hostname;
	int64_t heartbeat_ms;
	int64_t prefetch;
	int64_t outbox;		/* messages kept while the broker is away */
	int64_t confirm_timeout_ms;
};

/* The conf_key entries of the [bus] section, for a program's table:
 * type is its config struct, member its struct bus_conf field. */
#define BUS_CONF_KEYS(type, member)					\
	{ "bus", "url", CONF_STRING, 1, 1024,				\
	  "amqp://guest:guest@127.0.0.1:5672/mm",			\
	  offsetof(type, member.url), NULL,				\
	  "broker: amqp[s]://user[:password]@host[:port]/vhost" },	\
	{ "bus", "password_file", CONF_STRING, 1, 4096, NULL,		\
	  offsetof(type, member.password_file), NULL,			\
	  "the password, first line (not readable by others); "	\
	  "replaces the URL's unless empty" },				\
	{ "bus", "ca_file", CONF_STRING, 1, 4096, NULL,		\
	  offsetof(type, member.ca_file), NULL,				\
	  "amqps: PEM CA certificates the broker's is checked against" },\
	{ "bus", "cert_file", CONF_STRING, 1, 4096, NULL,		\
	  offsetof(type, member.cert_file), NULL,			\
	  "amqps: this client's PEM certificate (with key_file)" },	\
	{ "bus", "key_file", CONF_STRING, 1, 4096, NULL,		\
	  offsetof(type, member.key_file), NULL,			\
	  "amqps: the PEM private key of cert_file" },			\
	{ "bus", "verify_peer", CONF_BOOL, 0, 0, "yes",		\
	  offsetof(type, member.verify_peer), NULL,			\
	  "amqps: check the broker's certificate against ca_file" },	\
	{ "bus", "verify_hostname", CONF_BOOL, 0, 0, "yes",		\
	  offsetof(type, member.verify_hostname), NULL,		\
	  "amqps: check the certificate is for the URL's host" },	\
	{ "bus", "heartbeat", CONF_DURATION_MS, 1000, 600000, "10s",	\
	  offsetof(type, member.heartbeat_ms), NULL,			\
	  "AMQP heartbeat; a silent broker is dropped after two" },	\
	{ "bus", "prefetch", CONF_INT, 1, 65535, "64",			\
	  offsetof(type, member.prefetch), NULL,			\
	  "unacknowledged deliveries per consumer" },			\
	{ "bus", "outbox", CONF_INT, 1, 1000000, "10000",		\
	  offsetof(type, member.outbox), NULL,				\
	  "messages kept for the broker while it is unreachable" },	\
	{ "bus", "confirm_timeout", CONF_DURATION_MS, 500, 600000, "5s", \
	  offsetof(type, member.confirm_timeout_ms), NULL,		\
	  "a publish unconfirmed this long drops the connection; "	\
	  "it is sent again on a new one" }

/* Fill *ret (zeroed first) from c; strings are borrowed from c. */
void bus_conf_apply(const struct bus_conf *c, const char *app_id,
    struct bus_config *ret);

/*
 * bus_config_check() of c as bus_conf_apply() gives it to bus_new():
 * returns 0, logging warnings (log_warnx: a URL password another source
 * replaces, amqps:// without verification), or a negative errno with a
 * message in err (errlen bytes) that starts "[bus] <key>". No password
 * is kept or printed.
 */
int bus_conf_check(const struct bus_conf *c, char *err, size_t errlen);

/* The same for a bus_config built otherwise (mmctl's, with a password
 * from its command line or environment). */
int bus_conf_check_config(const struct bus_config *bc, char *err,
    size_t errlen);

/*
 * What a daemon does with its [bus] section after daemon_load_conf()
 * (loaded with check_only cleared) and before daemon_check_done():
 * bus_conf_check(); an error is printed to stderr with opts->conf_path and
 * exits 1 (with -n, as at a start). With -n, c->url is then replaced by
 * its redacted form, so that -nv prints no password (c no longer
 * connects: the program exits after printing).
 */
void bus_conf_daemon_check(struct bus_conf *c,
    const struct daemon_opts *opts);

#endif
