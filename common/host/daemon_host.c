/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The host id of a host daemon (collector, actuator): the configured one or
 * the hostname, checked as a topology id. Apart from daemon.c so that
 * programs without a bus (mm-guest-agent) do not link the topology and,
 * through it, the AMQP client.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon_host.h"
#include "hv.h"
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

void
daemon_host_conf(int argc, char **argv, const char *prog,
    const char *default_conf, const struct conf_key *table, size_t n,
    void *conf, char **host_id, struct bus_conf *bus, const char *section,
    int (*check)(const void *conf, const char *path),
    struct daemon_opts *ret_opts)
{
	struct daemon_opts load;

	daemon_parse_args(argc, argv, prog, default_conf, ret_opts);
	load = *ret_opts;
	load.check_only = false;	/* -n waits for the host id check */
	if (daemon_load_conf(table, n, conf, &load) < 0) {
		if (ret_opts->check_only)
			exit(1);
		fatalx("cannot load the configuration");
	}
	daemon_host_id(host_id, ret_opts->conf_path, section);
	bus_conf_daemon_check(bus, ret_opts);
	if (check != NULL && check(conf, ret_opts->conf_path) < 0)
		exit(1);
	daemon_check_done(ret_opts, table, n, conf);
}

struct hv *
daemon_hv_start(uv_loop_t *loop, const struct hv_config *hc)
{
	struct hv *hv;
	int r;

	hv = hv_new(loop, hc);
	if (hv == NULL && errno == EINVAL && hc->qmp_ext != NULL)
		fatalx("%s driver: QMP socket extension \"%s\": 1..16 of "
		    "[A-Za-z0-9_-], not \"agent\" or \"pid\"",
		    hv_type_name(hc->type), hc->qmp_ext);
	if (hv == NULL)
		fatal("%s driver", hv_type_name(hc->type));
	r = hv_start(hv);
	if (r < 0)
		fatalx("%s driver: %s", hv_type_name(hc->type), strerror(-r));
	return hv;
}
