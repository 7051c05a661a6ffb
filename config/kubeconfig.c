/*
 * Reading a kubeconfig: the server and the TLS client settings of its
 * current context (cluster: server, certificate-authority[-data],
 * insecure-skip-tls-verify, tls-server-name; user: client-certificate[-data],
 * client-key[-data], token, tokenFile). Relative paths are resolved against
 * the kubeconfig's directory, as kubectl does.
 */
#include "config/config_internal.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <yaml.h>

/* Base64 as in kubeconfig *-data fields; NULL when malformed. */
static char *b64(struct kf_arena *a, const char *in, size_t *out_len)
{
    size_t len = strlen(in);
    unsigned char *out = kf_arena_alloc(a, len / 4 * 3 + 4);
    int n;

    if (!out || len % 4)
        return NULL;
    n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len);
    if (n < 0)
        return NULL;
    while (n > 0 && len > 0 && in[len - 1] == '=') { /* EVP_DecodeBlock counts the padding */
        n--;
        len--;
    }
    out[n] = '\0';
    *out_len = (size_t)n;
    return (char *)out;
}

/* The node at path a.b.c (mapping keys), or NULL. */
static yaml_node_t *get(yaml_document_t *doc, yaml_node_t *n, const char *key)
{
    if (!n || n->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        if (k && k->type == YAML_SCALAR_NODE && strcmp((char *)k->data.scalar.value, key) == 0)
            return yaml_document_get_node(doc, p->value);
    }
    return NULL;
}

static const char *scalar(yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* The entry of list (clusters, users, contexts) whose name is name; its inner mapping. */
static yaml_node_t *named(yaml_document_t *doc, yaml_node_t *root, const char *list,
                          const char *inner, const char *name)
{
    yaml_node_t *seq = get(doc, root, list);

    if (!seq || seq->type != YAML_SEQUENCE_NODE)
        return NULL;
    for (yaml_node_item_t *i = seq->data.sequence.items.start; i < seq->data.sequence.items.top;
         i++) {
        yaml_node_t *e = yaml_document_get_node(doc, *i);
        const char *n = scalar(get(doc, e, "name"));
        if (n && (!name || strcmp(n, name) == 0))
            return get(doc, e, inner);
    }
    return NULL;
}

static const char *path_in(struct kf_arena *a, const char *dir, const char *p)
{
    if (!p || p[0] == '/')
        return p ? kf_arena_strdup(a, p) : NULL;
    return kf_arena_sprintf(a, "%s/%s", dir, p);
}

static int take_data(struct kf_arena *a, yaml_node_t *n, const char **pem, size_t *len)
{
    const char *v = scalar(n);

    if (!v)
        return 0;
    *pem = b64(a, v, len);
    return *pem ? 0 : -EINVAL;
}

static int fill(yaml_document_t *doc, yaml_node_t *cluster, yaml_node_t *user, const char *dir,
                struct kf_arena *a, struct config_kubeconfig *kc, char *err, size_t errlen)
{
    struct config_tls_client *t = &kc->tls;
    const char *tok_file;

    kc->server = scalar(get(doc, cluster, "server"));
    if (!kc->server || strncmp(kc->server, "https://", 8) != 0) {
        snprintf(err, errlen, "the cluster has no https:// server");
        return -EINVAL;
    }
    kc->server = kf_arena_strdup(a, kc->server);
    t->ca_file = path_in(a, dir, scalar(get(doc, cluster, "certificate-authority")));
    t->server_name = scalar(get(doc, cluster, "tls-server-name"));
    t->server_name = t->server_name ? kf_arena_strdup(a, t->server_name) : NULL;
    const char *insecure = scalar(get(doc, cluster, "insecure-skip-tls-verify"));
    t->insecure_skip_verify = insecure && strcmp(insecure, "true") == 0;
    t->cert_file = path_in(a, dir, scalar(get(doc, user, "client-certificate")));
    t->key_file = path_in(a, dir, scalar(get(doc, user, "client-key")));
    if (take_data(a, get(doc, cluster, "certificate-authority-data"), &t->ca_pem, &t->ca_pem_len) ||
        take_data(a, get(doc, user, "client-certificate-data"), &t->cert_pem, &t->cert_pem_len) ||
        take_data(a, get(doc, user, "client-key-data"), &t->key_pem, &t->key_pem_len)) {
        snprintf(err, errlen, "a *-data field is not valid base64");
        return -EINVAL;
    }
    const char *token = scalar(get(doc, user, "token"));
    tok_file = path_in(a, dir, scalar(get(doc, user, "tokenFile")));
    if (token)
        t->authorization = kf_arena_sprintf(a, "Bearer %s", token);
    if (!token && tok_file) {
        FILE *f = fopen(tok_file, "r");
        char buf[4096];
        size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
        if (f)
            fclose(f);
        while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
            n--;
        if (!n) {
            snprintf(err, errlen, "tokenFile %s: unreadable or empty", tok_file);
            return -EINVAL;
        }
        t->authorization = kf_arena_sprintf(a, "Bearer %.*s", (int)n, buf);
    }
    return 0;
}

int config_kubeconfig_load(const char *path, struct kf_arena *arena, struct config_kubeconfig *kc,
                           char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    yaml_parser_t p;
    yaml_document_t doc;
    int rc = -EINVAL;

    memset(kc, 0, sizeof(*kc));
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -errno;
    }
    yaml_parser_initialize(&p);
    yaml_parser_set_input_file(&p, f);
    if (!yaml_parser_load(&p, &doc)) {
        snprintf(err, errlen, "%s:%zu:%zu: %s", path, p.problem_mark.line + 1,
                 p.problem_mark.column + 1, p.problem ? p.problem : "not YAML");
        goto out_parser;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    const char *current = scalar(get(&doc, root, "current-context"));
    yaml_node_t *ctx = named(&doc, root, "contexts", "context", current);
    const char *cname = scalar(get(&doc, ctx, "cluster")), *uname = scalar(get(&doc, ctx, "user"));
    yaml_node_t *cluster = named(&doc, root, "clusters", "cluster", cname);
    yaml_node_t *user = named(&doc, root, "users", "user", uname);
    char *copy = kf_arena_strdup(arena, path);
    if (!cluster) {
        snprintf(err, errlen, "%s: no cluster for the current context", path);
    } else if (copy) {
        char prefix[600];
        rc = fill(&doc, cluster, user, dirname(copy), arena, kc, prefix, sizeof(prefix));
        if (rc < 0)
            snprintf(err, errlen, "%s: %s", path, prefix);
    }
    yaml_document_delete(&doc);
out_parser:
    yaml_parser_delete(&p);
    fclose(f);
    return rc;
}

/* Take what a kubeconfig says of one credential kind unless the backend names its own file. */
static void take_kind(const char **file, const char **pem, size_t *pem_len, const char *kc_file,
                      const char *kc_pem, size_t kc_pem_len)
{
    if (*file)
        return;
    *file = kc_file;
    *pem = kc_pem;
    *pem_len = kc_pem_len;
}

int config_backend_apply_kubeconfig(struct config_backend *be, const struct config_kubeconfig *kc,
                                    struct kf_arena *arena)
{
    struct config_tls_client *t = &be->upstream_tls;
    const struct config_tls_client *k = &kc->tls;

    take_kind(&t->ca_file, &t->ca_pem, &t->ca_pem_len, k->ca_file, k->ca_pem, k->ca_pem_len);
    if (!t->cert_file && !t->key_file) {
        take_kind(&t->cert_file, &t->cert_pem, &t->cert_pem_len, k->cert_file, k->cert_pem,
                  k->cert_pem_len);
        take_kind(&t->key_file, &t->key_pem, &t->key_pem_len, k->key_file, k->key_pem,
                  k->key_pem_len);
    }
    if (!t->server_name)
        t->server_name = k->server_name;
    if (!t->authorization)
        t->authorization = k->authorization;
    t->insecure_skip_verify = t->insecure_skip_verify || k->insecure_skip_verify;
    if (be->n_servers || !kc->server)
        return 0;
    const char *hostport = kc->server + strlen("https://");
    struct config_server *srv = kf_arena_alloc(arena, sizeof(*srv));
    if (!srv)
        return -ENOMEM;
    *srv =
        (struct config_server){.name = "apiserver-1",
                               .address = kf_arena_strndup(arena, hostport, strcspn(hostport, "/")),
                               .weight = 1,
                               .check = be->check.type != CONFIG_CHECK_NONE,
                               .state = CONFIG_SERVER_ACTIVE};
    be->servers = srv;
    be->n_servers = 1;
    return srv->address ? 0 : -ENOMEM;
}
