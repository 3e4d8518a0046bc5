/* SPDX-License-Identifier: Apache-2.0 */
/*
 * daemon.h's notifications for mm-guest-agent. It runs in every guest and must stay
 * under 1.5 MiB of RSS; libsystemd (which Debian ships only as a shared
 * library) loads its compression and crypto libraries, about a megabyte.
 * The daemons use notify_systemd.c, libsystemd's own sd_notify().
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>


#include "daemon.h"
#include "log.h"

/* No journal fields without libsystemd: the line alone. */
void
daemon_journal_decision(const char *host_id, const char *vm_id,
    const char *reason, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	(void)host_id;
	(void)vm_id;
	(void)reason;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_info("%s", msg);
}

/*
 * systemd's notification protocol, without libsystemd (and the compression
 * and crypto libraries it loads, a megabyte of RSS in mm-guest-agent): one
 * datagram of "KEY=value" lines to the socket named by $NOTIFY_SOCKET, a
 * path or "@" for the abstract namespace. Best effort, as sd_notify().
 */
static void
notify(const char *state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *path = getenv("NOTIFY_SOCKET");
	socklen_t salen;
	size_t n;
	int fd;

	if (path == NULL || (path[0] != '/' && path[0] != '@'))
		return;
	n = strlen(path);
	if (n >= sizeof(sa.sun_path))
		return;
	memcpy(sa.sun_path, path, n);
	if (path[0] == '@')
		sa.sun_path[0] = '\0';
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n +
	    (path[0] == '/' ? 1 : 0));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa,
	    salen) < 0)
		log_debug("sd_notify to \"%s\": %s", path, strerror(errno));
	close(fd);
}

#include "notify_wrappers.h"
