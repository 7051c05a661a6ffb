/*
 * config_internal: what the config loaders, validator and printer share.
 */
#ifndef KF_CONFIG_INTERNAL_H
#define KF_CONFIG_INTERNAL_H

#include "config/config.h"

/* Limits shared by the YAML loader, the haproxy importer and config_validate. */
#define CFG_MAX_WEIGHT     256
#define CFG_MAX_WORKERS    1024
#define CFG_MAX_FILE_BYTES (4u << 20)
#define CFG_API_VERSION    "kfront.io/v1alpha1"
#define CFG_KIND           "KfrontConfiguration"
#define CFG_DEFAULT_ADMIN  "127.0.0.1:9445"
#define CFG_DEFAULT_PATH   "/readyz"
#define CFG_ARENA_BLOCK    4096

/* Names as written in the YAML file, indexed by the enum value. */
extern const char *const config_mode_names[2];
extern const char *const config_identity_mode_names[3];
extern const char *const config_balance_names[3];
extern const char *const config_check_type_names[5];
extern const char *const config_server_state_names[3];
extern const char *const config_log_level_names[4];
extern const char *const config_cache_not_ready_names[2];

/* A new empty config (every default set) owning a fresh arena; NULL on ENOMEM. */
struct config *cfg_alloc(const char *source);
/* Defaults of one element, as documented in config.h. */
void cfg_frontend_defaults(struct config_frontend *fe);
void cfg_backend_defaults(struct config_backend *be);
void cfg_check_defaults(struct config_check *check);
void cfg_server_defaults(struct config_server *srv);

/* Start a load: reset diags (or point at a scratch one when the caller gave NULL). */
struct config_diags *cfg_diags_begin(struct config_diags *diags, struct config_diags *scratch);
/* Finish a load: validate when the load found no error, sort diags in file
 * order, and hand out or free cfg. Returns 0 or -EINVAL. */
int cfg_load_finish(struct config *cfg, struct config_diags *diags, struct config **out);
/* The parse function of one format, as config_parse_yaml. */
typedef int (*cfg_parse_fn)(const char *name, const char *text, size_t len, struct config **out,
                            struct config_diags *diags);
/* Read the file at path and parse it with parse; -errno and a diag when it cannot be read. */
int cfg_load_file(const char *path, cfg_parse_fn parse, struct config **out,
                  struct config_diags *diags);

/* Grow an arena array of elem-sized items to hold n + 1; returns the new array or NULL. */
void *cfg_array_grow(struct kf_arena *arena, void *array, size_t n, size_t *cap, size_t elem);

/* Index of name in a table of n names, or -1. */
int cfg_name_index(const char *const *names, size_t n, const char *name);
/* "a, b or c" for error messages, into buf. */
const char *cfg_names_list(const char *const *names, size_t n, char *buf, size_t size);

/* Syntax check of "HOST:PORT" where HOST is numeric or a DNS name; returns a
 * reason (static string) or NULL when it is fine. */
const char *cfg_server_address_problem(const char *address);

/* ---- haproxy.cfg import (haproxy.c: sections and proxies; haproxy_backend.c:
 * servers and health checks) ------------------------------------------------- */

#define HP_MAX_ARGS 64
#define HP_MAX_LINE 4096

/* One line split into words, quotes and escapes resolved. */
struct hp_line {
    int lineno;
    size_t argc;
    char *argv[HP_MAX_ARGS];
    int col[HP_MAX_ARGS]; /* 1-based column where each word starts */
    char buf[HP_MAX_LINE + HP_MAX_ARGS];
};

enum hp_kind {
    HP_NONE = 0,
    HP_GLOBAL = 1,
    HP_DEFAULTS = 2,
    HP_FRONTEND = 4,
    HP_BACKEND = 8,
    HP_LISTEN = 16,
    HP_IGNORED = 32, /* a section kfront does not need (userlist, mailers, ...) */
};

enum hp_timeout { HP_T_CONNECT, HP_T_CLIENT, HP_T_SERVER, HP_T_TUNNEL, HP_T_CHECK, HP_T_COUNT };

enum hp_chk { HP_CHK_TCP = 0, HP_CHK_HTTP, HP_CHK_TLS };

/* What a server line or default-server can say. */
struct hp_srvopts {
    uint32_t inter, rise, fall, weight;
    bool check, check_ssl, disabled, backup;
    int verify; /* -1 unset, 0 none, 1 required */
    const char *ca_file, *crt, *sni;
    struct config_loc loc;
};

/* A defaults, frontend, backend or listen section as it is read. */
struct hp_proxy {
    enum hp_kind kind;
    const char *name;
    struct config_loc loc;
    enum config_mode mode;
    enum config_balance balance;
    uint32_t retries, maxconn;
    uint32_t timeout[HP_T_COUNT];
    struct config_loc timeout_loc[HP_T_COUNT]; /* line 0: not set */
    enum hp_chk chk;
    bool chk_ssl; /* "tcp-check connect ssl" */
    const char *chk_path;
    int chk_status;
    struct hp_srvopts defsrv;
    struct config_loc stats_loc;     /* a stats directive: the section may be a stats page */
    struct config_loc http_only_loc; /* an option that only acts in mode http (forwardfor) */
    const char *http_only;
    /* frontend side */
    const char **listen;
    struct config_loc *listen_locs;
    size_t n_listen, cap_listen;
    const char *default_backend;
    struct config_loc backend_loc;
    /* backend side */
    struct config_server *servers;
    struct hp_srvopts *sopts;
    size_t n_servers, cap_servers, cap_sopts;
};

struct hp_ctx {
    struct config *cfg;
    struct config_diags *diags;
    const char *file;
    bool oom;
    enum hp_kind section;
    struct hp_proxy defaults;     /* the last defaults section */
    struct hp_proxy cur;          /* the section being read */
    uint32_t timeout[HP_T_COUNT]; /* the one value kfront keeps for each */
    struct config_loc timeout_loc[HP_T_COUNT];
    size_t cap_frontends, cap_backends;
    int http_only_reported; /* line of the last forwardfor diagnostic */
    int verify_default;     /* global ssl-server-verify: 0 none, 1 required */
    const char *ca_base, *crt_base;
    struct hp_line line; /* the line being read */
};

/* Split one line into words as haproxy does; false after reporting an error. */
bool hp_split_words(struct hp_ctx *c, const char *s, size_t len, struct hp_line *l);
void hp_error(struct hp_ctx *c, const struct hp_line *l, size_t arg, const char *fmt, ...)
    KF_PRINTF(4, 5);
void hp_warn(struct hp_ctx *c, const struct hp_line *l, size_t arg, const char *fmt, ...)
    KF_PRINTF(4, 5);
/* "in backend 'x'", "in global section", ... */
const char *hp_where(const struct hp_ctx *c, char *buf, size_t size);
/* Parse argument arg as an integer in min..max / an haproxy time; false after an error. */
bool hp_uint(struct hp_ctx *c, const struct hp_line *l, size_t arg, uint32_t min, uint32_t max,
             uint32_t *out);
bool hp_time(struct hp_ctx *c, const struct hp_line *l, size_t arg, uint32_t *out);
/* Whether l has at least n words; an error naming usage when not. */
bool hp_want_args(struct hp_ctx *c, const struct hp_line *l, size_t n, const char *usage);
const char *hp_strdup(struct hp_ctx *c, const char *s);
/* "[host]:port" for a bare IPv6 "host:port", ipv4@/ipv6@ prefixes removed. */
const char *hp_address(struct hp_ctx *c, const char *text);

typedef void (*hp_fn)(struct hp_ctx *c, const struct hp_line *l);

/* Built-in haproxy defaults (mode tcp, roundrobin, retries 3, inter 2s ...). */
void hp_proxy_init(struct hp_proxy *p, enum hp_kind kind);
/* Directives of backend and listen sections and their defaults (haproxy_backend.c). */
void hp_balance(struct hp_ctx *c, const struct hp_line *l);
void hp_retries(struct hp_ctx *c, const struct hp_line *l);
void hp_server(struct hp_ctx *c, const struct hp_line *l);
void hp_default_server(struct hp_ctx *c, const struct hp_line *l);
void hp_http_check(struct hp_ctx *c, const struct hp_line *l);
void hp_tcp_check(struct hp_ctx *c, const struct hp_line *l);
/* "option httpchk|tcp-check|ssl-hello-chk"; arguments start at l->argv[2]. */
void hp_option_httpchk(struct hp_ctx *c, const struct hp_line *l);
void hp_option_tcp_check(struct hp_ctx *c, const struct hp_line *l);
void hp_option_ssl_hello(struct hp_ctx *c, const struct hp_line *l);
/* Turn the backend or listen section being read into a struct config_backend. */
void hp_finish_backend(struct hp_ctx *c);

#endif
