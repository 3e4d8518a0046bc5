/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The host id of a host daemon (collector, actuator): the configured one or
 * the hostname, checked as a topology id. Apart from daemon.c so that
 * programs without a bus (mm-guest-agent) do not link the topology and,
 * through it, the AMQP client.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "topology.h"

void
daemon_host_id(char **id, const char *conf_path, const char *section)
{
	char host[256];

	if (*id == NULL) {
		if (gethostname(host, sizeof(host)) < 0)
			fatal("gethostname");
		host[sizeof(host) - 1] = '\0';
		*id = strdup(host);
		if (*id == NULL)
			fatal("strdup");
	}
	if (!topo_id_valid(*id)) {
		fprintf(stderr, "%s: [%s] host_id \"%s\" is not a valid id: "
		    "1..64 of [A-Za-z0-9_.-], no leading, trailing or double "
		    "dots\n", conf_path, section, *id);
		exit(1);
	}
}
