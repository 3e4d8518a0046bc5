/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Policy files (mm-policy(5)): INI text an operator writes, read into the
 * Policy message mmctl publishes, and checked with the scheduler's own rules
 * before it leaves, every error naming file and line.
 */
#ifndef MM_POLICYFILE_H
#define MM_POLICYFILE_H

#include <stdint.h>

#include "msg.h"
#include "policy.h"

#define PF_PARAMS_MAX	64

/* A Policy message and the memory behind it. */
struct pf_policy {
	Mm__V1__Policy msg;
	Mm__V1__VmLimits defaults;
	Mm__V1__VmRule rules[PE_RULES_MAX];
	Mm__V1__VmRule *rule_ptrs[PE_RULES_MAX];
	Mm__V1__VmLimits rule_limits[PE_RULES_MAX];
	Mm__V1__KsmPolicy ksm;
	Mm__V1__NumaPolicy numa;
	Mm__V1__Param params[PF_PARAMS_MAX];
	Mm__V1__Param *param_ptrs[PF_PARAMS_MAX];
	char name[129];
	char algorithm[65];
	char author[129];
	char patterns[PE_RULES_MAX][PE_ID_MAX * 2 + 1];
	char param_names[PF_PARAMS_MAX][65];
	/* where things were, for errors found after reading */
	int policy_line;
	int defaults_line;
	int ksm_line;
	int numa_line;
	int rule_line[PE_RULES_MAX];
	int param_line[PF_PARAMS_MAX];
};

/*
 * Read and check the policy file at path into *out (zeroed first). Its
 * version is the file's, or default_version when it has none (mmctl uses
 * the time in seconds, so that a later apply is newer). Returns 0, or a
 * negative errno with one line for the user in err, e.g.
 *   night.policy:12: rules[0].limits.min_kib: 8388608 above max_kib 4194304
 * A complaint about a section is placed on the line of its header.
 */
int pf_load(const char *path, uint64_t default_version, struct pf_policy *out,
    char *err, size_t errlen);

#endif
