#include "fairness/fairness.h"

#include "core/core.h"

void fair_limit_init(struct fair_limit *limit, uint32_t max)
{
    atomic_init(&limit->in_use, 0);
    atomic_init(&limit->max, max);
    atomic_init(&limit->admitted, 0);
    atomic_init(&limit->rejected, 0);
}

void fair_limit_set_max(struct fair_limit *limit, uint32_t max)
{
    atomic_store_explicit(&limit->max, max, memory_order_relaxed);
}

bool fair_admit(struct fair_limit *limit)
{
    uint32_t max = atomic_load_explicit(&limit->max, memory_order_relaxed);
    uint32_t cur = atomic_load_explicit(&limit->in_use, memory_order_relaxed);

    do {
        if (max != 0 && cur >= max) {
            atomic_fetch_add_explicit(&limit->rejected, 1, memory_order_relaxed);
            return false;
        }
    } while (!atomic_compare_exchange_weak_explicit(&limit->in_use, &cur, cur + 1,
                                                    memory_order_acquire, memory_order_relaxed));
    atomic_fetch_add_explicit(&limit->admitted, 1, memory_order_relaxed);
    return true;
}

void fair_release(struct fair_limit *limit)
{
    uint32_t prev = atomic_fetch_sub_explicit(&limit->in_use, 1, memory_order_release);
    KF_BUG_ON(prev == 0);
}

uint32_t fair_in_use(const struct fair_limit *limit)
{
    return atomic_load_explicit(&limit->in_use, memory_order_relaxed);
}
