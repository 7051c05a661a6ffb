/* loadgen kubelets: one checked informer (LIST + WATCH) over an endpoint. */
#ifndef KF_LOADGEN_KUBELETS_WATCH_H
#define KF_LOADGEN_KUBELETS_WATCH_H

#include "loadgen/kubelets/kubelets.h"

struct event;
struct kl_watch;

typedef void (*kl_item_cb)(struct kl_watch *w, const char *item, size_t len,
                           const struct codec_meta *m);
typedef void (*kl_event_cb)(struct kl_watch *w, enum codec_event_type t, struct codec_str obj,
                            const struct codec_meta *m);

struct kl_watch {
    int state;
    struct kl_endpoint *ep;
    const char *token;    /* bearer token, or NULL */
    const char *node;     /* for messages */
    char what[96];        /* "pods of node-00001" */
    char path[256];       /* "/api/v1/pods" */
    char query[512];      /* "fieldSelector=spec.nodeName%3Dnode-00001" (encoded) */
    const char *resource; /* "pods": key of the truth arrival times */
    enum codec_kind kind;
    bool pb;
    const char *pin_field; /* the selector's pinned field, checked on every object */
    const char *pin_value;
    char pin_buf[256];  /* pin_value's storage when the caller's string is short-lived */
    struct kf_map view; /* key -> uint64_t resourceVersion */
    uint64_t rv;
    struct lb_ureq *req;
    int status;
    bool expired, relist;
    struct codec_buf body;
    struct codec_watch_reader reader;
    struct event *timer;
    kl_item_cb on_item; /* each LIST item */
    void (*on_listed)(struct kl_watch *w);
    kl_event_cb on_event;
    void *arg;
    bool truth;     /* a reference watch on the truth server: records arrival times only */
    bool list_only; /* LIST once, then on_listed; no watch */
};

struct kl_watch *kl_watch_new(struct event_base *base, struct kl_endpoint *ep, const char *what);
void kl_watch_start(struct kl_watch *w, unsigned delay_ms);
void kl_watch_stop(struct kl_watch *w);
void kl_watch_free(struct kl_watch *w);

#endif
