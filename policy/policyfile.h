/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Policy files (mm-policy(5)): INI text an operator writes, read into the
 * Policy message mmctl publishes, and checked with the scheduler's own rules
 * before it leaves, every error naming file and line; and a policy written
 * back as such a file (mmctl policy show).
 */
#ifndef MM_POLICYFILE_H
#define MM_POLICYFILE_H

#include <stdint.h>
#include <stdio.h>

#include "msg.h"
#include "policymsg.h"

/*
 * Read and check the policy file at path into *out (zeroed first). Its
 * version is the file's, or default_version when it has none (mmctl uses
 * the time in seconds, so that a later apply is newer). Returns 0, or a
 * negative errno with one line for the user in err, e.g.
 *   night.policy:12: rules[0].limits.min_kib: 8388608 above max_kib 4194304
 * A complaint about a section is placed on the line of its header.
 */
int pf_load(const char *path, uint64_t default_version, struct pm_msg *out,
    char *err, size_t errlen);

/* Write the policy m (borrowed) to f as a policy file that pf_load() reads
 * back: the keys it sets, section by section. */
void pf_write(FILE *f, const Mm__V1__Policy *m);

#endif
