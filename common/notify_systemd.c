/* SPDX-License-Identifier: Apache-2.0 */
/*
 * daemon.h's notifications for the daemons: libsystemd's sd_notify(), the
 * only file that includes libsystemd. (mm-guest-agent links notify_raw.c,
 * which speaks the protocol itself, for its footprint.)
 */
#include <stdio.h>

#include <systemd/sd-daemon.h>

#include "daemon.h"

static void
notify(const char *state)
{
	sd_notify(0, state);
}

void
daemon_notify_ready(const char *status)
{
	char msg[512];

	snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%s",
	    status != NULL ? status : "");
	notify(msg);
}

void
daemon_notify_reloading(void)
{
	notify("RELOADING=1");
}

void
daemon_notify_stopping(void)
{
	notify("STOPPING=1");
}

void
daemon_notify_status(const char *status)
{
	char msg[512];

	snprintf(msg, sizeof(msg), "STATUS=%s", status);
	notify(msg);
}
