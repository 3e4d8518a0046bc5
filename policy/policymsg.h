/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Policy message as the policy engine uses it: conversion with full
 * validation (so the scheduler and mmctl reject the same policies with the
 * same words), and the algorithm parameters it accepts.
 */
#ifndef MM_POLICYMSG_H
#define MM_POLICYMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ksm_limits.h"
#include "msg.h"
#include "policy.h"

enum pm_mode { PM_ENFORCE = 1, PM_SHADOW = 2, PM_OFF = 3 };

/*
 * What a policy may ask of a host, beyond msg.c's structural limits: a
 * value no host can meet is refused, not turned into targets of 0. The
 * largest hosts sold hold 32 to 48 TiB and the largest VMs about 24 TiB.
 * KSM's bounds are in ksm_limits.h, shared with the actuator.
 */
#define PM_HOST_KIB_MAX		(64ull << 30)	/* 64 TiB: host_reserve,
						 * guest capacity, a node's
						 * reserve */
#define PM_VM_KIB_MAX		(32ull << 30)	/* 32 TiB: a VM's min, max,
						 * headroom, steps, overhead */
#define PM_NUMA_PAGES_MAX	(PM_HOST_KIB_MAX / 4)	/* 4 KiB pages */

/*
 * How far a policy's version may jump ahead: above the larger of the
 * version in force and the time in milliseconds since the epoch (versions
 * are often times: mmctl's default is seconds, tools use milliseconds), by
 * at most this. A version beyond would leave every later apply ignored.
 */
#define PM_VERSION_JUMP_MAX	1000000ull

/* A policy in force: the engine's structs and what the message says. */
struct pm_policy {
	uint64_t version;	/* 0: the built-in defaults */
	char name[129];
	enum pm_mode mode;
	struct pe_policy balloon;
	bool ksm_managed;	/* false: KSM is left alone */
	struct pe_ksm_policy ksm;
	bool merge_across_nodes_set;
	bool merge_across_nodes;
	bool numa_managed;
	struct pe_numa_policy numa;
};

/* The built-in policy (version 0): engine defaults, mode as given, KSM and
 * NUMA left alone. */
void pm_defaults(struct pm_policy *p, enum pm_mode mode);

#define PM_PARAMS_MAX	64

/* A Policy message and the memory behind it, without allocation: what a
 * policy file is read into (pf_load()) and pm_to_msg() writes. */
struct pm_msg {
	Mm__V1__Policy msg;
	Mm__V1__VmLimits defaults;
	Mm__V1__VmRule rules[PE_RULES_MAX];
	Mm__V1__VmRule *rule_ptrs[PE_RULES_MAX];
	Mm__V1__VmLimits rule_limits[PE_RULES_MAX];
	Mm__V1__KsmPolicy ksm;
	Mm__V1__NumaPolicy numa;
	Mm__V1__Param params[PM_PARAMS_MAX];
	Mm__V1__Param *param_ptrs[PM_PARAMS_MAX];
	char name[129];
	char algorithm[65];
	char patterns[PE_RULES_MAX][PE_ID_MAX * 2 + 1];
	char param_names[PM_PARAMS_MAX][65];
};

/* An empty message in m: no field set, no rules, no parameters, the
 * sub-messages ready (msg.defaults, ksm, numa NULL until used). */
void pm_msg_init(struct pm_msg *m);

/*
 * The message for p (borrowed) into out, so that pm_from_msg() gives p
 * back: the keys of policykeys.h whose value is not the built-in one (in a
 * rule: not the policy's defaults), KSM and NUMA only where p manages them.
 */
void pm_to_msg(const struct pm_policy *p, struct pm_msg *out);

/*
 * Convert and validate m (borrowed) into *ret: known algorithm and mode,
 * rules within PE_RULES_MAX, known parameters, sizes a host can hold
 * (PM_*_MAX), KSM settings within ksm_limits.h, and every range the engine
 * checks. The version is not judged here (pm_version_check()). Returns
 * 0, or -EINVAL with a sentence for people in why (may be NULL), e.g.
 * "rule \"db-*\": min 8388608 KiB above max 4194304 KiB" or
 * "host_reserve_kib 4503599627370496 above 68719476736 (64 TiB)". *ret
 * is written only on success.
 */
int pm_from_msg(const Mm__V1__Policy *m, struct pm_policy *ret, char *why,
    size_t whylen);

enum pm_version_verdict {
	PM_VERSION_NEWER,	/* above the one in force: take it */
	PM_VERSION_RESET,	/* an operator's reset: take it, any version */
	PM_VERSION_OLD,		/* not above the one in force: ignore it */
	PM_VERSION_JUMP,	/* too far ahead (PM_VERSION_JUMP_MAX): refuse */
};

/*
 * Judge a policy's version against in_force (0: the built-in policy) at
 * now_ms (the clock, ms since the epoch). reset (Policy.reset) takes any
 * version.
 * For OLD and JUMP, why (may be NULL) gets a sentence for the operator
 * that begins "policy <version> ...", e.g. "policy 4 ignored: version 5
 * in force; use --reset".
 */
enum pm_version_verdict pm_version_check(uint64_t version, bool reset,
    uint64_t in_force, uint64_t now_ms, char *why, size_t whylen);

/* "enforce", "shadow", "off"; NULL for an unknown mode. */
const char *pm_mode_name(enum pm_mode m);

/* The i-th name pm_from_msg() accepts in Policy.params (from 0), or NULL
 * past the last. */
const char *pm_param_name(size_t i);

/*
 * The memory numbers of a guest's sample (MemTotal, MemAvailable, MemFree,
 * the balloon, the VM's size and what the guest's kernel keeps for
 * itself) into g, as the policy engine counts them: pe_guest_used_kib(g)
 * is then the guest's used memory. Other fields of g are left alone.
 */
void pm_guest_memory(struct pe_guest *g, const Mm__V1__GuestStats *gs);

#endif
