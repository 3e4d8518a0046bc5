/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Policy files (policy/policyfile.c) as mmctl reads them: pf_load() from a
 * file. What it accepts must be a Policy that msg_validate() and
 * pm_from_msg() accept (mmctl publishes it, the scheduler takes it), and
 * pf_write() of it must read back to the same packed bytes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "msg.h"
#include "policyfile.h"
#include "policymsg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct pm_msg m, m2;
	static struct pm_policy p;
	uint8_t *buf, *buf2;
	size_t len, len2, tlen = 0;
	char err[512], *text = NULL;
	const char *path;
	FILE *f;
	int r;

	path = fz_write("fuzz.policy", data, size);
	err[0] = '\0';
	r = pf_load(path, 42, &m, err, sizeof(err));
	if (r < 0) {
		FZ_CHECK(err[0] != '\0' && strlen(err) < sizeof(err));
		return 0;
	}
	FZ_CHECK(msg_validate(MSG_POLICY, &m.msg.base, err, sizeof(err)) == 0);
	FZ_CHECK(pm_from_msg(&m.msg, &p, err, sizeof(err)) == 0);
	FZ_CHECK(m.msg.version > 0);
	FZ_CHECK(msg_pack(MSG_POLICY, &m.msg.base, &buf, &len) == 0);

	f = open_memstream(&text, &tlen);
	FZ_CHECK(f != NULL);
	pf_write(f, &m.msg);
	FZ_CHECK(fclose(f) == 0);
	path = fz_write("again.policy", text, tlen);
	r = pf_load(path, 42, &m2, err, sizeof(err));
	if (r < 0)
		fprintf(stderr, "written policy refused: %s\n%s", err, text);
	FZ_CHECK(r == 0);
	FZ_CHECK(msg_pack(MSG_POLICY, &m2.msg.base, &buf2, &len2) == 0);
	FZ_CHECK(len2 == len && memcmp(buf, buf2, len) == 0);
	free(buf2);
	free(buf);
	free(text);
	return 0;
}
