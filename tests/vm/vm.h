/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The VM tests' QEMU launcher: boots the test guest (the kernel and
 * initramfs tests/vm/mkimage.sh built under $MM_BINARY_DIR/vm) with a
 * virtio balloon, a QMP socket and the agent's virtio-serial port laid out
 * as the kvm driver expects (<dir>/<id>.qmp, <id>.agent, <id>.pid), and
 * kills every QEMU it started when the test ends, however it ends.
 * Environment: MM_VM_ACCEL=kvm|tcg forces the accelerator, MM_VM_KERNEL=
 * vmlinuz boots the compressed kernel instead of vmlinux.
 */
#ifndef MM_TEST_VM_H
#define MM_TEST_VM_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <uv.h>

#include "hv.h"

struct vm_opts {
	const char *id;		/* socket base name, [A-Za-z0-9_.-] */
	const char *dir;	/* socket directory (the kvm driver's vm_dir) */
	unsigned mem_mib;	/* -m: the guest's maximum; 0: 512 */
	bool numa;		/* two NUMA nodes of mem_mib / 2, two CPUs */
	/* mm.workload on the kernel command line: "<prog>:<arg>:..." run
	 * once by /init, e.g. "mm_test_mono:50M:400M"; NULL: none. */
	const char *workload;
	const char *interval;	/* the agent's interval ("500ms"); NULL: 1s */
	/* Its resend_interval: unchanged numbers are sent again this often
	 * (an idle guest's agent is otherwise quiet); NULL: 10s. */
	const char *resend;
	/* mm.cold: the agent's [cold] interval with MGLRU turned on
	 * ("5s"); NULL: no estimate. */
	const char *cold;
	bool zram;		/* mm.swap=zram: a 1 GiB zram swap */
	bool no_deflate_on_oom;	/* balloon without deflate-on-oom */
	bool no_free_page_reporting;	/* ... without free page reporting */
	unsigned boot_timeout_s; /* until "mm-init: ready"; 0: 120 */
};

struct vm {
	char *id;
	char *dir;		/* its socket directory */
	char *console;		/* path of the serial console log */
	pid_t pid;		/* QEMU, leader of its own process group */
	double boot_s;		/* start to "mm-init: ready", seconds */
};

/*
 * Exit with 77 and a message when this machine cannot boot test guests: no
 * qemu-system-x86_64, or no image (build it with the vm_image test).
 */
void vm_require(void);

/* The test image's boot files under $MM_BINARY_DIR/vm (the kernel as
 * MM_VM_KERNEL chooses) and the guest's kernel command line for o
 * (console=ttyS0, psi=1, mm.vm_id and o's workload, interval and resend);
 * malloc'd, the caller frees them. */
char *vm_kernel_path(void);
char *vm_initrd_path(void);
char *vm_cmdline(const struct vm_opts *o);

/* Small helpers of the VM tests: the monotonic clock in seconds, a
 * vasprintf() that aborts when out of memory (malloc'd result), and a
 * file copied to stderr between "---- what (path) ----" lines. */
double vm_now_s(void);
char *vm_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void vm_dump_file(const char *what, const char *path);

/* "kvm" when a trial boot under KVM reached "mm-init: ready" (cached in
 * $MM_BINARY_DIR/vm/accel; $MM_VM_ACCEL overrides), else "tcg". Static. */
const char *vm_accel(void);

/*
 * Start QEMU and wait until the guest's /init says it is ready. Returns
 * the VM (free with vm_stop()) or NULL after printing why and the console
 * log: QEMU exited, or no "mm-init: ready" within the boot timeout.
 */
struct vm *vm_start(const struct vm_opts *opts);

/*
 * Wait up to timeout_ms for a console line containing needle, searching
 * from the start of the log. Copies the line (without its newline) to
 * ret_line when given. Returns true when found.
 */
bool vm_wait_console(const struct vm *vm, const char *needle,
    unsigned timeout_ms, char *ret_line, size_t len);

/*
 * The host side of a VM test in process: the kvm driver on its own loop
 * over a fresh socket directory (the vm_opts' dir), calling event_cb, as
 * the collector runs it. vm_host_close() closes the driver, ends the loop
 * and removes the directory.
 */
struct vm_host {
	uv_loop_t loop;
	struct hv *hv;
	char *dir;
};
void vm_host_open(struct vm_host *h, hv_event_cb event_cb, void *arg);
void vm_host_close(struct vm_host *h);

/* QEMU's resident memory (as the collector reads it for
 * host_resident_kib), KiB; aborts when it cannot be read. */
uint64_t vm_resident_kib(const struct vm *vm);

/* Print the console log to stderr (after a failure). */
void vm_dump_console(const struct vm *vm);

/* Kill QEMU (its whole process group), reap it, remove its sockets and pid
 * file (a killed QEMU leaves them) and free vm. NULL: no-op. */
void vm_stop(struct vm *vm);

#endif
