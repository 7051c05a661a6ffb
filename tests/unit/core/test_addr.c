#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "core/core.h"

static const char *roundtrip(const char *text)
{
    static char buf[80];
    struct sockaddr_storage ss;
    unsigned len;

    if (kf_addr_parse(text, &ss, &len) < 0)
        return "invalid";
    return kf_addr_format((struct sockaddr *)&ss, buf, sizeof(buf));
}

Test(addr, ipv4_and_ipv6)
{
    cr_expect_str_eq(roundtrip("10.0.1.10:6443"), "10.0.1.10:6443");
    cr_expect_str_eq(roundtrip("[::1]:6443"), "[::1]:6443");
    cr_expect_str_eq(roundtrip("[fd00::a:1]:443"), "[fd00::a:1]:443");
}

Test(addr, wildcards_bind_any_ipv4)
{
    cr_expect_str_eq(roundtrip("*:6443"), "0.0.0.0:6443");
    cr_expect_str_eq(roundtrip(":6443"), "0.0.0.0:6443");
    cr_expect_str_eq(roundtrip("[::]:6443"), "[::]:6443");
}

Test(addr, rejects_garbage)
{
    const char *bad[] = {"",
                         "10.0.1.10",
                         "10.0.1.10:",
                         "10.0.1.10:0",
                         "10.0.1.10:65536",
                         "10.0.1.10:64x",
                         "::1:6443",
                         "[::1]6443",
                         "[::1:6443",
                         "host.example:6443",
                         "300.1.1.1:80",
                         "[zz::1]:80"};
    for (size_t i = 0; i < KF_ARRAY_SIZE(bad); i++)
        cr_expect_str_eq(roundtrip(bad[i]), "invalid", "accepted %s", bad[i]);
}

Test(addr, host_alone_and_other_families_empty)
{
    struct sockaddr_storage ss;
    unsigned len;
    char buf[64] = "junk";

    cr_assert_eq(kf_addr_parse("[fd00::a:1]:443", &ss, &len), 0);
    cr_expect_str_eq(kf_addr_host((struct sockaddr *)&ss, buf, sizeof(buf)), "fd00::a:1");
    cr_assert_eq(kf_addr_parse("10.0.1.10:6443", &ss, &len), 0);
    cr_expect_str_eq(kf_addr_host((struct sockaddr *)&ss, buf, sizeof(buf)), "10.0.1.10");
    ss.ss_family = AF_UNIX;
    cr_expect_str_eq(kf_addr_host((struct sockaddr *)&ss, buf, sizeof(buf)), "");
    cr_expect_str_eq(kf_addr_format((struct sockaddr *)&ss, buf, sizeof(buf)), "?");
}
