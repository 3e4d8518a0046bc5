/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The policy's keys, each declared once: its name in a policy file
 * (mm-policy(5)), its field in the Policy message, unit, range, default,
 * meaning, and where struct pm_policy keeps it. The message conversion both
 * ways and its range checks (policymsg.c), the file reader and writer
 * (policyfile.c) and so mmctl policy show walk this table: a new key is one
 * line here and one in the proto, and test_policykeys tests it unasked.
 * What is not a plain value (version, name, mode, algorithm, the [vm]
 * globs) stays with its reader.
 */
#ifndef MM_POLICYKEYS_H
#define MM_POLICYKEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum pk_section {
	PK_POLICY,	/* [policy]: Policy; struct pm_policy */
	PK_LIMITS,	/* [defaults], [vm <glob>]: VmLimits; pe_limits */
	PK_KSM,		/* [ksm]: KsmPolicy; struct pm_policy */
	PK_NUMA,	/* [numa]: NumaPolicy; struct pm_policy */
	PK_PARAMS,	/* [params]: the Param of the key's name; pm_policy */
};

/*
 * The unit of the value in the message, which says how a file writes it.
 * In [params] every value is a plain number, in the unit its name says
 * ("hold_ms = 30000").
 */
enum pk_unit {
	PK_KIB,		/* a size: "768M" */
	PK_PAGES,	/* 4 KiB pages, written as a size */
	PK_MS,		/* a duration, written "20ms" */
	PK_S,		/* a duration, written "300s" */
	PK_PCT,		/* a number, percent */
	PK_NUMBER,	/* a number: a count, a rate, a factor */
	PK_BOOL,	/* yes or no */
};

/* The C type of a field. */
enum pk_ctype { PK_T_U32, PK_T_U64, PK_T_DOUBLE, PK_T_BOOL, PK_T_INT };

struct pk_key {
	const char *name;	/* in the file */
	const char *field;	/* in the message (the Param's name) */
	enum pk_section section;
	enum pk_unit unit;
	double min;		/* the range in unit, both ends included */
	double max;
	double def;		/* the engine's default, in unit */
	const char *doc;	/* for people, one line */
	/* Where struct pm_policy (struct pe_limits for PK_LIMITS) keeps it,
	 * times scale (seconds in the message, milliseconds there). */
	size_t offset;
	enum pk_ctype type;
	unsigned scale;
	/* Where the section's message keeps it (not for PK_PARAMS). */
	size_t msg_offset;
	size_t has_offset;
	enum pk_ctype msg_type;
};

/*
 * A value as the key's message field holds it: whole numbers and booleans
 * in u, fractions in d (pk_whole()); pk_value_u() and pk_value_d() fill
 * both.
 */
struct pk_value {
	uint64_t u;
	double d;
};

struct pk_value pk_value_u(uint64_t u);
/* u is d cut to a whole number, 0 where it does not fit. */
struct pk_value pk_value_d(double d);

/* The i-th key, from 0, in the order files are written and checked in;
 * NULL past the last. Keys of a section are next to each other. */
const struct pk_key *pk_key_at(size_t i);

/* The key called name (in the file; in [params] also the message) in
 * section s, or NULL. */
const struct pk_key *pk_find(enum pk_section s, const char *name);

/* Whether k's message field is a whole number (or a boolean). */
bool pk_whole(const struct pk_key *k);

/* Whether v is within k's range (false for NaN). */
bool pk_in_range(const struct pk_key *k, struct pk_value v);

/* The names of section s's keys, ", " between them, into buf (always
 * NUL-terminated). */
void pk_names(enum pk_section s, char *buf, size_t size);

/*
 * k's value in the section's message m (borrowed; not for PK_PARAMS):
 * returns whether m sets it, and writes *ret only then.
 */
bool pk_msg_get(const struct pk_key *k, const void *m, struct pk_value *ret);
/* Set k in m (not for PK_PARAMS) to v. */
void pk_msg_set(const struct pk_key *k, void *m, struct pk_value v);

/* k's value in base (struct pm_policy, or struct pe_limits for PK_LIMITS),
 * in the message's unit. */
struct pk_value pk_struct_get(const struct pk_key *k, const void *base);
/* Set k in base to v, in the message's unit, converted as the struct
 * holds it. */
void pk_struct_set(const struct pk_key *k, void *base, struct pk_value v);

#endif
