/* loadgen kubelets: kubeconfig reading, TLS, HTTP/2 endpoints, latency histogram. */
#include "loadgen/kubelets/kubelets.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <yaml.h>

#include "config/config.h"

struct kl_stats kl_stats;

/* ---- kubeconfig ------------------------------------------------------------------------- */

static char *b64_decode(const char *in)
{
    size_t len = strlen(in), cap = len / 4 * 3 + 4;
    unsigned char *out = malloc(cap + 1);
    int n;

    if (!out)
        return NULL;
    n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len);
    if (n < 0) {
        free(out);
        return NULL;
    }
    while (n > 0 && len > 0 && in[len - 1] == '=') { /* EVP_DecodeBlock counts padding */
        n--;
        len--;
    }
    out[n] = '\0';
    return (char *)out;
}

/*
 * The first value of each key the client needs, wherever it is: kube-sim's and
 * kubeadm's kubeconfigs have one cluster and one user. A file with several
 * contexts is read as its first cluster and first user (documented limit).
 */
static void take(struct kl_kubeconfig *kc, const char *key, const char *value)
{
    struct {
        const char *key;
        char **dst;
        bool b64;
    } map[] = {
        {"server", &kc->server, false},
        {"certificate-authority-data", &kc->ca_pem, true},
        {"certificate-authority", &kc->ca_file, false},
        {"client-certificate-data", &kc->cert_pem, true},
        {"client-certificate", &kc->cert_file, false},
        {"client-key-data", &kc->key_pem, true},
        {"client-key", &kc->key_file, false},
        {"token", &kc->token, false},
    };
    for (size_t i = 0; i < KF_ARRAY_SIZE(map); i++)
        if (strcmp(key, map[i].key) == 0 && !*map[i].dst)
            *map[i].dst = map[i].b64 ? b64_decode(value) : strdup(value);
}

int kl_kubeconfig_load(const char *path, struct kl_kubeconfig *kc, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    yaml_parser_t p;
    yaml_event_t ev;
    char key[128] = "";
    bool expect_value = false;
    int depth_kind[64] = {0}, depth = 0, rc = 0;

    memset(kc, 0, sizeof(*kc));
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -errno;
    }
    yaml_parser_initialize(&p);
    yaml_parser_set_input_file(&p, f);
    for (;;) {
        if (!yaml_parser_parse(&p, &ev)) {
            snprintf(err, errlen, "%s:%zu:%zu: %s", path, p.problem_mark.line + 1,
                     p.problem_mark.column + 1, p.problem ? p.problem : "bad YAML");
            rc = -EINVAL;
            break;
        }
        if (ev.type == YAML_STREAM_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        if (ev.type == YAML_MAPPING_START_EVENT || ev.type == YAML_SEQUENCE_START_EVENT) {
            if (depth < 63)
                depth_kind[++depth] = ev.type == YAML_MAPPING_START_EVENT;
            expect_value = false;
        } else if (ev.type == YAML_MAPPING_END_EVENT || ev.type == YAML_SEQUENCE_END_EVENT) {
            depth = depth > 0 ? depth - 1 : 0;
            expect_value = false;
        } else if (ev.type == YAML_SCALAR_EVENT && depth_kind[depth]) {
            const char *v = (const char *)ev.data.scalar.value;
            if (expect_value) {
                take(kc, key, v);
                expect_value = false;
            } else {
                snprintf(key, sizeof(key), "%s", v);
                expect_value = true;
            }
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    fclose(f);
    if (rc == 0 && (!kc->server || strncmp(kc->server, "https://", 8) != 0)) {
        snprintf(err, errlen, "%s: no https:// server in the kubeconfig", path);
        rc = -EINVAL;
    }
    if (rc < 0)
        kl_kubeconfig_free(kc);
    return rc;
}

void kl_kubeconfig_free(struct kl_kubeconfig *kc)
{
    free(kc->server);
    free(kc->ca_pem);
    free(kc->cert_pem);
    free(kc->key_pem);
    free(kc->ca_file);
    free(kc->cert_file);
    free(kc->key_file);
    free(kc->token);
    memset(kc, 0, sizeof(*kc));
}

/* ---- TLS ------------------------------------------------------------------------------------ */

static int add_ca_pem(SSL_CTX *ctx, const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509 *x;
    int n = 0;

    while (bio && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
        X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), x);
        X509_free(x);
        n++;
    }
    ERR_clear_error();
    BIO_free(bio);
    return n ? 0 : -EINVAL;
}

static int use_cert_pem(SSL_CTX *ctx, const char *cert, const char *key)
{
    BIO *cb = BIO_new_mem_buf(cert, -1), *kb = BIO_new_mem_buf(key, -1);
    X509 *x = cb ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
    EVP_PKEY *k = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
    int rc = x && k && SSL_CTX_use_certificate(ctx, x) == 1 && SSL_CTX_use_PrivateKey(ctx, k) == 1
                 ? 0
                 : -EINVAL;

    X509_free(x);
    EVP_PKEY_free(k);
    BIO_free(cb);
    BIO_free(kb);
    return rc;
}

struct ssl_ctx_st *kl_tls_ctx(const struct kl_kubeconfig *kc, bool with_cert, char *err,
                              size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    int rc = 0;

    if (!ctx)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (kc->ca_pem)
        rc = add_ca_pem(ctx, kc->ca_pem);
    else if (kc->ca_file)
        rc = SSL_CTX_load_verify_locations(ctx, kc->ca_file, NULL) == 1 ? 0 : -EINVAL;
    else
        SSL_CTX_set_default_verify_paths(ctx);
    if (rc == 0 && with_cert && kc->cert_pem && kc->key_pem)
        rc = use_cert_pem(ctx, kc->cert_pem, kc->key_pem);
    else if (rc == 0 && with_cert && kc->cert_file && kc->key_file)
        rc = SSL_CTX_use_certificate_chain_file(ctx, kc->cert_file) == 1 &&
                     SSL_CTX_use_PrivateKey_file(ctx, kc->key_file, SSL_FILETYPE_PEM) == 1
                 ? 0
                 : -EINVAL;
    if (rc < 0) {
        snprintf(err, errlen, "kubeconfig: unusable certificate or key");
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* ---- endpoints ---------------------------------------------------------------------------------
 */

int kl_endpoint_open(struct kl_endpoint *ep, struct event_base *base, const char *server_url,
                     struct ssl_ctx_st *tls, unsigned conns)
{
    struct config *cfg = config_new_default();
    struct config_diags diags = {0};
    const char *hostport = server_url + strlen("https://");

    memset(ep, 0, sizeof(*ep));
    if (!cfg)
        return -ENOMEM;
    struct config_backend *be = kf_arena_alloc(cfg->arena, sizeof(*be));
    struct config_server *srv = kf_arena_alloc(cfg->arena, sizeof(*srv));
    if (!be || !srv) {
        config_free(cfg);
        return -ENOMEM;
    }
    srv->name = "s";
    srv->address = kf_arena_strndup(cfg->arena, hostport, strcspn(hostport, "/"));
    srv->weight = 1;
    be->name = "b";
    be->servers = srv;
    be->n_servers = 1;
    cfg->backends = be;
    cfg->n_backends = 1;
    ep->lb = lb_new(cfg, NULL, &diags);
    ep->cfg = cfg; /* the lb may point into it */
    if (!ep->lb)
        return -EINVAL;
    ep->pool = lb_find_pool(ep->lb, "b");
    struct lb_upstream_config ucfg = {
        .tls = tls,
        .proto = LB_UPSTREAM_H2,
        .conns_per_server = conns,
        .max_conns_per_server = conns,
        .idle_timeout_ms = 3600 * 1000,
    };
    ep->up = lb_upstream_new(base, &ucfg);
    return ep->up && ep->pool ? 0 : -ENOMEM;
}

void kl_endpoint_close(struct kl_endpoint *ep)
{
    if (ep->up)
        lb_upstream_free(ep->up);
    if (ep->lb)
        lb_release(ep->lb);
    if (ep->cfg)
        config_free(ep->cfg);
    memset(ep, 0, sizeof(*ep));
}

/* ---- latency
 * ------------------------------------------------------------------------------------- */

void kl_hist_add(struct kl_hist *h, double ms)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 4096;
        double *v = realloc(h->v, cap * sizeof(*v));
        if (!v)
            return;
        h->v = v;
        h->cap = cap;
    }
    h->v[h->n++] = ms;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double kl_hist_pct(struct kl_hist *h, double p)
{
    if (!h->n)
        return 0;
    qsort(h->v, h->n, sizeof(*h->v), cmp_double);
    size_t i = (size_t)(p * (double)h->n);
    return h->v[i < h->n ? i : h->n - 1];
}

/* ---- truth arrival times
 * ------------------------------------------------------------------------- */

static struct kf_map truth_times;

void kl_truth_seen(const char *resource, const char *key, uint64_t rv, uint64_t at_us)
{
    char k[512];
    uint64_t *v;

    snprintf(k, sizeof(k), "%s/%s@%llu", resource, key, (unsigned long long)rv);
    if (kf_map_get(&truth_times, k) || !(v = malloc(sizeof(*v))))
        return;
    *v = at_us;
    if (kf_map_put(&truth_times, k, v) < 0)
        free(v);
}

bool kl_truth_time(const char *resource, const char *key, uint64_t rv, uint64_t *at_us)
{
    char k[512];
    uint64_t *v;

    snprintf(k, sizeof(k), "%s/%s@%llu", resource, key, (unsigned long long)rv);
    v = kf_map_get(&truth_times, k);
    if (v)
        *at_us = *v;
    return v != NULL;
}
