/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The bus's configuration checks without a broker: broker URLs shown
 * without their password, the schemes and TLS files refused with the key
 * at fault, and where the password comes from (systemd credential, then
 * password_file, then the URL), with a file others can read refused.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "bus.h"
#include "bus_conf.h"
#include "testutil.h"

static char *dir;

static int
setup(void **state)
{
	dir = tu_tmpdir();
	unsetenv("CREDENTIALS_DIRECTORY");
	return 0;
}

static int
teardown(void **state)
{
	tu_rmtree(dir);
	free(dir);
	unsetenv("CREDENTIALS_DIRECTORY");
	return 0;
}

/* dir/name with text and mode; returns the malloc'd path. */
static char *
file(const char *name, const char *text, mode_t mode)
{
	char *path = tu_write_file(dir, name, text);

	assert_int_equal(chmod(path, mode), 0);
	return path;
}

static void
test_bus_url_redact(void **state)
{
	static const struct {
		const char *url;
		const char *shown;
	} cases[] = {
		{ "amqps://mm:s3cret@broker:5671/mm",
		  "amqps://mm:***@broker:5671/mm" },
		{ "amqp://guest:guest@127.0.0.1:5672/mm",
		  "amqp://guest:***@127.0.0.1:5672/mm" },
		/* An unencoded '@' in the password: the last '@' ends it. */
		{ "amqp://u:p@ss@h/v", "amqp://u:***@h/v" },
		{ "amqp://u:@h/v", "amqp://u:***@h/v" },
		/* No password, nothing to hide; '@' and ':' in the vhost
		 * are not userinfo. */
		{ "amqps://mm@broker/mm", "amqps://mm@broker/mm" },
		{ "amqp://broker:5672/a@b:c", "amqp://broker:5672/a@b:c" },
		/* Not a URL we take, still shown without its password. */
		{ "http://x:y@z", "http://x:***@z" },
		{ "user:pw@host", "user:***@host" },
	};
	char buf[128];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_string_equal(bus_url_redact(cases[i].url, buf,
		    sizeof(buf)), cases[i].shown);
	/* Truncated, never past the buffer, and no password prefix. */
	bus_url_redact("amqp://user:secret@host/vhost", buf, 14);
	assert_string_equal(buf, "amqp://user:*");
	assert_string_equal(bus_url_redact(NULL, buf, sizeof(buf)),
	    "(none)");
}

/* bus_config_check() fails with r and an error containing what. */
static void
refused(const struct bus_config *cfg, int r, const char *what)
{
	struct bus_check chk;

	assert_int_equal(bus_config_check(cfg, &chk), r);
	if (strstr(chk.err, what) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", chk.err, what);
	assert_null(strstr(chk.err, "s3cret"));
}

/* A cluster's nodes as a list: each URL's password hidden, each checked,
 * and a list that mixes identities refused with what differs. */
static void
test_bus_url_list(void **state)
{
	struct bus_config cfg = { 0 };
	struct bus_check chk;
	char buf[256];

	(void)state;
	assert_string_equal(bus_url_redact("amqp://mm:s3cret@n1:5672/mm,"
	    " amqp://mm:s3cret@n2:5672/mm,amqp://n3/mm", buf, sizeof(buf)),
	    "amqp://mm:***@n1:5672/mm, amqp://mm:***@n2:5672/mm,"
	    "amqp://n3/mm");
	cfg.url = "amqp://mm:s3cret@n1:5672/mm, amqp://mm:s3cret@n2:5673/mm ,"
	    "amqp://mm@n3/mm";
	assert_int_equal(bus_config_check(&cfg, &chk), 0);
	assert_int_equal(chk.n_urls, 3);
	assert_true(chk.url_password_ignored == false);
	cfg.url = "amqp://mm:s3cret@n1/mm";
	assert_int_equal(bus_config_check(&cfg, &chk), 0);
	assert_int_equal(chk.n_urls, 1);

	cfg.url = "amqp://mm:s3cret@n1/mm,,amqp://mm:s3cret@n2/mm";
	refused(&cfg, -EINVAL, "an empty URL in the list");
	cfg.url = "amqp://mm:s3cret@n1/mm,";
	refused(&cfg, -EINVAL, "an empty URL in the list");
	cfg.url = "amqp://mm:s3cret@n1/mm,amqp://other:s3cret@n2/mm";
	refused(&cfg, -EINVAL, "url \"amqp://other:***@n2/mm\": the URLs "
	    "of a list must differ only in host and port");
	cfg.url = "amqp://mm:s3cret@n1/mm,amqp://mm:s3cret@n2/other";
	refused(&cfg, -EINVAL, "same scheme, user and vhost as the first");
	cfg.url = "amqp://mm:s3cret@n1/mm,amqps://mm:s3cret@n2/mm";
	refused(&cfg, -EINVAL, "must differ only in host and port");
	cfg.url = "amqp://mm:s3cret@n1/mm,http://n2/mm";
	refused(&cfg, -EINVAL, "url \"http://n2/mm\": not an amqp://");
	cfg.url = "amqp://n1/mm,amqp://n2/mm,amqp://n3/mm,amqp://n4/mm,"
	    "amqp://n5/mm,amqp://n6/mm,amqp://n7/mm,amqp://n8/mm,amqp://n9/mm,"
	    "amqp://n10/mm,amqp://n11/mm,amqp://n12/mm,amqp://n13/mm,"
	    "amqp://n14/mm,amqp://n15/mm,amqp://n16/mm,amqp://n17/mm";
	refused(&cfg, -EINVAL, "more than 16 URLs");
}

static void
test_bus_url_tls_checks(void **state)
{
	char *ca = file("ca.pem", "x\n", 0644);
	char *cert = file("cert.pem", "x\n", 0644);
	char *key = file("key.pem", "x\n", 0600);
	char *missing = tu_write_file(dir, "gone.pem", "");
	struct bus_config cfg = { .url = "amqps://mm:s3cret@broker/mm" };
	struct bus_check chk;
	uv_loop_t loop;

	unlink(missing);
	cfg.url = "http://mm:s3cret@broker/mm";
	refused(&cfg, -EINVAL, "url \"http://mm:***@broker/mm\": not an "
	    "amqp:// or amqps:// URL");
	cfg.url = "amqps://mm:s3cret@broker:notaport/mm";
	refused(&cfg, -EINVAL, "url \"amqps://mm:***@broker:notaport/mm\"");

	/* amqps:// needs a CA unless verification is off. */
	cfg.url = "amqps://mm:s3cret@broker/mm";
	refused(&cfg, -EINVAL, "ca_file is not set");
	cfg.no_verify_peer = true;
	assert_int_equal(bus_config_check(&cfg, &chk), 0);
	assert_true(chk.tls);
	cfg.no_verify_peer = false;
	cfg.ca_file = ca;
	assert_int_equal(bus_config_check(&cfg, &chk), 0);

	/* TLS files on a clear-text URL. */
	cfg.url = "amqp://mm:s3cret@broker/mm";
	refused(&cfg, -EINVAL, "ca_file is set but url "
	    "\"amqp://mm:***@broker/mm\" is not amqps://");
	cfg.ca_file = NULL;
	cfg.key_file = key;
	refused(&cfg, -EINVAL, "key_file is set but url");
	cfg.key_file = NULL;

	/* A certificate without its key, and the other way round. */
	cfg.url = "amqps://mm:s3cret@broker/mm";
	cfg.ca_file = ca;
	cfg.cert_file = cert;
	refused(&cfg, -EINVAL, "cert_file is set without key_file");
	cfg.cert_file = NULL;
	cfg.key_file = key;
	refused(&cfg, -EINVAL, "key_file is set without cert_file");
	cfg.cert_file = cert;
	assert_int_equal(bus_config_check(&cfg, &chk), 0);

	/* Files that cannot be read, each named. */
	cfg.ca_file = missing;
	refused(&cfg, -ENOENT, "ca_file \"");
	cfg.ca_file = ca;
	cfg.key_file = missing;
	refused(&cfg, -ENOENT, "key_file \"");

	/* bus_new() refuses what the check refuses. */
	uv_loop_init(&loop);
	cfg.key_file = NULL;
	cfg.cert_file = NULL;
	cfg.ca_file = NULL;
	errno = 0;
	assert_null(bus_new(&loop, &cfg));
	assert_int_equal(errno, EINVAL);
	assert_int_equal(uv_loop_close(&loop), 0);
	free(ca);
	free(cert);
	free(key);
	free(missing);
}

static void
test_bus_url_password_precedence(void **state)
{
	char *pw = file("pw", "from-file\nsecond line\n", 0640);
	char *crlf = file("crlf", "windows\r\n", 0600);
	char *empty = file("empty", "", 0640);
	char *cred_dir;
	char *cred;
	struct bus_config cfg = { .url = "amqp://mm:from-url@broker/mm" };
	struct bus_check chk;

	assert_int_equal(bus_config_check(&cfg, &chk), 0);
	assert_int_equal(chk.password_from, BUS_PASSWORD_URL);
	assert_false(chk.url_password_ignored);

	/* The file's first line, without its newline, wins over the URL,
	 * which is then said to be ignored. */
	cfg.password_file = pw;
	assert_int_equal(bus_config_check(&cfg, &chk), 0);
	assert_int_equal(chk.password_from, BUS_PASSWORD_FILE);
	assert_string_equal(chk.password, "from-file");
	assert_true(chk.url_password_ignored);
	cfg.password_file = crlf;
	assert_int_equal(bus_config_check(&cfg, &chk), 0);
	assert_string_equal(chk.password, "windows");

	/* An empty file (as the package installs it): the URL's. */
	cfg.password_file = empty;
	assert_int_equal(bus_config_check(&cfg, &chk), 0);
	assert_int_equal(chk.password_from, BUS_PASSWORD_URL);
	assert_false(chk.url_password_ignored);

	/* A URL without a password and a file: nothing ignored. */
	cfg.url = "amqp://mm@broker/mm";
	cfg.password_file = pw;
	assert_int_equal(bus_config_check(&cfg, &chk), 0);
	assert_int_equal(chk.password_from, BUS_PASSWORD_FILE);
	assert_false(chk.url_password_ignored);

	/* systemd's credential wins over the file, unless empty. */
	cred_dir = tu_tmpdir();
	cred = tu_write_file(cred_dir, "bus.password", "from-cred\n");
	setenv("CREDENTIALS_DIRECTORY", cred_dir, 1);
	assert_int_equal(bus_config_check(&cfg, &chk), 0);
	assert_int_equal(chk.password_from, BUS_PASSWORD_CREDENTIAL);
	assert_string_equal(chk.password, "from-cred");
	free(tu_write_file(cred_dir, "bus.password", ""));
	assert_int_equal(bus_config_check(&cfg, &chk), 0);
	assert_int_equal(chk.password_from, BUS_PASSWORD_FILE);

	/* A password given outright (mmctl's) wins over everything. */
	free(tu_write_file(cred_dir, "bus.password", "from-cred\n"));
	cfg.password = "given";
	assert_int_equal(bus_config_check(&cfg, &chk), 0);
	assert_int_equal(chk.password_from, BUS_PASSWORD_GIVEN);
	assert_string_equal(chk.password, "given");

	unsetenv("CREDENTIALS_DIRECTORY");
	tu_rmtree(cred_dir);
	free(cred_dir);
	free(cred);
	free(pw);
	free(crlf);
	free(empty);
}

static void
test_bus_url_password_file_refused(void **state)
{
	char *open_pw = file("pw", "s3cret\n", 0644);
	char *missing = tu_write_file(dir, "nothing", "");
	struct bus_config cfg = {
		.url = "amqp://mm@broker/mm",
		.password_file = open_pw,
	};
	struct bus_conf c = { .url = "amqp://mm@broker/mm" };
	char err[640];

	refused(&cfg, -EACCES, "is readable by everyone (mode 0644)");

	/* The longest password fits, one byte more is refused. */
	{
		char longest[BUS_PASSWORD_MAX + 2];
		struct bus_check chk;

		memset(longest, 'p', BUS_PASSWORD_MAX - 1);
		longest[BUS_PASSWORD_MAX - 1] = '\0';
		cfg.password_file = file("long", longest, 0600);
		assert_int_equal(bus_config_check(&cfg, &chk), 0);
		assert_int_equal(strlen(chk.password), BUS_PASSWORD_MAX - 1);
		free((char *)cfg.password_file);
		strcat(longest, "p\n");
		cfg.password_file = file("long", longest, 0600);
		refused(&cfg, -EINVAL, "longer than 1023 bytes");
		free((char *)cfg.password_file);
	}
	unlink(missing);
	cfg.password_file = missing;
	refused(&cfg, -ENOENT, "password_file \"");

	/* The [bus] section's check says which key, and no secret. */
	c.password_file = open_pw;
	assert_int_equal(bus_conf_check(&c, err, sizeof(err)), -EACCES);
	assert_non_null(strstr(err, "[bus] password_file \""));
	assert_null(strstr(err, "s3cret"));
	c.password_file = NULL;
	c.url = "amqps://mm:s3cret@broker/mm";
	c.verify_peer = true;
	assert_int_equal(bus_conf_check(&c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "[bus] url \"amqps://mm:***@broker/mm\""));
	free(open_pw);
	free(missing);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bus_url_redact),
		cmocka_unit_test_setup_teardown(test_bus_url_list, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bus_url_tls_checks,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_bus_url_password_precedence, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_bus_url_password_file_refused, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
