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

static void
print_row(const struct rp_result *r, bool json, json_t *arr)
{
	if (json) {
		json_array_append_new(arr, json_pack("{s:s, s:I, s:I, s:f, "
		    "s:f, s:f, s:I}", "policy", r->policy, "capacity_kib",
		    (json_int_t)r->capacity_kib, "provisioned_kib",
		    (json_int_t)r->provisioned_kib, "saved_pct", r->saved_pct,
		    "shortfall_pct", r->shortfall_pct, "mean_shortfall_kib",
		    r->mean_shortfall_kib, "commands",
		    (json_int_t)r->commands));
		return;
	}
	printf("%-28s %14llu %16llu %10.2f %14.3f %19.0f %9llu\n", r->policy,
	    (unsigned long long)r->capacity_kib,
	    (unsigned long long)r->provisioned_kib, r->saved_pct,
	    r->shortfall_pct, r->mean_shortfall_kib,
	    (unsigned long long)r->commands);
}

static void
sim_usage(void)
{
	fprintf(stderr, "usage: mmctl sim --trace FILE --policy NAME|all "
	    "[--capacity-kib N | --find-capacity]\n"
	    "                 [--max-shortfall PCT] [--json] [--reporting]\n"
	    "  NAME: pressure, pressure-nohistory (pressure without its "
	    "history term),\n  pressure-nopool (without its pool-level "
	    "risk), static, xenmm, mom;\n  the trace is CSV "
	    "time_s,vm,used_kib,max_kib\n"
	    "  --reporting: each policy again with the guests' free page "
	    "reporting\n");
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
		{ NULL, 0, NULL, 0 },
	};
	const char *trace = NULL, *policy = NULL;
	unsigned long long capacity = 0;
	double max_short = 0.1;
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
	else
		printf("%-28s %14s %16s %10s %14s %19s %9s\n", "policy",
		    "capacity_kib", "provisioned_kib", "saved_pct",
		    "shortfall_pct", "mean_shortfall_kib", "commands");
	/* With --reporting, each policy again with free page reporting. */
	for (int fpr = 0; fpr <= (int)reporting && r >= 0; fpr++) {
		t.free_page_reporting = fpr;
		for (size_t i = 0; rp_variant_name(i) != NULL; i++) {
			const char *name = rp_variant_name(i);
			struct rp_result res;
			char row[64];

			if (!all && strcmp(name, policy) != 0)
				continue;
			(void)rp_variant_policy(name, &p);
			r = find ? rp_find_capacity(&t, &p, max_short, &res) :
			    rp_run(&t, &p, capacity, &res);
			if (r < 0) {
				fprintf(stderr, "mmctl: out of memory\n");
				break;
			}
			snprintf(row, sizeof(row), "%s%s", name,
			    fpr ? "+reporting" : "");
			res.policy = row;
			print_row(&res, json, arr);
		}
	}
	if (json) {
		json_dumpf(arr, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(arr);
	}
	rp_trace_free(&t);
	return r < 0 ? 1 : 0;
}
