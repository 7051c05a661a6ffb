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
