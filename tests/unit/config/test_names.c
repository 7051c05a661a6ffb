/* Durations, enum names and diagnostics printing. */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

Test(duration, valid)
{
    static const struct {
        const char *text;
        uint32_t ms;
    } cases[] = {{"5s", 5000},
                 {"250ms", 250},
                 {"1m", 60000},
                 {"2h", 7200000},
                 {"1m30s", 90000},
                 {"1500", 1500},
                 {"0", 0},
                 {"0s", 0},
                 {"1h2m3s", 3723000},
                 {"1s500ms", 1500},
                 {"4294967295ms", 4294967295u}};

    for (size_t i = 0; i < KF_ARRAY_SIZE(cases); i++) {
        uint32_t ms = 12345;

        cr_expect_eq(config_parse_duration_ms(cases[i].text, &ms), 0, "%s", cases[i].text);
        cr_expect_eq(ms, cases[i].ms, "%s", cases[i].text);
    }
}

Test(duration, invalid)
{
    static const char *const bad[] = {"",    "s",   "5x", "1.5s", "-1s", "1s500",
                                      "5 s", " 5s", "5S", "1d",   "ms"};
    uint32_t ms = 7;

    for (size_t i = 0; i < KF_ARRAY_SIZE(bad); i++)
        cr_expect_eq(config_parse_duration_ms(bad[i], &ms), -EINVAL, "%s", bad[i]);
    cr_expect_eq(config_parse_duration_ms("4294967296", &ms), -ERANGE);
    cr_expect_eq(config_parse_duration_ms("1200h", &ms), -ERANGE);
    cr_expect_eq(ms, 7, "a failed parse leaves the output alone");
}

Test(names, enum_names)
{
    cr_expect_str_eq(config_mode_name(CONFIG_MODE_HTTP), "http");
    cr_expect_str_eq(config_mode_name((enum config_mode)9), "tcp");
    cr_expect_str_eq(config_balance_name(CONFIG_BALANCE_LOCAL_FIRST), "local-first");
    cr_expect_str_eq(config_balance_name(CONFIG_BALANCE_LEASTCONN), "leastconn");
    cr_expect_str_eq(config_balance_name((enum config_balance)9), "roundrobin");
    cr_expect_str_eq(config_check_type_name(CONFIG_CHECK_HTTPS), "https");
    cr_expect_str_eq(config_check_type_name((enum config_check_type)9), "none");
    cr_expect_str_eq(config_server_state_name(CONFIG_SERVER_DRAIN), "drain");
    cr_expect_str_eq(config_server_state_name((enum config_server_state)9), "active");
}

Test(diags, print_and_add)
{
    struct config_diags d = {0};
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    config_diags_add(&d, CONFIG_ERROR, "a.yaml", (struct config_loc){3, 7}, "bad %s", "thing");
    config_diags_add(&d, CONFIG_WARNING, "a.yaml", (struct config_loc){0, 0}, "global note");
    config_diags_add(NULL, CONFIG_ERROR, "a.yaml", (struct config_loc){1, 1}, "dropped");
    cr_expect_eq(d.n, 2);
    cr_expect_eq(d.n_errors, 1);
    config_diags_print(&d, f);
    config_diags_print(NULL, f);
    fclose(f);
    cr_expect_str_eq(buf, "a.yaml:3:7: error: bad thing\na.yaml: warning: global note\n");
    free(buf);
    for (int i = 0; i < 100; i++)
        config_diags_add(&d, CONFIG_ERROR, "a", (struct config_loc){1, 1}, "e%d", i);
    cr_expect_eq(d.n, CONFIG_MAX_DIAGS);
    cr_expect_eq(d.n_errors, 101);
}
