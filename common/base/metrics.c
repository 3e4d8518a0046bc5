/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The exposition writer; see metrics.h. Both formats share samples and
 * label escaping; they differ in a counter's family name (OpenMetrics
 * names the family without "_total", the text format with it), in # UNIT
 * lines and in the final # EOF.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

const double mx_bounds_latency[] = { 0.001, 0.0025, 0.005, 0.01, 0.025,
	0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 };
const size_t mx_bounds_latency_n = sizeof(mx_bounds_latency) /
    sizeof(mx_bounds_latency[0]);
const double mx_bounds_fast[] = { 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1 };
const size_t mx_bounds_fast_n = sizeof(mx_bounds_fast) /
    sizeof(mx_bounds_fast[0]);

struct mx {
	enum mx_format f;
	char *buf;
	size_t len;
	size_t cap;
	bool failed;
	char family[128];
	enum mx_type type;
	const char *const_name;	/* a label of every sample, or NULL */
	const char *const_value;
};

void
mx_hist_init(struct mx_hist *h, const double *bounds, size_t n)
{
	memset(h, 0, sizeof(*h));
	h->bounds = bounds;
	h->n = n < MX_HIST_MAX ? n : MX_HIST_MAX;
}

void
mx_hist_observe(struct mx_hist *h, double v)
{
	size_t i;

	if (!isfinite(v))
		return;
	for (i = 0; i < h->n && v > h->bounds[i]; i++)
		;
	if (i < h->n)
		h->bucket[i]++;
	h->count++;
	h->sum += v;
}

struct mx *
mx_new(enum mx_format f)
{
	struct mx *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	m->f = f;
	return m;
}

void
mx_free(struct mx *m)
{
	if (m == NULL)
		return;
	free(m->buf);
	free(m);
}

static void
put(struct mx *m, const char *s, size_t n)
{
	if (m->failed)
		return;
	if (m->len + n + 1 > m->cap) {
		size_t cap = m->cap > 0 ? m->cap : 4096;
		char *b;

		while (m->len + n + 1 > cap)
			cap *= 2;
		b = realloc(m->buf, cap);
		if (b == NULL) {
			m->failed = true;
			return;
		}
		m->buf = b;
		m->cap = cap;
	}
	memcpy(m->buf + m->len, s, n);
	m->len += n;
	m->buf[m->len] = '\0';
}

static void
puts_(struct mx *m, const char *s)
{
	put(m, s, strlen(s));
}

static void __attribute__((format(printf, 2, 3)))
putf(struct mx *m, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		put(m, tmp, (size_t)n < sizeof(tmp) ? (size_t)n :
		    sizeof(tmp) - 1);
}

/* A label value or help text: backslash, newline (and in label values
 * the double quote) escaped. */
static void
put_escaped(struct mx *m, const char *s, bool quote)
{
	const char *p;

	for (p = s; *p != '\0'; p++) {
		if (*p == '\\')
			puts_(m, "\\\\");
		else if (*p == '\n')
			puts_(m, "\\n");
		else if (*p == '"' && quote)
			puts_(m, "\\\"");
		else
			put(m, p, 1);
	}
}

void
mx_family(struct mx *m, const char *name, enum mx_type t, const char *unit,
    const char *help)
{
	static const char *const types[] = { "gauge", "counter",
		"histogram" };
	const char *suffix = "";

	snprintf(m->family, sizeof(m->family), "%s", name);
	m->type = t;
	if (t == MX_COUNTER && m->f == MX_TEXT)
		suffix = "_total";
	putf(m, "# TYPE %s%s %s\n", name, suffix, types[t]);
	if (unit != NULL && m->f == MX_OPENMETRICS)
		putf(m, "# UNIT %s %s\n", name, unit);
	putf(m, "# HELP %s%s ", name, suffix);
	put_escaped(m, help, false);
	puts_(m, "\n");
}

static void
put_label(struct mx *m, const char *k, const char *v, bool first)
{
	if (!first)
		puts_(m, ",");
	puts_(m, k);
	puts_(m, "=\"");
	put_escaped(m, v != NULL ? v : "", true);
	puts_(m, "\"");
}

static void
put_labels(struct mx *m, int nlabels, va_list ap)
{
	bool first = true;
	int i;

	if (nlabels <= 0 && m->const_name == NULL)
		return;
	puts_(m, "{");
	if (m->const_name != NULL) {
		put_label(m, m->const_name, m->const_value, true);
		first = false;
	}
	for (i = 0; i < nlabels; i++) {
		const char *k = va_arg(ap, const char *);
		const char *v = va_arg(ap, const char *);

		put_label(m, k, v, first);
		first = false;
	}
	puts_(m, "}");
}

void
mx_const_label(struct mx *m, const char *name, const char *value)
{
	m->const_name = name;
	m->const_value = value;
}

static void
sample_start(struct mx *m)
{
	puts_(m, m->family);
	if (m->type == MX_COUNTER)
		puts_(m, "_total");
}

/* A sample of the current family with value text v. */
static void
vsample(struct mx *m, const char *v, int nlabels, va_list ap)
{
	sample_start(m);
	put_labels(m, nlabels, ap);
	puts_(m, " ");
	puts_(m, v);
	puts_(m, "\n");
}

static void
format_value(char *buf, size_t size, double v)
{
	if (isnan(v))
		snprintf(buf, size, "NaN");
	else if (isinf(v))
		snprintf(buf, size, v > 0 ? "+Inf" : "-Inf");
	else if (v == floor(v) && fabs(v) < 9007199254740992.0)
		snprintf(buf, size, "%.0f", v);
	else
		snprintf(buf, size, "%.9g", v);
}

void
mx_add(struct mx *m, double v, int nlabels, ...)
{
	char text[64];
	va_list ap;

	format_value(text, sizeof(text), v);
	va_start(ap, nlabels);
	vsample(m, text, nlabels, ap);
	va_end(ap);
}

void
mx_addu(struct mx *m, uint64_t v, int nlabels, ...)
{
	char text[32];
	va_list ap;

	snprintf(text, sizeof(text), "%" PRIu64, v);
	va_start(ap, nlabels);
	vsample(m, text, nlabels, ap);
	va_end(ap);
}

void
mx_single(struct mx *m, const char *name, enum mx_type t, const char *unit,
    const char *help, double v)
{
	mx_family(m, name, t, unit, help);
	mx_add(m, v, 0);
}

static void
hist_line(struct mx *m, const char *suffix, const char *lname,
    const char *lvalue, const char *le)
{
	bool first = true;

	puts_(m, m->family);
	puts_(m, suffix);
	if (lname == NULL && le == NULL && m->const_name == NULL)
		return;
	puts_(m, "{");
	if (m->const_name != NULL) {
		put_label(m, m->const_name, m->const_value, true);
		first = false;
	}
	if (lname != NULL) {
		put_label(m, lname, lvalue, first);
		first = false;
	}
	if (le != NULL)
		put_label(m, "le", le, first);
	puts_(m, "}");
}

void
mx_hist(struct mx *m, const struct mx_hist *h, const char *lname,
    const char *lvalue)
{
	uint64_t cum = 0;
	char le[32];
	size_t i;

	for (i = 0; i < h->n; i++) {
		cum += h->bucket[i];
		snprintf(le, sizeof(le), "%g", h->bounds[i]);
		hist_line(m, "_bucket", lname, lvalue, le);
		putf(m, " %" PRIu64 "\n", cum);
	}
	hist_line(m, "_bucket", lname, lvalue, "+Inf");
	putf(m, " %" PRIu64 "\n", h->count);
	hist_line(m, "_count", lname, lvalue, NULL);
	putf(m, " %" PRIu64 "\n", h->count);
	hist_line(m, "_sum", lname, lvalue, NULL);
	format_value(le, sizeof(le), h->sum);
	puts_(m, " ");
	puts_(m, le);
	puts_(m, "\n");
}

const char *
mx_finish(struct mx *m, size_t *ret_len)
{
	if (m->f == MX_OPENMETRICS)
		puts_(m, "# EOF\n");
	if (m->failed || m->buf == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	*ret_len = m->len;
	return m->buf;
}

const char *
mx_content_type(enum mx_format f)
{
	return f == MX_OPENMETRICS ?
	    "application/openmetrics-text; version=1.0.0; charset=utf-8" :
	    "text/plain; version=0.0.4; charset=utf-8";
}

enum mx_format
mx_negotiate(const char *accept)
{
	/* Prometheus asks for OpenMetrics first and text as a fallback;
	 * anything that names OpenMetrics gets it. */
	if (accept != NULL && strstr(accept, "application/openmetrics-text"))
		return MX_OPENMETRICS;
	return MX_TEXT;
}
