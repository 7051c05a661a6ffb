#include <criterion/criterion.h>

#include <pthread.h>

#include "fairness/fairness.h"

Test(limit, admits_up_to_max_then_rejects)
{
    struct fair_limit l;

    fair_limit_init(&l, 2);
    cr_expect(fair_admit(&l));
    cr_expect(fair_admit(&l));
    cr_expect_not(fair_admit(&l));
    fair_release(&l);
    cr_expect(fair_admit(&l));
    cr_expect_eq(fair_in_use(&l), 2);
    cr_expect_eq(atomic_load(&l.rejected), 1);
    cr_expect_eq(atomic_load(&l.admitted), 3);
}

Test(limit, zero_is_unlimited_and_lowering_keeps_holders)
{
    struct fair_limit l;

    fair_limit_init(&l, 0);
    for (int i = 0; i < 1000; i++)
        cr_assert(fair_admit(&l));
    fair_limit_set_max(&l, 10);
    cr_expect_not(fair_admit(&l));
    cr_expect_eq(fair_in_use(&l), 1000);
}

static void *hammer(void *arg)
{
    struct fair_limit *l = arg;
    for (int i = 0; i < 100000; i++) {
        if (fair_admit(l)) {
            cr_assert_leq(fair_in_use(l), 8);
            fair_release(l);
        }
    }
    return NULL;
}

Test(limit, never_exceeds_max_under_contention)
{
    struct fair_limit l;
    pthread_t t[4];

    fair_limit_init(&l, 8);
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, hammer, &l);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    cr_expect_eq(fair_in_use(&l), 0);
}
