/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The KSM settings mm will ever write, in one place: the policy check
 * (pm_from_msg) refuses a policy outside them and the actuator refuses a
 * command outside them, whoever sent it. The kernel itself takes any
 * unsigned int, including values that make ksmd spin or scan all memory at
 * every wake-up.
 */
#ifndef MM_KSM_LIMITS_H
#define MM_KSM_LIMITS_H

/* pages_to_scan per ksmd wake-up: ksmtuned moves between 64 and 1250
 * (npages); 100000 pages (390 MiB a wake-up) is 80 times its maximum. 0
 * would leave ksmd running without scanning anything. */
#define KSM_PAGES_TO_SCAN_MIN	1u
#define KSM_PAGES_TO_SCAN_MAX	100000u

/* sleep_millisecs between wake-ups: 0 makes ksmd scan without a pause;
 * above a minute it hardly runs at all (ksmtuned sleeps 10 ms, longer on
 * hosts under 16 GiB). */
#define KSM_SLEEP_MS_MIN	1u
#define KSM_SLEEP_MS_MAX	60000u

#endif
