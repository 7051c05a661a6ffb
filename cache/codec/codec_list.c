/*
 * Reading list responses (a reflector's LIST pages): the list metadata and a
 * slice of each item's bytes, in order. JSON items come in list-item form
 * (no kind/apiVersion); protobuf items are bare object messages.
 */
#include "cache/codec/codec_internal.h"

#include <errno.h>
#include <string.h>

/* The string value of member key of the object token obj; empty if absent. */
static int member_string(const struct jdoc *d, int obj, const char *key, struct kf_arena *arena,
                         struct codec_str *out)
{
    int n = d->tok[obj].size, i = obj + 1;

    out->ptr = "";
    out->len = 0;
    for (int m = 0; m < n; m++) {
        if (jeq(d, i, key))
            return jstring(d, i + 1, arena, out);
        i = jskip(d, i + 1);
    }
    return 0;
}

static int json_list_meta(const struct jdoc *d, int meta, struct codec_list_page *page,
                          struct kf_arena *arena)
{
    int rc;

    if (d->tok[meta].type != JT_OBJECT)
        return -EBADMSG;
    rc = member_string(d, meta, "resourceVersion", arena, &page->resource_version);
    if (rc == 0)
        rc = member_string(d, meta, "continue", arena, &page->continue_token);
    return rc;
}

int codec_list_parse_json(const char *json, size_t len, struct codec_list_page *page,
                          struct kf_arena *arena, codec_list_item_cb cb, void *arg)
{
    struct jdoc d;
    int rc, items = -1;

    memset(page, 0, sizeof(*page));
    rc = jdoc_parse(&d, json, len);
    if (rc < 0) {
        jdoc_free(&d); /* a failed parse may hold its tokens */
        return rc;
    }
    int n = d.tok[0].size, i = 1;
    for (int m = 0; m < n && rc == 0; m++) {
        if (jeq(&d, i, "metadata"))
            rc = json_list_meta(&d, i + 1, page, arena);
        else if (jeq(&d, i, "items"))
            items = i + 1;
        i = jskip(&d, i + 1);
    }
    /* jeq matches strings only: null is a primitive, compared by its raw text */
    if (rc == 0 && items >= 0 && d.tok[items].type != JT_ARRAY &&
        !(d.tok[items].type == JT_PRIMITIVE && codec_str_eq(jraw(&d, items), "null")))
        rc = -EBADMSG;
    if (rc == 0 && items >= 0 && d.tok[items].type == JT_ARRAY) {
        int k = items + 1;
        for (int m = 0; m < d.tok[items].size && rc == 0; m++) {
            if (d.tok[k].type != JT_OBJECT) {
                rc = -EBADMSG;
                break;
            }
            struct codec_str item = jraw(&d, k);
            rc = cb(item.ptr, item.len, arg);
            page->n_items++;
            k = jskip(&d, k);
        }
    }
    jdoc_free(&d);
    return rc;
}

static int pb_list_meta(struct codec_str meta, struct codec_list_page *page)
{
    struct pbr r = pbr_of_str(meta);
    struct pbf f;
    int rc;

    while ((rc = pbr_next(&r, &f)) > 0) {
        if (f.type != PBW_LEN)
            continue;
        if (f.num == 2)
            page->resource_version = f.s;
        else if (f.num == 3)
            page->continue_token = f.s;
    }
    return rc;
}

int codec_list_parse_pb(const void *buf, size_t len, struct codec_list_page *page,
                        codec_list_item_cb cb, void *arg)
{
    struct codec_envelope env;
    struct pbf f;
    int rc;

    memset(page, 0, sizeof(*page));
    rc = codec_pb_envelope_parse(buf, len, &env);
    if (rc < 0)
        return rc;
    struct pbr r = pbr_of_str(env.raw);
    while ((rc = pbr_next(&r, &f)) > 0) {
        if (f.type != PBW_LEN)
            continue;
        if (f.num == 1)
            rc = pb_list_meta(f.s, page);
        else if (f.num == 2) {
            rc = cb(f.s.ptr, f.s.len, arg);
            page->n_items++;
        }
        if (rc < 0)
            return rc;
    }
    return rc;
}

int codec_status_code_json(const char *json, size_t len)
{
    struct jdoc d;
    int code = 0;

    if (jdoc_parse(&d, json, len) < 0) {
        jdoc_free(&d);
        return 0;
    }
    int n = d.tok[0].size, i = 1;
    for (int m = 0; m < n; m++) {
        if (jeq(&d, i, "code") && d.tok[i + 1].type == JT_PRIMITIVE) {
            int64_t v;
            if (parse_i64(jraw(&d, i + 1), &v) && v > 0 && v < 1000)
                code = (int)v;
        }
        i = jskip(&d, i + 1);
    }
    jdoc_free(&d);
    return code;
}

int codec_status_code_pb(const void *buf, size_t len)
{
    struct codec_envelope env;
    struct pbf f;
    int code = 0;

    if (codec_pb_envelope_parse(buf, len, &env) < 0)
        return 0;
    struct pbr r = pbr_of_str(env.raw);
    while (pbr_next(&r, &f) > 0)
        if (f.num == 6 && f.type == PBW_VARINT && f.v < 1000)
            code = (int)f.v;
    return code;
}
