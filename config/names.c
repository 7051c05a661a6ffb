#include "config/config_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const config_mode_names[2] = {"tcp", "http"};
const char *const config_identity_mode_names[3] = {"front-proxy", "impersonate", "passthrough"};
const char *const config_balance_names[3] = {"roundrobin", "leastconn", "local-first"};
const char *const config_check_type_names[5] = {"none", "tcp", "tls", "http", "https"};
const char *const config_server_state_names[3] = {"active", "drain", "disabled"};
const char *const config_cache_not_ready_names[2] = {"forward", "reject"};
const char *const config_cache_default_resources[] = {
    "pods",
    "nodes",
    "services",
    "endpointslices.discovery.k8s.io",
    "configmaps",
    "secrets",
    "namespaces",
    "runtimeclasses.node.k8s.io",
    "csidrivers.storage.k8s.io",
};
const size_t config_cache_n_default_resources = KF_ARRAY_SIZE(config_cache_default_resources);
const char *const config_log_level_names[4] = {"error", "warn", "info", "debug"};

/* The first name is the default, returned for values out of range. */
#define NAME_OF(table, value) ((size_t)(value) < KF_ARRAY_SIZE(table) ? (table)[value] : (table)[0])

const char *config_mode_name(enum config_mode mode)
{
    return NAME_OF(config_mode_names, mode);
}

const char *config_balance_name(enum config_balance balance)
{
    return NAME_OF(config_balance_names, balance);
}

const char *config_check_type_name(enum config_check_type type)
{
    return NAME_OF(config_check_type_names, type);
}

const char *config_server_state_name(enum config_server_state state)
{
    return NAME_OF(config_server_state_names, state);
}

int cfg_name_index(const char *const *names, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return (int)i;
    return -1;
}

const char *cfg_names_list(const char *const *names, size_t n, char *buf, size_t size)
{
    size_t used = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < n && used < size; i++) {
        const char *sep = i == 0 ? "" : i + 1 == n ? " or " : ", ";
        int w = snprintf(buf + used, size - used, "%s%s", sep, names[i]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    return buf;
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

const char *config_identity_mode_name(enum config_identity_mode mode)
{
    return NAME_OF(config_identity_mode_names, mode);
}

const char *config_cache_not_ready_name(enum config_cache_not_ready v)
{
    return NAME_OF(config_cache_not_ready_names, v);
}
