/*
 * pki: the certificates a kubeadm cluster has, made with the OpenSSL API.
 *
 * An existing ca.crt/ca.key (and front-proxy-ca.*) in the directory is kept,
 * so several kube-sim processes (or a restarted one) share one trust root and
 * client certificates made earlier stay valid. Leaf certificates are made
 * fresh each start.
 */
#include "loadgen/kube-sim/kube_sim.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define MODULE "kube-sim"

struct cred {
    X509 *cert;
    EVP_PKEY *key;
};

static void cred_free(struct cred *c)
{
    X509_free(c->cert);
    EVP_PKEY_free(c->key);
    c->cert = NULL;
    c->key = NULL;
}

static EVP_PKEY *new_key(void)
{
    return EVP_EC_gen("P-256");
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;

    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!ext)
        return -EINVAL;
    int ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : -EINVAL;
}

static int set_subject(X509 *cert, const char *cn, const char *const *orgs, size_t n_orgs)
{
    X509_NAME *name = X509_get_subject_name(cert);

    for (size_t i = 0; i < n_orgs; i++)
        if (!X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)orgs[i],
                                        -1, -1, 0))
            return -EINVAL;
    if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
                                    0))
        return -EINVAL;
    return 0;
}

static int random_serial(X509 *cert)
{
    BIGNUM *bn = BN_new();
    int rc = -ENOMEM;

    if (bn && BN_rand(bn, 64, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) &&
        BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)))
        rc = 0;
    BN_free(bn);
    return rc;
}

/*
 * One certificate. issuer NULL = self-signed CA. usage is "server", "client"
 * or "ca"; san (server only) is an OpenSSL subjectAltName value.
 */
static int make_cert(struct cred *out, const struct cred *issuer, const char *cn,
                     const char *const *orgs, size_t n_orgs, const char *usage, const char *san)
{
    X509 *cert = X509_new();
    EVP_PKEY *key = new_key();
    bool is_ca = strcmp(usage, "ca") == 0;

    if (!cert || !key)
        goto fail;
    X509_set_version(cert, 2);
    if (random_serial(cert) < 0 || set_subject(cert, cn, orgs, n_orgs) < 0)
        goto fail;
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), (long)3650 * 24 * 3600);
    X509_set_pubkey(cert, key);
    X509 *signer = issuer ? issuer->cert : cert;
    X509_set_issuer_name(cert, X509_get_subject_name(signer));
    if (add_ext(cert, signer, NID_basic_constraints,
                is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE") < 0 ||
        add_ext(cert, signer, NID_key_usage,
                is_ca ? "critical,digitalSignature,keyEncipherment,keyCertSign,cRLSign"
                      : "critical,digitalSignature,keyEncipherment") < 0 ||
        add_ext(cert, signer, NID_subject_key_identifier, "hash") < 0)
        goto fail;
    if (!is_ca && add_ext(cert, signer, NID_ext_key_usage,
                          strcmp(usage, "server") == 0 ? "serverAuth" : "clientAuth") < 0)
        goto fail;
    if (san && add_ext(cert, signer, NID_subject_alt_name, san) < 0)
        goto fail;
    if (!X509_sign(cert, issuer ? issuer->key : key, EVP_sha256()))
        goto fail;
    out->cert = cert;
    out->key = key;
    return 0;
fail:
    X509_free(cert);
    EVP_PKEY_free(key);
    return -EINVAL;
}

static int write_pem(const char *dir, const char *name, const struct cred *c, bool with_key)
{
    char path[4096];
    FILE *f;
    int ok;

    snprintf(path, sizeof(path), "%s/%s.crt", dir, name);
    f = fopen(path, "w");
    if (!f)
        return -errno;
    ok = PEM_write_X509(f, c->cert);
    if (fclose(f) != 0 || !ok)
        return -EIO;
    if (!with_key)
        return 0;
    snprintf(path, sizeof(path), "%s/%s.key", dir, name);
    f = fopen(path, "w");
    if (!f)
        return -errno;
    fchmod(fileno(f), 0600);
    ok = PEM_write_PrivateKey(f, c->key, NULL, NULL, 0, NULL, NULL);
    if (fclose(f) != 0 || !ok)
        return -EIO;
    return 0;
}

static bool load_pem(const char *dir, const char *name, struct cred *c)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s.crt", dir, name);
    f = fopen(path, "r");
    if (!f)
        return false;
    c->cert = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    snprintf(path, sizeof(path), "%s/%s.key", dir, name);
    f = fopen(path, "r");
    if (f) {
        c->key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
        fclose(f);
    }
    if (c->cert && c->key && X509_check_private_key(c->cert, c->key))
        return true;
    cred_free(c);
    return false;
}

/* Load the CA called name from dir, or make and write a new one. */
static int ensure_ca(const char *dir, const char *name, const char *cn, struct cred *ca)
{
    if (load_pem(dir, name, ca))
        return 0;
    int rc = make_cert(ca, NULL, cn, NULL, 0, "ca", NULL);
    if (rc == 0)
        rc = write_pem(dir, name, ca, true);
    return rc;
}

static int leaf(const char *dir, const char *file, const struct cred *ca, const char *cn,
                const char *const *orgs, size_t n_orgs, const char *usage, const char *san)
{
    struct cred c = {0};
    int rc = make_cert(&c, ca, cn, orgs, n_orgs, usage, san);

    if (rc == 0)
        rc = write_pem(dir, file, &c, true);
    cred_free(&c);
    if (rc < 0)
        kf_err(MODULE, "cannot write %s/%s.crt: %s", dir, file, strerror(-rc));
    return rc;
}

/* "CN[=GROUP,GROUP...]" -> user-<CN with ':' -> '-'>.crt signed by ca. */
static int user_cert(const char *dir, const struct cred *ca, const char *spec)
{
    char buf[512], file[600];
    const char *orgs[16];
    size_t n = 0;

    snprintf(buf, sizeof(buf), "%s", spec);
    /* CNs like system:node:x contain ':', so groups follow a '='. */
    char *groups = strchr(buf, '=');
    if (groups) {
        *groups++ = '\0';
        for (char *save = NULL, *g = strtok_r(groups, ",", &save); g && n < KF_ARRAY_SIZE(orgs);
             g = strtok_r(NULL, ",", &save))
            orgs[n++] = g;
    }
    snprintf(file, sizeof(file), "user-%s", buf);
    for (char *p = file; *p; p++)
        if (*p == ':' || *p == '/')
            *p = '-';
    return leaf(dir, file, ca, buf, orgs, n, "client", NULL);
}

int ks_pki_setup(const char *dir, const char *const *user_specs, size_t n_users)
{
    struct cred ca = {0}, fp_ca = {0};
    static const char *const masters[] = {"system:masters"};
    int rc;

    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        kf_err(MODULE, "cannot create %s: %s", dir, strerror(errno));
        return -errno;
    }
    rc = ensure_ca(dir, "ca", "kubernetes", &ca);
    if (rc == 0)
        rc = ensure_ca(dir, "front-proxy-ca", "front-proxy-ca", &fp_ca);
    if (rc == 0)
        rc = leaf(dir, "apiserver", &ca, "kube-apiserver", NULL, 0, "server",
                  "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
                  "DNS:kubernetes.default.svc,IP:127.0.0.1,IP:::1");
    if (rc == 0)
        rc = leaf(dir, "admin", &ca, "kubernetes-admin", masters, 1, "client", NULL);
    if (rc == 0)
        rc = leaf(dir, "front-proxy-client", &fp_ca, "front-proxy-client", NULL, 0, "client", NULL);
    for (size_t i = 0; rc == 0 && i < n_users; i++)
        rc = user_cert(dir, &ca, user_specs[i]);
    if (rc == 0)
        rc = ks_pki_write_bundle(dir);
    cred_free(&ca);
    cred_free(&fp_ca);
    if (rc < 0)
        kf_err(MODULE, "certificate setup in %s failed: %s", dir, strerror(-rc));
    return rc;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long size;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)size + 1);
        if (buf && fread(buf, 1, (size_t)size, f) != (size_t)size) {
            free(buf);
            buf = NULL;
        }
        if (buf) {
            buf[size] = '\0';
            *len = (size_t)size;
        }
    }
    fclose(f);
    return buf;
}

/* Both CAs in one file: what the TLS server verifies client certificates with. */
int ks_pki_write_bundle(const char *dir)
{
    static const char *const parts[] = {"ca.crt", "front-proxy-ca.crt"};
    char path[4096];
    FILE *out;
    int rc = 0;

    snprintf(path, sizeof(path), "%s/client-ca-bundle.crt", dir);
    out = fopen(path, "w");
    if (!out)
        return -errno;
    for (size_t i = 0; i < KF_ARRAY_SIZE(parts); i++) {
        size_t len;
        snprintf(path, sizeof(path), "%s/%s", dir, parts[i]);
        char *pem = read_file(path, &len);
        if (!pem || fwrite(pem, 1, len, out) != len)
            rc = -EIO;
        free(pem);
    }
    if (fclose(out) != 0)
        rc = -EIO;
    return rc;
}

/* base64 of a whole file, NULL on failure. */
static char *file_base64(const char *path)
{
    size_t len;
    char *raw = read_file(path, &len);
    char *b64;

    if (!raw)
        return NULL;
    b64 = malloc(4 * ((len + 2) / 3) + 1);
    if (b64)
        EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)raw, (int)len);
    free(raw);
    return b64;
}

int ks_kubeconfig_write(const char *path, const char *server_url, const char *cert_dir)
{
    char p[4096];
    char *ca, *crt = NULL, *key = NULL;
    int rc = -EIO;
    FILE *f;

    snprintf(p, sizeof(p), "%s/ca.crt", cert_dir);
    ca = file_base64(p);
    snprintf(p, sizeof(p), "%s/admin.crt", cert_dir);
    crt = file_base64(p);
    snprintf(p, sizeof(p), "%s/admin.key", cert_dir);
    key = file_base64(p);
    if (!ca || !crt || !key)
        goto out;
    f = fopen(path, "w");
    if (!f)
        goto out;
    fchmod(fileno(f), 0600);
    fprintf(f,
            "apiVersion: v1\n"
            "kind: Config\n"
            "clusters:\n"
            "- name: kube-sim\n"
            "  cluster:\n"
            "    server: %s\n"
            "    certificate-authority-data: %s\n"
            "users:\n"
            "- name: kubernetes-admin\n"
            "  user:\n"
            "    client-certificate-data: %s\n"
            "    client-key-data: %s\n"
            "contexts:\n"
            "- name: kubernetes-admin@kube-sim\n"
            "  context:\n"
            "    cluster: kube-sim\n"
            "    user: kubernetes-admin\n"
            "current-context: kubernetes-admin@kube-sim\n"
            "preferences: {}\n",
            server_url, ca, crt, key);
    rc = fclose(f) == 0 ? 0 : -EIO;
out:
    if (rc < 0)
        kf_err(MODULE, "cannot write kubeconfig %s", path);
    free(ca);
    free(crt);
    free(key);
    return rc;
}
