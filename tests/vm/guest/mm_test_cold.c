/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mm_test_cold: the cold-memory test's workload. It takes <size>, touches
 * every page once ("cold: touched <MiB> MiB"), then touches the first
 * <hot> of it over and over (a page every 4 KiB, a pass every 100 ms) and
 * leaves the rest cold.
 *   mm_test_cold <size> <hot>
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "guest_util.h"

int
main(int argc, char **argv)
{
	uint64_t size, hot;
	unsigned char *p, v = 1;

	if (argc < 3) {
		fprintf(stderr, "usage: mm_test_cold <size> <hot>\n");
		return 2;
	}
	size = guest_parse_size(argv[1]);
	hot = guest_parse_size(argv[2]);
	if (size == 0 || hot > size) {
		fprintf(stderr, "cold: bad sizes\n");
		return 2;
	}
	p = mmap(NULL, size, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("cold: mmap");
		return 1;
	}
	guest_touch(p, size, v);
	printf("cold: touched %llu MiB, %llu MiB of it kept hot\n",
	    (unsigned long long)(size >> 20), (unsigned long long)(hot >> 20));
	fflush(stdout);
	for (;;) {
		guest_touch(p, hot, ++v);
		guest_sleep_ms(100);
	}
}
