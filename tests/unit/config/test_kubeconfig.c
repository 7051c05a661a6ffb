/* The kubeconfig reader: current context, inline data, relative paths, token files, bad input. */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"

static char dir[64];

static const char *write_file(const char *name, const char *text)
{
    static char path[128];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/kfront-kc-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(kubeconfig, .init = setup, .fini = teardown);

Test(kubeconfig, current_context_picks_its_cluster_and_user)
{
    /* "aGVsbG8=" is base64 for "hello" */
    const char *path =
        write_file("kc", "apiVersion: v1\nkind: Config\n"
                         "clusters:\n"
                         "- name: other\n  cluster: {server: https://10.0.0.9:6443}\n"
                         "- name: prod\n  cluster:\n    server: https://10.0.0.1:6443\n"
                         "    certificate-authority-data: aGVsbG8=\n"
                         "    tls-server-name: api.prod\n"
                         "users:\n"
                         "- name: u1\n  user: {token: wrong}\n"
                         "- name: u2\n  user:\n    client-certificate: certs/u2.crt\n"
                         "    client-key: /abs/u2.key\n    token: t0k\n"
                         "contexts:\n"
                         "- name: a\n  context: {cluster: other, user: u1}\n"
                         "- name: b\n  context: {cluster: prod, user: u2}\n"
                         "current-context: b\n");
    struct kf_arena *a = kf_arena_new(1024);
    struct config_kubeconfig kc;
    char err[256], want[128];

    cr_assert_eq(config_kubeconfig_load(path, a, &kc, err, sizeof(err)), 0, "%s", err);
    cr_expect_str_eq(kc.server, "https://10.0.0.1:6443");
    cr_expect_eq(kc.tls.ca_pem_len, 5);
    cr_expect_eq(memcmp(kc.tls.ca_pem, "hello", 5), 0);
    cr_expect_str_eq(kc.tls.server_name, "api.prod");
    snprintf(want, sizeof(want), "%s/certs/u2.crt", dir);
    cr_expect_str_eq(kc.tls.cert_file, want); /* relative to the kubeconfig's folder */
    cr_expect_str_eq(kc.tls.key_file, "/abs/u2.key");
    cr_expect_str_eq(kc.tls.authorization, "Bearer t0k");
    kf_arena_free(a);
}

Test(kubeconfig, token_file_is_read_and_trimmed)
{
    write_file("tok", "s3cret\n");
    const char *path = write_file("kc", "clusters:\n- name: c\n  cluster: {server: https://h:1}\n"
                                        "users:\n- name: u\n  user: {tokenFile: tok}\n"
                                        "contexts:\n- name: x\n  context: {cluster: c, user: u}\n"
                                        "current-context: x\n");
    struct kf_arena *a = kf_arena_new(1024);
    struct config_kubeconfig kc;
    char err[256];

    cr_assert_eq(config_kubeconfig_load(path, a, &kc, err, sizeof(err)), 0, "%s", err);
    cr_expect_str_eq(kc.tls.authorization, "Bearer s3cret");
    kf_arena_free(a);
}

Test(kubeconfig, bad_files_are_errors_that_say_where)
{
    static const struct {
        const char *text, *expect;
    } cases[] = {
        {"clusters: [\n", ":2:1: "},                                             /* YAML */
        {"apiVersion: v1\n", "no cluster for the current context"},              /* empty */
        {"clusters:\n- name: c\n  cluster: {server: http://h:1}\n", "https://"}, /* plain */
        {"clusters:\n- name: c\n  cluster: {server: https://h:1, "
         "certificate-authority-data: '***'}\n",
         "base64"},
        {"clusters:\n- name: c\n  cluster: {server: https://h:1}\n"
         "users:\n- name: u\n  user: {tokenFile: /nonexistent/t}\n"
         "contexts:\n- name: x\n  context: {cluster: c, user: u}\n",
         "tokenFile"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *path = write_file("bad", cases[i].text);
        struct kf_arena *a = kf_arena_new(1024);
        struct config_kubeconfig kc;
        char err[256] = "";
        cr_expect_lt(config_kubeconfig_load(path, a, &kc, err, sizeof(err)), 0, "case %zu", i);
        cr_expect_not_null(strstr(err, cases[i].expect), "case %zu: %s", i, err);
        kf_arena_free(a);
    }
    struct kf_arena *a = kf_arena_new(1024);
    struct config_kubeconfig kc;
    char err[256];
    cr_expect_eq(config_kubeconfig_load("/nonexistent/kc", a, &kc, err, sizeof(err)), -ENOENT);
    kf_arena_free(a);
}

static const char *const kc_text =
    "apiVersion: v1\nkind: Config\n"
    "clusters:\n- name: prod\n  cluster:\n    server: https://10.0.0.1:6443/\n"
    "    certificate-authority-data: aGVsbG8=\n"
    "users:\n- name: u\n  user: {client-certificate: u.crt, client-key: u.key, token: t0k}\n"
    "contexts:\n- name: c\n  context: {cluster: prod, user: u}\n";

static const char *const yaml_head = "apiVersion: kfront.io/v1alpha1\n"
                                     "kind: KfrontConfiguration\n"
                                     "identity: {mode: impersonate}\n"
                                     "frontends:\n"
                                     "  - name: api\n"
                                     "    listen: [\"127.0.0.1:6443\"]\n"
                                     "    mode: http\n"
                                     "    backend: masters\n"
                                     "    tls: {certFile: /k/s.crt, keyFile: /k/s.key}\n"
                                     "backends:\n"
                                     "  - name: masters\n";

static struct config *load_config(const char *backend_tail, struct config_diags *d)
{
    char text[2048], path[128];
    struct config *cfg = NULL;

    snprintf(text, sizeof(text), "%s%s", yaml_head, backend_tail);
    snprintf(path, sizeof(path), "%s", write_file("kfront.yaml", text));
    config_load_yaml(path, &cfg, d);
    return cfg;
}

Test(kubeconfig, yaml_backend_kubeconfig_fills_what_the_backend_leaves_out)
{
    struct config_diags d = {0};
    struct config *cfg;
    char want[128];

    write_file("admin.conf", kc_text);
    /* relative to kfront.yaml's folder; no servers: the cluster's server */
    cfg = load_config("    kubeconfig: admin.conf\n", &d);
    cr_assert_not_null(cfg, "%s", d.n ? d.items[0].message : "?");
    const struct config_backend *be = &cfg->backends[0];
    cr_assert_eq(be->n_servers, 1);
    cr_expect_str_eq(be->servers[0].address, "10.0.0.1:6443");
    cr_expect_eq(be->upstream_tls.ca_pem_len, 5);
    snprintf(want, sizeof(want), "%s/u.crt", dir);
    cr_expect_str_eq(be->upstream_tls.cert_file, want);
    cr_expect_str_eq(be->upstream_tls.authorization, "Bearer t0k");
    config_free(cfg);

    /* the document's own CA, client certificate and servers win */
    cfg = load_config(
        "    upstreamTLS: {caFile: /k/ca.crt, certFile: /k/me.crt, keyFile: /k/me.key}\n"
        "    servers: [{name: m1, address: \"10.9.9.9:6443\"}]\n"
        "    kubeconfig: admin.conf\n",
        &d);
    cr_assert_not_null(cfg, "%s", d.n ? d.items[0].message : "?");
    be = &cfg->backends[0];
    cr_assert_eq(be->n_servers, 1);
    cr_expect_str_eq(be->servers[0].address, "10.9.9.9:6443");
    cr_expect_str_eq(be->upstream_tls.ca_file, "/k/ca.crt");
    cr_expect_null(be->upstream_tls.ca_pem);
    cr_expect_str_eq(be->upstream_tls.cert_file, "/k/me.crt");
    cr_expect_str_eq(be->upstream_tls.key_file, "/k/me.key");
    config_free(cfg);
}

Test(kubeconfig, yaml_backend_kubeconfig_errors_say_where)
{
    struct config_diags d = {0};
    struct config *cfg = load_config("    kubeconfig: missing.conf\n", &d);

    cr_expect_null(cfg);
    cr_assert_geq(d.n, 1);
    cr_expect_eq(d.items[0].line, 12);
    cr_expect_eq(d.items[0].column, 17);
    cr_expect(strstr(d.items[0].message, "backends[0].kubeconfig:") != NULL, "%s",
              d.items[0].message);
    cr_expect(strstr(d.items[0].message, "missing.conf: No such file or directory") != NULL, "%s",
              d.items[0].message);
}
