/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The shared daemon scaffolding; see daemon.h. Options follow OpenBSD's
 * daemons: -n checks the configuration, -nv also prints it, -d stays in
 * the foreground with plain logs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "version.h"

const char *const daemon_log_levels[] = { "info", "debug", NULL };

static void
usage(const char *prog, const char *default_conf, FILE *f)
{
	fprintf(f, "usage: %s [-dnv] [-c file]\n"
	    "       %s --version\n"
	    "  -c file  configuration file (default %s)\n"
	    "  -d       stay in the foreground, plain log lines on stderr\n"
	    "  -n       check the configuration and exit (-nv: also print it)\n"
	    "  -v       verbose: debug logging\n", prog, prog, default_conf);
}

void
daemon_parse_args(int argc, char **argv, const char *prog,
    const char *default_conf, struct daemon_opts *ret_opts)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct daemon_opts o = { .prog = prog, .conf_path = default_conf };
	int c;

	while ((c = getopt_long(argc, argv, "c:dhnv", longopts, NULL)) != -1) {
		switch (c) {
		case 'V':
			version_print_exit(prog);
		case 'c':
			o.conf_path = optarg;
			o.conf_explicit = true;
			break;
		case 'd':
			o.foreground = true;
			break;
		case 'n':
			o.check_only = true;
			break;
		case 'v':
			o.verbose++;
			break;
		case 'h':
			usage(prog, default_conf, stdout);
			exit(0);
		default:
			usage(prog, default_conf, stderr);
			exit(2);
		}
	}
	if (optind != argc) {
		fprintf(stderr, "%s: unexpected argument \"%s\"\n", prog,
		    argv[optind]);
		usage(prog, default_conf, stderr);
		exit(2);
	}
	/* journald sets JOURNAL_STREAM for the services it logs. */
	log_init(prog, o.verbose, !o.foreground &&
	    getenv("JOURNAL_STREAM") != NULL);
	*ret_opts = o;
}

int
daemon_load_conf(const struct conf_key *table, size_t n, void *out,
    const struct daemon_opts *opts)
{
	char err[512];
	int r;

	r = conf_defaults(table, n, out);
	if (r < 0) {
		snprintf(err, sizeof(err), "built-in defaults are invalid");
		goto fail;
	}
	if (!opts->conf_explicit && access(opts->conf_path, F_OK) < 0 &&
	    errno == ENOENT) {
		log_info("no \"%s\", using defaults", opts->conf_path);
	} else {
		r = conf_load(table, n, out, opts->conf_path, err,
		    sizeof(err));
		if (r < 0)
			goto fail;
	}
	daemon_check_done(opts, table, n, out);
	return 0;
fail:
	if (opts->check_only) {
		fprintf(stderr, "%s\n", err);
		exit(1);
	}
	log_warnx("%s", err);
	return r;
}

void
daemon_set_log_level(const struct daemon_opts *opts, int level)
{
	log_init(opts->prog, opts->verbose > 0 ? opts->verbose : level,
	    !opts->foreground && getenv("JOURNAL_STREAM") != NULL);
}

uint64_t
daemon_watchdog_ms(void)
{
	const char *usec = getenv("WATCHDOG_USEC");
	const char *pid = getenv("WATCHDOG_PID");
	unsigned long long v;
	char *end;

	if (usec == NULL)
		return 0;
	if (pid != NULL) {
		errno = 0;
		v = strtoull(pid, &end, 10);
		if (errno != 0 || *end != '\0' || v != (unsigned long long)getpid())
			return 0;
	}
	errno = 0;
	v = strtoull(usec, &end, 10);
	if (errno != 0 || *end != '\0' || v == 0)
		return 0;
	return v / 1000 > 0 ? v / 1000 : 1;
}

static void
signal_cb(uv_signal_t *h, int signum)
{
	struct daemon_signals *s = h->data;

	if (signum == SIGHUP) {
		if (s->reload_cb != NULL)
			s->reload_cb(s->arg);
	} else if (s->stop_cb != NULL) {
		s->stop_cb(s->arg);
	}
}

int
daemon_signals_init(struct daemon_signals *s, uv_loop_t *loop,
    void (*stop_cb)(void *), void (*reload_cb)(void *), void *arg)
{
	uv_signal_t *hs[] = { &s->term, &s->intr, &s->hup };
	const int sigs[] = { SIGTERM, SIGINT, SIGHUP };

	s->stop_cb = stop_cb;
	s->reload_cb = reload_cb;
	s->arg = arg;
	for (int i = 0; i < 3; i++) {
		int r = uv_signal_init(loop, hs[i]);

		if (r == 0)
			r = uv_signal_start(hs[i], signal_cb, sigs[i]);
		if (r < 0)
			return r;
		hs[i]->data = s;
		uv_unref((uv_handle_t *)hs[i]);
	}
	s->watchdog_on = false;
	return 0;
}

void
daemon_signals_close(struct daemon_signals *s)
{
	uv_close((uv_handle_t *)&s->term, NULL);
	uv_close((uv_handle_t *)&s->intr, NULL);
	uv_close((uv_handle_t *)&s->hup, NULL);
	if (s->watchdog_on)
		uv_close((uv_handle_t *)&s->watchdog, NULL);
	s->watchdog_on = false;
}

void
daemon_check_done(const struct daemon_opts *opts,
    const struct conf_key *table, size_t n, const void *conf)
{
	if (!opts->check_only)
		return;
	printf("configuration OK\n");
	if (opts->verbose > 0)
		conf_print(table, n, conf, stdout);
	exit(0);
}
