/*
 * TLS: the server SSL_CTX (TLS 1.2/1.3, ALPN, client-certificate policy) and
 * the identity of a verified client certificate.
 */
#include "proxy/http/http_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

/* Server preference order, in ALPN wire format. */
static const unsigned char alpn_h2[] = "\x02h2\x08http/1.1";
static const unsigned char alpn_h1[] = "\x08http/1.1";

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    bool no_h2 = arg != NULL;
    const unsigned char *srv = no_h2 ? alpn_h1 : alpn_h2;
    unsigned srv_len = (unsigned)(no_h2 ? sizeof(alpn_h1) : sizeof(alpn_h2)) - 1;
    unsigned char *sel;

    (void)ssl;
    if (SSL_select_next_proto(&sel, outlen, srv, srv_len, in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK; /* no overlap: carry on without ALPN (HTTP/1.1) */
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* REQUEST mode: never fail the handshake; px_tls_identity checks the result. */
static int verify_accept_all(int preverify_ok, X509_STORE_CTX *x509_ctx)
{
    (void)preverify_ok;
    (void)x509_ctx;
    return 1;
}

static void tls_error(char *err, size_t size, const char *what, const char *file)
{
    char ossl[256] = "";
    unsigned long e = ERR_peek_last_error();

    if (e)
        ERR_error_string_n(e, ossl, sizeof(ossl));
    snprintf(err, size, "%s %s: %s", what, file ? file : "", e ? ossl : "invalid");
    ERR_clear_error();
}

static int tls_client_auth(SSL_CTX *ctx, const struct px_tls_config *cfg, char *err, size_t size)
{
    STACK_OF(X509_NAME) * names;

    if (cfg->client_auth == PX_CLIENT_AUTH_NONE)
        return 0;
    if (!cfg->client_ca_file && cfg->client_auth == PX_CLIENT_AUTH_REQUEST) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_accept_all); /* take any cert */
        return 0;
    }
    if (!cfg->client_ca_file) {
        snprintf(err, size, "client certificate auth needs client_ca_file");
        return -EINVAL;
    }
    if (SSL_CTX_load_verify_locations(ctx, cfg->client_ca_file, NULL) != 1) {
        tls_error(err, size, "client CA", cfg->client_ca_file);
        return -EINVAL;
    }
    names = SSL_load_client_CA_file(cfg->client_ca_file);
    if (!names) {
        tls_error(err, size, "client CA names", cfg->client_ca_file);
        return -EINVAL;
    }
    SSL_CTX_set_client_CA_list(ctx, names); /* tells clients which cert to pick */
    if (cfg->client_auth == PX_CLIENT_AUTH_REQUIRE)
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    else
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_accept_all);
    return 0;
}

struct ssl_ctx_st *px_tls_ctx_new(const struct px_tls_config *cfg, char *err, size_t err_size)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    static const unsigned char sid_ctx[] = "kfront";

    if (!ctx) {
        tls_error(err, err_size, "SSL_CTX_new", NULL);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* Idle kubelet connections number in thousands: drop TLS buffers between reads. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    /* TLS 1.2: forward-secret AEAD only (also what HTTP/2 requires). */
    SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20");
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
    if (!cfg->cert_file || SSL_CTX_use_certificate_chain_file(ctx, cfg->cert_file) != 1) {
        tls_error(err, err_size, "certificate", cfg->cert_file);
        goto fail;
    }
    if (!cfg->key_file || SSL_CTX_use_PrivateKey_file(ctx, cfg->key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        tls_error(err, err_size, "private key", cfg->key_file);
        goto fail;
    }
    if (tls_client_auth(ctx, cfg, err, err_size) < 0)
        goto fail;
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, cfg->disable_h2 ? (void *)ctx : NULL);
    if (px_tls_sni_attach(ctx, cfg, err, err_size) < 0)
        goto fail;
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

/* UTF-8 copy of a name entry; NULL if absent or if it holds a control byte (NUL, CR, LF...):
 * the identity travels in header values. */
static char *name_entry_utf8(X509_NAME *name, int idx)
{
    X509_NAME_ENTRY *e = X509_NAME_get_entry(name, idx);
    unsigned char *utf8 = NULL;
    int n = e ? ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e)) : -1;
    char *s = NULL;

    bool clean = n >= 0;

    for (int i = 0; clean && i < n; i++)
        clean = utf8[i] >= 0x20 && utf8[i] != 0x7f;
    if (clean)
        s = strndup((const char *)utf8, (size_t)n);
    OPENSSL_free(utf8);
    return s;
}

static char *issuer_string(X509 *cert)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data = NULL, *s = NULL;
    long n;

    if (!bio)
        return NULL;
    if (X509_NAME_print_ex(bio, X509_get_issuer_name(cert), 0, XN_FLAG_RFC2253) >= 0) {
        n = BIO_get_mem_data(bio, &data);
        if (n >= 0)
            s = strndup(n ? data : "", (size_t)n);
    }
    BIO_free(bio);
    return s;
}

#define PX_MAX_ORGS 32

/* Pack CN, orgs and issuer into one malloc block that frees with free(). */
static struct px_peer_identity *identity_pack(char *cn, char **orgs, size_t n, char *issuer)
{
    size_t size = sizeof(struct px_peer_identity) + (n + 1) * sizeof(char *);
    size_t cn_len = strlen(cn), is_len = strlen(issuer);
    struct px_peer_identity *id;
    char *p;

    size += cn_len + 1 + is_len + 1;
    for (size_t i = 0; i < n; i++)
        size += strlen(orgs[i]) + 1;
    id = malloc(size);
    if (!id)
        return NULL;
    const char **ov = (const char **)(id + 1);
    p = (char *)(ov + n + 1);
    id->subject_cn = memcpy(p, cn, cn_len + 1);
    p += cn_len + 1;
    id->issuer = memcpy(p, issuer, is_len + 1);
    p += is_len + 1;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(orgs[i]) + 1;

        ov[i] = memcpy(p, orgs[i], l);
        p += l;
    }
    ov[n] = NULL;
    id->orgs = ov;
    id->n_orgs = n;
    return id;
}

static struct px_peer_identity *identity_of(SSL *ssl, X509 *cert)
{
    struct px_peer_identity *id = NULL;
    char *orgs[PX_MAX_ORGS], *cn = NULL, *issuer = NULL;
    size_t n = 0;
    int idx = -1;

    if (SSL_get_verify_result(ssl) != X509_V_OK)
        return NULL;
    X509_NAME *subj = X509_get_subject_name(cert);
    /* the last CN, as Go's pkix.Name reads a subject (the apiserver's user name) */
    for (int i = -1; (i = X509_NAME_get_index_by_NID(subj, NID_commonName, i)) >= 0;)
        idx = i;
    cn = idx >= 0 ? name_entry_utf8(subj, idx) : strdup("");
    for (idx = -1; n < PX_MAX_ORGS;) {
        idx = X509_NAME_get_index_by_NID(subj, NID_organizationName, idx);
        if (idx < 0)
            break;
        orgs[n] = name_entry_utf8(subj, idx);
        if (!orgs[n])
            goto out; /* an O we cannot represent: no identity rather than a wrong one */
        n++;
    }
    issuer = issuer_string(cert);
    if (cn && issuer)
        id = identity_pack(cn, orgs, n, issuer);
out:
    for (size_t i = 0; i < n; i++)
        free(orgs[i]);
    free(cn);
    free(issuer);
    return id;
}

struct px_tls_peer *px_tls_peer_get(struct bufferevent *bev)
{
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    X509 *cert = ssl ? SSL_get1_peer_certificate(ssl) : NULL;
    STACK_OF(X509) *chain = cert ? SSL_get_peer_cert_chain(ssl) : NULL;
    struct px_tls_peer *p = cert ? calloc(1, sizeof(*p)) : NULL;

    if (!p) {
        X509_free(cert);
        return NULL;
    }
    p->cert = cert;
    p->chain = chain ? X509_chain_up_ref(chain) : NULL;
    p->id = identity_of(ssl, cert);
    return p;
}

void px_tls_peer_free(struct px_tls_peer *peer)
{
    if (!peer)
        return;
    free(peer->id);
    X509_free(peer->cert);
    sk_X509_pop_free(peer->chain, X509_free);
    free(peer);
}
