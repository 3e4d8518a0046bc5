/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The guest agent tests' way to get a sample: read one of the fixture trees
 * under tests/fixtures/proc/ as the agent would, with a fixed vm_id, seq
 * and time, so tests compare exact values.
 */
#ifndef MM_TEST_AGENT_FIXTURE_H
#define MM_TEST_AGENT_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guest-agent.h"
#include "testutil.h"

static inline void
fixture_sample(const char *name, struct agent_sample *s, uint64_t seq)
{
	struct agent_sources src = { 0 };
	char rel[256], *root;

	snprintf(rel, sizeof(rel), "tests/fixtures/proc/%s", name);
	root = tu_source_path(rel);
	memset(s, 0, sizeof(*s));
	agent_sample_read(root, &src, s);
	strcpy(s->vm_id, "guest-1");
	s->seq = seq;
	s->time_ms = 1700000000000ull + seq;
	free(root);
}

#endif
