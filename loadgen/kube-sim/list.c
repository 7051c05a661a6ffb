/*
 * list: LIST with the apiserver's resourceVersion semantics (unset = latest,
 * 0 = any with limit ignored, N NotOlderThan / Exact, legacy exact with a
 * limit), pagination with continue tokens and remainingItemCount, and the
 * response streamed in slices.
 */
#include "loadgen/kube-sim/kube_sim.h"
#include "proxy/http/http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#define CHUNK_BYTES  (256 * 1024)
#define PENDING_HIGH (2 * 1024 * 1024)

struct page {
    uint32_t *idx; /* snapshot indices of the items on this page */
    size_t n;
    const char *cont;  /* continue token, or NULL */
    int64_t remaining; /* -1: not reported */
};

struct lister {
    struct ks_req *r;
    struct ks_snapshot snap;
    struct page page;
    size_t pos;
    bool pb;
    bool closing;   /* the client went away: list_reap ends it */
    bool streaming; /* counted in lists_streaming */
    struct ks_sb chunk;
};

/* Responses being streamed (in /stats: a client that went away must get its list ended). */
static uint64_t lists_streaming;

uint64_t ks_list_count(void)
{
    return lists_streaming;
}

/* ---- the page ------------------------------------------------------------------------------- */

static size_t first_index(const struct ks_snapshot *s, const char *start, bool after)
{
    struct ks_table t = {.items = s->items, .n = s->n};
    size_t i = ks_table_lower_bound(&t, start);

    if (after && i < s->n && strcmp(s->items[i]->key, start) == 0)
        i++;
    return i;
}

static int make_page(struct ks_req *r, struct lister *l, struct ks_sel *sel, const char *prefix,
                     const char *start, bool after, int64_t limit)
{
    const struct ks_snapshot *s = &l->snap;
    size_t i = start ? first_index(s, start, after) : 0;
    size_t plen = prefix ? strlen(prefix) : 0;
    bool filtered = !ks_sel_empty(sel);

    l->page.idx = malloc((s->n - (i < s->n ? i : s->n) + 1) * sizeof(uint32_t));
    l->page.remaining = -1;
    if (!l->page.idx)
        return -ENOMEM;
    for (; i < s->n; i++) {
        if (limit > 0 && (int64_t)l->page.n == limit)
            break;
        if (!filtered || ks_sel_match(sel, s->items[i]))
            l->page.idx[l->page.n++] = (uint32_t)i;
    }
    if (limit > 0 && (int64_t)l->page.n == limit && i < s->n) {
        const char *last = s->items[l->page.idx[l->page.n - 1]]->key + plen;
        l->page.cont = ks_continue_encode(r->arena, s->rv, 0, last);
        if (!filtered)
            l->page.remaining = (int64_t)(s->n - i);
    }
    return 0;
}

/* ---- streaming ---------------------------------------------------------------------------------
 */

static void list_free(struct lister *l)
{
    if (l->streaming)
        lists_streaming--;
    ks_snapshot_release(&l->snap);
    free(l->page.idx);
    ks_sb_free(&l->chunk);
    free(l);
}

static void json_head(struct ks_sb *sb, const struct lister *l)
{
    const struct ks_res *res = l->r->res;

    ks_sb_printf(
        sb, "{\"kind\":\"%sList\",\"apiVersion\":\"%s\",\"metadata\":{\"resourceVersion\":\"%llu\"",
        res->kind, res->api_version, (unsigned long long)l->snap.rv);
    if (l->page.cont) {
        ks_sb_adds(sb, ",\"continue\":");
        ks_sb_json_cstr(sb, l->page.cont);
    }
    if (l->page.remaining >= 0)
        ks_sb_printf(sb, ",\"remainingItemCount\":%lld", (long long)l->page.remaining);
    ks_sb_adds(sb, "},\"items\":[");
}

static size_t json_item_len(const struct ks_obj *o)
{
    return 1 + o->json_len - o->json_body_off;
}

static void pb_head(struct ks_sb *sb, const struct lister *l, size_t items_len)
{
    struct ks_sb meta;
    char kind[96];

    ks_sb_init(&meta, 256);
    ks_pb_list_meta(&meta, 1, l->snap.rv, l->page.cont, l->page.remaining);
    snprintf(kind, sizeof(kind), "%sList", l->r->res->kind);
    ks_sb_add(sb, "k8s\0", 4);
    size_t tm = ks_pb_begin(sb, 1);
    ks_pb_str(sb, 1, l->r->res->api_version);
    ks_pb_str(sb, 2, kind);
    ks_pb_end(sb, tm);
    ks_pb_tag(sb, 2, 2);
    ks_pb_varint(sb, meta.len + items_len);
    ks_sb_add(sb, meta.p, meta.len);
    ks_sb_free(&meta);
}

/* Total body length, known before the first byte goes out (Content-Length). */
static size_t body_len(struct lister *l, struct ks_sb *head)
{
    size_t items = 0;

    for (size_t k = 0; k < l->page.n; k++) {
        const struct ks_obj *o = l->snap.items[l->page.idx[k]];
        items += l->pb ? o->pb_item_len : json_item_len(o) + (k ? 1 : 0);
    }
    if (l->pb) {
        pb_head(head, l, items);
        return head->len + items + 4;
    }
    json_head(head, l);
    return head->len + items + 3;
}

static void flush_chunk(struct lister *l)
{
    if (!l->chunk.len)
        return;
    struct ks_bytes *b = ks_bytes_new(l->chunk.p, l->chunk.len);
    if (b)
        px_response_write_ref(l->r->px, b->data, b->len, ks_bytes_free_cb, b);
    ks_metrics_bytes(l->chunk.len);
    l->chunk.len = 0;
}

static void add_item(struct lister *l, const struct ks_obj *o, size_t k)
{
    if (l->pb) {
        ks_sb_add(&l->chunk, o->pb + o->pb_item_off, o->pb_item_len);
        return;
    }
    if (k)
        ks_sb_addc(&l->chunk, ',');
    ks_sb_addc(&l->chunk, '{');
    ks_sb_add(&l->chunk, o->json + o->json_body_off, o->json_len - o->json_body_off);
}

static void list_reap(evutil_socket_t fd, short what, void *arg)
{
    struct lister *l = arg;

    (void)fd;
    (void)what;
    px_request_on_drain(l->r->px, NULL, NULL);
    px_request_on_close(l->r->px, NULL, NULL);
    ks_req_count(l->r, 499);
    px_response_end(l->r->px);
    list_free(l);
}

/* Never free inside the HTTP layer's callbacks: mark, and reap from a fresh event. */
static void mark_closing(struct lister *l)
{
    struct timeval now = {0, 0};

    if (l->closing)
        return;
    l->closing = true;
    if (event_base_once(ks_base, -1, EV_TIMEOUT, list_reap, l, &now) < 0)
        kf_err("kube-sim", "cannot schedule the end of a closed list");
}

static void list_pump(struct px_request *px, void *arg)
{
    struct lister *l = arg;

    (void)px;
    if (l->closing || px_request_is_closed(l->r->px)) {
        mark_closing(l);
        return;
    }
    while (l->pos < l->page.n && px_response_pending(l->r->px) < PENDING_HIGH &&
           !px_request_is_closed(l->r->px)) {
        while (l->pos < l->page.n && l->chunk.len < CHUNK_BYTES) {
            add_item(l, l->snap.items[l->page.idx[l->pos]], l->pos);
            l->pos++;
        }
        flush_chunk(l);
    }
    if (px_request_is_closed(l->r->px)) {
        mark_closing(l);
        return;
    }
    if (l->pos < l->page.n)
        return; /* on_drain brings us back */
    ks_sb_add(&l->chunk, l->pb ? "\x1a\x00\x22\x00" : "]}\n", l->pb ? 4 : 3);
    flush_chunk(l);
    px_request_on_drain(l->r->px, NULL, NULL);
    px_request_on_close(l->r->px, NULL, NULL);
    px_response_end(l->r->px);
    list_free(l);
}

static void list_closed(struct px_request *px, void *arg)
{
    (void)px;
    mark_closing(arg);
}

/* Pretty output (curl): the whole body built, then indented like Go's MarshalIndent. */
static void list_pretty(struct lister *l)
{
    struct ks_sb sb;

    ks_sb_init(&sb, 65536);
    json_head(&sb, l);
    for (size_t k = 0; k < l->page.n; k++) {
        const struct ks_obj *o = l->snap.items[l->page.idx[k]];
        if (k)
            ks_sb_addc(&sb, ',');
        ks_sb_addc(&sb, '{');
        ks_sb_add(&sb, o->json + o->json_body_off, o->json_len - o->json_body_off);
    }
    ks_sb_adds(&sb, "]}");
    ks_reply_body(l->r, 200, "application/json", sb.p, sb.len);
    ks_sb_free(&sb);
    list_free(l);
}

static void list_start(struct lister *l)
{
    struct ks_req *r = l->r;
    struct ks_sb head;
    char len[24];

    if (r->fmt == KS_FMT_TABLE) {
        ks_table_reply_list(r, &l->snap, l->page.idx, l->page.n, l->page.cont, l->page.remaining);
        list_free(l);
        return;
    }
    if (r->pretty && !l->pb) {
        list_pretty(l);
        return;
    }
    ks_sb_init(&head, 512);
    size_t total = body_len(l, &head);
    ks_req_count(r, 200);
    ks_headers(r, l->pb ? KS_CT_PB : "application/json");
    snprintf(len, sizeof(len), "%zu", total);
    px_response_header(r->px, "Content-Length", len);
    px_response_start(r->px, 200);
    l->streaming = true;
    lists_streaming++;
    ks_sb_init(&l->chunk, CHUNK_BYTES + 65536);
    ks_sb_add(&l->chunk, head.p, head.len);
    ks_sb_free(&head);
    px_request_on_drain(r->px, list_pump, l);
    px_request_on_close(r->px, list_closed, l);
    list_pump(r->px, l);
}

/* ---- the handler
 * ---------------------------------------------------------------------------------- */

struct list_opts {
    uint64_t rv;   /* 0 = latest */
    bool exact;    /* state at exactly rv */
    int64_t limit; /* <= 0: everything */
    char *start;   /* continue: first key (relative) */
    bool after;
    bool cont;
};

static bool parse_limit(struct ks_req *r, int64_t *limit)
{
    const char *s = px_request_query(r->px, "limit");
    char *end;

    *limit = 0;
    if (!s || !s[0])
        return true;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end || errno) {
        ks_reply_bad_request(r, "strconv.ParseInt: parsing \"%s\": invalid syntax", s);
        return false;
    }
    *limit = v;
    return true;
}

/* Work out which state to list; false when a reply was sent. */
static bool list_target(struct ks_req *r, struct list_opts *o)
{
    const char *rvs = px_request_query(r->px, "resourceVersion");
    const char *match = px_request_query(r->px, "resourceVersionMatch");
    const char *cont = px_request_query(r->px, "continue");
    char err[300];
    int64_t crv;

    memset(o, 0, sizeof(*o));
    if (!parse_limit(r, &o->limit) || ks_parse_rv(r, rvs, &o->rv) < 0)
        return false;
    if (cont && cont[0]) {
        if (ks_continue_decode(r->arena, cont, &o->start, &o->after, &crv, err, sizeof(err)) < 0) {
            ks_reply_bad_request(r, "invalid continue token: %s", err);
            return false;
        }
        if (rvs && rvs[0] && strcmp(rvs, "0") != 0) {
            ks_reply_bad_request(r, "specifying resource version is not allowed when using "
                                    "continue");
            return false;
        }
        o->cont = true;
        o->rv = crv > 0 ? (uint64_t)crv : 0;
        o->exact = crv > 0;
        return true;
    }
    if (rvs && strcmp(rvs, "0") == 0) {
        o->limit = 0; /* served from the watch cache: limit is ignored */
        return true;
    }
    if (o->rv) {
        bool nolimit_match = match && strcmp(match, "NotOlderThan") == 0;
        o->exact = (match && strcmp(match, "Exact") == 0) || (!nolimit_match && o->limit > 0);
    }
    return true;
}

/* 410 for a list at a compacted rv; with a continue token, the apiserver's inconsistent one. */
static void reply_expired(struct ks_req *r, const struct list_opts *o)
{
    struct ks_status st;

    if (!o->cont) {
        ks_status_init(&st, 410, "Expired",
                       "The resourceVersion for the provided list is too old.");
        ks_reply_status(r, &st);
        return;
    }
    ks_status_init(&st, 410, "Expired",
                   "The provided continue parameter is too old to display a consistent list "
                   "result. You can start a new list without the continue parameter, or use the "
                   "continue token in this response to retrieve the remainder of the results. "
                   "Continuing with the provided token results in an inconsistent list - objects "
                   "that were created, modified, or deleted between the time the first chunk was "
                   "returned and now may show up in the list.");
    char *key = kf_arena_sprintf(r->arena, "%s", o->start);
    st.continue_token = key ? ks_continue_encode(r->arena, 0, -1, key) : NULL;
    ks_reply_status(r, &st);
}

void ks_handle_list(struct ks_req *r)
{
    struct list_opts o;
    struct ks_sel *sel;

    if (!ks_validate_list_opts(r, false) || !list_target(r, &o))
        return;
    sel = ks_req_selector(r);
    if (!sel)
        return;
    if (o.rv > ks_store.rv) {
        ks_wait_for_rv(r, o.rv, ks_handle_list);
        return;
    }
    struct lister *l = calloc(1, sizeof(*l));
    if (!l) {
        ks_reply_error(r, 500, "InternalError", "Internal error occurred: out of memory");
        return;
    }
    l->r = r;
    l->pb = r->fmt == KS_FMT_PB && !r->res->json_only;
    const char *prefix = ks_req_prefix(r);
    /* a kubelet's list of its pods reads the node index, not 150,000 pods */
    const char *pinned = r->res->index_field && !o.exact && !o.start
                             ? ks_sel_exact_field(sel, r->res->index_field)
                             : NULL;
    int rc = pinned ? ks_snapshot_take_indexed(&l->snap, r->res, prefix, pinned)
                    : ks_snapshot_take(&l->snap, r->res, prefix, o.exact ? o.rv : 0);
    if (rc == -ERANGE) {
        reply_expired(r, &o);
        list_free(l);
        return;
    }
    char *start = o.start && prefix ? kf_arena_sprintf(r->arena, "%s%s", prefix, o.start) : o.start;
    if (rc == 0)
        rc = make_page(r, l, sel, prefix, start, o.after, o.limit);
    if (rc < 0) {
        ks_reply_error(r, 500, "InternalError", "Internal error occurred: out of memory");
        list_free(l);
        return;
    }
    list_start(l);
}
