/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mm_test_steps: the reaction benchmark's workload. After <delay_ms> it
 * takes <step> more memory <count> times, one step every <period_ms>, and
 * keeps it all. Each step prints "steps: begin <n>." before it allocates
 * and "steps: held <MiB> MiB (<ms> ms)" once every page is resident, so
 * the host can time its reaction from the guest's console.
 *   mm_test_steps <step> <count> <period_ms> [delay_ms=0]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "guest_util.h"

int
main(int argc, char **argv)
{
	uint64_t step, t0;
	unsigned count, period_ms, delay_ms = 0, i;
	unsigned char *p;

	if (argc < 4) {
		fprintf(stderr, "usage: mm_test_steps <step> <count> "
		    "<period_ms> [delay_ms]\n");
		return 2;
	}
	step = guest_parse_size(argv[1]);
	count = (unsigned)atoi(argv[2]);
	period_ms = (unsigned)atoi(argv[3]);
	if (argc > 4)
		delay_ms = (unsigned)atoi(argv[4]);
	if (step == 0 || count == 0) {
		fprintf(stderr, "steps: bad arguments\n");
		return 2;
	}
	guest_sleep_ms(delay_ms);
	for (i = 1; i <= count; i++) {
		printf("steps: begin %u.\n", i);
		fflush(stdout);
		t0 = guest_now_ms();
		p = mmap(NULL, step, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED) {
			perror("steps: mmap");
			return 1;
		}
		guest_touch(p, step, (unsigned char)i);
		printf("steps: held %llu MiB (%llu ms)\n",
		    (unsigned long long)(i * step >> 20),
		    (unsigned long long)(guest_now_ms() - t0));
		fflush(stdout);
		guest_sleep_ms(period_ms);
	}
	printf("steps: done\n");
	fflush(stdout);
	for (;;)
		guest_sleep_ms(3600000);
}
