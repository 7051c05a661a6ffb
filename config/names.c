#include "config/config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

const char *config_mode_name(enum config_mode mode)
{
    return mode == CONFIG_MODE_HTTP ? "http" : "tcp";
}

const char *config_balance_name(enum config_balance balance)
{
    switch (balance) {
    case CONFIG_BALANCE_LEASTCONN:
        return "leastconn";
    case CONFIG_BALANCE_LOCAL_FIRST:
        return "local-first";
    case CONFIG_BALANCE_ROUNDROBIN:
        break;
    }
    return "roundrobin";
}

const char *config_check_type_name(enum config_check_type type)
{
    static const char *const names[] = {"none", "tcp", "tls", "http", "https"};
    return (size_t)type < KF_ARRAY_SIZE(names) ? names[type] : "none";
}

const char *config_server_state_name(enum config_server_state state)
{
    static const char *const names[] = {"active", "drain", "disabled"};
    return (size_t)state < KF_ARRAY_SIZE(names) ? names[state] : "active";
}

/* Units as Go's time.ParseDuration writes them, which Kubernetes configs use. */
static int unit_ms(const char **p, uint64_t *mult)
{
    static const struct {
        const char *name;
        uint64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};

    for (size_t i = 0; i < KF_ARRAY_SIZE(units); i++) {
        size_t n = strlen(units[i].name);
        if (strncmp(*p, units[i].name, n) == 0) {
            /* "m" must not swallow the "m" of "ms" */
            if (n == 1 && units[i].name[0] == 'm' && (*p)[1] == 's')
                continue;
            *p += n;
            *mult = units[i].ms;
            return 0;
        }
    }
    return -EINVAL;
}

int config_parse_duration_ms(const char *text, uint32_t *out_ms)
{
    const char *p = text;
    uint64_t total = 0;
    bool bare = true;

    if (*p == '\0')
        return -EINVAL;
    while (*p) {
        uint64_t value = 0, mult;
        const char *start = p;

        while (*p >= '0' && *p <= '9') {
            value = value * 10 + (uint64_t)(*p - '0');
            if (value > UINT32_MAX)
                return -ERANGE;
            p++;
        }
        if (p == start)
            return -EINVAL;
        if (*p == '\0' && bare) {
            mult = 1; /* a bare number is milliseconds, as in haproxy.cfg */
        } else if (unit_ms(&p, &mult) < 0) {
            return -EINVAL;
        }
        bare = false;
        total += value * mult;
        if (total > UINT32_MAX)
            return -ERANGE;
    }
    *out_ms = (uint32_t)total;
    return 0;
}
