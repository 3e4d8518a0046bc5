/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The libvirt driver against libvirt's own test hypervisor, in-process:
 * test:///default (its running domain "test", state shared by every
 * connection of the process, so the test changes it through a connection
 * of its own) and test:///<file> (a domain with mm's agent channel, a
 * balloon that deflates on OOM, free page reporting and two NUMA cells).
 * The driver must find the domains with their limits, set the balloon live
 * without touching the persistent definition, see domains stop and start
 * by events, build guest samples from the balloon's statistics, read the
 * agent on the channel its XML names and write reclaim requests to the
 * control channel it names (none named: refused).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "hv.h"
#include "qmp_server.h"
#include "testutil.h"
#include "tu_hv.h"

static struct {
	uv_loop_t loop;
	struct hv *hv;
	unsigned added, removed, guests, balloons;
	enum hv_event last_ev;
	bool set_done;
	int set_status;
	bool closed;
} T;

static void
event_cb(struct hv *hv, enum hv_event ev, struct hv_vm *vm, void *arg)
{
	T.last_ev = ev;
	switch (ev) {
	case HV_EV_ADDED:
		T.added++;
		break;
	case HV_EV_REMOVED:
		T.removed++;
		break;
	case HV_EV_GUEST:
		T.guests++;
		break;
	case HV_EV_BALLOON:
		T.balloons++;
		break;
	case HV_EV_REJECTED:
		break;
	}
}

static void
set_cb(struct hv *hv, int status, void *arg)
{
	T.set_done = true;
	T.set_status = status;
}

static void
closed_cb(void *arg)
{
	T.closed = true;
}

static struct hv_vm *
find(const char *id)
{
	return tu_hv_find(T.hv, id);
}

static bool
run_until(bool (*cond)(void))
{
	return tu_run_until_fn(&T.loop, cond, 5000);
}

static bool c_test(void) { return find("test") != NULL &&
    T.added == 1; }
static bool c_set(void) { return T.set_done; }
static bool c_closed(void) { return T.closed; }
static bool c_removed(void) { return find("test") == NULL &&
    T.removed == 1; }
static bool c_back(void) { return find("test") != NULL && T.added == 2; }
static bool c_guest(void) { return find("test") != NULL &&
    find("test")->guest != NULL; }

static uint64_t want_actual;
static bool
c_actual(void)
{
	struct hv_vm *vm = find("test");

	return vm != NULL && vm->balloon_actual_kib == want_actual;
}

/* A driver on T.loop; skips (77) when libvirt support is not built. */
static void
start(const char *uri, bool no_agent)
{
	struct hv_config hc = {
		.type = HV_TYPE_LIBVIRT,
		.uri = uri,
		.no_agent = no_agent,
		.poll_ms = 100,
		.rescan_ms = 100,
		.agent_timeout_ms = 60000,
		.event_cb = event_cb,
	};

	memset(&T, 0, sizeof(T));
	assert_int_equal(uv_loop_init(&T.loop), 0);
	T.hv = hv_new(&T.loop, &hc);
	if (T.hv == NULL && errno == ENOTSUP) {
		fprintf(stderr, "libvirt driver not built in: skipped\n");
		exit(77);
	}
	assert_non_null(T.hv);
	assert_int_equal(hv_get_type(T.hv), HV_TYPE_LIBVIRT);
	assert_string_equal(hv_type_name(HV_TYPE_LIBVIRT), "libvirt");
	assert_int_equal(hv_start(T.hv), 0);
}

static void
stop(void)
{
	hv_close(T.hv, closed_cb, NULL);
	assert_true(run_until(c_closed));
	assert_int_equal(uv_loop_close(&T.loop), 0);
}

static char *
inactive_xml(virDomainPtr d)
{
	char *x = virDomainGetXMLDesc(d, VIR_DOMAIN_XML_INACTIVE);

	assert_non_null(x);
	return x;
}

static void
test_default(void **state)
{
	virConnectPtr c;
	virDomainPtr d;
	struct hv_vm *vm;
	char *before, *after, *live;
	enum hv_type t;

	assert_int_equal(hv_type_from_name("libvirt", &t), 0);
	assert_int_equal(t, HV_TYPE_LIBVIRT);
	/* Opened first and kept: test:///default's state lives while a
	 * connection does, and is the driver's too. */
	c = virConnectOpen("test:///default");
	assert_non_null(c);
	d = virDomainLookupByName(c, "test");
	assert_non_null(d);
	before = inactive_xml(d);

	start("test:///default", true);
	assert_true(run_until(c_test));
	vm = find("test");
	assert_true(vm->max_known);
	assert_int_equal(vm->max_kib, 8388608);
	assert_true(vm->balloon_known);
	assert_int_equal(vm->balloon_actual_kib, 2097152);
	assert_true(vm->has_balloon);
	assert_true(vm->doo_known);
	assert_false(vm->deflate_on_oom);
	assert_false(vm->free_page_reporting);
	assert_int_equal(vm->numa_cells, 0);
	assert_int_equal(vm->pid, 0);	/* not a QEMU */
	/* No control channel in its XML: no reclaim request goes out. */
	assert_int_equal(hv_reclaim(T.hv, "test", 1, 65536, 10), -ENOTCONN);
	/* The balloon's stats period, set live (poll_ms rounded up). */
	live = virDomainGetXMLDesc(d, 0);
	assert_non_null(live);
	assert_non_null(strstr(live, "<stats period='1'/>"));
	free(live);

	/* Without an agent, samples from the balloon's statistics. */
	assert_true(run_until(c_guest));
	assert_int_equal(find("test")->guest->source,
	    MM__V1__STATS_SOURCE__STATS_SOURCE_QMP);
	assert_string_equal(find("test")->guest->vm_id, "test");
	assert_true(find("test")->guest->meminfo->has_total_kib);

	/* A live target: the balloon moves, the definition does not. */
	assert_int_equal(hv_set_target(T.hv, "test", 1048576, set_cb, NULL),
	    0);
	assert_true(run_until(c_set));
	assert_int_equal(T.set_status, 0);
	want_actual = 1048576;
	assert_true(run_until(c_actual));
	assert_true(find("test")->target_known);
	after = inactive_xml(d);
	assert_string_equal(before, after);
	free(after);
	/* Above the domain's maximum: refused here. */
	assert_int_equal(hv_set_target(T.hv, "test", 8388608 + 1, set_cb,
	    NULL), -ERANGE);
	/* A refresh reads it back. */
	T.set_done = false;
	assert_int_equal(hv_refresh(T.hv, "test", set_cb, NULL), 0);
	assert_true(run_until(c_set));
	assert_int_equal(T.set_status, 0);
	assert_int_equal(find("test")->balloon_actual_kib, 1048576);

	assert_int_equal(hv_set_target(T.hv, "nope", 1048576, set_cb, NULL),
	    -ENOENT);
	assert_int_equal(hv_refresh(T.hv, "nope", set_cb, NULL), -ENOENT);

	/* Stopped elsewhere: REMOVED by its event; started again: ADDED. */
	assert_int_equal(virDomainDestroy(d), 0);
	assert_true(run_until(c_removed));
	assert_int_equal(hv_vm_count(T.hv), 0);
	assert_int_equal(virDomainCreate(d), 0);
	assert_true(run_until(c_back));
	assert_int_equal(T.removed, 1);
	after = inactive_xml(d);
	assert_string_equal(before, after);
	free(after);
	free(before);

	stop();
	virDomainFree(d);
	virConnectClose(c);
}

static const char node_xml[] =
	"<node>\n"
	"  <domain type='test'>\n"
	"    <name>web</name>\n"
	"    <memory unit='KiB'>2097152</memory>\n"
	"    <currentMemory unit='KiB'>1048576</currentMemory>\n"
	"    <vcpu>2</vcpu>\n"
	"    <os><type>hvm</type></os>\n"
	"    <cpu><numa>\n"
	"      <cell id='0' cpus='0' memory='1048576' unit='KiB'/>\n"
	"      <cell id='1' cpus='1' memory='1048576' unit='KiB'/>\n"
	"    </numa></cpu>\n"
	"    <devices>\n"
	"      <channel type='unix'>\n"
	"        <source mode='bind' path='%s/other.sock'/>\n"
	"        <target type='virtio' name='org.qemu.guest_agent.0'/>\n"
	"      </channel>\n"
	"      <channel type='unix'>\n"
	"        <source mode='bind' path='%s/web.agent'/>\n"
	"        <target type='virtio' name='org.mm.agent.0'/>\n"
	"      </channel>\n"
	"      <channel type='unix'>\n"
	"        <source mode='bind' path='%s/web.control'/>\n"
	"        <target type='virtio' name='org.mm.control.0'/>\n"
	"      </channel>\n"
	"      <memballoon model='virtio' autodeflate='on' "
	"freePageReporting='on'/>\n"
	"    </devices>\n"
	"  </domain>\n"
	"</node>\n";

static struct qmp_server *agent;

static bool c_web(void) { return find("web") != NULL && T.added == 1; }
static bool c_agent_up(void) { return qmp_server_clients(agent) == 1 &&
    find("web")->agent_up; }
static bool c_agent_sample(void) { return T.guests >= 1 &&
    find("web")->guest != NULL && find("web")->guest->source ==
    MM__V1__STATS_SOURCE__STATS_SOURCE_AGENT; }

static void
send_frame(const Mm__V1__GuestStats *g)
{
	uint8_t *body, hdr[4];
	size_t len;

	assert_int_equal(msg_pack(MSG_GUEST_STATS, &g->base, &body, &len), 0);
	hdr[0] = (uint8_t)(len >> 24);
	hdr[1] = (uint8_t)(len >> 16);
	hdr[2] = (uint8_t)(len >> 8);
	hdr[3] = (uint8_t)len;
	assert_int_equal(qmp_server_send(agent, hdr, 4), 1);
	assert_int_equal(qmp_server_send(agent, body, len), 1);
	free(body);
}

/* A listening socket at path, as QEMU's chardev for the control port. */
static int
listen_at(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_true(strlen(path) < sizeof(sa.sun_path));
	strcpy(sa.sun_path, path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 4), 0);
	return fd;
}

/* The one frame a client of lfd wrote: a ReclaimRequest. */
static Mm__V1__ReclaimRequest *
accept_request(int lfd)
{
	uint8_t buf[256];
	size_t got = 0, len;
	ssize_t n;
	ProtobufCMessage *m = NULL;
	int fd = accept(lfd, NULL, NULL);

	assert_true(fd >= 0);
	while ((n = read(fd, buf + got, sizeof(buf) - got)) > 0)
		got += (size_t)n;
	close(fd);
	assert_true(got >= 4);
	len = (size_t)buf[0] << 24 | (size_t)buf[1] << 16 |
	    (size_t)buf[2] << 8 | buf[3];
	assert_int_equal(got, 4 + len);
	assert_int_equal(msg_unpack(MSG_RECLAIM_REQUEST, buf + 4, len, &m,
	    NULL, 0), 0);
	return (Mm__V1__ReclaimRequest *)m;
}

static void
test_channel(void **state)
{
	char *dir = tu_tmpdir(), *file, *text, uri[4200], path[4200];
	Mm__V1__ReclaimRequest *rq;
	Mm__V1__GuestStats g;
	Mm__V1__Meminfo mi;
	struct hv_vm *vm;
	int lfd;

	assert_true(asprintf(&text, node_xml, dir, dir, dir) > 0);
	file = tu_write_file(dir, "node.xml", text);
	snprintf(uri, sizeof(uri), "test://%s", file);
	snprintf(path, sizeof(path), "%s/web.agent", dir);

	start(uri, false);
	agent = qmp_server_new(&T.loop, path, NULL, NULL);
	assert_non_null(agent);
	assert_true(run_until(c_web));
	vm = find("web");
	assert_int_equal(vm->max_kib, 2097152);
	assert_int_equal(vm->balloon_actual_kib, 1048576);
	assert_true(vm->doo_known);
	assert_true(vm->deflate_on_oom);
	assert_true(vm->free_page_reporting);
	assert_int_equal(vm->numa_cells, 2);

	/* The agent on the channel named org.mm.agent.0, not the other. */
	assert_true(run_until(c_agent_up));
	mm__v1__guest_stats__init(&g);
	mm__v1__meminfo__init(&mi);
	g.vm_id = (char *)"claimed";
	g.has_agent_seq = 1;
	g.agent_seq = 1;
	g.meminfo = &mi;
	mi.has_total_kib = mi.has_free_kib = 1;
	mi.total_kib = 1000000;
	mi.free_kib = 400000;
	send_frame(&g);
	assert_true(run_until(c_agent_sample));
	assert_string_equal(find("web")->guest->vm_id, "web");
	assert_int_equal(find("web")->guest->meminfo->total_kib, 1000000);

	/* Reclaim requests on the channel named org.mm.control.0: nothing
	 * listens there yet, then QEMU's chardev does. */
	assert_int_equal(hv_reclaim(T.hv, "web", 7, 65536, 12.5), -ENOTCONN);
	snprintf(path, sizeof(path), "%s/web.control", dir);
	lfd = listen_at(path);
	assert_int_equal(hv_reclaim(T.hv, "web", 7, 65536, 12.5), 0);
	rq = accept_request(lfd);
	assert_int_equal(rq->seq, 7);
	assert_int_equal(rq->kib, 65536);
	assert_true(rq->psi_budget_pct == 12.5);
	msg_free(&rq->base);
	close(lfd);

	qmp_server_close(agent);
	stop();
	tu_rmtree(dir);
	free(text);
	free(file);
	free(dir);
}

static bool c_never(void) { return false; }

/* No such libvirt: no VM, no crash, requests refused, a clean close. */
static void
test_no_libvirtd(void **state)
{
	start("test:///nonexistent/mm-node.xml", true);
	(void)tu_run_until_fn(&T.loop, c_never, 500);
	assert_int_equal(hv_vm_count(T.hv), 0);
	assert_int_equal(hv_set_target(T.hv, "test", 1048576, set_cb, NULL),
	    -ENOENT);
	stop();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_default),
		cmocka_unit_test(test_channel),
		cmocka_unit_test(test_no_libvirtd),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
