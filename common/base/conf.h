/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Table-driven INI configuration: a program describes its keys once in a
 * table of struct conf_key, and gets defaults, a strict loader with errors
 * that name file and line, and a printer of the effective configuration.
 */
#ifndef MM_CONF_H
#define MM_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * Value types and the C type of the field each one fills:
 *
 * CONF_BOOL         bool: yes/no, true/false, on/off, 1/0 (any case).
 * CONF_INT          int64_t: a decimal integer, optionally negative.
 * CONF_STRING       char *, malloc'd, NUL-terminated; may be NULL (unset).
 * CONF_SIZE_KIB     int64_t in KiB: a number with an optional unit K, M, G
 *                   or T (any case, optionally followed by "iB"), powers of
 *                   1024; a plain number is KiB. "768M" is 786432.
 * CONF_DURATION_MS  int64_t in ms: a number with a unit ms, s, m, h or d; a
 *                   plain number is ms. "2s" is 2000.
 * CONF_ENUM         int: the index into choices of the value (any case).
 * CONF_LISTEN       char *, as CONF_STRING: an address to listen on,
 *                   "host:port" with a numeric IPv4 host or "[IPv6]:port"
 *                   (port 0: any free one); "" or unset: off.
 */
enum conf_type {
	CONF_BOOL,
	CONF_INT,
	CONF_STRING,
	CONF_SIZE_KIB,
	CONF_DURATION_MS,
	CONF_ENUM,
	CONF_LISTEN,
};

/* The types whose field is a malloc'd char *. */
#define CONF_IS_STRING(t)	((t) == CONF_STRING || (t) == CONF_LISTEN)

/*
 * One key of a program's configuration. The table and its strings are
 * borrowed for each call and usually static const.
 *
 * section, key  where it is in the file: "[section]" then "key = value".
 * min, max      inclusive range, in KiB or ms for sizes and durations; always
 *               checked for CONF_INT, CONF_SIZE_KIB and CONF_DURATION_MS.
 *               For CONF_STRING a length range when max > 0. Unused by
 *               CONF_BOOL and CONF_ENUM.
 * def           the default, written as in a file ("2s", "yes", "768M").
 *               NULL is allowed only for CONF_STRING, where it means unset.
 * offset        offsetof(struct <program's config>, field).
 * choices       CONF_ENUM only: the accepted values, NULL-terminated.
 * help          one line for conf_print, or NULL.
 */
struct conf_key {
	const char *section;
	const char *key;
	enum conf_type type;
	int64_t min;
	int64_t max;
	const char *def;
	size_t offset;
	const char *const *choices;
	const char *help;
};

/*
 * Set every field of out named by the table to its default. String fields
 * are overwritten without being freed: call it on a zeroed struct, and
 * conf_free() on it later. Returns 0, -EINVAL when a default does not parse
 * or is out of range (a bug in the table; the key is logged at debug
 * level), or -ENOMEM. On error out may hold some defaults but is always
 * safe to pass to conf_free().
 */
int conf_defaults(const struct conf_key *table, size_t n, void *out);

/*
 * Read the INI file at path and set the fields of out for the keys it
 * contains; keys it lacks keep their current value, so call
 * conf_defaults() first. The file must use only the table's sections and
 * keys, each at most once, with valid values in range; lines may be
 * indented, comments start with ';' or '#', and " ;" starts an inline
 * comment. There are no continuation lines.
 *
 * Returns 0, or on the first error a negative errno (-ENOENT and the like
 * when the file cannot be read, -EINVAL for bad content, -ENOMEM), with a
 * one-line message for the user in err, for example
 *   collector.conf:12: unknown key "intervall" in section [collector]
 * On error out is left exactly as it was. Strings replaced in out are
 * freed; new ones belong to out (conf_free()). err may be NULL when
 * errlen is 0; it is truncated to errlen and always NUL-terminated.
 */
int conf_load(const struct conf_key *table, size_t n, void *out,
    const char *path, char *err, size_t errlen);

/*
 * Write the configuration in out to f as an INI file that conf_load()
 * reads back to the same values: sections in table order, each key with
 * its help as a comment, sizes and durations in the largest exact unit.
 * An unset string is written as a comment. Returns 0 or -EIO.
 */
int conf_print(const struct conf_key *table, size_t n, const void *out,
    FILE *f);

/*
 * For files whose sections are not known in advance (mmctl's policy
 * files): each section header goes to cb with key and value NULL, and each
 * "key = value" with its section, both with their line number, in file
 * order. cb returns 0, or a negative errno with a message in why (whylen
 * bytes), which stops the read.
 */
typedef int (*conf_raw_cb)(const char *section, const char *key,
    const char *value, int line, void *arg, char *why, size_t whylen);

/*
 * Read the INI file at path through cb (with arg), with conf_load()'s
 * syntax: comments, blank lines, indentation, no continuation lines.
 * Returns 0, or the first error (cb's, or -ENOENT and the like, -EINVAL
 * for a syntax error) with "path:line: message" in err.
 */
int conf_read_ini(const char *path, conf_raw_cb cb, void *arg, char *err,
    size_t errlen);

/*
 * A reload (SIGHUP): read path afresh into a scratch copy of the
 * configuration (defaults, then the file) and copy into cur the keys named
 * in live ("section.key", NULL-terminated) whose value changed; each is
 * logged with its new value. A changed key that is not live is logged as
 * needing a restart and cur keeps its old value. size is sizeof(*cur).
 * Returns the number of live keys changed (0 or more), or a negative errno
 * with the message in err, cur untouched: a bad file changes nothing.
 */
int conf_reload(const struct conf_key *table, size_t n, void *cur,
    size_t size, const char *path, const char *const *live, char *err,
    size_t errlen);

/* Free the string fields of out named by the table and set them to NULL.
 * Other fields are left alone. out may be NULL. */
void conf_free(const struct conf_key *table, size_t n, void *out);

/*
 * The value parsers conf_load() uses, for command-line arguments. Each
 * returns 0 and writes *ret_* only on success, or -EINVAL when s is not
 * such a value, or -ERANGE when it does not fit in an int64_t.
 */
int conf_parse_bool(const char *s, bool *ret_bool);
int conf_parse_int(const char *s, int64_t *ret_int);
int conf_parse_size_kib(const char *s, int64_t *ret_kib);
int conf_parse_duration_ms(const char *s, int64_t *ret_ms);

/* A CONF_LISTEN value ("127.0.0.1:9520", "[::1]:0"), not empty: the
 * address into *ret_addr (may be NULL; struct sockaddr_storage) and its
 * length into *ret_len (may be NULL). 0 or -EINVAL. */
struct sockaddr_storage;
int conf_parse_listen(const char *s, struct sockaddr_storage *ret_addr,
    unsigned *ret_len);

/* Write kib or ms to buf in the largest unit that keeps it exact ("768M",
 * "2s"), as the parsers above read it back. Returns 0 or -ENOSPC. */
int conf_format_size_kib(char *buf, size_t size, int64_t kib);
int conf_format_duration_ms(char *buf, size_t size, int64_t ms);

#endif
