/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The xen driver: domains under /local/domain through libxenstore, driven by
 * watches. Not written yet: starting it fails with -ENOTSUP, so a collector
 * configured for xen says so instead of reporting nothing.
 */
#include <errno.h>

#include "hv/hv_impl.h"

static int
xen_start(struct hv *hv)
{
	return -ENOTSUP;
}

static void
xen_close(struct hv *hv)
{
	hv_closed(hv);
}

const struct hv_ops hv_xen_ops = {
	.name = "xen",
	.start = xen_start,
	.close = xen_close,
};
