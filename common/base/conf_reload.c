/* SPDX-License-Identifier: Apache-2.0 */
/*
 * conf_reload() (conf.h): what a daemon's SIGHUP does with its file. The
 * file is read into a scratch copy, so a bad file changes nothing, and
 * only the keys the program can apply while running are taken.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "log.h"

static size_t
value_size(enum conf_type t)
{
	switch (t) {
	case CONF_BOOL:
		return sizeof(bool);
	case CONF_ENUM:
		return sizeof(int);
	case CONF_STRING:
	case CONF_LISTEN:
		return sizeof(char *);
	default:
		return sizeof(int64_t);
	}
}

static bool
same_value(const struct conf_key *k, const char *a, const char *b)
{
	const char *sa, *sb;

	if (!CONF_IS_STRING(k->type))
		return memcmp(a + k->offset, b + k->offset,
		    value_size(k->type)) == 0;
	memcpy(&sa, a + k->offset, sizeof(sa));
	memcpy(&sb, b + k->offset, sizeof(sb));
	if (sa == NULL || sb == NULL)
		return sa == sb;
	return strcmp(sa, sb) == 0;
}

static bool
is_live(const struct conf_key *k, const char *const *live)
{
	size_t sl = strlen(k->section);

	for (; live != NULL && *live != NULL; live++)
		if (strncmp(*live, k->section, sl) == 0 &&
		    (*live)[sl] == '.' && strcmp(*live + sl + 1, k->key) == 0)
			return true;
	return false;
}

/* "key = value" as conf_print() writes it, for the log. */
static void
log_new_value(const struct conf_key *k, const void *conf)
{
	char *buf = NULL, *line;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (f == NULL)
		return;
	conf_print(k, 1, conf, f);
	fclose(f);
	line = buf != NULL ? strrchr(buf, '\n') : NULL;
	/* The last line ends with '\n': the one before it is the value. */
	while (line != NULL && line > buf && line[-1] != '\n')
		line--;
	log_info("reload: [%s] %s", k->section, line != NULL ? line : k->key);
	free(buf);
}

int
conf_reload(const struct conf_key *table, size_t n, void *cur, size_t size,
    const char *path, const char *const *live, char *err, size_t errlen)
{
	char *fresh = calloc(1, size);
	int changed = 0, r;

	if (fresh == NULL)
		return -ENOMEM;
	r = conf_defaults(table, n, fresh);
	if (r == 0)
		r = conf_load(table, n, fresh, path, err, errlen);
	if (r < 0) {
		conf_free(table, n, fresh);
		free(fresh);
		return r;
	}
	for (size_t i = 0; i < n; i++) {
		const struct conf_key *k = &table[i];
		char *dst = (char *)cur + k->offset;

		if (same_value(k, cur, fresh))
			continue;
		if (!is_live(k, live)) {
			log_warnx("reload: [%s] %s changed; it takes effect "
			    "at the next restart", k->section, k->key);
			continue;
		}
		if (CONF_IS_STRING(k->type)) {
			char *old;

			memcpy(&old, dst, sizeof(old));
			free(old);
		}
		/* Moved, not copied: fresh no longer owns a string. */
		memcpy(dst, fresh + k->offset, value_size(k->type));
		memset(fresh + k->offset, 0, value_size(k->type));
		log_new_value(k, cur);
		changed++;
	}
	conf_free(table, n, fresh);
	free(fresh);
	return changed;
}
