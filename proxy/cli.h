/* Command-line parsing of the kfront binary (private to proxy/). */
#ifndef KF_PROXY_CLI_H
#define KF_PROXY_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "config/config.h"

struct px_cli {
    const char *config_path;
    const char *haproxy_path;
    bool check_only, print_config, show_version, show_help;
    const char **listen;
    size_t n_listen;
    const char **upstreams;
    size_t n_upstreams;
    const char **local_upstreams;
    size_t n_local_upstreams;
    enum config_balance balance;
    bool balance_set;
    enum config_check_type check_type;
    bool check_type_set;
    const char *check_path, *check_ca_file;
    bool check_insecure;
    const char *admin_listen;
    uint32_t workers, maxconn;
    bool workers_set, maxconn_set;
    enum kf_log_level log_level;
    bool log_level_set;
    /* mode http, named like the apiserver's flags */
    enum config_mode mode;
    const char *tls_cert_file, *tls_key_file, *client_ca_file, *upstream_ca_file;
    const char **tls_sni; /* --tls-sni-cert-key values: "CERT,KEY[:NAME,...]" */
    size_t n_tls_sni;
    const char *upstream_kubeconfig;
    const char *proxy_client_cert_file, *proxy_client_key_file;
    enum config_identity_mode identity_mode;
    bool identity_mode_set; /* --identity-mode given: no default from --upstream-kubeconfig */
    uint32_t goaway_chance_ppm;
    uint32_t request_timeout_ms; /* --request-timeout, when request_timeout_set */
    bool request_timeout_set;
    bool http_flag_set; /* any of the above: they build a config, like --listen */
    /* the watch cache (mode http); override the file too */
    bool cache_set, cache_enabled;
    char *cache_resources; /* comma-separated, as given */
};

/** Parse argv into cli; prints the problem and returns -EINVAL on bad usage. */
int px_cli_parse(struct px_cli *cli, int argc, char **argv);
void px_cli_usage(FILE *out);
void px_cli_free(struct px_cli *cli);

/**
 * Load the configuration the command line names (file, or flags), apply the
 * overrides that flags may make to a file (workers, maxconn, admin, log level)
 * and validate it. Diagnostics go to diags.
 */
int px_cli_load_config(const struct px_cli *cli, struct config **out, struct config_diags *diags);

#endif
