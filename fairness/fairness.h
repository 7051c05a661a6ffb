/*
 * fairness: admission control. Today: connection limits (global and per
 * frontend maxconn), enforced without locks. API Priority and Fairness style
 * request queuing builds on this module.
 */
#ifndef KF_FAIRNESS_H
#define KF_FAIRNESS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/** A limit on how many things may be in progress at once. 0 = unlimited. */
struct fair_limit {
    _Atomic uint32_t in_use;
    _Atomic uint32_t max;
    _Atomic uint64_t admitted;
    _Atomic uint64_t rejected;
};

/** Initialise with a maximum (0 = unlimited). */
void fair_limit_init(struct fair_limit *limit, uint32_t max);
/** Change the maximum (on reload); holders above the new maximum keep their slot. */
void fair_limit_set_max(struct fair_limit *limit, uint32_t max);
/** Take a slot if one is free. Returns false (and counts a rejection) when full. */
bool fair_admit(struct fair_limit *limit);
/** Give back a slot taken by fair_admit. */
void fair_release(struct fair_limit *limit);
/** Slots in use now. */
uint32_t fair_in_use(const struct fair_limit *limit);

#endif
