/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A xenstored test double: a thread serving the xenstore wire protocol
 * (xen/io/xs_wire.h) on a Unix socket, so tests use the real libxenstore
 * by pointing XENSTORED_PATH at it; the one xenstored double, for the
 * guest's side (the agent's channel) and the host's (the xen driver). It
 * keeps an in-memory tree and knows READ, WRITE, MKDIR, RM, DIRECTORY,
 * WATCH/UNWATCH with WATCH_EVENT (a new watch fires once; a removal fires
 * the watches below too; "@introduceDomain" and "@releaseDomain" fire
 * when the test says), GET_DOMAIN_PATH and TRANSACTION_START/END as real
 * xenstored has them: a transaction sees its own writes and nobody else's
 * after its start, commits atomically, and its commit fails with EAGAIN
 * when a node it read or wrote (or a parent whose children it changed)
 * was changed by someone else meanwhile. Permissions are not modelled.
 */
#ifndef MM_FAKE_XENSTORED_H
#define MM_FAKE_XENSTORED_H

#include <stdint.h>

struct xsd_fake;

/*
 * Start serving on <dir>/socket (dir borrowed, must exist). Relative paths
 * of clients resolve under /local/domain/<domid>, as for a guest's own
 * connection. Does not touch the environment: set XENSTORED_PATH to
 * xsd_fake_path() before xs_open(). Returns NULL with errno set.
 */
struct xsd_fake *xsd_fake_start(const char *dir, unsigned domid);

/* The socket's path, owned by f. */
const char *xsd_fake_path(const struct xsd_fake *f);

/*
 * The test's side of the tree; path is absolute or relative to the
 * domain's home, borrowed. xsd_fake_read() returns a malloc'd copy of
 * the value (caller frees) or NULL with errno ENOENT. Writes and removals
 * fire watches and make open transactions fail their commit, as a
 * concurrent writer would. Return 0 or -ENOENT / -ENOMEM.
 */
char *xsd_fake_read(struct xsd_fake *f, const char *path);
int xsd_fake_write(struct xsd_fake *f, const char *path, const char *value);
int xsd_fake_rm(struct xsd_fake *f, const char *path);

/* Fire the watches on a special path ("@introduceDomain", borrowed), as
 * xenstored does when the toolstack introduces or releases a domain. */
void xsd_fake_fire(struct xsd_fake *f, const char *special);

/* Number of nodes at and below path (0 when absent). */
unsigned xsd_fake_count_nodes(struct xsd_fake *f, const char *path);

/* Make the next n commits fail with EAGAIN. */
void xsd_fake_fail_commits(struct xsd_fake *f, unsigned n);

/* Requests of a type (XS_WRITE...) served so far, any outcome. */
unsigned long xsd_fake_requests(struct xsd_fake *f, uint32_t type);

/* Stop the thread, close every connection, remove the socket, free f.
 * NULL is a no-op. */
void xsd_fake_stop(struct xsd_fake *f);

#endif
