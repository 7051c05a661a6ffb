/*
 * The apiserver's answers to a refused request, byte for byte: 401 with the
 * Status "Unauthorized", 403 with the Status of responsewriters.Forbidden
 * (forbiddenMessage, then apierrors.NewForbidden's "<resource>[.group]
 * [\"name\"] is forbidden: ..." wording and details {name, group, kind}),
 * negotiated like any apiserver error: protobuf when the client's Accept asks
 * for it first, else JSON; JSON pretty printed for ?pretty=true and for
 * curl, Wget and browsers (the apiserver's isPrettyPrint).
 */
#include "proxy/authz_internal.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cache/codec/codec.h"

#define CT_PB "application/vnd.kubernetes.protobuf"

static void forbidden_message(char *buf, size_t size, const struct px_reqinfo *info,
                              const char *path, const struct px_authz_decision *d)
{
    const char *user = d->user ? d->user : "";
    const char *reason = d->reason && d->reason[0] ? d->reason : NULL;
    int n;

    if (!info->is_resource) {
        n = snprintf(buf, size, "forbidden: User \"%s\" cannot %s path \"%s\"", user, info->verb,
                     path ? path : "");
    } else {
        char resource[sizeof(info->resource)];
        snprintf(resource, sizeof(resource), "%s", info->resource);
        char *slash = strchr(resource, '/');
        if (slash)
            *slash = '\0';
        n = snprintf(buf, size, "%s%s%s", resource, info->api_group[0] ? "." : "", info->api_group);
        if (info->name[0])
            n += snprintf(buf + n, size - (size_t)n, " \"%s\"", info->name);
        n += snprintf(buf + n, size - (size_t)n,
                      " is forbidden: User \"%s\" cannot %s resource \"%s\" in API group \"%s\" ",
                      user, info->verb, info->resource, info->api_group);
        if (info->namespace_[0])
            n += snprintf(buf + n, size - (size_t)n, "in the namespace \"%s\"", info->namespace_);
        else
            n += snprintf(buf + n, size - (size_t)n, "at the cluster scope");
    }
    if (reason && n >= 0 && (size_t)n < size)
        snprintf(buf + n, size - (size_t)n, ": %s", reason);
}

static int status_for(struct codec_status *st, char *msg, size_t size, char *kind, size_t ksize,
                      const struct px_reqinfo *info, const char *path,
                      const struct px_authz_decision *d)
{
    memset(st, 0, sizeof(*st));
    st->status = "Failure";
    if (d->result == PX_AUTHZ_UNAUTHENTICATED) {
        st->message = st->reason = "Unauthorized";
        return st->code = 401;
    }
    if (d->result != PX_AUTHZ_DENY) {
        st->message = "kfront: no authorization decision for this request";
        st->reason = "InternalError";
        return st->code = 500;
    }
    forbidden_message(msg, size, info, path, d);
    snprintf(kind, ksize, "%s", info->resource);
    if (strchr(kind, '/'))
        *strchr(kind, '/') = '\0';
    st->message = msg;
    st->reason = "Forbidden";
    st->has_details = true;
    st->details_name = info->name[0] ? info->name : NULL;
    st->details_group = info->api_group[0] ? info->api_group : NULL;
    st->details_kind = info->is_resource ? kind : NULL;
    return st->code = 403;
}

static int status_body(struct codec_buf *out, const struct px_reqinfo *info, const char *path,
                       const struct px_authz_decision *d, bool protobuf, bool pretty)
{
    struct codec_status st;
    struct codec_buf compact;
    char msg[1024], kind[sizeof(info->resource)];
    int code = status_for(&st, msg, sizeof(msg), kind, sizeof(kind), info, path, d);

    if (protobuf) {
        codec_status_pb(out, &st);
        return out->err ? out->err : code;
    }
    if (!pretty) {
        codec_status_json(out, &st);
        codec_buf_puts(out, "\n"); /* json.Encoder ends what it writes with a newline */
        return out->err ? out->err : code;
    }
    codec_buf_init(&compact);
    codec_status_json(&compact, &st);
    authz_json_indent(out, compact.data ? compact.data : "", compact.len);
    codec_buf_free(&compact);
    return out->err ? out->err : code;
}

int px_authz_status_body(struct codec_buf *out, const struct px_reqinfo *info,
                         const struct px_authz_decision *d, bool protobuf, bool pretty)
{
    return status_body(out, info, NULL, d, protobuf, pretty);
}

/* Go's strconv.ParseBool */
static bool parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *const no[] = {"0", "f", "F", "FALSE", "false", "False"};

    for (size_t i = 0; i < KF_ARRAY_SIZE(yes); i++) {
        if (strcmp(v, yes[i]) == 0)
            return *out = true;
        if (strcmp(v, no[i]) == 0)
            return !(*out = false);
    }
    return false;
}

static bool wants_pretty(struct px_request *preq)
{
    const char *p = px_request_query(preq, "pretty");
    const char *ua = px_request_header(preq, "user-agent");
    bool v = false;

    if (p && p[0])
        return parse_bool(p, &v) && v;
    return ua && (strncmp(ua, "curl", 4) == 0 || strncmp(ua, "Wget", 4) == 0 ||
                  strncmp(ua, "Mozilla/5.0", 11) == 0);
}

/* The first media type of Accept that the apiserver could answer an error in. */
static bool wants_protobuf(const struct px_request *preq)
{
    const char *accept = px_request_header(preq, "accept");

    for (const char *p = accept; p && *p;) {
        size_t skip = strspn(p, " \t,"), len;
        p += skip;
        len = strcspn(p, ";, \t");
        if (len == strlen(CT_PB) && strncasecmp(p, CT_PB, len) == 0)
            return true;
        if ((len == 16 && strncasecmp(p, "application/json", len) == 0) ||
            (len == 3 && strncmp(p, "*/*", len) == 0) ||
            (len == 13 && strncasecmp(p, "application/*", len) == 0))
            return false;
        p += strcspn(p, ",");
    }
    return false;
}

void px_authz_reply(struct px_request *preq, const struct px_reqinfo *info,
                    const struct px_authz_decision *d)
{
    struct codec_buf body;
    bool pb = wants_protobuf(preq);
    int code;

    codec_buf_init(&body);
    code = status_body(&body, info, px_request_path(preq), d, pb, !pb && wants_pretty(preq));
    if (code < 0) {
        codec_buf_free(&body);
        px_response_simple(preq, 500, "text/plain", "out of memory\n", 14);
        return;
    }
    px_response_header(preq, "Cache-Control", "no-cache, private");
    if (code == 403)
        px_response_header(preq, "X-Content-Type-Options", "nosniff");
    px_response_simple(preq, code, pb ? CT_PB : "application/json", body.data, body.len);
    codec_buf_free(&body);
}
