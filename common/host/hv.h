/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The hypervisor driver interface: which VMs run on this host, what their
 * guests report and where their balloons are. A driver runs on the
 * program's libuv loop and calls back when a VM appears or goes, or when its
 * stats or balloon change (an agent frame, a QMP reply or event, a xenstore
 * watch); it never blocks. Drivers: kvm (QMP and agent sockets per VM), sim
 * (the kvm code against mm-sim's sockets), xen and libvirt (libvirt's API,
 * its calls on libuv's thread pool).
 */
#ifndef MM_HV_H
#define MM_HV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <uv.h>

#include "msg.h"

struct hv;

enum hv_type {
	HV_TYPE_KVM,
	HV_TYPE_XEN,
	HV_TYPE_SIM,
	HV_TYPE_LIBVIRT,
};

/* What the driver knows of one VM. Owned by the driver; callers read it
 * during a callback or hv_foreach(), and may use user for their own state
 * (the driver never touches it). */
struct hv_vm {
	char id[MSG_ID_MAX + 1];	/* socket base name or domain name */
	pid_t pid;			/* its process (kvm), 0 if unknown */
	bool balloon_known;
	uint64_t balloon_actual_kib;	/* current guest size */
	bool target_known;
	uint64_t balloon_target_kib;	/* last requested size */
	bool max_known;
	uint64_t max_kib;		/* ceiling (static-max) */
	/* kvm: the balloon deflates on OOM, and so stays in the guest's
	 * MemTotal (QOM property deflate-on-oom). */
	bool doo_known;
	bool deflate_on_oom;
	/* libvirt: from the live domain XML. */
	bool has_balloon;		/* a memballoon other than none */
	/* The balloon has free page reporting: libvirt's memballoon
	 * freePageReporting, kvm's QOM property free-page-reporting. */
	bool free_page_reporting;
	unsigned numa_cells;		/* guest NUMA cells, 0: none */
	/* Latest guest sample, vm_id set to id; NULL before the first one.
	 * Owned by the driver, replaced (and freed) by the next one. */
	const Mm__V1__GuestStats *guest;
	uint64_t guest_rx_ms;		/* uv_now() when it arrived */
	bool agent_up;			/* the agent channel is connected */
	/* With HV_EV_REJECTED: why the guest's latest data was refused. */
	enum hv_reject {
		HV_REJECT_TOO_BIG,	/* frame above frame_max */
		HV_REJECT_UNDECODABLE,	/* not a GuestStats, not numbers */
		HV_REJECT_INVALID,	/* failed msg_validate() */
	} reject;
	void *user;
};

enum hv_event {
	HV_EV_ADDED,	/* vm is new */
	HV_EV_REMOVED,	/* vm is gone; it is freed after the callback */
	HV_EV_GUEST,	/* vm->guest is a new sample */
	HV_EV_BALLOON,	/* balloon_actual_kib (or target/max) changed */
	HV_EV_REJECTED,	/* guest data refused (vm->reject says why); the
			 * agent's connection was dropped where it had one */
};

typedef void (*hv_event_cb)(struct hv *hv, enum hv_event ev, struct hv_vm *vm,
    void *arg);

struct hv_config {
	enum hv_type type;
	/* kvm, sim: directory of <id>.qmp and <id>.agent sockets (and
	 * optional <id>.pid files). NULL: /run/mm/vm. */
	const char *vm_dir;
	/* kvm, sim: a VM is found by its QMP socket <id>.<qmp_ext>; NULL:
	 * "qmp". QEMU serves one client per monitor, so the collector and
	 * the actuator each have their own (-qmp ... twice). */
	const char *qmp_ext;
	/* kvm, sim: do not read <id>.agent (the collector does; a socket
	 * has one reader): guest samples come from the balloon's
	 * guest-stats over QMP. */
	bool no_agent;
	/* QOM path of the virtio balloon for the agentless fallback; NULL:
	 * /machine/peripheral/balloon0. */
	const char *balloon_path;
	/* libvirt: the connection URI; NULL: qemu:///system. */
	const char *uri;
	/* libvirt: a call unanswered this long fails with -ETIMEDOUT, ms;
	 * 0: 5000. */
	unsigned op_timeout_ms;
	/* Rescan of vm_dir and reconnects, ms; 0: 1000. */
	unsigned rescan_ms;
	/* query-balloon (and fallback guest-stats) period, ms; 0: 1000. */
	unsigned poll_ms;
	/* An agent silent this long makes the driver use QMP guest-stats,
	 * ms; 0: 3000. */
	unsigned agent_timeout_ms;
	/* Longest QMP line and agent frame, bytes; 0: 64 KiB and
	 * msg_max_size(MSG_GUEST_STATS). */
	size_t qmp_line_max;
	size_t frame_max;
	hv_event_cb event_cb;	/* may be NULL */
	void *event_arg;
};

/* Counters of untrusted input the driver refused. */
struct hv_stats {
	uint64_t frames;		/* agent frames accepted */
	uint64_t frames_too_big;	/* length above frame_max */
	uint64_t frames_undecodable;	/* not a GuestStats */
	uint64_t frames_invalid;	/* decoded but msg_validate() failed */
	uint64_t agent_resets;		/* agent connections dropped by us */
	uint64_t qmp_bad_lines;		/* too long or not JSON */
	uint64_t qmp_errors;		/* QMP error replies */
	uint64_t qmp_hangs;		/* no greeting or answers: dropped */
	uint64_t qmp_fallbacks;		/* guest samples from guest-stats */
	uint64_t watch_coalesced;	/* xen: watch events folded into a
					 * read already due */
};

/*
 * Create a driver on loop; the config is copied (strings too). Nothing
 * happens before hv_start(). Returns NULL with errno set: EINVAL (bad
 * config), ENOTSUP (driver not built in), ENOMEM. Free with hv_close().
 */
struct hv *hv_new(uv_loop_t *loop, const struct hv_config *config);

/* Start discovering VMs; events follow on the loop. Returns 0 or -errno. */
int hv_start(struct hv *hv);

/* Call fn for every known VM (in no particular order). fn must not add
 * or remove VMs. */
void hv_foreach(struct hv *hv, void (*fn)(struct hv_vm *vm, void *arg),
    void *arg);

/* The VM called id (borrowed, as in callbacks), or NULL. */
struct hv_vm *hv_find(struct hv *hv, const char *id);

/* Number of known VMs. */
size_t hv_vm_count(const struct hv *hv);

/* The driver's type and its name ("kvm", "xen", "sim", "libvirt"). */
enum hv_type hv_get_type(const struct hv *hv);
const char *hv_type_name(enum hv_type type);

/*
 * The memory the guest of vm uses by sample g (both borrowed; g may be
 * another than vm->guest), with vm's word on its balloon (deflate-on-oom,
 * its size): gm_sample_used_kib(). False when g lacks the numbers.
 */
bool hv_guest_used_kib(const struct hv_vm *vm, const Mm__V1__GuestStats *g,
    uint64_t *ret_kib);

/* Parse "kvm", "xen", "sim" or "libvirt". Returns 0 or -EINVAL. */
int hv_type_from_name(const char *name, enum hv_type *ret_type);

void hv_get_stats(const struct hv *hv, struct hv_stats *ret_stats);

/* Completion of a write: 0 or -errno (-ENOENT for an unknown VM, -EIO
 * when the hypervisor refused). */
typedef void (*hv_done_cb)(struct hv *hv, int status, void *arg);

/*
 * Ask the hypervisor to make vm_id's guest target_kib in size (kvm: QMP
 * balloon; xen: memory/target, refused above memory/static-max; libvirt:
 * virDomainSetMemoryFlags(LIVE), refused above the domain's maximum). No
 * other safety here: mm-actuator decides what is safe. cb (may be NULL) is
 * called once, on the loop, unless this fails (libvirt: with -ETIMEDOUT
 * after op_timeout_ms, -ENOENT when the domain went). Returns 0, -ENOENT,
 * -ENOTSUP for a driver without it (libvirt: a domain without a balloon),
 * -ERANGE (xen, libvirt: above the maximum), -EIO (libvirt: not
 * connected), -ENOMEM.
 */
int hv_set_target(struct hv *hv, const char *vm_id, uint64_t target_kib,
    hv_done_cb cb, void *arg);

/*
 * Ask vm_id's guest agent to reclaim up to kib of the guest's memory into
 * its swap, stopping when the stall during a step rises above
 * psi_budget_pct (ReclaimRequest, docs/protocol.md): written to the VM's
 * agent control socket (kvm, sim: <vm_dir>/<id>.control, a virtio-serial
 * port org.mm.control.0 in the guest; libvirt: the path of the domain's
 * unix channel of that name in its live XML), or on xen to the domain's
 * xenstore key control/mm/reclaim ("<seq> <kib> <psi_budget_pct>"), which
 * the agent watches. seq is nonzero and new for a new request; kib 0
 * stops the running one. Its progress comes back in the agent's samples
 * (GuestStats.reclaim). Returns 0, -EINVAL (a request msg_validate()
 * refuses), -ENOENT, -ENOTSUP (xen built without libxenstore), -ENOTCONN
 * (no control socket or channel; xen: no xenstore connection),
 * -ENAMETOOLONG (a socket path too long), -EACCES (xen: xenstored refused
 * the write), -EAGAIN, -ENOMEM, -EIO.
 */
int hv_reclaim(struct hv *hv, const char *vm_id, uint64_t seq, uint64_t kib,
    double psi_budget_pct);

/*
 * Read vm_id's balloon from the hypervisor now (kvm: query-balloon; xen:
 * memory/target and static-max), update its hv_vm, then call cb (may be
 * NULL) once, on the loop, unless this fails: what was observed is in the
 * hv_vm by then (libvirt: also its limits). Returns 0, -ENOENT, -ENOTSUP,
 * -EIO (libvirt: not connected), -ENOMEM.
 */
int hv_refresh(struct hv *hv, const char *vm_id, hv_done_cb cb, void *arg);

/*
 * Stop: close every connection and handle, free the VMs (no REMOVED
 * events), free hv, then call cb (may be NULL). hv may be NULL.
 */
void hv_close(struct hv *hv, void (*cb)(void *arg), void *arg);

#endif
