/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TLS to a real RabbitMQ ($MM_TEST_AMQPS_URL, with the CA and client
 * certificate scripts/rabbitmq.sh makes): messages go through over
 * amqps:// with a client certificate; a broker certificate from another CA,
 * or for another host name, is refused with a reason that says so; a
 * daemon's -n refuses a TLS configuration it could not connect with; and
 * the password, from a file, appears neither in -nv nor in a running
 * daemon's log, which connects with it over TLS; mmctl connects over TLS
 * with its password from a file or the environment and prints none.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "bus.h"
#include "testutil.h"

static const char *amqps_url, *ca, *cert, *key;
static int tls_port;
static char user[64], secret[64];

struct conn_state {
	bool up;
	bool failed;
	char reason[512];
};

/* Run a shell command; aborts the test when it fails. */
static void
sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
sh(const char *fmt, ...)
{
	char *cmd;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&cmd, fmt, ap);
	va_end(ap);
	assert_true(r > 0);
	r = system(cmd);
	if (r != 0)
		fail_msg("\"%s\" failed (%d)", cmd, r);
	free(cmd);
}

/* The output (stdout and stderr) and exit status of a shell command. */
static int
run(char *out, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
run(char *out, size_t size, const char *fmt, ...)
{
	char *cmd;
	va_list ap;
	size_t n;
	FILE *p;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&cmd, fmt, ap);
	va_end(ap);
	assert_true(r > 0);
	p = popen(cmd, "r");
	assert_non_null(p);
	n = fread(out, 1, size - 1, p);
	out[n] = '\0';
	r = pclose(p);
	free(cmd);
	return WIFEXITED(r) ? WEXITSTATUS(r) : -1;
}

static const char *
mgmt_url(void)
{
	const char *m = getenv("MM_TEST_MGMT_URL");

	return m != NULL && *m != '\0' ? m : "http://127.0.0.1:15672";
}

/* A broker user of the test's own, whose password is a secret nothing
 * else contains (guest's is its name). */
static int
setup(void **state)
{
	amqps_url = getenv("MM_TEST_AMQPS_URL");
	ca = getenv("MM_TEST_TLS_CA");
	cert = getenv("MM_TEST_TLS_CERT");
	key = getenv("MM_TEST_TLS_KEY");
	if (amqps_url == NULL || *amqps_url == '\0' || ca == NULL ||
	    cert == NULL || key == NULL) {
		fprintf(stderr, "skipped: MM_TEST_AMQPS_URL, MM_TEST_TLS_CA, "
		    "MM_TEST_TLS_CERT or MM_TEST_TLS_KEY is not set; start "
		    "the broker with MM_RABBITMQ_TLS_PORT set and eval "
		    "\"$(scripts/rabbitmq.sh env)\"\n");
		exit(TU_SKIP);
	}
	{
		const char *p = strrchr(amqps_url, ':');

		assert_non_null(p);
		tls_port = atoi(p + 1);
		assert_true(tls_port > 0);
	}
	snprintf(user, sizeof(user), "mm-tls-%d", (int)getpid());
	snprintf(secret, sizeof(secret), "Zq%dx%ldSecret", (int)getpid(),
	    (long)time(NULL));
	sh("curl -fsS -o /dev/null -u guest:guest -X PUT -H "
	    "'content-type: application/json' -d '{\"password\":\"%s\","
	    "\"tags\":\"\"}' '%s/api/users/%s'", secret, mgmt_url(), user);
	sh("curl -fsS -o /dev/null -u guest:guest -X PUT -H "
	    "'content-type: application/json' -d '{\"configure\":\".*\","
	    "\"write\":\".*\",\"read\":\".*\"}' '%s/api/permissions/mm/%s'",
	    mgmt_url(), user);
	return 0;
}

static int
teardown(void **state)
{
	sh("curl -fsS -o /dev/null -u guest:guest -X DELETE '%s/api/users/%s'",
	    mgmt_url(), user);
	return 0;
}

static void
state_cb(struct bus *bus, bool up, const char *reason, void *arg)
{
	struct conn_state *cs = arg;

	cs->up = up;
	if (!up) {
		cs->failed = true;
		snprintf(cs->reason, sizeof(cs->reason), "%s", reason);
	}
}

/* Connect with cfg and wait until up (or, with !want_up, the first
 * failure). Returns the bus, open. */
static struct bus *
connect_bus(uv_loop_t *loop, struct bus_config *cfg, struct conn_state *cs,
    bool want_up)
{
	struct bus *bus;

	cfg->app_id = "test-tls";
	cfg->state_cb = state_cb;
	cfg->state_arg = cs;
	cfg->reconnect_min_ms = 200;
	cfg->reconnect_max_ms = 1000;
	bus = bus_new(loop, cfg);
	assert_non_null(bus);
	assert_int_equal(bus_start(bus), 0);
	assert_true(tu_run_until(loop, want_up ? &cs->up : &cs->failed,
	    10000));
	if (want_up)
		assert_false(cs->failed);
	return bus;
}

static enum bus_disposition
rx_cb(struct bus *bus, const struct bus_delivery *d, void *arg)
{
	if (d->len == 5 && memcmp(d->body, "hello", 5) == 0)
		*(bool *)arg = true;
	return BUS_ACK;
}

static void
confirm_cb(struct bus *bus, int status, void *arg)
{
	if (status == 0)
		*(bool *)arg = true;
}

/* A message goes through over TLS, with the client's certificate. */
static void
test_tls_publish_consume(void **state)
{
	struct bus_config cfg = {
		.url = amqps_url,
		.ca_file = ca,
		.cert_file = cert,
		.key_file = key,
	};
	struct conn_state cs = { 0 };
	const struct bus_queue_opts q = { .auto_delete = true };
	char *queue = tu_unique("mm.test.tls");
	char *ex = tu_unique("mm.test.tlsex");
	bool got = false, confirmed = false;
	uv_loop_t loop;
	struct bus *bus;
	struct bus_msg m = {
		.routing_key = "k",
		.body = "hello",
		.len = 5,
	};

	uv_loop_init(&loop);
	cfg.app_id = "test-tls";
	cfg.state_cb = state_cb;
	cfg.state_arg = &cs;
	bus = bus_new(&loop, &cfg);
	assert_non_null(bus);
	assert_int_equal(bus_declare_exchange(bus, ex, "direct", 0), 0);
	assert_int_equal(bus_declare_queue(bus, queue, &q), 0);
	assert_int_equal(bus_bind(bus, queue, ex, "k"), 0);
	assert_int_equal(bus_consume(bus, queue, false, rx_cb, &got), 0);
	assert_int_equal(bus_start(bus), 0);
	m.exchange = ex;
	assert_int_equal(bus_publish(bus, &m, confirm_cb, &confirmed), 0);
	assert_true(tu_run_until(&loop, &got, 10000));
	assert_true(tu_run_until(&loop, &confirmed, 5000));
	assert_false(cs.failed);
	bus_close(bus, 0, NULL, NULL);
	assert_int_equal(tu_loop_finish(&loop), 0);
	free(queue);
	free(ex);
}

/* A CA that did not sign the broker's certificate: refused, saying so. */
static void
test_tls_wrong_ca_refused(void **state)
{
	char *dir = tu_tmpdir(), other_ca[4200];
	struct bus_config cfg = { .url = amqps_url, .ca_file = other_ca };
	struct conn_state cs = { 0 };
	uv_loop_t loop;
	struct bus *bus;

	snprintf(other_ca, sizeof(other_ca), "%s/other-ca.pem", dir);
	sh("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "
	    "'/CN=not the mm test CA' -keyout '%s/other-ca.key' -out '%s' "
	    ">/dev/null 2>&1", dir, other_ca);
	uv_loop_init(&loop);
	bus = connect_bus(&loop, &cfg, &cs, false);
	print_message("wrong CA: %s\n", cs.reason);
	assert_false(cs.up);
	assert_non_null(strstr(cs.reason, "certificate failed verification "
	    "against ca_file"));
	/* And it stays down: a retry does not get through either. */
	tu_run_for(&loop, 1500);
	assert_false(cs.up);
	bus_close(bus, 0, NULL, NULL);

	/* Without verification it connects (what verify_peer = no means). */
	memset(&cs, 0, sizeof(cs));
	cfg.no_verify_peer = true;
	bus = connect_bus(&loop, &cfg, &cs, true);
	bus_close(bus, 0, NULL, NULL);
	assert_int_equal(tu_loop_finish(&loop), 0);
	tu_rmtree(dir);
	free(dir);
}

/* amqps_url with its host replaced, in a static buffer. */
static const char *
url_with_host(const char *host)
{
	static char buf[512];
	const char *at = strrchr(amqps_url, '@');
	const char *colon = strrchr(amqps_url, ':');

	assert_non_null(at);
	snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(at + 1 - amqps_url),
	    amqps_url, host, colon);
	return buf;
}

/* The certificate is for localhost (and 127.0.0.1); another name of this
 * machine is refused as a host-name mismatch. */
static void
test_tls_hostname_checked(void **state)
{
	struct bus_config cfg = { .ca_file = ca };
	struct conn_state cs = { 0 };
	struct addrinfo hints = { .ai_family = AF_INET }, *ai = NULL;
	char host[256];
	uv_loop_t loop;
	struct bus *bus;

	uv_loop_init(&loop);
	cfg.url = url_with_host("localhost");
	bus = connect_bus(&loop, &cfg, &cs, true);
	bus_close(bus, 0, NULL, NULL);

	/* librabbitmq-c 0.11 matches names only, not the certificate's IP
	 * entries (bus_conf_check() warns of an IP in the URL). */
	memset(&cs, 0, sizeof(cs));
	cfg.url = url_with_host("127.0.0.1");
	bus = connect_bus(&loop, &cfg, &cs, false);
	assert_non_null(strstr(cs.reason, "not for this host name"));
	bus_close(bus, 0, NULL, NULL);

	if (gethostname(host, sizeof(host)) < 0 ||
	    getaddrinfo(host, NULL, &hints, &ai) != 0 ||
	    ((struct sockaddr_in *)ai->ai_addr)->sin_addr.s_addr !=
	    htonl(0x7f000001) || strcmp(host, "localhost") == 0) {
		print_message("skipped the mismatch: this host's name \"%s\" "
		    "is not another name of 127.0.0.1\n", host);
	} else {
		memset(&cs, 0, sizeof(cs));
		cfg.url = url_with_host(host);
		bus = connect_bus(&loop, &cfg, &cs, false);
		print_message("host \"%s\": %s\n", host, cs.reason);
		assert_non_null(strstr(cs.reason, "not for this host name"));
		bus_close(bus, 0, NULL, NULL);
		memset(&cs, 0, sizeof(cs));
		cfg.no_verify_hostname = true;
		bus = connect_bus(&loop, &cfg, &cs, true);
		bus_close(bus, 0, NULL, NULL);
	}
	if (ai != NULL)
		freeaddrinfo(ai);
	assert_int_equal(tu_loop_finish(&loop), 0);
}

/* A daemon's -n refuses what it could not connect with, naming the key. */
static void
test_tls_daemon_check_refuses(void **state)
{
	static const struct {
		const char *bus;	/* [bus] lines after url */
		const char *url;
		const char *says;
	} cases[] = {
		{ "", "amqps://mm@localhost/mm", "ca_file is not set" },
		{ "ca_file = /nonexistent/ca.pem\n", "amqps://mm@localhost/mm",
		  "[bus] ca_file \"/nonexistent/ca.pem\": cannot read" },
		{ "ca_file = %CA%\n", "amqp://mm@localhost/mm",
		  "is not amqps://" },
		{ "ca_file = %CA%\ncert_file = %CA%\n", "amqps://mm@localhost/mm",
		  "cert_file is set without key_file" },
		{ "", "https://mm@localhost/mm", "not an amqp:// or amqps://" },
	};
	char *dir = tu_tmpdir(), *bin = tu_bin_path("mm-collector");
	char out[8192], conf[2048], bus[512];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *p;
		char *path;

		/* %CA% stands for the real CA file (twice at most). */
		snprintf(bus, sizeof(bus), "%s", cases[i].bus);
		while ((p = strstr(bus, "%CA%")) != NULL) {
			char rest[512];

			snprintf(rest, sizeof(rest), "%s", p + 4);
			snprintf(bus + (p - bus), sizeof(bus) - (size_t)(p - bus),
			    "%s%s", ca, rest);
		}
		snprintf(conf, sizeof(conf), "[collector]\nhost_id = h1\n"
		    "driver = sim\n[bus]\nurl = %s\n%s", cases[i].url, bus);
		path = tu_write_file(dir, "collector.conf", conf);
		assert_int_equal(run(out, sizeof(out), "'%s' -n -c '%s' 2>&1",
		    bin, path), 1);
		if (strstr(out, cases[i].says) == NULL)
			fail_msg("case %zu: \"%s\" lacks \"%s\"", i, out,
			    cases[i].says);
		free(path);
	}
	tu_rmtree(dir);
	free(dir);
	free(bin);
}

/* Whether the broker has a TLS connection of user. */
static bool
user_connected_tls(void)
{
	const char *json = tu_mgmt_get("/api/connections?columns=user,ssl");
	char want[128];

	snprintf(want, sizeof(want), "\"ssl\":true,\"user\":\"%s\"", user);
	return strstr(json, want) != NULL;
}

static bool
file_has(const char *path, const char *needle)
{
	char buf[1 << 16];
	size_t n;
	FILE *f = fopen(path, "r");

	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return strstr(buf, needle) != NULL;
}

/*
 * The password from a file: -nv shows none (not even the one in the URL,
 * which it says is ignored), and mm-scheduler connects over TLS with it
 * while its log never contains it.
 */
static void
test_tls_password_never_shown(void **state)
{
	char *dir = tu_tmpdir(), *bin = tu_bin_path("mm-scheduler");
	char *pw, *conf, *log, text[4096], out[16384];
	int pid, fd;

	snprintf(text, sizeof(text), "%s\n", secret);
	pw = tu_write_file(dir, "bus.password", text);
	assert_int_equal(chmod(pw, 0600), 0);
	/* The URL's password is the secret too: -nv must hide it as well. */
	snprintf(text, sizeof(text),
	    "[scheduler]\nid = tls-test\nstate_file = %s/policy\n"
	    "[bus]\nurl = amqps://%s:%s@localhost:%d/mm\n"
	    "password_file = %s\nca_file = %s\ncert_file = %s\n"
	    "key_file = %s\n", dir, user, secret, tls_port, pw, ca, cert, key);
	conf = tu_write_file(dir, "scheduler.conf", text);

	assert_int_equal(run(out, sizeof(out), "'%s' -nv -c '%s' 2>&1", bin,
	    conf), 0);
	assert_non_null(strstr(out, "configuration OK"));
	assert_non_null(strstr(out, "ca_file = "));
	assert_non_null(strstr(out, "url has a password, ignored"));
	if (strstr(out, secret) != NULL)
		fail_msg("-nv shows the password:\n%s", out);

	/* A world-readable password file is refused. */
	assert_int_equal(chmod(pw, 0644), 0);
	assert_int_equal(run(out, sizeof(out), "'%s' -n -c '%s' 2>&1", bin,
	    conf), 1);
	assert_non_null(strstr(out, "readable by everyone"));
	assert_int_equal(chmod(pw, 0600), 0);

	/* Running: connected over TLS as the user, with the file's
	 * password, and nothing of it in the log. */
	assert_true(asprintf(&log, "%s/scheduler.log", dir) > 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char *argv[] = { bin, "-d", "-v", "-c", conf, NULL };

		prctl(PR_SET_PDEATHSIG, SIGTERM);
		fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(127);
		execv(bin, argv);
		_exit(127);
	}
	for (int i = 0; i < 100 && !user_connected_tls(); i++)
		usleep(100000);
	assert_true(user_connected_tls());
	assert_int_equal(tu_stop(pid, 5000), 0);
	assert_true(file_has(log, "url has a password, ignored"));
	if (file_has(log, secret))
		fail_msg("the log %s shows the password", log);

	tu_rmtree(dir);
	free(dir);
	free(bin);
	free(pw);
	free(conf);
	free(log);
}

/*
 * mmctl over TLS: the CA from its configuration, the password from
 * --password-file or $MM_BROKER_PASSWORD; a password in --broker's URL
 * works but is warned about; none is ever printed.
 */
static void
test_tls_mmctl(void **state)
{
	char *dir = tu_tmpdir(), *bin = tu_bin_path("mmctl");
	char *pw, *conf, text[4096], out[16384];
	int r;

	snprintf(text, sizeof(text), "%s\n", secret);
	pw = tu_write_file(dir, "pw", text);
	assert_int_equal(chmod(pw, 0600), 0);
	snprintf(text, sizeof(text), "[bus]\nurl = amqps://%s@localhost:%d/mm\n"
	    "ca_file = %s\n", user, tls_port, ca);
	conf = tu_write_file(dir, "mmctl.conf", text);

	/* Connected: "no scheduler answered" (3), not a broker error (1). */
	r = run(out, sizeof(out), "'%s' -c '%s' --password-file '%s' status "
	    "2>&1", bin, conf, pw);
	if (r != 3)
		fail_msg("mmctl status exited %d: %s", r, out);
	r = run(out, sizeof(out), "MM_BROKER_PASSWORD='%s' '%s' -c '%s' "
	    "status 2>&1", secret, bin, conf);
	assert_int_equal(r, 3);

	/* A wrong password: the broker's refusal, and no password. */
	r = run(out, sizeof(out), "MM_BROKER_PASSWORD='wrong-%s' '%s' -c "
	    "'%s' status 2>&1", secret, bin, conf);
	assert_int_equal(r, 1);
	assert_non_null(strstr(out, "ACCESS_REFUSED"));
	assert_null(strstr(out, secret));

	/* In --broker's URL: works, warned about, never echoed. */
	r = run(out, sizeof(out), "'%s' -c '%s' --broker "
	    "'amqps://%s:%s@localhost:%d/mm' status 2>&1", bin, conf, user,
	    secret, tls_port);
	assert_int_equal(r, 3);
	assert_non_null(strstr(out, "visible to every user"));
	assert_null(strstr(out, secret));

	/* Without the CA (no configuration): refused before connecting. */
	r = run(out, sizeof(out), "'%s' -c /dev/null --broker "
	    "'amqps://%s:%s@localhost:%d/mm' status 2>&1", bin, user, secret,
	    tls_port);
	assert_int_equal(r, 1);
	assert_non_null(strstr(out, "ca_file is not set"));
	assert_null(strstr(out, secret));

	tu_rmtree(dir);
	free(dir);
	free(bin);
	free(pw);
	free(conf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tls_publish_consume),
		cmocka_unit_test(test_tls_wrong_ca_refused),
		cmocka_unit_test(test_tls_hostname_checked),
		cmocka_unit_test(test_tls_daemon_check_refuses),
		cmocka_unit_test(test_tls_password_never_shown),
		cmocka_unit_test(test_tls_mmctl),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
