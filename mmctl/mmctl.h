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
	char unique[64];	/* <host>.<pid>, for names of this run */
	char reply_queue[128];
	bool done;
	int status;		/* the subcommand's exit status */
	uv_signal_t sigint;
	uv_timer_t deadline;
	struct msg_handler handler;	/* the one message type expected */
	void *arg;
};

/*
 * Prepare s: a loop, a bus to broker (url, TLS files and password, which
 * main() has checked; app_id and timeouts are the session's) not started
 * yet, Ctrl-C handling; messages given to session_dispatch_cb() of type t
 * go to fn with arg. Exits(1) with a clear message when the bus cannot be
 * made. Declare and
 * consume on s->bus, then session_connect().
 */
void session_init(struct session *s, const struct bus_config *broker, enum msg_type t,
    msg_handler_cb fn, void *arg);

/*
 * Start the bus and wait until it is up: returns 0, or -ENOENT when the
 * broker says a queue it was to consume does not exist (s->reason says
 * which); exits(1) with a clear message when the broker refuses the
 * credentials or cannot be reached within 10 s.
 */
int session_connect(struct session *s);

/* A bus_handler_cb for bus_consume(..., s): msg_dispatch() to s's
 * handler. */
enum bus_disposition session_dispatch_cb(struct bus *bus,
    const struct bus_delivery *d, void *arg);

/*
 * Connect to broker as app "mmctl", with an exclusive reply queue bound (when
 * bind_events is not NULL) to mm.events with those routing keys
 * (NULL-terminated); messages of type t on it go to fn with arg, anything
 * else is dead-lettered. Returns 0, or exits(1) with a clear message when
 * the broker cannot be reached within 10 s.
 */
int session_open(struct session *s, const struct bus_config *broker,
    const char *const *bind_events, enum msg_type t, msg_handler_cb fn,
    void *arg);

/* Run the loop until s->done, Ctrl-C, or timeout_ms (0: none); returns
 * s->status (or 130 after Ctrl-C, 3 after the timeout). */
int session_run(struct session *s, unsigned timeout_ms);

void session_close(struct session *s);

#define REPLIES_MAX	64

/* The status replies of every scheduler to one request (status.c). */
struct gather {
	struct session s;
	char correlation[64];
	Mm__V1__StatusReply *replies[REPLIES_MAX];
	size_t n;
	uint64_t last_ms;
	uv_timer_t quiet;
};

/* Open g's session to broker (exits(1) as session_open() does). Close with
 * gather_close(), which frees the replies. */
void gather_open(struct gather *g, const struct bus_config *broker);

/*
 * Ask every scheduler (with host not NULL: about that host only, "-" for
 * none; with guests: each host's VMs too) and wait for the replies, which
 * g keeps until the next call. Returns 0 with g->replies filled, 3 when
 * none answered within 3 s, or another exit status.
 */
int gather(struct gather *g, const char *host, bool guests);
void gather_close(struct gather *g);

/* "enforce", "shadow", "off", or "?" for anything else. */
const char *mode_name(Mm__V1__PolicyMode m);

/* Subcommands: each returns mmctl's exit status. */
int cmd_status(const struct bus_config *broker, int argc, char **argv);
int cmd_top(const struct bus_config *broker, int argc, char **argv);
int cmd_policy(const struct bus_config *broker, int argc, char **argv);
int cmd_events(const struct bus_config *broker, int argc, char **argv);
int cmd_sim(int argc, char **argv);

/* "1.5 GiB", "512 MiB": KiB for people. */
const char *fmt_kib(char *buf, size_t size, uint64_t kib);

#endif
