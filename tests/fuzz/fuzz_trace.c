/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The trace CSV of mmctl sim and mm-sim (policy/replay.c): rp_trace_read()
 * from a file. A trace it accepts keeps what it promises: samples ordered
 * by time, used <= max, every VM index named, the distinct times counted;
 * and a replay over it with the default policy finishes.
 */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "replay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rp_trace t;
	const char *path;
	size_t i, steps = 0;
	char err[512];
	FILE *f;
	int r;

	path = fz_write("trace.csv", data, size);
	f = fopen(path, "r");
	FZ_CHECK(f != NULL);
	memset(&t, 0, sizeof(t));
	err[0] = '\0';
	r = rp_trace_read(&t, f, path, err, sizeof(err));
	fclose(f);
	if (r < 0) {
		FZ_CHECK(r == -EINVAL || r == -ENOMEM);
		FZ_CHECK(err[0] != '\0' && strlen(err) < sizeof(err));
		rp_trace_free(&t);
		return 0;
	}
	for (i = 0; i < t.n; i++) {
		const struct rp_sample *s = &t.samples[i];

		FZ_CHECK(s->vm < t.nvms);
		FZ_CHECK(s->used_kib <= s->max_kib);
		FZ_CHECK(memchr(t.names[s->vm], '\0', PE_ID_MAX + 1) != NULL);
		if (i > 0)
			FZ_CHECK(s->time_s >= t.samples[i - 1].time_s);
		if (i == 0 || s->time_s != t.samples[i - 1].time_s)
			steps++;
	}
	FZ_CHECK(steps == t.steps);
	/* Replays cost steps times VMs: only small traces. */
	if (t.n <= 256 && t.steps <= 64) {
		struct rp_result res;
		struct pe_policy p;

		pe_policy_defaults(&p);
		r = rp_run(&t, &p, t.provisioned_kib, &res);
		FZ_CHECK(r == 0);
		FZ_CHECK(res.shortfall_pct >= 0 && res.shortfall_pct <= 100);
	}
	rp_trace_free(&t);
	return 0;
}
