#include <criterion/criterion.h>
#include <criterion/redirect.h>

#include <errno.h>

#include "proxy/cli.h"

static int parse(struct px_cli *cli, int argc, const char **argv)
{
    return px_cli_parse(cli, argc, (char **)argv);
}

Test(cli, flags_build_a_frontend_and_backend)
{
    struct px_cli cli;
    const char *argv[] = {"kfront",
                          "--listen",
                          "127.0.0.1:7443",
                          "--upstream",
                          "10.0.1.11:6443",
                          "--local-upstream",
                          "10.0.1.10:6443",
                          "--health-check",
                          "https",
                          "--workers",
                          "3"};

    cr_assert_eq(parse(&cli, 11, argv), 0);
    cr_expect_eq(cli.n_listen, 1);
    cr_expect_eq(cli.n_upstreams, 1);
    cr_expect_eq(cli.n_local_upstreams, 1);
    cr_expect_eq(cli.check_type, CONFIG_CHECK_HTTPS);
    cr_expect(cli.workers_set);
    cr_expect_eq(cli.workers, 3);
    px_cli_free(&cli);
}

Test(cli, rejects_bad_usage, .init = cr_redirect_stderr)
{
    struct px_cli cli;
    const char *both[] = {"kfront", "--config", "a.yaml", "--haproxy-config", "h.cfg"};
    const char *mixed[] = {"kfront", "--config", "a.yaml", "--upstream", "1.2.3.4:6443"};
    const char *badnum[] = {"kfront", "--workers", "two"};
    const char *badenum[] = {"kfront", "--balance", "fastest"};
    const char *stray[] = {"kfront", "extra"};

    cr_expect_eq(parse(&cli, 5, both), -EINVAL);
    px_cli_free(&cli);
    cr_expect_eq(parse(&cli, 5, mixed), -EINVAL);
    px_cli_free(&cli);
    cr_expect_eq(parse(&cli, 3, badnum), -EINVAL);
    px_cli_free(&cli);
    cr_expect_eq(parse(&cli, 3, badenum), -EINVAL);
    px_cli_free(&cli);
    cr_expect_eq(parse(&cli, 2, stray), -EINVAL);
    px_cli_free(&cli);
}

Test(cli, check_config_implies_check_only)
{
    struct px_cli cli;
    const char *argv[] = {"kfront", "--check-config", "x.yaml"};

    cr_assert_eq(parse(&cli, 3, argv), 0);
    cr_expect(cli.check_only);
    cr_expect_str_eq(cli.config_path, "x.yaml");
    px_cli_free(&cli);
}

Test(cli, mode_http_flags)
{
    struct px_cli cli;
    const char *argv[] = {"kfront",      "--mode",           "http",   "--tls-cert-file",
                          "s.crt",       "--client-ca-file", "ca.crt", "--identity-mode",
                          "impersonate", "--goaway-chance",  "0.002"};
    const char *bad[] = {"kfront", "--goaway-chance", "0.5"};
    const char *with_file[] = {"kfront", "--config", "a.yaml", "--mode", "http"};

    cr_assert_eq(parse(&cli, 11, argv), 0);
    cr_expect_eq(cli.mode, CONFIG_MODE_HTTP);
    cr_expect_str_eq(cli.tls_cert_file, "s.crt");
    cr_expect_eq(cli.identity_mode, CONFIG_IDENTITY_IMPERSONATE);
    cr_expect_eq(cli.goaway_chance_ppm, 2000);
    px_cli_free(&cli);
    cr_redirect_stderr();
    cr_expect_eq(parse(&cli, 3, bad), -EINVAL);
    px_cli_free(&cli);
    cr_expect_eq(parse(&cli, 5, with_file), -EINVAL);
    px_cli_free(&cli);
}

Test(cli, sni_and_request_timeout_flags_reach_the_config)
{
    struct px_cli cli;
    const char *argv[] = {"kfront",
                          "--mode",
                          "http",
                          "--listen",
                          "127.0.0.1:7443",
                          "--upstream",
                          "10.0.1.11:6443",
                          "--tls-cert-file",
                          "/k/s.crt",
                          "--identity-mode",
                          "passthrough",
                          "--tls-sni-cert-key",
                          "/k/a.crt,/k/a.key:a.example.com,*.a.example.com",
                          "--tls-sni-cert-key",
                          "/k/b.crt,/k/b.key",
                          "--request-timeout",
                          "90s"};
    const char *bad[] = {"kfront", "--tls-sni-cert-key", "only-a-cert.crt"};
    struct config_diags d = {0};
    struct config *cfg = NULL;

    cr_assert_eq(parse(&cli, 17, argv), 0);
    cr_assert_eq(px_cli_load_config(&cli, &cfg, &d), 0, "%s", d.n ? d.items[0].message : "?");
    const struct config_tls_server *t = &cfg->frontends[0].tls;
    cr_assert_eq(t->n_sni, 2);
    cr_expect_str_eq(t->sni[0].cert_file, "/k/a.crt");
    cr_expect_str_eq(t->sni[0].key_file, "/k/a.key");
    cr_assert_eq(t->sni[0].n_names, 2);
    cr_expect_str_eq(t->sni[0].names[0], "a.example.com");
    cr_expect_str_eq(t->sni[0].names[1], "*.a.example.com");
    cr_expect_str_eq(t->sni[1].key_file, "/k/b.key");
    cr_expect_eq(t->sni[1].n_names, 0);
    cr_expect_eq(cfg->timeouts.request_ms, 90000);
    config_free(cfg);
    px_cli_free(&cli);
    cr_redirect_stderr();
    cr_expect_eq(parse(&cli, 3, bad), -EINVAL);
    px_cli_free(&cli);
}
