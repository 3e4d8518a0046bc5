/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Storage failing under a running system. The scheduler's state file on a
 * full filesystem (a 64 KiB tmpfs, filled) and on a read-only one (a
 * read-only bind mount): a new policy is accepted and in force, its save
 * fails with a clear error in the log naming the file and the reason, the
 * scheduler keeps running, the old state file is kept byte for byte (no
 * temporary file left behind), and a restarted scheduler starts from it.
 * The collector's and actuator's runtime directory (vm_dir, /run/mm/vm in
 * production) read-only: they need no write there, so the whole loop
 * works. Needs root for the mounts; skipped (77) where mounting fails.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "fault_util.h"
#include "testutil.h"

static struct fu F;

#define MAXMOUNT	4
static char mounts[MAXMOUNT][1200];
static int nmounts;

static void
unmount_all(void)
{
	while (nmounts > 0) {
		nmounts--;
		if (umount2(mounts[nmounts], MNT_DETACH) < 0)
			fprintf(stderr, "fault: umount %s: %s\n",
			    mounts[nmounts], strerror(errno));
	}
}

static void
remember_mount(const char *path)
{
	assert_true(nmounts < MAXMOUNT);
	snprintf(mounts[nmounts++], sizeof(mounts[0]), "%s", path);
}

/* dir/name made (0755), its path in buf. */
static void
make_dir(char *buf, size_t size, const char *dir, const char *name)
{
	snprintf(buf, size, "%s/%s", dir, name);
	assert_true(mkdir(buf, 0755) == 0 || errno == EEXIST);
}

/* The state file on a tmpfs of 64 KiB. */
static void
prepare_small(struct fu *f)
{
	char d[1100];

	make_dir(d, sizeof(d), f->dir, "state");
	if (mount("tmpfs", d, "tmpfs", 0, "size=64k,mode=0755") < 0)
		fail_msg("mount tmpfs on %s: %s", d, strerror(errno));
	remember_mount(d);
	snprintf(f->state, sizeof(f->state), "%s/scheduler.policy", d);
}

/* The state file's directory, to be made read-only later: a bind mount
 * of itself. */
static void
prepare_bind(struct fu *f)
{
	char d[1100];

	make_dir(d, sizeof(d), f->dir, "state");
	if (mount(d, d, NULL, MS_BIND, NULL) < 0)
		fail_msg("bind mount %s: %s", d, strerror(errno));
	remember_mount(d);
	snprintf(f->state, sizeof(f->state), "%s/scheduler.policy", d);
}

/* The daemons' vm_dir: a read-only bind mount of mm-sim's. */
static void
prepare_ro_vmdir(struct fu *f)
{
	char d[1100];

	assert_true(mkdir(f->vmdir, 0755) == 0 || errno == EEXIST);
	make_dir(d, sizeof(d), f->dir, "run-mm-vm");
	if (mount(f->vmdir, d, NULL, MS_BIND, NULL) < 0 ||
	    mount(NULL, d, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) < 0)
		fail_msg("read-only bind mount of %s on %s: %s", f->vmdir, d,
		    strerror(errno));
	remember_mount(d);
	snprintf(f->daemon_vmdir, sizeof(f->daemon_vmdir), "%s", d);
}

/* The whole file at path (it must have something), malloc'd. */
static char *
slurp(const char *path, size_t *ret_len)
{
	char *buf = tu_read_file(path, ret_len);

	if (*ret_len == 0)
		fail_msg("%s: empty or unreadable", path);
	return buf;
}

/* Fill the filesystem of dir until it has no room left; returns the bytes
 * written. */
static size_t
fill(const char *dir)
{
	char path[1300], block[4096];
	size_t total = 0;
	ssize_t n;
	int fd;

	memset(block, 'x', sizeof(block));
	snprintf(path, sizeof(path), "%s/filler", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	while ((n = write(fd, block, sizeof(block))) > 0)
		total += (size_t)n;
	assert_int_equal(errno, ENOSPC);
	/* The last partial pages too. */
	while ((n = write(fd, block, 1)) > 0)
		total += (size_t)n;
	close(fd);
	return total;
}

/*
 * The scheduler's save fails: publish policy v2, expect it accepted, the
 * error in the log (with reason), the scheduler alive, the state file as
 * it was, no .tmp, and a restarted scheduler starting from the old one.
 */
static void
policy_not_saved(const char *reason)
{
	char line[256], tmp[1300];
	char *before, *after;
	size_t len_before, len_after;
	unsigned starts, connects;
	uint64_t v2 = clock_ms(CLOCK_REALTIME);
	long ms;

	before = slurp(F.state, &len_before);
	fu_publish_policy(&F, v2, "fault-2", 0);
	snprintf(line, sizeof(line), "policy %llu: cannot save",
	    (unsigned long long)v2);
	ms = fu_wait_log(&F, &F.sched, line, 0, 10000);
	if (ms < 0)
		fail_msg("no \"%s\" in the scheduler's log; last line: %s",
		    line, fu_log_line(&F.sched, ""));
	fprintf(stderr, "fault: %s: %s\n", reason, fu_log_line(&F.sched, line));
	assert_non_null(strstr(fu_log_line(&F.sched, line), reason));
	assert_non_null(strstr(fu_log_line(&F.sched, line), F.state));
	snprintf(line, sizeof(line), "policy %llu \"fault-2\" accepted",
	    (unsigned long long)v2);
	assert_true(fu_log_count(&F.sched, line) == 1);
	fu_run_for(&F, 1000);
	assert_true(fu_daemon_alive(&F.sched));

	after = slurp(F.state, &len_after);
	assert_int_equal(len_after, len_before);
	assert_memory_equal(after, before, len_before);
	snprintf(tmp, sizeof(tmp), "%s.tmp", F.state);
	assert_int_equal(access(tmp, F_OK), -1);
	fprintf(stderr, "fault: %s: state file kept (%zu bytes, same bytes)\n",
	    reason, len_after);
	free(before);
	free(after);

	/* Restarted, the scheduler starts from the state kept. Its log is
	 * appended to: wait for the new start's lines, not the old ones. */
	assert_int_equal(fu_daemon_stop(&F.sched), 0);
	snprintf(line, sizeof(line), "starting: policy %llu",
	    (unsigned long long)F.policy_version);
	starts = fu_log_count(&F.sched, line);
	connects = fu_log_count(&F.sched, "connected to the broker");
	fu_daemon_start(&F, &F.sched);
	if (fu_wait_log(&F, &F.sched, line, starts, 10000) < 0)
		fail_msg("restarted scheduler not on the saved policy %llu: %s",
		    (unsigned long long)F.policy_version,
		    fu_log_line(&F.sched, "starting"));
	if (fu_wait_log(&F, &F.sched, "connected to the broker", connects,
	    10000) < 0)
		fail_msg("restarted scheduler did not reach the broker");
}

static void
test_fault_state_file_disk_full(void **state)
{
	char d[1100];
	size_t filled;

	fu_start(&F, &(struct fu_opts){ .prepare = prepare_small });
	snprintf(d, sizeof(d), "%s/state", F.dir);
	filled = fill(d);
	fprintf(stderr, "fault: state filesystem filled with %zu bytes\n",
	    filled);
	policy_not_saved("No space left on device");
	fu_assert_safe(&F, "disk full");
	fu_stop_all(&F);
	unmount_all();
	fu_cleanup(&F);
}

static void
test_fault_state_file_read_only(void **state)
{
	char d[1100];

	fu_start(&F, &(struct fu_opts){ .prepare = prepare_bind });
	snprintf(d, sizeof(d), "%s/state", F.dir);
	if (mount(NULL, d, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) < 0)
		fail_msg("remount %s read-only: %s", d, strerror(errno));
	policy_not_saved("Read-only file system");
	fu_assert_safe(&F, "state read-only");
	fu_stop_all(&F);
	unmount_all();
	fu_cleanup(&F);
}

static void
test_fault_run_dir_read_only(void **state)
{
	fu_start(&F, &(struct fu_opts){ .prepare = prepare_ro_vmdir });
	fprintf(stderr, "fault: read-only vm_dir %s: the loop converged\n",
	    F.daemon_vmdir);
	assert_true(fu_daemon_alive(&F.col));
	assert_true(fu_daemon_alive(&F.act));
	fu_assert_safe(&F, "vm_dir read-only");
	fu_stop_all(&F);
	unmount_all();
	fu_cleanup(&F);
}

static int
teardown(void **state)
{
	fu_kill_all(&F);
	unmount_all();
	return 0;
}

/* Mounting possible here? A tmpfs mounted and unmounted at once. */
static bool
can_mount(void)
{
	char *d = tu_tmpdir();
	bool ok = mount("tmpfs", d, "tmpfs", 0, "size=16k") == 0;

	if (ok)
		umount2(d, MNT_DETACH);
	else
		fprintf(stderr, "skipped: cannot mount a tmpfs (%s): the "
		    "disk-full and read-only tests need root (CAP_SYS_ADMIN)\n",
		    strerror(errno));
	rmdir(d);
	free(d);
	return ok;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_fault_state_file_disk_full,
		    teardown),
		cmocka_unit_test_teardown(test_fault_state_file_read_only,
		    teardown),
		cmocka_unit_test_teardown(test_fault_run_dir_read_only,
		    teardown),
	};

	tu_broker_url();
	if (!can_mount())
		return TU_SKIP;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
