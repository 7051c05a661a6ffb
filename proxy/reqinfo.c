/*
 * The apiserver's request info rules (k8s.io/apiserver pkg/endpoints/request):
 * /api/VERSION/... is the core group, /apis/GROUP/VERSION/... any other;
 * "namespaces/NS/RESOURCE[/NAME[/SUB]]" is namespaced, except that
 * "namespaces/NAME[/SUB]" names a namespace itself; GET becomes get with a
 * name (whatever ?watch says) and list without one, watch with ?watch=1, or
 * with the deprecated /watch/ prefix (even with a name); DELETE without a name
 * deletecollection.
 */
#include "proxy/reqinfo.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/core.h"

#define MAX_PARTS 10

static size_t split(char *buf, char **parts)
{
    size_t n = 0;

    char *save = NULL;

    for (char *tok = strtok_r(buf, "/", &save); tok && n < MAX_PARTS;
         tok = strtok_r(NULL, "/", &save))
        parts[n++] = tok;
    return n;
}

static void set_field(char *dst, size_t size, const char *src, bool *truncated)
{
    if (kf_strlcpy(dst, src, size) >= size)
        *truncated = true;
}

#define set(dst, size, src) set_field(dst, size, src, &info->truncated)

bool px_reqinfo_watch_param(const char *value)
{
    return value && strcmp(value, "0") != 0 && strcasecmp(value, "false") != 0;
}

static const char *http_verb(const char *method, bool has_name, bool watch)
{
    if (strcasecmp(method, "GET") == 0 || strcasecmp(method, "HEAD") == 0)
        return has_name ? "get" : watch ? "watch" : "list";
    if (strcasecmp(method, "POST") == 0)
        return "create";
    if (strcasecmp(method, "PUT") == 0)
        return "update";
    if (strcasecmp(method, "PATCH") == 0)
        return "patch";
    if (strcasecmp(method, "DELETE") == 0)
        return has_name ? "delete" : "deletecollection";
    return NULL;
}

static void lower_method(const char *method, struct px_reqinfo *info)
{
    size_t i = 0;
    for (; method[i] && i + 1 < sizeof(info->verb); i++)
        info->verb[i] = (char)(method[i] >= 'A' && method[i] <= 'Z' ? method[i] + 32 : method[i]);
    info->verb[i] = '\0';
}

/* parts[0..n) after the group/version prefix. */
static void resource_parts(char **parts, size_t n, bool watch, const char *method,
                           struct px_reqinfo *info)
{
    bool proxy = false;

    if (n > 0 && strcmp(parts[0], "watch") == 0) { /* deprecated /watch/ paths */
        info->watch_path = true;
        parts++;
        n--;
    } else if (n > 0 && strcmp(parts[0], "proxy") == 0) { /* deprecated /proxy/ paths */
        proxy = true;
        parts++;
        n--;
    }
    /* As the apiserver: namespaces/NS/... scopes what follows, except the namespace's own
     * subresources (status, finalize), which keep "namespaces" as the resource. */
    if (n > 1 && strcmp(parts[0], "namespaces") == 0) {
        set(info->namespace_, sizeof(info->namespace_), parts[1]);
        if (n > 2 && strcmp(parts[2], "status") != 0 && strcmp(parts[2], "finalize") != 0) {
            parts += 2;
            n -= 2;
            info->namespaced_path = true;
        }
    }
    if (n == 0)
        return;
    set(info->resource, sizeof(info->resource), parts[0]);
    if (n >= 2)
        set(info->name, sizeof(info->name), parts[1]);
    if (n >= 3) {
        size_t len = strlen(info->resource);
        if (len + 1 < sizeof(info->resource)) {
            info->resource[len] = '/';
            set(info->resource + len + 1, sizeof(info->resource) - len - 1, parts[2]);
        } else {
            info->truncated = true;
        }
    }
    const char *verb = proxy              ? "proxy"
                       : info->watch_path ? "watch"
                                          : http_verb(method, n >= 2, watch);
    if (verb)
        set(info->verb, sizeof(info->verb), verb);
    info->is_resource = true;
}

void px_reqinfo_parse(const char *method, const char *path, bool watch_param,
                      struct px_reqinfo *info)
{
    char buf[1024];
    char *parts[MAX_PARTS];
    size_t n;

    memset(info, 0, sizeof(*info));
    lower_method(method, info);
    set(buf, sizeof(buf), path);
    if (strlen(path) >= sizeof(buf))
        info->truncated = true;
    n = split(buf, parts);
    if (n >= 2 && strcmp(parts[0], "api") == 0) {
        set(info->api_version, sizeof(info->api_version), parts[1]);
        resource_parts(parts + 2, n - 2, watch_param, method, info);
    } else if (n >= 3 && strcmp(parts[0], "apis") == 0) {
        set(info->api_group, sizeof(info->api_group), parts[1]);
        set(info->api_version, sizeof(info->api_version), parts[2]);
        resource_parts(parts + 3, n - 3, watch_param, method, info);
    }
}

/* ---- field selectors (k8s.io/apimachinery pkg/fields) ------------------------------ */

static int cmp_terms(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Cut buf at unescaped commas into parts; returns their number or -E2BIG. */
static int split_terms(char *buf, char **parts, size_t max)
{
    size_t n = 0;
    char *start = buf;

    for (char *p = buf;; p++) {
        if (*p == '\\' && p[1]) {
            p++;
            continue;
        }
        if (*p != ',' && *p != '\0')
            continue;
        bool end = *p == '\0';
        *p = '\0';
        if (start[0]) {
            if (n == max)
                return -E2BIG;
            parts[n++] = start;
        }
        if (end)
            return (int)n;
        start = p + 1;
    }
}

/* In place: only \\, \, and \= are escapes, and , or = may not appear bare. */
static int unescape_value(char *s)
{
    char *o = s;

    for (const char *p = s; *p; p++) {
        if (*p == ',' || *p == '=')
            return -EINVAL;
        if (*p == '\\') {
            p++;
            if (*p != '\\' && *p != ',' && *p != '=')
                return -EINVAL;
        }
        *o++ = *p;
    }
    *o = '\0';
    return 0;
}

static int split_term(char *part, struct px_field_term *t)
{
    static const char *const ops[] = {"!=", "==", "="};

    for (char *p = part; *p; p++)
        for (size_t i = 0; i < KF_ARRAY_SIZE(ops); i++) {
            size_t len = strlen(ops[i]);
            if (strncmp(p, ops[i], len) != 0)
                continue;
            *p = '\0';
            t->key = part;
            t->value = p + len;
            t->neq = i == 0;
            return unescape_value(p + len);
        }
    return -EINVAL;
}

int px_fieldsel_parse(const char *text, char *buf, size_t size, struct px_field_term *terms,
                      size_t max)
{
    char *parts[32];
    int n;

    if (strlen(text) >= size)
        return -E2BIG;
    memcpy(buf, text, strlen(text) + 1);
    n = split_terms(buf, parts, max < KF_ARRAY_SIZE(parts) ? max : KF_ARRAY_SIZE(parts));
    if (n < 0)
        return n;
    qsort(parts, (size_t)n, sizeof(parts[0]), cmp_terms);
    for (int i = 0; i < n; i++)
        if (split_term(parts[i], &terms[i]) < 0)
            return -EINVAL;
    return n;
}

/* path.IsValidPathSegmentName */
static bool valid_segment(const char *name)
{
    return strcmp(name, ".") != 0 && strcmp(name, "..") != 0 && !strpbrk(name, "/%");
}

void px_reqinfo_field_selector(struct px_reqinfo *info, const char *field_selector)
{
    struct px_field_term terms[32];
    char buf[2048];
    int n;

    if (!field_selector || !info->is_resource || info->name[0] ||
        (strcmp(info->verb, "list") != 0 && strcmp(info->verb, "watch") != 0))
        return;
    n = px_fieldsel_parse(field_selector, buf, sizeof(buf), terms, KF_ARRAY_SIZE(terms));
    for (int i = 0; i < n; i++) {
        if (terms[i].neq || strcmp(terms[i].key, "metadata.name") != 0)
            continue;
        if (valid_segment(terms[i].value) && strlen(terms[i].value) < sizeof(info->name))
            set(info->name, sizeof(info->name), terms[i].value);
        return;
    }
}

bool px_reqinfo_long_running(const struct px_reqinfo *info)
{
    static const char *const subresources[] = {"attach", "exec", "proxy", "log", "portforward"};
    const char *slash = strchr(info->resource, '/');

    if (strcmp(info->verb, "watch") == 0 || strcmp(info->verb, "proxy") == 0)
        return true;
    for (size_t i = 0; slash && i < KF_ARRAY_SIZE(subresources); i++)
        if (strcmp(slash + 1, subresources[i]) == 0)
            return true;
    return false;
}
