/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Logging for mm programs: lines on stderr with sd-daemon "<N>" priority
 * prefixes, which journald turns into priorities. Library code in common/
 * logs at debug only; programs log once, where they decide.
 */
#ifndef MM_LOG_H
#define MM_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

/*
 * Set the program name shown in each line and the verbosity: 0 logs info
 * and above, 1 or more also debug. prefix_priority adds "<N>" prefixes
 * (set it when stderr goes to journald). Callable again at any time.
 */
void log_init(const char *progname, int verbose, bool prefix_priority);

/* True when debug messages are printed. */
bool log_debug_enabled(void);
/* True when log lines go to journald (stderr with priority prefixes). */
bool log_to_journal(void);
/* The program's name given to log_init(), static. */
const char *log_name(void);

/* log_warn and fatal append ": strerror(errno)"; the *x variants do not. */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * A limit on a repeated line (one refusal reason): at most LOG_LIMIT_BURST
 * lines per LOG_LIMIT_WINDOW_MS. Zero it to start. Every refusal is
 * counted by its caller; this only keeps a flood from flooding the log.
 */
#define LOG_LIMIT_BURST		5
#define LOG_LIMIT_WINDOW_MS	60000
struct log_limit {
	uint64_t window_ms;	/* start of the current window, monotonic */
	unsigned lines;		/* lines logged in it */
	uint64_t suppressed;	/* lines not logged in it */
};

/*
 * True when a line may be logged now. When a window opens after lines were
 * suppressed, *ret_suppressed (may be NULL) says how many, for the caller
 * to mention; else it is set to 0.
 */
bool log_limit_ok(struct log_limit *l, uint64_t *ret_suppressed);

/*
 * log_warnx() within l's rate: a refusal's line, which the caller counts
 * whether or not it is logged. The first line after some were suppressed
 * says how many.
 */
void log_warnx_limited(struct log_limit *l, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Log at critical priority and exit(1): before the loop runs only. */
void fatal(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

#endif
