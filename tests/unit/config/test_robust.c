/* Bad input never crashes: every prefix and many mutations of good files. */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "helpers.h"

static const char yaml_text[] =
    YAML_HEAD "workers: 2\n"
              "admin: {listen: \"127.0.0.1:9445\"}\n"
              "timeouts: {connect: 5s, drain: 30s}\n"
              "frontends:\n"
              "  - name: kube-apiserver\n"
              "    listen: [\"0.0.0.0:6443\", \"[::]:6443\"]\n"
              "    backend: masters\n"
              "backends:\n"
              "  - name: masters\n"
              "    healthCheck: {type: https, path: /readyz, tls: {insecureSkipVerify: true}}\n"
              "    servers:\n"
              "      - {name: m1, address: \"10.0.1.10:6443\", local: true}\n"
              "      - name: m2\n"
              "        address: 'm2.example:6443'\n";

typedef int (*parse_fn)(const char *, const char *, size_t, struct config **,
                        struct config_diags *);

/* Parse every prefix of text; each must give a config or errors, never a crash or leak. */
static void every_prefix(parse_fn parse, const char *text)
{
    size_t len = strlen(text), ok = 0;

    for (size_t n = 0; n <= len; n++) {
        char *copy = malloc(n + 1);
        struct config *cfg = NULL;
        int rc;

        memcpy(copy, text, n);
        copy[n] = '\0';
        rc = parse("p", copy, n, &cfg, &test_diags);
        cr_assert_eq(rc == 0, cfg != NULL, "prefix %zu", n);
        cr_assert(rc == 0 || test_diags.n_errors > 0, "prefix %zu failed without an error", n);
        ok += rc == 0;
        config_free(cfg);
        free(copy);
    }
    cr_expect_gt(ok, 0, "the whole text must load");
}

/* Overwrite each byte with a few troublesome ones. */
static void every_mutation(parse_fn parse, const char *text)
{
    static const char bytes[] = {'\0', '\n', ':', '"', '\'', '[', '{',   '#',
                                 '\\', '-',  '&', '*', ' ',  '9', '\xff'};
    size_t len = strlen(text);
    char *copy = malloc(len + 1);

    for (size_t i = 0; i < len; i++) {
        for (size_t b = 0; b < sizeof(bytes); b++) {
            struct config *cfg = NULL;
            int rc;

            memcpy(copy, text, len + 1);
            copy[i] = bytes[b];
            rc = parse("m", copy, len, &cfg, &test_diags);
            cr_assert_eq(rc == 0, cfg != NULL, "byte %zu = %d", i, bytes[b]);
            config_free(cfg);
        }
    }
    free(copy);
}

Test(robust, yaml_prefixes)
{
    every_prefix(config_parse_yaml, yaml_text);
}

Test(robust, haproxy_prefixes)
{
    every_prefix(config_parse_haproxy, masters_cfg);
}

Test(robust, yaml_mutations, .timeout = 30)
{
    every_mutation(config_parse_yaml, yaml_text);
}

Test(robust, haproxy_mutations, .timeout = 30)
{
    every_mutation(config_parse_haproxy, masters_cfg);
}
