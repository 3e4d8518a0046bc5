/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The kvm driver (common/host/hv/kvm.c, agentconn.c) reading what a
 * hostile VM sends, through its real sockets: a scratch directory holds
 * fuzz.qmp and fuzz.agent, on which this process listens; per input a new
 * driver finds the VM, connects, and the input is written to one socket
 * followed by end-of-file; the input is done when the driver has closed
 * that connection, and the driver is closed after it.
 *   FZ_AGENT defined: the input is the agent's channel (4-byte big-endian
 *   length, GuestStats frames, up to frame_max); QMP stays silent.
 *   Otherwise: the input is the QMP stream (greeting, replies to ids 1,
 *   2..., events, one JSON object a line, lines up to qmp_line_max), the
 *   agent's socket absent (no_agent).
 * Every sample the driver hands out must validate and carry the source
 * the driver sets; a BALLOON event's sizes come from non-negative bytes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <uv.h>

#include "fuzz.h"
#include "hv.h"
#include "msg.h"

#define INPUT_MAX	(64 * 1024)	/* below a socket's buffer */
#define SPIN_MAX	1000000		/* loop turns before calling it a hang */

static uv_loop_t loop;
static int lqmp = -1;
#ifdef FZ_AGENT
static int lagent = -1;
#endif
static char vm_dir[4096];
static bool closed;

static int
listen_on(const char *name)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", vm_dir, name);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	FZ_CHECK(fd >= 0);
	FZ_CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	FZ_CHECK(listen(fd, 16) == 0);
	return fd;
}

static void
setup(void)
{
	fz_write("vm/.keep", "", 0);
	snprintf(vm_dir, sizeof(vm_dir), "%s/vm", fz_dir());
	FZ_CHECK(uv_loop_init(&loop) == 0);
	lqmp = listen_on("fuzz.qmp");
#ifdef FZ_AGENT
	lagent = listen_on("fuzz.agent");
#endif
}

static void
event_cb(struct hv *hv, enum hv_event ev, struct hv_vm *vm, void *arg)
{
	char why[256];

	FZ_CHECK(strcmp(vm->id, "fuzz") == 0);
	switch (ev) {
	case HV_EV_GUEST:
		FZ_CHECK(vm->guest != NULL);
		if (msg_validate(MSG_GUEST_STATS, &vm->guest->base, why,
		    sizeof(why)) < 0) {
			fprintf(stderr, "sample handed out invalid: %s\n", why);
			FZ_CHECK(0);
		}
		FZ_CHECK(strcmp(vm->guest->vm_id, "fuzz") == 0);
		FZ_CHECK(vm->guest->has_source);
		break;
	case HV_EV_BALLOON:
		FZ_CHECK(!vm->balloon_known ||
		    vm->balloon_actual_kib <= (uint64_t)INT64_MAX / 1024);
		FZ_CHECK(!vm->max_known || vm->max_kib > 0);
		break;
	default:
		break;
	}
}

static void
closed_cb(void *arg)
{
	closed = true;
}

/* Accept on l once the driver has connected, turning the loop. */
static int
accept_on(int l)
{
	int fd, i;

	for (i = 0; i < SPIN_MAX; i++) {
		fd = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0)
			return fd;
		FZ_CHECK(errno == EAGAIN || errno == EWOULDBLOCK);
		uv_run(&loop, UV_RUN_NOWAIT);
	}
	FZ_CHECK(!"the driver never connected");
	return -1;
}

/* True once the driver has closed its end of fd (what it wrote is
 * dropped). */
static bool
peer_closed(int fd)
{
	char buf[4096];
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0)
		;
	return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hv_config cfg = {
		.type = HV_TYPE_KVM,
		.rescan_ms = 3600000,
		.poll_ms = 3600000,
		.agent_timeout_ms = 3600000,
		.qmp_line_max = 4096,
		.event_cb = event_cb,
	};
	int qfd, afd = -1, fd, i;
	struct hv *hv;
	size_t off = 0;
	ssize_t n;

	if (size > INPUT_MAX)
		return 0;
	if (lqmp < 0)
		setup();
	cfg.vm_dir = vm_dir;
#ifndef FZ_AGENT
	cfg.no_agent = true;
#endif
	closed = false;
	hv = hv_new(&loop, &cfg);
	FZ_CHECK(hv != NULL);
	FZ_CHECK(hv_start(hv) == 0);
	qfd = accept_on(lqmp);
#ifdef FZ_AGENT
	afd = accept_on(lagent);
	fd = afd;
#else
	fd = qfd;
#endif
	while (off < size) {
		n = write(fd, data + off, size - off);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			uv_run(&loop, UV_RUN_NOWAIT);
			continue;
		}
		FZ_CHECK(n > 0);
		off += (size_t)n;
	}
	FZ_CHECK(shutdown(fd, SHUT_WR) == 0);
	for (i = 0; !peer_closed(fd); i++) {
		FZ_CHECK(i < SPIN_MAX);
		uv_run(&loop, UV_RUN_NOWAIT);
	}
	hv_close(hv, closed_cb, NULL);
	for (i = 0; !closed; i++) {
		FZ_CHECK(i < SPIN_MAX);
		uv_run(&loop, UV_RUN_NOWAIT);
	}
	if (afd >= 0)
		close(afd);
	close(qfd);
	/* What the driver left on the loop after it closed: nothing. */
	FZ_CHECK(uv_run(&loop, UV_RUN_NOWAIT) == 0);
	return 0;
}
