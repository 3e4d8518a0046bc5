/* SPDX-License-Identifier: Apache-2.0 */
/*
 * daemon.h's notifications for the daemons: libsystemd's sd_notify(), the
 * only file that includes libsystemd. (mm-guest-agent links notify_raw.c,
 * which speaks the protocol itself, for its footprint.)
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>

#include "daemon.h"
#include "log.h"

static void
notify(const char *state)
{
	sd_notify(0, state);
}

void
daemon_journal_decision(const char *host_id, const char *vm_id,
    const char *reason, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!log_to_journal() || sd_journal_send("MESSAGE=%s", msg,
	    "PRIORITY=6", "SYSLOG_IDENTIFIER=%s", log_name(),
	    "HOST_ID=%s", host_id != NULL ? host_id : "",
	    "VM_ID=%s", vm_id != NULL ? vm_id : "",
	    "REASON=%s", reason != NULL ? reason : "", NULL) < 0)
		log_info("%s", msg);
}

#include "notify_wrappers.h"
