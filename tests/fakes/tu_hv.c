/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers of the driver and collector tests; see tu_hv.h. */
#include <string.h>

#include "testutil.h"
#include "tu_hv.h"

struct hv_vm *
tu_hv_find(struct hv *hv, const char *id)
{
	return hv_find(hv, id);
}

bool
tu_run_until_fn(uv_loop_t *loop, bool (*cond)(void), unsigned ms)
{
	uint64_t end;

	uv_update_time(loop);
	end = uv_now(loop) + ms;
	while (!cond() && uv_now(loop) < end) {
		bool no = false;

		tu_run_until(loop, &no, 10);
	}
	return cond();
}
