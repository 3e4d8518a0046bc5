/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The [bus] section every program that talks to the broker has in its
 * configuration: its conf_key entries and its translation to the
 * bus_config that bus_new() takes.
 */
#ifndef MM_BUS_CONF_H
#define MM_BUS_CONF_H

#include <stddef.h>
#include <stdint.h>

#include "bus.h"
#include "conf.h"

/* The [bus] section. */
struct bus_conf {
	char *url;		/* amqp://user:password@host:port/vhost */
	int64_t heartbeat_ms;
	int64_t prefetch;
	int64_t outbox;		/* messages kept while the broker is away */
};

/* The conf_key entries of the [bus] section, for a program's table:
 * type is its config struct, member its struct bus_conf field. */
#define BUS_CONF_KEYS(type, member)					\
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
void bus_conf_apply(const struct bus_conf *c, const char *app_id,
    struct bus_config *ret);

#endif
