/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mmctl: the operator's tool. Fleet status, a live view, policy updates,
 * events, and an offline replay of the policy engine over a trace. The
 * broker comes from --broker, $MM_AMQP_URL or /etc/mm/mmctl.conf, in that
 * order, its password from --password-file, $MM_BROKER_PASSWORD, the
 * file's [bus] password_file or the URL, and its TLS files from the file.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "bus_conf.h"
#include "daemon.h"
#include "log.h"
#include "mmctl.h"
#include "topology.h"
#include "version.h"

struct mmctl_conf {
	struct bus_conf bus;
};

static const struct conf_key conf_table[] = {
	BUS_CONF_KEYS(struct mmctl_conf, bus),
};
#define CONF_N	(sizeof(conf_table) / sizeof(conf_table[0]))

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: mmctl [--broker URL] [--password-file FILE] [-c FILE] "
	    "COMMAND [ARGS]\n"
	    "       mmctl --version\n"
	    "\n"
	    "  status [--json] [--host H] [-v]   the fleet: hosts, VMs, and "
	    "counters\n"
	    "  top [--interval 1s] [--once [--json]]\n"
	    "                                the same, refreshed live\n"
	    "  policy apply FILE [--reset]   check, publish, and wait for "
	    "the schedulers\n"
	    "  policy show [--json]          the policy in force\n"
	    "  events [--follow] [--host H] [--kind decision|result|alert]\n"
	    "      [--since 1h] [--json]     the recent events, then with "
	    "--follow new ones\n"
	    "  sim --trace FILE --policy NAME|all [--capacity-kib N | "
	    "--find-capacity]\n"
	    "      [--max-shortfall PCT] [--json] [--reporting] "
	    "[--cold SHARE]\n"
	    "                                replay a trace offline\n"
	    "\n"
	    "The broker: --broker, else $MM_AMQP_URL, else [bus] url in "
	    "/etc/mm/mmctl.conf\n"
	    "(whose [bus] TLS keys apply to all three). Its password: "
	    "--password-file,\n"
	    "else $MM_BROKER_PASSWORD, else [bus] password_file, else the "
	    "URL's.\n");
}

const char *
fmt_kib(char *buf, size_t size, uint64_t kib)
{
	if (kib >= 1024ull * 1024 * 10)
		snprintf(buf, size, "%.1f GiB", (double)kib / 1048576.0);
	else
		snprintf(buf, size, "%llu MiB", (unsigned long long)(kib /
		    1024));
	return buf;
}

static void
state_cb(struct bus *bus, bool up, const char *reason, void *arg)
{
	struct session *s = arg;

	s->up = up;
	if (!up) {
		s->failed = true;
		snprintf(s->reason, sizeof(s->reason), "%s", reason);
	}
}

static void
sigint_cb(uv_signal_t *h, int sig)
{
	struct session *s = h->data;

	s->status = 130;
	s->done = true;
}

static void
deadline_cb(uv_timer_t *t)
{
	struct session *s = t->data;

	s->status = 3;
	s->done = true;
}

enum bus_disposition
session_dispatch_cb(struct bus *bus, const struct bus_delivery *d, void *arg)
{
	struct session *s = arg;

	return msg_dispatch(&s->handler, 1, d, s->arg, NULL, NULL, 0);
}

void
session_init(struct session *s, const struct bus_config *broker,
    enum msg_type t, msg_handler_cb fn, void *arg)
{
	struct bus_config bc = *broker;
	char host[64] = "local";

	memset(s, 0, sizeof(*s));
	s->arg = arg;
	s->handler.type = t;
	s->handler.fn = fn;
	uv_loop_init(&s->loop);
	bc.app_id = "mmctl";
	bc.state_cb = state_cb;
	bc.state_arg = s;
	bc.reconnect_min_ms = 500;
	bc.reconnect_max_ms = 2000;
	bc.connect_timeout_ms = 5000;
	/* The event history comes as fast as acks let it: an hour of a
	 * large fleet is hundreds of thousands. */
	bc.prefetch = 2000;
	s->bus = bus_new(&s->loop, &bc);
	if (s->bus == NULL) {
		char shown[512];

		/* main() checked the configuration: little is left. */
		fprintf(stderr, "mmctl: broker \"%s\": %s\n",
		    bus_url_redact(broker->url, shown, sizeof(shown)),
		    strerror(errno));
		exit(1);
	}
	gethostname(host, sizeof(host) - 1);
	for (char *c = host; *c != '\0'; c++)
		if (*c == '.')
			*c = '-';
	snprintf(s->unique, sizeof(s->unique), "%.40s.%d", host,
	    (int)getpid());
	uv_signal_init(&s->loop, &s->sigint);
	s->sigint.data = s;
	uv_signal_start(&s->sigint, sigint_cb, SIGINT);
	uv_timer_init(&s->loop, &s->deadline);
	s->deadline.data = s;
}

int
session_connect(struct session *s)
{
	uint64_t deadline;

	bus_start(s->bus);
	uv_update_time(&s->loop);
	deadline = uv_now(&s->loop) + 10000;
	while (!s->up && !s->done && uv_now(&s->loop) < deadline) {
		uv_run(&s->loop, UV_RUN_ONCE);
		uv_update_time(&s->loop);
		/* Retrying will not help: wrong credentials, or a queue
		 * this session reads does not exist. */
		if (s->failed && !s->up && (strstr(s->reason, "ACCESS") !=
		    NULL || strstr(s->reason, "NOT_FOUND") != NULL))
			break;
	}
	if (!s->up && strstr(s->reason, "NOT_FOUND") != NULL)
		return -ENOENT;
	if (!s->up) {
		fprintf(stderr, "mmctl: cannot reach the broker: %s\n",
		    s->reason[0] ? s->reason : "no answer within 10 s");
		exit(1);
	}
	return 0;
}

int
session_open(struct session *s, const struct bus_config *broker,
    const char *const *bind_events, enum msg_type t, msg_handler_cb fn,
    void *arg)
{
	const struct bus_queue_opts q = {
		.exclusive = true,
		.auto_delete = true,
		.max_length = 100000,
	};

	session_init(s, broker, t, fn, arg);
	snprintf(s->reply_queue, sizeof(s->reply_queue), "%s%s",
	    TOPO_Q_MMCTL_PREFIX, s->unique);
	topo_declare_events_exchange(s->bus);
	topo_declare_control_exchange(s->bus);
	topo_declare_policy_exchange(s->bus);
	bus_declare_queue(s->bus, s->reply_queue, &q);
	for (size_t i = 0; bind_events != NULL && bind_events[i] != NULL; i++)
		bus_bind(s->bus, s->reply_queue, TOPO_EX_EVENTS, bind_events[i]);
	bus_consume(s->bus, s->reply_queue, false, session_dispatch_cb, s);
	if (session_connect(s) < 0) {
		fprintf(stderr, "mmctl: cannot reach the broker: %s\n",
		    s->reason);
		exit(1);
	}
	return 0;
}

int
session_run(struct session *s, unsigned timeout_ms)
{
	/* Repeating, so that a caller may push it back with
	 * uv_timer_again() while progress is made. */
	if (timeout_ms > 0)
		uv_timer_start(&s->deadline, deadline_cb, timeout_ms,
		    timeout_ms);
	while (!s->done)
		uv_run(&s->loop, UV_RUN_ONCE);
	uv_timer_stop(&s->deadline);
	return s->status;
}

void
session_close(struct session *s)
{
	uv_close((uv_handle_t *)&s->sigint, NULL);
	uv_close((uv_handle_t *)&s->deadline, NULL);
	bus_close(s->bus, 2000, NULL, NULL);
	uv_run(&s->loop, UV_RUN_DEFAULT);
	uv_loop_close(&s->loop);
}

static const char *
nonempty_env(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && *v != '\0' ? v : NULL;
}

/*
 * The broker into *ret (strings borrowed from c, the arguments and the
 * environment): [bus] of the configuration file (when -c names one, or the
 * default exists; with a URL from elsewhere, a default file this user
 * cannot read is skipped), its url replaced by --broker or $MM_AMQP_URL,
 * its password by --password-file or $MM_BROKER_PASSWORD. Checked as a
 * daemon's -n checks its own: a bad one exits 1.
 */
static void
broker_config(const char *flag_url, const char *password_file,
    const char *conf_path, bool conf_explicit, struct mmctl_conf *c,
    struct bus_config *ret)
{
	const char *env_url = nonempty_env("MM_AMQP_URL");
	char err[640], shown[4096];

	if (conf_defaults(conf_table, CONF_N, c) < 0) {
		fprintf(stderr, "mmctl: out of memory\n");
		exit(1);
	}
	if ((conf_explicit || access(conf_path, flag_url != NULL ||
	    env_url != NULL ? R_OK : F_OK) == 0) &&
	    conf_load(conf_table, CONF_N, c, conf_path, err, sizeof(err)) < 0) {
		fprintf(stderr, "mmctl: %s\n", err);
		exit(1);
	}
	bus_conf_apply(&c->bus, "mmctl", ret);
	if (flag_url != NULL)
		ret->url = flag_url;
	else if (env_url != NULL)
		ret->url = env_url;
	if (password_file != NULL)
		ret->password_file = password_file;
	else
		ret->password = nonempty_env("MM_BROKER_PASSWORD");
	if (flag_url != NULL && strcmp(bus_url_redact(flag_url, shown,
	    sizeof(shown)), flag_url) != 0)
		log_warnx("--broker: the URL's password is visible to every "
		    "user of this machine in the process list; use "
		    "--password-file or $MM_BROKER_PASSWORD");
	if (bus_conf_check_config(ret, err, sizeof(err)) < 0) {
		fprintf(stderr, "mmctl: %s\n", err);
		exit(1);
	}
}

int
main(int argc, char **argv)
{
	const char *flag_url = NULL, *conf_path = "/etc/mm/mmctl.conf";
	const char *password_file = NULL;
	struct mmctl_conf c = { 0 };
	struct bus_config broker;
	bool conf_explicit = false;
	int i, r;

	log_init("mmctl", 0, false);
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--broker") == 0 && i + 1 < argc) {
			flag_url = argv[++i];
		} else if (strcmp(argv[i], "--password-file") == 0 &&
		    i + 1 < argc) {
			password_file = argv[++i];
		} else if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
			conf_path = argv[++i];
			conf_explicit = true;
		} else if (strcmp(argv[i], "-h") == 0 ||
		    strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "--version") == 0) {
			version_print_exit("mmctl");
		} else {
			fprintf(stderr, "mmctl: unknown option \"%s\"\n",
			    argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (i == argc) {
		usage(stderr);
		return 2;
	}
	/* The replay needs no broker. */
	if (strcmp(argv[i], "sim") == 0)
		return cmd_sim(argc - i, argv + i);
	broker_config(flag_url, password_file, conf_path, conf_explicit, &c,
	    &broker);
	if (strcmp(argv[i], "status") == 0)
		r = cmd_status(&broker, argc - i, argv + i);
	else if (strcmp(argv[i], "top") == 0)
		r = cmd_top(&broker, argc - i, argv + i);
	else if (strcmp(argv[i], "policy") == 0)
		r = cmd_policy(&broker, argc - i, argv + i);
	else if (strcmp(argv[i], "events") == 0)
		r = cmd_events(&broker, argc - i, argv + i);
	else {
		fprintf(stderr, "mmctl: unknown command \"%s\"\n", argv[i]);
		usage(stderr);
		r = 2;
	}
	conf_free(conf_table, CONF_N, &c);
	return r;
}
