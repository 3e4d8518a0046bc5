/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The configuration loader: libinih splits the file into sections and
 * key/value pairs, this file checks each against the program's table and
 * converts it. It is the only file that includes <ini.h>.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <ini.h>

#include "conf.h"
#include "log.h"

/* A parsed value, before it is written to the caller's struct. */
struct conf_value {
	bool set;
	int line;
	union {
		bool b;
		int64_t i;
		int e;
		char *s;
	} u;
};

/*
 * One conf_load() call. Values are collected in vals and copied to the
 * caller's struct only when the whole file is good, so an error leaves it
 * untouched. Only the first error is kept: it is the one to fix first, and
 * later ones are often its consequences.
 */
struct conf_parse {
	const struct conf_key *table;
	size_t n;
	const char *path;
	FILE *f;
	char *line;
	size_t line_cap;
	int lineno;
	struct conf_value *vals;
	int err;
	int err_line;
	char msg[512];
	conf_raw_cb raw;	/* conf_read_ini(): every key goes here */
	void *raw_arg;
};

struct conf_unit {
	const char *name;
	int64_t mult;
};

/* Largest first: conf_format_*() use the first unit that divides. */
static const struct conf_unit size_units[] = {
	{ "T", 1024LL * 1024 * 1024 }, { "TiB", 1024LL * 1024 * 1024 },
	{ "G", 1024 * 1024 }, { "GiB", 1024 * 1024 },
	{ "M", 1024 }, { "MiB", 1024 },
	{ "K", 1 }, { "KiB", 1 },
	{ "", 1 },
	{ NULL, 0 },
};

static const struct conf_unit duration_units[] = {
	{ "d", 24 * 3600 * 1000 },
	{ "h", 3600 * 1000 },
	{ "m", 60 * 1000 },
	{ "s", 1000 },
	{ "ms", 1 },
	{ "", 1 },
	{ NULL, 0 },
};

static const char *const bool_true[] = { "yes", "true", "on", "1", NULL };
static const char *const bool_false[] = { "no", "false", "off", "0", NULL };

static int
find_word(const char *const *words, const char *s)
{
	for (int i = 0; words[i] != NULL; i++)
		if (strcasecmp(words[i], s) == 0)
			return i;
	return -1;
}

int
conf_parse_bool(const char *s, bool *ret_bool)
{
	if (find_word(bool_true, s) >= 0)
		*ret_bool = true;
	else if (find_word(bool_false, s) >= 0)
		*ret_bool = false;
	else
		return -EINVAL;
	return 0;
}

/* strtoll() without its leniency: no leading blanks, no empty number. */
static int
parse_number(const char *s, int64_t *ret, const char **ret_end)
{
	char *end;
	long long v;

	if (!isdigit((unsigned char)s[0]) &&
	    !((s[0] == '-' || s[0] == '+') && isdigit((unsigned char)s[1])))
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	*ret = v;
	*ret_end = end;
	return 0;
}

int
conf_parse_int(const char *s, int64_t *ret_int)
{
	const char *end;
	int64_t v;
	int r;

	r = parse_number(s, &v, &end);
	if (r < 0)
		return r;
	if (*end != '\0')
		return -EINVAL;
	*ret_int = v;
	return 0;
}

/* A non-negative number followed by one of units (matched with cmp). */
static int
parse_scaled(const char *s, const struct conf_unit *units,
    int (*cmp)(const char *, const char *), int64_t *ret)
{
	const char *end;
	int64_t v;
	int r;

	if (!isdigit((unsigned char)s[0]))
		return -EINVAL;
	r = parse_number(s, &v, &end);
	if (r < 0)
		return r;
	for (; units->name != NULL; units++) {
		if (cmp(units->name, end) != 0)
			continue;
		if (v > INT64_MAX / units->mult)
			return -ERANGE;
		*ret = v * units->mult;
		return 0;
	}
	return -EINVAL;
}

int
conf_parse_size_kib(const char *s, int64_t *ret_kib)
{
	return parse_scaled(s, size_units, strcasecmp, ret_kib);
}

int
conf_parse_listen(const char *s, struct sockaddr_storage *ret_addr,
    unsigned *ret_len)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	char host[INET6_ADDRSTRLEN + 1];
	const char *colon, *h = s;
	size_t hlen;
	int64_t port;
	unsigned len;

	if (*s == '[') {
		colon = strstr(s, "]:");
		if (colon == NULL)
			return -EINVAL;
		h = s + 1;
		hlen = (size_t)(colon - h);
		colon++;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return -EINVAL;
		hlen = (size_t)(colon - s);
	}
	if (hlen == 0 || hlen >= sizeof(host) ||
	    conf_parse_int(colon + 1, &port) < 0 || port < 0 || port > 65535 ||
	    !isdigit((unsigned char)colon[1]))
		return -EINVAL;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	if (*s != '[' && inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)port);
		len = sizeof(*in4);
	} else if (*s == '[' && inet_pton(AF_INET6, host, &in6->sin6_addr) ==
	    1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		len = sizeof(*in6);
	} else {
		return -EINVAL;
	}
	if (ret_addr != NULL)
		*ret_addr = ss;
	if (ret_len != NULL)
		*ret_len = len;
	return 0;
}

int
conf_parse_duration_ms(const char *s, int64_t *ret_ms)
{
	return parse_scaled(s, duration_units, strcmp, ret_ms);
}

static int
format_scaled(char *buf, size_t size, int64_t v,
    const struct conf_unit *units)
{
	int n;

	for (; units->name != NULL; units++)
		if (v != 0 && v % units->mult == 0)
			break;
	if (units->name == NULL)
		n = snprintf(buf, size, "%" PRId64, v);
	else
		n = snprintf(buf, size, "%" PRId64 "%s", v / units->mult,
		    units->name);
	return n < 0 || (size_t)n >= size ? -ENOSPC : 0;
}

int
conf_format_size_kib(char *buf, size_t size, int64_t kib)
{
	return format_scaled(buf, size, kib, size_units);
}

int
conf_format_duration_ms(char *buf, size_t size, int64_t ms)
{
	return format_scaled(buf, size, ms, duration_units);
}

static void *
field(void *out, const struct conf_key *k)
{
	return (char *)out + k->offset;
}

static const void *
cfield(const void *out, const struct conf_key *k)
{
	return (const char *)out + k->offset;
}

/* The value of k in the form the file uses, for conf_print and messages. */
static void
format_value(char *buf, size_t size, const struct conf_key *k, int64_t v)
{
	if (k->type == CONF_SIZE_KIB)
		conf_format_size_kib(buf, size, v);
	else if (k->type == CONF_DURATION_MS)
		conf_format_duration_ms(buf, size, v);
	else
		snprintf(buf, size, "%" PRId64, v);
}

static int
out_of_range(const struct conf_key *k, const char *s, char *why,
    size_t whylen)
{
	char lo[32], hi[32];

	format_value(lo, sizeof(lo), k, k->min);
	format_value(hi, sizeof(hi), k, k->max);
	snprintf(why, whylen, "value %s of \"%s\" is out of range %s..%s", s,
	    k->key, lo, hi);
	return -EINVAL;
}

static void
join_words(char *buf, size_t size, const char *const *words)
{
	size_t len = 0;

	buf[0] = '\0';
	for (int i = 0; words[i] != NULL && len < size; i++)
		len += snprintf(buf + len, size - len, "%s%s",
		    i > 0 ? ", " : "", words[i]);
}

/*
 * Convert s, the text of key k, into *v. On error returns -EINVAL (or
 * -ENOMEM) and explains why in why, naming the key and the value.
 */
static int
parse_value(const struct conf_key *k, const char *s, struct conf_value *v,
    char *why, size_t whylen)
{
	const char *what = NULL;
	char list[256];
	size_t len;
	int r = 0;

	switch (k->type) {
	case CONF_BOOL:
		if (conf_parse_bool(s, &v->u.b) < 0)
			what = "a boolean (yes/no, true/false, on/off, 1/0)";
		break;
	case CONF_INT:
		r = conf_parse_int(s, &v->u.i);
		what = "an integer";
		break;
	case CONF_SIZE_KIB:
		r = conf_parse_size_kib(s, &v->u.i);
		what = "a size (e.g. 512M, 2G; a plain number is KiB)";
		break;
	case CONF_DURATION_MS:
		r = conf_parse_duration_ms(s, &v->u.i);
		what = "a duration (e.g. 500ms, 2s)";
		break;
	case CONF_ENUM:
		if (k->choices == NULL) {
			snprintf(why, whylen, "key \"%s\" has no choices",
			    k->key);
			return -EINVAL;
		}
		v->u.e = find_word(k->choices, s);
		if (v->u.e < 0) {
			join_words(list, sizeof(list), k->choices);
			snprintf(why, whylen,
			    "value \"%s\" of \"%s\" is not one of: %s", s,
			    k->key, list);
			return -EINVAL;
		}
		break;
	case CONF_LISTEN:
		if (*s != '\0' && conf_parse_listen(s, NULL, NULL) < 0) {
			snprintf(why, whylen, "value \"%s\" of \"%s\" is not "
			    "an address to listen on (127.0.0.1:9520, "
			    "[::1]:9520, or empty for none)", s, k->key);
			return -EINVAL;
		}
		/* fall through */
	case CONF_STRING:
		len = strlen(s);
		if (k->max > 0 && (len < (uint64_t)k->min ||
		    len > (uint64_t)k->max)) {
			snprintf(why, whylen, "value \"%s\" of \"%s\" must "
			    "have %" PRId64 "..%" PRId64 " characters", s,
			    k->key, k->min, k->max);
			return -EINVAL;
		}
		v->u.s = strdup(s);
		if (v->u.s == NULL) {
			snprintf(why, whylen, "out of memory");
			return -ENOMEM;
		}
		break;
	default:
		snprintf(why, whylen, "key \"%s\" has an unknown type %d",
		    k->key, (int)k->type);
		return -EINVAL;
	}

	if (k->type == CONF_INT || k->type == CONF_SIZE_KIB ||
	    k->type == CONF_DURATION_MS) {
		if (r == -ERANGE)
			return out_of_range(k, s, why, whylen);
		if (r < 0) {
			snprintf(why, whylen, "value \"%s\" of \"%s\" is not "
			    "%s", s, k->key, what);
			return -EINVAL;
		}
		if (v->u.i < k->min || v->u.i > k->max)
			return out_of_range(k, s, why, whylen);
	} else if (k->type == CONF_BOOL && what != NULL) {
		snprintf(why, whylen, "value \"%s\" of \"%s\" is not %s", s,
		    k->key, what);
		return -EINVAL;
	}
	return 0;
}

/* Write a parsed value into out, which takes over a string. */
static void
store_value(const struct conf_key *k, struct conf_value *v, void *out)
{
	void *p = field(out, k);

	switch (k->type) {
	case CONF_BOOL:
		*(bool *)p = v->u.b;
		break;
	case CONF_INT:
	case CONF_SIZE_KIB:
	case CONF_DURATION_MS:
		*(int64_t *)p = v->u.i;
		break;
	case CONF_ENUM:
		*(int *)p = v->u.e;
		break;
	case CONF_STRING:
	case CONF_LISTEN:
		free(*(char **)p);
		*(char **)p = v->u.s;
		v->u.s = NULL;
		break;
	}
}

int
conf_defaults(const struct conf_key *table, size_t n, void *out)
{
	struct conf_value v;
	char why[512];
	int r;

	for (size_t i = 0; i < n; i++)
		if (CONF_IS_STRING(table[i].type))
			*(char **)field(out, &table[i]) = NULL;

	for (size_t i = 0; i < n; i++) {
		const struct conf_key *k = &table[i];

		memset(&v, 0, sizeof(v));
		if (k->def == NULL && CONF_IS_STRING(k->type))
			continue;
		if (k->def == NULL) {
			log_debug("conf: [%s] %s has no default", k->section,
			    k->key);
			return -EINVAL;
		}
		r = parse_value(k, k->def, &v, why, sizeof(why));
		if (r < 0) {
			log_debug("conf: [%s] %s: bad default: %s",
			    k->section, k->key, why);
			return r;
		}
		store_value(k, &v, out);
	}
	return 0;
}

void
conf_free(const struct conf_key *table, size_t n, void *out)
{
	if (out == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		char **s = field(out, &table[i]);

		if (!CONF_IS_STRING(table[i].type))
			continue;
		free(*s);
		*s = NULL;
	}
}

static void parse_fail(struct conf_parse *p, int line, int err,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Keep the first error, as "path:line: message" (no line: "message"). */
static void
parse_fail(struct conf_parse *p, int line, int err, const char *fmt, ...)
{
	va_list ap;
	int len = 0;

	if (p->err != 0)
		return;
	p->err = err;
	p->err_line = line;
	if (line > 0)
		len = snprintf(p->msg, sizeof(p->msg), "%s:%d: ", p->path,
		    line);
	va_start(ap, fmt);
	vsnprintf(p->msg + len, sizeof(p->msg) - len, fmt, ap);
	va_end(ap);
}

static bool
section_known(const struct conf_parse *p, const char *name, size_t len)
{
	if (p->raw != NULL)
		return true;
	for (size_t i = 0; i < p->n; i++)
		if (strlen(p->table[i].section) == len &&
		    strncmp(p->table[i].section, name, len) == 0)
			return true;
	return false;
}

/*
 * inih's line reader. Counting lines here gives the handler its line
 * number (the library is built without INI_HANDLER_LINENO). Leading blanks
 * are dropped so that an indented line is never taken for a continuation
 * of the previous value, and section headers are checked here so that an
 * unknown section is reported even when it is empty. Returning NULL ends
 * the parse at the first error.
 */
static char *
conf_reader(char *buf, int size, void *stream)
{
	struct conf_parse *p = stream;
	const char *s, *end;
	ssize_t len;

	if (p->err != 0)
		return NULL;
	errno = 0;
	len = getline(&p->line, &p->line_cap, p->f);
	if (len < 0) {
		if (ferror(p->f))
			parse_fail(p, 0, errno != 0 ? -errno : -EIO,
			    "cannot read \"%s\": %s", p->path,
			    strerror(errno != 0 ? errno : EIO));
		else if (errno == ENOMEM)
			parse_fail(p, 0, -ENOMEM, "out of memory");
		return NULL;
	}
	p->lineno++;
	if (strlen(p->line) != (size_t)len) {
		parse_fail(p, p->lineno, -EINVAL, "line contains a NUL byte");
		return NULL;
	}
	while (len > 0 && (p->line[len - 1] == '\n' ||
	    p->line[len - 1] == '\r'))
		p->line[--len] = '\0';
	s = p->line + strspn(p->line, " \t");
	if (strlen(s) >= (size_t)size) {
		parse_fail(p, p->lineno, -EINVAL,
		    "line is longer than %d characters", size - 1);
		return NULL;
	}
	if (s[0] == '[' && (end = strchr(s, ']')) != NULL &&
	    !section_known(p, s + 1, end - s - 1)) {
		parse_fail(p, p->lineno, -EINVAL, "unknown section [%.*s]",
		    (int)(end - s - 1), s + 1);
		return NULL;
	}
	if (s[0] == '[' && end != NULL && p->raw != NULL) {
		char name[256], why[512] = "";
		int r;

		snprintf(name, sizeof(name), "%.*s", (int)(end - s - 1), s + 1);
		r = p->raw(name, NULL, NULL, p->lineno, p->raw_arg, why,
		    sizeof(why));
		if (r < 0) {
			parse_fail(p, p->lineno, r, "%s", why);
			return NULL;
		}
	}
	memcpy(buf, s, strlen(s) + 1);
	return buf;
}

static int
conf_handler(void *user, const char *section, const char *key,
    const char *value)
{
	struct conf_parse *p = user;
	struct conf_value *v;
	char why[512];
	size_t i;
	int r;

	if (section[0] == '\0') {
		parse_fail(p, p->lineno, -EINVAL,
		    "key \"%s\" is outside any [section]", key);
		return 0;
	}
	if (p->raw != NULL) {
		why[0] = '\0';
		r = p->raw(section, key, value, p->lineno, p->raw_arg, why,
		    sizeof(why));
		if (r < 0)
			parse_fail(p, p->lineno, r, "%s", why);
		return r == 0;
	}
	for (i = 0; i < p->n; i++)
		if (strcmp(p->table[i].section, section) == 0 &&
		    strcmp(p->table[i].key, key) == 0)
			break;
	if (i == p->n) {
		parse_fail(p, p->lineno, -EINVAL,
		    "unknown key \"%s\" in section [%s]", key, section);
		return 0;
	}
	v = &p->vals[i];
	if (v->set) {
		parse_fail(p, p->lineno, -EINVAL, "duplicate key \"%s\" in "
		    "section [%s], first set on line %d", key, section,
		    v->line);
		return 0;
	}
	r = parse_value(&p->table[i], value, v, why, sizeof(why));
	if (r < 0) {
		parse_fail(p, p->lineno, r, "%s", why);
		return 0;
	}
	v->set = true;
	v->line = p->lineno;
	return 1;
}

/* The end of every parse: inih's own verdict, then the first error. */
static int
parse_finish(struct conf_parse *p, int r)
{
	/* inih reports the first line it could not parse, which may come
	 * before the first line we rejected. */
	if (r > 0 && (p->err == 0 || (p->err_line > 0 && r < p->err_line))) {
		p->err = 0;
		parse_fail(p, r, -EINVAL, "syntax error, expected "
		    "\"[section]\" or \"key = value\"");
	} else if (r == -2) {
		parse_fail(p, 0, -ENOMEM, "out of memory");
	}
	return p->err;
}

/* Open p->path for a parse; on failure say why in err. */
static int
parse_open(struct conf_parse *p, char *err, size_t errlen)
{
	int r;

	if (errlen > 0)
		err[0] = '\0';
	p->f = fopen(p->path, "re");
	if (p->f != NULL)
		return 0;
	r = -errno;
	snprintf(err, errlen, "cannot open \"%s\": %s", p->path,
	    strerror(errno));
	return r;
}

int
conf_read_ini(const char *path, conf_raw_cb cb, void *arg, char *err,
    size_t errlen)
{
	struct conf_parse p = { .path = path, .raw = cb, .raw_arg = arg };
	int r;

	r = parse_open(&p, err, errlen);
	if (r < 0)
		return r;
	r = parse_finish(&p, ini_parse_stream(conf_reader, &p, conf_handler,
	    &p));
	if (r < 0)
		snprintf(err, errlen, "%s", p.msg);
	free(p.line);
	fclose(p.f);
	return r;
}

int
conf_load(const struct conf_key *table, size_t n, void *out,
    const char *path, char *err, size_t errlen)
{
	struct conf_parse p = {
		.table = table, .n = n, .path = path,
	};
	int r;

	r = parse_open(&p, err, errlen);
	if (r < 0)
		return r;
	p.vals = calloc(n > 0 ? n : 1, sizeof(*p.vals));
	if (p.vals == NULL) {
		fclose(p.f);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}

	r = parse_finish(&p, ini_parse_stream(conf_reader, &p, conf_handler,
	    &p));
	if (r == 0) {
		for (size_t i = 0; i < n; i++)
			if (p.vals[i].set)
				store_value(&table[i], &p.vals[i], out);
	} else {
		snprintf(err, errlen, "%s", p.msg);
	}
	for (size_t i = 0; i < n; i++)
		if (CONF_IS_STRING(table[i].type))
			free(p.vals[i].u.s);
	free(p.vals);
	free(p.line);
	fclose(p.f);
	return r;
}

static void
print_key(const struct conf_key *k, const void *out, FILE *f)
{
	const void *p = cfield(out, k);
	const char *s = NULL;
	char buf[64];
	int e;

	switch (k->type) {
	case CONF_BOOL:
		s = *(const bool *)p ? "yes" : "no";
		break;
	case CONF_INT:
	case CONF_SIZE_KIB:
	case CONF_DURATION_MS:
		format_value(buf, sizeof(buf), k, *(const int64_t *)p);
		s = buf;
		break;
	case CONF_ENUM:
		e = *(const int *)p;
		for (int c = 0; k->choices != NULL && k->choices[c] != NULL;
		    c++)
			if (c == e)
				s = k->choices[c];
		break;
	case CONF_STRING:
	case CONF_LISTEN:
		s = *(char *const *)p;
		break;
	}
	if (k->help != NULL)
		fprintf(f, "; %s\n", k->help);
	if (s == NULL)
		fprintf(f, "; %s is not set\n", k->key);
	else
		fprintf(f, "%s = %s\n", k->key, s);
}

int
conf_print(const struct conf_key *table, size_t n, const void *out,
    FILE *f)
{
	for (size_t i = 0; i < n; i++) {
		const char *section = table[i].section;
		size_t j;

		/* Each section once, even when the table interleaves them. */
		for (j = 0; j < i; j++)
			if (strcmp(table[j].section, section) == 0)
				break;
		if (j < i)
			continue;
		fprintf(f, "%s[%s]\n", i > 0 ? "\n" : "", section);
		for (j = i; j < n; j++)
			if (strcmp(table[j].section, section) == 0)
				print_key(&table[j], out, f);
	}
	fflush(f);
	return ferror(f) ? -EIO : 0;
}
