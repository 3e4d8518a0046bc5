/* SPDX-License-Identifier: Apache-2.0 */
/* The [bus] configuration section to a bus_config (bus_conf.h). */
#include <string.h>

#include "bus_conf.h"

void
bus_conf_apply(const struct bus_conf *c, const char *app_id,
    struct bus_config *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->url = c->url;
	ret->app_id = app_id;
	ret->heartbeat_s = (unsigned)((c->heartbeat_ms + 999) / 1000);
	ret->prefetch = (unsigned)c->prefetch;
	ret->outbox_max = (size_t)c->outbox;
}
