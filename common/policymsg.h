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

#include "msg.h"
#include "policy.h"

enum pm_mode { PM_ENFORCE = 1, PM_SHADOW = 2, PM_OFF = 3 };

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

/*
 * Convert and validate m (borrowed) into *ret: known algorithm and mode,
 * rules within PE_RULES_MAX, known parameters, and every range the engine
 * checks. Returns 0, or -EINVAL with a sentence for people in why (may be
 * NULL), e.g. "rule \"db-*\": min 8388608 KiB above max 4194304 KiB".
 * *ret is written only on success.
 */
int pm_from_msg(const Mm__V1__Policy *m, struct pm_policy *ret, char *why,
    size_t whylen);

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
