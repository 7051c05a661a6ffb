/* Field validation: names are tokens, values have no control byte but HTAB. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "proxy/http/http_internal.h"

Test(fields, names_are_tokens)
{
    cr_assert(px_header_valid("audit-id", "x"));
    cr_assert(px_header_valid("X-Remote-Extra-scopes.k8s.io", "x"));
    cr_assert(!px_header_valid("", "x"));
    cr_assert(!px_header_valid("bad name", "x"));
    cr_assert(!px_header_valid("bad:name", "x"));
    cr_assert(!px_header_valid("b\x80", "x"));
}

/* every position of a bad byte in values of every length up to 40, so both the eight-byte
 * words and the tail are covered */
Test(fields, a_control_byte_anywhere_in_a_value_is_refused)
{
    static const unsigned char bad[] = {0x01, 0x0a, 0x0d, 0x1f, 0x7f};
    static const unsigned char good[] = {'\t', ' ', '~', 0x80, 0xfe, 0xff, 0x20, 0x7e};
    char v[64];

    for (size_t len = 1; len <= 40; len++) {
        for (size_t at = 0; at < len; at++) {
            for (size_t b = 0; b < sizeof(bad); b++) {
                memset(v, 'a', len);
                v[len] = '\0';
                v[at] = (char)bad[b];
                cr_assert(!px_header_valid("x", v), "len %zu, 0x%02x at %zu", len, bad[b], at);
            }
            for (size_t g = 0; g < sizeof(good); g++) {
                memset(v, 'a', len);
                v[len] = '\0';
                v[at] = (char)good[g];
                cr_assert(px_header_valid("x", v), "len %zu, 0x%02x at %zu", len, good[g], at);
            }
        }
    }
    cr_assert(px_header_valid("x", ""));
}

Test(fields, hop_by_hop_names_ignore_case)
{
    cr_assert(px_header_is_hop("Connection"));
    cr_assert(px_header_is_hop("TE"));
    cr_assert(px_header_is_hop("transfer-encoding"));
    cr_assert(!px_header_is_hop("tea"));
    cr_assert(!px_header_is_hop("content-type"));
}

Test(fields, tchar_is_exactly_rfc9110s_set)
{
    for (int c = 0; c < 256; c++) {
        bool want = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    (c && strchr("!#$%&'*+-.^_`|~", c));
        cr_assert_eq(px_is_tchar((unsigned char)c), want, "byte 0x%02x", c);
    }
}
