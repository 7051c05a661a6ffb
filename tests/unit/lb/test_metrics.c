#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "lb_test.h"

static char *render(struct lb *lb)
{
    struct evbuffer *out = evbuffer_new();
    size_t len;
    char *text;

    lb_metrics_write(lb, out);
    len = evbuffer_get_length(out);
    text = malloc(len + 1);
    evbuffer_remove(out, text, len);
    text[len] = '\0';
    evbuffer_free(out);
    return text;
}

static int count(const char *text, const char *needle)
{
    int n = 0;

    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static const char *const families[] = {
    "kfront_backend_up",
    "kfront_backend_health_state",
    "kfront_backend_admin_state",
    "kfront_backend_active_connections",
    "kfront_backend_connections_total",
    "kfront_backend_connect_failures_total",
    "kfront_backend_bytes_sent_total",
    "kfront_backend_bytes_received_total",
    "kfront_backend_checks_total",
    "kfront_backend_check_duration_seconds",
    "kfront_backend_connect_duration_seconds",
};

static struct lb *two_backends(struct tcfg *t)
{
    tcfg_init(t);
    struct config_backend *a = tcfg_backend(t, "masters", CONFIG_BALANCE_ROUNDROBIN);
    tcfg_server(t, a, "m1", "10.0.1.10:6443");
    tcfg_server(t, a, "m2", "10.0.1.11:6443")->state = CONFIG_SERVER_DRAIN;
    struct config_backend *b = tcfg_backend(t, "other", CONFIG_BALANCE_LEASTCONN);
    tcfg_server(t, b, "we\"ird", "10.0.2.10:6443");
    return t_lb_new(t, NULL);
}

Test(metrics, every_family_once_with_help_and_type)
{
    struct tcfg t;
    struct lb *lb = two_backends(&t);
    char *text = render(lb);
    char needle[128];

    for (size_t i = 0; i < KF_ARRAY_SIZE(families); i++) {
        snprintf(needle, sizeof(needle), "# TYPE %s ", families[i]);
        cr_expect_eq(count(text, needle), 1, "%s", needle);
        snprintf(needle, sizeof(needle), "# HELP %s ", families[i]);
        cr_expect_eq(count(text, needle), 1, "%s", needle);
    }
    cr_expect(strstr(text, "# TYPE kfront_backend_check_duration_seconds histogram\n"));
    cr_expect(strstr(text, "# TYPE kfront_backend_connections_total counter\n"));
    cr_expect(strstr(text, "kfront_backend_up{backend=\"masters\",server=\"m1\"} 1\n"));
    cr_expect(strstr(text, "kfront_backend_up{backend=\"masters\",server=\"m2\"} 1\n"),
              "drained but not down");
    cr_expect(strstr(text, "server=\"we\\\"ird\""), "label values are escaped");
    cr_expect(strstr(text, "kfront_backend_admin_state{backend=\"masters\",server=\"m2\","
                           "state=\"drain\"} 1\n"));
    cr_expect(strstr(text, "kfront_backend_health_state{backend=\"masters\",server=\"m1\","
                           "state=\"unknown\"} 1\n"));
    free(text);
    lb_release(lb);
}

Test(metrics, values_follow_the_counters)
{
    struct tcfg t;
    struct lb *lb = two_backends(&t);
    struct lb_server *m1 = t_server(lb, "masters", "m1");
    struct lb_server *held = lb_pick(lb_find_pool(lb, "masters"), NULL, 0);

    cr_assert_eq(held, m1);
    lb_server_add_bytes(m1, 1234, 56789);
    lb_server_report_connect(m1, true, 700);     /* 0.7 ms: in the 0.001 bucket */
    lb_server_report_connect(m1, true, 3000000); /* 3 s: in the 5 bucket */
    lb_server_report_connect(m1, false, 5000);
    lb_server_report_connect(t_server(lb, "masters", "m2"), false, 5000);
    char *text = render(lb);

#define M1 "{backend=\"masters\",server=\"m1\""
    cr_expect(strstr(text, "kfront_backend_active_connections" M1 "} 1\n"));
    cr_expect(strstr(text, "kfront_backend_connections_total" M1 "} 1\n"));
    cr_expect(strstr(text, "kfront_backend_connect_failures_total" M1 "} 1\n"));
    cr_expect(strstr(text, "kfront_backend_bytes_sent_total" M1 "} 1234\n"));
    cr_expect(strstr(text, "kfront_backend_bytes_received_total" M1 "} 56789\n"));
    /* one failure after a success: still up with the default fall of 3 */
    cr_expect(strstr(text, "kfront_backend_health_state" M1 ",state=\"up\"} 1\n"));
    cr_expect(strstr(text, "kfront_backend_health_state" M1 ",state=\"down\"} 0\n"));
    cr_expect(
        strstr(text, "kfront_backend_connect_duration_seconds_bucket" M1 ",le=\"0.0005\"} 0\n"));
    cr_expect(
        strstr(text, "kfront_backend_connect_duration_seconds_bucket" M1 ",le=\"0.001\"} 1\n"));
    cr_expect(strstr(text, "kfront_backend_connect_duration_seconds_bucket" M1 ",le=\"2.5\"} 1\n"));
    cr_expect(strstr(text, "kfront_backend_connect_duration_seconds_bucket" M1 ",le=\"5\"} 2\n"));
    cr_expect(
        strstr(text, "kfront_backend_connect_duration_seconds_bucket" M1 ",le=\"+Inf\"} 2\n"));
    cr_expect(strstr(text, "kfront_backend_connect_duration_seconds_count" M1 "} 2\n"));
    cr_expect(strstr(text, "kfront_backend_connect_duration_seconds_sum" M1 "} 3.000700\n"));
    cr_expect(strstr(text, "kfront_backend_checks_total" M1 ",result=\"failure\"} 0\n"));
    cr_expect(strstr(text, "kfront_backend_up{backend=\"masters\",server=\"m2\"} 0\n"));
#undef M1
    free(text);
    lb_server_conn_end(held);
    lb_release(lb);
}
