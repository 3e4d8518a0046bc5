/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mm_test_free: the free page reporting test's workload. After <delay_ms>
 * it takes <size> and touches every page ("free: held <MiB> MiB"), keeps
 * it <hold_ms>, gives it back ("free: freed <MiB> MiB") and then sleeps,
 * so the host can watch QEMU's resident memory follow the guest's.
 *   mm_test_free <size> <hold_ms> [delay_ms=0]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "guest_util.h"

int
main(int argc, char **argv)
{
	uint64_t size;
	unsigned hold_ms, delay_ms = 0;
	unsigned char *p;

	if (argc < 3) {
		fprintf(stderr, "usage: mm_test_free <size> <hold_ms> "
		    "[delay_ms]\n");
		return 2;
	}
	size = guest_parse_size(argv[1]);
	hold_ms = (unsigned)atoi(argv[2]);
	if (argc > 3)
		delay_ms = (unsigned)atoi(argv[3]);
	if (size == 0) {
		fprintf(stderr, "free: bad size\n");
		return 2;
	}
	guest_sleep_ms(delay_ms);
	p = mmap(NULL, size, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("free: mmap");
		return 1;
	}
	guest_touch(p, size, 1);
	printf("free: held %llu MiB\n", (unsigned long long)(size >> 20));
	fflush(stdout);
	guest_sleep_ms(hold_ms);
	if (munmap(p, size) < 0) {
		perror("free: munmap");
		return 1;
	}
	printf("free: freed %llu MiB\n", (unsigned long long)(size >> 20));
	fflush(stdout);
	for (;;)
		guest_sleep_ms(3600000);
}
