/*
 * print.c: write a config as the native YAML. Every field is written, so the
 * output documents the effective configuration, and loading it gives the
 * same config back (tests check print -> load -> print is a fixed point).
 */
#include "config/config_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Plain scalars are kept for names and paths that YAML cannot misread. */
static bool plain_ok(const char *s)
{
    static const char *const special[] = {"null", "true", "false", "yes", "no",
                                          "on",   "off",  "y",     "n"};

    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '/'))
        return false;
    for (const char *p = s; *p; p++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._/-", *p))
            return false;
    for (size_t i = 0; i < KF_ARRAY_SIZE(special); i++)
        if (strcasecmp(s, special[i]) == 0)
            return false;
    return true;
}

static void put_string(FILE *out, const char *s)
{
    if (plain_ok(s)) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(out, "\\x%02x", *p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

static void put_key_string(FILE *out, int indent, const char *key, const char *value)
{
    fprintf(out, "%*s%s: ", indent, "", key);
    put_string(out, value ? value : "");
    fputc('\n', out);
}

/* 90000 -> "1m30s", 1500 -> "1500ms", 0 -> "0s": what config_parse_duration_ms reads. */
static void put_duration(FILE *out, int indent, const char *key, uint32_t ms)
{
    static const struct {
        const char *unit;
        uint32_t ms;
    } units[] = {{"h", 3600000}, {"m", 60000}, {"s", 1000}};

    fprintf(out, "%*s%s: ", indent, "", key);
    if (ms == 0) {
        fputs("0s", out);
    } else if (ms % 1000 != 0) {
        fprintf(out, "%" PRIu32 "ms", ms);
    } else {
        for (size_t i = 0; i < KF_ARRAY_SIZE(units); i++) {
            if (ms >= units[i].ms) {
                fprintf(out, "%" PRIu32 "%s", ms / units[i].ms, units[i].unit);
                ms %= units[i].ms;
            }
        }
    }
    fputc('\n', out);
}

static void put_u32(FILE *out, int indent, const char *key, uint32_t value)
{
    fprintf(out, "%*s%s: %" PRIu32 "\n", indent, "", key, value);
}

static void put_bool(FILE *out, int indent, const char *key, bool value)
{
    fprintf(out, "%*s%s: %s\n", indent, "", key, value ? "true" : "false");
}

static void print_tls(const struct config_tls_client *tls, FILE *out, int indent, const char *key)
{
    fprintf(out, "%*s%s:\n", indent, "", key);
    if (tls->ca_file)
        put_key_string(out, indent + 2, "caFile", tls->ca_file);
    if (tls->cert_file)
        put_key_string(out, indent + 2, "certFile", tls->cert_file);
    if (tls->key_file)
        put_key_string(out, indent + 2, "keyFile", tls->key_file);
    if (tls->server_name)
        put_key_string(out, indent + 2, "serverName", tls->server_name);
    put_bool(out, indent + 2, "insecureSkipVerify", tls->insecure_skip_verify);
}

static void print_check(const struct config_check *c, FILE *out)
{
    fprintf(out, "    healthCheck:\n");
    put_key_string(out, 6, "type", config_check_type_name(c->type));
    put_key_string(out, 6, "path", c->path ? c->path : CFG_DEFAULT_PATH);
    fprintf(out, "      expectStatus: %d\n", c->expect_status);
    put_duration(out, 6, "interval", c->interval_ms);
    put_duration(out, 6, "timeout", c->timeout_ms);
    put_u32(out, 6, "rise", c->rise);
    put_u32(out, 6, "fall", c->fall);
    print_tls(&c->tls, out, 6, "tls");
}

static void print_server(const struct config_server *s, FILE *out)
{
    fprintf(out, "      - ");
    put_key_string(out, 0, "name", s->name);
    put_key_string(out, 8, "address", s->address);
    put_u32(out, 8, "weight", s->weight);
    put_bool(out, 8, "backup", s->backup);
    put_bool(out, 8, "local", s->local);
    put_key_string(out, 8, "state", config_server_state_name(s->state));
    put_bool(out, 8, "check", s->check);
}

static void print_backend(const struct config_backend *be, FILE *out)
{
    fprintf(out, "  - ");
    put_key_string(out, 0, "name", be->name);
    put_key_string(out, 4, "balance", config_balance_name(be->balance));
    put_u32(out, 4, "connectRetries", be->connect_retries);
    print_check(&be->check, out);
    if (be->upstream_tls.ca_file || be->upstream_tls.cert_file || be->upstream_tls.server_name ||
        be->upstream_tls.insecure_skip_verify)
        print_tls(&be->upstream_tls, out, 4, "upstreamTLS");
    if (be->kubeconfig) /* inline data and the token are read from it again */
        put_key_string(out, 4, "kubeconfig", be->kubeconfig);
    fprintf(out, "    servers:%s\n", be->n_servers ? "" : " []");
    for (size_t i = 0; i < be->n_servers; i++)
        print_server(&be->servers[i], out);
}

static void print_frontend(const struct config_frontend *fe, FILE *out)
{
    fprintf(out, "  - ");
    put_key_string(out, 0, "name", fe->name);
    fprintf(out, "    listen: [");
    for (size_t i = 0; i < fe->n_listen; i++) {
        fputs(i ? ", " : "", out);
        put_string(out, fe->listen[i] ? fe->listen[i] : "");
    }
    fprintf(out, "]\n");
    put_key_string(out, 4, "mode", config_mode_name(fe->mode));
    put_key_string(out, 4, "backend", fe->backend);
    put_u32(out, 4, "maxConnections", fe->maxconn);
    if (fe->mode != CONFIG_MODE_HTTP)
        return;
    fprintf(out, "    tls:\n");
    if (fe->tls.cert_file)
        put_key_string(out, 6, "certFile", fe->tls.cert_file);
    if (fe->tls.key_file)
        put_key_string(out, 6, "keyFile", fe->tls.key_file);
    if (fe->tls.client_ca_file)
        put_key_string(out, 6, "clientCAFile", fe->tls.client_ca_file);
    if (fe->tls.n_sni)
        fprintf(out, "      sniCertificates:\n");
    for (size_t i = 0; i < fe->tls.n_sni; i++) {
        const struct config_sni_cert *s = &fe->tls.sni[i];
        fprintf(out, "        - ");
        put_key_string(out, 0, "certFile", s->cert_file);
        if (s->key_file)
            put_key_string(out, 10, "keyFile", s->key_file);
        fprintf(out, "          names: [");
        for (size_t j = 0; j < s->n_names; j++) {
            fputs(j ? ", " : "", out);
            put_string(out, s->names[j]);
        }
        fprintf(out, "]\n");
    }
    fprintf(out, "    goawayChance: %g\n", (double)fe->goaway_chance_ppm / 1e6);
    put_u32(out, 4, "maxConcurrentStreams", fe->max_concurrent_streams);
}

static bool any_http(const struct config *cfg)
{
    for (size_t i = 0; i < cfg->n_frontends; i++)
        if (cfg->frontends[i].mode == CONFIG_MODE_HTTP)
            return true;
    return false;
}

static void print_identity(const struct config_identity *id, FILE *out)
{
    fprintf(out, "identity:\n");
    put_key_string(out, 2, "mode", config_identity_mode_name(id->mode));
    if (id->proxy_client_cert_file)
        put_key_string(out, 2, "proxyClientCertFile", id->proxy_client_cert_file);
    if (id->proxy_client_key_file)
        put_key_string(out, 2, "proxyClientKeyFile", id->proxy_client_key_file);
    put_duration(out, 2, "tokenCacheTTL", id->token_cache_ttl_ms);
    put_bool(out, 2, "anonymous", id->anonymous);
}

static void print_cache(const struct config_cache *c, FILE *out)
{
    fprintf(out, "cache:\n");
    fprintf(out, "  enabled: %s\n", c->enabled ? "true" : "false");
    fprintf(out, "  resources:\n");
    for (size_t i = 0; i < (c->resources ? c->n_resources : config_cache_n_default_resources); i++)
        fprintf(out, "  - %s\n",
                c->resources ? c->resources[i] : config_cache_default_resources[i]);
    put_key_string(out, 2, "notReady", config_cache_not_ready_name(c->not_ready));
    put_duration(out, 2, "window", c->window_ms);
}

static void print_authorization(const struct config_authorization *az, FILE *out)
{
    fprintf(out, "authorization:\n");
    put_duration(out, 2, "allowTTL", az->allow_ttl_ms);
    put_duration(out, 2, "denyTTL", az->deny_ttl_ms);
    put_duration(out, 2, "nodeAllowTTL", az->node_allow_ttl_ms);
    put_duration(out, 2, "nodeDenyTTL", az->node_deny_ttl_ms);
    put_u32(out, 2, "cacheSize", az->cache_size);
    put_bool(out, 2, "resourceWideAllow", az->resource_wide_allow);
    put_key_string(out, 2, "user", az->user ? az->user : "");
    put_key_string(out, 2, "group", az->group ? az->group : "");
}

static void print_globals(const struct config *cfg, FILE *out)
{
    const struct config_timeouts *t = &cfg->timeouts;

    fprintf(out, "apiVersion: %s\nkind: %s\n", CFG_API_VERSION, CFG_KIND);
    put_u32(out, 0, "workers", cfg->workers);
    put_u32(out, 0, "maxConnections", cfg->maxconn);
    put_key_string(out, 0, "logLevel", kf_log_level_name(cfg->log_level));
    fprintf(out, "admin:\n");
    put_key_string(out, 2, "listen", cfg->admin.listen ? cfg->admin.listen : "");
    fprintf(out, "timeouts:\n");
    put_duration(out, 2, "connect", t->connect_ms);
    put_duration(out, 2, "clientHello", t->client_hello_ms);
    put_duration(out, 2, "client", t->client_ms);
    put_duration(out, 2, "server", t->server_ms);
    put_duration(out, 2, "tunnel", t->tunnel_ms);
    put_duration(out, 2, "drain", t->drain_ms);
    put_duration(out, 2, "request", t->request_ms);
}

int config_print_yaml(const struct config *cfg, FILE *out)
{
    print_globals(cfg, out);
    if (any_http(cfg)) {
        print_identity(&cfg->identity, out);
        print_cache(&cfg->cache, out);
        print_authorization(&cfg->authorization, out);
    }
    fprintf(out, "frontends:%s\n", cfg->n_frontends ? "" : " []");
    for (size_t i = 0; i < cfg->n_frontends; i++)
        print_frontend(&cfg->frontends[i], out);
    fprintf(out, "backends:%s\n", cfg->n_backends ? "" : " []");
    for (size_t i = 0; i < cfg->n_backends; i++)
        print_backend(&cfg->backends[i], out);
    return ferror(out) ? -EIO : 0;
}
