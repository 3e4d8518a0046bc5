/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by the tests; see testutil.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "msg.h"
#include "testutil.h"
#include "topology.h"

const char *
tu_broker_url(void)
{
	const char *url = getenv("MM_TEST_AMQP_URL");

	if (url == NULL || *url == '\0') {
		fprintf(stderr, "skipped: MM_TEST_AMQP_URL is not set; "
		    "scripts/test.sh starts a broker and sets it\n");
		exit(TU_SKIP);
	}
	return url;
}

char *
tu_read_file(const char *path, size_t *ret_len)
{
	FILE *fp = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (fp != NULL) {
		do {
			if (cap - len < 4096) {
				cap = cap ? cap * 2 : 65536;
				buf = realloc(buf, cap + 1);
				if (buf == NULL)
					abort();
			}
			n = fread(buf + len, 1, cap - len, fp);
			len += n;
		} while (n > 0);
		fclose(fp);
	}
	if (buf == NULL && (buf = malloc(1)) == NULL)
		abort();
	buf[len] = '\0';
	if (ret_len != NULL)
		*ret_len = len;
	return buf;
}

unsigned
tu_file_count(const char *path, const char *needle)
{
	char *text = tu_read_file(path, NULL), *p = text;
	unsigned n = 0;

	while ((p = strstr(p, needle)) != NULL) {
		n++;
		p += strlen(needle);
	}
	free(text);
	return n;
}

const char *
tu_file_line(const char *path, const char *needle)
{
	static char line[4096];
	char *text = tu_read_file(path, NULL), *p = text, *last = NULL;
	size_t n;

	while ((p = strstr(p, needle)) != NULL) {
		last = p;
		p += strlen(needle);
	}
	line[0] = '\0';
	if (last != NULL) {
		while (last > text && last[-1] != '\n')
			last--;
		n = strcspn(last, "\n");
		if (n >= sizeof(line))
			n = sizeof(line) - 1;
		memcpy(line, last, n);
		line[n] = '\0';
	}
	free(text);
	return line;
}

const char *
tu_broker_ctl(void)
{
	const char *ctl = getenv("MM_TEST_BROKER_CTL");

	if (ctl == NULL || *ctl == '\0') {
		fprintf(stderr, "skipped: MM_TEST_BROKER_CTL is not set; "
		    "scripts/test.sh sets it to scripts/rabbitmq.sh\n");
		exit(TU_SKIP);
	}
	return ctl;
}

const char *
tu_broker_url_as(const char *user, const char *password)
{
	static char buf[512];
	const char *url = tu_broker_url();
	const char *at = strchr(url, '@');
	const char *rest = at != NULL ? at + 1 : url + strlen("amqp://");

	snprintf(buf, sizeof(buf), "amqp://%s:%s@%s", user, password, rest);
	return buf;
}

char *
tu_tmpdir(void)
{
	char tmpl[] = "/tmp/mm-test.XXXXXX";
	char *dir = mkdtemp(tmpl);

	if (dir == NULL) {
		perror("mkdtemp");
		abort();
	}
	return strdup(dir);
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void
tu_rmtree(const char *dir)
{
	if (dir != NULL)
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void
mkdirs_for(char *path)
{
	for (char *p = path + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0755) < 0 && errno != EEXIST) {
			perror(path);
			abort();
		}
		*p = '/';
	}
}

char *
tu_write_file(const char *dir, const char *name, const char *text)
{
	char *path;
	FILE *f;

	if (asprintf(&path, "%s/%s", dir, name) < 0)
		abort();
	mkdirs_for(path);
	f = fopen(path, "w");
	if (f == NULL) {
		perror(path);
		abort();
	}
	fputs(text, f);
	fclose(f);
	return path;
}

/* $env/rel (or ./rel without $env), malloc'd. */
static char *
path_under(const char *env, const char *rel)
{
	const char *dir = getenv(env);
	char *path;

	if (asprintf(&path, "%s/%s", dir != NULL ? dir : ".", rel) < 0)
		abort();
	return path;
}

char *
tu_source_path(const char *rel)
{
	return path_under("MM_SOURCE_DIR", rel);
}

static void
tu_wake_cb(uv_timer_t *t)
{
	(void)t;
}

bool
tu_run_until(uv_loop_t *loop, const bool *done, unsigned timeout_ms)
{
	uv_timer_t wake;
	uint64_t deadline;

	uv_update_time(loop);
	deadline = uv_now(loop) + timeout_ms;
	uv_timer_init(loop, &wake);
	uv_timer_start(&wake, tu_wake_cb, 10, 10);
	while (!*done && uv_now(loop) < deadline)
		uv_run(loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&wake, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
	return *done;
}

uint64_t
tu_wall_ms(void)
{
	return clock_ms(CLOCK_REALTIME);
}

void
tu_run_for(uv_loop_t *loop, unsigned ms)
{
	bool never = false;

	tu_run_until(loop, &never, ms);
}

int
tu_loop_finish(uv_loop_t *loop)
{
	/* A handle still open after 2 s is a leak the caller should see. */
	for (int i = 0; i < 2000; i++) {
		uv_run(loop, UV_RUN_NOWAIT);
		if (uv_loop_close(loop) == 0)
			return 0;
		usleep(1000);
	}
	return uv_loop_close(loop);
}

char *
tu_unique(const char *prefix)
{
	static unsigned counter;
	char *s;

	if (asprintf(&s, "%s.%d.%u", prefix, (int)getpid(), counter++) < 0)
		abort();
	return s;
}

int
tu_spawn(char *const argv[])
{
	pid_t pid = fork();

	if (pid < 0) {
		perror("fork");
		abort();
	}
	if (pid == 0) {
		/* A test or benchmark killed midway leaves no daemon. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		execv(argv[0], argv);
		perror(argv[0]);
		_exit(127);
	}
	return (int)pid;
}

int
tu_stop(int pid, unsigned timeout_ms)
{
	int status;

	kill(pid, SIGTERM);
	for (unsigned waited = 0; waited < timeout_ms; waited += 10) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			goto done;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
done:
	return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

char *
tu_bin_path(const char *name)
{
	char *rel, *path;

	if (asprintf(&rel, "bin/%s", name) < 0)
		abort();
	path = path_under("MM_BINARY_DIR", rel);
	free(rel);
	return path;
}

int
tu_publish_report(struct bus *bus, const char *host_id, uint64_t seq,
    uint64_t time_ms, double psi)
{
	return tu_publish_report_sized(bus, host_id, seq, time_ms, psi,
	    2 * 1024ull * 1024ull);
}

int
tu_publish_report_sized(struct bus *bus, const char *host_id, uint64_t seq,
    uint64_t time_ms, double psi, uint64_t size_kib)
{
	struct bus_msg bm;
	uint8_t *buf;
	int r;

	r = tu_report_msg(host_id, seq, time_ms, psi, size_kib, &bm, &buf);
	if (r == 0) {
		r = bus_publish(bus, &bm, NULL, NULL);
		free(buf);
	}
	return r;
}

int
tu_report_msg(const char *host_id, uint64_t seq, uint64_t time_ms,
    double psi, uint64_t size_kib, struct bus_msg *ret_msg,
    uint8_t **ret_buf)
{
	const uint64_t gib = 1024ull * 1024ull;

	return tu_report_msg_used(host_id, seq, time_ms, psi, size_kib,
	    size_kib < 3 * gib / 2 ? size_kib : 3 * gib / 2, ret_msg, ret_buf);
}

int
tu_report_msg_used(const char *host_id, uint64_t seq, uint64_t time_ms,
    double psi, uint64_t size_kib, uint64_t used_kib,
    struct bus_msg *ret_msg, uint8_t **ret_buf)
{
	const uint64_t gib = 1024ull * 1024ull;
	Mm__V1__HostReport r = MM__V1__HOST_REPORT__INIT;
	Mm__V1__HostStats hs = MM__V1__HOST_STATS__INIT;
	Mm__V1__Meminfo hm = MM__V1__MEMINFO__INIT, gm = MM__V1__MEMINFO__INIT;
	Mm__V1__GuestStats g = MM__V1__GUEST_STATS__INIT, *gp = &g;
	Mm__V1__Psi p = MM__V1__PSI__INIT;
	static char key[128];

	hm.has_total_kib = hm.has_available_kib = true;
	hm.total_kib = 64 * gib;
	hm.available_kib = 32 * gib;
	hs.meminfo = &hm;
	gm.has_total_kib = gm.has_available_kib = true;
	gm.total_kib = size_kib;
	gm.available_kib = size_kib > used_kib ? size_kib - used_kib : 0;
	p.has_some_avg10_pct = true;
	p.some_avg10_pct = psi;
	g.vm_id = "vm-a";
	g.meminfo = &gm;
	g.psi = &p;
	g.has_balloon_target_kib = g.has_balloon_actual_kib = true;
	g.balloon_target_kib = g.balloon_actual_kib = size_kib;
	g.has_max_kib = true;
	g.max_kib = 8 * gib;
	r.host_id = (char *)host_id;
	r.has_seq = r.has_time_ms = true;
	r.seq = seq;
	r.time_ms = time_ms;
	r.host = &hs;
	r.n_guests = 1;
	r.guests = &gp;
	snprintf(key, sizeof(key), "host.%s", host_id);
	return msg_to_bus(MSG_HOST_REPORT, (const ProtobufCMessage *)&r,
	    TOPO_EX_STATS, key, false, ret_msg, ret_buf);
}

char *
tu_mgmt_get(const char *path)
{
	return tu_mgmt_request("GET", path);
}

char *
tu_mgmt_request(const char *method, const char *path)
{
	const char *mgmt = getenv("MM_TEST_MGMT_URL");
	char cmd[1024];
	static char buf[1 << 20];
	size_t n;
	FILE *p;

	if (mgmt == NULL || *mgmt == '\0')
		mgmt = "http://127.0.0.1:15672";
	snprintf(cmd, sizeof(cmd), "curl -sf -X %s -u guest:guest '%s%s'",
	    method, mgmt, path);
	p = popen(cmd, "r");
	if (p == NULL) {
		fprintf(stderr, "cannot run %s\n", cmd);
		abort();
	}
	n = fread(buf, 1, sizeof(buf) - 1, p);
	buf[n] = '\0';
	if (pclose(p) != 0) {
		fprintf(stderr, "management API: %s failed\n", cmd);
		abort();
	}
	return buf;
}
