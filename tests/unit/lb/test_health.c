#include <criterion/criterion.h>

#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "lb_test.h"

/* Feed a sequence of results ("+" success, "-" failure) and return the states after each. */
static void feed(struct lb_health_counter *h, const char *seq, uint32_t rise, uint32_t fall,
                 char *states, bool *changed_any)
{
    for (size_t i = 0; seq[i]; i++) {
        bool changed = lb_health_record(h, seq[i] == '+', rise, fall);
        states[i] = h->state == LB_HEALTH_UP ? 'U' : h->state == LB_HEALTH_DOWN ? 'D' : '?';
        if (changed_any)
            *changed_any |= changed;
    }
    states[strlen(seq)] = '\0';
}

Test(health, first_result_decides_from_unknown)
{
    struct lb_health_counter up = {0}, down = {0};
    char states[8];

    cr_assert(lb_health_record(&up, true, 3, 3));
    cr_expect_eq(up.state, LB_HEALTH_UP);
    cr_assert(lb_health_record(&down, false, 3, 3));
    cr_expect_eq(down.state, LB_HEALTH_DOWN);
    feed(&down, "+", 3, 3, states, NULL);
    cr_expect_str_eq(states, "D", "one success must not bring a DOWN server up with rise 3");
}

Test(health, fall_needs_consecutive_failures)
{
    struct lb_health_counter h = {0};
    char states[32];

    /* up, then failures interrupted by a success never reach fall=3 */
    feed(&h, "+--+--+---", 2, 3, states, NULL);
    cr_expect_str_eq(states, "UUUUUUUUUD");
    cr_expect_eq(h.failures, 3);
    cr_expect_eq(h.successes, 0);
}

Test(health, rise_needs_consecutive_successes)
{
    struct lb_health_counter h = {0};
    char states[32];

    feed(&h, "-+-++-+++", 3, 2, states, NULL);
    cr_expect_str_eq(states, "DDDDDDDDU");
    cr_expect_eq(h.successes, 3);
}

Test(health, changed_only_on_transitions)
{
    struct lb_health_counter h = {0};
    int changes = 0;

    const char *seq = "+++---+++";
    for (size_t i = 0; seq[i]; i++)
        changes += lb_health_record(&h, seq[i] == '+', 2, 2);
    /* unknown->up, up->down (2nd failure), down->up (2nd success) */
    cr_expect_eq(changes, 3);
    cr_expect_eq(h.state, LB_HEALTH_UP);
}

Test(health, names)
{
    cr_expect_str_eq(lb_health_name(LB_HEALTH_UNKNOWN), "unknown");
    cr_expect_str_eq(lb_health_name(LB_HEALTH_UP), "up");
    cr_expect_str_eq(lb_health_name(LB_HEALTH_DOWN), "down");
    cr_expect_str_eq(lb_health_name((enum lb_health)42), "unknown");
}

/* ---- passive checks through the server object --------------------------------------- */

static struct lb *one_server_lb(struct tcfg *t, uint32_t rise, uint32_t fall)
{
    tcfg_init(t);
    struct config_backend *b = tcfg_backend(t, "masters", CONFIG_BALANCE_ROUNDROBIN);
    tcfg_server(t, b, "m1", "10.0.1.10:6443");
    b->check.rise = rise;
    b->check.fall = fall;
    return t_lb_new(t, NULL);
}

Test(passive, failures_take_server_down_and_success_resets)
{
    struct tcfg t;
    struct lb *lb = one_server_lb(&t, 2, 3);
    struct lb_server *s = t_server(lb, "masters", "m1");
    char why[192];

    cr_assert_eq(lb_server_health(s), LB_HEALTH_UNKNOWN);
    cr_assert(lb_server_eligible(s), "unchecked servers are eligible");
    lb_server_report_connect(s, true, 300);
    cr_assert_eq(lb_server_health(s), LB_HEALTH_UP);
    lb_server_report_connect(s, false, 1000);
    lb_server_report_connect(s, false, 1000);
    lb_server_report_connect(s, true, 300); /* resets the failure streak */
    lb_server_report_connect(s, false, 1000);
    lb_server_report_connect(s, false, 1000);
    cr_expect_eq(lb_server_health(s), LB_HEALTH_UP);
    lb_server_report_connect(s, false, 1000);
    cr_expect_eq(lb_server_health(s), LB_HEALTH_DOWN);
    cr_expect_not(lb_server_eligible(s));
    cr_expect_null(lb_pick(lb_find_pool(lb, "masters"), NULL, 0));
    cr_expect_eq(atomic_load(&s->connect_failures), 5);
    lb_server_last_failure(s, why, sizeof(why));
    cr_expect(strstr(why, "passive") != NULL, "last failure: %s", why);
    lb_release(lb);
}

struct hammer {
    struct lb_server *s;
    int n;
};

static void *hammer_main(void *arg)
{
    struct hammer *h = arg;

    for (int i = 0; i < h->n; i++)
        lb_server_report_connect(h->s, false, 10);
    return NULL;
}

Test(passive, concurrent_reports_are_counted_exactly)
{
    struct tcfg t;
    struct lb *lb = one_server_lb(&t, 2, 3);
    struct lb_server *s = t_server(lb, "masters", "m1");
    pthread_t th[4];
    struct hammer h = {s, 2000};

    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, hammer_main, &h);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    cr_expect_eq(atomic_load(&s->connect_failures), 8000);
    cr_expect_eq(s->health.failures, 8000);
    cr_expect_eq(lb_server_health(s), LB_HEALTH_DOWN);
    lb_release(lb);
}

Test(passive, down_server_without_active_checks_is_retried_after_interval)
{
    struct tcfg t;
    tcfg_init(&t);
    struct config_backend *b = tcfg_backend(&t, "masters", CONFIG_BALANCE_ROUNDROBIN);
    tcfg_server(&t, b, "m1", "10.0.1.10:6443");
    b->check.interval_ms = 60;
    b->check.rise = 1;
    b->check.fall = 1;
    struct lb *lb = t_lb_new(&t, NULL);
    struct lb_pool *pool = lb_find_pool(lb, "masters");
    struct lb_server *s = t_server(lb, "masters", "m1");

    lb_server_report_connect(s, false, 100);
    cr_assert_eq(lb_server_health(s), LB_HEALTH_DOWN);
    cr_assert_null(lb_pick(pool, NULL, 0));
    usleep(80 * 1000);
    struct lb_server *trial = lb_pick(pool, NULL, 0);
    cr_assert_eq(trial, s, "a retry is due after the interval");
    cr_expect_null(lb_pick(pool, NULL, 0), "only one trial per interval");
    lb_server_report_connect(trial, true, 100);
    lb_server_conn_end(trial);
    cr_expect_eq(lb_server_health(s), LB_HEALTH_UP);
    struct lb_server *again = lb_pick(pool, NULL, 0);
    cr_expect_eq(again, s);
    lb_server_conn_end(again);
    lb_release(lb);
}

Test(passive, actively_checked_server_is_not_retried_passively)
{
    struct tcfg t;
    tcfg_init(&t);
    struct config_backend *b = tcfg_backend(&t, "masters", CONFIG_BALANCE_ROUNDROBIN);
    tcfg_server(&t, b, "m1", "127.0.0.1:1");
    tcfg_check(b, CONFIG_CHECK_TCP);
    b->check.interval_ms = 10000; /* the active check will not run during the test */
    struct lb *lb = t_lb_new(&t, NULL);
    struct event_base *base = event_base_new();
    struct lb_server *s = t_server(lb, "masters", "m1");

    cr_assert_eq(lb_start_checks(lb, base), 0);
    atomic_store(&s->retry_interval_ms, 10);
    lb_server_report_connect(s, false, 100);
    usleep(30 * 1000);
    cr_expect_not(lb_server_eligible(s), "active checks own the recovery");
    lb_stop_checks(lb);
    cr_expect(lb_server_eligible(s), "without checks the passive retry applies again");
    lb_release(lb);
    event_base_free(base);
}
