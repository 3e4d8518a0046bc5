/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Metrics for Prometheus: a writer of the exposition text, in either of
 * the two formats Prometheus reads (OpenMetrics 1.0, which it asks for,
 * and the older text format 0.0.4, which promtool and curl get), and a
 * fixed-bucket histogram. Pure code; the HTTP endpoint that serves it is
 * metrics_http.c. A daemon writes every family in one pass from its own
 * state, on its loop, when a scrape asks (docs/metrics.md lists them).
 */
#ifndef MM_METRICS_H
#define MM_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum mx_type {
	MX_GAUGE,
	MX_COUNTER,	/* samples get "_total" */
	MX_HISTOGRAM,	/* samples are written by mx_hist() */
};

enum mx_format {
	MX_TEXT,		/* text/plain; version=0.0.4 */
	MX_OPENMETRICS,		/* application/openmetrics-text; 1.0.0 */
};

/* A fixed-bucket histogram: bounds ascending (static, at most MX_HIST_MAX
 * of them; +Inf is implied). Copy it freely. */
#define MX_HIST_MAX	16

struct mx_hist {
	const double *bounds;
	size_t n;
	uint64_t bucket[MX_HIST_MAX];	/* observations <= bounds[i], only
					 * in the first such bucket */
	uint64_t count;
	double sum;
};

/* An empty histogram on bounds (n of them, at most MX_HIST_MAX). */
void mx_hist_init(struct mx_hist *h, const double *bounds, size_t n);
void mx_hist_observe(struct mx_hist *h, double v);

/* Bounds for latencies in seconds: 1 ms to 10 s, and 100 us to 1 s. */
extern const double mx_bounds_latency[];
extern const size_t mx_bounds_latency_n;
extern const double mx_bounds_fast[];
extern const size_t mx_bounds_fast_n;

struct mx;

/* A writer in format f; NULL with errno ENOMEM. Free with mx_free(). */
struct mx *mx_new(enum mx_format f);
void mx_free(struct mx *m);

/*
 * Start the family name (a metric name, [a-zA-Z_:][a-zA-Z0-9_:]*; a
 * counter's without "_total") of type t, unit (a base unit such as
 * "bytes" or "seconds" that name ends with, or NULL) and help (one line).
 * Families must be unique within one exposition; their samples follow.
 */
void mx_family(struct mx *m, const char *name, enum mx_type t,
    const char *unit, const char *help);

/*
 * A sample of the current family: value v with nlabels label pairs (nlabels counts pairs)
 * (name, value, name, value...; values are escaped). A counter's sample
 * is named <family>_total.
 */
void mx_add(struct mx *m, double v, int nlabels, ...);
void mx_addu(struct mx *m, uint64_t v, int nlabels, ...);

/* Give every sample from here on the label name=value (both borrowed
 * until mx_finish()): a per-host daemon's host="<id>". */
void mx_const_label(struct mx *m, const char *name, const char *value);

/* A family of one sample without labels (but the constant one). */
void mx_single(struct mx *m, const char *name, enum mx_type t,
    const char *unit, const char *help, double v);

/* A histogram family's samples for h, with at most one label pair
 * (lname NULL: none). */
void mx_hist(struct mx *m, const struct mx_hist *h, const char *lname,
    const char *lvalue);

/* End the exposition ("# EOF" in OpenMetrics) and return the text and
 * its length, owned by m (valid until the next call on m). NULL with
 * errno ENOMEM when writing ran out of memory at any point. */
const char *mx_finish(struct mx *m, size_t *ret_len);

/* The Content-Type of format f, static. */
const char *mx_content_type(enum mx_format f);

/* The format to answer an HTTP Accept header with (NULL: text). */
enum mx_format mx_negotiate(const char *accept);

#endif
