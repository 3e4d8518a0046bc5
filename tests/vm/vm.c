/* SPDX-License-Identifier: Apache-2.0 */
/*
 * QEMU for the VM tests. Each QEMU leads its own process group, dies with
 * the test process (PR_SET_PDEATHSIG) and is killed by an atexit handler
 * and by the fatal signals, so a failing or aborted test leaves no guest
 * running. The guest boots Debian's uncompressed vmlinux through its PVH
 * entry; under TCG that saves the xz decompression (docs/benchmarks.md).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hoststats.h"
#include "testutil.h"
#include "vm.h"

#define QEMU		"qemu-system-x86_64"
#define MAX_VMS		16
#define KVM_TRIAL_S	10

static pid_t running[MAX_VMS];
static bool hooks_set;

double
vm_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

char *
vm_asprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		abort();
	va_end(ap);
	return s;
}

static char *
image_path(const char *name)
{
	const char *b = getenv("MM_BINARY_DIR");

	return vm_asprintf("%s/vm/%s", b != NULL ? b : ".", name);
}

/* The uncompressed vmlinux, or with MM_VM_KERNEL=vmlinuz the compressed
 * one (to measure what booting it costs). */
char *
vm_kernel_path(void)
{
	const char *k = getenv("MM_VM_KERNEL");

	return image_path(k != NULL && strcmp(k, "vmlinuz") == 0 ?
	    "kernel/vmlinuz" : "kernel/vmlinux");
}

char *
vm_initrd_path(void)
{
	return image_path("initrd.cpio");
}

char *
vm_cmdline(const struct vm_opts *o)
{
	/* Debian builds PSI in but leaves it off (CONFIG_PSI_DEFAULT_
	 * DISABLED): psi=1 turns it on, as on the hosts mm runs in. */
	return vm_asprintf("console=ttyS0 quiet panic=-1 psi=1 "
	    "mm.vm_id=%s%s%s%s%s%s%s%s%s%s", o->id,
	    o->workload ? " mm.workload=" : "",
	    o->workload ? o->workload : "", o->interval ? " mm.interval=" : "",
	    o->interval ? o->interval : "", o->resend ? " mm.resend=" : "",
	    o->resend ? o->resend : "", o->cold ? " mm.cold=" : "",
	    o->cold ? o->cold : "", o->zram ? " mm.swap=zram" : "");
}

static void
kill_all(void)
{
	int i;

	for (i = 0; i < MAX_VMS; i++)
		if (running[i] > 0) {
			kill(-running[i], SIGKILL);
			waitpid(running[i], NULL, 0);
			running[i] = 0;
		}
}

static void
fatal_signal(int sig)
{
	kill_all();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void
set_hooks(void)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGABRT,
		SIGSEGV, SIGBUS };
	size_t i;

	if (hooks_set)
		return;
	hooks_set = true;
	atexit(kill_all);
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		signal(sigs[i], fatal_signal);
}

static bool
in_path(const char *prog)
{
	const char *path = getenv("PATH");
	char *copy, *dir, *save, *f;
	bool found = false;

	copy = strdup(path != NULL ? path : "/usr/bin:/bin");
	for (dir = strtok_r(copy, ":", &save); dir != NULL && !found;
	    dir = strtok_r(NULL, ":", &save)) {
		f = vm_asprintf("%s/%s", dir, prog);
		found = access(f, X_OK) == 0;
		free(f);
	}
	free(copy);
	return found;
}

void
vm_require(void)
{
	char *k = image_path("kernel/vmlinux"), *i = image_path("initrd.cpio");

	if (!in_path(QEMU)) {
		printf("skipped: no " QEMU " (apt-get install qemu-system-x86;"
		    " scripts/test.sh installs it)\n");
		exit(77);
	}
	if (access(k, R_OK) < 0 || access(i, R_OK) < 0) {
		printf("skipped: no guest image (%s, %s): run the vm_image "
		    "test or cmake --build <dir> --target vm-image\n", k, i);
		exit(77);
	}
	free(k);
	free(i);
}

static void
add_arg(char **argv, int *argc, char *arg)
{
	argv[(*argc)++] = arg;
	argv[*argc] = NULL;
}

/* QEMU's argument list; every string is malloc'd (freed by the exec). */
static void
build_argv(const struct vm_opts *o, const char *accel, const char *console,
    char **argv)
{
	unsigned mem = o->mem_mib ? o->mem_mib : 512;
	int n = 0;

	add_arg(argv, &n, strdup(QEMU));
	add_arg(argv, &n, vm_asprintf("-machine"));
	add_arg(argv, &n, vm_asprintf("q35,accel=%s", accel));
	add_arg(argv, &n, vm_asprintf("-m"));
	add_arg(argv, &n, vm_asprintf("%u", mem));
	if (o->numa) {
		add_arg(argv, &n, vm_asprintf("-smp"));
		add_arg(argv, &n, vm_asprintf("2"));
		add_arg(argv, &n, vm_asprintf("-object"));
		add_arg(argv, &n, vm_asprintf(
		    "memory-backend-ram,id=m0,size=%uM", mem / 2));
		add_arg(argv, &n, vm_asprintf("-object"));
		add_arg(argv, &n, vm_asprintf(
		    "memory-backend-ram,id=m1,size=%uM", mem - mem / 2));
		add_arg(argv, &n, vm_asprintf("-numa"));
		add_arg(argv, &n,
		    vm_asprintf("node,nodeid=0,memdev=m0,cpus=0"));
		add_arg(argv, &n, vm_asprintf("-numa"));
		add_arg(argv, &n,
		    vm_asprintf("node,nodeid=1,memdev=m1,cpus=1"));
	}
	add_arg(argv, &n, vm_asprintf("-display"));
	add_arg(argv, &n, vm_asprintf("none"));
	add_arg(argv, &n, vm_asprintf("-monitor"));
	add_arg(argv, &n, vm_asprintf("none"));
	add_arg(argv, &n, vm_asprintf("-no-reboot"));
	add_arg(argv, &n, vm_asprintf("-serial"));
	add_arg(argv, &n, vm_asprintf("file:%s", console));
	add_arg(argv, &n, vm_asprintf("-kernel"));
	add_arg(argv, &n, vm_kernel_path());
	add_arg(argv, &n, vm_asprintf("-initrd"));
	add_arg(argv, &n, vm_initrd_path());
	add_arg(argv, &n, vm_asprintf("-append"));
	add_arg(argv, &n, vm_cmdline(o));
	add_arg(argv, &n, vm_asprintf("-device"));
	add_arg(argv, &n, vm_asprintf("virtio-balloon-pci,id=balloon0,"
	    "deflate-on-oom=%s,free-page-reporting=%s",
	    o->no_deflate_on_oom ? "off" : "on",
	    o->no_free_page_reporting ? "off" : "on"));
	add_arg(argv, &n, vm_asprintf("-qmp"));
	add_arg(argv, &n, vm_asprintf("unix:%s/%s.qmp,server=on,wait=off",
	    o->dir, o->id));
	/* A second monitor for mm-actuator: QEMU serves one client each. */
	add_arg(argv, &n, vm_asprintf("-qmp"));
	add_arg(argv, &n, vm_asprintf("unix:%s/%s.actuator,server=on,wait=off",
	    o->dir, o->id));
	add_arg(argv, &n, vm_asprintf("-device"));
	add_arg(argv, &n, vm_asprintf("virtio-serial-pci"));
	/* The agent's port, and its control port: reclaim requests
	 * (hv_reclaim()). */
	for (int i = 0; i < 2; i++) {
		static const char *const ext[2] = { "agent", "control" };

		add_arg(argv, &n, vm_asprintf("-chardev"));
		add_arg(argv, &n, vm_asprintf("socket,id=%s,path=%s/%s.%s,"
		    "server=on,wait=off", ext[i], o->dir, o->id, ext[i]));
		add_arg(argv, &n, vm_asprintf("-device"));
		add_arg(argv, &n, vm_asprintf("virtserialport,chardev=%s,"
		    "name=org.mm.%s.0", ext[i], ext[i]));
	}
	add_arg(argv, &n, vm_asprintf("-pidfile"));
	add_arg(argv, &n, vm_asprintf("%s/%s.pid", o->dir, o->id));
}

static pid_t
spawn(char **argv, const char *log)
{
	pid_t parent = getpid(), pid;
	int fd;

	pid = fork();
	if (pid > 0)
		setpgid(pid, pid);	/* also here: no window for vm_stop() */
	if (pid != 0)
		return pid;
	setpgid(0, 0);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd >= 0) {
		dup2(fd, 1);
		dup2(fd, 2);
	}
	execvp(argv[0], argv);
	fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

void
vm_dump_file(const char *what, const char *path)
{
	char buf[4096];
	size_t n;
	FILE *f = fopen(path, "r");

	fprintf(stderr, "---- %s (%s) ----\n", what, path);
	if (f == NULL)
		return;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		fwrite(buf, 1, n, stderr);
	fclose(f);
	fprintf(stderr, "\n---- end of %s ----\n", what);
}

void
vm_dump_console(const struct vm *vm)
{
	vm_dump_file("guest console", vm->console);
}

static bool
find_line(const char *path, const char *needle, char *ret_line, size_t len)
{
	char line[1024];
	bool found = false;
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return false;
	while (!found && fgets(line, sizeof(line), f) != NULL) {
		if (strstr(line, needle) == NULL)
			continue;
		found = true;
		line[strcspn(line, "\r\n")] = '\0';
		if (ret_line != NULL && len > 0)
			snprintf(ret_line, len, "%s", line);
	}
	fclose(f);
	return found;
}

static void
track(pid_t pid, bool on)
{
	int i;

	for (i = 0; i < MAX_VMS; i++)
		if (on ? running[i] == 0 : running[i] == pid) {
			running[i] = on ? pid : 0;
			return;
		}
}

/* Boot with accel; NULL when QEMU exits or the guest is not ready in
 * time (quiet: the caller decides what to print). */
static struct vm *
boot(const struct vm_opts *o, const char *accel, unsigned timeout_s)
{
	char *argv[64], *log;
	struct vm *vm;
	double t0, deadline;
	int i, status;

	vm = calloc(1, sizeof(*vm));
	vm->id = strdup(o->id);
	vm->dir = strdup(o->dir);
	vm->console = vm_asprintf("%s/%s.console", o->dir, o->id);
	log = vm_asprintf("%s/%s.qemu.log", o->dir, o->id);
	unlink(vm->console);
	build_argv(o, accel, vm->console, argv);
	set_hooks();
	t0 = vm_now_s();
	vm->pid = spawn(argv, log);
	for (i = 0; argv[i] != NULL; i++)
		free(argv[i]);
	if (vm->pid < 0)
		goto fail;
	track(vm->pid, true);
	deadline = t0 + timeout_s;
	while (vm_now_s() < deadline) {
		if (find_line(vm->console, "mm-init: ready", NULL, 0)) {
			vm->boot_s = vm_now_s() - t0;
			free(log);
			return vm;
		}
		if (waitpid(vm->pid, &status, WNOHANG) == vm->pid) {
			track(vm->pid, false);
			vm->pid = 0;
			fprintf(stderr, "vm \"%s\": qemu exited with status "
			    "%d\n", o->id, status);
			vm_dump_file("qemu output", log);
			goto fail;
		}
		usleep(50000);
	}
	fprintf(stderr, "vm \"%s\": not ready after %u s (%s)\n", o->id,
	    timeout_s, accel);
fail:
	free(log);
	vm_stop(vm);
	return NULL;
}

const char *
vm_accel(void)
{
	static char accel[8];
	const char *env = getenv("MM_VM_ACCEL");
	char *cache, *dir;
	struct vm_opts o = { .id = "kvm-trial", .mem_mib = 256 };
	struct vm *vm;
	FILE *f;

	if (env != NULL && (strcmp(env, "kvm") == 0 || strcmp(env, "tcg") == 0))
		return env;
	if (accel[0] != '\0')
		return accel;
	cache = image_path("accel");
	f = fopen(cache, "r");
	if (f != NULL) {
		if (fscanf(f, "%7s", accel) == 1 && (strcmp(accel, "kvm") == 0 ||
		    strcmp(accel, "tcg") == 0)) {
			fclose(f);
			free(cache);
			return accel;
		}
		fclose(f);
	}
	strcpy(accel, "tcg");
	if (access("/dev/kvm", R_OK | W_OK) == 0) {
		dir = image_path("kvm-trial");
		mkdir(dir, 0755);
		o.dir = dir;
		vm = boot(&o, "kvm", KVM_TRIAL_S);
		if (vm != NULL) {
			strcpy(accel, "kvm");
			vm_stop(vm);
		}
		printf("vm: a trial boot under KVM %s; using %s\n",
		    vm != NULL ? "worked" : "did not reach /init", accel);
		free(dir);
	} else {
		printf("vm: no usable /dev/kvm; using tcg\n");
	}
	f = fopen(cache, "w");
	if (f != NULL) {
		fprintf(f, "%s\n", accel);
		fclose(f);
	}
	free(cache);
	return accel;
}

struct vm *
vm_start(const struct vm_opts *opts)
{
	const char *accel = vm_accel();
	struct vm *vm;

	vm = boot(opts, accel, opts->boot_timeout_s ? opts->boot_timeout_s :
	    120);
	if (vm == NULL) {
		char *c = vm_asprintf("%s/%s.console", opts->dir, opts->id);

		vm_dump_file("guest console", c);
		free(c);
		return NULL;
	}
	printf("vm \"%s\": booted in %.2f s (%s, %s, %u MiB%s)\n", vm->id,
	    vm->boot_s, accel, getenv("MM_VM_KERNEL") != NULL &&
	    strcmp(getenv("MM_VM_KERNEL"), "vmlinuz") == 0 ? "vmlinuz" :
	    "vmlinux", opts->mem_mib ? opts->mem_mib : 512,
	    opts->numa ? ", 2 NUMA nodes" : "");
	fflush(stdout);
	return vm;
}

bool
vm_wait_console(const struct vm *vm, const char *needle, unsigned timeout_ms,
    char *ret_line, size_t len)
{
	double deadline = vm_now_s() + timeout_ms / 1000.0;

	do {
		if (find_line(vm->console, needle, ret_line, len))
			return true;
		usleep(50000);
	} while (vm_now_s() < deadline);
	return false;
}

uint64_t
vm_resident_kib(const struct vm *vm)
{
	uint64_t kib = 0;

	if (hs_read_resident_kib("/proc", vm->pid, &kib) < 0) {
		fprintf(stderr, "vm %s: no /proc/%d/statm\n", vm->id,
		    (int)vm->pid);
		abort();
	}
	return kib;
}

void
vm_host_open(struct vm_host *h, hv_event_cb event_cb, void *arg)
{
	struct hv_config c = {
		.type = HV_TYPE_KVM,
		.rescan_ms = 200,
		.poll_ms = 200,
		.event_cb = event_cb,
		.event_arg = arg,
	};

	/* The driver writes to QMP sockets of guests being stopped. */
	signal(SIGPIPE, SIG_IGN);
	h->dir = tu_tmpdir();
	c.vm_dir = h->dir;
	if (uv_loop_init(&h->loop) < 0)
		abort();
	h->hv = hv_new(&h->loop, &c);
	if (h->hv == NULL || hv_start(h->hv) < 0) {
		fprintf(stderr, "vm_host_open: the kvm driver did not start\n");
		abort();
	}
}

void
vm_host_close(struct vm_host *h)
{
	hv_close(h->hv, NULL, NULL);
	tu_loop_finish(&h->loop);
	tu_rmtree(h->dir);
	free(h->dir);
	h->dir = NULL;
}

void
vm_stop(struct vm *vm)
{
	static const char *const ext[] = { "qmp", "actuator", "agent",
	    "control", "pid" };
	int i;

	if (vm == NULL)
		return;
	if (vm->pid > 0) {
		kill(-vm->pid, SIGKILL);
		kill(vm->pid, SIGKILL);
		waitpid(vm->pid, NULL, 0);
		track(vm->pid, false);
	}
	for (i = 0; i < 4; i++) {
		char *f = vm_asprintf("%s/%s.%s", vm->dir, vm->id, ext[i]);

		unlink(f);
		free(f);
	}
	free(vm->id);
	free(vm->dir);
	free(vm->console);
	free(vm);
}
