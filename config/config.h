/*
 * config: kfront's configuration, read from a YAML file in the style of
 * Kubernetes component configs (apiVersion kfront.io/v1alpha1, kind
 * KfrontConfiguration), from an existing haproxy.cfg, or from CLI flags.
 *
 * A struct config is immutable once loaded and owns all of its memory in one
 * arena: it is allocated whole and freed whole (on reload the new one replaces
 * the old one, which is freed when nothing references it any more).
 * Durations are in milliseconds; 0 means "no timeout" where documented.
 */
#ifndef KF_CONFIG_H
#define KF_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/core.h"

/** Where a value came from, for error messages and reload diagnostics. */
struct config_loc {
    int line;   /* 1-based; 0 when the value is a default or came from a flag */
    int column; /* 1-based */
};

enum config_mode {
    CONFIG_MODE_TCP = 0, /* L4: bytes are tunnelled, TLS passes through */
    CONFIG_MODE_HTTP,    /* L7: TLS terminated, Kubernetes API understood */
};

enum config_balance {
    CONFIG_BALANCE_ROUNDROBIN = 0, /* weighted round robin over healthy servers */
    CONFIG_BALANCE_LEASTCONN,      /* fewest active connections (weighted), ties round robin */
    CONFIG_BALANCE_LOCAL_FIRST,    /* servers marked local while any is healthy, else roundrobin */
};

enum config_check_type {
    CONFIG_CHECK_NONE = 0, /* no active check: health comes from passive checks only */
    CONFIG_CHECK_TCP,      /* TCP connect succeeds */
    CONFIG_CHECK_TLS,      /* TLS handshake succeeds (certificate verified unless insecure) */
    CONFIG_CHECK_HTTP,     /* plain HTTP GET path expecting expect_status */
    CONFIG_CHECK_HTTPS,    /* HTTPS GET path (default /readyz) expecting expect_status */
};

enum config_server_state {
    CONFIG_SERVER_ACTIVE = 0, /* takes new connections when healthy */
    CONFIG_SERVER_DRAIN,      /* no new connections; existing ones finish */
    CONFIG_SERVER_DISABLED,   /* no new connections, not health-checked */
};

/** Client-side TLS settings used to talk to a backend (checks, and L7 later). */
struct config_tls_client {
    const char *ca_file;     /* NULL: system trust store */
    const char *cert_file;   /* client certificate, optional */
    const char *key_file;    /* its key; required when cert_file is set */
    const char *server_name; /* SNI and name to verify; NULL: the server's host */
    bool insecure_skip_verify;
    struct config_loc loc;
    /*
     * PEM bytes given inline instead of a file (a kubeconfig's
     * certificate-authority-data, client-certificate-data, client-key-data,
     * base64-decoded). When set they win over the *_file of the same kind.
     */
    const char *ca_pem, *cert_pem, *key_pem;
    size_t ca_pem_len, cert_pem_len, key_pem_len;
    const char *authorization; /* "Bearer <token>" of a kubeconfig user: kfront's own requests */
};

/** Serving TLS of a frontend in mode http (like the apiserver's --tls-* flags). */
/** A certificate served to clients that ask for its names by SNI (--tls-sni-cert-key). */
struct config_sni_cert {
    const char *cert_file;
    const char *key_file;
    const char **names; /* explicit names, "*.example.com" allowed; none: the cert's own */
    const struct config_loc *name_locs;
    size_t n_names;
    struct config_loc loc;
};

struct config_tls_server {
    const char *cert_file;       /* --tls-cert-file; reloaded on SIGHUP */
    const char *key_file;        /* --tls-private-key-file */
    const char *client_ca_file;  /* --client-ca-file: verify client certificates (optional) */
    struct config_sni_cert *sni; /* sniCertificates; reloaded with the rest */
    size_t n_sni;
    struct config_loc loc;
};

/** How kfront tells the apiservers who the client is (mode http). */
enum config_identity_mode {
    CONFIG_IDENTITY_FRONT_PROXY = 0, /* X-Remote-User/Group/Extra-* with the front-proxy cert */
    CONFIG_IDENTITY_IMPERSONATE,     /* Impersonate-* headers with kfront's own credentials */
    CONFIG_IDENTITY_PASSTHROUGH,     /* the client's Authorization header forwarded as is */
};

struct config_identity {
    enum config_identity_mode mode;
    /* --proxy-client-cert-file / --proxy-client-key-file: signed by the front-proxy CA */
    const char *proxy_client_cert_file;
    const char *proxy_client_key_file;
    uint32_t token_cache_ttl_ms; /* TokenReview results, keyed by a hash of the token; 10 s */
    /* the apiservers' --anonymous-auth (default true, as theirs): when false a client kfront
     * answers or vouches for without credentials gets their 401 instead of system:anonymous */
    bool anonymous;
    struct config_loc loc;
};

/** What a LIST or WATCH gets while its resource's cache is still filling. */
enum config_cache_not_ready {
    CONFIG_CACHE_FORWARD = 0, /* sent to an apiserver, as without a cache */
    CONFIG_CACHE_REJECT,      /* 429 with Retry-After 1, as the apiserver's own cache does */
};

/** The watch cache (mode http). */
struct config_cache {
    bool enabled; /* default true */
    /* "pods", "endpointslices.discovery.k8s.io" (resource[.group]); NULL: the defaults */
    const char **resources;
    size_t n_resources;
    const struct config_loc *resource_locs;
    enum config_cache_not_ready not_ready;
    uint32_t window_ms; /* keep at least this much event history; 75 s */
    struct config_loc loc;
};

/* Authorization of requests kfront serves itself (SubjectAccessReview), as the apiserver's
 * webhook authorizer caches them. */
struct config_authorization {
    uint32_t allow_ttl_ms; /* how long an allowed decision is reused; default 5 min */
    uint32_t deny_ttl_ms;  /* how long a denied decision is reused; default 10 s */
    /* the same for system:nodes users, whose node authorizer decisions follow the pods as
     * they move: at most these; defaults 10 s and 1 s */
    uint32_t node_allow_ttl_ms, node_deny_ttl_ms;
    uint32_t cache_size; /* decisions (and token reviews) kept per worker; default 10000 */
    /* an allowed get of the whole resource (a review without a name) allows a get of any of
     * its objects; default false: see kfront.yaml(5) for when it is safe */
    bool resource_wide_allow;
    /* who kfront is in its own requests (reviews, the cache's LIST/WATCH) in front-proxy and
     * impersonate mode: "system:kfront" in "system:masters" ("" for no group) */
    const char *user;
    const char *group;
    struct config_loc loc;
};

struct config_check {
    /* default tcp: a TCP connect, as haproxy's plain "check" */
    enum config_check_type type;
    const char *path;     /* HTTP(S) checks; default "/readyz" */
    int expect_status;    /* HTTP(S) checks; default 200 */
    uint32_t interval_ms; /* default 2000 */
    uint32_t timeout_ms;  /* default 1000 */
    uint32_t rise;        /* consecutive successes to go up; default 2 */
    uint32_t fall;        /* consecutive failures (active or passive) to go down; default 3 */
    struct config_tls_client tls;
    struct config_loc loc;
};

struct config_server {
    const char *name;
    const char *address; /* as written: "10.0.1.10:6443", "[fd00::1]:6443", "m1.example:6443" */
    uint32_t weight;     /* 0..256, default 1; 0 takes no new connections */
    bool backup;         /* used only when no non-backup server is up */
    bool local;          /* the apiserver on this node, for balance local-first */
    bool check;          /* actively health-checked (default true when the backend has a check) */
    enum config_server_state state;
    struct config_loc loc;
    struct config_loc address_loc; /* where address was written (loc is the server's) */
};

struct config_backend {
    const char *name;
    enum config_balance balance;
    struct config_check check;
    uint32_t connect_retries; /* further servers tried after a failed connect; default 2 */
    /* mode http: how kfront connects to the servers (CA that verifies them, kfront's own
     * client identity), e.g. from --upstream-kubeconfig */
    struct config_tls_client upstream_tls;
    const char *kubeconfig; /* upstream_tls and servers from a kubeconfig (YAML "kubeconfig") */
    struct config_loc kubeconfig_loc;
    struct config_server *servers;
    size_t n_servers;
    struct config_loc loc;
};

struct config_frontend {
    const char *name;
    const char **listen; /* "ADDR:PORT" each; IPv6 as "[::]:6443" */
    size_t n_listen;
    enum config_mode mode;
    const char *backend; /* name of a struct config_backend */
    uint32_t maxconn;    /* 0: only the global limit applies */
    struct config_loc loc;
    /* mode http only */
    struct config_tls_server tls;
    uint32_t goaway_chance_ppm;      /* HTTP/2 GOAWAY probability per response, parts per
                                      * million (the apiserver's --goaway-chance 0.001 = 1000) */
    uint32_t max_concurrent_streams; /* HTTP/2 streams per client connection; default 100 */
    /* n_listen entries: where each listen address was written; NULL when built by code */
    const struct config_loc *listen_locs;
    struct config_loc backend_loc; /* where backend was written */
};

struct config_timeouts {
    uint32_t connect_ms;      /* backend connect; default 5000 */
    uint32_t client_hello_ms; /* first byte from a new client; default 10000 */
    uint32_t client_ms;       /* client inactivity; default 0 (none: keepalive finds dead peers) */
    uint32_t server_ms;       /* server inactivity; default 0 */
    uint32_t tunnel_ms;       /* inactivity in both directions once established; default 0 */
    uint32_t drain_ms;        /* graceful shutdown deadline; default 30000 */
    uint32_t request_ms;      /* mode http, short requests (not watches or streams); 60000 */
};

struct config_admin {
    const char *listen; /* default "127.0.0.1:9445"; NULL or "" disables it */
};

struct config {
    const char *source; /* file it came from, or "<flags>" */
    uint32_t workers;   /* 0: one per core */
    uint32_t maxconn;   /* global client connection limit; default 50000 */
    enum kf_log_level log_level;
    struct config_timeouts timeouts;
    struct config_admin admin;
    struct config_identity identity;
    struct config_cache cache;
    struct config_authorization authorization;
    struct config_frontend *frontends;
    size_t n_frontends;
    struct config_backend *backends;
    size_t n_backends;
    struct kf_arena *arena; /* owns everything above */
};

/** One problem found while loading; severity error refuses the config. */
enum config_severity {
    CONFIG_WARNING = 0,
    CONFIG_ERROR,
};

struct config_diag {
    enum config_severity severity;
    char file[256];
    int line, column;
    char message[512]; /* names the key and what was expected */
};

#define CONFIG_MAX_DIAGS 64

/**
 * Every problem a load found, in file order; n may be 0. When more than
 * CONFIG_MAX_DIAGS are found the rest are dropped but still counted in
 * n_errors. The load functions reset it; config_validate appends to it.
 */
struct config_diags {
    struct config_diag items[CONFIG_MAX_DIAGS];
    size_t n;
    size_t n_errors;
};

/**
 * Load and validate a native YAML config. On success *out is set and 0
 * returned (diags may still hold warnings). On failure returns -EINVAL (or
 * -errno if the file cannot be read) and diags holds at least one error.
 */
int config_load_yaml(const char *path, struct config **out, struct config_diags *diags);
/** The same, from a buffer; name is used in messages as the file name. */
int config_parse_yaml(const char *name, const char *text, size_t len, struct config **out,
                      struct config_diags *diags);

/**
 * Load an haproxy.cfg of the kind used in front of masters and convert it.
 * Directives with no effect on the data path (log, option tcplog, stats
 * socket, ...) become warnings; directives kfront cannot honour are errors.
 * Each diagnostic names its line.
 */
int config_load_haproxy(const char *path, struct config **out, struct config_diags *diags);
int config_parse_haproxy(const char *name, const char *text, size_t len, struct config **out,
                         struct config_diags *diags);

/** A config with every default set and nothing in it, for building from flags. */
struct config *config_new_default(void);

/**
 * Check cross-references and values (backend names exist, names are unique,
 * addresses parse, TLS settings are complete). Appends to diags (NULL is
 * allowed); returns 0, or -EINVAL when it found at least one error. The
 * load functions already call it.
 */
int config_validate(struct config *cfg, struct config_diags *diags);

/**
 * Print cfg as the native YAML that would load to the same config (every
 * field written out, defaults included). Returns 0 or -EIO.
 */
int config_print_yaml(const struct config *cfg, FILE *out);

/**
 * Print each diagnostic as "file:line:column: error: message" (or
 * "warning"); "file: error: message" when it has no line.
 */
void config_diags_print(const struct config_diags *diags, FILE *out);

/**
 * Append one diagnostic (for callers that check a config further, e.g. the
 * lb or the command line). diags may be NULL. Errors beyond
 * CONFIG_MAX_DIAGS are counted but not stored.
 */
void config_diags_add(struct config_diags *diags, enum config_severity severity, const char *file,
                      struct config_loc loc, const char *fmt, ...) KF_PRINTF(5, 6);

/** Free a config and everything it owns. NULL is a no-op. */
void config_free(struct config *cfg);

/** Find a backend by name, or NULL. */
const struct config_backend *config_find_backend(const struct config *cfg, const char *name);

/** Parse "5s", "250ms", "1m", "2h", "1m30s" or a bare number of milliseconds. */
int config_parse_duration_ms(const char *text, uint32_t *out_ms);

/** Names of enum values as they are written in the YAML file. */
const char *config_mode_name(enum config_mode mode);
const char *config_balance_name(enum config_balance balance);
const char *config_check_type_name(enum config_check_type type);
const char *config_server_state_name(enum config_server_state state);
const char *config_identity_mode_name(enum config_identity_mode mode);
const char *config_cache_not_ready_name(enum config_cache_not_ready v);

/** What a kubeconfig's current context says about reaching its cluster. */
struct config_kubeconfig {
    const char *server;           /* "https://host:port" */
    struct config_tls_client tls; /* files, inline PEM (*-data), token */
};

/**
 * Read path's current context (the first entry of each list when there is no
 * current-context). Strings live in arena. On error returns -errno / -EINVAL
 * with "file[:line:column]: what" in err.
 */
int config_kubeconfig_load(const char *path, struct kf_arena *arena, struct config_kubeconfig *kc,
                           char *err, size_t errlen);

/**
 * Fill be's upstream TLS and identity from kc where be names none of its own
 * (a CA file, a client certificate/key file, a server name, a token), and,
 * when be has no servers, one server from kc's cluster. -ENOMEM.
 */
int config_backend_apply_kubeconfig(struct config_backend *be, const struct config_kubeconfig *kc,
                                    struct kf_arena *arena);

/** The resources cached when the config names none (what kubelets and kube-proxy watch). */
extern const char *const config_cache_default_resources[];
extern const size_t config_cache_n_default_resources;

#endif
