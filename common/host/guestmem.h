/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one definition of a guest's used memory, and of the two numbers it
 * rests on: what a balloon holds inside the guest's MemTotal, and what the
 * guest's kernel keeps out of MemTotal for good. The collector (its
 * sanitizer's checks), the scheduler's policy engine, the actuator's
 * safety floor and the guest agent all count a guest's use with these.
 * Pure functions of numbers: no I/O, no state.
 */
#ifndef MM_GUESTMEM_H
#define MM_GUESTMEM_H

#include <stdbool.h>
#include <stdint.h>

#include "msg.h"

/*
 * A guest's used memory: total - available, less what a deflate-on-oom
 * balloon holds (it stays in MemTotal as used pages): in_total_kib when
 * has_in_total, else guessed as what MemTotal has above the balloon's
 * actual size (has_actual), which lags while the balloon moves.
 */
uint64_t gm_used_kib(uint64_t total_kib, uint64_t available_kib,
    bool has_in_total, uint64_t in_total_kib, bool has_actual,
    uint64_t actual_kib);

/*
 * What a balloon holds inside the guest's MemTotal, for gm_used_kib(),
 * from the host's word on deflate-on-oom (doo_known, doo) and the guest
 * sample's nr_balloon_pages (has_pages, pages): nothing without
 * deflate-on-oom, all its pages with it. False when that is not known.
 */
bool gm_balloon_in_total(bool doo_known, bool doo, bool has_pages,
    uint64_t pages, uint64_t *ret_kib);

/*
 * What the guest's kernel keeps out of MemTotal for good (its image, the
 * page structures, boot reservations): memory of the VM (max_kib) that
 * the guest cannot use, about 4 % here. The guest's own numbers say it:
 * the VM's size less MemTotal and, unless they count in MemTotal
 * (deflate-on-oom: in_total), the balloon's pages (has_pages, pages).
 * Counted as used, so that the headroom above a guest's use is memory it
 * can use. 0 when unknown, or above a quarter of the VM (torn numbers).
 */
uint64_t gm_reserved_kib(uint64_t max_kib, uint64_t total_kib,
    bool in_total, bool has_pages, uint64_t pages);

/*
 * The used memory of a guest's sample g (borrowed) as the host counts it:
 * gm_used_kib() of its MemTotal and MemAvailable, with what the balloon
 * holds inside MemTotal from gm_balloon_in_total() (the host's word on
 * deflate-on-oom: doo_known, doo; the sample's nr_balloon_pages), else
 * guessed from the balloon's size as the host last read it (has_actual,
 * actual_kib). The collector's sanitizer and the actuator's safety floor
 * count a guest with this; the policy engine with the same functions on
 * the same numbers (pe_guest_used_kib(), which adds gm_reserved_kib()).
 * False, *ret_kib untouched, when g lacks MemTotal or MemAvailable.
 */
bool gm_sample_used_kib(const Mm__V1__GuestStats *g, bool doo_known,
    bool doo, bool has_actual, uint64_t actual_kib, uint64_t *ret_kib);

#endif
