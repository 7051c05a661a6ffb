#include "fixture.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

char *ks_test_fixture(const char *dir, const char *name, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s/%s", KS_FIXTURES, dir, name);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "fixture %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    cr_assert_not_null(buf);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}
