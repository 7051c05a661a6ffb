/* config_validate: references, names, addresses, TLS settings. */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

#define FE_BE(listen, backend)                                                                     \
    YAML_HEAD "frontends:\n"                                                                       \
              "  - name: fe\n"                                                                     \
              "    listen: " listen "\n"                                                           \
              "    backend: " backend "\n"                                                         \
              "backends:\n"                                                                        \
              "  - name: be\n"

#define ONE_SERVER "    servers: [{name: m1, address: \"10.0.1.10:6443\"}]\n"

static void expect_errors(const char *text, const char *expected)
{
    char *got;

    cr_assert_null(parse_yaml(text), "expected the config to be refused");
    got = diags_text();
    cr_expect_str_eq(got, expected);
    free(got);
}

Test(validate, backend_must_exist)
{
    expect_errors(FE_BE("[\"0.0.0.0:6443\"]", "nope") ONE_SERVER,
                  "kfront.yaml:6:14: error: frontends[0].backend: no backend named \"nope\"\n"
                  "kfront.yaml:8:5: warning: backends[0].name: backend \"be\" is not used by any "
                  "frontend\n");
}

Test(validate, at_least_one_frontend)
{
    expect_errors(YAML_HEAD
                  "backends: [{name: be, servers: [{name: m1, address: \"10.0.0.1:1\"}]}]\n",
                  "kfront.yaml:3:12: warning: backends[0].name: backend \"be\" is not used by any "
                  "frontend\n"
                  "kfront.yaml: error: frontends: at least one frontend is required\n");
}

Test(validate, names_are_unique)
{
    expect_errors(YAML_HEAD "frontends:\n"
                            "  - {name: fe, listen: \"0.0.0.0:1\", backend: be}\n"
                            "  - {name: fe, listen: \"0.0.0.0:2\", backend: be}\n"
                            "backends:\n"
                            "  - name: be\n"
                            "    servers:\n"
                            "      - {name: m1, address: \"10.0.0.1:1\"}\n"
                            "      - {name: m1, address: \"10.0.0.2:1\"}\n"
                            "  - name: be\n" ONE_SERVER,
                  "kfront.yaml:5:5: error: frontends[1].name: \"fe\" is also the name of "
                  "frontends[0]\n"
                  "kfront.yaml:10:9: error: backends[0].servers[1].name: \"m1\" is also the name "
                  "of servers[0]\n"
                  "kfront.yaml:11:5: error: backends[1].name: \"be\" is also the name of "
                  "backends[0]\n");
}

Test(validate, listen_addresses)
{
    expect_errors(FE_BE("[\"0.0.0.0:0\", \"host.example:6443\", \"[::1]:6443\", \"[::1]:6443\", "
                        "\"10.0.0.1\", \"127.0.0.1:9445\"]",
                        "be") ONE_SERVER,
                  "kfront.yaml:5:14: error: frontends[0].listen[0]: \"0.0.0.0:0\": port must be a "
                  "number from 1 to 65535\n"
                  "kfront.yaml:5:27: error: frontends[0].listen[1]: \"host.example:6443\": "
                  "expected a numeric address: IPv4:PORT, [IPv6]:PORT or *:PORT\n"
                  "kfront.yaml:5:62: error: frontends[0].listen[3]: \"[::1]:6443\" is listed more "
                  "than once\n"
                  "kfront.yaml:5:76: error: frontends[0].listen[4]: \"10.0.0.1\": missing :PORT\n"
                  "kfront.yaml:5:88: error: frontends[0].listen[5]: \"127.0.0.1:9445\" is also the "
                  "admin listen address\n");
    expect_errors(
        FE_BE("[]", "be") ONE_SERVER,
        "kfront.yaml:4:5: error: frontends[0].listen: at least one address is required\n");
}

Test(validate, server_addresses)
{
    expect_errors(
        FE_BE("[\"0.0.0.0:6443\"]", "be") "    servers:\n"
                                          "      - {name: a, address: \"m1.example.com:6443\"}\n"
                                          "      - {name: b, address: \"-bad.example:6443\"}\n"
                                          "      - {name: c, address: \"fd00::1:6443\"}\n"
                                          "      - {name: d, address: \"0.0.0.0:6443\"}\n"
                                          "      - {name: e, address: \"10.0.0.1:70000\"}\n"
                                          "      - {name: f, address: \"300.1.1.1:6443\"}\n"
                                          "      - {name: g, address: \"[fd00::zz]:6443\"}\n"
                                          "      - {name: h, address: \"[fd00::1]:6443\"}\n",
        "kfront.yaml:11:28: error: backends[0].servers[1].address: \"-bad.example:6443\": "
        "host is neither an IP address nor a valid host name\n"
        "kfront.yaml:12:28: error: backends[0].servers[2].address: \"fd00::1:6443\": an "
        "IPv6 address must be in brackets, as in [fd00::1]:6443\n"
        "kfront.yaml:13:28: error: backends[0].servers[3].address: \"0.0.0.0:6443\": a "
        "server cannot be a wildcard address\n"
        "kfront.yaml:14:28: error: backends[0].servers[4].address: \"10.0.0.1:70000\": "
        "port must be a number from 1 to 65535\n"
        "kfront.yaml:15:28: error: backends[0].servers[5].address: \"300.1.1.1:6443\": "
        "host is neither an IP address nor a valid host name\n"
        "kfront.yaml:16:28: error: backends[0].servers[6].address: \"[fd00::zz]:6443\": "
        "not a valid [IPv6]:PORT address\n");
}

Test(validate, backend_needs_servers)
{
    expect_errors(FE_BE("[\"0.0.0.0:6443\"]", "be"),
                  "kfront.yaml:8:5: error: backends[0].servers: at least one server is required\n");
}

Test(validate, tls_settings)
{
    expect_errors(FE_BE("[\"0.0.0.0:6443\"]", "be") "    healthCheck:\n"
                                                    "      type: https\n"
                                                    "      tls: {certFile: /c.crt}\n" ONE_SERVER,
                  "kfront.yaml:11:12: error: backends[0].healthCheck.tls: certFile requires "
                  "keyFile\n");
    expect_errors(FE_BE("[\"0.0.0.0:6443\"]", "be") "    healthCheck:\n"
                                                    "      tls: {keyFile: /c.key}\n" ONE_SERVER,
                  "kfront.yaml:10:12: error: backends[0].healthCheck.tls: keyFile requires "
                  "certFile\n"
                  "kfront.yaml:10:12: warning: backends[0].healthCheck.tls: has no effect with a "
                  "tcp check and no http frontend\n");
}

Test(validate, warnings_do_not_refuse_the_config)
{
    struct config *cfg =
        parse_yaml(FE_BE("[\"0.0.0.0:6443\"]",
                         "be") "    balance: local-first\n"
                               "    healthCheck:\n"
                               "      type: tls\n"
                               "      interval: 1s\n"
                               "      timeout: 2s\n"
                               "      tls: {caFile: /ca, insecureSkipVerify: true}\n"
                               "    servers: [{name: m1, address: \"10.0.0.1:1\", weight: 0}]\n"
                               "maxConnections: 10\n"
                               "frontends: [{name: fe, listen: \"0.0.0.0:1\", backend: be,\n"
                               "             maxConnections: 20}]\n");
    char *got;

    cr_assert_null(cfg, "frontends is given twice");
    cr_expect_str_eq(diag(0),
                     "kfront.yaml:17:1: error: frontends: duplicate key (first set at 3:1)");
    cfg = parse_yaml(YAML_HEAD "maxConnections: 10\n"
                               "frontends: [{name: fe, listen: \"0.0.0.0:1\", backend: be,\n"
                               "             maxConnections: 20}]\n"
                               "backends:\n"
                               "  - name: be\n"
                               "    balance: local-first\n"
                               "    healthCheck:\n"
                               "      type: tls\n"
                               "      interval: 1s\n"
                               "      timeout: 2s\n"
                               "      tls: {caFile: /ca, insecureSkipVerify: true}\n"
                               "    servers: [{name: m1, address: \"10.0.0.1:1\", weight: 0}]\n");
    cr_assert_not_null(cfg, "%s", diags_text());
    got = diags_text();
    cr_expect_str_eq(got,
                     "kfront.yaml:4:13: warning: frontends[0].maxConnections: 20 is above the "
                     "global maxConnections 10, which still applies\n"
                     "kfront.yaml:7:5: warning: backends[0].servers: no server can take "
                     "connections (all have weight 0 or are not active)\n"
                     "kfront.yaml:7:5: warning: backends[0].balance: local-first but no server "
                     "has local: true; works as roundrobin\n"
                     "kfront.yaml:10:7: warning: backends[0].healthCheck: timeout (2000 ms) is "
                     "longer than interval (1000 ms)\n"
                     "kfront.yaml:13:12: warning: backends[0].healthCheck.tls: caFile is not "
                     "used when insecureSkipVerify is true\n");
    cr_expect_eq(test_diags.n_errors, 0);
    free(got);
    config_free(cfg);
}

Test(validate, http_check_path_and_status)
{
    struct config *cfg = parse_yaml(YAML_MIN);
    struct config_diags diags = {0};

    cr_assert_not_null(cfg);
    cfg->backends[0].check.type = CONFIG_CHECK_HTTP;
    cfg->backends[0].check.path = "readyz";
    cfg->backends[0].check.expect_status = 99;
    cfg->backends[0].servers[0].weight = 257;
    cr_expect_eq(config_validate(cfg, &diags), -EINVAL);
    cr_assert_eq(diags.n, 3);
    cr_expect_str_eq(diags.items[0].message,
                     "backends[0].healthCheck: path must start with '/', got \"readyz\"");
    cr_expect_str_eq(diags.items[1].message,
                     "backends[0].healthCheck: expectStatus must be from 100 to 599, got 99");
    cr_expect_str_eq(diags.items[2].message,
                     "backends[0].servers[0].weight: must be from 0 to 256, got 257");
    config_free(cfg);
}

Test(validate, a_config_built_by_code)
{
    struct config *cfg = config_new_default();
    struct config_diags diags = {0};
    static const char *listen[] = {"0.0.0.0:6443"};
    struct config_frontend fe = {.name = "fe", .listen = listen, .n_listen = 1, .backend = "be"};
    struct config_server srv = {.name = "m1", .address = "10.0.0.1:6443", .weight = 1};
    struct config_backend be = {.name = "be", .servers = &srv, .n_servers = 1};

    cr_expect_eq(config_validate(cfg, &diags), -EINVAL);
    cr_assert_eq(diags.n, 1);
    cr_expect_str_eq(diags.items[0].file, "<flags>");
    cr_expect_str_eq(diags.items[0].message, "frontends: at least one frontend is required");
    cfg->frontends = &fe;
    cfg->n_frontends = 1;
    cfg->backends = &be;
    cfg->n_backends = 1;
    diags.n = diags.n_errors = 0;
    cr_expect_eq(config_validate(cfg, &diags), 0, "%s", diags.items[0].message);
    cr_expect_eq(config_validate(cfg, NULL), 0);
    be.check.type = CONFIG_CHECK_HTTPS; /* zeroed check: interval 0, rise 0, no path */
    cr_expect_eq(config_validate(cfg, &diags), -EINVAL);
    cr_expect_str_eq(diags.items[0].message,
                     "backends[0].healthCheck: interval and timeout must be positive durations");
    config_free(cfg);
}
