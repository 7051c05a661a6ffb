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
};

/** Fill info from method, raw path and the watch query parameter's presence. */
void px_reqinfo_parse(const char *method, const char *path, bool watch_param,
                      struct px_reqinfo *info);

#endif
