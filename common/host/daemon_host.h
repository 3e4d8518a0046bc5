/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The start of a per-host daemon (mm-collector, mm-actuator): its host id
 * and its hypervisor driver, on top of daemon.h.
 */
#ifndef MM_DAEMON_HOST_H
#define MM_DAEMON_HOST_H

#include <uv.h>

#include "bus_conf.h"
#include "daemon.h"

/*
 * The host id of section's host_id key: *id (malloc'd or NULL) is set to
 * the hostname when NULL, then checked with topo_id_valid(). An invalid
 * id is printed with conf_path and exits(1).
 */
void daemon_host_id(char **id, const char *conf_path, const char *section);

/*
 * The start of a per-host daemon: daemon_parse_args(), then the
 * configuration into conf (a load error exits 1 with -n, else is fatal),
 * daemon_host_id() on *host_id (a field of conf) with section,
 * bus_conf_daemon_check() on *bus (conf's [bus] section), the program's
 * own check (may be NULL: it returns 0, or -1 after printing why to stderr
 * with the file's path; then the program exits 1, with -n or not), and
 * daemon_check_done(): with -n, exits once the host id and the [bus]
 * section have been checked too.
 */
void daemon_host_conf(int argc, char **argv, const char *prog,
    const char *default_conf, const struct conf_key *table, size_t n,
    void *conf, char **host_id, struct bus_conf *bus, const char *section,
    int (*check)(const void *conf, const char *path),
    struct daemon_opts *ret_opts);

struct hv;
struct hv_config;

/* hv_new() and hv_start() for a per-host daemon: failure is fatal. */
struct hv *daemon_hv_start(uv_loop_t *loop, const struct hv_config *hc);

#endif
