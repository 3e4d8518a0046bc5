/* SPDX-License-Identifier: Apache-2.0 */
/*
 * daemon.h's notifications for the daemons: libsystemd's sd_notify(), the
 * only file that includes libsystemd. (mm-guest-agent links notify_raw.c,
 * which speaks the protocol itself, for its footprint.)
 */
#include <stdint.h>
#include <stdio.h>

#include <systemd/sd-daemon.h>

#include "daemon.h"
#include "log.h"

static void
notify(const char *state)
{
	sd_notify(0, state);
}

#include "notify_wrappers.h"
