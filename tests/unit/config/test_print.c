/* config_print_yaml: what it writes, and that loading it gives the same config. */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

/* print -> parse -> print must give the same text; returns the first print. */
static char *roundtrip(struct config *cfg)
{
    char *first = print_yaml(cfg), *second;
    struct config *again;

    again = parse_yaml(first);
    cr_assert_not_null(again, "printed YAML does not load:\n%s\n%s", first, diags_text());
    second = print_yaml(again);
    cr_expect_str_eq(second, first);
    cr_expect_eq(again->n_frontends, cfg->n_frontends);
    cr_expect_eq(again->n_backends, cfg->n_backends);
    free(second);
    config_free(again);
    return first;
}

/* Every string of a NULL-terminated list must appear in text. */
static void expect_all(const char *text, ...)
{
    va_list ap;

    va_start(ap, text);
    for (const char *needle = va_arg(ap, const char *); needle; needle = va_arg(ap, const char *))
        cr_expect(strstr(text, needle), "missing \"%s\" in:\n%s", needle, text);
    va_end(ap);
}

Test(print, haproxy_import_as_yaml)
{
    struct config *cfg = parse_haproxy(masters_cfg);
    char *text;

    cr_assert_not_null(cfg, "%s", diags_text());
    text = roundtrip(cfg);
    cr_expect_str_eq(text, "apiVersion: kfront.io/v1alpha1\n"
                           "kind: KfrontConfiguration\n"
                           "workers: 0\n"
                           "maxConnections: 50000\n"
                           "logLevel: info\n"
                           "admin:\n"
                           "  listen: \"127.0.0.1:9445\"\n"
                           "timeouts:\n"
                           "  connect: 5s\n"
                           "  clientHello: 10s\n"
                           "  client: 50s\n"
                           "  server: 50s\n"
                           "  tunnel: 0s\n"
                           "  drain: 30s\n"
                           "  request: 1m\n"
                           "frontends:\n"
                           "  - name: kube-apiserver\n"
                           "    listen: [\"*:6443\"]\n"
                           "    mode: tcp\n"
                           "    backend: kube-apiserver-backend\n"
                           "    maxConnections: 0\n"
                           "backends:\n"
                           "  - name: kube-apiserver-backend\n"
                           "    balance: roundrobin\n"
                           "    connectRetries: 3\n"
                           "    healthCheck:\n"
                           "      type: tcp\n"
                           "      path: /readyz\n"
                           "      expectStatus: 200\n"
                           "      interval: 2s\n"
                           "      timeout: 2s\n"
                           "      rise: 2\n"
                           "      fall: 3\n"
                           "      tls:\n"
                           "        insecureSkipVerify: false\n"
                           "    servers:\n"
                           "      - name: master1\n"
                           "        address: \"10.0.1.10:6443\"\n"
                           "        weight: 1\n"
                           "        backup: false\n"
                           "        local: false\n"
                           "        state: active\n"
                           "        check: true\n"
                           "      - name: master2\n"
                           "        address: \"10.0.1.11:6443\"\n"
                           "        weight: 1\n"
                           "        backup: false\n"
                           "        local: false\n"
                           "        state: active\n"
                           "        check: true\n"
                           "      - name: master3\n"
                           "        address: \"10.0.1.12:6443\"\n"
                           "        weight: 1\n"
                           "        backup: false\n"
                           "        local: false\n"
                           "        state: active\n"
                           "        check: true\n");
    free(text);
    config_free(cfg);
}

/* tunnel is a haproxy time: one number and one unit */
#define TLS_CFG(tunnel)                                                                            \
    "global\n  nbthread 2\n  hard-stop-after 90s\n"                                                \
    "defaults\n  timeout connect 1500\n  timeout tunnel " tunnel "\n  timeout check 1s\n"          \
    "listen api\n  bind 0.0.0.0:6443,[::]:6443\n  balance leastconn\n"                             \
    "  option httpchk GET /readyz\n  http-check expect status 204\n"                               \
    "  server m1 10.0.1.10:6443 check check-ssl ca-file /ca.pem crt /c.pem sni str(k8s)\n"         \
    "  server m2 m2.example:6443 check check-ssl ca-file /ca.pem crt /c.pem sni str(k8s) "         \
    "backup weight 0\n"                                                                            \
    "  server m3 10.0.1.12:6443 disabled\n"

Test(print, haproxy_with_tls_checks_roundtrips)
{
    struct config *cfg = parse_haproxy(TLS_CFG("1h2m"));
    char *text;

    cr_assert_null(cfg, "haproxy times have one unit: 1h2m is refused");
    cr_expect_str_eq(diag(0), "haproxy.cfg:6:18: error: 'tunnel' expects a time such as 5000 "
                              "(ms), 5s, 1m (units us, ms, s, m, h, d), got '1h2m'");

    cfg = parse_haproxy(TLS_CFG("62m"));
    cr_assert_not_null(cfg, "%s", diags_text());
    text = roundtrip(cfg);
    expect_all(text, "workers: 2\n", "  connect: 1500ms\n  clientHello: 10s\n",
               "  tunnel: 1h2m\n  drain: 1m30s\n",
               "    listen: [\"0.0.0.0:6443\", \"[::]:6443\"]\n",
               "      type: https\n      path: /readyz\n      expectStatus: 204\n"
               "      interval: 2s\n      timeout: 2500ms\n",
               "      tls:\n        caFile: /ca.pem\n        certFile: /c.pem\n"
               "        keyFile: /c.pem\n        serverName: k8s\n"
               "        insecureSkipVerify: false\n",
               "        weight: 0\n        backup: true\n",
               "        state: disabled\n        check: false\n", NULL);
    free(text);
    config_free(cfg);
}

Test(print, every_yaml_field_roundtrips)
{
    struct config *cfg = parse_yaml(
        YAML_HEAD
        "workers: 3\nmaxConnections: 7\nlogLevel: warn\nadmin: {listen: \"\"}\n"
        "identity: {mode: impersonate, tokenCacheTTL: 1m}\n"
        "authorization: {allowTTL: 90s, denyTTL: 1500ms, nodeAllowTTL: 3s, nodeDenyTTL: 0s,"
        " cacheSize: 3, resourceWideAllow: false, user: kf}\n"
        "timeouts: {connect: 1ms, clientHello: 0s, client: 1h, server: 61s, tunnel: 2h1s,"
        " drain: 0s, request: 90s}\n"
        "frontends:\n"
        "  - {name: a, listen: [\"[::1]:1\"], mode: http, backend: b, maxConnections: 5,\n"
        "     tls: {certFile: /s.crt, keyFile: /s.key, clientCAFile: /ca.crt,\n"
        "           sniCertificates: [{certFile: /a.crt, keyFile: /a.key, names: [a.x, "
        "\"*.a.x\"]},\n"
        "                             {certFile: /b.crt}]},\n"
        "     goawayChance: 0.02, maxConcurrentStreams: 7}\n"
        "backends:\n"
        "  - name: b\n"
        "    balance: local-first\n"
        "    connectRetries: 0\n"
        "    healthCheck: {type: none, path: /x, expectStatus: 599, interval: 1ms, "
        "timeout: 1ms, rise: 9, fall: 8, tls: {serverName: n, insecureSkipVerify: true}}\n"
        "    upstreamTLS: {caFile: /ca.crt, certFile: /k.crt, keyFile: /k.key}\n"
        "    servers: [{name: s, address: \"h.example:1\", weight: 256, backup: true, "
        "local: true, state: drain, check: false}]\n");
    char *text;

    cr_assert_not_null(cfg, "%s", diags_text());
    text = roundtrip(cfg);
    expect_all(
        text, "admin:\n  listen: \"\"\n", "  tunnel: 2h1s\n", "logLevel: warn\n",
        "    balance: local-first\n", "identity:\n  mode: impersonate\n",
        "authorization:\n  allowTTL: 1m30s\n  denyTTL: 1500ms\n  nodeAllowTTL: 3s\n"
        "  nodeDenyTTL: 0s\n  cacheSize: 3\n  resourceWideAllow: false\n"
        "  user: kf\n",
        "    goawayChance: 0.02\n", "    maxConcurrentStreams: 7\n",
        "      clientCAFile: /ca.crt\n", "    upstreamTLS:\n      caFile: /ca.crt\n",
        "  request: 1m30s\n",
        "      sniCertificates:\n        - certFile: /a.crt\n          keyFile: /a.key\n"
        "          names: [a.x, \"*.a.x\"]\n        - certFile: /b.crt\n          names: []\n",
        NULL);
    free(text);
    config_free(cfg);
}

Test(print, strings_yaml_would_misread_are_quoted)
{
    struct config *cfg = parse_yaml(
        YAML_HEAD
        "frontends:\n"
        "  - {name: \"null\", listen: \"0.0.0.0:1\", backend: \"123\"}\n"
        "  - {name: \"a \\\"b\\\" \\\\ c\\t\", listen: \"0.0.0.0:2\", backend: \"123\"}\n"
        "  - {name: \"yes\", listen: \"0.0.0.0:3\", backend: \"123\"}\n"
        "  - {name: \"#x\", listen: \"0.0.0.0:4\", backend: \"123\"}\n"
        "backends: [{name: \"123\", servers: [{name: \"true\", address: \"10.0.0.1:1\"}]}]\n");
    char *text;

    cr_assert_not_null(cfg, "%s", diags_text());
    text = roundtrip(cfg);
    expect_all(text, "  - name: \"null\"\n", "  - name: \"a \\\"b\\\" \\\\ c\\x09\"\n",
               "  - name: \"yes\"\n", "  - name: \"#x\"\n", "    backend: \"123\"\n",
               "      - name: \"true\"\n", NULL);
    cr_expect_str_eq(cfg->frontends[1].name, "a \"b\" \\ c\t");
    free(text);
    config_free(cfg);
}

Test(print, an_empty_default_config)
{
    struct config *cfg = config_new_default();
    char *text = print_yaml(cfg);

    expect_all(text, "frontends: []\nbackends: []\n", NULL);
    /* it loads, but validation wants a frontend */
    cr_expect_null(parse_yaml(text));
    cr_expect_str_eq(diag(0), "kfront.yaml: error: frontends: at least one frontend is required");
    free(text);
    config_free(cfg);
}

Test(print, write_errors_are_reported)
{
    struct config *cfg = config_new_default();
    FILE *f = fopen("/dev/null", "r");

    cr_assert_not_null(f);
    cr_expect_eq(config_print_yaml(cfg, f), -EIO);
    fclose(f);
    config_free(cfg);
}
