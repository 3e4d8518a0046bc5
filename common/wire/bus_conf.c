/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The [bus] configuration section (bus_conf.h): its checks, with what
 * the operator should know, and its translation to a bus_config.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus_conf.h"
#include "log.h"

void
bus_conf_apply(const struct bus_conf *c, const char *app_id,
    struct bus_config *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->url = c->url;
	ret->password_file = c->password_file;
	ret->ca_file = c->ca_file;
	ret->cert_file = c->cert_file;
	ret->key_file = c->key_file;
	ret->no_verify_peer = !c->verify_peer;
	ret->no_verify_hostname = !c->verify_hostname;
	ret->app_id = app_id;
	ret->heartbeat_s = (unsigned)((c->heartbeat_ms + 999) / 1000);
	ret->prefetch = (unsigned)c->prefetch;
	ret->outbox_max = (size_t)c->outbox;
	ret->confirm_timeout_ms = (unsigned)c->confirm_timeout_ms;
}

static const char *
password_from(enum bus_password_from from)
{
	switch (from) {
	case BUS_PASSWORD_CREDENTIAL:
		return "the credential bus.password";
	case BUS_PASSWORD_FILE:
		return "password_file";
	case BUS_PASSWORD_GIVEN:
		return "the command line or environment";
	default:
		return "url";
	}
}

int
bus_conf_check_config(const struct bus_config *bc, char *err,
    size_t errlen)
{
	struct bus_check chk;
	int r;

	r = bus_config_check(bc, &chk);
	explicit_bzero(chk.password, sizeof(chk.password));
	if (r < 0) {
		snprintf(err, errlen, "[bus] %s", chk.err);
		return r;
	}
	if (chk.url_password_ignored)
		log_warnx("[bus] url has a password, ignored: the one from "
		    "%s is used; remove it from the url",
		    password_from(chk.password_from));
	if (chk.tls && bc->no_verify_peer)
		log_warnx("[bus] verify_peer = no: the broker's certificate "
		    "is not checked, anyone on the path can pose as the "
		    "broker");
	else if (chk.tls && bc->no_verify_hostname)
		log_warnx("[bus] verify_hostname = no: any certificate signed "
		    "by ca_file is accepted for the broker");
	else if (chk.tls && chk.host_is_ip)
		log_warnx("[bus] url's host is an IP address: the TLS client "
		    "matches only names in the broker's certificate, not IP "
		    "addresses; give the name the certificate is for");
	return 0;
}

int
bus_conf_check(const struct bus_conf *c, char *err, size_t errlen)
{
	struct bus_config bc;

	bus_conf_apply(c, NULL, &bc);
	return bus_conf_check_config(&bc, err, errlen);
}

void
bus_conf_daemon_check(struct bus_conf *c, const struct daemon_opts *opts)
{
	char err[640], shown[1024];
	char *url;

	if (bus_conf_check(c, err, sizeof(err)) < 0) {
		if (!opts->check_only)
			fatalx("%s: %s", opts->conf_path, err);
		fprintf(stderr, "%s: %s\n", opts->conf_path, err);
		exit(1);
	}
	if (!opts->check_only)
		return;
	url = strdup(bus_url_redact(c->url, shown, sizeof(shown)));
	if (url == NULL) {
		fprintf(stderr, "out of memory\n");
		exit(1);
	}
	explicit_bzero(c->url, strlen(c->url));
	free(c->url);
	c->url = url;
}
