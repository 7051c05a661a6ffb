/* Kubernetes request attributes read from a URL (private to proxy/). */
#ifndef KF_PROXY_REQINFO_H
#define KF_PROXY_REQINFO_H

#include <stdbool.h>
#include <stddef.h>

/*
 * What the apiserver's RequestInfoResolver derives from a request, enough for
 * metrics labels and, later, fairness and the cache: the verb as the
 * apiserver names it (get, list, watch, create, update, patch, delete,
 * deletecollection; for non-resource URLs the lower-case HTTP method) and the
 * resource (with "/subresource"), "" for non-resource paths.
 */
struct px_reqinfo {
    bool is_resource;
    char verb[24];
    char api_group[64];
    char api_version[24];
    char namespace_[64];
    char resource[96]; /* "pods" or "pods/log" */
    char name[256];
    bool watch_path;      /* the deprecated /watch/ prefix (a watch even with a name) */
    bool namespaced_path; /* namespaces/NS/RESOURCE...: a namespaced resource's path */
    bool truncated;       /* a segment did not fit its field: the fields are not the path's */
};

/** The watch query parameter as the apiserver reads it: present and not "0" or "false". */
bool px_reqinfo_watch_param(const char *value);

/** Fill info from method, raw path and the watch query parameter's presence. */
void px_reqinfo_parse(const char *method, const char *path, bool watch_param,
                      struct px_reqinfo *info);

/**
 * Long-running as the apiserver's BasicLongRunningRequestCheck judges it:
 * verbs watch and proxy, subresources attach, exec, proxy, log and
 * portforward. Such requests get no request deadline.
 */
bool px_reqinfo_long_running(const struct px_reqinfo *info);

/** One term of a field selector: key as written, value unescaped. */
struct px_field_term {
    const char *key;
    const char *value;
    bool neq; /* != (else = or ==) */
};

/**
 * Split a fieldSelector value as the apiserver's fields.ParseSelector does:
 * terms separated by unescaped commas, sorted, empty ones skipped, each
 * KEY=VALUE, KEY==VALUE or KEY!=VALUE (the first operator found wins), the
 * value unescaped (\\, \, and \= only). The strings live in buf (a copy of
 * text). Returns the number of terms (0 for ""), -EINVAL for a selector the
 * apiserver rejects, -E2BIG for more than max terms or a text longer than buf.
 */
int px_fieldsel_parse(const char *text, char *buf, size_t size, struct px_field_term *terms,
                      size_t max);

/**
 * What RequestInfo also takes from the query: a list or watch (no name in
 * the path) whose fieldSelector requires metadata.name=X, X a valid path
 * segment, is about the object X (so a kubelet's watch of one Secret is
 * authorized for that name). field_selector may be NULL.
 */
void px_reqinfo_field_selector(struct px_reqinfo *info, const char *field_selector);

#endif
