/* The native YAML loader: every class of error, with its exact message. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

/* Load text, expect it to fail, and return the diagnostics as printed. */
static char *errors_of(const char *text)
{
    struct config *cfg = parse_yaml(text);

    cr_assert_null(cfg, "expected the config to be refused");
    cr_assert_gt(test_diags.n_errors, 0);
    return diags_text();
}

static void expect_only(const char *text, const char *expected)
{
    char *got = errors_of(text);

    cr_expect_str_eq(got, expected);
    free(got);
}

Test(yaml_errors, wrong_scalar_values)
{
    expect_only(YAML_MIN "workers: 2000\n",
                "kfront.yaml:12:10: error: workers: expected an integer from 0 to 1024, got "
                "\"2000\"\n");
    expect_only(
        YAML_MIN "maxConnections: 0\n",
        "kfront.yaml:12:17: error: maxConnections: expected a positive integer, got \"0\"\n");
    expect_only(YAML_MIN "maxConnections: 99999999999\n",
                "kfront.yaml:12:17: error: maxConnections: expected a positive integer, got "
                "\"99999999999\"\n");
    expect_only(YAML_MIN "maxConnections: 0x10\n",
                "kfront.yaml:12:17: error: maxConnections: expected a positive integer, got "
                "\"0x10\"\n");
    expect_only(YAML_MIN "maxConnections: \"100\"\n",
                "kfront.yaml:12:17: error: maxConnections: expected a positive integer, got a "
                "quoted string \"100\"\n");
    expect_only(YAML_MIN "logLevel: verbose\n",
                "kfront.yaml:12:11: error: logLevel: expected one of error, warn, info or debug, "
                "got \"verbose\"\n");
}

Test(yaml_errors, the_example_of_the_brief)
{
    expect_only(YAML_HEAD "frontends: [{name: fe, listen: \"0.0.0.0:6443\", backend: be}]\n"
                          "backends:\n"
                          "  - name: be\n"
                          "    healthCheck:\n"
                          "      type: https\n"
                          "      rise: two\n"
                          "    servers: [{name: m1, address: \"10.0.1.10:6443\"}]\n",
                "kfront.yaml:8:13: error: backends[0].healthCheck.rise: expected a positive "
                "integer, got \"two\"\n");
}

Test(yaml_errors, nested_values)
{
    char *got = errors_of(
        YAML_HEAD "frontends:\n"
                  "  - {name: fe, listen: [\"0.0.0.0:6443\"], backend: be, mode: udp}\n"
                  "backends:\n"
                  "  - name: be\n"
                  "    balance: random\n"
                  "    connectRetries: -1\n"
                  "    healthCheck:\n"
                  "      type: grpc\n"
                  "      expectStatus: 700\n"
                  "      interval: 2 seconds\n"
                  "      timeout: 0s\n"
                  "      fall: 0\n"
                  "      tls: {insecureSkipVerify: yes}\n"
                  "    servers:\n"
                  "      - {name: m1, address: \"10.0.1.10:6443\", weight: 300, state: up}\n");

    cr_expect_str_eq(
        got,
        "kfront.yaml:4:61: error: frontends[0].mode: expected one of tcp or http, got \"udp\"\n"
        "kfront.yaml:7:14: error: backends[0].balance: expected one of roundrobin, leastconn or "
        "local-first, got \"random\"\n"
        "kfront.yaml:8:21: error: backends[0].connectRetries: expected an integer from 0 to 100, "
        "got \"-1\"\n"
        "kfront.yaml:10:13: error: backends[0].healthCheck.type: expected one of none, tcp, tls, "
        "http or https, got \"grpc\"\n"
        "kfront.yaml:11:21: error: backends[0].healthCheck.expectStatus: expected an integer "
        "from 100 to 599, got \"700\"\n"
        "kfront.yaml:12:17: error: backends[0].healthCheck.interval: expected a duration such as "
        "5s, 250ms or 1m30s, got \"2 seconds\"\n"
        "kfront.yaml:13:16: error: backends[0].healthCheck.timeout: expected a positive "
        "duration, got \"0s\"\n"
        "kfront.yaml:14:13: error: backends[0].healthCheck.fall: expected a positive integer, "
        "got \"0\"\n"
        "kfront.yaml:15:33: error: backends[0].healthCheck.tls.insecureSkipVerify: expected true "
        "or false, got \"yes\"\n"
        "kfront.yaml:17:55: error: backends[0].servers[0].weight: expected an integer from 0 to "
        "256, got \"300\"\n"
        "kfront.yaml:17:67: error: backends[0].servers[0].state: expected one of active, drain or "
        "disabled, got \"up\"\n");
    free(got);
}

Test(yaml_errors, api_version_and_kind)
{
    expect_only(
        "apiVersion: v1\nkind: ConfigMap\n",
        "kfront.yaml:1:13: error: apiVersion: expected \"kfront.io/v1alpha1\", got \"v1\"\n"
        "kfront.yaml:2:7: error: kind: expected \"KfrontConfiguration\", got \"ConfigMap\"\n");
    expect_only("kind: KfrontConfiguration\nworkers: 1\n",
                "kfront.yaml:1:1: error: missing required key \"apiVersion\"\n");
}

Test(yaml_errors, unknown_keys)
{
    expect_only(
        YAML_MIN "bogus: 1\n",
        "kfront.yaml:12:1: error: bogus: unknown key, expected one of apiVersion, kind, "
        "workers, maxConnections, logLevel, admin, timeouts, identity, cache, authorization, "
        "frontends or backends\n");
    expect_only(YAML_HEAD "frontends: [{name: fe, listen: \"0.0.0.0:1\", backend: be}]\n"
                          "backends:\n"
                          "  - name: be\n"
                          "    servers:\n"
                          "      - {name: m1, address: \"10.0.1.10:6443\"}\n"
                          "      - {name: m2, address: \"10.0.1.11:6443\", colour: red}\n",
                "kfront.yaml:8:47: error: backends[0].servers[1].colour: unknown key, expected "
                "one of name, address, weight, backup, local, state or check\n");
    expect_only(YAML_MIN "timeouts: {idle: 5s}\n",
                "kfront.yaml:12:12: error: timeouts.idle: unknown key, expected one of connect, "
                "clientHello, client, server, tunnel, drain or request\n");
}

Test(yaml_errors, duplicate_keys)
{
    expect_only(YAML_MIN "timeouts:\n  drain: 5s\n  drain: 6s\n",
                "kfront.yaml:14:3: error: timeouts.drain: duplicate key (first set at 13:3)\n");
    expect_only(YAML_MIN "workers: 1\nworkers: 2\n",
                "kfront.yaml:13:1: error: workers: duplicate key (first set at 12:1)\n");
}

Test(yaml_errors, wrong_node_types)
{
    expect_only(YAML_MIN "admin: [127.0.0.1:9445]\n",
                "kfront.yaml:12:8: error: admin: expected a mapping, got a sequence\n");
    expect_only(YAML_MIN "timeouts: 5s\n",
                "kfront.yaml:12:11: error: timeouts: expected a mapping, got \"5s\"\n");
    expect_only(YAML_HEAD "frontends: {name: fe}\n",
                "kfront.yaml:3:12: error: frontends: expected a sequence, got a mapping\n");
    expect_only(YAML_HEAD "backends: [be]\n",
                "kfront.yaml:3:12: error: backends[0]: expected a mapping, got \"be\"\n");
    expect_only(YAML_MIN "logLevel: {a: b}\n",
                "kfront.yaml:12:11: error: logLevel: expected one of error, warn, info or debug, "
                "got a mapping\n");
    expect_only(YAML_HEAD "frontends: [{name: fe, listen: [[1]], backend: be}]\n",
                "kfront.yaml:3:33: error: frontends[0].listen[0]: expected an address "
                "(HOST:PORT), got a sequence\n");
    expect_only(YAML_MIN "? [a]\n: 1\n",
                "kfront.yaml:12:3: error: expected a key (a string), got a sequence\n");
    expect_only("- a\n- b\n", "kfront.yaml:1:1: error: expected a mapping, got a sequence\n");
}

Test(yaml_errors, missing_required_keys)
{
    expect_only(YAML_HEAD "frontends: [{name: fe, listen: \"0.0.0.0:1\", backend: be}]\n"
                          "backends:\n"
                          "  - name: be\n"
                          "    servers:\n"
                          "      - name: m1\n",
                "kfront.yaml:7:9: error: backends[0].servers[0]: missing required key "
                "\"address\"\n");
    expect_only(YAML_HEAD "frontends: [{listen: \"0.0.0.0:1\", backend: }]\n",
                "kfront.yaml:3:13: error: frontends[0]: missing required key \"name\"\n"
                "kfront.yaml:3:44: error: frontends[0].backend: expected a value, got \"\"\n");
}

Test(yaml_errors, syntax_errors)
{
    expect_only(YAML_MIN "timeouts: [5s\n",
                "kfront.yaml:13:1: error: YAML syntax error: did not find expected ',' or ']' "
                "(while parsing a flow sequence at 12:11)\n");
    expect_only("a: b\n c: d\n",
                "kfront.yaml:2:3: error: YAML syntax error: mapping values are not allowed in "
                "this context\n");
    expect_only("a: \"unterminated\n",
                "kfront.yaml:2:1: error: YAML syntax error: found unexpected end of stream (while "
                "scanning a quoted scalar at 1:4)\n");
    expect_only("a:\n\t- x\n",
                "kfront.yaml:2:1: error: YAML syntax error: found character that cannot start any "
                "token (while scanning for the next token at 2:1)\n");
}

Test(yaml_errors, empty_and_multiple_documents)
{
    static const char empty[] =
        "kfront.yaml:1:1: error: empty configuration: expected a mapping "
        "with apiVersion: kfront.io/v1alpha1 and kind: KfrontConfiguration\n";

    expect_only("", empty);
    expect_only("# nothing but a comment\n\n", empty);
    expect_only(YAML_MIN "---\nworkers: 1\n",
                "kfront.yaml:12:1: error: only one YAML document is allowed in a configuration "
                "file\n");
}

Test(yaml_errors, nul_in_a_string)
{
    expect_only(YAML_MIN "admin: {listen: \"a\\0b\"}\n",
                "kfront.yaml:12:17: error: admin.listen: expected a string without NUL "
                "characters\n");
}

Test(yaml_errors, errors_are_collected_and_capped)
{
    char *text = malloc(16384);
    size_t o = (size_t)sprintf(text, "%s", YAML_HEAD "backends:\n");

    for (int i = 0; i < 100; i++)
        o += (size_t)sprintf(text + o, "  - {name: b%d, bogus: 1}\n", i);
    cr_assert_null(parse_yaml(text));
    cr_expect_eq(test_diags.n, CONFIG_MAX_DIAGS);
    cr_expect_eq(test_diags.n_errors, 100);
    cr_expect_str_eq(diag(63),
                     "kfront.yaml:67:17: error: backends[63].bogus: unknown key, "
                     "expected one of name, balance, connectRetries, healthCheck, upstreamTLS, "
                     "kubeconfig or servers");
    free(text);
}

Test(yaml_errors, alias_expansion_is_bounded)
{
    /* 400 backends that each list the same 400 servers: 160,000 mappings from a small file */
    char *text = malloc(65536);
    size_t o = (size_t)sprintf(text, "%s",
                               YAML_HEAD "x: &s {name: s, address: \"10.0.0.1:1\"}\n"
                                         "backends:\n  - &b\n    name: b\n"
                                         "    servers: [");
    for (int i = 0; i < 400; i++)
        o += (size_t)sprintf(text + o, "%s*s", i ? ", " : "");
    o += (size_t)sprintf(text + o, "]\n");
    for (int i = 0; i < 399; i++)
        o += (size_t)sprintf(text + o, "  - *b\n");
    cr_assert_null(parse_yaml(text));
    cr_expect(has_diag("kfront.yaml:3:1: error: x: unknown key, expected one of apiVersion, kind, "
                       "workers, maxConnections, logLevel, admin, timeouts, identity, "
                       "cache, authorization, frontends or backends"),
              "%s", diag(0));
    bool capped = false;
    for (size_t i = 0; i < test_diags.n; i++)
        capped |= strstr(test_diags.items[i].message, "more than 100000 mappings") != NULL;
    cr_expect(capped, "%s", diags_text());
    free(text);
}
