/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mm_test_mono: the seed's monotonic workload. Holds <low>, grows by <step>
 * every <period> up to <high>, holds it for <hold>, shrinks back to <low>
 * the same way and exits; held memory is rewritten every period so it stays
 * resident. Each change prints "mono: held <MiB> MiB" so a test can line the
 * host's view up with the guest's.
 *   mm_test_mono <low> <high> [step=25M] [period_ms=500] [hold_ms=2000]
 *                [delay_ms=0]
 * delay_ms: wait this long before taking anything (the host settles).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "guest_util.h"

#define MAX_CHUNKS 4096

static unsigned char *chunk[MAX_CHUNKS];
static size_t nchunks, chunk_len;

static void
rewrite(unsigned char v)
{
	size_t i;

	for (i = 0; i < nchunks; i++)
		guest_touch(chunk[i], chunk_len, v);
}

static void
set_held(size_t want, unsigned char v)
{
	while (nchunks < want) {
		void *p = mmap(NULL, chunk_len, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (p == MAP_FAILED) {
			perror("mono: mmap");
			exit(1);
		}
		chunk[nchunks++] = p;
	}
	while (nchunks > want)
		munmap(chunk[--nchunks], chunk_len);
	rewrite(v);
	printf("mono: held %zu MiB\n", nchunks * chunk_len >> 20);
	fflush(stdout);
}

int
main(int argc, char **argv)
{
	uint64_t low, high, step;
	unsigned period_ms = 500, hold_ms = 2000, delay_ms = 0, i;
	size_t n, nlow, nhigh;
	unsigned char v = 1;

	if (argc < 3) {
		fprintf(stderr, "usage: mm_test_mono <low> <high> [step] "
		    "[period_ms] [hold_ms] [delay_ms]\n");
		return 2;
	}
	low = guest_parse_size(argv[1]);
	high = guest_parse_size(argv[2]);
	step = argc > 3 ? guest_parse_size(argv[3]) : 25 << 20;
	if (argc > 4)
		period_ms = (unsigned)atoi(argv[4]);
	if (argc > 5)
		hold_ms = (unsigned)atoi(argv[5]);
	if (argc > 6)
		delay_ms = (unsigned)atoi(argv[6]);
	if (step == 0 || low > high || high / step >= MAX_CHUNKS) {
		fprintf(stderr, "mono: bad sizes\n");
		return 2;
	}
	guest_sleep_ms(delay_ms);
	printf("mono: start\n");
	fflush(stdout);
	chunk_len = step;
	nlow = low / step;
	nhigh = high / step;
	for (n = nlow; n <= nhigh; n++) {
		set_held(n, v++);
		guest_sleep_ms(period_ms);
	}
	for (i = 0; i < hold_ms / period_ms; i++) {
		rewrite(v++);
		guest_sleep_ms(period_ms);
	}
	for (n = nhigh; n-- > nlow;) {
		set_held(n, v++);
		guest_sleep_ms(period_ms);
	}
	printf("mono: done\n");
	return 0;
}
