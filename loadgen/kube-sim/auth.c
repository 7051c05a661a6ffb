/*
 * auth: who is asking and may they. Authentication as the apiserver does it
 * with anonymous auth off: x509 client certificates from the cluster CA (CN =
 * user, O = groups), static bearer tokens, and request-header authentication
 * (X-Remote-User/Group/Extra-*) honoured only with a front-proxy-client
 * certificate from the front-proxy CA. Authorization: system:masters, the
 * Node authorizer (a node reads its own pods and what they reference), then
 * the RBAC-like rules of the policy file.
 *
 * Policy file, one directive a line ('#' comments):
 *   token TOKEN USER [uid=UID] [groups=G1,G2] [extra=KEY=VALUE]...
 *   anonymous on|off
 *   allow (user=NAME|group=NAME) verbs=V,..|* resources=R,..|* [namespaces=N,..|*] [names=X,..]
 *   allow-path (user=NAME|group=NAME) paths=/p,..|* [verbs=get,..]
 */
#include "cache/codec/codec.h"
#include "loadgen/kube-sim/kube_sim.h"
#include "proxy/http/http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#define MODULE "kube-sim"

struct token {
    char *token, *user, *uid;
    char *groups[KS_MAX_GROUPS];
    size_t n_groups;
    char *extra[8]; /* "KEY=VALUE" */
    size_t n_extra;
};

struct rule {
    bool nonresource;
    bool is_group;
    char *subject;
    char *verbs, *resources, *namespaces, *names, *paths; /* comma lists, "*" = all */
};

static struct {
    struct token *tokens;
    size_t n_tokens;
    struct rule *rules;
    size_t n_rules;
    bool anonymous;
    char front_proxy_issuer[512];
    char ca_issuer[512];
} policy;

/* ---- policy file --------------------------------------------------------------------------------
 */

static bool list_has(const char *list, const char *item)
{
    size_t n = strlen(item);

    if (!list)
        return false;
    if (strcmp(list, "*") == 0)
        return true;
    for (const char *p = list; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && strncmp(p, item, n) == 0)
            return true;
        if (!comma)
            break;
        p = comma + 1;
    }
    return false;
}

static char *kv(char *word, const char *key)
{
    size_t n = strlen(key);
    return strncmp(word, key, n) == 0 && word[n] == '=' ? strdup(word + n + 1) : NULL;
}

static int parse_token(char **w, size_t n)
{
    struct token *t;
    void *grown = realloc(policy.tokens, (policy.n_tokens + 1) * sizeof(*policy.tokens));

    if (n < 3 || !grown)
        return n < 3 ? -EINVAL : -ENOMEM;
    policy.tokens = grown;
    t = &policy.tokens[policy.n_tokens++];
    memset(t, 0, sizeof(*t));
    t->token = strdup(w[1]);
    t->user = strdup(w[2]);
    for (size_t i = 3; i < n; i++) {
        char *v;
        if ((v = kv(w[i], "uid"))) {
            t->uid = v;
        } else if ((v = kv(w[i], "groups"))) {
            for (char *save = NULL, *g = strtok_r(v, ",", &save); g && t->n_groups < KS_MAX_GROUPS;
                 g = strtok_r(NULL, ",", &save))
                t->groups[t->n_groups++] = strdup(g);
            free(v);
        } else if ((v = kv(w[i], "extra"))) {
            if (!strchr(v, '=') || t->n_extra == KF_ARRAY_SIZE(t->extra)) {
                free(v);
                return -EINVAL;
            }
            t->extra[t->n_extra++] = v;
        }
    }
    return 0;
}

static int parse_rule(char **w, size_t n, bool nonresource)
{
    struct rule *r;
    void *grown = realloc(policy.rules, (policy.n_rules + 1) * sizeof(*policy.rules));

    if (!grown)
        return -ENOMEM;
    policy.rules = grown;
    r = &policy.rules[policy.n_rules];
    memset(r, 0, sizeof(*r));
    r->nonresource = nonresource;
    for (size_t i = 1; i < n; i++) {
        char *v;
        if ((v = kv(w[i], "user")) || (v = kv(w[i], "group"))) {
            r->is_group = w[i][0] == 'g';
            r->subject = v;
        } else if ((v = kv(w[i], "verbs"))) {
            r->verbs = v;
        } else if ((v = kv(w[i], "resources"))) {
            r->resources = v;
        } else if ((v = kv(w[i], "namespaces"))) {
            r->namespaces = v;
        } else if ((v = kv(w[i], "names"))) {
            r->names = v;
        } else if ((v = kv(w[i], "paths"))) {
            r->paths = v;
        } else {
            return -EINVAL;
        }
    }
    if (!r->subject || (nonresource ? !r->paths : !r->verbs || !r->resources))
        return -EINVAL;
    if (nonresource && !r->verbs)
        r->verbs = strdup("*");
    policy.n_rules++;
    return 0;
}

static int parse_line(char *line)
{
    char *w[32], *save = NULL;
    size_t n = 0;

    for (char *t = strtok_r(line, " \t\r\n", &save); t && n < KF_ARRAY_SIZE(w);
         t = strtok_r(NULL, " \t\r\n", &save))
        w[n++] = t;
    if (n == 0 || w[0][0] == '#')
        return 0;
    if (strcmp(w[0], "token") == 0)
        return parse_token(w, n);
    if (strcmp(w[0], "anonymous") == 0 && n == 2) {
        policy.anonymous = strcmp(w[1], "on") == 0;
        return 0;
    }
    if (strcmp(w[0], "allow") == 0)
        return parse_rule(w, n, false);
    if (strcmp(w[0], "allow-path") == 0)
        return parse_rule(w, n, true);
    return -EINVAL;
}

int ks_policy_load(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[4096];
    unsigned lineno = 0;

    if (!f) {
        kf_err(MODULE, "cannot open policy %s: %s", path, strerror(errno));
        return -errno;
    }
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        if (parse_line(line) < 0) {
            kf_err(MODULE, "%s:%u: cannot parse policy line", path, lineno);
            fclose(f);
            return -EINVAL;
        }
    }
    fclose(f);
    kf_info(MODULE, "policy %s: %zu tokens, %zu rules", path, policy.n_tokens, policy.n_rules);
    return 0;
}

/* The RFC 2253 subject of dir/name.crt: the issuer string of certificates it signs. */
static void subject_of(const char *dir, const char *name, char *out, size_t size)
{
    char path[4096];
    FILE *f;
    X509 *cert;

    out[0] = '\0';
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "r");
    if (!f)
        return;
    cert = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (!cert)
        return;
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio && X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) >= 0) {
        int n = BIO_read(bio, out, (int)size - 1);
        out[n > 0 ? n : 0] = '\0';
    }
    BIO_free(bio);
    X509_free(cert);
}

void ks_auth_init(const char *cert_dir)
{
    subject_of(cert_dir, "front-proxy-ca.crt", policy.front_proxy_issuer,
               sizeof(policy.front_proxy_issuer));
    subject_of(cert_dir, "ca.crt", policy.ca_issuer, sizeof(policy.ca_issuer));
}

void ks_policy_free(void)
{
    for (size_t i = 0; i < policy.n_tokens; i++) {
        struct token *t = &policy.tokens[i];
        free(t->token);
        free(t->user);
        free(t->uid);
        for (size_t g = 0; g < t->n_groups; g++)
            free(t->groups[g]);
        for (size_t e = 0; e < t->n_extra; e++)
            free(t->extra[e]);
    }
    for (size_t i = 0; i < policy.n_rules; i++) {
        struct rule *r = &policy.rules[i];
        free(r->subject);
        free(r->verbs);
        free(r->resources);
        free(r->namespaces);
        free(r->names);
        free(r->paths);
    }
    free(policy.tokens);
    free(policy.rules);
    memset(&policy, 0, sizeof(policy));
}

/* ---- authentication ---------------------------------------------------------------------------
 */

static bool has_group(const struct ks_user *u, const char *g)
{
    for (size_t i = 0; i < u->n_groups; i++)
        if (strcmp(u->groups[i], g) == 0)
            return true;
    return false;
}

static void add_group(struct ks_user *u, const char *g)
{
    if (has_group(u, g))
        return;
    if (u->n_groups < KS_MAX_GROUPS)
        u->groups[u->n_groups++] = g;
}

static int hex_value(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/*
 * X-Remote-Extra-Foo%2Fbar -> "foo/bar", as the apiserver reads an extra key: lower-cased,
 * then url.PathUnescape'd; when that fails (a malformed escape) the lower-cased key as is.
 */
static char *extra_key(struct kf_arena *a, const char *suffix)
{
    char *k = kf_arena_strdup(a, suffix), *o = k;

    if (!k)
        return NULL;
    for (char *p = k; *p; p++)
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    for (const char *p = k; *p; p++)
        if (*p == '%' && (hex_value(p[1]) < 0 || hex_value(p[2]) < 0))
            return k;
    for (const char *p = k; *p; p++) {
        if (*p == '%') {
            *o++ = (char)(hex_value(p[1]) * 16 + hex_value(p[2]));
            p += 2;
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
    return k;
}

/* Request-header authentication: the front proxy vouches for the user. */
static bool from_headers(struct ks_req *r)
{
    const char *user = px_request_header(r->px, "x-remote-user");
    const char *name, *value;

    if (!user || !user[0])
        return false;
    r->user.name = user;
    r->user.uid = px_request_header(r->px, "x-remote-uid"); /* --requestheader-uid-headers */
    for (size_t i = 0; px_request_header_at(r->px, i, &name, &value); i++) {
        if (strcmp(name, "x-remote-group") == 0)
            add_group(&r->user, value);
        else if (strncmp(name, "x-remote-extra-", 15) == 0 &&
                 r->user.n_extra < KF_ARRAY_SIZE(r->user.extra_keys)) {
            r->user.extra_keys[r->user.n_extra] = extra_key(r->arena, name + 15);
            r->user.extra_values[r->user.n_extra++] = value;
        }
    }
    return true;
}

const struct ks_user *ks_token_user(struct kf_arena *a, const char *tok)
{
    for (size_t i = 0; i < policy.n_tokens; i++) {
        const struct token *t = &policy.tokens[i];
        if (strcmp(t->token, tok) != 0)
            continue;
        struct ks_user *u = kf_arena_alloc(a, sizeof(*u));
        if (!u)
            return NULL;
        u->name = t->user;
        u->uid = t->uid;
        for (size_t g = 0; g < t->n_groups; g++)
            add_group(u, t->groups[g]);
        add_group(u, "system:authenticated");
        for (size_t e = 0; e < t->n_extra && u->n_extra < KF_ARRAY_SIZE(u->extra_keys); e++) {
            const char *eq = strchr(t->extra[e], '=');
            u->extra_keys[u->n_extra] =
                kf_arena_strndup(a, t->extra[e], (size_t)(eq - t->extra[e]));
            u->extra_values[u->n_extra++] = eq + 1;
        }
        return u;
    }
    return NULL;
}

static void unauthorized(struct ks_req *r)
{
    struct ks_status st;

    ks_status_init(&st, 401, "Unauthorized", "Unauthorized");
    r->err_pb = false;
    ks_reply_status(r, &st);
}

static bool authenticate_direct(struct ks_req *r)
{
    const struct px_peer_identity *peer = px_request_peer(r->px);
    const char *auth = px_request_header(r->px, "authorization");

    memset(&r->user, 0, sizeof(r->user));
    if (peer && policy.front_proxy_issuer[0] &&
        strcmp(peer->issuer, policy.front_proxy_issuer) == 0) {
        /* only the allowed front-proxy client name may vouch; never an x509 user itself */
        if (strcmp(peer->subject_cn, "front-proxy-client") == 0 && from_headers(r)) {
            add_group(&r->user, "system:authenticated");
            return true;
        }
    } else if (peer) {
        r->user.name = peer->subject_cn;
        for (size_t i = 0; i < peer->n_orgs; i++)
            add_group(&r->user, peer->orgs[i]);
        add_group(&r->user, "system:authenticated");
        return true;
    }
    if (auth && strncasecmp(auth, "Bearer ", 7) == 0) {
        const struct ks_user *u = ks_token_user(r->arena, auth + 7);
        if (u) {
            r->user = *u;
            return true;
        }
        unauthorized(r);
        return false;
    }
    if (!px_request_is_tls(r->px)) {
        /* --listen-plain is the old insecure port: what arrives there is trusted */
        r->user.name = "system:unsecured";
        add_group(&r->user, "system:masters");
        add_group(&r->user, "system:authenticated");
        return true;
    }
    if (policy.anonymous) {
        r->user.name = "system:anonymous";
        add_group(&r->user, "system:unauthenticated");
        return true;
    }
    unauthorized(r);
    return false;
}

/*
 * Impersonate-User / -Group / -Extra-KEY / -Uid, as the apiserver's WithImpersonation filter
 * handles them: the authenticated user must be allowed the impersonate verb on each thing
 * asked for, in this order: the user (serviceaccounts NAME in namespace NS for
 * system:serviceaccount:NS:NAME, else users NAME), each group, each extra value
 * (userextras/KEY), the uid. Groups, extras or a uid without a user is the apiserver's 500.
 */
static bool may_impersonate(struct ks_req *r, const struct ks_attrs *a)
{
    const char *reason;

    if (ks_authorize(r->user.name, r->user.groups, r->user.n_groups, a, &reason) == KS_ALLOW)
        return true;
    ks_reply_forbidden(r, a, reason);
    return false;
}

/* serviceaccount.SplitUsername: "system:serviceaccount:NS:NAME" with a valid NS and NAME. */
static bool service_account(struct kf_arena *a, const char *user, const char **ns,
                            const char **name)
{
    static const char prefix[] = "system:serviceaccount:";
    const char *rest = user, *colon;

    if (strncmp(user, prefix, sizeof(prefix) - 1) != 0)
        return false;
    rest += sizeof(prefix) - 1;
    colon = strchr(rest, ':');
    if (!colon || strchr(colon + 1, ':') || colon - rest > 63 ||
        memchr(rest, '.', (size_t)(colon - rest)) ||
        !codec_dns_subdomain_ok(rest, (size_t)(colon - rest)) || strlen(colon + 1) > 253 ||
        !codec_dns_subdomain_ok(colon + 1, strlen(colon + 1)))
        return false;
    *ns = kf_arena_strndup(a, rest, (size_t)(colon - rest));
    *name = colon + 1;
    return *ns != NULL;
}

/*
 * responsewriters.InternalError for "requested [...] without impersonating a user": the
 * requests print as Go prints v1.ObjectReference values (Kind Namespace Name UID APIVersion
 * ResourceVersion FieldPath).
 */
static void reply_without_user(struct ks_req *r, const struct ks_user *as)
{
    const char *av = "authentication.k8s.io/v1";
    struct codec_buf body;
    struct ks_sb m;

    ks_sb_init(&m, 256);
    ks_sb_adds(&m, "requested [");
    for (size_t i = 0; i < as->n_groups; i++)
        ks_sb_printf(&m, "%s{Group  %s    }", i ? " " : "", as->groups[i]);
    for (size_t i = 0; i < as->n_extra; i++)
        ks_sb_printf(&m, "%s{UserExtra  %s  %s  %s}", i || as->n_groups ? " " : "",
                     as->extra_values[i], av, as->extra_keys[i]);
    if (as->uid)
        ks_sb_printf(&m, "%s{UID  %s  %s  }", as->n_groups || as->n_extra ? " " : "", as->uid, av);
    ks_sb_adds(&m, "] without impersonating a user");
    codec_buf_init(&body);
    const char *q = px_request_query_string(r->px);
    const char *uri = q[0] ? kf_arena_sprintf(r->arena, "%s?%s", px_request_path(r->px), q)
                           : px_request_path(r->px); /* Go's RequestURI */
    codec_internal_error_text(&body, uri ? uri : "", ks_sb_cstr(&m));
    px_response_header(r->px, "X-Content-Type-Options", "nosniff");
    ks_reply_body(r, 500, "text/plain; charset=utf-8", body.data, body.len);
    codec_buf_free(&body);
    ks_sb_free(&m);
}

/* The user, groups, extras and uid asked for; false when nothing was. */
static bool impersonation_requested(struct ks_req *r, struct ks_user *as, bool *groups_given)
{
    const char *name, *value;

    *as = (struct ks_user){.name = px_request_header(r->px, "impersonate-user"),
                           .uid = px_request_header(r->px, "impersonate-uid")};
    if (as->name && !as->name[0])
        as->name = NULL;
    if (as->uid && !as->uid[0])
        as->uid = NULL;
    *groups_given = false;
    for (size_t i = 0; px_request_header_at(r->px, i, &name, &value); i++) {
        if (strcmp(name, "impersonate-group") == 0) {
            *groups_given = true;
            if (as->n_groups < KS_MAX_GROUPS)
                as->groups[as->n_groups++] = value;
        } else if (strncmp(name, "impersonate-extra-", 18) == 0 &&
                   as->n_extra < KF_ARRAY_SIZE(as->extra_keys)) {
            as->extra_keys[as->n_extra] = extra_key(r->arena, name + 18);
            as->extra_values[as->n_extra++] = value;
        }
    }
    return as->name || *groups_given || as->n_extra || as->uid;
}

static bool impersonation_allowed(struct ks_req *r, const struct ks_user *as, const char *sa_ns,
                                  const char *sa_name)
{
    const char *auth = "authentication.k8s.io";
    struct ks_attrs a = {.verb = "impersonate", .group = "", .resource = "users", .name = as->name};

    if (sa_ns)
        a = (struct ks_attrs){.verb = "impersonate",
                              .group = "",
                              .resource = "serviceaccounts",
                              .ns = sa_ns,
                              .name = sa_name};
    if (!may_impersonate(r, &a))
        return false;
    for (size_t i = 0; i < as->n_groups; i++)
        if (!may_impersonate(r, &(struct ks_attrs){.verb = "impersonate",
                                                   .group = "",
                                                   .resource = "groups",
                                                   .name = as->groups[i]}))
            return false;
    for (size_t i = 0; i < as->n_extra; i++)
        if (!may_impersonate(r, &(struct ks_attrs){.verb = "impersonate",
                                                   .group = auth,
                                                   .resource = "userextras",
                                                   .sub = as->extra_keys[i],
                                                   .name = as->extra_values[i]}))
            return false;
    return !as->uid || may_impersonate(r, &(struct ks_attrs){.verb = "impersonate",
                                                             .group = auth,
                                                             .resource = "uids",
                                                             .name = as->uid});
}

static bool impersonate(struct ks_req *r)
{
    const char *sa_ns = NULL, *sa_name = NULL;
    struct ks_user as;
    bool groups_given;

    if (!impersonation_requested(r, &as, &groups_given))
        return true;
    if (!as.name) {
        reply_without_user(r, &as);
        return false;
    }
    service_account(r->arena, as.name, &sa_ns, &sa_name);
    if (!impersonation_allowed(r, &as, sa_ns, sa_name))
        return false;
    if (sa_ns && !groups_given) { /* a service account's groups, unless groups were given */
        add_group(&as, "system:serviceaccounts");
        add_group(&as, kf_arena_sprintf(r->arena, "system:serviceaccounts:%s", sa_ns));
    }
    /* system:authenticated for anyone but system:anonymous (unless either group was asked
     * for); system:anonymous gets system:unauthenticated */
    if (strcmp(as.name, "system:anonymous") != 0) {
        if (!has_group(&as, "system:authenticated") && !has_group(&as, "system:unauthenticated"))
            add_group(&as, "system:authenticated");
    } else {
        add_group(&as, "system:unauthenticated");
    }
    r->user = as;
    return true;
}

bool ks_authenticate(struct ks_req *r)
{
    return authenticate_direct(r) && impersonate(r);
}

/* ---- authorization ------------------------------------------------------------------------------
 */

static bool in_groups(const char *const *groups, size_t n, const char *g)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(groups[i], g) == 0)
            return true;
    return false;
}

/* The static part of the Node authorizer's rules (system:node). */
static bool node_static_rule(const struct ks_attrs *a)
{
    static const struct {
        const char *group, *resource, *verbs;
    } rules[] = {
        {"", "nodes", "get,list,watch,create,update,patch"},
        {"", "nodes/status", "update,patch"},
        {"", "pods", "get,list,watch,create,delete"},
        {"", "pods/status", "update,patch"},
        {"", "pods/eviction", "create"},
        {"", "services", "get,list,watch"},
        {"", "endpoints", "get"},
        {"", "events", "create,update,patch"},
        {"events.k8s.io", "events", "create,update,patch"},
        {"node.k8s.io", "runtimeclasses", "get,list,watch"},
        {"storage.k8s.io", "csidrivers", "get,list,watch"},
        {"storage.k8s.io", "csinodes", "get,create,update,patch,delete"},
        {"authentication.k8s.io", "tokenreviews", "create"},
        {"authorization.k8s.io", "subjectaccessreviews", "create"},
    };
    char res[128];

    snprintf(res, sizeof(res), "%s%s%s", a->resource, a->sub ? "/" : "", a->sub ? a->sub : "");
    for (size_t i = 0; i < KF_ARRAY_SIZE(rules); i++)
        if (strcmp(rules[i].group, a->group) == 0 && strcmp(rules[i].resource, res) == 0 &&
            list_has(rules[i].verbs, a->verb))
            return true;
    return false;
}

/* Is ns/kind/name referenced by a pod bound to node? (the Node authorizer's graph) */
static bool related(const char *node, const char *ns, const char *kind, const char *name)
{
    const struct ks_objset *pods = ks_store_indexed(&ks_res_pods, node);
    char ref[512];

    snprintf(ref, sizeof(ref), "%s/%s", kind, name);
    for (size_t i = 0; pods && i < pods->n; i++) {
        const struct ks_obj *p = pods->v[i];
        if (strcmp(p->ns, ns ? ns : "") != 0)
            continue;
        for (size_t k = 0; k < p->n_objrefs; k++)
            if (strcmp(p->objrefs[k], ref) == 0)
                return true;
    }
    return false;
}

static enum ks_decision node_authorizer(const char *user, const char *const *groups, size_t ng,
                                        const struct ks_attrs *a, const char **reason)
{
    const char *node = user + strlen("system:node:");

    if (strncmp(user, "system:node:", 12) != 0 || !in_groups(groups, ng, "system:nodes") ||
        a->nonresource)
        return KS_NO_OPINION;
    bool graph = a->group[0] == '\0' && !a->sub &&
                 (strcmp(a->resource, "secrets") == 0 || strcmp(a->resource, "configmaps") == 0 ||
                  strcmp(a->resource, "persistentvolumeclaims") == 0);
    if (graph) {
        if (!list_has("get,list,watch", a->verb)) {
            *reason = "can only read resources of this type";
            return KS_NO_OPINION;
        }
        if (!a->name || !a->name[0]) {
            *reason = "No Object name found";
            return KS_DENY;
        }
        if (related(node, a->ns, a->resource, a->name))
            return KS_ALLOW;
        static char why[300];
        snprintf(why, sizeof(why), "no relationship found between node '%s' and this object", node);
        *reason = why;
        return KS_DENY;
    }
    if (strcmp(a->group, "coordination.k8s.io") == 0 && strcmp(a->resource, "leases") == 0) {
        if (list_has("get,create,update,patch,delete", a->verb) && a->ns &&
            strcmp(a->ns, "kube-node-lease") == 0 && (!a->name || strcmp(a->name, node) == 0))
            return KS_ALLOW;
        *reason = "can only access node lease with the same name as the requesting node";
        return KS_DENY;
    }
    return node_static_rule(a) ? KS_ALLOW : KS_NO_OPINION;
}

static bool rule_subject(const struct rule *r, const char *user, const char *const *groups,
                         size_t ng)
{
    return r->is_group ? in_groups(groups, ng, r->subject) : strcmp(r->subject, user) == 0;
}

static bool rule_matches(const struct rule *r, const struct ks_attrs *a)
{
    char res[128];

    if (r->nonresource != a->nonresource || !list_has(r->verbs, a->verb))
        return false;
    if (a->nonresource)
        return list_has(r->paths, a->path);
    snprintf(res, sizeof(res), "%s%s%s", a->resource, a->sub ? "/" : "", a->sub ? a->sub : "");
    if (!list_has(r->resources, res) && !list_has(r->resources, a->resource))
        return false;
    if (r->namespaces && (!a->ns || !list_has(r->namespaces, a->ns)))
        return false;
    return !r->names || (a->name && list_has(r->names, a->name));
}

static bool public_path(const char *path)
{
    static const char *const prefixes[] = {"/healthz", "/livez", "/readyz",
                                           "/version", "/api",   "/openapi"};
    for (size_t i = 0; i < KF_ARRAY_SIZE(prefixes); i++)
        if (strncmp(path, prefixes[i], strlen(prefixes[i])) == 0)
            return true;
    return false;
}

enum ks_decision ks_authorize(const char *user, const char *const *groups, size_t ng,
                              const struct ks_attrs *a, const char **reason)
{
    *reason = NULL;
    if (in_groups(groups, ng, "system:masters"))
        return KS_ALLOW;
    enum ks_decision d = node_authorizer(user, groups, ng, a, reason);
    if (d != KS_NO_OPINION)
        return d;
    for (size_t i = 0; i < policy.n_rules; i++) {
        if (rule_subject(&policy.rules[i], user, groups, ng) && rule_matches(&policy.rules[i], a)) {
            *reason = "RBAC: allowed by kube-sim policy";
            return KS_ALLOW;
        }
    }
    if (a->nonresource && strcmp(a->verb, "get") == 0 && public_path(a->path) &&
        in_groups(groups, ng, "system:authenticated")) {
        *reason = "RBAC: allowed by ClusterRoleBinding \"system:discovery\" of ClusterRole "
                  "\"system:discovery\" to Group \"system:authenticated\"";
        return KS_ALLOW;
    }
    if (*reason && strncmp(*reason, "can only read", 13) == 0)
        *reason = NULL; /* no opinion carries no reason to the client */
    return KS_DENY;
}

/* The 403 body, worded as the apiserver's forbiddenMessage. */
void ks_reply_forbidden(struct ks_req *r, const struct ks_attrs *a, const char *reason)
{
    struct ks_status st;
    struct ks_sb m;

    ks_sb_init(&m, 512);
    if (a->nonresource) {
        ks_sb_printf(&m, "forbidden: User \"%s\" cannot %s path \"%s\"", r->user.name, a->verb,
                     a->path);
    } else {
        ks_sb_printf(&m, "%s%s%s", a->resource, a->group[0] ? "." : "", a->group);
        if (a->name && a->name[0])
            ks_sb_printf(&m, " \"%s\"", a->name);
        ks_sb_printf(&m,
                     " is forbidden: User \"%s\" cannot %s resource \"%s%s%s\" in API group "
                     "\"%s\" ",
                     r->user.name, a->verb, a->resource, a->sub ? "/" : "", a->sub ? a->sub : "",
                     a->group);
        if (a->ns && a->ns[0])
            ks_sb_printf(&m, "in the namespace \"%s\"", a->ns);
        else
            ks_sb_adds(&m, "at the cluster scope");
    }
    if (reason)
        ks_sb_printf(&m, ": %s", reason);
    ks_status_init(&st, 403, "Forbidden", ks_sb_cstr(&m));
    ks_status_details(&st, a->name && a->name[0] ? a->name : NULL, a->group,
                      a->nonresource ? NULL : a->resource);
    ks_reply_status(r, &st);
    ks_sb_free(&m);
}

bool ks_authorize_request(struct ks_req *r)
{
    struct ks_attrs a = {
        .verb = ks_verb_name[r->verb],
        .group = r->res->group,
        .resource = r->res->name,
        .sub = r->sub,
        .ns = r->ns,
        .name = r->name,
    };
    const char *reason;

    /* a kubelet's list/watch with fieldSelector=metadata.name=X is authorized as X */
    if (!a.name && (r->verb == KS_V_LIST || r->verb == KS_V_WATCH)) {
        const char *fs = px_request_query(r->px, "fieldSelector");
        if (fs && strncmp(fs, "metadata.name=", 14) == 0 && !strchr(fs, ','))
            a.name = fs + 14;
    }
    if (ks_authorize(r->user.name, r->user.groups, r->user.n_groups, &a, &reason) == KS_ALLOW)
        return true;
    ks_reply_forbidden(r, &a, reason);
    return false;
}

bool ks_authorize_path(struct ks_req *r, const char *path)
{
    struct ks_attrs a = {.verb = "get", .group = "", .path = path, .nonresource = true};
    const char *reason;

    if (ks_authorize(r->user.name, r->user.groups, r->user.n_groups, &a, &reason) == KS_ALLOW)
        return true;
    ks_reply_forbidden(r, &a, NULL);
    return false;
}
