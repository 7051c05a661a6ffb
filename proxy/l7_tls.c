/* TLS contexts of mode http: serving clients, and reaching apiservers. */
#include "proxy/l7.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

static void ssl_reason(char *err, size_t size, const char *what)
{
    char ssl[200];

    ERR_error_string_n(ERR_get_error(), ssl, sizeof(ssl));
    snprintf(err, size, "%s: %s", what, ssl);
    ERR_clear_error();
}

struct ssl_ctx_st *px_l7_server_tls(const struct config_frontend *fe, char *err, size_t err_size)
{
    struct px_tls_sni_cert *sni = calloc(fe->tls.n_sni + 1, sizeof(*sni));
    SSL_CTX *ctx;

    if (!sni) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < fe->tls.n_sni; i++) {
        const struct config_sni_cert *s = &fe->tls.sni[i];
        sni[i] = (struct px_tls_sni_cert){s->cert_file, s->key_file ? s->key_file : s->cert_file,
                                          s->names, s->n_names};
    }
    struct px_tls_config tls = {
        .sni = sni,
        .n_sni = fe->tls.n_sni,
        .cert_file = fe->tls.cert_file,
        .key_file = fe->tls.key_file ? fe->tls.key_file : fe->tls.cert_file,
        .client_ca_file = fe->tls.client_ca_file,
        /* As the apiserver: a missing or bad client certificate means no identity, not a
         * failed handshake; authorization then decides. */
        .client_auth = fe->tls.client_ca_file ? PX_CLIENT_AUTH_REQUEST : PX_CLIENT_AUTH_NONE,
    };
    ctx = px_tls_ctx_new(&tls, err, err_size);
    free(sni); /* the contexts keep nothing of it */
    return ctx;
}

static int load_ca(SSL_CTX *ctx, const struct config_tls_client *t)
{
    if (t->ca_pem) {
        BIO *bio = BIO_new_mem_buf(t->ca_pem, (int)t->ca_pem_len);
        X509_STORE *store = SSL_CTX_get_cert_store(ctx);
        X509 *x;
        int n = 0;

        if (!bio)
            return -1;
        while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
            X509_STORE_add_cert(store, x);
            X509_free(x);
            n++;
        }
        ERR_clear_error(); /* the end of the bundle reads as an error */
        BIO_free(bio);
        return n > 0 ? 0 : -1;
    }
    if (t->ca_file)
        return SSL_CTX_load_verify_locations(ctx, t->ca_file, NULL) == 1 ? 0 : -1;
    return SSL_CTX_set_default_verify_paths(ctx) == 1 ? 0 : -1;
}

static int load_identity(SSL_CTX *ctx, const char *cert_file, const char *key_file,
                         const char *cert_pem, size_t cert_len, const char *key_pem, size_t key_len)
{
    if (cert_pem && key_pem) {
        BIO *cb = BIO_new_mem_buf(cert_pem, (int)cert_len);
        BIO *kb = BIO_new_mem_buf(key_pem, (int)key_len);
        X509 *x = cb ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
        EVP_PKEY *k = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
        int ok =
            x && k && SSL_CTX_use_certificate(ctx, x) == 1 && SSL_CTX_use_PrivateKey(ctx, k) == 1;
        X509_free(x);
        EVP_PKEY_free(k);
        BIO_free(cb);
        BIO_free(kb);
        return ok ? 0 : -1;
    }
    if (!cert_file)
        return 0;
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key_file ? key_file : cert_file, SSL_FILETYPE_PEM) != 1)
        return -1;
    return 0;
}

struct ssl_ctx_st *px_l7_upstream_tls(const struct config *cfg, const struct config_backend *be,
                                      char *err, size_t err_size)
{
    const struct config_tls_client *t = &be->upstream_tls;
    const struct config_identity *id = &cfg->identity;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    int rc;

    if (!ctx) {
        ssl_reason(err, err_size, "SSL_CTX_new");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, t->insecure_skip_verify ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    if (load_ca(ctx, t) < 0) {
        ssl_reason(err, err_size, "upstream CA");
        goto fail;
    }
    if (id->mode == CONFIG_IDENTITY_FRONT_PROXY)
        rc = load_identity(ctx, id->proxy_client_cert_file, id->proxy_client_key_file, NULL, 0,
                           NULL, 0);
    else if (id->mode == CONFIG_IDENTITY_IMPERSONATE)
        rc = load_identity(ctx, t->cert_file, t->key_file, t->cert_pem, t->cert_pem_len, t->key_pem,
                           t->key_pem_len);
    else
        rc = 0; /* passthrough: a client certificate of kfront's would win over the client's
                 * token at the apiserver, so none is presented */
    if (rc < 0) {
        ssl_reason(err, err_size, "kfront's upstream client certificate");
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}
