/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sockets QEMU serves for a VM, on a libuv loop: a QMP monitor (greets
 * each client, takes one JSON command a line, answers through a callback)
 * or an agent chardev (one-way: the server sends, what clients send is
 * discarded). The one QMP double: mm-sim serves its VMs with it and the kvm
 * driver's unit tests their fake QEMU. It is a library of its own so that
 * both link it without the product depending on tests/.
 */
#ifndef MM_QMP_SERVER_H
#define MM_QMP_SERVER_H

#include <stddef.h>

#include <jansson.h>
#include <uv.h>

struct qmp_server;
struct qmp_conn;

/*
 * One command line from c: cmd is its "execute" name, or NULL when the
 * line is no QMP command; args its "arguments" or NULL. Both are borrowed
 * for the call. The callback answers with qmp_conn_return(),
 * qmp_conn_return_raw() or qmp_conn_error(), and may send events with
 * qmp_conn_send_json().
 */
typedef void (*qmp_command_cb)(struct qmp_conn *c, const char *cmd,
    json_t *args, void *arg);

/*
 * Listen on path (borrowed; an old socket there is replaced). With cb a QMP
 * monitor: clients get QEMU's greeting, their lines go to cb with arg, and
 * a line longer than 64 KiB closes the connection. With cb NULL an agent
 * chardev. Returns NULL with errno set.
 */
struct qmp_server *qmp_server_new(uv_loop_t *loop, const char *path,
    qmp_command_cb cb, void *arg);

/* Close every client and the socket, and remove path. s is freed once the
 * loop has run the close callbacks. NULL is a no-op. */
void qmp_server_close(struct qmp_server *s);

/* Clients connected now, and those whose connection has been closed
 * (by them, by an error or by the server) so far. */
unsigned qmp_server_clients(const struct qmp_server *s);
unsigned long qmp_server_dropped(const struct qmp_server *s);

/* The clients, newest first, ending with NULL; those closing included
 * (sending to them does nothing). Borrowed until the loop runs again. */
struct qmp_conn *qmp_server_first(struct qmp_server *s);
struct qmp_conn *qmp_conn_next(struct qmp_conn *c);

/*
 * Send len bytes of data (copied) to c; 0 or -errno. qmp_server_send()
 * sends them to every client and returns how many it sent to.
 */
int qmp_conn_send(struct qmp_conn *c, const void *data, size_t len);
int qmp_server_send(struct qmp_server *s, const void *data, size_t len);

/* Send j (taken) as one line: an event, or anything else. */
int qmp_conn_send_json(struct qmp_conn *c, json_t *j);
int qmp_server_send_json(struct qmp_server *s, json_t *j);

/*
 * Answer the command the callback is handling, with its "id" when it had
 * one: {"return": ret} (ret taken); the same with ret as JSON text
 * (borrowed), for what jansson cannot hold, like the uint64 numbers QEMU
 * prints; or {"error": {"class": "GenericError", "desc": desc}}.
 */
int qmp_conn_return(struct qmp_conn *c, json_t *ret);
int qmp_conn_return_raw(struct qmp_conn *c, const char *ret);
int qmp_conn_error(struct qmp_conn *c, const char *desc);

#endif
