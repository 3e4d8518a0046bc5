/* SPDX-License-Identifier: Apache-2.0 */
/*
 * daemon.h's daemon_notify_*() on top of a file's own static notify();
 * included at the end of notify_raw.c and notify_systemd.c, the two ways
 * a program can talk to systemd, with what sends them: the watchdog and
 * the reload. Not for use elsewhere.
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

void
daemon_notify_watchdog(void)
{
	notify("WATCHDOG=1");
}

static void
watchdog_cb(uv_timer_t *t)
{
	(void)t;
	daemon_notify_watchdog();
}

int
daemon_watchdog_start(struct daemon_signals *s, uv_loop_t *loop)
{
	uint64_t ms = daemon_watchdog_ms();
	int r;

	s->watchdog_on = false;
	if (ms == 0)
		return 0;
	r = uv_timer_init(loop, &s->watchdog);
	if (r < 0)
		return r;
	s->watchdog_on = true;
	uv_unref((uv_handle_t *)&s->watchdog);
	log_debug("watchdog: WATCHDOG=1 every %llu ms",
	    (unsigned long long)(ms / 2 > 0 ? ms / 2 : 1));
	daemon_notify_watchdog();
	return uv_timer_start(&s->watchdog, watchdog_cb, ms / 2 > 0 ? ms / 2 : 1,
	    ms / 2 > 0 ? ms / 2 : 1);
}

int
daemon_reload_conf(const struct daemon_opts *opts,
    const struct conf_key *table, size_t n, void *conf, size_t size,
    const char *const *live, const int *log_level, const char *status)
{
	char err[512];
	int r;

	daemon_notify_reloading();
	log_info("reloading \"%s\"", opts->conf_path);
	r = conf_reload(table, n, conf, size, opts->conf_path, live, err,
	    sizeof(err));
	if (r < 0)
		log_warnx("reload refused, nothing changed: %s", err);
	else if (r == 0)
		log_info("reload: nothing to change");
	if (r > 0 && log_level != NULL)
		daemon_set_log_level(opts, *log_level);
	daemon_notify_ready(status);
	return r;
}

