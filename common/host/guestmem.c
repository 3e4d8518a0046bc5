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
