/* SPDX-License-Identifier: Apache-2.0 */
#ifndef MM_CLOCK_H
#define MM_CLOCK_H

#include <stdint.h>
#include <time.h>

/*
 * Milliseconds of clock clk: CLOCK_REALTIME for times that leave the
 * process (reports, events, commands' expiry), CLOCK_MONOTONIC for
 * intervals.
 */
static inline uint64_t
clock_ms(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

#endif
