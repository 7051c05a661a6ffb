/*
 * status: metav1.Status bodies in JSON and protobuf, as the apiserver writes
 * them (field order, omitted empty fields, gogo's always-written fields).
 */
#include "loadgen/kube-sim/kube_sim.h"

#include <stdio.h>
#include <string.h>

static bool set(const char *s)
{
    return s && s[0];
}

static void json_member(struct ks_sb *sb, bool *first, const char *name, const char *value)
{
    if (!set(value))
        return;
    if (!*first)
        ks_sb_addc(sb, ',');
    *first = false;
    ks_sb_addc(sb, '"');
    ks_sb_adds(sb, name);
    ks_sb_add(sb, "\":", 2);
    ks_sb_json_cstr(sb, value);
}

static void json_details(struct ks_sb *sb, const struct ks_status *st)
{
    bool first = true;

    ks_sb_adds(sb, ",\"details\":{");
    json_member(sb, &first, "name", st->d_name);
    json_member(sb, &first, "group", st->d_group);
    json_member(sb, &first, "kind", st->d_kind);
    json_member(sb, &first, "uid", st->d_uid);
    if (st->n_causes) {
        ks_sb_adds(sb, first ? "\"causes\":[" : ",\"causes\":[");
        first = false;
        for (size_t i = 0; i < st->n_causes; i++) {
            bool f = true;
            ks_sb_adds(sb, i ? ",{" : "{");
            json_member(sb, &f, "reason", st->causes[i].reason);
            json_member(sb, &f, "message", st->causes[i].message);
            json_member(sb, &f, "field", st->causes[i].field);
            ks_sb_addc(sb, '}');
        }
        ks_sb_addc(sb, ']');
    }
    if (st->retry_after > 0)
        ks_sb_printf(sb, "%s\"retryAfterSeconds\":%d", first ? "" : ",", st->retry_after);
    ks_sb_addc(sb, '}');
}

void ks_status_json(struct ks_sb *sb, const struct ks_status *st)
{
    ks_sb_adds(sb, "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{");
    if (set(st->continue_token)) {
        ks_sb_adds(sb, "\"continue\":");
        ks_sb_json_cstr(sb, st->continue_token);
    }
    ks_sb_adds(sb, "},\"status\":");
    ks_sb_json_cstr(sb, st->status ? st->status : "Failure");
    if (set(st->message)) {
        ks_sb_adds(sb, ",\"message\":");
        ks_sb_json_cstr(sb, st->message);
    }
    if (set(st->reason)) {
        ks_sb_adds(sb, ",\"reason\":");
        ks_sb_json_cstr(sb, st->reason);
    }
    if (st->has_details)
        json_details(sb, st);
    if (st->no_code)
        ks_sb_addc(sb, '}');
    else
        ks_sb_printf(sb, ",\"code\":%d}", st->code);
}

/* The raw metav1.Status message (no envelope). */
static void pb_status_raw(struct ks_sb *sb, const struct ks_status *st)
{
    ks_pb_list_meta(sb, 1, 0, st->continue_token, -1);
    ks_pb_str(sb, 2, st->status ? st->status : "Failure");
    ks_pb_str(sb, 3, st->message);
    ks_pb_str(sb, 4, st->reason);
    if (st->has_details) {
        size_t d = ks_pb_begin(sb, 5);
        ks_pb_str(sb, 1, st->d_name);
        ks_pb_str(sb, 2, st->d_group);
        ks_pb_str(sb, 3, st->d_kind);
        for (size_t i = 0; i < st->n_causes; i++) {
            size_t c = ks_pb_begin(sb, 4);
            ks_pb_str(sb, 1, st->causes[i].reason);
            ks_pb_str(sb, 2, st->causes[i].message);
            ks_pb_str(sb, 3, st->causes[i].field);
            ks_pb_end(sb, c);
        }
        ks_pb_int(sb, 5, st->retry_after);
        ks_pb_str(sb, 6, st->d_uid);
        ks_pb_end(sb, d);
    }
    ks_pb_int(sb, 6, st->no_code ? 0 : st->code);
}

void ks_status_pb(struct ks_sb *sb, const struct ks_status *st)
{
    size_t raw;

    ks_pb_envelope_begin(sb, "v1", "Status", &raw);
    pb_status_raw(sb, st);
    ks_pb_envelope_end(sb, raw);
}

void ks_status_watch_event(struct ks_sb *sb, const struct ks_status *st, bool pb)
{
    if (!pb) {
        ks_sb_adds(sb, "{\"type\":\"ERROR\",\"object\":");
        ks_status_json(sb, st);
        ks_sb_add(sb, "}\n", 2);
        return;
    }
    struct ks_sb obj;
    ks_sb_init(&obj, 256);
    ks_status_pb(&obj, st);
    ks_watch_frame(sb, "ERROR", (const uint8_t *)obj.p, obj.len);
    if (obj.err)
        sb->err = obj.err;
    ks_sb_free(&obj);
}

void ks_watch_frame(struct ks_sb *sb, const char *type, const uint8_t *obj, size_t obj_len)
{
    size_t tlen = strlen(type);
    size_t raw_ext = 1 + ks_pb_varint_len(obj_len) + obj_len;
    size_t body = 1 + ks_pb_varint_len(tlen) + tlen + 1 + ks_pb_varint_len(raw_ext) + raw_ext;
    uint8_t be[4] = {(uint8_t)(body >> 24), (uint8_t)(body >> 16), (uint8_t)(body >> 8),
                     (uint8_t)body};

    ks_sb_add(sb, be, 4);
    ks_pb_bytes(sb, 1, type, tlen);
    ks_pb_tag(sb, 2, 2);
    ks_pb_varint(sb, raw_ext);
    ks_pb_bytes(sb, 1, obj, obj_len);
}

/* ---- constructors for the errors the apiserver returns -------------------------------- */

void ks_status_init(struct ks_status *st, int code, const char *reason, const char *message)
{
    memset(st, 0, sizeof(*st));
    st->code = code;
    st->reason = reason;
    st->status = code >= 200 && code < 300 ? "Success" : "Failure";
    snprintf(st->msgbuf, sizeof(st->msgbuf), "%s", message ? message : "");
    st->message = st->msgbuf;
}

void ks_status_details(struct ks_status *st, const char *name, const char *group, const char *kind)
{
    st->has_details = true;
    st->d_name = name;
    st->d_group = group;
    st->d_kind = kind;
}
