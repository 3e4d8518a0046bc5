/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The VM tests' own libvirtd: see libvirtd.h. Found to work as root in a
 * container without systemd, cgroups for it or a security module: a
 * privileged libvirtd sees its directories bound over the system ones in
 * a mount namespace of its own, and a copy of /etc/passwd and /etc/group
 * with the libvirt-qemu user and group that Debian's libvirtd looks up
 * before it reads qemu.conf (its package's postinst creates them with
 * libvirt-daemon-system, which a test machine need not have). QEMU runs
 * as root, as set in qemu.conf.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "libvirtd.h"
#include "testutil.h"

#define READY_TIMEOUT_S	60
#define STOP_TIMEOUT_MS	15000
#define SLOW_VIRSH_S	1.0	/* a call slower than this is logged */

/* Where each of our directories is bound in libvirtd's namespace. */
static const char *const binds[][2] = {
	{ "etc", "/etc/libvirt" },
	{ "run", "/run/libvirt" },
	{ "lib", "/var/lib/libvirt" },
	{ "log", "/var/log/libvirt" },
	{ "cache", "/var/cache/libvirt" },
	{ "passwd", "/etc/passwd" },
	{ "group", "/etc/group" },
};
#define NBINDS		(sizeof(binds) / sizeof(binds[0]))
#define NDIRS		5	/* the first NDIRS binds are directories */

static const char libvirtd_conf[] =
    "# mm's VM tests: root only, over the socket in run/\n"
    "auth_unix_ro = \"none\"\n"
    "auth_unix_rw = \"none\"\n"
    "log_outputs = \"3:file:/var/log/libvirt/libvirtd.log\"\n";

/* No cgroups, security driver, namespace for QEMU or virtlogd here. */
static const char qemu_conf[] =
    "user = \"root\"\n"
    "group = \"root\"\n"
    "dynamic_ownership = 0\n"
    "remember_owner = 0\n"
    "security_driver = \"none\"\n"
    "cgroup_controllers = [ ]\n"
    "namespaces = [ ]\n"
    "stdio_handler = \"file\"\n";

/* prog's path: the first in $PATH, then the sbin directories (root's
 * programs, which a test's PATH may lack); NULL if none. Malloc'd. */
static char *
find_prog(const char *prog)
{
	const char *path = getenv("PATH");
	char *dirs, *dir, *save, *f;

	dirs = vm_asprintf("%s:/usr/sbin:/sbin:/usr/local/sbin",
	    path != NULL ? path : "/usr/bin:/bin");
	for (dir = strtok_r(dirs, ":", &save); dir != NULL;
	    dir = strtok_r(NULL, ":", &save)) {
		f = vm_asprintf("%s/%s", dir, prog);
		if (access(f, X_OK) == 0) {
			free(dirs);
			return f;
		}
		free(f);
	}
	free(dirs);
	return NULL;
}

void
libvirtd_require(void)
{
	char *l = find_prog("libvirtd"), *v = find_prog("virsh");

	if (l == NULL || v == NULL) {
		printf("skipped: no %s (apt-get install libvirt-daemon "
		    "libvirt-daemon-driver-qemu libvirt-clients; scripts/"
		    "test.sh installs them)\n", l == NULL ? "libvirtd" :
		    "virsh");
		exit(TU_SKIP);
	}
	if (geteuid() != 0) {
		printf("skipped: the test's libvirtd runs as root in a mount "
		    "namespace of its own\n");
		exit(TU_SKIP);
	}
	free(l);
	free(v);
	vm_require();
}

/* A pid from a pid file, 0 if none. */
static pid_t
read_pid(const char *path)
{
	FILE *f = fopen(path, "r");
	long pid = 0;

	if (f == NULL)
		return 0;
	if (fscanf(f, "%ld", &pid) != 1 || pid <= 1)
		pid = 0;
	fclose(f);
	return (pid_t)pid;
}

/* A process that exists and is not a zombie. */
static bool
alive(pid_t pid)
{
	char path[64], buf[512], *p;
	FILE *f;
	bool up = false;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return false;
	if (fgets(buf, sizeof(buf), f) != NULL &&
	    (p = strrchr(buf, ')')) != NULL && p[1] == ' ')
		up = p[2] != 'Z' && p[2] != 'X';
	fclose(f);
	return up;
}

/* Wait up to timeout_ms for pid to end, reaping it when it is our child;
 * true when it is gone. */
static bool
reap(pid_t pid, unsigned timeout_ms)
{
	for (unsigned t = 0; t <= timeout_ms; t += 10) {
		pid_t r = waitpid(pid, NULL, WNOHANG);

		if (r == pid || (r < 0 && !alive(pid)))
			return true;
		usleep(10000);
	}
	return false;
}

/* SIGKILL every QEMU with a pid file in run/qemu/ (and remove it). */
static void
kill_qemus(const char *dir, bool wait)
{
	char *qdir = vm_asprintf("%s/run/qemu", dir), *f;
	struct dirent *e;
	DIR *dp = opendir(qdir);
	size_t len;
	pid_t pid;

	while (dp != NULL && (e = readdir(dp)) != NULL) {
		len = strlen(e->d_name);
		if (len < 5 || strcmp(e->d_name + len - 4, ".pid") != 0 ||
		    strcmp(e->d_name, "driver.pid") == 0)
			continue;
		f = vm_asprintf("%s/%s", qdir, e->d_name);
		pid = read_pid(f);
		if (pid > 0 && alive(pid)) {
			kill(pid, SIGKILL);
			if (wait)
				reap(pid, 5000);
		}
		unlink(f);
		free(f);
	}
	if (dp != NULL)
		closedir(dp);
	free(qdir);
}

/*
 * The guard: in a session of its own, deaf to the signals that end a
 * test, it waits for EOF on fd (the test process is gone, or
 * libvirtd_stop() closed it) and kills libvirtd and the QEMUs left.
 */
static pid_t
start_guard(const char *dir, int *ret_fd)
{
	int fds[2];
	pid_t pid;
	char c;

	if (pipe2(fds, O_CLOEXEC) < 0)
		return -1;
	pid = fork();
	if (pid != 0) {
		close(fds[0]);
		if (pid < 0)
			close(fds[1]);
		else
			*ret_fd = fds[1];
		return pid;
	}
	close(fds[1]);
	setsid();
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	while (read(fds[0], &c, 1) != 0 && errno == EINTR)
		;
	{
		char *pf = vm_asprintf("%s/run/libvirtd.pid", dir);
		pid_t l = read_pid(pf);

		if (l > 0 && alive(l))
			kill(l, SIGKILL);
		free(pf);
	}
	kill_qemus(dir, false);
	_exit(0);
}

/* The files of dir, and the mount points on the host (empty
 * directories the libvirt-daemon-system package would create). */
static int
prepare(const char *dir)
{
	static const char *const users[] = {
		"libvirt-qemu:x:64055:64055:Libvirt Qemu:/var/lib/libvirt:"
		    "/usr/sbin/nologin\n",
		"libvirt-qemu:x:64055:\n",
	};
	char line[1024], *p;
	size_t i;

	mkdir(dir, 0755);
	for (i = 0; i < NDIRS; i++) {
		p = vm_asprintf("%s/%s", dir, binds[i][0]);
		mkdir(p, 0755);
		free(p);
		if (mkdir(binds[i][1], 0755) < 0 && errno != EEXIST) {
			fprintf(stderr, "libvirtd: mkdir %s: %s\n", binds[i][1],
			    strerror(errno));
			return -errno;
		}
	}
	free(tu_write_file(dir, "etc/libvirtd.conf", libvirtd_conf));
	free(tu_write_file(dir, "etc/qemu.conf", qemu_conf));
	/* passwd and group: the host's, plus libvirt-qemu if missing. */
	for (i = 0; i < 2; i++) {
		const char *name = i == 0 ? "passwd" : "group";
		char *src = vm_asprintf("/etc/%s", name);
		char *dst = vm_asprintf("%s/%s", dir, name);
		FILE *in = fopen(src, "r"), *out = fopen(dst, "w");
		bool has = false;

		if (in == NULL || out == NULL) {
			fprintf(stderr, "libvirtd: cannot copy %s to %s\n", src,
			    dst);
			abort();
		}
		while (fgets(line, sizeof(line), in) != NULL) {
			has = has || strncmp(line, "libvirt-qemu:", 13) == 0;
			fputs(line, out);
		}
		if (!has)
			fputs(users[i], out);
		fclose(in);
		fclose(out);
		free(src);
		free(dst);
	}
	return 0;
}

/* Fork libvirtd in a mount namespace of its own (every string prepared
 * before the fork: the test may have threads). */
static pid_t
spawn_libvirtd(const struct libvirtd *d)
{
	char *src[NBINDS], *prog = find_prog("libvirtd");
	char *log = vm_asprintf("%s/log/libvirtd.out", d->dir);
	pid_t parent = getpid(), pid;
	size_t i;
	int fd;

	for (i = 0; i < NBINDS; i++)
		src[i] = vm_asprintf("%s/%s", d->dir, binds[i][0]);
	pid = fork();
	if (pid > 0)
		setpgid(pid, pid);
	if (pid != 0) {
		for (i = 0; i < NBINDS; i++)
			free(src[i]);
		free(prog);
		free(log);
		return pid;
	}
	setpgid(0, 0);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd >= 0) {
		dup2(fd, 1);
		dup2(fd, 2);
	}
	if (unshare(CLONE_NEWNS) < 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		fprintf(stderr, "libvirtd: a private mount namespace: %s\n",
		    strerror(errno));
		_exit(126);
	}
	for (i = 0; i < NBINDS; i++)
		if (mount(src[i], binds[i][1], NULL, MS_BIND, NULL) < 0) {
			fprintf(stderr, "libvirtd: bind %s on %s: %s\n", src[i],
			    binds[i][1], strerror(errno));
			_exit(126);
		}
	execl(prog, "libvirtd", "-f", "/etc/libvirt/libvirtd.conf", "-p",
	    "/run/libvirt/libvirtd.pid", (char *)NULL);
	fprintf(stderr, "exec %s: %s\n", prog, strerror(errno));
	_exit(127);
}

static void
dump_logs(const struct libvirtd *d)
{
	char *out = vm_asprintf("%s/log/libvirtd.out", d->dir);
	char *log = vm_asprintf("%s/log/libvirtd.log", d->dir);

	vm_dump_file("libvirtd output", out);
	vm_dump_file("libvirtd log", log);
	free(out);
	free(log);
}

/* Start libvirtd and wait until virsh gets an answer on its socket. */
static int
launch(struct libvirtd *d)
{
	double t0 = vm_now_s();
	char *sock = vm_asprintf("%s/run/libvirt-sock", d->dir), *out = NULL;
	int status;

	d->pid = spawn_libvirtd(d);
	if (d->pid < 0) {
		free(sock);
		return -errno;
	}
	while (vm_now_s() < t0 + READY_TIMEOUT_S) {
		if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
			fprintf(stderr, "libvirtd: exited with status %d\n",
			    status);
			d->pid = 0;
			break;
		}
		if (access(sock, F_OK) == 0) {
			free(out);
			out = NULL;
			if (libvirtd_virsh(d, &out, "uri") == 0) {
				d->start_s = vm_now_s() - t0;
				free(out);
				free(sock);
				return 0;
			}
		}
		usleep(100000);
	}
	if (d->pid > 0)
		fprintf(stderr, "libvirtd: no answer on %s after %d s: %s\n",
		    sock, READY_TIMEOUT_S, out != NULL ? out : "");
	dump_logs(d);
	free(out);
	free(sock);
	return -ETIMEDOUT;
}

struct libvirtd *
libvirtd_start(const char *dir)
{
	struct libvirtd *d = calloc(1, sizeof(*d));

	if (d == NULL)
		abort();
	d->dir = strdup(dir);
	d->uri = vm_asprintf("qemu:///system?socket=%s/run/libvirt-sock", dir);
	d->guard_fd = -1;
	if (prepare(dir) < 0)
		goto fail;
	/* No PR_SET_CHILD_SUBREAPER: the QEMUs libvirtd daemonizes (its
	 * guests and its capability probes) would be our zombies while it
	 * waits, up to a minute, for them to go. */
	d->guard = start_guard(dir, &d->guard_fd);
	if (d->guard < 0) {
		fprintf(stderr, "libvirtd: no guard process: %s\n",
		    strerror(errno));
		goto fail;
	}
	if (launch(d) < 0)
		goto fail;
	printf("libvirtd: up in %.2f s on %s\n", d->start_s, d->uri);
	fflush(stdout);
	return d;
fail:
	libvirtd_stop(d);
	return NULL;
}

/* SIGTERM libvirtd alone (its guests stay), SIGKILL its group when it
 * does not go. */
static void
stop_daemon(struct libvirtd *d)
{
	if (d->pid <= 0)
		return;
	kill(d->pid, SIGTERM);
	if (!reap(d->pid, STOP_TIMEOUT_MS)) {
		fprintf(stderr, "libvirtd: still running %d ms after SIGTERM, "
		    "killing it\n", STOP_TIMEOUT_MS);
		kill(-d->pid, SIGKILL);
		reap(d->pid, 5000);
	}
	d->pid = 0;
}

int
libvirtd_restart(struct libvirtd *d)
{
	double t0 = vm_now_s();
	int r;

	stop_daemon(d);
	r = launch(d);
	if (r == 0)
		printf("libvirtd: restarted in %.2f s (up %.2f s after its "
		    "start)\n", vm_now_s() - t0, d->start_s);
	fflush(stdout);
	return r;
}

void
libvirtd_stop(struct libvirtd *d)
{
	if (d == NULL)
		return;
	stop_daemon(d);
	kill_qemus(d->dir, true);
	if (d->guard_fd >= 0)
		close(d->guard_fd);
	if (d->guard > 0)
		waitpid(d->guard, NULL, 0);
	free(d->dir);
	free(d->uri);
	free(d);
}

int
libvirtd_virsh(struct libvirtd *d, char **ret_out, const char *fmt, ...)
{
	char *args, *cmd, buf[4096];
	char *out = NULL;
	size_t len = 0, n;
	va_list ap;
	double t0;
	FILE *p;
	int status;

	va_start(ap, fmt);
	if (vasprintf(&args, fmt, ap) < 0)
		abort();
	va_end(ap);
	cmd = vm_asprintf("virsh -q -c '%s' %s 2>&1", d->uri, args);
	fflush(NULL);
	t0 = vm_now_s();
	p = popen(cmd, "r");
	free(cmd);
	if (p == NULL) {
		free(args);
		return -1;
	}
	while ((n = fread(buf, 1, sizeof(buf), p)) > 0) {
		out = realloc(out, len + n + 1);
		if (out == NULL)
			abort();
		memcpy(out + len, buf, n);
		len += n;
		out[len] = '\0';
	}
	status = pclose(p);
	if (vm_now_s() - t0 > SLOW_VIRSH_S)
		fprintf(stderr, "libvirtd: virsh %s took %.1f s\n", args,
		    vm_now_s() - t0);
	free(args);
	if (out == NULL)
		out = strdup("");
	if (ret_out != NULL)
		*ret_out = out;
	else {
		fputs(out, stderr);
		free(out);
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static bool
xml_safe(const char *s)
{
	return strpbrk(s, "<>&'\"") == NULL;
}

char *
libvirtd_domain_xml(const struct vm_opts *o, unsigned cur_mib)
{
	unsigned max = o->mem_mib ? o->mem_mib : 512;
	char *k = vm_kernel_path(), *i = vm_initrd_path(), *c = vm_cmdline(o);
	char *xml = NULL;

	if (!xml_safe(k) || !xml_safe(i) || !xml_safe(c) ||
	    !xml_safe(o->dir) || !xml_safe(o->id)) {
		errno = EINVAL;
		goto out;
	}
	/* No network, no disk, no USB; q35 as vm.c boots it. */
	xml = vm_asprintf("<domain type='%s'>\n"
	    "  <name>%s</name>\n"
	    "  <memory unit='MiB'>%u</memory>\n"
	    "  <currentMemory unit='MiB'>%u</currentMemory>\n"
	    "  <vcpu>1</vcpu>\n"
	    "  <os>\n"
	    "    <type arch='x86_64' machine='q35'>hvm</type>\n"
	    "    <kernel>%s</kernel>\n"
	    "    <initrd>%s</initrd>\n"
	    "    <cmdline>%s</cmdline>\n"
	    "  </os>\n"
	    "  <on_poweroff>destroy</on_poweroff>\n"
	    "  <on_reboot>destroy</on_reboot>\n"
	    "  <on_crash>destroy</on_crash>\n"
	    "  <devices>\n"
	    "    <controller type='usb' model='none'/>\n"
	    "    <serial type='file'>\n"
	    "      <source path='%s/%s.console'/>\n"
	    "      <target port='0'/>\n"
	    "    </serial>\n"
	    "    <channel type='unix'>\n"
	    "      <source mode='bind' path='%s/%s.agent'/>\n"
	    "      <target type='virtio' name='org.mm.agent.0'/>\n"
	    "    </channel>\n"
	    "    <channel type='unix'>\n"
	    "      <source mode='bind' path='%s/%s.control'/>\n"
	    "      <target type='virtio' name='org.mm.control.0'/>\n"
	    "    </channel>\n"
	    "    <memballoon model='virtio' autodeflate='%s' "
	    "freePageReporting='on'>\n"
	    "      <stats period='1'/>\n"
	    "    </memballoon>\n"
	    "  </devices>\n"
	    "</domain>\n",
	    strcmp(vm_accel(), "kvm") == 0 ? "kvm" : "qemu", o->id, max,
	    cur_mib ? cur_mib : max, k, i, c, o->dir, o->id, o->dir, o->id,
	    o->dir, o->id, o->no_deflate_on_oom ? "off" : "on");
out:
	free(k);
	free(i);
	free(c);
	return xml;
}

pid_t
libvirtd_qemu_pid(const struct libvirtd *d, const char *name)
{
	char *f = vm_asprintf("%s/run/qemu/%s.pid", d->dir, name);
	pid_t pid = read_pid(f);

	free(f);
	return pid > 0 && alive(pid) ? pid : 0;
}

static void
dump_qemu_log(const struct libvirtd *d, const char *name)
{
	char *f = vm_asprintf("%s/log/qemu/%s.log", d->dir, name);

	vm_dump_file("qemu log", f);
	free(f);
}

struct vm *
libvirtd_boot(struct libvirtd *d, const struct vm_opts *o, unsigned cur_mib)
{
	unsigned timeout_s = o->boot_timeout_s ? o->boot_timeout_s : 120;
	char *xml, *file, *name, *out = NULL;
	struct vm *vm;
	double t0;

	xml = libvirtd_domain_xml(o, cur_mib);
	if (xml == NULL) {
		fprintf(stderr, "vm \"%s\": a path or the command line has "
		    "characters the domain XML would need escaped\n", o->id);
		return NULL;
	}
	name = vm_asprintf("%s.xml", o->id);
	file = tu_write_file(o->dir, name, xml);
	free(name);
	free(xml);
	vm = calloc(1, sizeof(*vm));
	vm->id = strdup(o->id);
	vm->dir = strdup(o->dir);
	vm->console = vm_asprintf("%s/%s.console", o->dir, o->id);
	unlink(vm->console);
	if (libvirtd_virsh(d, &out, "define '%s'", file) != 0) {
		fprintf(stderr, "vm \"%s\": virsh define %s: %s\n", o->id,
		    file, out);
		free(out);
		free(file);
		libvirtd_destroy(d, vm);
		return NULL;
	}
	free(out);
	free(file);
	t0 = vm_now_s();
	if (libvirtd_virsh(d, &out, "start %s", o->id) != 0) {
		fprintf(stderr, "vm \"%s\": virsh start: %s\n", o->id, out);
		goto fail;
	}
	free(out);
	out = NULL;
	vm->pid = libvirtd_qemu_pid(d, o->id);
	while (vm_now_s() < t0 + timeout_s) {
		if (vm_wait_console(vm, "mm-init: ready", 0, NULL, 0)) {
			vm->boot_s = vm_now_s() - t0;
			printf("vm \"%s\": booted under libvirt in %.2f s (%s, "
			    "%u MiB, current %u MiB, qemu pid %d)\n", vm->id,
			    vm->boot_s, vm_accel(), o->mem_mib ? o->mem_mib :
			    512, cur_mib ? cur_mib : o->mem_mib ? o->mem_mib :
			    512, (int)vm->pid);
			fflush(stdout);
			return vm;
		}
		if (vm->pid <= 0 || !alive(vm->pid)) {
			fprintf(stderr, "vm \"%s\": qemu is gone\n", o->id);
			goto fail;
		}
		usleep(50000);
	}
	fprintf(stderr, "vm \"%s\": not ready after %u s\n", o->id, timeout_s);
fail:
	free(out);
	vm_dump_console(vm);
	dump_qemu_log(d, o->id);
	libvirtd_destroy(d, vm);
	return NULL;
}

void
libvirtd_destroy(struct libvirtd *d, struct vm *vm)
{
	char *out = NULL;

	if (vm == NULL)
		return;
	if (libvirtd_qemu_pid(d, vm->id) > 0) {
		if (libvirtd_virsh(d, &out, "destroy %s", vm->id) != 0)
			fprintf(stderr, "vm \"%s\": virsh destroy: %s\n",
			    vm->id, out);
		free(out);
		out = NULL;
	}
	if (vm->pid > 0)
		reap(vm->pid, 5000);
	if (libvirtd_virsh(d, &out, "undefine %s", vm->id) != 0 &&
	    strstr(out, "failed to get domain") == NULL)
		fprintf(stderr, "vm \"%s\": virsh undefine: %s\n", vm->id, out);
	free(out);
	free(vm->id);
	free(vm->dir);
	free(vm->console);
	free(vm);
}
