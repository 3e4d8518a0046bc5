/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The log sink: one line per message on stderr, written with a single
 * write so lines from several processes sharing a terminal do not mix.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

static const char *log_progname = "mm";
static int log_verbose;
static bool log_prefix;

void
log_init(const char *progname, int verbose, bool prefix_priority)
{
	if (progname != NULL)
		log_progname = progname;
	log_verbose = verbose;
	log_prefix = prefix_priority;
}

bool
log_to_journal(void)
{
	return log_prefix;
}

const char *
log_name(void)
{
	return log_progname;
}

bool
log_debug_enabled(void)
{
	return log_verbose > 0;
}

static void
log_emit(int prio, const char *fmt, va_list ap, int errnum)
{
	char line[2048];
	int n = 0;

	if (log_prefix)
		n = snprintf(line, sizeof(line), "<%d>", prio);
	else
		n = snprintf(line, sizeof(line), "%s: ", log_progname);
	if (n < 0 || (size_t)n >= sizeof(line))
		n = 0;
	n += vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	if ((size_t)n >= sizeof(line) - 2)
		n = sizeof(line) - 2;
	if (errnum != 0) {
		n += snprintf(line + n, sizeof(line) - n, ": %s",
		    strerror(errnum));
		if ((size_t)n >= sizeof(line) - 2)
			n = sizeof(line) - 2;
	}
	line[n++] = '\n';
	/* Best effort: there is nowhere else to report a failed log write. */
	if (write(STDERR_FILENO, line, n) < 0)
		return;
}

#define LOG_BODY(prio, errnum)				\
	do {						\
		va_list ap;				\
		va_start(ap, fmt);			\
		log_emit((prio), fmt, ap, (errnum));	\
		va_end(ap);				\
	} while (0)

void
log_warn(const char *fmt, ...)
{
	int saved = errno;

	LOG_BODY(4, saved);
	errno = saved;
}

void
log_warnx(const char *fmt, ...)
{
	LOG_BODY(4, 0);
}

void
log_info(const char *fmt, ...)
{
	LOG_BODY(6, 0);
}

void
log_debug(const char *fmt, ...)
{
	if (log_verbose > 0)
		LOG_BODY(7, 0);
}

void
fatal(const char *fmt, ...)
{
	int saved = errno;

	LOG_BODY(2, saved);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	LOG_BODY(2, 0);
	exit(1);
}

bool
log_limit_ok(struct log_limit *l, uint64_t *ret_suppressed)
{
	uint64_t now = clock_ms(CLOCK_MONOTONIC);

	if (ret_suppressed != NULL)
		*ret_suppressed = 0;
	if (l->window_ms == 0 || now - l->window_ms >= LOG_LIMIT_WINDOW_MS) {
		if (ret_suppressed != NULL)
			*ret_suppressed = l->suppressed;
		l->window_ms = now;
		l->lines = 0;
		l->suppressed = 0;
	}
	if (l->lines < LOG_LIMIT_BURST) {
		l->lines++;
		return true;
	}
	l->suppressed++;
	return false;
}

void
log_warnx_limited(struct log_limit *l, const char *fmt, ...)
{
	char line[1024];
	uint64_t sup;
	va_list ap;

	if (!log_limit_ok(l, &sup))
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (sup > 0)
		log_warnx("%s (and %llu more not logged)", line,
		    (unsigned long long)sup);
	else
		log_warnx("%s", line);
}
