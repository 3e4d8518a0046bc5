/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reading one sample of the guest's memory from /proc, and walking its
 * values for the channels. Problems with a file are logged when they start
 * and when they end, never once per second.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "guest-agent.h"
#include "log.h"

static void
note_source(const char *root, const char *file, int err, bool bad,
    int *prev_err, bool *prev_bad)
{
	if (err != *prev_err) {
		if (err < 0) {
			errno = -err;
			log_warn("cannot read \"%s/%s\", reporting without "
			    "its fields", root, file);
		} else {
			log_info("\"%s/%s\" is readable again", root, file);
		}
	}
	if (err == 0 && bad && !*prev_bad)
		log_warnx("\"%s/%s\" has malformed or implausible lines; "
		    "reporting without them", root, file);
	*prev_err = err;
	*prev_bad = err == 0 ? bad : *prev_bad;
}

void
agent_sample_read(const char *proc_root, struct agent_sources *src,
    struct agent_sample *ret)
{
	struct hs_scan sc = { 0 };
	int r;

	r = hs_load_meminfo(proc_root, &ret->mem, &sc);
	if (r < 0)
		mm__v1__meminfo__init(&ret->mem);
	note_source(proc_root, "meminfo", r, sc.bad > 0 || sc.truncated ||
	    (r == 0 && hs_count(&hs_meminfo_fields, &ret->mem) == 0),
	    &src->mem_err, &src->mem_bad);

	sc = (struct hs_scan){ 0 };
	r = hs_load_vmstat(proc_root, &ret->vm, &sc);
	if (r < 0)
		mm__v1__vmstat__init(&ret->vm);
	note_source(proc_root, "vmstat", r, sc.bad > 0 || sc.truncated,
	    &src->vm_err, &src->vm_bad);

	sc = (struct hs_scan){ 0 };
	r = hs_load_psi(proc_root, &ret->psi, &sc);
	if (r < 0)
		mm__v1__psi__init(&ret->psi);
	note_source(proc_root, "pressure/memory", r, sc.bad > 0 ||
	    sc.truncated, &src->psi_err, &src->psi_bad);
}

/* The three parts of a sample, in the order of GuestStats. */
struct part {
	const struct hs_fields *fields;
	size_t off;
};

static const struct part parts[] = {
	{ &hs_meminfo_fields, offsetof(struct agent_sample, mem) },
	{ &hs_vmstat_fields, offsetof(struct agent_sample, vm) },
	{ &hs_psi_fields, offsetof(struct agent_sample, psi) },
};

static const void *
part_of(const struct agent_sample *s, const struct part *p)
{
	return (const char *)s + p->off;
}

bool
agent_sample_equal(const struct agent_sample *a,
    const struct agent_sample *b)
{
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
		if (!hs_equal(parts[i].fields, part_of(a, &parts[i]),
		    part_of(b, &parts[i])))
			return false;
	return strcmp(a->vm_id, b->vm_id) == 0 &&
	    memcmp(&a->cold, &b->cold, sizeof(a->cold)) == 0 &&
	    a->has_reclaim == b->has_reclaim &&
	    a->reclaim_seq == b->reclaim_seq &&
	    a->reclaim_kib == b->reclaim_kib &&
	    a->reclaim_state == b->reclaim_state;
}

int
agent_sample_foreach(const struct agent_sample *s,
    int (*cb)(const struct agent_value *v, void *arg), void *arg)
{
	struct agent_value v;
	int r;

	memset(&v, 0, sizeof(v));
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		const struct hs_fields *fs = parts[i].fields;
		const void *msg = part_of(s, &parts[i]);

		v.group = fs->group;
		for (size_t k = 0; k < fs->n; k++) {
			const struct hs_field *f = &fs->f[k];

			if (!hs_has(f, msg))
				continue;
			v.name = f->name;
			v.is_pct = f->pct;
			v.u = f->pct ? 0 : hs_u64(f, msg);
			v.pct = f->pct ? hs_pct(f, msg) : 0.0;
			if ((r = cb(&v, arg)) != 0)
				return r;
		}
	}
	return 0;
}

static bool
id_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

void
agent_vm_id(const char *name, char buf[65])
{
	char host[256];
	size_t i;

	if (name == NULL || *name == '\0') {
		if (gethostname(host, sizeof(host)) < 0)
			host[0] = '\0';
		host[sizeof(host) - 1] = '\0';
		name = host;
	}
	for (i = 0; i < 64 && name[i] != '\0'; i++)
		buf[i] = id_char(name[i]) ? name[i] : '-';
	buf[i] = '\0';
	if (i == 0)
		strcpy(buf, "unknown");
}
