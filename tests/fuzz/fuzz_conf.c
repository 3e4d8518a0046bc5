/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The INI configuration (common/base/conf.c) through a file, as daemons
 * read it. The first input byte picks the reader: conf_load() with the
 * scheduler's or the actuator's table, or conf_read_ini() (policy files'
 * raw reader) with every value also given to the four value parsers. A
 * file conf_load() accepts must print (conf_print()) to a file it accepts
 * again, printing the same; a size or duration that parses must format
 * and parse back to itself.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "actuator.h"
#include "conf.h"
#include "fuzz.h"
#include "scheduler.h"

/* conf_print() of out into a malloc'd string. */
static char *
print(const struct conf_key *table, size_t n, const void *out)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	FZ_CHECK(f != NULL);
	FZ_CHECK(conf_print(table, n, out, f) == 0);
	FZ_CHECK(fclose(f) == 0);
	return text;
}

static void
load(const struct conf_key *table, size_t n, void *a, void *b,
    const char *path)
{
	char err[512], *text, *text2;
	const char *again;
	int r;

	FZ_CHECK(conf_defaults(table, n, a) == 0);
	err[0] = '\0';
	r = conf_load(table, n, a, path, err, sizeof(err));
	if (r < 0) {
		FZ_CHECK(r == -EINVAL || r == -ENOMEM);
		FZ_CHECK(err[0] != '\0' && strlen(err) < sizeof(err));
		conf_free(table, n, a);
		return;
	}
	text = print(table, n, a);
	again = fz_write("again.conf", text, strlen(text));
	FZ_CHECK(conf_defaults(table, n, b) == 0);
	r = conf_load(table, n, b, again, err, sizeof(err));
	if (r < 0)
		fprintf(stderr, "printed configuration refused: %s\n%s", err,
		    text);
	FZ_CHECK(r == 0);
	text2 = print(table, n, b);
	FZ_CHECK(strcmp(text, text2) == 0);
	free(text2);
	free(text);
	conf_free(table, n, b);
	conf_free(table, n, a);
}

static int
raw_cb(const char *section, const char *key, const char *value, int line,
    void *arg, char *why, size_t whylen)
{
	char buf[64];
	int64_t v, back;
	bool b;

	FZ_CHECK(section != NULL && line > 0);
	FZ_CHECK((key == NULL) == (value == NULL));
	if (value == NULL)
		return 0;
	(void)conf_parse_bool(value, &b);
	(void)conf_parse_int(value, &v);
	if (conf_parse_size_kib(value, &v) == 0 &&
	    conf_format_size_kib(buf, sizeof(buf), v) == 0) {
		FZ_CHECK(conf_parse_size_kib(buf, &back) == 0 && back == v);
	}
	if (conf_parse_duration_ms(value, &v) == 0 &&
	    conf_format_duration_ms(buf, sizeof(buf), v) == 0) {
		FZ_CHECK(conf_parse_duration_ms(buf, &back) == 0 &&
		    back == v);
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct sched_conf s1, s2;
	static struct actuator_conf a1, a2;
	const char *path;
	char err[512];

	if (size < 1)
		return 0;
	path = fz_write("fuzz.conf", data + 1, size - 1);
	switch (data[0] % 3) {
	case 0:
		memset(&s1, 0, sizeof(s1));
		memset(&s2, 0, sizeof(s2));
		load(sched_conf_table, sched_conf_n, &s1, &s2, path);
		break;
	case 1:
		memset(&a1, 0, sizeof(a1));
		memset(&a2, 0, sizeof(a2));
		load(act_conf_table, act_conf_nkeys, &a1, &a2, path);
		break;
	default:
		(void)conf_read_ini(path, raw_cb, NULL, err, sizeof(err));
		break;
	}
	return 0;
}
