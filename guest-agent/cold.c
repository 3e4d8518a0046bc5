/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The guest's cold memory, from the multi-generational LRU (MGLRU, Linux
 * 6.1 and later): how much was not touched for at least a while.
 *
 * Every [cold] interval the agent ages each memcg and node through
 * debugfs (<debugfs>/lru_gen: "+ memcg_id node_id max_gen_nr can_swap
 * force_scan"): the kernel walks the page tables and moves every page
 * touched since the last aging into a new, youngest generation. A page in
 * an older generation has therefore not been touched since the next
 * younger one began: the walk moves what was touched into the youngest
 * generation, then opens a new, empty one. With generations g0 (oldest) ..
 * g3 (youngest, just opened) of ages a0 > a1 > a2 > a3, the pages of g0
 * are idle for at least a1, those of g0 and g1 for at least a2; those of
 * g0..g2 only for a3, about nothing, which is left out. The kernel keeps at most four
 * generations, folding the oldest into the next, so the estimate covers
 * up to about three intervals; each bucket is summed over every memcg and
 * node, at the youngest age any of them has at that rank.
 *
 * Neither DAMON nor idle page tracking is needed (the test guests' kernel
 * has neither). Where MGLRU is missing, off (and [cold] enable_lru_gen is
 * no), or debugfs cannot be read, the agent says why once and reports no
 * cold memory. Aging costs a page table walk per interval; it does not
 * reclaim anything.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "guest-agent.h"
#include "log.h"

#define LRUVECS_MAX	1024
/* A bucket idle for less is left out (see cold_buckets()). */
#define COLD_IDLE_MIN_MS	1000

static int
read_all(const char *path, char **ret)
{
	FILE *f = fopen(path, "re");
	size_t cap = 8192, len = 0;
	char *buf = malloc(cap);

	if (f == NULL || buf == NULL) {
		int e = f == NULL ? -errno : -ENOMEM;

		if (f != NULL)
			fclose(f);
		free(buf);
		return e;
	}
	for (;;) {
		size_t n;

		if (len + 1 == cap) {
			char *p = cap < (4u << 20) ? realloc(buf, cap * 2) :
			    NULL;

			if (p == NULL) {
				free(buf);
				fclose(f);
				return -EFBIG;
			}
			buf = p;
			cap *= 2;
		}
		n = fread(buf + len, 1, cap - 1 - len, f);
		if (n == 0)
			break;
		len += n;
	}
	buf[len] = '\0';
	fclose(f);
	*ret = buf;
	return 0;
}

/*
 * Parse lru_gen's text into v (at most max): "memcg <id> <path>" lines,
 * " node <id>" lines, then one "<seq> <age_ms> <anon> <file>" line per
 * generation, oldest first. Returns how many lruvecs, or -EINVAL.
 */
int
cold_parse(const char *text, struct cold_lruvec *v, size_t max)
{
	unsigned long memcg = 0;
	bool have_memcg = false;
	size_t n = 0;
	struct cold_lruvec *cur = NULL;

	for (const char *line = text; *line != '\0';) {
		const char *end = strchr(line, '\n');
		char buf[256];
		size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
		unsigned long long a, b, c, d;
		unsigned long id;

		if (len >= sizeof(buf))
			return -EINVAL;
		memcpy(buf, line, len);
		buf[len] = '\0';
		line += len + (end != NULL);
		if (sscanf(buf, " memcg %lu", &id) == 1) {
			memcg = id;
			have_memcg = true;
			cur = NULL;
		} else if (sscanf(buf, " node %lu", &id) == 1) {
			if (!have_memcg || n == max)
				return -EINVAL;
			cur = &v[n++];
			memset(cur, 0, sizeof(*cur));
			cur->memcg = memcg;
			cur->node = id;
		} else if (sscanf(buf, " %llu %llu %llu %llu", &a, &b, &c,
		    &d) == 4) {
			if (cur == NULL)
				return -EINVAL;
			/* More than four: keep the youngest four. */
			if (cur->n == MSG_COLD_MAX) {
				memmove(&cur->g[0], &cur->g[1],
				    sizeof(cur->g[0]) * (MSG_COLD_MAX - 1));
				cur->n--;
			}
			if (cur->n > 0 && a <= cur->g[cur->n - 1].seq)
				return -EINVAL;
			cur->g[cur->n].seq = a;
			cur->g[cur->n].age_ms = b;
			cur->g[cur->n].anon = c;
			cur->g[cur->n].file = d;
			cur->n++;
		} else if (buf[strspn(buf, " \t")] != '\0') {
			return -EINVAL;
		}
	}
	return (int)n;
}

/*
 * The buckets of lruvecs v: bucket k (k = 0 the longest idle) holds the
 * pages of the k + 1 oldest generations of every lruvec, idle for at least
 * the age of the generation after them (the smallest such age over the
 * lruvecs). Pages are page_kib each.
 */
void
cold_buckets(const struct cold_lruvec *v, size_t n, unsigned page_kib,
    struct agent_cold *ret)
{
	memset(ret, 0, sizeof(*ret));
	for (size_t k = 0; k + 1 < MSG_COLD_MAX; k++) {
		uint64_t idle = UINT64_MAX, anon = 0, file = 0;
		bool any = false;

		for (size_t i = 0; i < n; i++) {
			if (v[i].n < k + 2)
				continue;
			any = true;
			if (v[i].g[k + 1].age_ms < idle)
				idle = v[i].g[k + 1].age_ms;
			for (size_t g = 0; g <= k; g++) {
				anon += v[i].g[g].anon * page_kib;
				file += v[i].g[g].file * page_kib;
			}
		}
		if (!any)
			break;
		/* Idle since the aging that just made the youngest: not
		 * known to be idle at all. */
		if (idle < COLD_IDLE_MIN_MS)
			continue;
		ret->b[ret->n].idle_ms = idle;
		ret->b[ret->n].anon_kib = anon;
		ret->b[ret->n].file_kib = file;
		ret->n++;
	}
	/* Shortest idle first, as GuestStats.cold says. */
	for (size_t i = 0; i < ret->n / 2; i++) {
		__typeof__(ret->b[0]) t = ret->b[i];

		ret->b[i] = ret->b[ret->n - 1 - i];
		ret->b[ret->n - 1 - i] = t;
	}
}

static int
enabled_mask(const char *path, unsigned long *ret)
{
	char *text;
	int r = read_all(path, &text);

	if (r < 0)
		return r;
	*ret = strtoul(text, NULL, 0);
	free(text);
	return 0;
}

int
cold_start(struct agent_cold_state *c, const struct agent_conf *conf)
{
	char enabled[1100];
	unsigned long mask = 0;
	int r;

	memset(c, 0, sizeof(*c));
	if (conf->cold_ms == 0) {
		log_info("no cold-memory estimate ([cold] interval is 0)");
		return -ENOTSUP;
	}
	snprintf(enabled, sizeof(enabled), "%s/kernel/mm/lru_gen/enabled",
	    conf->sys_root);
	snprintf(c->path, sizeof(c->path), "%s/kernel/debug/lru_gen",
	    conf->sys_root);
	r = enabled_mask(enabled, &mask);
	if (r < 0) {
		log_info("no cold-memory estimate: this kernel has no MGLRU "
		    "(\"%s\": %s)", enabled, strerror(-r));
		return r;
	}
	if (mask == 0 && conf->cold_enable) {
		FILE *f = fopen(enabled, "we");

		if (f == NULL || fputs("y\n", f) == EOF || fclose(f) != 0) {
			log_warn("no cold-memory estimate: cannot turn MGLRU "
			    "on (\"%s\")", enabled);
			return -EPERM;
		}
		log_info("MGLRU turned on ([cold] enable_lru_gen)");
		(void)enabled_mask(enabled, &mask);
	}
	if (mask == 0) {
		log_info("no cold-memory estimate: MGLRU is off (\"%s\" is 0; "
		    "[cold] enable_lru_gen = yes turns it on)", enabled);
		return -ENOTSUP;
	}
	if (access(c->path, R_OK | W_OK) < 0) {
		char debugfs[1100];

		/* debugfs is not always mounted; the agent runs as root. */
		snprintf(debugfs, sizeof(debugfs), "%s/kernel/debug",
		    conf->sys_root);
		if (mount("debugfs", debugfs, "debugfs", 0, NULL) < 0 ||
		    access(c->path, R_OK | W_OK) < 0) {
			log_warn("no cold-memory estimate: \"%s\" cannot be "
			    "read and written", c->path);
			return -EACCES;
		}
	}
	c->page_kib = (unsigned)(sysconf(_SC_PAGESIZE) / 1024);
	c->on = true;
	log_info("cold-memory estimate: MGLRU aged every %lld ms",
	    (long long)conf->cold_ms);
	return 0;
}

void
cold_age(struct agent_cold_state *c)
{
	static struct cold_lruvec v[LRUVECS_MAX];
	char *text = NULL;
	FILE *f;
	int n, r;

	if (!c->on)
		return;
	r = read_all(c->path, &text);
	n = r < 0 ? r : cold_parse(text, v, LRUVECS_MAX);
	free(text);
	if (n < 0)
		goto fail;
	/* A new generation in every lruvec: one command each. */
	f = fopen(c->path, "we");
	if (f == NULL)
		goto fail;
	for (int i = 0; i < n; i++) {
		if (v[i].n == 0)
			continue;
		fprintf(f, "+ %lu %lu %llu 1 1\n", v[i].memcg, v[i].node,
		    v[i].g[v[i].n - 1].seq);
		/* One write per command: the kernel takes a line a write. */
		if (fflush(f) != 0)
			clearerr(f);
	}
	fclose(f);
	r = read_all(c->path, &text);
	n = r < 0 ? r : cold_parse(text, v, LRUVECS_MAX);
	free(text);
	if (n < 0)
		goto fail;
	cold_buckets(v, (size_t)n, c->page_kib, &c->last);
	if (c->failing)
		log_info("cold-memory estimate: \"%s\" readable again",
		    c->path);
	c->failing = false;
	return;
fail:
	c->last.n = 0;
	if (!c->failing)
		log_warnx("cold-memory estimate: \"%s\" unreadable or "
		    "malformed; reporting none until it reads again", c->path);
	c->failing = true;
}
