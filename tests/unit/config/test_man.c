/* The examples of man/kfront.yaml.5 load: the manual cannot drift from the code. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

/* The n-th .nf/.fi block after ".SH EXAMPLES", roff escapes \- removed. */
static char *example(size_t n)
{
    FILE *f = fopen(KF_MAN_DIR "/kfront.yaml.5", "r");
    char line[512], *out = calloc(1, 8192);
    bool in_examples = false, in_block = false;
    size_t block = 0, len = 0;

    cr_assert_not_null(f);
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, ".SH ", 4) == 0) {
            in_examples = strcmp(line, ".SH EXAMPLES\n") == 0;
        } else if (in_examples && strcmp(line, ".nf\n") == 0) {
            in_block = true;
        } else if (in_block && strcmp(line, ".fi\n") == 0) {
            in_block = false;
            block++;
        } else if (in_block && block == n) {
            for (const char *p = line; *p && len < 8191; p++)
                if (!(p[0] == '\\' && p[1] == '-'))
                    out[len++] = *p;
        }
    }
    fclose(f);
    cr_assert_gt(len, 0, "example %zu not found", n);
    return out;
}

Test(man, yaml_example_loads)
{
    char *text = example(0);
    struct config *cfg = parse_yaml(text);

    cr_assert_not_null(cfg, "%s\n%s", text, diags_text());
    cr_expect_eq(test_diags.n, 0, "%s", diags_text());
    cr_expect_eq(cfg->backends[0].check.type, CONFIG_CHECK_HTTPS);
    cr_expect_eq(cfg->backends[0].n_servers, 3);
    config_free(cfg);
    free(text);
}

Test(man, haproxy_example_imports)
{
    char *text = example(1);
    struct config *cfg = parse_haproxy(text);

    cr_assert_not_null(cfg, "%s\n%s", text, diags_text());
    cr_expect_eq(test_diags.n, 0, "%s", diags_text());
    cr_expect_str_eq(cfg->frontends[0].listen[0], "*:6443");
    cr_expect_eq(cfg->backends[0].n_servers, 3);
    config_free(cfg);
    free(text);
}
