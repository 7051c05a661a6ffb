/*
 * The TLS side of active checks (OpenSSL 3): one client SSL_CTX per backend,
 * one SSL per check attempt on the check's non-blocking socket.
 *
 * The peer is verified against ca_file (or the system store) unless
 * insecure_skip_verify, and its certificate must name server_name or, by
 * default, the host of the server's address. Apiserver certificates carry
 * the masters' IP addresses as IP SANs, so an IP literal is verified as an IP
 * (and, as RFC 6066 requires, not sent as SNI).
 */
#include "lb/lb_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

void lb_tls_error_string(char *err, size_t size, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[160];

    if (e == 0) {
        snprintf(err, size, "%s failed", what);
        return;
    }
    ERR_error_string_n(e, buf, sizeof(buf));
    snprintf(err, size, "%s: %s", what, buf);
    ERR_clear_error();
}

static int load_client_cert(SSL_CTX *ctx, const struct config_tls_client *tls, char *err,
                            size_t size)
{
    if (!tls->cert_file)
        return 0;
    if (!tls->key_file) {
        snprintf(err, size, "cert_file %s needs a key_file", tls->cert_file);
        return -EINVAL;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, tls->cert_file) != 1) {
        lb_tls_error_string(err, size, tls->cert_file);
        return -EINVAL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, tls->key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        lb_tls_error_string(err, size, tls->key_file);
        return -EINVAL;
    }
    return 0;
}

static int load_trust(SSL_CTX *ctx, const struct config_tls_client *tls, char *err, size_t size)
{
    if (tls->insecure_skip_verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        return 0;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (tls->ca_file ? SSL_CTX_load_verify_locations(ctx, tls->ca_file, NULL) != 1
                     : SSL_CTX_set_default_verify_paths(ctx) != 1) {
        lb_tls_error_string(err, size, tls->ca_file ? tls->ca_file : "system trust store");
        return -EINVAL;
    }
    return 0;
}

int lb_tls_ctx_new(struct lb_check_params *params, const struct config_tls_client *tls, char *err,
                   size_t err_size)
{
    static const unsigned char alpn_http11[] = "\x08http/1.1";
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    ERR_clear_error();
    if (!ctx) {
        lb_tls_error_string(err, err_size, "SSL_CTX_new");
        return -ENOMEM;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* A peer that closes without close_notify after its answer is not a failure. */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    if (load_trust(ctx, tls, err, err_size) < 0 || load_client_cert(ctx, tls, err, err_size) < 0) {
        SSL_CTX_free(ctx);
        return -EINVAL;
    }
    if (params->type == CONFIG_CHECK_HTTPS)
        SSL_CTX_set_alpn_protos(ctx, alpn_http11, sizeof(alpn_http11) - 1);
    params->ssl_ctx = ctx;
    return 0;
}

void lb_tls_ctx_free(struct lb_check_params *params)
{
    SSL_CTX_free(params->ssl_ctx);
    params->ssl_ctx = NULL;
}

static bool is_ip_literal(const char *name)
{
    unsigned char buf[sizeof(struct in6_addr)];

    return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

int lb_tls_set_peer_name(SSL *ssl, const char *name, bool verify)
{
    bool ip = is_ip_literal(name);

    if (!ip && SSL_set_tlsext_host_name(ssl, name) != 1)
        return -EINVAL;
    if (!verify)
        return 0;
    if (ip)
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1 ? 0 : -EINVAL;
    return SSL_set1_host(ssl, name) == 1 ? 0 : -EINVAL;
}

int lb_check_tls_begin(struct lb_check *c)
{
    const char *name = c->pool->check.server_name ? c->pool->check.server_name : c->server->host;
    SSL *ssl;

    ERR_clear_error();
    ssl = SSL_new(c->pool->check.ssl_ctx);
    if (!ssl || SSL_set_fd(ssl, c->fd) != 1 ||
        (name && lb_tls_set_peer_name(ssl, name, c->pool->check.verify) < 0)) {
        lb_tls_error_string(c->error, sizeof(c->error), "tls setup");
        SSL_free(ssl);
        return -EINVAL;
    }
    SSL_set_connect_state(ssl);
    c->ssl = ssl;
    return 0;
}

void lb_check_tls_end(struct lb_check *c)
{
    /* No close_notify: the check is over and the socket is closed next. */
    SSL_free(c->ssl);
    c->ssl = NULL;
}

/* Map an SSL_* failure to KF_AGAIN (+ direction), end of stream, or an error. */
static int tls_result(struct lb_check *c, int r, short *want, bool *eof)
{
    int e = SSL_get_error(c->ssl, r);
    long verify;

    switch (e) {
    case SSL_ERROR_WANT_READ:
        *want = EV_READ;
        return KF_AGAIN;
    case SSL_ERROR_WANT_WRITE:
        *want = EV_WRITE;
        return KF_AGAIN;
    case SSL_ERROR_ZERO_RETURN:
        *eof = true;
        return 0;
    case SSL_ERROR_SYSCALL:
        if (errno == 0) {
            *eof = true;
            return 0;
        }
        snprintf(c->error, sizeof(c->error), "tls: %s", strerror(errno));
        return -errno;
    default:
        break;
    }
    verify = SSL_get_verify_result(c->ssl);
    if (verify != X509_V_OK) {
        snprintf(c->error, sizeof(c->error), "tls: certificate verify failed: %s",
                 X509_verify_cert_error_string(verify));
        ERR_clear_error();
    } else {
        lb_tls_error_string(c->error, sizeof(c->error), "tls");
    }
    return -EPROTO;
}

int lb_check_tls_handshake(struct lb_check *c, short *want)
{
    bool eof = false;
    int r, rc;

    ERR_clear_error();
    errno = 0;
    r = SSL_connect(c->ssl);
    if (r == 1)
        return 0;
    rc = tls_result(c, r, want, &eof);
    if (eof) {
        snprintf(c->error, sizeof(c->error), "tls: connection closed during the handshake");
        return -ECONNRESET;
    }
    return rc;
}

int lb_check_tls_io(struct lb_check *c, bool writing, char *buf, size_t len, size_t *n, short *want)
{
    bool eof = false;
    int ok, rc;

    ERR_clear_error();
    errno = 0;
    *n = 0;
    ok = writing ? SSL_write_ex(c->ssl, buf, len, n) : SSL_read_ex(c->ssl, buf, len, n);
    if (ok == 1)
        return 0;
    rc = tls_result(c, 0, want, &eof);
    *n = 0;
    return eof ? 0 : rc;
}
