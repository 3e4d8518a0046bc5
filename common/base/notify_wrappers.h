/* SPDX-License-Identifier: Apache-2.0 */
/*
 * daemon.h's daemon_notify_*() on top of a file's own static notify();
 * included at the end of notify_raw.c and notify_systemd.c, the two ways
 * a program can talk to systemd. Not for use elsewhere.
 */
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
