/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mmctl's private header: the session every subcommand that talks to the
 * broker uses, and the subcommands.
 */
#ifndef MM_MMCTL_H
#define MM_MMCTL_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "bus.h"
#include "msg.h"

/* A connection to the broker with a private reply queue. */
struct session {
	uv_loop_t loop;
	struct bus *bus;
	bool up;
	bool failed;
	char reason[512];
	char reply_queue[128];
	bool done;
	int status;		/* the subcommand's exit status */
	uv_signal_t sigint;
	uv_timer_t deadline;
	struct msg_handler handler;	/* the one message type expected */
	void *arg;
};

/*
 * Connect to url as app "mmctl", with an exclusive reply queue bound (when
 * bind_events is not NULL) to mm.events with those routing keys
 * (NULL-terminated); messages of type t on it go to fn with arg, anything
 * else is dead-lettered. Returns 0, or exits(1) with a clear message when
 * the broker cannot be reached within 10 s.
 */
int session_open(struct session *s, const char *url,
    const char *const *bind_events, enum msg_type t, msg_handler_cb fn,
    void *arg);

/* Run the loop until s->done, Ctrl-C, or timeout_ms (0: none); returns
 * s->status (or 130 after Ctrl-C, 3 after the timeout). */
int session_run(struct session *s, unsigned timeout_ms);

void session_close(struct session *s);

/* Subcommands: each returns mmctl's exit status. */
int cmd_status(const char *url, int argc, char **argv);
int cmd_top(const char *url, int argc, char **argv);
int cmd_policy(const char *url, int argc, char **argv);
int cmd_policy_show(const char *url, bool json);
int cmd_events(const char *url, int argc, char **argv);
int cmd_sim(int argc, char **argv);

/* "1.5 GiB", "512 MiB": KiB for people. */
const char *fmt_kib(char *buf, size_t size, uint64_t kib);

#endif
