/* SPDX-License-Identifier: Apache-2.0 */
/*
 * KSM settings through <sys_root>/kernel/mm/ksm: written as the scheduler
 * asks, and put back as they were found when the actuator stops, so that a
 * stopped mm leaves the host's KSM as its administrator set it, except
 * what only unmerging every shared page would put back (a restart must not
 * grow the host's use). The next start reads them again as found, and the
 * scheduler sends its settings again.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "actuator.h"
#include "ksm_limits.h"
#include "log.h"

enum { K_RUN, K_SCAN, K_SLEEP, K_MERGE };

static const char *const files[ACT_KSM_NFILES] = {
	[K_RUN] = "run",
	[K_SCAN] = "pages_to_scan",
	[K_SLEEP] = "sleep_millisecs",
	[K_MERGE] = "merge_across_nodes",
};

static int
read_value(const struct act_ksm *k, const char *name, char *buf, size_t size)
{
	char path[4200];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", k->dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

/* sysfs reports a refused write (EBUSY, EINVAL) from write(). */
static int
sysfs_write(const char *path, const char *value, void *arg)
{
	ssize_t n;
	int fd, r = 0;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, value, strlen(value));
	if (n < 0)
		r = -errno;
	else if ((size_t)n != strlen(value))
		r = -EIO;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	return r;
}

static int
write_value(struct act_ksm *k, int f, const char *value)
{
	char path[4200];

	snprintf(path, sizeof(path), "%s/%s", k->dir, files[f]);
	return k->write_fn(path, value, k->write_arg);
}

int
act_ksm_init(struct act_ksm *k, const char *sys_root)
{
	int i, r;

	memset(k, 0, sizeof(*k));
	k->write_fn = sysfs_write;
	if (asprintf(&k->dir, "%s/kernel/mm/ksm", sys_root) < 0) {
		k->dir = NULL;
		return -ENOMEM;
	}
	for (i = 0; i < ACT_KSM_NFILES; i++) {
		r = read_value(k, files[i], k->value[i], sizeof(k->value[i]));
		k->saved[i] = r == 0;
		if (i == K_RUN && r < 0)
			return r;
	}
	return 0;
}

int
act_ksm_read(const struct act_ksm *k, Mm__V1__KsmSettings *ret)
{
	char buf[32];
	unsigned long v;
	int r;

	mm__v1__ksm_settings__init(ret);
	r = read_value(k, files[K_RUN], buf, sizeof(buf));
	if (r < 0)
		return r;
	v = strtoul(buf, NULL, 10);
	ret->has_run = v <= 2;
	ret->run = v == 0 ? MM__V1__KSM_RUN__KSM_RUN_STOP :
	    v == 1 ? MM__V1__KSM_RUN__KSM_RUN_MERGE :
	    MM__V1__KSM_RUN__KSM_RUN_UNMERGE;
	if (read_value(k, files[K_SCAN], buf, sizeof(buf)) == 0) {
		ret->has_pages_to_scan = 1;
		ret->pages_to_scan = (uint32_t)strtoul(buf, NULL, 10);
	}
	if (read_value(k, files[K_SLEEP], buf, sizeof(buf)) == 0) {
		ret->has_sleep_ms = 1;
		ret->sleep_ms = (uint32_t)strtoul(buf, NULL, 10);
	}
	if (read_value(k, files[K_MERGE], buf, sizeof(buf)) == 0) {
		ret->has_merge_across_nodes = 1;
		ret->merge_across_nodes = strtoul(buf, NULL, 10) != 0;
	}
	return 0;
}

static int
fail(char *why, size_t whylen, int r, const char *what)
{
	if (r == -EBUSY)
		snprintf(why, whylen, "%s: busy: the kernel changes it only "
		    "while no pages are shared (run=2 unmerges them first)",
		    what);
	else
		snprintf(why, whylen, "%s: %s", what, strerror(-r));
	return r;
}

int
act_ksm_apply(struct act_ksm *k, const Mm__V1__KsmSettings *s, char *why,
    size_t whylen)
{
	const char *run = NULL;
	char buf[32];
	int r;

	/* Out of bounds, whoever sent it: nothing is written, so that a
	 * command is done whole or not at all. */
	if (s->has_pages_to_scan && (s->pages_to_scan < KSM_PAGES_TO_SCAN_MIN ||
	    s->pages_to_scan > KSM_PAGES_TO_SCAN_MAX)) {
		k->refused++;
		snprintf(why, whylen, "pages_to_scan %" PRIu32 " outside "
		    "%u..%u, nothing written", s->pages_to_scan,
		    KSM_PAGES_TO_SCAN_MIN, KSM_PAGES_TO_SCAN_MAX);
		return -ERANGE;
	}
	if (s->has_sleep_ms && (s->sleep_ms < KSM_SLEEP_MS_MIN ||
	    s->sleep_ms > KSM_SLEEP_MS_MAX)) {
		k->refused++;
		snprintf(why, whylen, "sleep_ms %" PRIu32 " outside %u..%u, "
		    "nothing written", s->sleep_ms, KSM_SLEEP_MS_MIN,
		    KSM_SLEEP_MS_MAX);
		return -ERANGE;
	}
	if (s->has_run)
		run = s->run == MM__V1__KSM_RUN__KSM_RUN_STOP ? "0" :
		    s->run == MM__V1__KSM_RUN__KSM_RUN_MERGE ? "1" : "2";
	/* Unmerging first makes merge_across_nodes writable. */
	if (run != NULL && strcmp(run, "2") == 0 &&
	    (r = write_value(k, K_RUN, run)) < 0)
		return fail(why, whylen, r, "run");
	if (s->has_pages_to_scan) {
		snprintf(buf, sizeof(buf), "%" PRIu32, s->pages_to_scan);
		if ((r = write_value(k, K_SCAN, buf)) < 0)
			return fail(why, whylen, r, "pages_to_scan");
	}
	if (s->has_sleep_ms) {
		snprintf(buf, sizeof(buf), "%" PRIu32, s->sleep_ms);
		if ((r = write_value(k, K_SLEEP, buf)) < 0)
			return fail(why, whylen, r, "sleep_millisecs");
	}
	if (s->has_merge_across_nodes &&
	    (r = write_value(k, K_MERGE, s->merge_across_nodes ? "1" : "0"))
	    < 0)
		return fail(why, whylen, r, "merge_across_nodes");
	if (run != NULL && strcmp(run, "2") != 0 &&
	    (r = write_value(k, K_RUN, run)) < 0)
		return fail(why, whylen, r, "run");
	return 0;
}

int
act_ksm_restore(struct act_ksm *k)
{
	char cur[32];
	int r, first = 0, i;

	if (k->dir == NULL)
		return 0;
	/* Shared pages pin merge_across_nodes (EBUSY): it stays as it is,
	 * for unmerging them to change it would grow the host's use by
	 * every page shared. */
	if (k->saved[K_MERGE] && read_value(k, files[K_MERGE], cur,
	    sizeof(cur)) == 0 && strcmp(cur, k->value[K_MERGE]) != 0) {
		r = write_value(k, K_MERGE, k->value[K_MERGE]);
		if (r < 0)
			first = r;
	}
	for (i = K_SLEEP; i >= K_RUN; i--) {
		/* run=2 found at start is not written back: it unmerges. */
		if (!k->saved[i] || (i == K_RUN &&
		    strcmp(k->value[i], "2") == 0))
			continue;
		r = write_value(k, i, k->value[i]);
		if (r < 0 && first == 0)
			first = r;
	}
	return first;
}

void
act_ksm_free(struct act_ksm *k)
{
	free(k->dir);
	k->dir = NULL;
}
