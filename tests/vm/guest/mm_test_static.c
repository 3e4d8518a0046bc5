/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mm_test_static: the seed's static workload. Holds <size> and rewrites it
 * every <period_ms> forever, so the pages stay resident and dirty (a page
 * written once could be reclaimed or swapped and the guest would look idle).
 *   mm_test_static <size> [period_ms=1000]
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "guest_util.h"

int
main(int argc, char **argv)
{
	unsigned period_ms = 1000;
	unsigned char v = 1;
	uint64_t size;
	void *p;

	if (argc < 2) {
		fprintf(stderr, "usage: mm_test_static <size> [period_ms]\n");
		return 2;
	}
	size = guest_parse_size(argv[1]);
	if (argc > 2)
		period_ms = (unsigned)atoi(argv[2]);
	p = mmap(NULL, size, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("static: mmap");
		return 1;
	}
	printf("static: holding %llu MiB\n", (unsigned long long)(size >> 20));
	fflush(stdout);
	for (;;) {
		guest_touch(p, size, v++);
		guest_sleep_ms(period_ms);
	}
}
