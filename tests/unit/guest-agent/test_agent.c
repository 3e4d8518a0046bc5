/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of mm-guest-agent's logic: when it reports (changes, resends,
 * pressure, coalescing), samples from fixture trees with warnings logged
 * once, the JSON of the stdout channel and the frames of the virtio
 * channel, including a host side that is slow, absent and back.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "fixture.h"
#include "guest-agent.h"
#include "log.h"
#include "msg.h"
#include "testutil.h"

static const struct agent_conf conf = {
	.interval_ms = 1000,
	.resend_ms = 10000,
	.min_gap_ms = 100,
};

static void
test_agent_report_decisions(void **state)
{
	struct report_state st = { 0 };
	struct agent_sample a, b;
	uint64_t at = 0;

	fixture_sample("normal", &a, 0);
	fixture_sample("balloon", &b, 0);
	/* The first report always goes. */
	assert_int_equal(report_decide(&conf, &st, &a, 5000, false, &at),
	    REPORT_SEND);
	report_sent(&st, &a, 5000);
	/* Unchanged: not again before resend_ms... */
	assert_int_equal(report_decide(&conf, &st, &a, 6000, false, &at),
	    REPORT_SKIP);
	assert_int_equal(report_decide(&conf, &st, &a, 14999, false, &at),
	    REPORT_SKIP);
	/* ...but then, as a sign of life. */
	assert_int_equal(report_decide(&conf, &st, &a, 15000, false, &at),
	    REPORT_SEND);
	/* Changed: at once. */
	assert_int_equal(report_decide(&conf, &st, &b, 6000, false, &at),
	    REPORT_SEND);
	/* Pressure: at once even when unchanged. */
	assert_int_equal(report_decide(&conf, &st, &a, 6000, true, &at),
	    REPORT_SEND);
	/* Within min_gap of the last report: held back to its end. */
	assert_int_equal(report_decide(&conf, &st, &b, 5030, true, &at),
	    REPORT_DEFER);
	assert_int_equal(at, 5100);
	assert_int_equal(report_decide(&conf, &st, &b, 5099, false, &at),
	    REPORT_DEFER);
	assert_int_equal(report_decide(&conf, &st, &b, 5100, false, &at),
	    REPORT_SEND);
	/* The vm_id is part of what changed. */
	b = a;
	strcpy(b.vm_id, "guest-2");
	assert_int_equal(report_decide(&conf, &st, &b, 6000, false, &at),
	    REPORT_SEND);
}

static void
test_agent_available_dropped(void **state)
{
	struct agent_sample normal, low, none;

	fixture_sample("normal", &normal, 0);	/* 82 % available */
	fixture_sample("deflate-on-oom", &low, 0);	/* 4.7 % available */
	memset(&none, 0, sizeof(none));
	assert_true(report_available_dropped(&normal.mem, &low.mem, 10));
	assert_true(report_available_dropped(&none.mem, &low.mem, 10));
	/* Only the crossing counts, not staying low. */
	assert_false(report_available_dropped(&low.mem, &low.mem, 10));
	assert_false(report_available_dropped(&low.mem, &normal.mem, 10));
	assert_false(report_available_dropped(&normal.mem, &low.mem, 4));
	assert_false(report_available_dropped(&normal.mem, &low.mem, 0));
}

static void
test_agent_used_kib(void **state)
{
	struct agent_sample a;
	uint64_t total, used;

	fixture_sample("normal", &a, 0);
	total = a.mem.total_kib;
	assert_true(report_used_kib(&a.mem, NULL, false, &used));
	assert_int_equal(used, total - a.mem.available_kib);
	assert_int_equal(used, 4028464 - 3301520);	/* 726944 */
	/* A deflate-on-oom balloon of 10 MiB: its pages are not the
	 * guest's use; any other balloon is already out of MemTotal. */
	a.vm.balloon_pages = 2560;
	a.vm.has_balloon_pages = 1;
	assert_true(report_used_kib(&a.mem, &a.vm, true, &used));
	assert_int_equal(used, total - a.mem.available_kib - 10240);
	/* guestmem.h's definition: 2560 pages * 4 = 10240 KiB inside
	 * MemTotal; 726944 - 10240 = 716704 */
	assert_int_equal(used, 716704);
	assert_true(report_used_kib(&a.mem, &a.vm, false, &used));
	assert_int_equal(used, total - a.mem.available_kib);
	/* More balloon than use: torn numbers, not below zero. */
	a.vm.balloon_pages = total;
	assert_true(report_used_kib(&a.mem, &a.vm, true, &used));
	assert_int_equal(used, 0);
	/* Deflate-on-oom without the page count: nothing taken out. */
	a.vm.has_balloon_pages = 0;
	assert_true(report_used_kib(&a.mem, &a.vm, true, &used));
	assert_int_equal(used, 726944);
	/* More available than total: torn, not known. */
	a.mem.available_kib = total + 1;
	assert_false(report_used_kib(&a.mem, NULL, false, &used));
	/* Without MemAvailable nobody knows. */
	a.mem.has_available_kib = 0;
	assert_false(report_used_kib(&a.mem, NULL, false, &used));
}

/* stderr goes to a file while fn runs; returns how many lines it got. */
static int
count_log_lines(const char *dir, const char *root, int rounds)
{
	struct agent_sources src = { 0 };
	struct agent_sample s;
	char *path, buf[4096];
	int saved, fd, lines = 0;
	ssize_t n;

	path = tu_write_file(dir, "stderr", "");
	fflush(stderr);
	saved = dup(2);
	fd = open(path, O_WRONLY | O_TRUNC);
	dup2(fd, 2);
	close(fd);
	for (int i = 0; i < rounds; i++)
		agent_sample_read(root, &src, &s);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	fd = open(path, O_RDONLY);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		for (ssize_t i = 0; i < n; i++)
			lines += buf[i] == '\n';
	close(fd);
	free(path);
	return lines;
}

static void
test_agent_sample_warns_once(void **state)
{
	char *dir = tu_tmpdir(), *root;
	struct agent_sources src = { 0 };
	struct agent_sample s;

	/* No PSI: one warning however often it is sampled. */
	root = tu_source_path("tests/fixtures/proc/no-psi");
	assert_int_equal(count_log_lines(dir, root, 5), 1);
	agent_sample_read(root, &src, &s);
	assert_int_equal(src.psi_err, -ENOENT);
	assert_int_equal(hs_count(&hs_psi_fields, &s.psi), 0);
	assert_int_equal(s.mem.total_kib, 4028464);
	free(root);
	/* Hostile: one warning per malformed file (3). */
	root = tu_source_path("tests/fixtures/proc/hostile");
	assert_int_equal(count_log_lines(dir, root, 5), 3);
	free(root);
	/* Nothing there at all: a warning per file, an empty sample. */
	assert_int_equal(count_log_lines(dir, "/nonexistent/proc", 5), 3);
	agent_sample_read("/nonexistent/proc", &src, &s);
	assert_int_equal(hs_count(&hs_meminfo_fields, &s.mem) +
	    hs_count(&hs_vmstat_fields, &s.vm) +
	    hs_count(&hs_psi_fields, &s.psi), 0);
	tu_rmtree(dir);
	free(dir);
}

static void
test_agent_stdout_json(void **state)
{
	struct agent_chan *ch;
	struct agent_sample s;
	json_error_t err;
	json_t *j;
	FILE *f = tmpfile();
	char line[4096];

	fixture_sample("normal", &s, 0);
	s.seq = 7;
	s.time_ms = 1700000000123ull;
	ch = chan_stdout_new(f);
	assert_non_null(ch);
	assert_int_equal(ch->send(ch, &s), 0);
	fixture_sample("no-psi", &s, 0);
	assert_int_equal(ch->send(ch, &s), 0);
	agent_chan_free(ch);
	rewind(f);

	assert_non_null(fgets(line, sizeof(line), f));
	j = json_loads(line, 0, &err);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "vm_id")),
	    "guest-1");
	assert_int_equal(json_integer_value(json_object_get(j, "agent_seq")),
	    7);
	assert_int_equal(json_integer_value(json_object_get(j, "time_ms")),
	    1700000000123ll);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j,
	    "meminfo"), "total_kib")), 4028464);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j,
	    "vmstat"), "refault_pages")), 4220);
	assert_true(json_real_value(json_object_get(json_object_get(j,
	    "psi"), "some_avg10_pct")) == 1.52);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j,
	    "psi"), "full_total_us")), 402117);
	json_decref(j);

	/* One object per line; without PSI there is no psi object. */
	assert_non_null(fgets(line, sizeof(line), f));
	j = json_loads(line, 0, &err);
	assert_non_null(j);
	assert_null(json_object_get(j, "psi"));
	assert_non_null(json_object_get(j, "meminfo"));
	json_decref(j);
	assert_null(fgets(line, sizeof(line), f));
	fclose(f);
}

/* Decode one frame at p (n bytes available); returns its length. */
static size_t
decode_frame(const uint8_t *p, size_t n, Mm__V1__GuestStats **ret)
{
	ProtobufCMessage *m;
	size_t len;
	char why[256];

	assert_true(n >= 4);
	len = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 |
	    p[3];
	assert_true(n >= 4 + len);
	assert_int_equal(msg_unpack(MSG_GUEST_STATS, p + 4, len, &m, why,
	    sizeof(why)), 0);
	*ret = (Mm__V1__GuestStats *)m;
	return 4 + len;
}

static void
test_agent_virtio_frame(void **state)
{
	struct agent_sample s;
	Mm__V1__GuestStats *g;
	uint8_t *buf;
	size_t len;

	fixture_sample("hostile", &s, 0);
	s.seq = 3;
	s.time_ms = 1700000000000ull;
	assert_int_equal(chan_virtio_frame(&s, &buf, &len), 0);
	assert_int_equal(decode_frame(buf, len, &g), len);
	assert_string_equal(g->vm_id, "guest-1");
	assert_int_equal(g->source, MM__V1__STATS_SOURCE__STATS_SOURCE_AGENT);
	assert_int_equal(g->agent_seq, 3);
	assert_int_equal(g->time_ms, 1700000000000ull);
	assert_non_null(g->meminfo);
	assert_true(g->meminfo->has_total_kib);
	assert_int_equal(g->meminfo->total_kib, 2097152);
	assert_false(g->meminfo->has_free_kib);
	assert_false(g->meminfo->has_anon_kib);
	assert_true(g->vmstat->has_oom_kills);
	assert_false(g->vmstat->has_major_faults);
	assert_false(g->psi->has_some_avg10_pct);
	assert_true(g->psi->full_avg60_pct == 0.20);
	msg_free(&g->base);
	free(buf);
}

/* Read everything the host side has; returns the bytes. */
static size_t
drain(int fd, uint8_t *buf, size_t size)
{
	size_t got = 0;
	ssize_t n;

	while (got < size && (n = read(fd, buf + got, size - got)) > 0)
		got += (size_t)n;
	return got;
}

/*
 * A host side that does not read: frames wait, only the newest of those
 * not begun goes out, and a frame begun is finished first.
 */
static void
test_agent_virtio_slow_host(void **state)
{
	static uint8_t buf[1 << 20];
	struct agent_sample s;
	Mm__V1__GuestStats *g;
	struct agent_chan *ch;
	uv_loop_t loop;
	int sv[2], junk = 0, sz = 4096;
	size_t got, off;
	ssize_t n;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	/* Fill the pipe so the agent's first write is refused. */
	while ((n = write(sv[0], buf, 512)) > 0)
		junk += (int)n;
	assert_int_equal(uv_loop_init(&loop), 0);
	ch = chan_virtio_new_fd(&loop, sv[0]);
	fixture_sample("normal", &s, 0);
	for (s.seq = 1; s.seq <= 5; s.seq++)
		assert_int_equal(ch->send(ch, &s), 0);	/* never blocks */
	tu_run_for(&loop, 20);
	got = drain(sv[1], buf, sizeof(buf));
	assert_int_equal(got, (size_t)junk);	/* nothing else yet */
	tu_run_for(&loop, 50);
	got = drain(sv[1], buf, sizeof(buf));
	off = decode_frame(buf, got, &g);
	assert_int_equal(g->agent_seq, 5);	/* 1..4 coalesced away */
	msg_free(&g->base);
	assert_int_equal(off, got);

	agent_chan_free(ch);
	assert_int_equal(tu_loop_finish(&loop), 0);
	close(sv[1]);
}

/* The port's host side is absent, comes, goes and comes back. */
static void
test_agent_virtio_host_absent_and_back(void **state)
{
	static uint8_t buf[65536];
	char *dir = tu_tmpdir(), path[512];
	struct agent_sample s;
	Mm__V1__GuestStats *g;
	struct agent_chan *ch;
	uv_loop_t loop;
	size_t got;
	int host;

	signal(SIGPIPE, SIG_IGN);
	snprintf(path, sizeof(path), "%s/port", dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(uv_loop_init(&loop), 0);
	fixture_sample("normal", &s, 0);

	ch = chan_virtio_new(&loop, path);	/* nobody reads: ENXIO */
	assert_non_null(ch);
	s.seq = 1;
	assert_int_equal(ch->send(ch, &s), 0);

	host = open(path, O_RDONLY | O_NONBLOCK);
	s.seq = 2;
	assert_int_equal(ch->send(ch, &s), 0);
	tu_run_for(&loop, 10);
	got = drain(host, buf, sizeof(buf));
	assert_int_equal(decode_frame(buf, got, &g), got);
	assert_int_equal(g->agent_seq, 2);
	msg_free(&g->base);

	close(host);			/* the host goes away */
	s.seq = 3;
	assert_int_equal(ch->send(ch, &s), 0);	/* EPIPE: closed */
	s.seq = 4;
	assert_int_equal(ch->send(ch, &s), 0);	/* ENXIO on reopen */

	host = open(path, O_RDONLY | O_NONBLOCK);	/* and is back */
	s.seq = 5;
	assert_int_equal(ch->send(ch, &s), 0);
	tu_run_for(&loop, 10);
	got = drain(host, buf, sizeof(buf));
	assert_int_equal(decode_frame(buf, got, &g), got);
	assert_int_equal(g->agent_seq, 5);
	msg_free(&g->base);

	agent_chan_free(ch);
	assert_int_equal(tu_loop_finish(&loop), 0);
	close(host);
	tu_rmtree(dir);
	free(dir);
}

/*
 * The cold-memory estimate from lru_gen's text (two memcgs, one node each,
 * as Linux 6.1 prints it): bucket k holds the k + 1 oldest generations of
 * every lruvec, idle for at least the next one's age, the youngest of the
 * two; shortest idle first. Garbage is refused, not half read.
 */
static void
test_agent_cold_from_lru_gen(void **state)
{
	static const char text[] =
	    "memcg     1 /\n"
	    " node     0\n"
	    "          4     180000       1000         10 \n"
	    "          5     120000       2000         20 \n"
	    "          6      60000       3000         30 \n"
	    "          7        100       4000         40 \n"
	    "memcg     2 /system.slice\n"
	    " node     0\n"
	    "          1     170000        100          1 \n"
	    "          2     110000        200          2 \n"
	    "          3      65000        300          3 \n"
	    "          4         90        400          4 \n";
	struct cold_lruvec v[4];
	struct agent_cold c;

	(void)state;
	assert_int_equal(cold_parse(text, v, 4), 2);
	assert_int_equal(v[1].memcg, 2);
	assert_int_equal(v[1].n, 4);
	cold_buckets(v, 2, 4, &c);
	/* Idle since the youngest generation began (90 ms): left out. */
	assert_int_equal(c.n, 2);
	/* At least 60 s: the two oldest of each. */
	assert_int_equal(c.b[0].idle_ms, 60000);
	assert_int_equal(c.b[0].anon_kib, (1000 + 2000 + 100 + 200) * 4);
	assert_int_equal(c.b[0].file_kib, (10 + 20 + 1 + 2) * 4);
	/* At least 110 s: the oldest of each. */
	assert_int_equal(c.b[1].idle_ms, 110000);
	assert_int_equal(c.b[1].anon_kib, (1000 + 100) * 4);

	/* Fewer than two generations: nothing is known to be idle. */
	assert_int_equal(cold_parse("memcg 1 /\n node 0\n 3 5 7 9\n", v, 4),
	    1);
	cold_buckets(v, 1, 4, &c);
	assert_int_equal(c.n, 0);
	/* Not lru_gen's text. */
	assert_int_equal(cold_parse(" node 0\n 1 2 3 4\n", v, 4), -EINVAL);
	assert_int_equal(cold_parse("memcg 1 /\n node 0\n 5 1 1 1\n"
	    " 4 1 1 1\n", v, 4), -EINVAL);
	assert_int_equal(cold_parse("memcg 1 /\n node 0\n 1 2 x 4\n", v, 4),
	    -EINVAL);
}

/* A frame of the control port: 4-byte big-endian length, then the
 * packed ReclaimRequest. */
static void
send_request(int fd, uint64_t seq, uint64_t kib, double budget)
{
	Mm__V1__ReclaimRequest rq = MM__V1__RECLAIM_REQUEST__INIT;
	uint8_t *frame;
	size_t len;

	rq.has_seq = rq.has_kib = rq.has_psi_budget_pct = true;
	rq.seq = seq;
	rq.kib = kib;
	rq.psi_budget_pct = budget;
	assert_int_equal(msg_pack_frame(MSG_RECLAIM_REQUEST, &rq.base,
	    &frame, &len), 0);
	assert_int_equal(write(fd, frame, len), (ssize_t)len);
	free(frame);
}

static void
run_until_idle(uv_loop_t *loop, const struct agent_reclaim *rc)
{
	for (int i = 0; i < 100 && (rc->running || rc->busy); i++)
		tu_run_for(loop, 50);
}

/*
 * Reclaim on the host's request, through a FIFO standing in for the
 * control port and a plain file for memory.reclaim: a request is capped at
 * [reclaim] max and done in steps; the same request again changes
 * nothing; a frame that is not a valid ReclaimRequest is refused and the
 * next good one still taken; 0 KiB stops. The steps written are what the
 * file ends with.
 */
static void
test_agent_reclaim_requests(void **state)
{
	char *dir = tu_tmpdir(), port[512], file[512];
	struct agent_conf rconf = {
		.proc_root = dir,
		.reclaim_max_kib = 96 * 1024,
		.reclaim_step_kib = 32 * 1024,
		.reclaim_cgroup = dir,
		.control_port = port,
	};
	static const uint8_t junk[] = { 0, 0, 0, 3, 0xff, 0xff, 0xff };
	struct agent_reclaim rc;
	struct agent_sample s;
	uv_loop_t loop;
	char *text;
	int fd;

	(void)state;
	snprintf(port, sizeof(port), "%s/control", dir);
	snprintf(file, sizeof(file), "%s/memory.reclaim", dir);
	assert_int_equal(mkfifo(port, 0600), 0);
	free(tu_write_file(dir, "memory.reclaim", ""));
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(reclaim_start(&rc, &loop, &rconf, true), 0);
	fd = open(port, O_WRONLY | O_NONBLOCK);
	assert_true(fd >= 0);

	send_request(fd, 7, 1024 * 1024, 10);
	tu_run_for(&loop, 300);
	run_until_idle(&loop, &rc);
	reclaim_status(&rc, &s);
	assert_true(s.has_reclaim);
	assert_int_equal(s.reclaim_seq, 7);
	/* Capped at max: three steps of 32 MiB. */
	assert_int_equal(s.reclaim_kib, 96 * 1024);
	assert_int_equal(s.reclaim_state,
	    MM__V1__RECLAIM_STATE__RECLAIM_STATE_DONE);
	text = tu_read_file(file, NULL);
	assert_string_equal(text, "33554432");	/* the last step's write */
	free(text);

	/* The same request again: nothing new. */
	send_request(fd, 7, 1024 * 1024, 10);
	tu_run_for(&loop, 300);
	reclaim_status(&rc, &s);
	assert_int_equal(s.reclaim_kib, 96 * 1024);

	/* Garbage, then a good one: refused, then taken. */
	assert_int_equal(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
	send_request(fd, 8, 40 * 1024, 10);
	tu_run_for(&loop, 300);
	run_until_idle(&loop, &rc);
	reclaim_status(&rc, &s);
	assert_int_equal(rc.refused, 1);
	assert_int_equal(s.reclaim_seq, 8);
	assert_int_equal(s.reclaim_kib, 40 * 1024);

	/* 0 KiB: stops (nothing running: just recorded). */
	send_request(fd, 9, 0, 10);
	tu_run_for(&loop, 300);
	assert_int_equal(rc.seq, 9);
	assert_false(rc.running);

	close(fd);
	reclaim_stop(&rc);
	assert_int_equal(tu_loop_finish(&loop), 0);
	tu_rmtree(dir);
	free(dir);
}

/*
 * A stop (0 KiB) before any request: later reports carry its seq with the
 * state STOPPED, and still pack (an UNSPECIFIED state would not validate,
 * and every report would be dropped).
 */
static void
test_agent_reclaim_stop_first(void **state)
{
	char *dir = tu_tmpdir();
	struct agent_conf rconf = {
		.proc_root = dir,
		.reclaim_max_kib = 1024,
		.reclaim_step_kib = 1024,
		.reclaim_cgroup = dir,
		.control_port = dir,
	};
	Mm__V1__ReclaimRequest rq = MM__V1__RECLAIM_REQUEST__INIT;
	struct agent_reclaim rc;
	struct agent_sample s;
	uv_loop_t loop;
	uint8_t *frame;
	size_t len;

	(void)state;
	assert_int_equal(uv_loop_init(&loop), 0);
	(void)reclaim_start(&rc, &loop, &rconf, true);
	rq.has_seq = rq.has_kib = rq.has_psi_budget_pct = true;
	rq.seq = 3;
	reclaim_request(&rc, &rq);
	memset(&s, 0, sizeof(s));
	strcpy(s.vm_id, "guest-1");
	reclaim_status(&rc, &s);
	assert_true(s.has_reclaim);
	assert_int_equal(s.reclaim_seq, 3);
	assert_int_equal(s.reclaim_state,
	    MM__V1__RECLAIM_STATE__RECLAIM_STATE_STOPPED);
	assert_int_equal(chan_virtio_frame(&s, &frame, &len), 0);
	free(frame);

	reclaim_stop(&rc);
	assert_int_equal(tu_loop_finish(&loop), 0);
	tu_rmtree(dir);
	free(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_agent_report_decisions),
		cmocka_unit_test(test_agent_available_dropped),
		cmocka_unit_test(test_agent_used_kib),
		cmocka_unit_test(test_agent_sample_warns_once),
		cmocka_unit_test(test_agent_stdout_json),
		cmocka_unit_test(test_agent_virtio_frame),
		cmocka_unit_test(test_agent_virtio_slow_host),
		cmocka_unit_test(test_agent_virtio_host_absent_and_back),
		cmocka_unit_test(test_agent_cold_from_lru_gen),
		cmocka_unit_test(test_agent_reclaim_requests),
		cmocka_unit_test(test_agent_reclaim_stop_first),
	};

	log_init("test_agent", 0, false);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
