#include <criterion/criterion.h>

#include <string.h>

#include "lb_test.h"

static size_t index_of(struct lb_pool *pool, const struct lb_server *s)
{
    for (size_t i = 0; i < pool->n_servers; i++)
        if (pool->servers[i] == s)
            return i;
    cr_assert_fail("picked a server that is not in the pool");
    return 0;
}

/* Pick n times, releasing each connection at once; count picks per server index. */
static void pick_many(struct lb_pool *pool, int n, int *counts)
{
    memset(counts, 0, sizeof(int) * pool->n_servers);
    for (int i = 0; i < n; i++) {
        struct lb_server *s = lb_pick(pool, NULL, 0);
        cr_assert_not_null(s, "pick %d found no server", i);
        counts[index_of(pool, s)]++;
        lb_server_conn_end(s);
    }
}

static void set_down(struct lb_server *s)
{
    lb_server_report_connect(s, false, 0); /* fall 1 (from unknown, the first result decides) */
    cr_assert_eq(lb_server_health(s), LB_HEALTH_DOWN);
}

static void set_up(struct lb_server *s)
{
    lb_server_report_connect(s, true, 0);
    lb_server_report_connect(s, true, 0);
    cr_assert_eq(lb_server_health(s), LB_HEALTH_UP);
}

static struct lb *three(struct tcfg *t, enum config_balance balance, uint32_t w0, uint32_t w1,
                        uint32_t w2)
{
    tcfg_init(t);
    struct config_backend *b = tcfg_backend(t, "masters", balance);
    tcfg_server(t, b, "m1", "10.0.1.10:6443")->weight = w0;
    tcfg_server(t, b, "m2", "10.0.1.11:6443")->weight = w1;
    tcfg_server(t, b, "m3", "10.0.1.12:6443")->weight = w2;
    b->check.rise = 2;
    b->check.fall = 1;
    return t_lb_new(t, NULL);
}

/* n picks over three servers of weights w split exactly as want */
static void expect_split(enum config_balance balance, const uint32_t w[3], int n, const int want[3])
{
    struct tcfg t;
    struct lb *lb = three(&t, balance, w[0], w[1], w[2]);
    int counts[3];

    pick_many(lb_find_pool(lb, "masters"), n, counts);
    for (int i = 0; i < 3; i++)
        cr_expect_eq(counts[i], want[i], "server %d: %d picks, wanted %d", i, counts[i], want[i]);
    lb_release(lb);
}

Test(roundrobin, weights_1_2_3_over_600_picks)
{
    expect_split(CONFIG_BALANCE_ROUNDROBIN, (uint32_t[]){1, 2, 3}, 600, (int[]){100, 200, 300});
}

Test(roundrobin, smooth_interleaving)
{
    struct tcfg t;
    struct lb *lb = three(&t, CONFIG_BALANCE_ROUNDROBIN, 1, 2, 3);
    struct lb_pool *pool = lb_find_pool(lb, "masters");
    struct lb_server *prev = NULL;
    int run = 0, longest = 0;

    for (int i = 0; i < 60; i++) {
        struct lb_server *s = lb_pick(pool, NULL, 0);
        run = s == prev ? run + 1 : 1;
        longest = run > longest ? run : longest;
        prev = s;
        lb_server_conn_end(s);
    }
    /* plain weighted rr would send 3 in a row to m3; smooth rr spreads them */
    cr_expect_leq(longest, 2);
    lb_release(lb);
}

Test(roundrobin, down_server_share_goes_to_the_others)
{
    struct tcfg t;
    struct lb *lb = three(&t, CONFIG_BALANCE_ROUNDROBIN, 1, 1, 1);
    struct lb_pool *pool = lb_find_pool(lb, "masters");
    int counts[3];

    set_down(pool->servers[1]);
    pick_many(pool, 100, counts);
    cr_expect_eq(counts[1], 0);
    cr_expect_eq(counts[0], 50);
    cr_expect_eq(counts[2], 50);
    set_up(pool->servers[1]);
    pick_many(pool, 300, counts);
    cr_expect(counts[1] >= 99 && counts[1] <= 101, "m2 back in rotation: %d", counts[1]);
    lb_release(lb);
}

Test(roundrobin, drain_disabled_and_weight_zero_get_nothing)
{
    struct tcfg t;
    tcfg_init(&t);
    struct config_backend *b = tcfg_backend(&t, "masters", CONFIG_BALANCE_ROUNDROBIN);
    tcfg_server(&t, b, "m1", "10.0.1.10:6443")->state = CONFIG_SERVER_DRAIN;
    tcfg_server(&t, b, "m2", "10.0.1.11:6443")->state = CONFIG_SERVER_DISABLED;
    tcfg_server(&t, b, "m3", "10.0.1.12:6443")->weight = 0;
    tcfg_server(&t, b, "m4", "10.0.1.13:6443");
    struct lb *lb = t_lb_new(&t, NULL);
    struct lb_pool *pool = lb_find_pool(lb, "masters");
    int counts[4];

    pick_many(pool, 50, counts);
    cr_expect_eq(counts[3], 50);
    atomic_store(&pool->servers[3]->admin_state, CONFIG_SERVER_DRAIN);
    cr_expect_null(lb_pick(pool, NULL, 0), "nothing eligible: no server");
    cr_expect_not(lb_any_server_up(lb));
    lb_release(lb);
}

Test(roundrobin, exclude_list)
{
    struct tcfg t;
    struct lb *lb = three(&t, CONFIG_BALANCE_ROUNDROBIN, 1, 1, 1);
    struct lb_pool *pool = lb_find_pool(lb, "masters");
    struct lb_server *ex[2] = {pool->servers[0], pool->servers[2]};

    for (int i = 0; i < 20; i++) {
        struct lb_server *s = lb_pick(pool, ex, 2);
        cr_assert_eq(s, pool->servers[1]);
        lb_server_conn_end(s);
    }
    struct lb_server *all[3] = {pool->servers[0], pool->servers[1], pool->servers[2]};
    cr_expect_null(lb_pick(pool, all, 3));
    lb_release(lb);
}

Test(backup, used_only_when_all_primaries_are_down)
{
    struct tcfg t;
    tcfg_init(&t);
    struct config_backend *b = tcfg_backend(&t, "masters", CONFIG_BALANCE_ROUNDROBIN);
    tcfg_server(&t, b, "p1", "10.0.1.10:6443");
    tcfg_server(&t, b, "p2", "10.0.1.11:6443");
    tcfg_server(&t, b, "b1", "10.0.1.12:6443")->backup = true;
    struct lb *lb = t_lb_new(&t, NULL);
    struct lb_pool *pool = lb_find_pool(lb, "masters");
    int counts[3];

    pick_many(pool, 40, counts);
    cr_expect_eq(counts[2], 0);
    set_down(pool->servers[0]);
    pick_many(pool, 40, counts);
    cr_expect_eq(counts[1], 40, "one primary left: it gets everything");
    /* a retry that already tried the last primary reaches the backup */
    struct lb_server *ex = pool->servers[1];
    struct lb_server *s = lb_pick(pool, &ex, 1);
    cr_expect_eq(s, pool->servers[2]);
    lb_server_conn_end(s);
    set_down(pool->servers[1]);
    pick_many(pool, 40, counts);
    cr_expect_eq(counts[2], 40);
    cr_expect(lb_any_server_up(lb));
    lb_release(lb);
}

Test(leastconn, fewest_active_connections_per_weight)
{
    struct tcfg t;
    struct lb *lb = three(&t, CONFIG_BALANCE_LEASTCONN, 1, 1, 2);
    struct lb_pool *pool = lb_find_pool(lb, "masters");
    struct lb_server *held[8];
    int counts[3] = {0};

    for (int i = 0; i < 8; i++) {
        held[i] = lb_pick(pool, NULL, 0);
        counts[index_of(pool, held[i])]++;
    }
    /* weight 2 carries twice the connections */
    cr_expect_eq(counts[0], 2);
    cr_expect_eq(counts[1], 2);
    cr_expect_eq(counts[2], 4);
    cr_expect_eq(atomic_load(&pool->servers[2]->active_conns), 4);
    /* end both of m1's connections: the next two go to m1 */
    for (int i = 0; i < 8; i++)
        if (held[i] == pool->servers[0]) {
            lb_server_conn_end(held[i]);
            held[i] = NULL;
        }
    for (int i = 0; i < 8; i++) {
        if (held[i])
            continue;
        held[i] = lb_pick(pool, NULL, 0);
        cr_expect_eq(held[i], pool->servers[0]);
    }
    for (int i = 0; i < 8; i++)
        lb_server_conn_end(held[i]);
    cr_expect_eq(atomic_load(&pool->servers[0]->active_conns), 0);
    lb_release(lb);
}

Test(leastconn, ties_go_round_robin)
{
    expect_split(CONFIG_BALANCE_LEASTCONN, (uint32_t[]){1, 1, 1}, 300, (int[]){100, 100, 100});
    /* connections end at once, so weight does not matter: every pick is a tie */
    expect_split(CONFIG_BALANCE_LEASTCONN, (uint32_t[]){1, 1, 3}, 300, (int[]){100, 100, 100});
}

Test(local_first, prefers_local_and_fails_over_to_the_others)
{
    struct tcfg t;
    tcfg_init(&t);
    struct config_backend *b = tcfg_backend(&t, "masters", CONFIG_BALANCE_LOCAL_FIRST);
    tcfg_server(&t, b, "m2", "10.0.1.11:6443");
    tcfg_server(&t, b, "m1", "10.0.1.10:6443")->local = true;
    tcfg_server(&t, b, "m3", "10.0.1.12:6443");
    b->check.rise = 1;
    struct lb *lb = t_lb_new(&t, NULL);
    struct lb_pool *pool = lb_find_pool(lb, "masters");
    struct lb_server *local = t_server(lb, "masters", "m1");
    int counts[3];

    pick_many(pool, 30, counts);
    cr_expect_eq(counts[1], 30, "the local apiserver takes everything while healthy");
    set_down(local);
    pick_many(pool, 30, counts);
    cr_expect_eq(counts[1], 0);
    cr_expect_eq(counts[0], 15);
    cr_expect_eq(counts[2], 15);
    /* retrying after the local one failed goes elsewhere, even while it is still up */
    lb_server_report_connect(local, true, 0);
    struct lb_server *s = lb_pick(pool, &local, 1);
    cr_expect_neq(s, local);
    lb_server_conn_end(s);
    pick_many(pool, 10, counts);
    cr_expect_eq(counts[1], 10, "back to local once it is up");
    lb_release(lb);
}

Test(pick, empty_and_unknown_pools)
{
    struct tcfg t;
    tcfg_init(&t);
    tcfg_backend(&t, "empty", CONFIG_BALANCE_ROUNDROBIN);
    struct lb *lb = t_lb_new(&t, NULL);

    cr_expect_null(lb_find_pool(lb, "nope"));
    cr_expect_null(lb_pick(lb_find_pool(lb, "empty"), NULL, 0));
    cr_expect_eq(lb_pool_connect_retries(lb_find_pool(lb, "empty")), 2);
    cr_expect_not(lb_any_server_up(lb));
    lb_release(lb);
}

Test(pick, server_accessors)
{
    struct tcfg t;
    tcfg_init(&t);
    struct config_backend *b = tcfg_backend(&t, "masters", CONFIG_BALANCE_ROUNDROBIN);
    tcfg_server(&t, b, "m6", "[fd00::6]:6443");
    tcfg_server(&t, b, "lo", "localhost:6443");
    struct lb *lb = t_lb_new(&t, NULL);
    struct lb_server *s = t_server(lb, "masters", "m6");
    socklen_t len;
    char buf[64];

    cr_expect_str_eq(lb_server_label(s), "masters/m6");
    const struct sockaddr *sa = lb_server_addr(s, &len);
    cr_expect_str_eq(kf_addr_format(sa, buf, sizeof(buf)), "[fd00::6]:6443");
    sa = lb_server_addr(t_server(lb, "masters", "lo"), &len);
    cr_expect(sa->sa_family == AF_INET || sa->sa_family == AF_INET6, "localhost resolved");
    lb_release(lb);
}

/* ---- reload ------------------------------------------------------------------------- */

Test(reload, same_servers_carry_over)
{
    struct tcfg t1, t2;
    tcfg_init(&t1);
    struct config_backend *b = tcfg_backend(&t1, "masters", CONFIG_BALANCE_ROUNDROBIN);
    tcfg_server(&t1, b, "m1", "10.0.1.10:6443");
    tcfg_server(&t1, b, "m2", "10.0.1.11:6443");
    tcfg_server(&t1, b, "m3", "10.0.1.12:6443");
    struct lb *lb1 = t_lb_new(&t1, NULL);
    struct lb_server *m1 = t_server(lb1, "masters", "m1");
    struct lb_server *m2 = t_server(lb1, "masters", "m2");
    struct lb_server *m3 = t_server(lb1, "masters", "m3");
    struct lb_server *exclude[2] = {m1, m3};
    struct lb_server *held = lb_pick(lb_find_pool(lb1, "masters"), exclude, 2);

    cr_assert_eq(held, m2);
    lb_server_add_bytes(m1, 10, 20);
    set_down(m3);

    /* new config: m1 same (weight changed), m2 moved address, m3 same, m4 new */
    tcfg_init(&t2);
    b = tcfg_backend(&t2, "masters", CONFIG_BALANCE_LEASTCONN);
    tcfg_server(&t2, b, "m1", "10.0.1.10:6443")->weight = 5;
    tcfg_server(&t2, b, "m2", "10.0.1.21:6443");
    tcfg_server(&t2, b, "m3", "10.0.1.12:6443");
    tcfg_server(&t2, b, "m4", "10.0.1.13:6443");
    struct lb *lb2 = t_lb_new(&t2, lb1);

    cr_expect_eq(t_server(lb2, "masters", "m1"), m1, "same object");
    cr_expect_eq(t_server(lb2, "masters", "m3"), m3);
    cr_expect_neq(t_server(lb2, "masters", "m2"), m2, "new address, new server");
    cr_expect_eq(atomic_load(&m1->weight), 5);
    cr_expect_eq(atomic_load(&m1->bytes_from), 20, "counters carry over");
    cr_expect_eq(lb_server_health(m3), LB_HEALTH_DOWN, "health carries over");

    /* the old lb goes; m2 lives on while its connection does */
    lb_release(lb1);
    cr_expect_str_eq(lb_server_label(held), "masters/m2");
    cr_expect_eq(atomic_load(&held->active_conns), 1);
    lb_server_report_connect(held, true, 100);
    lb_server_add_bytes(held, 1, 1);
    lb_server_conn_end(held); /* frees it: sanitizer builds catch misuse */
    lb_release(lb2);
}

Test(reload, tcfg_can_be_freed_after_lb_new)
{
    struct tcfg *t = malloc(sizeof(*t));
    char *name = strdup("masters"), *sname = strdup("m1"), *addr = strdup("10.0.1.10:6443");

    tcfg_init(t);
    struct config_backend *b = tcfg_backend(t, name, CONFIG_BALANCE_ROUNDROBIN);
    tcfg_server(t, b, sname, addr);
    struct lb *lb = t_lb_new(t, NULL);
    memset(t, 0xa5, sizeof(*t));
    free(t);
    free(name);
    free(sname);
    free(addr);
    struct lb_pool *pool = lb_find_pool(lb, "masters");
    cr_assert_not_null(pool);
    struct lb_server *s = lb_pick(pool, NULL, 0);
    cr_expect_str_eq(lb_server_label(s), "masters/m1");
    lb_server_conn_end(s);
    lb_release(lb);
}

Test(config_errors, bad_server_and_tls_settings_are_diagnosed)
{
    struct tcfg t;
    struct config_diags diags = {0};
    tcfg_init(&t);
    struct config_backend *b = tcfg_backend(&t, "masters", CONFIG_BALANCE_ROUNDROBIN);
    struct config_server *s = tcfg_server(&t, b, "m1", "no-port-here");
    s->loc.line = 7;

    cr_expect_null(lb_new(&t.cfg, NULL, &diags));
    cr_assert_eq(diags.n_errors, 1);
    cr_expect_eq(diags.items[0].line, 7);
    cr_expect(strstr(diags.items[0].message, "m1") != NULL, "%s", diags.items[0].message);

    s->address = "host.invalid:6443";
    memset(&diags, 0, sizeof(diags));
    cr_expect_null(lb_new(&t.cfg, NULL, &diags));
    cr_expect(strstr(diags.items[0].message, "resolve") != NULL, "%s", diags.items[0].message);

    s->address = "10.0.1.10:6443";
    tcfg_check(b, CONFIG_CHECK_HTTPS);
    b->check.tls.ca_file = "/nonexistent/ca.pem";
    memset(&diags, 0, sizeof(diags));
    cr_expect_null(lb_new(&t.cfg, NULL, &diags));
    cr_expect(strstr(diags.items[0].message, "/nonexistent/ca.pem") != NULL, "%s",
              diags.items[0].message);

    b->check.tls.ca_file = NULL;
    b->check.tls.cert_file = "/nonexistent/cert.pem";
    memset(&diags, 0, sizeof(diags));
    cr_expect_null(lb_new(&t.cfg, NULL, &diags));
    cr_expect(strstr(diags.items[0].message, "key_file") != NULL, "%s", diags.items[0].message);

    b->check.tls.cert_file = NULL;
    b->check.path = "/readyz HTTP/1.1\r\nX-Injected: 1";
    memset(&diags, 0, sizeof(diags));
    cr_expect_null(lb_new(&t.cfg, NULL, &diags));
    cr_expect_eq(diags.n_errors, 1);
    cr_expect_null(lb_new(&t.cfg, NULL, NULL), "no diags: still refused, no crash");
}
