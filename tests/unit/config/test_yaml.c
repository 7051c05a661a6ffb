/* The native YAML loader: configs that load, every field, defaults. */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

static const char full[] =
    "apiVersion: kfront.io/v1alpha1\n"
    "kind: KfrontConfiguration\n"
    "workers: 4            # 0 = one per core\n"
    "maxConnections: 20000\n"
    "logLevel: debug\n"
    "identity:\n"
    "  mode: front-proxy\n"
    "  proxyClientCertFile: /etc/k/front-proxy-client.crt\n"
    "  proxyClientKeyFile: /etc/k/front-proxy-client.key\n"
    "  tokenCacheTTL: 30s\n"
    "admin:\n"
    "  listen: 127.0.0.1:9500\n"
    "timeouts:\n"
    "  connect: 3s\n"
    "  clientHello: 1500ms\n"
    "  client: 1m30s\n"
    "  server: 2m\n"
    "  tunnel: 1h\n"
    "  drain: 45s\n"
    "frontends:\n"
    "  - name: kube-apiserver\n"
    "    listen: [\"0.0.0.0:6443\", \"[::]:6443\"]\n"
    "    mode: http\n"
    "    backend: masters\n"
    "    maxConnections: 1000\n"
    "    tls: {certFile: /etc/k/apiserver.crt, keyFile: /etc/k/apiserver.key,\n"
    "          clientCAFile: /etc/k/ca.crt}\n"
    "    goawayChance: 0.001\n"
    "    maxConcurrentStreams: 250\n"
    "  - name: local\n"
    "    listen: 127.0.0.1:7443\n"
    "    backend: masters\n"
    "backends:\n"
    "  - name: masters\n"
    "    balance: local-first\n"
    "    connectRetries: 5\n"
    "    healthCheck:\n"
    "      type: https\n"
    "      path: /livez\n"
    "      expectStatus: 204\n"
    "      interval: 3s\n"
    "      timeout: 500ms\n"
    "      rise: 4\n"
    "      fall: 5\n"
    "      tls: {caFile: /etc/k/ca.crt, certFile: /etc/k/c.crt, keyFile: /etc/k/c.key,\n"
    "            serverName: kubernetes, insecureSkipVerify: false}\n"
    "    upstreamTLS: {caFile: /etc/k/ca.crt, serverName: kubernetes}\n"
    "    servers:\n"
    "      - {name: m1, address: \"10.0.1.10:6443\", weight: 0, backup: false, local: true,\n"
    "         state: drain, check: false}\n"
    "      - name: m2\n"
    "        address: \"[fd00::2]:6443\"\n"
    "        weight: 256\n"
    "        backup: true\n"
    "        state: disabled\n"
    "      - name: m3\n"
    "        address: m3.example.com:6443\n"
    "authorization:\n"
    "  allowTTL: 2m\n"
    "  denyTTL: 5s\n"
    "  cacheSize: 500\n"
    "  user: system:kfront-test\n";

Test(yaml, every_field)
{
    struct config *cfg = parse_yaml(full);

    cr_assert_not_null(cfg, "%s", diags_text());
    cr_expect_eq(test_diags.n, 0, "%s", diags_text());
    cr_expect_str_eq(cfg->source, "kfront.yaml");
    cr_expect_eq(cfg->workers, 4);
    cr_expect_eq(cfg->maxconn, 20000);
    cr_expect_eq(cfg->log_level, KF_LOG_DEBUG);
    cr_expect_eq(cfg->identity.mode, CONFIG_IDENTITY_FRONT_PROXY);
    cr_expect_str_eq(cfg->identity.proxy_client_key_file, "/etc/k/front-proxy-client.key");
    cr_expect_eq(cfg->identity.token_cache_ttl_ms, 30000);
    cr_expect_eq(cfg->authorization.allow_ttl_ms, 120000);
    cr_expect_eq(cfg->authorization.deny_ttl_ms, 5000);
    cr_expect_eq(cfg->authorization.cache_size, 500);
    cr_expect_str_eq(cfg->authorization.user, "system:kfront-test");
    cr_expect_str_eq(cfg->frontends[0].tls.client_ca_file, "/etc/k/ca.crt");
    cr_expect_eq(cfg->frontends[0].goaway_chance_ppm, 1000);
    cr_expect_eq(cfg->frontends[0].max_concurrent_streams, 250);
    cr_expect_eq(cfg->frontends[1].max_concurrent_streams, 100);
    cr_expect_str_eq(cfg->backends[0].upstream_tls.server_name, "kubernetes");
    cr_expect_str_eq(cfg->admin.listen, "127.0.0.1:9500");
    cr_expect_eq(cfg->timeouts.connect_ms, 3000);
    cr_expect_eq(cfg->timeouts.client_hello_ms, 1500);
    cr_expect_eq(cfg->timeouts.client_ms, 90000);
    cr_expect_eq(cfg->timeouts.server_ms, 120000);
    cr_expect_eq(cfg->timeouts.tunnel_ms, 3600000);
    cr_expect_eq(cfg->timeouts.drain_ms, 45000);

    cr_assert_eq(cfg->n_frontends, 2);
    const struct config_frontend *fe = &cfg->frontends[0];
    cr_expect_str_eq(fe->name, "kube-apiserver");
    cr_assert_eq(fe->n_listen, 2);
    cr_expect_str_eq(fe->listen[0], "0.0.0.0:6443");
    cr_expect_str_eq(fe->listen[1], "[::]:6443");
    cr_expect_eq(fe->listen_locs[1].line, 22);
    cr_expect_eq(fe->listen_locs[1].column, 30);
    cr_expect_eq(fe->mode, CONFIG_MODE_HTTP);
    cr_expect_str_eq(fe->backend, "masters");
    cr_expect_eq(fe->backend_loc.line, 24);
    cr_expect_eq(fe->backend_loc.column, 14);
    cr_expect_eq(fe->maxconn, 1000);
    cr_expect_eq(fe->loc.line, 21);
    cr_expect_eq(fe->loc.column, 5);
    /* a single string is accepted for listen */
    cr_assert_eq(cfg->frontends[1].n_listen, 1);
    cr_expect_str_eq(cfg->frontends[1].listen[0], "127.0.0.1:7443");
    cr_expect_eq(cfg->frontends[1].mode, CONFIG_MODE_TCP);

    cr_assert_eq(cfg->n_backends, 1);
    const struct config_backend *be = config_find_backend(cfg, "masters");
    cr_assert_eq(be, &cfg->backends[0]);
    cr_expect_eq(be->balance, CONFIG_BALANCE_LOCAL_FIRST);
    cr_expect_eq(be->connect_retries, 5);
    cr_expect_eq(be->check.type, CONFIG_CHECK_HTTPS);
    cr_expect_str_eq(be->check.path, "/livez");
    cr_expect_eq(be->check.expect_status, 204);
    cr_expect_eq(be->check.interval_ms, 3000);
    cr_expect_eq(be->check.timeout_ms, 500);
    cr_expect_eq(be->check.rise, 4);
    cr_expect_eq(be->check.fall, 5);
    cr_expect_eq(be->check.loc.line, 38);
    cr_expect_str_eq(be->check.tls.ca_file, "/etc/k/ca.crt");
    cr_expect_str_eq(be->check.tls.cert_file, "/etc/k/c.crt");
    cr_expect_str_eq(be->check.tls.key_file, "/etc/k/c.key");
    cr_expect_str_eq(be->check.tls.server_name, "kubernetes");
    cr_expect_not(be->check.tls.insecure_skip_verify);
    cr_expect_eq(be->check.tls.loc.line, 45);
    cr_expect_eq(be->check.tls.loc.column, 12);

    cr_assert_eq(be->n_servers, 3);
    const struct config_server *s = be->servers;
    cr_expect_str_eq(s[0].name, "m1");
    cr_expect_str_eq(s[0].address, "10.0.1.10:6443");
    cr_expect_eq(s[0].address_loc.line, 49);
    cr_expect_eq(s[0].address_loc.column, 29);
    cr_expect_eq(s[0].weight, 0);
    cr_expect(s[0].local);
    cr_expect_not(s[0].backup);
    cr_expect_eq(s[0].state, CONFIG_SERVER_DRAIN);
    cr_expect_not(s[0].check);
    cr_expect_str_eq(s[1].address, "[fd00::2]:6443");
    cr_expect_eq(s[1].weight, 256);
    cr_expect(s[1].backup);
    cr_expect_eq(s[1].state, CONFIG_SERVER_DISABLED);
    cr_expect_eq(s[1].loc.line, 51);
    cr_expect_str_eq(s[2].address, "m3.example.com:6443");
    cr_expect_eq(s[2].weight, 1);
    cr_expect(s[2].check);
    cr_expect_eq(s[2].state, CONFIG_SERVER_ACTIVE);
    config_free(cfg);
}

Test(yaml, defaults_of_a_minimal_config)
{
    struct config *cfg = parse_yaml(YAML_MIN);

    cr_assert_not_null(cfg, "%s", diags_text());
    cr_expect_eq(test_diags.n, 0, "%s", diags_text());
    cr_expect_eq(cfg->workers, 0);
    cr_expect_eq(cfg->maxconn, 50000);
    cr_expect_eq(cfg->log_level, KF_LOG_INFO);
    cr_expect_str_eq(cfg->admin.listen, "127.0.0.1:9445");
    cr_expect_eq(cfg->timeouts.connect_ms, 5000);
    cr_expect_eq(cfg->timeouts.client_hello_ms, 10000);
    cr_expect_eq(cfg->timeouts.client_ms, 0);
    cr_expect_eq(cfg->timeouts.server_ms, 0);
    cr_expect_eq(cfg->timeouts.tunnel_ms, 0);
    cr_expect_eq(cfg->timeouts.drain_ms, 30000);
    cr_expect_eq(cfg->frontends[0].mode, CONFIG_MODE_TCP);
    cr_expect_eq(cfg->frontends[0].maxconn, 0);
    const struct config_backend *be = &cfg->backends[0];
    cr_expect_eq(be->balance, CONFIG_BALANCE_ROUNDROBIN);
    cr_expect_eq(be->connect_retries, 2);
    cr_expect_eq(be->check.type, CONFIG_CHECK_TCP);
    cr_expect_str_eq(be->check.path, "/readyz");
    cr_expect_eq(be->check.expect_status, 200);
    cr_expect_eq(be->check.interval_ms, 2000);
    cr_expect_eq(be->check.timeout_ms, 1000);
    cr_expect_eq(be->check.rise, 2);
    cr_expect_eq(be->check.fall, 3);
    cr_expect_null(be->check.tls.ca_file);
    cr_expect_eq(be->servers[0].weight, 1);
    cr_expect(be->servers[0].check);
    cr_expect_not(be->servers[0].backup);
    cr_expect_not(be->servers[0].local);
    config_free(cfg);
}

Test(yaml, null_keeps_the_default_and_quoted_empty_disables_admin)
{
    struct config *cfg = parse_yaml(YAML_MIN "timeouts:\n  drain: ~\n  connect:\n"
                                             "admin: {listen: \"\"}\nworkers: null\n");

    cr_assert_not_null(cfg, "%s", diags_text());
    cr_expect_eq(cfg->timeouts.drain_ms, 30000);
    cr_expect_eq(cfg->timeouts.connect_ms, 5000);
    cr_expect_eq(cfg->workers, 0);
    cr_expect_str_eq(cfg->admin.listen, "");
    config_free(cfg);
}

Test(yaml, anchors_and_aliases_are_resolved)
{
    struct config *cfg =
        parse_yaml(YAML_HEAD "frontends:\n"
                             "  - {name: a, listen: [\"0.0.0.0:1\"], backend: be}\n"
                             "backends:\n"
                             "  - name: be\n"
                             "    healthCheck: &hc {type: http, path: /healthz}\n"
                             "    servers: [{name: m1, address: \"10.0.0.1:6443\"}]\n"
                             "  - name: be2\n"
                             "    healthCheck: *hc\n"
                             "    servers: [{name: m1, address: \"10.0.0.2:6443\"}]\n");

    cr_assert_not_null(cfg, "%s", diags_text());
    cr_expect_eq(cfg->backends[1].check.type, CONFIG_CHECK_HTTP);
    cr_expect_str_eq(cfg->backends[1].check.path, "/healthz");
    /* be2 is not used by any frontend */
    cr_expect(has_diag("kfront.yaml:9:5: warning: backends[1].name: backend \"be2\" is not used "
                       "by any frontend"),
              "%s", diags_text());
    config_free(cfg);
}

Test(yaml, booleans_in_the_yaml_1_2_spellings)
{
    struct config *cfg = parse_yaml(
        YAML_HEAD
        "frontends: [{name: a, listen: \"0.0.0.0:1\", backend: be}]\n"
        "backends:\n"
        "  - name: be\n"
        "    servers: [{name: m1, address: \"10.0.0.1:6443\", backup: True, check: FALSE},\n"
        "              {name: m2, address: \"10.0.0.2:6443\"}]\n");

    cr_assert_not_null(cfg, "%s", diags_text());
    cr_expect(cfg->backends[0].servers[0].backup);
    cr_expect_not(cfg->backends[0].servers[0].check);
    config_free(cfg);
}

Test(yaml, load_from_a_file)
{
    char path[] = "/tmp/kfront-config-test-XXXXXX";
    int fd = mkstemp(path);
    struct config *cfg;
    struct config_diags diags;

    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, YAML_MIN, strlen(YAML_MIN)), (ssize_t)strlen(YAML_MIN));
    close(fd);
    cr_assert_eq(config_load_yaml(path, &cfg, &diags), 0);
    cr_expect_str_eq(cfg->source, path);
    cr_expect_eq(cfg->n_backends, 1);
    config_free(cfg);
    unlink(path);
}

Test(yaml, load_a_missing_file)
{
    struct config *cfg = (struct config *)1;
    struct config_diags diags;

    cr_assert_eq(config_load_yaml("/nonexistent/kfront.yaml", &cfg, &diags), -ENOENT);
    cr_expect_null(cfg);
    cr_assert_eq(diags.n, 1);
    cr_expect_eq(diags.n_errors, 1);
    cr_expect_str_eq(diags.items[0].file, "/nonexistent/kfront.yaml");
    cr_expect_str_eq(diags.items[0].message, "cannot read: No such file or directory");
    cr_expect_eq(diags.items[0].line, 0);
}

Test(yaml, null_diags_are_allowed)
{
    struct config *cfg;

    cr_expect_eq(config_parse_yaml("x", YAML_MIN, strlen(YAML_MIN), &cfg, NULL), 0);
    config_free(cfg);
    cr_expect_eq(config_parse_yaml("x", "kind: x", 7, &cfg, NULL), -EINVAL);
    cr_expect_null(cfg);
}

Test(config, new_default_and_find_backend)
{
    struct config *cfg = config_new_default();

    cr_assert_not_null(cfg);
    cr_expect_str_eq(cfg->source, "<flags>");
    cr_expect_eq(cfg->maxconn, 50000);
    cr_expect_eq(cfg->timeouts.connect_ms, 5000);
    cr_expect_str_eq(cfg->admin.listen, "127.0.0.1:9445");
    cr_expect_eq(cfg->n_frontends, 0);
    cr_expect_null(config_find_backend(cfg, "x"));
    cr_expect_null(config_find_backend(NULL, "x"));
    config_free(cfg);
    config_free(NULL);
}

Test(yaml, goaway_chance_is_a_bounded_decimal)
{
    static const char *const bad[] = {"0.5", "-0.001", "1e", "lots", "[0.1]"};
    char text[512];

    for (size_t i = 0; i < KF_ARRAY_SIZE(bad); i++) {
        snprintf(text, sizeof(text),
                 "apiVersion: kfront.io/v1alpha1\nkind: KfrontConfiguration\n"
                 "frontends:\n  - {name: a, listen: [\"127.0.0.1:1\"], backend: b,\n"
                 "     goawayChance: %s}\n"
                 "backends:\n  - {name: b, servers: [{name: s, address: \"127.0.0.1:2\"}]}\n",
                 bad[i]);
        cr_expect_null(parse_yaml(text), "accepted goawayChance %s", bad[i]);
        char *all = diags_text();
        cr_expect(strstr(all, "goawayChance") != NULL, "%s", all);
        free(all);
    }
}

Test(yaml, mode_http_needs_serving_tls_and_front_proxy_identity)
{
    struct config *cfg =
        parse_yaml("apiVersion: kfront.io/v1alpha1\nkind: KfrontConfiguration\n"
                   "frontends:\n  - {name: a, listen: [\"127.0.0.1:1\"], mode: http, backend: b}\n"
                   "backends:\n  - {name: b, servers: [{name: s, address: \"127.0.0.1:2\"}]}\n");

    char *all = diags_text();

    cr_expect_null(cfg);
    cr_expect(strstr(all, "kfront.yaml:4:5: error: frontends[0].tls: mode http needs "
                          "tls.certFile and tls.keyFile") != NULL,
              "%s", all);
    cr_expect(strstr(all, "identity: mode front-proxy needs proxyClientCertFile") != NULL, "%s",
              all);
    free(all);
}
