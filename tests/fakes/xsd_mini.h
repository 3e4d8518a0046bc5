/* SPDX-License-Identifier: Apache-2.0 */
/*
 * xsd_mini: a minimal xenstored test double on a Unix socket, for tests
 * that use the real libxenstore (which connects to $XENSTORED_PATH). It
 * keeps one flat store and speaks enough of the wire protocol for mm:
 * read, write, mkdir, rm, directory, watches (with the initial event and
 * @introduceDomain / @releaseDomain on introduce / release), and
 * transactions without isolation. It runs on its own thread, because
 * libxenstore's calls block until the answer comes.
 */
#ifndef MM_XSD_MINI_H
#define MM_XSD_MINI_H

struct xsd_mini;

/* Serve on the socket path (created; removed by xsd_mini_stop()). Returns
 * NULL with errno set. path is copied. */
struct xsd_mini *xsd_mini_start(const char *path);

/*
 * What a toolstack or a guest would do, from the test's thread: write a
 * value (parents implied), remove a subtree, and fire a special watch
 * ("@introduceDomain", "@releaseDomain"). Watches fire as for requests.
 * Return 0 or -ENOSPC.
 */
int xsd_mini_write(struct xsd_mini *x, const char *path, const char *value);
void xsd_mini_rm(struct xsd_mini *x, const char *path);
void xsd_mini_fire(struct xsd_mini *x, const char *special);

/* A copy (malloc'd) of the value at path as a client last wrote it, or
 * NULL when absent. */
char *xsd_mini_read(struct xsd_mini *x, const char *path);

/* Requests served so far (any thread). */
unsigned long xsd_mini_requests(struct xsd_mini *x);

/* Stop the thread, close every connection, free x. NULL is a no-op. */
void xsd_mini_stop(struct xsd_mini *x);

#endif
