/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the /proc parsers against fixture trees under
 * tests/fixtures/proc/: a normal guest, both balloon styles, kernels
 * without PSI or with the old refault counter, and hostile content that
 * must lose exactly the bad fields and keep the good ones.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "procfs.h"
#include "testutil.h"

#define BIT(x) (1u << (x))
#define ALL(n) ((1u << (n)) - 1)

static char *
fixture(const char *name)
{
	char rel[256];

	snprintf(rel, sizeof(rel), "tests/fixtures/proc/%s", name);
	return tu_source_path(rel);
}

static void
test_procfs_normal(void **state)
{
	char *root = fixture("normal");
	struct procfs_meminfo m;
	struct procfs_vmstat v;
	struct procfs_psi p;

	assert_int_equal(procfs_read_meminfo(root, &m), 0);
	assert_int_equal(m.have, ALL(PROCFS_MEM_COUNT));
	assert_int_equal(m.bad, 0);
	assert_int_equal(m.kib[PROCFS_MEM_TOTAL], 4028464);
	assert_int_equal(m.kib[PROCFS_MEM_FREE], 2211948);
	assert_int_equal(m.kib[PROCFS_MEM_AVAILABLE], 3301520);
	assert_int_equal(m.kib[PROCFS_MEM_CACHED], 1176400);
	assert_int_equal(m.kib[PROCFS_MEM_SWAP_TOTAL], 1048572);
	assert_int_equal(m.kib[PROCFS_MEM_SWAP_FREE], 1040380);
	assert_int_equal(m.kib[PROCFS_MEM_ANON], 320288);
	assert_int_equal(m.kib[PROCFS_MEM_ACTIVE_FILE], 512472);
	assert_int_equal(m.kib[PROCFS_MEM_INACTIVE_FILE], 643672);
	assert_int_equal(m.kib[PROCFS_MEM_SHMEM], 72288);

	assert_int_equal(procfs_read_vmstat(root, &v), 0);
	/* Everything but the balloon: this guest has none. */
	assert_int_equal(v.have, ALL(PROCFS_VM_COUNT) &
	    ~BIT(PROCFS_VM_BALLOON));
	assert_int_equal(v.count[PROCFS_VM_MAJOR_FAULTS], 5872);
	assert_int_equal(v.count[PROCFS_VM_SWAP_IN], 129);
	assert_int_equal(v.count[PROCFS_VM_SWAP_OUT], 2048);
	assert_int_equal(v.count[PROCFS_VM_REFAULT], 17 + 4203);
	assert_int_equal(v.count[PROCFS_VM_OOM_KILLS], 2);

	assert_int_equal(procfs_read_psi(root, &p), 0);
	assert_int_equal(p.have, ALL(PROCFS_PSI_COUNT) |
	    PROCFS_PSI_HAVE_SOME_TOTAL | PROCFS_PSI_HAVE_FULL_TOTAL);
	assert_int_equal(p.bad, 0);
	assert_true(p.pct[PROCFS_PSI_SOME_AVG10] == 1.52);
	assert_true(p.pct[PROCFS_PSI_SOME_AVG60] == 0.48);
	assert_true(p.pct[PROCFS_PSI_SOME_AVG300] == 0.10);
	assert_true(p.pct[PROCFS_PSI_FULL_AVG10] == 0.40);
	assert_true(p.pct[PROCFS_PSI_FULL_AVG300] == 0.03);
	assert_int_equal(p.some_total_us, 1843210);
	assert_int_equal(p.full_total_us, 402117);
	free(root);
}

/* A balloon that takes memory away shrinks MemTotal itself. */
static void
test_procfs_balloon_shrinks_total(void **state)
{
	char *root = fixture("balloon");
	struct procfs_meminfo m;

	assert_int_equal(procfs_read_meminfo(root, &m), 0);
	assert_int_equal(m.have, ALL(PROCFS_MEM_COUNT));
	assert_int_equal(m.kib[PROCFS_MEM_TOTAL], 1015808);
	assert_int_equal(m.kib[PROCFS_MEM_AVAILABLE], 312004);
	free(root);
}

/* With deflate-on-oom MemTotal stays and the balloon hides in "used". */
static void
test_procfs_deflate_on_oom(void **state)
{
	char *root = fixture("deflate-on-oom");
	struct procfs_meminfo m;

	assert_int_equal(procfs_read_meminfo(root, &m), 0);
	assert_int_equal(m.have, ALL(PROCFS_MEM_COUNT));
	assert_int_equal(m.kib[PROCFS_MEM_TOTAL], 4028464);
	assert_int_equal(m.kib[PROCFS_MEM_FREE], 81920);
	assert_int_equal(m.kib[PROCFS_MEM_AVAILABLE], 190000);
	free(root);
}

static void
test_procfs_no_psi(void **state)
{
	char *root = fixture("no-psi");
	struct procfs_psi p = { .have = 12345 };

	assert_int_equal(procfs_read_psi(root, &p), -ENOENT);
	assert_int_equal(p.have, 12345);	/* untouched on error */
	free(root);
}

static void
test_procfs_old_refault(void **state)
{
	char *root = fixture("old-kernel");
	struct procfs_vmstat v;

	assert_int_equal(procfs_read_vmstat(root, &v), 0);
	assert_int_equal(v.have, BIT(PROCFS_VM_MAJOR_FAULTS) |
	    BIT(PROCFS_VM_SWAP_IN) | BIT(PROCFS_VM_SWAP_OUT) |
	    BIT(PROCFS_VM_REFAULT));
	assert_int_equal(v.count[PROCFS_VM_REFAULT], 31337);
	assert_int_equal(v.count[PROCFS_VM_MAJOR_FAULTS], 77);
	free(root);
}

static void
test_procfs_hostile(void **state)
{
	char *root = fixture("hostile");
	struct procfs_meminfo m;
	struct procfs_vmstat v;
	struct procfs_psi p;

	assert_int_equal(procfs_read_meminfo(root, &m), 0);
	assert_int_equal(m.have, BIT(PROCFS_MEM_TOTAL) |
	    BIT(PROCFS_MEM_SWAP_TOTAL) | BIT(PROCFS_MEM_SHMEM));
	assert_int_equal(m.kib[PROCFS_MEM_TOTAL], 2097152);
	assert_int_equal(m.kib[PROCFS_MEM_SHMEM], 2048);	/* first one */
	assert_int_equal(m.kib[PROCFS_MEM_SWAP_FREE], 0);
	assert_int_equal(m.bad, 13);

	assert_int_equal(procfs_read_vmstat(root, &v), 0);
	assert_int_equal(v.have, BIT(PROCFS_VM_REFAULT) |
	    BIT(PROCFS_VM_OOM_KILLS));
	assert_int_equal(v.count[PROCFS_VM_REFAULT], 3);
	assert_int_equal(v.count[PROCFS_VM_OOM_KILLS], 3);
	assert_int_equal(v.bad, 4);

	assert_int_equal(procfs_read_psi(root, &p), 0);
	assert_int_equal(p.have, BIT(PROCFS_PSI_FULL_AVG10) |
	    BIT(PROCFS_PSI_FULL_AVG60) | BIT(PROCFS_PSI_FULL_AVG300) |
	    PROCFS_PSI_HAVE_FULL_TOTAL);
	assert_true(p.pct[PROCFS_PSI_FULL_AVG60] == 0.20);
	assert_int_equal(p.full_total_us, 4);
	assert_int_equal(p.bad, 2);
	free(root);
}

/* The balloon's pages: the gauge where the kernel has it, else what went
 * in less what came out. */
static void
test_procfs_balloon_pages(void **state)
{
	static const char now[] = "nr_free_pages 10\nnr_balloon_pages 2560\n"
	    "balloon_inflate 9000\nballoon_deflate 100\n";
	static const char old[] = "balloon_inflate 9000\nballoon_deflate 100\n";
	static const char odd[] = "balloon_inflate 100\nballoon_deflate 9000\n";
	struct procfs_vmstat v;

	procfs_parse_vmstat(now, strlen(now), &v);
	assert_int_equal(v.have, BIT(PROCFS_VM_BALLOON));
	assert_int_equal(v.count[PROCFS_VM_BALLOON], 2560);
	procfs_parse_vmstat(old, strlen(old), &v);
	assert_int_equal(v.have, BIT(PROCFS_VM_BALLOON));
	assert_int_equal(v.count[PROCFS_VM_BALLOON], 8900);
	/* More out than in makes no sense: unknown. */
	procfs_parse_vmstat(odd, strlen(odd), &v);
	assert_int_equal(v.have, 0);
}

/* Strings that must not crash or yield a value. */
static void
test_procfs_garbage_strings(void **state)
{
	static const char *const texts[] = {
		"", "\n\n\n", "MemTotal:", "MemTotal: kB", "MemTotal: 1 kB x",
		"MemTotal:\t\t 12 kB trailing", "some", "some avg10=",
		"some avg10=1.234 avg60=0 avg300=0 total=1",
		"some avg10=1. avg60=0 avg300=0 total=1",
		"some avg10=nan avg60=0 avg300=0 total=1",
		"some avg10=1 avg60=0 avg300=0 total=",
		"some avg10=1 avg60=0 avg300=0 total=9223372036854775808",
		"full avg10=0 avg60=0 avg300=0 total=1 extra=2",
	};
	struct procfs_meminfo m;
	struct procfs_vmstat v;
	struct procfs_psi p;
	char big[600];

	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		procfs_parse_meminfo(texts[i], strlen(texts[i]), &m);
		procfs_parse_vmstat(texts[i], strlen(texts[i]), &v);
		procfs_parse_psi(texts[i], strlen(texts[i]), &p);
		assert_int_equal(m.have, 0);
		assert_int_equal(v.have, 0);
		assert_int_equal(p.have, 0);
	}
	/* An overlong line is dropped even if it starts well. */
	memset(big, ' ', sizeof(big));
	memcpy(big, "MemTotal: 1", 11);
	memcpy(big + sizeof(big) - 3, " kB", 3);
	procfs_parse_meminfo(big, sizeof(big), &m);
	assert_int_equal(m.have, 0);
	assert_int_equal(m.bad, 1);
	/* Not NUL-terminated: only len bytes count. */
	procfs_parse_meminfo("MemTotal: 12 kB\nMemFree: 3 kB", 16, &m);
	assert_int_equal(m.have, BIT(PROCFS_MEM_TOTAL));
}

/* A file larger than the buffer loses its last partial line only. */
static void
test_procfs_truncated(void **state)
{
	char *dir = tu_tmpdir(), *text, *p;
	struct procfs_vmstat v;
	size_t n = 0;

	text = malloc(PROCFS_FILE_MAX + 4096);
	p = text;
	p += sprintf(p, "pgmajfault 42\n");
	while ((size_t)(p - text) < PROCFS_FILE_MAX + 100)
		p += sprintf(p, "nr_filler_%zu 1\n", n++);
	sprintf(p, "oom_kill 7\n");
	free(tu_write_file(dir, "vmstat", text));
	assert_int_equal(procfs_read_vmstat(dir, &v), 0);
	assert_true(v.truncated);
	assert_int_equal(v.bad, 0);
	assert_int_equal(v.have, BIT(PROCFS_VM_MAJOR_FAULTS));
	assert_int_equal(v.count[PROCFS_VM_MAJOR_FAULTS], 42);
	free(text);
	tu_rmtree(dir);
	free(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_procfs_normal),
		cmocka_unit_test(test_procfs_balloon_shrinks_total),
		cmocka_unit_test(test_procfs_deflate_on_oom),
		cmocka_unit_test(test_procfs_no_psi),
		cmocka_unit_test(test_procfs_old_refault),
		cmocka_unit_test(test_procfs_hostile),
		cmocka_unit_test(test_procfs_balloon_pages),
		cmocka_unit_test(test_procfs_garbage_strings),
		cmocka_unit_test(test_procfs_truncated),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
