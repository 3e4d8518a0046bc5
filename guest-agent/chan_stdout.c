/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The stdout channel: one JSON object per report and line, for people and
 * scripts. Field names are those of mm.v1.GuestStats, grouped as there.
 */
#include <errno.h>
#include <stdlib.h>

#include <jansson.h>

#include "guest-agent.h"
#include "log.h"

struct chan_stdout {
	struct agent_chan ch;
	FILE *f;
};

static int
add_value_cb(const struct agent_value *v, void *arg)
{
	json_t *root = arg, *group, *val;

	group = json_object_get(root, v->group);
	if (group == NULL) {
		group = json_object();
		if (group == NULL || json_object_set_new(root, v->group,
		    group) < 0)
			return -ENOMEM;
	}
	val = v->is_pct ? json_real(v->pct) : json_integer((json_int_t)v->u);
	if (val == NULL || json_object_set_new(group, v->name, val) < 0)
		return -ENOMEM;
	return 0;
}

static int
stdout_send(struct agent_chan *ch, const struct agent_sample *s)
{
	struct chan_stdout *c = (struct chan_stdout *)ch;
	json_t *root;
	int r = -ENOMEM;

	root = json_pack("{s:s, s:s, s:I, s:I}", "vm_id", s->vm_id,
	    "source", "agent", "agent_seq", (json_int_t)s->seq,
	    "time_ms", (json_int_t)s->time_ms);
	if (root == NULL)
		goto fail;
	r = agent_sample_foreach(s, add_value_cb, root);
	if (r < 0)
		goto fail;
	if (json_dumpf(root, c->f, JSON_COMPACT | JSON_REAL_PRECISION(5)) <
	    0 || fputc('\n', c->f) == EOF || fflush(c->f) == EOF) {
		r = -EIO;
		goto fail;
	}
	json_decref(root);
	return 0;
fail:
	json_decref(root);
	log_warnx("stdout: report %llu not written",
	    (unsigned long long)s->seq);
	return r;
}

static void
stdout_free(struct agent_chan *ch)
{
	free(ch);
}

struct agent_chan *
chan_stdout_new(FILE *f)
{
	struct chan_stdout *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->ch.name = "stdout";
	c->ch.send = stdout_send;
	c->ch.free = stdout_free;
	c->f = f;
	return &c->ch;
}
