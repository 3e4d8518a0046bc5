/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The scheduler's history file (scheduler/history.c): history_read() of a
 * file, as a scheduler reads it at start, at a fixed hour (FZ_HOUR) so that
 * the seeds stay within their week. What it keeps is claimed by hosts as
 * their first reports would claim it: pe_history_put() takes or refuses
 * each VM's part, and a decision for each host's VMs finishes with every
 * target within the guest's limits.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "fuzz.h"
#include "scheduler.h"

/* 2026-12-06 00:00 UTC, in hours. */
#define FZ_HOUR		499032ull
#define MiB		1024ull
#define GiB		(1024ull * 1024)
#define NGUESTS		8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Decide once for the VMs h's engine state has from the file. */
static void
decide(struct host *h)
{
	struct pe_guest g[NGUESTS];
	struct pe_decision out[NGUESTS];
	struct pe_vm_history v;
	struct pe_policy p;
	struct pe_host ph = {
		.host_id = h->id,
		.time_ms = FZ_HOUR * 3600000,
		.total_kib = 16 * GiB,
		.available_kib = 8 * GiB,
		.guests = g,
	};
	char ids[NGUESTS][PE_ID_MAX + 1];
	size_t n = 0;
	int r;

	for (size_t i = 0; n < NGUESTS && pe_history_get(h->pe, i, &v); i++) {
		memcpy(ids[n], v.vm_id, sizeof(ids[n]));
		memset(&g[n], 0, sizeof(g[n]));
		g[n].vm_id = ids[n];
		g[n].has_meminfo = g[n].has_balloon = true;
		g[n].total_kib = g[n].target_kib = g[n].actual_kib = 1 * GiB;
		g[n].available_kib = 512 * MiB;
		g[n].max_kib = 4 * GiB;
		n++;
	}
	ph.n_guests = n;
	pe_policy_defaults(&p);
	r = pe_decide(h->pe, &ph, &p, out, NGUESTS);
	FZ_CHECK(r == (int)n);
	for (size_t i = 0; i < n; i++) {
		FZ_CHECK(out[i].target_kib <= 4 * GiB);
		FZ_CHECK(out[i].target_kib >= out[i].min_kib);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct scheduler s;
	const char *path;
	FILE *f;
	int r;

	memset(&s, 0, sizeof(s));
	s.conf.max_hosts = 64;
	path = fz_write("scheduler.history", data, size);
	f = fopen(path, "rb");
	FZ_CHECK(f != NULL);
	r = history_read(&s, f, path, FZ_HOUR);
	fclose(f);
	FZ_CHECK(r == 0 || r == -EINVAL);
	FZ_CHECK(s.hist.n <= 64);
	while (s.hist.n > 0) {
		struct host h;
		size_t before = s.hist.n;

		memset(&h, 0, sizeof(h));
		memcpy(h.id, s.hist.hosts[before - 1].id, sizeof(h.id));
		h.pe = pe_state_new();
		FZ_CHECK(h.pe != NULL);
		history_claim(&s, &h);
		FZ_CHECK(s.hist.n == before - 1);
		decide(&h);
		pe_state_free(h.pe);
	}
	history_free(&s);
	return 0;
}
