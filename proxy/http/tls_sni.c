/*
 * Serving certificates chosen by SNI, like the apiserver's --tls-sni-cert-key:
 * each extra certificate serves the names given with it, or else the names it
 * carries (CN and DNS subject alternative names). An exact name beats a
 * wildcard ("*.example.com" covers one label), names given explicitly beat
 * names read from a certificate, and an earlier certificate beats a later
 * one. A client that sends no name, or one nothing matches, gets the default
 * certificate.
 *
 * The table hangs off the default SSL_CTX (ex_data) and dies with it, so a
 * reload that builds a new context rebuilds the table too.
 */
#include "proxy/http/http_internal.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

struct sni_name {
    char *pattern; /* lower case; "*.rest" for a wildcard */
    SSL_CTX *ctx;  /* referenced by the table's ctxs */
    bool explicit_;
};

struct sni_table {
    struct sni_name *names;
    size_t n_names, cap;
    SSL_CTX **ctxs;
    size_t n_ctxs;
};

static int table_index = -1;
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void table_free(struct sni_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n_names; i++)
        free(t->names[i].pattern);
    for (size_t i = 0; i < t->n_ctxs; i++)
        SSL_CTX_free(t->ctxs[i]);
    free(t->names);
    free(t->ctxs);
    free(t);
}

static void table_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                          void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    table_free(ptr);
}

static void table_index_init(void)
{
    table_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, table_ex_free);
}

static int add_name(struct sni_table *t, const char *name, size_t len, SSL_CTX *ctx, bool explicit_)
{
    char *p;

    if (len == 0 || len > 253)
        return 0; /* nothing a client could send */
    if (t->n_names == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 8;
        struct sni_name *grown = realloc(t->names, cap * sizeof(*grown));
        if (!grown)
            return -ENOMEM;
        t->names = grown;
        t->cap = cap;
    }
    p = strndup(name, len);
    if (!p)
        return -ENOMEM;
    for (char *c = p; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    t->names[t->n_names++] = (struct sni_name){p, ctx, explicit_};
    return 0;
}

/* The names a certificate carries: its CN and DNS subject alternative names. */
static int add_cert_names(struct sni_table *t, SSL_CTX *ctx)
{
    X509 *cert = SSL_CTX_get0_certificate(ctx);
    GENERAL_NAMES *sans = cert ? X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL) : NULL;
    char cn[256];
    int rc = 0;

    if (cert &&
        X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn)) > 0)
        rc = add_name(t, cn, strlen(cn), ctx, false);
    for (int i = 0; rc == 0 && i < sk_GENERAL_NAME_num(sans); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
        if (g->type == GEN_DNS)
            rc = add_name(t, (const char *)ASN1_STRING_get0_data(g->d.dNSName),
                          (size_t)ASN1_STRING_length(g->d.dNSName), ctx, false);
    }
    GENERAL_NAMES_free(sans);
    return rc;
}

/* The context for a pattern: explicit names first, then in the order given. */
static SSL_CTX *lookup(const struct sni_table *t, const char *pattern)
{
    SSL_CTX *extracted = NULL;

    for (size_t i = 0; i < t->n_names; i++) {
        if (strcmp(t->names[i].pattern, pattern) != 0)
            continue;
        if (t->names[i].explicit_)
            return t->names[i].ctx;
        if (!extracted)
            extracted = t->names[i].ctx;
    }
    return extracted;
}

SSL_CTX *px_tls_sni_match(SSL_CTX *main, const char *server_name)
{
    const struct sni_table *t = table_index >= 0 ? SSL_CTX_get_ex_data(main, table_index) : NULL;
    char name[256], wild[258];
    const char *dot;
    SSL_CTX *ctx;
    size_t len = server_name ? strlen(server_name) : 0;

    if (!t || len == 0 || len >= sizeof(name))
        return NULL;
    for (size_t i = 0; i <= len; i++)
        name[i] = (char)tolower((unsigned char)server_name[i]);
    if ((ctx = lookup(t, name)))
        return ctx;
    dot = strchr(name, '.');
    if (!dot || !dot[1])
        return NULL;
    snprintf(wild, sizeof(wild), "*%s", dot);
    return lookup(t, wild);
}

static int on_servername(SSL *ssl, int *alert, void *arg)
{
    SSL_CTX *ctx = px_tls_sni_match(arg, SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name));

    (void)alert;
    if (ctx && !SSL_set_SSL_CTX(ssl, ctx))
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    return SSL_TLSEXT_ERR_OK;
}

int px_tls_sni_attach(SSL_CTX *main, const struct px_tls_config *cfg, char *err, size_t size)
{
    struct sni_table *t;
    int rc = -ENOMEM;

    if (!cfg->n_sni)
        return 0;
    pthread_once(&table_once, table_index_init);
    t = calloc(1, sizeof(*t));
    if (!t || table_index < 0 || !(t->ctxs = calloc(cfg->n_sni, sizeof(*t->ctxs))))
        goto fail;
    for (size_t i = 0; i < cfg->n_sni; i++) {
        const struct px_tls_sni_cert *s = &cfg->sni[i];
        struct px_tls_config one = *cfg;
        one.cert_file = s->cert_file;
        one.key_file = s->key_file;
        one.sni = NULL;
        one.n_sni = 0;
        SSL_CTX *ctx = px_tls_ctx_new(&one, err, size);
        if (!ctx) {
            rc = -EINVAL;
            goto fail;
        }
        t->ctxs[t->n_ctxs++] = ctx;
        rc = 0;
        for (size_t j = 0; rc == 0 && j < s->n_names; j++)
            rc = add_name(t, s->names[j], strlen(s->names[j]), ctx, true);
        if (rc == 0 && s->n_names == 0)
            rc = add_cert_names(t, ctx);
        if (rc < 0)
            goto fail;
    }
    if (!SSL_CTX_set_ex_data(main, table_index, t))
        goto fail;
    SSL_CTX_set_tlsext_servername_callback(main, on_servername);
    SSL_CTX_set_tlsext_servername_arg(main, main);
    return 0;
fail:
    if (rc == -ENOMEM)
        snprintf(err, size, "SNI certificates: out of memory");
    table_free(t);
    return rc;
}
