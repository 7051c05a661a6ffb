/*
 * review: TokenReview and SubjectAccessReview, the two APIs kfront uses to
 * authenticate bearer tokens and authorize cached reads, answered from the
 * same tokens and rules as kube-sim's own requests (JSON only), and
 * SelfSubjectReview (`kubectl auth whoami`): who the request was judged as.
 */
#include "loadgen/kube-sim/kube_sim.h"
#include "proxy/http/http.h"

#include <stdio.h>
#include <string.h>

#define API_AUDIENCE "https://kubernetes.default.svc.cluster.local"

static void str_member(struct ks_sb *sb, bool *first, const char *key, const char *v)
{
    if (!v || !v[0])
        return;
    ks_sb_printf(sb, "%s\"%s\":", *first ? "" : ",", key);
    ks_sb_json_cstr(sb, v);
    *first = false;
}

static void str_array(struct ks_sb *sb, const char *const *v, size_t n)
{
    ks_sb_addc(sb, '[');
    for (size_t i = 0; i < n; i++) {
        if (i)
            ks_sb_addc(sb, ',');
        ks_sb_json_cstr(sb, v[i]);
    }
    ks_sb_addc(sb, ']');
}

static size_t strings_of(const struct ks_json *arr, const char **out, size_t max)
{
    size_t n = 0;

    for (const struct ks_json *e = arr && arr->t == KS_J_ARR ? arr->kids : NULL; e && n < max;
         e = e->next)
        if (e->t == KS_J_STR)
            out[n++] = e->s;
    return n;
}

static bool audience_ok(const struct ks_json *aud)
{
    const char *v[16];
    size_t n = strings_of(aud, v, KF_ARRAY_SIZE(v));

    if (n == 0)
        return true;
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i], API_AUDIENCE) == 0)
            return true;
    return false;
}

/* user.Info as authentication.k8s.io/v1 UserInfo: extra values grouped by key, keys in order. */
static void user_info(struct ks_sb *sb, const struct ks_user *u)
{
    bool f = true;

    ks_sb_addc(sb, '{');
    str_member(sb, &f, "username", u->name);
    str_member(sb, &f, "uid", u->uid);
    ks_sb_adds(sb, f ? "\"groups\":" : ",\"groups\":");
    str_array(sb, u->groups, u->n_groups);
    if (u->n_extra) {
        bool first_key = true;
        ks_sb_adds(sb, ",\"extra\":{");
        for (size_t i = 0; i < u->n_extra; i++) {
            bool seen = false;
            for (size_t j = 0; j < i && !seen; j++)
                seen = strcmp(u->extra_keys[j], u->extra_keys[i]) == 0;
            if (seen)
                continue;
            ks_sb_adds(sb, first_key ? "" : ",");
            first_key = false;
            ks_sb_json_cstr(sb, u->extra_keys[i]);
            ks_sb_adds(sb, ":[");
            for (size_t j = i, k = 0; j < u->n_extra; j++)
                if (strcmp(u->extra_keys[j], u->extra_keys[i]) == 0) {
                    ks_sb_adds(sb, k++ ? "," : "");
                    ks_sb_json_cstr(sb, u->extra_values[j]);
                }
            ks_sb_addc(sb, ']');
        }
        ks_sb_addc(sb, '}');
    }
    ks_sb_addc(sb, '}');
}

static void self_subject_review(struct ks_req *r)
{
    struct ks_sb sb;

    ks_sb_init(&sb, 512);
    ks_sb_adds(&sb, "{\"kind\":\"SelfSubjectReview\",\"apiVersion\":\"authentication.k8s.io/v1\","
                    "\"metadata\":{\"creationTimestamp\":null},\"status\":{\"userInfo\":");
    user_info(&sb, &r->user);
    ks_sb_adds(&sb, "}}");
    ks_reply_sb_json(r, 201, &sb);
    ks_sb_free(&sb);
}

static void token_review(struct ks_req *r, struct ks_json *body)
{
    const struct ks_json *spec = ks_json_get(body, "spec");
    const char *token = ks_json_get_str(spec, "token");
    const struct ks_json *aud = ks_json_get(spec, "audiences");
    const struct ks_user *u = token && audience_ok(aud) ? ks_token_user(r->arena, token) : NULL;
    struct ks_sb sb;
    bool first = true;

    ks_sb_init(&sb, 1024);
    ks_sb_adds(&sb, "{\"kind\":\"TokenReview\",\"apiVersion\":\"authentication.k8s.io/v1\","
                    "\"metadata\":{\"creationTimestamp\":null},\"spec\":{");
    str_member(&sb, &first, "token", token);
    if (aud && aud->t == KS_J_ARR && aud->count) {
        ks_sb_adds(&sb, first ? "\"audiences\":" : ",\"audiences\":");
        ks_json_write(&sb, aud);
    }
    ks_sb_adds(&sb, "},\"status\":{");
    if (u) {
        ks_sb_adds(&sb, "\"authenticated\":true,\"user\":");
        user_info(&sb, u);
        ks_sb_adds(&sb, ",\"audiences\":[\"" API_AUDIENCE "\"]}}");
    } else {
        ks_sb_adds(&sb, "\"user\":{},\"error\":\"invalid bearer token\"}}");
    }
    ks_reply_sb_json(r, 201, &sb);
    ks_sb_free(&sb);
}

/* The spec echoed back in Go field order. */
static void sar_spec(struct ks_sb *sb, const struct ks_json *spec)
{
    static const char *const ra_keys[] = {"namespace", "verb",        "group", "version",
                                          "resource",  "subresource", "name"};
    const struct ks_json *ra = ks_json_get(spec, "resourceAttributes");
    const struct ks_json *nra = ks_json_get(spec, "nonResourceAttributes");
    bool first = true;

    ks_sb_addc(sb, '{');
    if (ra && ra->t == KS_J_OBJ) {
        bool f = true;
        ks_sb_adds(sb, "\"resourceAttributes\":{");
        for (size_t i = 0; i < KF_ARRAY_SIZE(ra_keys); i++)
            str_member(sb, &f, ra_keys[i], ks_json_get_str(ra, ra_keys[i]));
        ks_sb_addc(sb, '}');
        first = false;
    }
    if (nra && nra->t == KS_J_OBJ) {
        bool f = true;
        ks_sb_adds(sb, first ? "\"nonResourceAttributes\":{" : ",\"nonResourceAttributes\":{");
        str_member(sb, &f, "path", ks_json_get_str(nra, "path"));
        str_member(sb, &f, "verb", ks_json_get_str(nra, "verb"));
        ks_sb_addc(sb, '}');
        first = false;
    }
    str_member(sb, &first, "user", ks_json_get_str(spec, "user"));
    const struct ks_json *groups = ks_json_get(spec, "groups");
    if (groups && groups->t == KS_J_ARR && groups->count) {
        ks_sb_adds(sb, first ? "\"groups\":" : ",\"groups\":");
        ks_json_write(sb, groups);
        first = false;
    }
    const struct ks_json *extra = ks_json_get(spec, "extra");
    if (extra && extra->t == KS_J_OBJ && extra->count) {
        ks_sb_adds(sb, first ? "\"extra\":" : ",\"extra\":");
        ks_json_write(sb, extra);
        first = false;
    }
    str_member(sb, &first, "uid", ks_json_get_str(spec, "uid"));
    ks_sb_addc(sb, '}');
}

static void sar_invalid(struct ks_req *r)
{
    struct ks_status st;
    static const char cause[] = "Invalid value: \"null\": exactly one of nonResourceAttributes "
                                "or resourceAttributes must be specified";

    ks_status_init(&st, 422, "Invalid",
                   ".authorization.k8s.io \"\" is invalid: spec.resourceAttributes: Invalid value: "
                   "\"null\": exactly one of nonResourceAttributes or resourceAttributes must be "
                   "specified");
    ks_status_details(&st, NULL, "authorization.k8s.io", NULL);
    st.causes[0] = (struct ks_cause){"FieldValueInvalid", cause, "spec.resourceAttributes"};
    st.n_causes = 1;
    ks_reply_status(r, &st);
}

static void subject_access_review(struct ks_req *r, struct ks_json *body)
{
    const struct ks_json *spec = ks_json_get(body, "spec");
    const struct ks_json *ra = ks_json_get(spec, "resourceAttributes");
    const struct ks_json *nra = ks_json_get(spec, "nonResourceAttributes");
    const char *groups[KS_MAX_GROUPS], *reason = NULL;
    size_t ng = strings_of(ks_json_get(spec, "groups"), groups, KF_ARRAY_SIZE(groups));
    const char *user = ks_json_get_str(spec, "user");
    struct ks_attrs a = {.group = ""};
    char expanded[300];

    if (!ra == !nra || (ra && ra->t != KS_J_OBJ) || (nra && nra->t != KS_J_OBJ)) {
        sar_invalid(r);
        return;
    }
    if (ra) {
        const char *g = ks_json_get_str(ra, "group"), *sub = ks_json_get_str(ra, "subresource");
        a.verb = ks_json_get_str(ra, "verb");
        a.group = g ? g : "";
        a.resource = ks_json_get_str(ra, "resource");
        a.sub = sub && sub[0] ? sub : NULL;
        a.ns = ks_json_get_str(ra, "namespace");
        a.name = ks_json_get_str(ra, "name");
    } else {
        a.nonresource = true;
        a.verb = ks_json_get_str(nra, "verb");
        a.path = ks_json_get_str(nra, "path");
    }
    if (!a.verb)
        a.verb = "";
    if (!a.resource)
        a.resource = "";
    if (!a.path)
        a.path = "";
    bool allowed = ks_authorize(user ? user : "", groups, ng, &a, &reason) == KS_ALLOW;
    if (reason)
        snprintf(expanded, sizeof(expanded), "%s", reason);

    struct ks_sb sb;
    ks_sb_init(&sb, 1024);
    ks_sb_adds(&sb, "{\"kind\":\"SubjectAccessReview\",\"apiVersion\":\"authorization.k8s.io/v1\","
                    "\"metadata\":{\"creationTimestamp\":null},\"spec\":");
    sar_spec(&sb, spec);
    ks_sb_printf(&sb, ",\"status\":{\"allowed\":%s", allowed ? "true" : "false");
    if (reason && (!allowed || strncmp(reason, "RBAC", 4) == 0)) {
        ks_sb_adds(&sb, ",\"reason\":");
        ks_sb_json_cstr(&sb, expanded);
    }
    ks_sb_adds(&sb, "}}");
    ks_reply_sb_json(r, 201, &sb);
    ks_sb_free(&sb);
}

bool ks_review_handles(struct ks_req *r, const char *group, char **seg, size_t n)
{
    bool authn = strcmp(group, "authentication.k8s.io") == 0;
    bool tr = authn && strcmp(seg[0], "tokenreviews") == 0;
    bool self = authn && strcmp(seg[0], "selfsubjectreviews") == 0;
    bool sar =
        strcmp(group, "authorization.k8s.io") == 0 && strcmp(seg[0], "subjectaccessreviews") == 0;
    struct ks_attrs a = {.verb = "create", .group = group, .resource = seg[0]};
    const char *reason;

    if ((!tr && !sar && !self) || n != 1)
        return false;
    if (strcmp(r->method, "POST") != 0) {
        ks_reply_error(r, 405, "MethodNotAllowed",
                       "the server does not allow this method on the requested resource");
        return true;
    }
    if (self) { /* every authenticated user may ask who it is (system:basic-user) */
        self_subject_review(r);
        return true;
    }
    if (ks_authorize(r->user.name, r->user.groups, r->user.n_groups, &a, &reason) != KS_ALLOW) {
        ks_reply_forbidden(r, &a, NULL);
        return true;
    }
    struct ks_json *body = ks_body_dom(r, &ks_res_configmaps, true);
    if (!body)
        return true;
    if (body->t != KS_J_OBJ) {
        ks_reply_bad_request(r, "the object provided is unrecognized");
        return true;
    }
    if (tr)
        token_review(r, body);
    else
        subject_access_review(r, body);
    return true;
}
