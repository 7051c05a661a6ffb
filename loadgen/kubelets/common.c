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

#include "config/config.h"

struct kl_stats kl_stats;

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

struct ssl_ctx_st *kl_tls_ctx(const struct config_kubeconfig *kc, bool with_cert, char *err,
                              size_t errlen)
{
    const struct config_tls_client *t = &kc->tls;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    int rc = 0;

    if (!ctx)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (t->insecure_skip_verify)
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    if (t->ca_pem)
        rc = add_ca_pem(ctx, t->ca_pem);
    else if (t->ca_file)
        rc = SSL_CTX_load_verify_locations(ctx, t->ca_file, NULL) == 1 ? 0 : -EINVAL;
    else
        SSL_CTX_set_default_verify_paths(ctx);
    if (rc == 0 && with_cert && t->cert_pem && t->key_pem)
        rc = use_cert_pem(ctx, t->cert_pem, t->key_pem);
    else if (rc == 0 && with_cert && t->cert_file && t->key_file)
        rc = SSL_CTX_use_certificate_chain_file(ctx, t->cert_file) == 1 &&
                     SSL_CTX_use_PrivateKey_file(ctx, t->key_file, SSL_FILETYPE_PEM) == 1
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
