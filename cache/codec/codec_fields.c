/*
 * The selectable fields of each type, as the apiserver's registries compute
 * them (ToSelectableFields / GetAttrs) and the field label conversions accept
 * them (pkg/apis/core/v1/conversion.go). Paths are given once, in JSON member
 * names and protobuf field numbers, so both extractors read the same table.
 */
#include "cache/codec/codec_internal.h"

#include <string.h>

#define NONE -1

static const struct fdef pod_defs[] = {
    {"spec.nodeName", {"spec", "nodeName"}, {2, 10}, 2, 0, NONE, false},
    {"spec.restartPolicy", {"spec", "restartPolicy"}, {2, 3}, 2, 0, NONE, false},
    {"spec.schedulerName", {"spec", "schedulerName"}, {2, 19}, 2, 0, NONE, false},
    {"spec.serviceAccountName", {"spec", "serviceAccountName"}, {2, 8}, 2, 0, NONE, false},
    {"spec.hostNetwork", {"spec", "hostNetwork"}, {2, 11}, 2, FD_BOOL, NONE, false},
    {"status.phase", {"status", "phase"}, {3, 1}, 2, 0, NONE, false},
    /* status.podIP is podIPs[0].ip (podIP only fills in for old writers) */
    {"status.podIP", {"status", "podIP"}, {3, 6}, 2, 0, 8, true},
    {"status.nominatedNodeName", {"status", "nominatedNodeName"}, {3, 11}, 2, 0, NONE, false},
    {"status.podIPs[0].ip", {"status", "podIPs", "ip"}, {3, 12, 1}, 3, FD_HIDDEN, NONE, false},
};
static const char *const pod_accepted[] = {"metadata.name",
                                           "metadata.namespace",
                                           "spec.nodeName",
                                           "spec.restartPolicy",
                                           "spec.schedulerName",
                                           "spec.serviceAccountName",
                                           "spec.hostNetwork",
                                           "status.phase",
                                           "status.podIP",
                                           "status.podIPs",
                                           "status.nominatedNodeName",
                                           "spec.host",
                                           NULL};

static const struct fdef node_defs[] = {
    {"spec.unschedulable", {"spec", "unschedulable"}, {2, 4}, 2, FD_BOOL, NONE, false},
};
static const char *const node_accepted[] = {"metadata.name", "spec.unschedulable", NULL};

static const struct fdef secret_defs[] = {
    {"type", {"type"}, {3}, 1, 0, NONE, false},
};
static const char *const secret_accepted[] = {"type", "metadata.namespace", "metadata.name", NULL};

static const struct fdef service_defs[] = {
    {"spec.clusterIP", {"spec", "clusterIP"}, {2, 3}, 2, 0, NONE, false},
    {"spec.type", {"spec", "type"}, {2, 4}, 2, 0, NONE, false},
};
static const char *const service_accepted[] = {"metadata.namespace", "metadata.name",
                                               "spec.clusterIP", "spec.type", NULL};

static const struct fdef namespace_defs[] = {
    {"status.phase", {"status", "phase"}, {3, 1}, 2, 0, NONE, false},
};
static const char *const namespace_accepted[] = {"status.phase", "metadata.name", NULL};

#define IO(f, n)                                                                                   \
    {                                                                                              \
        "involvedObject." f, {"involvedObject", f}, {2, n}, 2, 0, NONE, false                      \
    }
static const struct fdef event_defs[] = {
    IO("kind", 1),
    IO("namespace", 2),
    IO("name", 3),
    IO("uid", 4),
    IO("apiVersion", 5),
    IO("resourceVersion", 6),
    IO("fieldPath", 7),
    {"reason", {"reason"}, {3}, 1, 0, NONE, false},
    {"reportingComponent", {"reportingComponent"}, {14}, 1, 0, NONE, false},
    /* source is source.component, or reportingComponent when that is empty */
    {"source", {"source", "component"}, {5, 1}, 2, 0, 8, false},
    {"type", {"type"}, {9}, 1, 0, NONE, false},
};
static const char *const event_accepted[] = {"involvedObject.kind",
                                             "involvedObject.namespace",
                                             "involvedObject.name",
                                             "involvedObject.uid",
                                             "involvedObject.apiVersion",
                                             "involvedObject.resourceVersion",
                                             "involvedObject.fieldPath",
                                             "reason",
                                             "reportingComponent",
                                             "source",
                                             "type",
                                             "metadata.namespace",
                                             "metadata.name",
                                             NULL};

#define KF(d, a)                                                                                   \
    {                                                                                              \
        d, KF_ARRAY_SIZE(d), a                                                                     \
    }
static const struct kind_fields by_kind[CODEC_KIND_COUNT] = {
    [CODEC_KIND_POD] = KF(pod_defs, pod_accepted),
    [CODEC_KIND_NODE] = KF(node_defs, node_accepted),
    [CODEC_KIND_SECRET] = KF(secret_defs, secret_accepted),
    [CODEC_KIND_SERVICE] = KF(service_defs, service_accepted),
    [CODEC_KIND_NAMESPACE] = KF(namespace_defs, namespace_accepted),
    [CODEC_KIND_EVENT] = KF(event_defs, event_accepted),
};

const struct kind_fields *kind_fields(enum codec_kind k)
{
    static const struct kind_fields none = {NULL, 0, NULL};
    if (k <= CODEC_KIND_UNKNOWN || k >= CODEC_KIND_COUNT)
        return &none;
    return &by_kind[k];
}

void fields_finish(struct codec_meta *meta, const struct kind_fields *kf,
                   const struct codec_str *vals)
{
    static const struct codec_str no = {"false", 5};
    meta->fields[0] = (struct codec_field){"metadata.name", meta->name};
    meta->fields[1] = (struct codec_field){"metadata.namespace", meta->namespace_};
    meta->n_fields = 2;
    for (size_t i = 0; i < kf->n && meta->n_fields < CODEC_MAX_FIELDS; i++) {
        const struct fdef *d = &kf->defs[i];
        if (d->flags & FD_HIDDEN)
            continue;
        struct codec_str v = vals[i];
        if (d->alt != NONE) {
            struct codec_str a = vals[d->alt];
            if ((d->alt_wins && a.len) || (!d->alt_wins && !v.len))
                v = a;
        }
        if ((d->flags & FD_BOOL) && !v.len)
            v = no;
        meta->fields[meta->n_fields++] = (struct codec_field){d->path, v};
    }
}

bool codec_meta_field(const struct codec_meta *meta, const char *path, struct codec_str *value)
{
    for (size_t i = 0; i < meta->n_fields; i++) {
        if (strcmp(meta->fields[i].path, path) == 0) {
            *value = meta->fields[i].value;
            return true;
        }
    }
    return false;
}

bool codec_meta_label(const struct codec_meta *meta, const char *key, struct codec_str *value)
{
    for (size_t i = 0; i < meta->n_labels; i++) {
        if (codec_str_eq(meta->labels[i].key, key)) {
            *value = meta->labels[i].value;
            return true;
        }
    }
    return false;
}
