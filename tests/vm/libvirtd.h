/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A real libvirtd of the test's own, for the libvirt VM tests: a
 * privileged libvirtd in a private mount namespace whose /etc/libvirt,
 * /run/libvirt, /var/lib/libvirt, /var/log/libvirt and /var/cache/libvirt
 * are directories under the test's dir (etc/ run/ lib/ log/ cache/), with
 * no cgroups, no security driver, no virtlogd and QEMU run as root. Its
 * URI is qemu:///system?socket=<dir>/run/libvirt-sock. The test guest
 * boots in domains defined through it (<domain type='qemu'> under TCG,
 * direct kernel boot of the vm_image test's kernel and initramfs, a
 * virtio balloon with stats every second and the agent's channel).
 *
 * Domains are driven with virsh, so that libvirt.h stays in the libvirt
 * driver. A guard process kills libvirtd and every QEMU it started when
 * the test ends, however it ends (QEMU outlives libvirtd by design).
 */
#ifndef MM_TEST_LIBVIRTD_H
#define MM_TEST_LIBVIRTD_H

#include <stdbool.h>
#include <sys/types.h>

#include "vm.h"

struct libvirtd {
	char *dir;		/* its root: etc/ run/ lib/ log/ cache/ */
	char *uri;		/* the URI of its socket */
	pid_t pid;		/* libvirtd, leader of its process group */
	pid_t guard;		/* kills what is left when the test ends */
	int guard_fd;		/* the guard's pipe: EOF means "clean up" */
	double start_s;		/* the last start until its socket answered */
};

/*
 * Exit with 77 and a message when this machine cannot run the libvirt VM
 * tests: no libvirtd or virsh, not root, or what vm_require() asks for
 * (QEMU and the guest image).
 */
void libvirtd_require(void);

/*
 * Start a libvirtd on dir (created if missing; the caller removes it)
 * and wait until its socket answers. Returns it (free with
 * libvirtd_stop()) or NULL after printing why and its log.
 */
struct libvirtd *libvirtd_start(const char *dir);

/*
 * Stop libvirtd (SIGTERM, waited for) and start it again on the same
 * dirs, leaving its guests running; waits until the socket answers.
 * Returns 0 or -errno after printing why.
 */
int libvirtd_restart(struct libvirtd *d);

/* Stop libvirtd, kill every QEMU it started and free d. NULL: no-op. */
void libvirtd_stop(struct libvirtd *d);

/*
 * Run virsh -c <uri> with args (a shell word list, e.g. "dommemstat
 * web") and return its exit status (-1 when it could not run). When
 * ret_out is given it receives what virsh printed (stdout and stderr,
 * malloc'd, the caller frees it); else that goes to stderr.
 */
int libvirtd_virsh(struct libvirtd *d, char **ret_out, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * The domain XML for o: o->id is the name, o->mem_mib the maximum
 * (<memory>), cur_mib <currentMemory> (0: the maximum), the serial
 * console to <o->dir>/<id>.console, the agent's channel bound to
 * <o->dir>/<id>.agent and its control channel to <o->dir>/<id>.control. NULL (errno EINVAL) when a path or the command
 * line holds a character XML would need escaped. Malloc'd.
 */
char *libvirtd_domain_xml(const struct vm_opts *o, unsigned cur_mib);

/*
 * Define o's domain (persistent), start it and wait until the guest's
 * /init says it is ready. Returns the VM (vm->pid is QEMU's, not a child
 * of the test; free with libvirtd_destroy()) or NULL after printing why,
 * the console and QEMU's log.
 */
struct vm *libvirtd_boot(struct libvirtd *d, const struct vm_opts *o,
    unsigned cur_mib);

/* QEMU's pid for the running domain name, 0 when there is none. */
pid_t libvirtd_qemu_pid(const struct libvirtd *d, const char *name);

/* Destroy (power off) and undefine vm's domain, free vm. NULL: no-op. */
void libvirtd_destroy(struct libvirtd *d, struct vm *vm);

#endif
