/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A guest's used memory, what its balloon holds inside MemTotal, and what
 * its kernel reserves: the one definition (guestmem.h).
 */
#include "guestmem.h"

uint64_t
gm_used_kib(uint64_t total_kib, uint64_t available_kib, bool has_in_total,
    uint64_t in_total_kib, bool has_actual, uint64_t actual_kib)
{
	uint64_t used, inflated = 0;

	used = available_kib < total_kib ? total_kib - available_kib : 0;
	/*
	 * A balloon with deflate-on-oom leaves MemTotal alone and holds its
	 * pages as used memory: take them out. A shrinking balloon lowers
	 * MemTotal itself, and then total is close to actual.
	 */
	if (has_in_total)
		inflated = in_total_kib;
	else if (has_actual && actual_kib > 0 && total_kib > actual_kib)
		inflated = total_kib - actual_kib;
	return used > inflated ? used - inflated : 0;
}

bool
gm_balloon_in_total(bool doo_known, bool doo, bool has_pages, uint64_t pages,
    uint64_t *ret_kib)
{
	*ret_kib = 0;
	if (!doo_known || (doo && !has_pages))
		return false;
	if (doo)
		*ret_kib = pages * 4;
	return true;
}

uint64_t
gm_reserved_kib(uint64_t max_kib, uint64_t total_kib, bool in_total,
    bool has_pages, uint64_t pages)
{
	uint64_t managed = total_kib;

	if (max_kib == 0 || total_kib == 0 || (!in_total && !has_pages))
		return 0;
	if (!in_total)
		managed += pages * 4;
	if (managed >= max_kib || max_kib - managed > max_kib / 4)
		return 0;
	return max_kib - managed;
}

bool
gm_sample_used_kib(const Mm__V1__GuestStats *g, bool doo_known, bool doo,
    bool has_actual, uint64_t actual_kib, uint64_t *ret_kib)
{
	const Mm__V1__Meminfo *mi = g->meminfo;
	const Mm__V1__Vmstat *vs = g->vmstat;
	uint64_t balloon;
	bool in_total = gm_balloon_in_total(doo_known, doo,
	    vs != NULL && vs->has_balloon_pages, vs != NULL ?
	    vs->balloon_pages : 0, &balloon);

	if (mi == NULL || !mi->has_total_kib || !mi->has_available_kib)
		return false;
	*ret_kib = gm_used_kib(mi->total_kib, mi->available_kib, in_total,
	    balloon, has_actual, actual_kib);
	return true;
}
