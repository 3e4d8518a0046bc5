/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The xen driver's parser of the guest agent's data/mm/ values
 * (hv_xen_guest_from_keys() in common/host/hv/xen.c, what fetch_guest()
 * reads in its transaction). The input is key, NUL, value, NUL, ... for
 * keys below data/mm/ ("agent_seq", "meminfo/total_kib", "cold/0/idle_ms",
 * "reclaim/seq"...); a value is any bytes but NUL, as xenstore holds them.
 * Every field of the sample comes from a key given; without a bad key
 * every known key given is in the sample, the cold buckets are at most
 * four and numbered from 0 without a gap; a sample that validates packs.
 */
#include <string.h>

#include "fuzz.h"
#include "hoststats.h"
#include "hv/hv_impl.h"
#include "msg.h"

#define KEYS_MAX	64

struct keys {
	size_t n;
	const char *key[KEYS_MAX];
	const char *value[KEYS_MAX];
};

static const char *
find(const struct keys *k, const char *key)
{
	size_t i;

	for (i = 0; i < k->n; i++)
		if (strcmp(k->key[i], key) == 0)
			return k->value[i];
	return NULL;
}

static char *
get_cb(void *arg, const char *key)
{
	const char *v = find(arg, key);

	return v != NULL ? fz_strndup((const uint8_t *)v, strlen(v)) : NULL;
}

static void
check_group(const struct keys *k, const struct hs_fields *fs, const void *m,
    bool all)
{
	char key[128];
	size_t i;

	for (i = 0; i < fs->n; i++) {
		snprintf(key, sizeof(key), "%s/%s", fs->group, fs->f[i].name);
		if (m != NULL && hs_has(&fs->f[i], m))
			FZ_CHECK(find(k, key) != NULL);
		else if (all)
			FZ_CHECK(find(k, key) == NULL);
	}
}

static const char *const cold_names[] = { "idle_ms", "anon_kib", "file_kib" };
static const char *const reclaim_names[] = {
	"seq", "reclaimed_kib", "state", "stall_pct",
};

static bool
has_u64(const Mm__V1__ColdBucket *b, size_t k)
{
	return k == 0 ? b->has_idle_ms : k == 1 ? b->has_anon_kib :
	    b->has_file_kib;
}

/* cold/<i>/ and reclaim/ as the parser took them from k. */
static void
check_cold_reclaim(const struct keys *k, const Mm__V1__GuestStats *g,
    bool all)
{
	const Mm__V1__ReclaimStatus *rs = g->reclaim;
	bool has[4];
	char key[64];
	size_t i, f;

	FZ_CHECK(g->n_cold <= 4);
	for (i = 0; i < 5; i++) {
		for (f = 0; f < 3; f++) {
			snprintf(key, sizeof(key), "cold/%zu/%s", i,
			    cold_names[f]);
			if (i < g->n_cold && has_u64(g->cold[i], f))
				FZ_CHECK(find(k, key) != NULL);
			else if (all)
				FZ_CHECK(find(k, key) == NULL);
		}
	}
	has[0] = rs != NULL && rs->has_seq;
	has[1] = rs != NULL && rs->has_reclaimed_kib;
	has[2] = rs != NULL && rs->has_state;
	has[3] = rs != NULL && rs->has_stall_pct;
	FZ_CHECK(rs == NULL || has[0] || has[1] || has[2] || has[3]);
	for (f = 0; f < 4; f++) {
		snprintf(key, sizeof(key), "reclaim/%s", reclaim_names[f]);
		if (has[f])
			FZ_CHECK(find(k, key) != NULL);
		else if (all)
			FZ_CHECK(find(k, key) == NULL);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *bad_key, *bad_group;
	Mm__V1__GuestStats *g;
	struct keys k = { 0 };
	char *text, *p, *end;
	uint8_t *buf;
	size_t len;

	text = fz_strndup(data, size);
	end = text + size;
	for (p = text; p < end && k.n < KEYS_MAX;) {
		k.key[k.n] = p;
		p += strlen(p) + 1;
		k.value[k.n++] = p < end ? p : "";
		if (p < end)
			p += strlen(p) + 1;
	}
	g = hv_xen_guest_from_keys(get_cb, &k, &bad_key, &bad_group);
	if (g == NULL) {
		FZ_CHECK(find(&k, "agent_seq") == NULL);
		free(text);
		return 0;
	}
	FZ_CHECK(find(&k, "agent_seq") != NULL && g->has_agent_seq);
	FZ_CHECK(g->has_source &&
	    g->source == MM__V1__STATS_SOURCE__STATS_SOURCE_AGENT);
	FZ_CHECK(bad_group == NULL || bad_key != NULL);
	check_group(&k, &hs_meminfo_fields, g->meminfo, bad_key == NULL);
	check_group(&k, &hs_vmstat_fields, g->vmstat, bad_key == NULL);
	check_group(&k, &hs_psi_fields, g->psi, bad_key == NULL);
	check_cold_reclaim(&k, g, bad_key == NULL);
	g->vm_id = strdup("fuzz");
	FZ_CHECK(g->vm_id != NULL);
	if (bad_key == NULL &&
	    msg_validate(MSG_GUEST_STATS, &g->base, NULL, 0) == 0) {
		FZ_CHECK(msg_pack(MSG_GUEST_STATS, &g->base, &buf, &len) == 0);
		free(buf);
	}
	msg_free(&g->base);
	free(text);
	return 0;
}
