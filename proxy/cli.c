/*
 * Command line. A config file (native YAML or haproxy.cfg) or, for the common
 * case, flags that build the same struct config. Flags named like the
 * apiserver's and HAProxy's where an operator would look for them.
 */
#include "proxy/cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    OPT_CONFIG = 256,
    OPT_HAPROXY,
    OPT_CHECK_CONFIG,
    OPT_CHECK,
    OPT_PRINT,
    OPT_LISTEN,
    OPT_UPSTREAM,
    OPT_LOCAL_UPSTREAM,
    OPT_BALANCE,
    OPT_HEALTH,
    OPT_HEALTH_PATH,
    OPT_HEALTH_INSECURE,
    OPT_HEALTH_CA,
    OPT_ADMIN,
    OPT_WORKERS,
    OPT_MAXCONN,
    OPT_LOG_LEVEL,
    OPT_VERSION,
    OPT_HELP,
    OPT_MODE,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
    OPT_CLIENT_CA,
    OPT_UPSTREAM_CA,
    OPT_IDENTITY,
    OPT_PROXY_CERT,
    OPT_PROXY_KEY,
    OPT_GOAWAY,
    OPT_REQUEST_TIMEOUT,
    OPT_TLS_SNI,
    OPT_CACHE,
    OPT_UPSTREAM_KUBECONFIG,
    OPT_CACHE_RESOURCES,
};

static const struct option options[] = {
    {"config", required_argument, NULL, OPT_CONFIG},
    {"haproxy-config", required_argument, NULL, OPT_HAPROXY},
    {"check-config", required_argument, NULL, OPT_CHECK_CONFIG},
    {"check", no_argument, NULL, OPT_CHECK},
    {"print-config", no_argument, NULL, OPT_PRINT},
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"upstream", required_argument, NULL, OPT_UPSTREAM},
    {"local-upstream", required_argument, NULL, OPT_LOCAL_UPSTREAM},
    {"balance", required_argument, NULL, OPT_BALANCE},
    {"health-check", required_argument, NULL, OPT_HEALTH},
    {"health-check-path", required_argument, NULL, OPT_HEALTH_PATH},
    {"health-check-insecure", no_argument, NULL, OPT_HEALTH_INSECURE},
    {"health-check-ca-file", required_argument, NULL, OPT_HEALTH_CA},
    {"admin-listen", required_argument, NULL, OPT_ADMIN},
    {"workers", required_argument, NULL, OPT_WORKERS},
    {"maxconn", required_argument, NULL, OPT_MAXCONN},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"version", no_argument, NULL, OPT_VERSION},
    {"help", no_argument, NULL, OPT_HELP},
    {"mode", required_argument, NULL, OPT_MODE},
    {"tls-cert-file", required_argument, NULL, OPT_TLS_CERT},
    {"tls-private-key-file", required_argument, NULL, OPT_TLS_KEY},
    {"client-ca-file", required_argument, NULL, OPT_CLIENT_CA},
    {"upstream-ca-file", required_argument, NULL, OPT_UPSTREAM_CA},
    {"identity-mode", required_argument, NULL, OPT_IDENTITY},
    {"proxy-client-cert-file", required_argument, NULL, OPT_PROXY_CERT},
    {"proxy-client-key-file", required_argument, NULL, OPT_PROXY_KEY},
    {"goaway-chance", required_argument, NULL, OPT_GOAWAY},
    {"request-timeout", required_argument, NULL, OPT_REQUEST_TIMEOUT},
    {"tls-sni-cert-key", required_argument, NULL, OPT_TLS_SNI},
    {"cache", required_argument, NULL, OPT_CACHE},
    {"upstream-kubeconfig", required_argument, NULL, OPT_UPSTREAM_KUBECONFIG},
    {"cache-resources", required_argument, NULL, OPT_CACHE_RESOURCES},
    {NULL, 0, NULL, 0},
};

void px_cli_usage(FILE *out)
{
    fputs("Usage: kfront [--config FILE | --haproxy-config FILE | flags] [options]\n"
          "\n"
          "Configuration:\n"
          "  --config FILE             native YAML configuration (man kfront.yaml)\n"
          "  --haproxy-config FILE     run from an existing haproxy.cfg\n"
          "  --check-config FILE       validate a YAML configuration and exit 0 or 1\n"
          "  --check                   validate the configuration given and exit 0 or 1\n"
          "  --print-config            print the effective configuration as YAML and exit\n"
          "Without a file (one tcp frontend in front of one backend):\n"
          "  --listen ADDR:PORT        listen address (repeatable; default 0.0.0.0:6443)\n"
          "  --upstream ADDR:PORT      an apiserver (repeatable)\n"
          "  --local-upstream ADDR:PORT  the apiserver on this node (for local-first)\n"
          "  --balance ALGO            roundrobin | leastconn | local-first\n"
          "  --health-check TYPE       none | tcp | tls | http | https (default tcp)\n"
          "  --health-check-path PATH  HTTP(S) check path (default /readyz)\n"
          "  --health-check-ca-file F  CA to verify apiservers' certificates\n"
          "  --health-check-insecure   do not verify apiservers' certificates\n"
          "  --mode MODE               tcp (default: bytes pass through) | http (L7)\n"
          "Mode http (flags named like the apiserver's):\n"
          "  --tls-cert-file FILE      serving certificate (required)\n"
          "  --tls-private-key-file F  its key (default: in the certificate file)\n"
          "  --tls-sni-cert-key C,K[:NAMES]  more certificates chosen by SNI (repeatable)\n"
          "  --client-ca-file FILE     verify client certificates (users: CN, groups: O)\n"
          "  --upstream-ca-file FILE   CA that verifies the apiservers\n"
          "  --upstream-kubeconfig F   how to reach and trust them (CA, client cert, server)\n"
          "  --identity-mode MODE      front-proxy (default) | impersonate | passthrough\n"
          "  --proxy-client-cert-file  front-proxy client certificate (front-proxy mode)\n"
          "  --proxy-client-key-file   its key\n"
          "  --goaway-chance P         HTTP/2 GOAWAY probability per response (0..0.02)\n"
          "  --request-timeout D       deadline of short requests (default 60s; 0s: none)\n"
          "  --cache=true|false        serve reads from the watch cache (default true)\n"
          "  --cache-resources LIST    what is cached, e.g. pods,configmaps,"
          "endpointslices.discovery.k8s.io\n"
          "Always:\n"
          "  --admin-listen ADDR:PORT  /healthz, /readyz, /metrics (default 127.0.0.1:9445)\n"
          "  --workers N               worker threads (default: one per core)\n"
          "  --maxconn N               global connection limit\n"
          "  --log-level LEVEL         error | warn | info | debug\n"
          "Signals: SIGHUP reloads the file, SIGTERM drains then exits.\n",
          out);
}

static int parse_uint(const char *text, uint32_t *out)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(text, &end, 10);
    if (errno || *end || end == text || v > UINT32_MAX)
        return -EINVAL;
    *out = (uint32_t)v;
    return 0;
}

static int add_string(const char ***arr, size_t *n, const char *s)
{
    const char **grown = realloc(*arr, (*n + 1) * sizeof(**arr));
    if (!grown)
        return -ENOMEM;
    grown[(*n)++] = s;
    *arr = grown;
    return 0;
}

static int parse_enum(const char *flag, const char *text, const char *const *names, size_t n,
                      int *out)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(text, names[i]) == 0) {
            *out = (int)i;
            return 0;
        }
    fprintf(stderr, "kfront: %s: unknown value \"%s\"\n", flag, text);
    return -EINVAL;
}

static int handle_http_option(struct px_cli *cli, int opt, const char *arg);

static int handle_option(struct px_cli *cli, int opt, const char *arg)
{
    static const char *const balances[] = {"roundrobin", "leastconn", "local-first"};
    static const char *const checks[] = {"none", "tcp", "tls", "http", "https"};
    int v;

    switch (opt) {
    case OPT_CONFIG:
        cli->config_path = arg;
        return 0;
    case OPT_HAPROXY:
        cli->haproxy_path = arg;
        return 0;
    case OPT_CHECK_CONFIG:
        cli->config_path = arg;
        cli->check_only = true;
        return 0;
    case OPT_CHECK:
        cli->check_only = true;
        return 0;
    case OPT_PRINT:
        cli->print_config = true;
        return 0;
    case OPT_LISTEN:
        return add_string(&cli->listen, &cli->n_listen, arg);
    case OPT_UPSTREAM:
        return add_string(&cli->upstreams, &cli->n_upstreams, arg);
    case OPT_LOCAL_UPSTREAM:
        return add_string(&cli->local_upstreams, &cli->n_local_upstreams, arg);
    case OPT_BALANCE:
        if (parse_enum("--balance", arg, balances, KF_ARRAY_SIZE(balances), &v) < 0)
            return -EINVAL;
        cli->balance = (enum config_balance)v;
        cli->balance_set = true;
        return 0;
    case OPT_HEALTH:
        if (parse_enum("--health-check", arg, checks, KF_ARRAY_SIZE(checks), &v) < 0)
            return -EINVAL;
        cli->check_type = (enum config_check_type)v;
        cli->check_type_set = true;
        return 0;
    case OPT_HEALTH_PATH:
        cli->check_path = arg;
        return 0;
    case OPT_HEALTH_INSECURE:
        cli->check_insecure = true;
        return 0;
    case OPT_HEALTH_CA:
        cli->check_ca_file = arg;
        return 0;
    case OPT_ADMIN:
        cli->admin_listen = arg;
        return 0;
    case OPT_WORKERS:
        cli->workers_set = true;
        return parse_uint(arg, &cli->workers) < 0
                   ? (fprintf(stderr, "kfront: --workers: expected a number\n"), -EINVAL)
                   : 0;
    case OPT_MAXCONN:
        cli->maxconn_set = true;
        return parse_uint(arg, &cli->maxconn) < 0
                   ? (fprintf(stderr, "kfront: --maxconn: expected a number\n"), -EINVAL)
                   : 0;
    case OPT_LOG_LEVEL:
        cli->log_level_set = true;
        if (kf_log_level_parse(arg, &cli->log_level) < 0) {
            fprintf(stderr, "kfront: --log-level: expected error, warn, info or debug\n");
            return -EINVAL;
        }
        return 0;
    case OPT_CACHE:
        if (strcmp(arg, "true") != 0 && strcmp(arg, "false") != 0) {
            fprintf(stderr, "kfront: --cache: expected true or false\n");
            return -EINVAL;
        }
        cli->cache_set = true;
        cli->cache_enabled = strcmp(arg, "true") == 0;
        return 0;
    case OPT_CACHE_RESOURCES:
        cli->cache_resources = (char *)arg;
        return 0;
    case OPT_VERSION:
        cli->show_version = true;
        return 0;
    case OPT_HELP:
        cli->show_help = true;
        return 0;
    default:
        return handle_http_option(cli, opt, arg);
    }
}

/* Mode http flags; each one builds the flags configuration, like --listen. */
static int handle_http_option(struct px_cli *cli, int opt, const char *arg)
{
    static const char *const modes[] = {"tcp", "http"};
    static const char *const identities[] = {"front-proxy", "impersonate", "passthrough"};
    int v;

    cli->http_flag_set = true;
    switch (opt) {
    case OPT_MODE:
        if (parse_enum("--mode", arg, modes, KF_ARRAY_SIZE(modes), &v) < 0)
            return -EINVAL;
        cli->mode = (enum config_mode)v;
        return 0;
    case OPT_IDENTITY:
        if (parse_enum("--identity-mode", arg, identities, KF_ARRAY_SIZE(identities), &v) < 0)
            return -EINVAL;
        cli->identity_mode = (enum config_identity_mode)v;
        cli->identity_mode_set = true;
        return 0;
    case OPT_GOAWAY: {
        char *end;
        double p = strtod(arg, &end);
        if (end == arg || *end || p < 0 || p > 0.02) {
            fprintf(stderr, "kfront: --goaway-chance: expected a number from 0 to 0.02\n");
            return -EINVAL;
        }
        cli->goaway_chance_ppm = (uint32_t)(p * 1e6 + 0.5);
        return 0;
    }
    case OPT_REQUEST_TIMEOUT:
        if (config_parse_duration_ms(arg, &cli->request_timeout_ms) < 0) {
            fprintf(stderr, "kfront: --request-timeout: expected a duration such as 60s or 1m\n");
            return -EINVAL;
        }
        cli->request_timeout_set = true;
        return 0;
    case OPT_TLS_SNI:
        if (!strchr(arg, ',') || arg[0] == ',') {
            fprintf(stderr, "kfront: --tls-sni-cert-key: expected CERT,KEY or "
                            "CERT,KEY:NAME,NAME (e.g. api.crt,api.key:*.example.com)\n");
            return -EINVAL;
        }
        return add_string(&cli->tls_sni, &cli->n_tls_sni, arg);
    case OPT_TLS_CERT:
        cli->tls_cert_file = arg;
        return 0;
    case OPT_TLS_KEY:
        cli->tls_key_file = arg;
        return 0;
    case OPT_CLIENT_CA:
        cli->client_ca_file = arg;
        return 0;
    case OPT_UPSTREAM_CA:
        cli->upstream_ca_file = arg;
        return 0;
    case OPT_UPSTREAM_KUBECONFIG:
        cli->upstream_kubeconfig = arg;
        return 0;
    case OPT_PROXY_CERT:
        cli->proxy_client_cert_file = arg;
        return 0;
    case OPT_PROXY_KEY:
        cli->proxy_client_key_file = arg;
        return 0;
    default:
        return -EINVAL;
    }
}

int px_cli_parse(struct px_cli *cli, int argc, char **argv)
{
    int opt;

    memset(cli, 0, sizeof(*cli));
    optind = 1;
    opterr = 1;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        if (opt == '?' || handle_option(cli, opt, optarg) < 0)
            return -EINVAL;
    }
    if (optind < argc) {
        fprintf(stderr, "kfront: unexpected argument \"%s\"\n", argv[optind]);
        return -EINVAL;
    }
    if (cli->config_path && cli->haproxy_path) {
        fprintf(stderr, "kfront: give either --config or --haproxy-config, not both\n");
        return -EINVAL;
    }
    bool file = cli->config_path || cli->haproxy_path;
    if (file && (cli->n_listen || cli->n_upstreams || cli->n_local_upstreams || cli->balance_set ||
                 cli->check_type_set || cli->http_flag_set)) {
        fprintf(stderr, "kfront: --listen, --upstream, --balance, --health-check and the mode "
                        "http flags build a configuration; they cannot be combined with a "
                        "configuration file\n");
        return -EINVAL;
    }
    return 0;
}

void px_cli_free(struct px_cli *cli)
{
    free(cli->listen);
    free(cli->upstreams);
    free(cli->local_upstreams);
    free(cli->tls_sni);
}
