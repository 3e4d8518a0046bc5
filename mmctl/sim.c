/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mmctl sim: replay a memory trace through the policy engine in process, no
 * broker, and print per policy how much host memory it needs and how often
 * guests go short. With --policy all the policies stand side by side.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mmctl.h"
#include "replay.h"

/* A row; with cold (--cold) also what the guests reclaimed, what came
 * back and what that stalled them. */
static void
print_row(const struct rp_result *r, bool cold, bool json, json_t *arr)
{
	if (json) {
		json_t *o = json_pack("{s:s, s:I, s:I, s:f, s:f, s:f, s:I}",
		    "policy", r->policy, "capacity_kib",
		    (json_int_t)r->capacity_kib, "provisioned_kib",
		    (json_int_t)r->provisioned_kib, "saved_pct", r->saved_pct,
		    "shortfall_pct", r->shortfall_pct, "mean_shortfall_kib",
		    r->mean_shortfall_kib, "commands",
		    (json_int_t)r->commands);

		if (cold) {
			json_object_set_new(o, "reclaimed_kib",
			    json_real(r->reclaimed_kib));
			json_object_set_new(o, "refault_kib",
			    json_integer((json_int_t)r->refault_kib));
			json_object_set_new(o, "stall_pct",
			    json_real(r->stall_pct));
		}
		json_array_append_new(arr, o);
		return;
	}
	/* Rows with cold memory have the longest names. */
	printf("%-*s %14llu %16llu %10.2f %14.3f %19.0f %9llu", cold ? 36 : 28,
	    r->policy,
	    (unsigned long long)r->capacity_kib,
	    (unsigned long long)r->provisioned_kib, r->saved_pct,
	    r->shortfall_pct, r->mean_shortfall_kib,
	    (unsigned long long)r->commands);
	if (cold)
		printf(" %13.0f %13llu %9.4f", r->reclaimed_kib,
		    (unsigned long long)r->refault_kib, r->stall_pct);
	putchar('\n');
}

/* One row per policy (all, or the one named), as the trace is set up;
 * with reclaim, only those that can, opted in. */
static int
run_rows(const struct rp_trace *t, const char *policy, bool fpr, bool reclaim,
    bool find, uint64_t capacity, double max_short, bool json, json_t *arr)
{
	for (size_t i = 0; rp_variant_name(i) != NULL; i++) {
		const char *name = rp_variant_name(i);
		struct pe_policy p;
		struct rp_result res;
		char row[64];
		int r;

		if (policy != NULL && strcmp(name, policy) != 0)
			continue;
		(void)rp_variant_policy(name, &p);
		if (reclaim && !rp_policy_can_reclaim(&p))
			continue;
		p.defaults.reclaim = reclaim;
		r = find ? rp_find_capacity(t, &p, max_short, &res) :
		    rp_run(t, &p, capacity, &res);
		if (r < 0) {
			fprintf(stderr, "mmctl: out of memory\n");
			return r;
		}
		snprintf(row, sizeof(row), "%s%s%s", name,
		    fpr ? "+reporting" : "", reclaim ? "+reclaim" : "");
		res.policy = row;
		print_row(&res, t->cold_share > 0, json, arr);
	}
	return 0;
}

static void
sim_usage(void)
{
	fprintf(stderr, "usage: mmctl sim --trace FILE --policy NAME|all "
	    "[--capacity-kib N | --find-capacity]\n"
	    "                 [--max-shortfall PCT] [--json] [--reporting] "
	    "[--cold SHARE]\n"
	    "  NAME: pressure, pressure-nohistory (pressure without its "
	    "history term),\n  pressure-nopool (without its pool-level "
	    "risk), static, xenmm, mom;\n  the trace is CSV "
	    "time_s,vm,used_kib,max_kib\n"
	    "  --reporting: each policy again with the guests' free page "
	    "reporting\n"
	    "  --cold SHARE: assume SHARE (0..1) of what each VM kept in use "
	    "through the\n  last hour is cold; the pressure policies run "
	    "again with proactive reclaim\n");
}

int
cmd_sim(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "trace", required_argument, NULL, 't' },
		{ "policy", required_argument, NULL, 'p' },
		{ "capacity-kib", required_argument, NULL, 'c' },
		{ "find-capacity", no_argument, NULL, 'f' },
		{ "max-shortfall", required_argument, NULL, 'm' },
		{ "json", no_argument, NULL, 'j' },
		{ "reporting", no_argument, NULL, 'r' },
		{ "cold", required_argument, NULL, 'C' },
		{ NULL, 0, NULL, 0 },
	};
	const char *trace = NULL, *policy = NULL;
	unsigned long long capacity = 0;
	double max_short = 0.1, cold = 0;
	bool find = false, json = false, reporting = false, all;
	struct rp_trace t;
	json_t *arr = NULL;
	char err[512], *end;
	struct pe_policy p;
	FILE *f;
	int c, r = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			trace = optarg;
			break;
		case 'p':
			policy = optarg;
			break;
		case 'c':
			errno = 0;
			capacity = strtoull(optarg, &end, 10);
			if (errno != 0 || *end != '\0' || capacity == 0) {
				fprintf(stderr, "mmctl: --capacity-kib \"%s\" is "
				    "not a positive number of KiB\n", optarg);
				return 2;
			}
			break;
		case 'f':
			find = true;
			break;
		case 'm':
			max_short = strtod(optarg, &end);
			if (*end != '\0' || !(max_short >= 0 &&
			    max_short <= 100)) {
				fprintf(stderr, "mmctl: --max-shortfall \"%s\": a "
				    "percentage, 0..100\n", optarg);
				return 2;
			}
			break;
		case 'j':
			json = true;
			break;
		case 'r':
			reporting = true;
			break;
		case 'C':
			cold = strtod(optarg, &end);
			if (*end != '\0' || !(cold > 0 && cold <= 1)) {
				fprintf(stderr, "mmctl: --cold \"%s\": a share "
				    "of used memory, above 0 and at most 1\n",
				    optarg);
				return 2;
			}
			break;
		default:
			sim_usage();
			return 2;
		}
	}
	if (trace == NULL || policy == NULL || optind != argc ||
	    (find && capacity > 0)) {
		sim_usage();
		return 2;
	}
	all = strcmp(policy, "all") == 0;
	if (!all && rp_variant_policy(policy, &p) < 0) {
		fprintf(stderr, "mmctl: unknown policy \"%s\" (known:", policy);
		for (size_t i = 0; rp_variant_name(i) != NULL; i++)
			fprintf(stderr, " %s,", rp_variant_name(i));
		fprintf(stderr, " all)\n");
		return 2;
	}
	find = find || capacity == 0;
	f = strcmp(trace, "-") == 0 ? stdin : fopen(trace, "r");
	if (f == NULL) {
		fprintf(stderr, "mmctl: cannot open \"%s\": %s\n", trace,
		    strerror(errno));
		return 1;
	}
	r = rp_trace_read(&t, f, trace, err, sizeof(err));
	if (f != stdin)
		fclose(f);
	if (r < 0) {
		fprintf(stderr, "mmctl: %s\n", err);
		return 1;
	}
	if (json)
		arr = json_array();
	else {
		printf("%-*s %14s %16s %10s %14s %19s %9s", cold > 0 ? 36 : 28,
		    "policy",
		    "capacity_kib", "provisioned_kib", "saved_pct",
		    "shortfall_pct", "mean_shortfall_kib", "commands");
		if (cold > 0)
			printf(" %13s %13s %9s", "reclaimed_kib",
			    "refault_kib", "stall_pct");
		putchar('\n');
	}
	/* With --reporting, each policy again with free page reporting;
	 * with --cold, the guests have cold memory, and the policies that
	 * can reclaim it run again doing so (the rest cannot: they are the
	 * comparison). */
	t.cold_share = cold;
	for (int fpr = 0; fpr <= (int)reporting && r >= 0; fpr++) {
		t.free_page_reporting = fpr;
		for (int rec = 0; rec <= (cold > 0) && r >= 0; rec++)
			r = run_rows(&t, all ? NULL : policy, fpr, rec, find,
			    capacity, max_short, json, arr);
	}
	if (json) {
		json_dumpf(arr, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(arr);
	}
	rp_trace_free(&t);
	return r < 0 ? 1 : 0;
}
