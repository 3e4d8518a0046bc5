/* SPDX-License-Identifier: Apache-2.0 */
/*
 * /proc/meminfo, /proc/vmstat and /proc/pressure/memory as the collector
 * and the guest agent read them (common/host/hoststats.c's scanners,
 * behind hs_load_*() and hs_pread_meminfo()); the first input byte picks
 * the file. Every value kept is within its table's bound, a part never
 * exceeds its whole, and a guest sample made of them validates as the
 * agent's frame would.
 */
#include <string.h>

#include "fuzz.h"
#include "hoststats.h"
#include "msg.h"

static void
check_fields(const struct hs_fields *fs, const void *m)
{
	size_t i, k;

	for (i = 0; i < fs->n; i++) {
		const struct hs_field *f = &fs->f[i];

		if (!hs_has(f, m))
			continue;
		if (f->pct) {
			FZ_CHECK(hs_pct(f, m) >= 0 && hs_pct(f, m) <= 100);
			continue;
		}
		FZ_CHECK(hs_u64(f, m) <= f->max);
		if (f->part_of == NULL)
			continue;
		for (k = 0; k < fs->n; k++)
			if (strcmp(fs->f[k].kernel, f->part_of) == 0 &&
			    hs_has(&fs->f[k], m))
				FZ_CHECK(hs_u64(f, m) <= hs_u64(&fs->f[k], m));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Mm__V1__GuestStats g = MM__V1__GUEST_STATS__INIT;
	Mm__V1__Meminfo mi;
	Mm__V1__Vmstat vs;
	Mm__V1__Psi psi;
	struct hs_scan sc = { 0 };
	const char *text;
	char why[256];
	size_t len;

	if (size < 1)
		return 0;
	/* The scanners take text that need not end in a NUL: give them
	 * exactly the bytes, so that ASan sees any read past them. */
	text = (const char *)data + 1;
	len = size - 1;
	g.vm_id = "fuzz";
	switch (data[0] % 3) {
	case 0:
		hs_scan_meminfo(text, len, &mi, &sc);
		check_fields(&hs_meminfo_fields, &mi);
		g.meminfo = &mi;
		break;
	case 1:
		hs_scan_vmstat(text, len, &vs, &sc);
		check_fields(&hs_vmstat_fields, &vs);
		g.vmstat = &vs;
		break;
	default:
		hs_scan_psi(text, len, &psi, &sc);
		check_fields(&hs_psi_fields, &psi);
		g.psi = &psi;
		break;
	}
	FZ_CHECK(!sc.truncated);
	if (msg_validate(MSG_GUEST_STATS, &g.base, why, sizeof(why)) < 0) {
		fprintf(stderr, "scanned values refused: %s\n", why);
		FZ_CHECK(0);
	}
	return 0;
}
