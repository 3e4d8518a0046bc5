/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Small helpers the guest workload programs share: sizes with K/M/G
 * suffixes, a monotonic clock and writing memory so it stays resident.
 * Header-only so that each program is one static binary of one file.
 */
#ifndef MM_GUEST_UTIL_H
#define MM_GUEST_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* "50M" -> bytes; a bare number is MiB, as in the seed's mm_test_mono.
 * Exits with status 2 on garbage. */
static inline uint64_t
guest_parse_size(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);

	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	case 'm': case 'M': end++; /* fallthrough */
	case '\0': v <<= 20; break;
	default: break;
	}
	if (end == s || *end != '\0') {
		fprintf(stderr, "bad size \"%s\"\n", s);
		exit(2);
	}
	return v;
}

static inline uint64_t
guest_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static inline void
guest_sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* Write one byte per page so every page is resident and dirty. */
static inline void
guest_touch(unsigned char *p, size_t len, unsigned char v)
{
	size_t i;

	for (i = 0; i < len; i += 4096)
		p[i] = v;
}

#endif
