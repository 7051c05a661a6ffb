#include "helpers.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct config_diags test_diags;

const char masters_cfg[] = "global\n"
                           "  maxconn 50000\n"
                           "defaults\n"
                           "  mode tcp\n"
                           "  timeout connect 5000ms\n"
                           "  timeout client 50000ms\n"
                           "  timeout server 50000ms\n"
                           "frontend kube-apiserver\n"
                           "  bind *:6443\n"
                           "  default_backend kube-apiserver-backend\n"
                           "backend kube-apiserver-backend\n"
                           "  balance roundrobin\n"
                           "  option tcp-check\n"
                           "  server master1 10.0.1.10:6443 check inter 2000 rise 2 fall 3\n"
                           "  server master2 10.0.1.11:6443 check inter 2000 rise 2 fall 3\n"
                           "  server master3 10.0.1.12:6443 check inter 2000 rise 2 fall 3\n";

typedef int (*parse_fn)(const char *, const char *, size_t, struct config **,
                        struct config_diags *);

static struct config *parse_with(parse_fn parse, const char *name, const char *text)
{
    struct config *cfg = NULL;
    int rc = parse(name, text, strlen(text), &cfg, &test_diags);

    cr_assert_eq(rc == 0, cfg != NULL, "rc %d must agree with the config pointer", rc);
    cr_assert_eq(rc == 0, test_diags.n_errors == 0, "rc %d with %zu errors", rc,
                 test_diags.n_errors);
    return cfg;
}

struct config *parse_yaml(const char *text)
{
    return parse_with(config_parse_yaml, "kfront.yaml", text);
}

struct config *parse_haproxy(const char *text)
{
    return parse_with(config_parse_haproxy, "haproxy.cfg", text);
}

char *diags_text(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    cr_assert_not_null(f);
    config_diags_print(&test_diags, f);
    fclose(f);
    return buf;
}

const char *diag(size_t i)
{
    static char line[1024];
    struct config_diags one = {.n = 1};
    char *buf = NULL;
    size_t len = 0;
    FILE *f;

    if (i >= test_diags.n)
        return "(no such diagnostic)";
    one.items[0] = test_diags.items[i];
    f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    config_diags_print(&one, f);
    fclose(f);
    snprintf(line, sizeof(line), "%.*s", (int)(len && buf[len - 1] == '\n' ? len - 1 : len), buf);
    free(buf);
    return line;
}

bool has_diag(const char *line)
{
    for (size_t i = 0; i < test_diags.n; i++)
        if (strcmp(diag(i), line) == 0)
            return true;
    return false;
}

char *print_yaml(const struct config *cfg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    cr_assert_not_null(f);
    cr_assert_eq(config_print_yaml(cfg, f), 0);
    fclose(f);
    return buf;
}
