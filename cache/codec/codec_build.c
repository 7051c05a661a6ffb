/*
 * What the apiserver serialises itself: Status, list envelopes and watch
 * events, in compact JSON (Go's encoding/json: struct field order, omitempty)
 * and protobuf (gogo-protobuf: ascending field numbers, non-pointer fields
 * always written). Objects inside are the caller's bytes, copied verbatim.
 */
#include "cache/codec/codec_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* metav1.Status, StatusDetails, StatusCause, ListMeta, WatchEvent, RawExtension */
enum { ST_METADATA = 1, ST_STATUS, ST_MESSAGE, ST_REASON, ST_DETAILS, ST_CODE };
enum { SD_NAME = 1, SD_GROUP, SD_KIND, SD_CAUSES, SD_RETRY, SD_UID };
enum { SC_REASON = 1, SC_MESSAGE, SC_FIELD };
enum { LM_SELF_LINK = 1, LM_RV, LM_CONTINUE, LM_REMAINING };
enum { WE_TYPE = 1, WE_OBJECT = 2, RAW_RAW = 1 };

static const char *const ev_names[] = {"", "ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"};

const char *codec_event_type_name(enum codec_event_type t)
{
    return (unsigned)t < KF_ARRAY_SIZE(ev_names) ? ev_names[t] : "";
}

enum codec_event_type codec_event_type_parse(struct codec_str s)
{
    for (size_t i = 1; i < KF_ARRAY_SIZE(ev_names); i++) {
        if (codec_str_eq(s, ev_names[i]))
            return (enum codec_event_type)i;
    }
    return CODEC_EV_UNKNOWN;
}

/* ---- JSON ---------------------------------------------------------------------- */

/* ,"name":"value" when value is non-empty (omitempty); first says whether to skip the comma. */
static void jmember(struct codec_buf *b, bool *first, const char *name, const char *value)
{
    if (!value || !*value)
        return;
    codec_buf_puts(b, *first ? "\"" : ",\"");
    codec_buf_puts(b, name);
    codec_buf_puts(b, "\":");
    codec_json_string(b, value, strlen(value));
    *first = false;
}

static void jint(struct codec_buf *b, bool *first, const char *name, int64_t v)
{
    char tmp[64];
    if (v == 0)
        return;
    snprintf(tmp, sizeof(tmp), "%s\"%s\":%" PRId64, *first ? "" : ",", name, v);
    codec_buf_puts(b, tmp);
    *first = false;
}

static void json_causes(struct codec_buf *b, bool *first, const struct codec_status *st)
{
    if (!st->n_causes)
        return;
    codec_buf_puts(b, *first ? "\"causes\":[" : ",\"causes\":[");
    for (size_t i = 0; i < st->n_causes; i++) {
        bool cf = true;
        codec_buf_puts(b, i ? ",{" : "{");
        jmember(b, &cf, "reason", st->causes[i].reason);
        jmember(b, &cf, "message", st->causes[i].message);
        jmember(b, &cf, "field", st->causes[i].field);
        codec_buf_puts(b, "}");
    }
    codec_buf_puts(b, "]");
    *first = false;
}

int codec_status_json(struct codec_buf *b, const struct codec_status *st)
{
    bool first = false;
    codec_buf_puts(b, "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{");
    if (st->continue_token) {
        codec_buf_puts(b, "\"continue\":");
        codec_json_string(b, st->continue_token, strlen(st->continue_token));
    }
    codec_buf_puts(b, "}");
    jmember(b, &first, "status", st->status);
    jmember(b, &first, "message", st->message);
    jmember(b, &first, "reason", st->reason);
    if (st->has_details) {
        bool df = true;
        codec_buf_puts(b, ",\"details\":{");
        jmember(b, &df, "name", st->details_name);
        jmember(b, &df, "group", st->details_group);
        jmember(b, &df, "kind", st->details_kind);
        jmember(b, &df, "uid", st->details_uid);
        json_causes(b, &df, st);
        jint(b, &df, "retryAfterSeconds", st->retry_after_seconds);
        codec_buf_puts(b, "}");
    }
    jint(b, &first, "code", st->code);
    codec_buf_puts(b, "}");
    return b->err;
}

void codec_status_expired(struct codec_status *st, char *msgbuf, size_t size, uint64_t requested,
                          uint64_t oldest)
{
    memset(st, 0, sizeof(*st));
    snprintf(msgbuf, size, "too old resource version: %" PRIu64 " (%" PRIu64 ")", requested,
             oldest);
    st->status = "Failure";
    st->message = msgbuf;
    st->reason = "Expired";
    st->code = 410;
}

int codec_json_list_begin(struct codec_buf *b, const char *api_version, const char *list_kind,
                          const struct codec_list_meta *lm)
{
    bool first = true;
    codec_buf_puts(b, "{\"kind\":");
    codec_json_string(b, list_kind, strlen(list_kind));
    codec_buf_puts(b, ",\"apiVersion\":");
    codec_json_string(b, api_version, strlen(api_version));
    codec_buf_puts(b, ",\"metadata\":{");
    jmember(b, &first, "resourceVersion", lm->resource_version);
    jmember(b, &first, "continue", lm->continue_token);
    if (lm->remaining >= 0) {
        /* a pointer in Go: present even when zero */
        char tmp[64];
        snprintf(tmp, sizeof(tmp), "%s\"remainingItemCount\":%" PRId64, first ? "" : ",",
                 lm->remaining);
        codec_buf_puts(b, tmp);
    }
    codec_buf_puts(b, "},\"items\":[");
    return b->err;
}

int codec_json_list_end(struct codec_buf *b)
{
    codec_buf_puts(b, "]}\n");
    return b->err;
}

int codec_watch_event_json(struct codec_buf *b, enum codec_event_type t, const char *obj,
                           size_t len)
{
    codec_buf_puts(b, "{\"type\":\"");
    codec_buf_puts(b, codec_event_type_name(t));
    codec_buf_puts(b, "\",\"object\":");
    codec_buf_append(b, obj, len);
    codec_buf_puts(b, "}\n");
    return b->err;
}

/* ---- protobuf -------------------------------------------------------------------- */

/* Strings that Go writes even when empty (non-pointer fields). */
static void pstr(struct codec_buf *b, uint32_t num, const char *s)
{
    pbw_string(b, num, s ? s : "");
}

static size_t pstr_size(uint32_t num, const char *s)
{
    return pb_len_field_size(num, s ? strlen(s) : 0);
}

/* int32 fields are sign-extended to 64 bits on the wire. */
static uint64_t i32(int32_t v)
{
    return (uint64_t)(int64_t)v;
}

static size_t cause_size(const struct codec_status_cause *c)
{
    return pstr_size(SC_REASON, c->reason) + pstr_size(SC_MESSAGE, c->message) +
           pstr_size(SC_FIELD, c->field);
}

static size_t details_size(const struct codec_status *st)
{
    size_t n = pstr_size(SD_NAME, st->details_name) + pstr_size(SD_GROUP, st->details_group) +
               pstr_size(SD_KIND, st->details_kind) + pstr_size(SD_UID, st->details_uid) + 1 +
               pb_varint_size(i32(st->retry_after_seconds));
    for (size_t i = 0; i < st->n_causes; i++)
        n += pb_len_field_size(SD_CAUSES, cause_size(&st->causes[i]));
    return n;
}

static void pb_details(struct codec_buf *b, const struct codec_status *st)
{
    pbw_tag(b, ST_DETAILS, PBW_LEN);
    pbw_varint(b, details_size(st));
    pstr(b, SD_NAME, st->details_name);
    pstr(b, SD_GROUP, st->details_group);
    pstr(b, SD_KIND, st->details_kind);
    for (size_t i = 0; i < st->n_causes; i++) {
        pbw_tag(b, SD_CAUSES, PBW_LEN);
        pbw_varint(b, cause_size(&st->causes[i]));
        pstr(b, SC_REASON, st->causes[i].reason);
        pstr(b, SC_MESSAGE, st->causes[i].message);
        pstr(b, SC_FIELD, st->causes[i].field);
    }
    pbw_uint(b, SD_RETRY, i32(st->retry_after_seconds));
    pstr(b, SD_UID, st->details_uid);
}

/* ListMeta as Go writes it: three strings always, remainingItemCount when set. */
static size_t list_meta_size(const struct codec_list_meta *lm)
{
    size_t n = pstr_size(LM_SELF_LINK, NULL) + pstr_size(LM_RV, lm->resource_version) +
               pstr_size(LM_CONTINUE, lm->continue_token);
    if (lm->remaining >= 0)
        n += 1 + pb_varint_size((uint64_t)lm->remaining);
    return n;
}

static void pb_list_meta(struct codec_buf *b, uint32_t num, const struct codec_list_meta *lm)
{
    pbw_tag(b, num, PBW_LEN);
    pbw_varint(b, list_meta_size(lm));
    pstr(b, LM_SELF_LINK, NULL);
    pstr(b, LM_RV, lm->resource_version);
    pstr(b, LM_CONTINUE, lm->continue_token);
    if (lm->remaining >= 0)
        pbw_uint(b, LM_REMAINING, (uint64_t)lm->remaining);
}

int codec_status_pb(struct codec_buf *b, const struct codec_status *st)
{
    struct codec_buf raw;
    const struct codec_list_meta meta = {NULL, st->continue_token, -1};
    codec_buf_init(&raw);
    pb_list_meta(&raw, ST_METADATA, &meta);
    pstr(&raw, ST_STATUS, st->status);
    pstr(&raw, ST_MESSAGE, st->message);
    pstr(&raw, ST_REASON, st->reason);
    if (st->has_details)
        pb_details(&raw, st);
    pbw_uint(&raw, ST_CODE, i32(st->code));
    int rc = raw.err ? raw.err : codec_pb_envelope_write(b, "v1", "Status", raw.data, raw.len);
    codec_buf_free(&raw);
    return rc;
}

size_t codec_pb_list_item_size(size_t raw_len)
{
    return pb_len_field_size(2, raw_len);
}

int codec_pb_list_begin(struct codec_buf *b, const char *api_version, const char *list_kind,
                        const struct codec_list_meta *lm, size_t items_size)
{
    size_t lms = list_meta_size(lm);
    pb_envelope_head(b, api_version, list_kind, pb_len_field_size(1, lms) + items_size);
    pb_list_meta(b, 1, lm);
    return b->err;
}

int codec_pb_list_item_prefix(struct codec_buf *b, size_t raw_len)
{
    pbw_tag(b, 2, PBW_LEN);
    pbw_varint(b, raw_len);
    return b->err;
}

int codec_pb_list_item(struct codec_buf *b, const void *raw, size_t raw_len)
{
    codec_pb_list_item_prefix(b, raw_len);
    codec_buf_append(b, raw, raw_len);
    return b->err;
}

int codec_pb_list_end(struct codec_buf *b)
{
    /* Unknown's contentEncoding and contentType, always written empty */
    codec_buf_append(b, "\x1a\x00\x22\x00", 4);
    return b->err;
}

int codec_watch_event_pb(struct codec_buf *b, enum codec_event_type t, const void *obj, size_t len)
{
    const char *name = codec_event_type_name(t);
    size_t ext = pb_len_field_size(RAW_RAW, len);
    size_t total = pb_len_field_size(WE_TYPE, strlen(name)) + pb_len_field_size(WE_OBJECT, ext);
    if (total > UINT32_MAX)
        return -EMSGSIZE;
    uint8_t be[4] = {(uint8_t)(total >> 24), (uint8_t)(total >> 16), (uint8_t)(total >> 8),
                     (uint8_t)total};
    codec_buf_append(b, be, 4);
    pbw_string(b, WE_TYPE, name);
    pbw_tag(b, WE_OBJECT, PBW_LEN);
    pbw_varint(b, ext);
    pbw_bytes(b, RAW_RAW, obj, len);
    return b->err;
}
