/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helpers shared by the tests: temporary files and directories, the real
 * broker's address, and running a libuv loop until a condition holds.
 */
#ifndef MM_TESTUTIL_H
#define MM_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

/* Exit status that ctest counts as skipped. */
#define TU_SKIP 77

/*
 * The real broker's URL from $MM_TEST_AMQP_URL. When it is unset, print why
 * the test is skipped and exit(TU_SKIP): scripts/test.sh always sets it.
 */
const char *tu_broker_url(void);

/* The test broker's control script (scripts/rabbitmq.sh: kill, start,
 * pause, resume, ctl ...) from $MM_TEST_BROKER_CTL; skipped as above when
 * it is unset. */
const char *tu_broker_ctl(void);

/* A URL for the same broker with the given user and password. Static
 * buffer, overwritten by the next call. */
const char *tu_broker_url_as(const char *user, const char *password);

/* The file at path, malloc'd and NUL-terminated, its length in *ret_len
 * (may be NULL); "" (length 0) when it cannot be read. */
char *tu_read_file(const char *path, size_t *ret_len);

/* How many times needle occurs in the file at path (a daemon's log). */
unsigned tu_file_count(const char *path, const char *needle);

/* The last line of the file at path that contains needle, without its
 * newline ("" for none). Static buffer, overwritten by the next call. */
const char *tu_file_line(const char *path, const char *needle);

/* Create a fresh temporary directory; returns a malloc'd path. */
char *tu_tmpdir(void);

/* Remove dir and everything below it. */
void tu_rmtree(const char *dir);

/* Write text to dir/name (creating subdirectories); returns the malloc'd
 * path. */
char *tu_write_file(const char *dir, const char *name, const char *text);

/* $MM_SOURCE_DIR/rel, malloc'd. */
char *tu_source_path(const char *rel);

/*
 * Run loop until *done is true or timeout_ms passes; returns *done. The
 * loop runs in UV_RUN_ONCE steps with a wake-up timer, so a condition set
 * by any callback ends it promptly.
 */
bool tu_run_until(uv_loop_t *loop, const bool *done, unsigned timeout_ms);

/* The wall clock in ms since the epoch, as messages carry time. */
uint64_t tu_wall_ms(void);

/* Run loop for ms milliseconds. */
void tu_run_for(uv_loop_t *loop, unsigned ms);

/* Run loop until uv_loop_close() succeeds (every handle closed); returns
 * the result of uv_loop_close(), 0 on success. */
int tu_loop_finish(uv_loop_t *loop);

/* A unique name for test resources: "<prefix>.<pid>.<counter>". Static
 * buffer per call site is not kept: returns a malloc'd string. */
char *tu_unique(const char *prefix);

/* Start a program (argv[0] is a path) with the test's stdout and stderr;
 * returns its pid or aborts. */
int tu_spawn(char *const argv[]);

/* SIGTERM pid and wait up to timeout_ms (then SIGKILL). Returns its exit
 * status, or -signal when a signal ended it. */
int tu_stop(int pid, unsigned timeout_ms);

/* $MM_BINARY_DIR/bin/<name>, malloc'd. */
char *tu_bin_path(const char *name);

struct bus;

/*
 * Publish a HostReport of host_id to mm.stats (declare its exchange first)
 * as a collector would: a 64 GiB host with 32 GiB available and one guest
 * "vm-a" using 1.5 GiB of a 2 GiB balloon (maximum 8 GiB) with memory
 * pressure psi (some avg10, percent). Returns what msg_publish() returns.
 */
int tu_publish_report(struct bus *bus, const char *host_id, uint64_t seq,
    uint64_t time_ms, double psi);

/* The same with the guest's balloon at size_kib (MemTotal too, 1.5 GiB of
 * it used): a guest whose balloon follows the scheduler's targets. */
int tu_publish_report_sized(struct bus *bus, const char *host_id,
    uint64_t seq, uint64_t time_ms, double psi, uint64_t size_kib);

/*
 * The same report as a bus message to publish or hand to a consumer
 * (bus_fake_deliver()): *ret_buf is the malloc'd body the caller frees;
 * the routing key is in a static buffer, overwritten by the next call.
 * Returns what msg_to_bus() returns.
 */
struct bus_msg;
int tu_report_msg(const char *host_id, uint64_t seq, uint64_t time_ms,
    double psi, uint64_t size_kib, struct bus_msg *ret_msg,
    uint8_t **ret_buf);
/* The same with the guest using used_kib (the above: 1.5 GiB, at most
 * size_kib). */
int tu_report_msg_used(const char *host_id, uint64_t seq, uint64_t time_ms,
    double psi, uint64_t size_kib, uint64_t used_kib,
    struct bus_msg *ret_msg, uint8_t **ret_buf);

/*
 * GET path from the test broker's management API ($MM_TEST_MGMT_URL, as
 * guest); the body, in a static buffer overwritten by the next call. A
 * request that fails aborts the test.
 */
char *tu_mgmt_get(const char *path);
/* The same with another method ("DELETE", "PUT" without a body). */
char *tu_mgmt_request(const char *method, const char *path);

#endif
