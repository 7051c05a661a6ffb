/*
 * conv: JSON <-> protobuf for Kubernetes objects, driven by protobuf-c's
 * message descriptors (Kubernetes protos name their fields with the JSON
 * names). Special Kubernetes types (Time, MicroTime, Duration, Quantity,
 * IntOrString, RawExtension, FieldsV1, maps, []byte) get their JSON forms.
 *
 * JSON -> protobuf is strict: a field the proto does not have is an error
 * naming it (like the apiserver's strict field validation), never dropped.
 * The conversion also normalises the DOM in place (numbers, nulls) so the
 * JSON kube-sim stores says the same as the protobuf it stores.
 */
#include "loadgen/kube-sim/kube_sim.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <protobuf-c/protobuf-c.h>

#define META "k8s.io.apimachinery.pkg.apis.meta.v1."

enum special {
    SP_NONE,
    SP_TIME,
    SP_MICROTIME,
    SP_DURATION,
    SP_QUANTITY,
    SP_INTORSTRING,
    SP_RAWEXT,
    SP_FIELDSV1,
    SP_MAP,
};

static enum special special_lookup(const ProtobufCMessageDescriptor *d);

/* special_lookup() compares names: remember the answer per descriptor. */
static enum special special_of(const ProtobufCMessageDescriptor *d)
{
    static struct {
        const ProtobufCMessageDescriptor *d;
        enum special sp;
    } cache[1024];
    size_t i = ((uintptr_t)d >> 4) % KF_ARRAY_SIZE(cache);

    for (size_t probe = 0; probe < KF_ARRAY_SIZE(cache);
         probe++, i = (i + 1) % KF_ARRAY_SIZE(cache)) {
        if (cache[i].d == d)
            return cache[i].sp;
        if (!cache[i].d) {
            cache[i].d = d;
            cache[i].sp = special_lookup(d);
            return cache[i].sp;
        }
    }
    return special_lookup(d);
}

static enum special special_lookup(const ProtobufCMessageDescriptor *d)
{
    static const struct {
        const char *name;
        enum special sp;
    } table[] = {
        {META "Time", SP_TIME},
        {META "MicroTime", SP_MICROTIME},
        {META "Duration", SP_DURATION},
        {META "FieldsV1", SP_FIELDSV1},
        {"k8s.io.apimachinery.pkg.api.resource.Quantity", SP_QUANTITY},
        {"k8s.io.apimachinery.pkg.util.intstr.IntOrString", SP_INTORSTRING},
        {"k8s.io.apimachinery.pkg.runtime.RawExtension", SP_RAWEXT},
    };
    for (size_t i = 0; i < KF_ARRAY_SIZE(table); i++)
        if (strcmp(d->name, table[i].name) == 0)
            return table[i].sp;
    /* protoc-c turns map<K,V> into a repeated nested "XxxEntry" {key = 1; value = 2} */
    size_t len = strlen(d->name);
    if (d->n_fields == 2 && len > 5 && strcmp(d->name + len - 5, "Entry") == 0 &&
        strcmp(d->fields[0].name, "key") == 0 && strcmp(d->fields[1].name, "value") == 0)
        return SP_MAP;
    return SP_NONE;
}

/*
 * Fields Go embeds without a JSON name: their members appear directly in the
 * parent's JSON object (Volume's VolumeSource, the LocalObjectReference of
 * key selectors and projections, Probe's handler, ...).
 */
static bool is_inline(const ProtobufCMessageDescriptor *parent, const ProtobufCFieldDescriptor *f)
{
    static const struct {
        const char *message, *field;
    } inl[] = {
        {"k8s.io.api.core.v1.Volume", "volumeSource"},
        {"k8s.io.api.core.v1.PersistentVolumeSpec", "persistentVolumeSource"},
        {"k8s.io.api.core.v1.Probe", "handler"},
        {"k8s.io.api.core.v1.EphemeralContainer", "ephemeralContainerCommon"},
    };

    if (f->type != PROTOBUF_C_TYPE_MESSAGE || f->label == PROTOBUF_C_LABEL_REPEATED)
        return false;
    if (strcmp(f->name, "localObjectReference") == 0)
        return true;
    for (size_t i = 0; i < KF_ARRAY_SIZE(inl); i++)
        if (strcmp(parent->name, inl[i].message) == 0 && strcmp(f->name, inl[i].field) == 0)
            return true;
    return false;
}

/* The inline field of d whose message has a field called key (and that field). */
static const ProtobufCFieldDescriptor *inline_owner(const ProtobufCMessageDescriptor *d,
                                                    const char *key,
                                                    const ProtobufCFieldDescriptor **inner)
{
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (!is_inline(d, f))
            continue;
        *inner = protobuf_c_message_descriptor_get_field_by_name(f->descriptor, key);
        if (*inner)
            return f;
    }
    return NULL;
}

/* ---- errors ----------------------------------------------------------------------- */

struct conv {
    struct kf_arena *arena;
    char path[512];
    size_t path_len;
    struct ks_conv_error *err;
};

static int conv_fail(struct conv *c, enum ks_conv_err_kind kind, const char *fmt, ...)
    KF_PRINTF(3, 4);

static int conv_fail(struct conv *c, enum ks_conv_err_kind kind, const char *fmt, ...)
{
    va_list ap;

    c->err->kind = kind;
    snprintf(c->err->field, sizeof(c->err->field), "%.*s", (int)c->path_len, c->path);
    va_start(ap, fmt);
    vsnprintf(c->err->detail, sizeof(c->err->detail), fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* Append ".name" to the JSON path of error messages (cheap: it runs per field). */
static size_t path_push(struct conv *c, const char *name, size_t len)
{
    size_t saved = c->path_len, dot = saved ? 1 : 0;

    if (saved + dot + len < sizeof(c->path)) {
        if (dot)
            c->path[saved] = '.';
        memcpy(c->path + saved + dot, name, len);
        c->path_len = saved + dot + len;
    }
    return saved;
}

static const char *jt_name(enum ks_jt t)
{
    static const char *const names[] = {"null", "bool", "number", "string", "array", "object"};
    return names[t];
}

static int type_error(struct conv *c, const struct ks_json *j, const char *want)
{
    return conv_fail(c, KS_CONV_TYPE, "cannot unmarshal %s into Go struct field %.*s of type %s",
                     jt_name(j->t), (int)c->path_len, c->path, want);
}

/* ---- time ----------------------------------------------------------------------------- */

int ks_time_parse(const char *s, int64_t *sec, int32_t *nsec)
{
    struct tm tm = {0};
    const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    int32_t frac = 0;
    int64_t off = 0;

    if (!p)
        return -EINVAL;
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, digits++)
            if (digits < 9)
                frac = frac * 10 + (*p - '0');
        if (digits == 0)
            return -EINVAL;
        for (; digits < 9; digits++)
            frac *= 10;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
        int hh = (p[1] - '0') * 10 + (p[2] - '0'), mm = (p[4] - '0') * 10 + (p[5] - '0');
        off = (int64_t)(hh * 3600 + mm * 60) * (*p == '+' ? 1 : -1);
        p += 6;
    } else {
        return -EINVAL;
    }
    if (*p)
        return -EINVAL;
    *sec = (int64_t)timegm(&tm) - off;
    *nsec = frac;
    return 0;
}

void ks_time_format(char *buf, size_t size, int64_t sec, int32_t nsec, bool micro)
{
    time_t t = (time_t)sec;
    struct tm tm;
    char base[32];

    gmtime_r(&t, &tm);
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    if (micro)
        snprintf(buf, size, "%s.%06dZ", base, (int)(nsec / 1000));
    else
        snprintf(buf, size, "%sZ", base);
}

/* Go's time.Duration.String() for the Duration type. */
static void duration_format(char *buf, size_t size, int64_t ns)
{
    uint64_t u = ns < 0 ? (uint64_t)0 - (uint64_t)ns : (uint64_t)ns;
    const char *sign = ns < 0 ? "-" : "";

    if (u == 0) {
        snprintf(buf, size, "0s");
    } else if (u < 1000000000ull) {
        snprintf(buf, size, "%s%gms", sign, (double)u / 1e6);
    } else {
        uint64_t s = u / 1000000000ull, frac = u % 1000000000ull;
        uint64_t h = s / 3600, m = (s / 60) % 60;
        char secs[32];
        if (frac) {
            snprintf(secs, sizeof(secs), "%" PRIu64 ".%09" PRIu64, s % 60, frac);
            size_t l = strlen(secs);
            while (secs[l - 1] == '0')
                secs[--l] = '\0';
        } else {
            snprintf(secs, sizeof(secs), "%" PRIu64, s % 60);
        }
        if (h)
            snprintf(buf, size, "%s%" PRIu64 "h%" PRIu64 "m%ss", sign, h, m, secs);
        else if (m)
            snprintf(buf, size, "%s%" PRIu64 "m%ss", sign, m, secs);
        else
            snprintf(buf, size, "%s%ss", sign, secs);
    }
}

static int duration_parse(const char *s, int64_t *out)
{
    double total = 0;
    bool neg = *s == '-';

    if (*s == '-' || *s == '+')
        s++;
    if (strcmp(s, "0") == 0) {
        *out = 0;
        return 0;
    }
    if (!*s)
        return -EINVAL;
    while (*s) {
        char *end;
        double v = strtod(s, &end);
        if (end == s)
            return -EINVAL;
        s = end;
        static const struct {
            const char *unit;
            double ns;
        } units[] = {{"ns", 1},  {"us", 1e3}, {"µs", 1e3},  {"ms", 1e6},
                     {"s", 1e9}, {"m", 6e10}, {"h", 3.6e12}};
        size_t k;
        for (k = 0; k < KF_ARRAY_SIZE(units); k++) {
            size_t ul = strlen(units[k].unit);
            if (strncmp(s, units[k].unit, ul) == 0 && !(ul == 1 && s[0] == 'm' && s[1] == 's')) {
                total += v * units[k].ns;
                s += ul;
                break;
            }
        }
        if (k == KF_ARRAY_SIZE(units))
            return -EINVAL;
    }
    *out = (int64_t)(neg ? -total : total);
    return 0;
}

/* ---- JSON -> protobuf ------------------------------------------------------------------ */

static size_t elem_size(const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_ENUM:
    case PROTOBUF_C_TYPE_FLOAT:
        return 4;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE:
    default:
        return sizeof(void *);
    }
}

static int conv_message(struct conv *c, const ProtobufCMessageDescriptor *d, struct ks_json *j,
                        ProtobufCMessage **out, bool top);

/* A JSON integer literal within [min, max]; the DOM gets its canonical text. */
static int conv_int(struct conv *c, struct ks_json *j, int64_t min, int64_t max, const char *go,
                    int64_t *out)
{
    char *end;
    long long v;

    if (j->t != KS_J_NUM)
        return type_error(c, j, go);
    errno = 0;
    v = strtoll(j->s, &end, 10);
    if (*end || errno || v < min || v > max)
        return conv_fail(c, KS_CONV_TYPE,
                         "cannot unmarshal number %s into Go struct field %.*s of type %s", j->s,
                         (int)c->path_len, c->path, go);
    *out = v;
    return 0;
}

static int conv_bytes(struct conv *c, struct ks_json *j, ProtobufCBinaryData *out)
{
    if (j->t != KS_J_STR)
        return type_error(c, j, "[]uint8");
    uint8_t *buf = kf_arena_alloc(c->arena, j->n / 4 * 3 + 3);
    if (!buf)
        return -ENOMEM;
    int n = j->n ? EVP_DecodeBlock(buf, (const unsigned char *)j->s, (int)j->n) : 0;
    if (n < 0 || j->n % 4)
        return conv_fail(c, KS_CONV_TYPE, "illegal base64 data at input byte 0");
    /* EVP_DecodeBlock counts padding as zero bytes */
    if (j->n >= 1 && j->s[j->n - 1] == '=')
        n--;
    if (j->n >= 2 && j->s[j->n - 2] == '=')
        n--;
    out->data = buf;
    out->len = (size_t)n;
    return 0;
}

static int conv_scalar(struct conv *c, const ProtobufCFieldDescriptor *f, struct ks_json *j,
                       void *dst)
{
    int64_t v;
    int rc;

    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        rc = conv_int(c, j, INT32_MIN, INT32_MAX, "int32", &v);
        if (rc == 0)
            *(int32_t *)dst = (int32_t)v;
        return rc;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        rc = conv_int(c, j, 0, UINT32_MAX, "uint32", &v);
        if (rc == 0)
            *(uint32_t *)dst = (uint32_t)v;
        return rc;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        rc = conv_int(c, j, INT64_MIN, INT64_MAX, "int64", &v);
        if (rc == 0)
            *(int64_t *)dst = v;
        return rc;
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE:
        if (j->t != KS_J_NUM)
            return type_error(c, j, "float64");
        if (f->type == PROTOBUF_C_TYPE_FLOAT)
            *(float *)dst = strtof(j->s, NULL);
        else
            *(double *)dst = strtod(j->s, NULL);
        return 0;
    case PROTOBUF_C_TYPE_BOOL:
        if (j->t != KS_J_BOOL)
            return type_error(c, j, "bool");
        *(protobuf_c_boolean *)dst = j->b;
        return 0;
    case PROTOBUF_C_TYPE_STRING:
        if (j->t != KS_J_STR)
            return type_error(c, j, "string");
        *(const char **)dst = j->s;
        return 0;
    case PROTOBUF_C_TYPE_BYTES:
        return conv_bytes(c, j, dst);
    case PROTOBUF_C_TYPE_MESSAGE:
        return conv_message(c, f->descriptor, j, dst, false);
    default:
        return conv_fail(c, KS_CONV_TYPE, "unsupported protobuf type");
    }
}

static void *msg_new(struct conv *c, const ProtobufCMessageDescriptor *d)
{
    void *m = kf_arena_alloc(c->arena, d->sizeof_message);

    if (m)
        protobuf_c_message_init(d, m);
    return m;
}

/* Set the has_ flag of an optional scalar (strings and messages have none). */
static void set_has(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_STRING &&
        f->type != PROTOBUF_C_TYPE_MESSAGE && f->quantifier_offset)
        *(protobuf_c_boolean *)((char *)m + f->quantifier_offset) = 1;
}

/* Special-type message from its JSON form. */
static int conv_special(struct conv *c, enum special sp, const ProtobufCMessageDescriptor *d,
                        struct ks_json *j, ProtobufCMessage *m)
{
    char *base = (char *)m;
    const ProtobufCFieldDescriptor *f = d->fields;

    switch (sp) {
    case SP_TIME:
    case SP_MICROTIME: {
        int64_t sec;
        int32_t nsec;
        if (j->t != KS_J_STR)
            return type_error(c, j, "metav1.Time");
        if (ks_time_parse(j->s, &sec, &nsec) < 0)
            return conv_fail(c, KS_CONV_TYPE, "parsing time \"%s\" as RFC3339: invalid", j->s);
        /* fields: seconds = 1, nanos = 2; Time keeps whole seconds */
        *(int64_t *)(base + f[0].offset) = sec;
        *(protobuf_c_boolean *)(base + f[0].quantifier_offset) = 1;
        *(int32_t *)(base + f[1].offset) = sp == SP_TIME ? 0 : nsec / 1000 * 1000;
        *(protobuf_c_boolean *)(base + f[1].quantifier_offset) = 1;
        return 0;
    }
    case SP_DURATION: {
        int64_t ns;
        if (j->t != KS_J_STR || duration_parse(j->s, &ns) < 0)
            return conv_fail(c, KS_CONV_TYPE, "time: invalid duration");
        *(int64_t *)(base + f[0].offset) = ns;
        *(protobuf_c_boolean *)(base + f[0].quantifier_offset) = 1;
        return 0;
    }
    case SP_QUANTITY:
        if (j->t == KS_J_NUM)
            j->t = KS_J_STR; /* the apiserver writes quantities as strings */
        if (j->t != KS_J_STR)
            return type_error(c, j, "resource.Quantity");
        if (j->n == 0)
            return conv_fail(c, KS_CONV_TYPE,
                             "quantities must match the regular expression "
                             "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'");
        *(const char **)(base + f[0].offset) = j->s;
        return 0;
    case SP_INTORSTRING: {
        /* type = 1, intVal = 2, strVal = 3 */
        int64_t v;
        /* gogo writes all three fields; so do we, for identical bytes */
        bool str = j->t == KS_J_STR;
        if (!str && conv_int(c, j, INT32_MIN, INT32_MAX, "intstr.IntOrString", &v) < 0)
            return -EINVAL;
        *(int64_t *)(base + f[0].offset) = str ? 1 : 0;
        *(protobuf_c_boolean *)(base + f[0].quantifier_offset) = 1;
        *(int32_t *)(base + f[1].offset) = str ? 0 : (int32_t)v;
        *(protobuf_c_boolean *)(base + f[1].quantifier_offset) = 1;
        *(const char **)(base + f[2].offset) = str ? j->s : "";
        return 0;
    }
    case SP_RAWEXT:
    case SP_FIELDSV1: {
        struct ks_sb sb;
        ks_sb_init(&sb, 256);
        ks_json_write(&sb, j);
        char *raw = sb.err ? NULL : kf_arena_strndup(c->arena, sb.p, sb.len);
        size_t len = sb.len;
        ks_sb_free(&sb);
        if (!raw)
            return -ENOMEM;
        ProtobufCBinaryData *bd = (ProtobufCBinaryData *)(base + f[0].offset);
        bd->data = (uint8_t *)raw;
        bd->len = len;
        *(protobuf_c_boolean *)(base + f[0].quantifier_offset) = 1;
        return 0;
    }
    default:
        return -EINVAL;
    }
}

static int cmp_entry_keys(const void *a, const void *b)
{
    const ProtobufCMessage *const *x = a, *const *y = b;
    /* key is the first member after the base: all entries have key = 1 */
    const ProtobufCFieldDescriptor *f = &(*x)->descriptor->fields[0];
    const char *kx = *(const char *const *)((const char *)*x + f->offset);
    const char *ky = *(const char *const *)((const char *)*y + f->offset);
    return strcmp(kx ? kx : "", ky ? ky : "");
}

/* map<string, V> from a JSON object: repeated entries sorted by key (as gogo writes). */
static int conv_map(struct conv *c, const ProtobufCFieldDescriptor *f, struct ks_json *j,
                    ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *ed = f->descriptor;
    size_t n = 0;

    if (j->t != KS_J_OBJ)
        return type_error(c, j, "map[string]string");
    ProtobufCMessage **entries = kf_arena_alloc(c->arena, (j->count + 1) * sizeof(*entries));
    if (!entries)
        return -ENOMEM;
    for (struct ks_json **link = &j->kids; *link;) {
        struct ks_json *kid = *link;
        if (kid->t == KS_J_NULL && ed->fields[1].type == PROTOBUF_C_TYPE_STRING) {
            kid->t = KS_J_STR; /* Go decodes a null map value as the zero value */
            kid->s = "";
            kid->n = 0;
        }
        ProtobufCMessage *e = msg_new(c, ed);
        if (!e)
            return -ENOMEM;
        *(const char **)((char *)e + ed->fields[0].offset) = kid->key;
        size_t saved = path_push(c, kid->key, kid->key_len);
        int rc = conv_scalar(c, &ed->fields[1], kid, (char *)e + ed->fields[1].offset);
        c->path_len = saved;
        if (rc < 0)
            return rc;
        set_has(e, &ed->fields[1]);
        entries[n++] = e;
        link = &kid->next;
    }
    qsort(entries, n, sizeof(*entries), cmp_entry_keys);
    *(size_t *)((char *)m + f->quantifier_offset) = n;
    *(ProtobufCMessage ***)((char *)m + f->offset) = entries;
    return 0;
}

static int conv_repeated(struct conv *c, const ProtobufCFieldDescriptor *f, struct ks_json *j,
                         ProtobufCMessage *m)
{
    if (f->type == PROTOBUF_C_TYPE_MESSAGE && special_of(f->descriptor) == SP_MAP)
        return conv_map(c, f, j, m);
    if (j->t != KS_J_ARR)
        return type_error(c, j, "array");
    size_t es = elem_size(f);
    char *arr = kf_arena_alloc(c->arena, (j->count + 1) * es);
    size_t n = 0;
    if (!arr)
        return -ENOMEM;
    for (struct ks_json *el = j->kids; el; el = el->next) {
        char idx[24];
        size_t len = 0, saved = c->path_len;
        idx[len++] = '[';
        char digits[20];
        size_t nd = 0;
        for (size_t v = n; nd == 0 || v; v /= 10)
            digits[nd++] = (char)('0' + v % 10);
        while (nd)
            idx[len++] = digits[--nd];
        idx[len++] = ']';
        if (c->path_len + len < sizeof(c->path)) {
            memcpy(c->path + c->path_len, idx, len);
            c->path_len += len;
        }
        int rc = conv_scalar(c, f, el, arr + n * es);
        c->path_len = saved;
        if (rc < 0)
            return rc;
        n++;
    }
    *(size_t *)((char *)m + f->quantifier_offset) = n;
    *(void **)((char *)m + f->offset) = arr;
    return 0;
}

static int conv_field(struct conv *c, const ProtobufCFieldDescriptor *f, struct ks_json *j,
                      ProtobufCMessage *m)
{
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return conv_repeated(c, f, j, m);
    int rc = conv_scalar(c, f, j, (char *)m + f->offset);
    if (rc == 0)
        set_has(m, f);
    return rc;
}

static int conv_message(struct conv *c, const ProtobufCMessageDescriptor *d, struct ks_json *j,
                        ProtobufCMessage **out, bool top)
{
    enum special sp = special_of(d);
    ProtobufCMessage *m = msg_new(c, d);

    if (!m)
        return -ENOMEM;
    *out = m;
    if (sp != SP_NONE && sp != SP_MAP)
        return conv_special(c, sp, d, j, m);
    if (j->t != KS_J_OBJ)
        return type_error(c, j, d->short_name);
    for (struct ks_json **link = &j->kids; *link;) {
        struct ks_json *kid = *link;
        if (top && (strcmp(kid->key, "kind") == 0 || strcmp(kid->key, "apiVersion") == 0)) {
            link = &kid->next;
            continue;
        }
        size_t saved = path_push(c, kid->key, kid->key_len);
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field_by_name(d, kid->key);
        ProtobufCMessage *target = m;
        const ProtobufCFieldDescriptor *owner = f ? NULL : inline_owner(d, kid->key, &f);
        if (owner) {
            ProtobufCMessage **slot = (ProtobufCMessage **)((char *)m + owner->offset);
            if (!*slot && !(*slot = msg_new(c, owner->descriptor)))
                return -ENOMEM;
            target = *slot;
        }
        if (!f) {
            int rc =
                conv_fail(c, KS_CONV_UNKNOWN, "unknown field \"%.*s\"", (int)c->path_len, c->path);
            c->path_len = saved;
            return rc;
        }
        if (kid->t == KS_J_NULL) {
            /* null is the zero value: nothing to store; Go echoes null only for Time fields */
            enum special fsp =
                f->type == PROTOBUF_C_TYPE_MESSAGE ? special_of(f->descriptor) : SP_NONE;
            c->path_len = saved;
            if (f->label != PROTOBUF_C_LABEL_REPEATED && (fsp == SP_TIME || fsp == SP_MICROTIME)) {
                /* a zero Time: gogo writes it as an empty message, Go's JSON as null */
                ProtobufCMessage **slot = (ProtobufCMessage **)((char *)target + f->offset);
                if (!*slot && !(*slot = msg_new(c, f->descriptor)))
                    return -ENOMEM;
                link = &kid->next;
                continue;
            }
            *link = kid->next;
            j->count--;
            continue;
        }
        int rc = conv_field(c, f, kid, target);
        c->path_len = saved;
        if (rc < 0)
            return rc;
        link = &kid->next;
    }
    return 0;
}

int ks_conv_from_json(const struct ProtobufCMessageDescriptor *desc, struct ks_json *root,
                      struct kf_arena *arena, struct ProtobufCMessage **out,
                      struct ks_conv_error *err)
{
    struct conv c = {.arena = arena, .err = err};

    memset(err, 0, sizeof(*err));
    return conv_message(&c, desc, root, out, true);
}

int ks_conv_pack(const struct ProtobufCMessage *msg, const char *api_version, const char *kind,
                 struct ks_sb *out, size_t *item_off, size_t *item_len)
{
    size_t raw_len = protobuf_c_message_get_packed_size(msg);
    size_t raw_start;

    ks_pb_envelope_begin(out, api_version, kind, &raw_start);
    /* ks_pb_begin reserved 5 length bytes; write the real length now and pack in place */
    out->len = raw_start - 5;
    size_t hdr = out->len - 1; /* the 0x12 tag */
    ks_pb_varint(out, raw_len);
    if (!ks_sb_reserve(out, raw_len + 4))
        return -ENOMEM;
    protobuf_c_message_pack(msg, (uint8_t *)out->p + out->len);
    out->len += raw_len;
    ks_sb_add(out, "\x1a\x00\x22\x00", 4);
    if (item_off)
        *item_off = hdr;
    if (item_len)
        *item_len = out->len - 4 - hdr;
    return out->err;
}

/* ---- protobuf -> JSON DOM ---------------------------------------------------------------- */

static struct ks_json *jnew(struct conv *c, enum ks_jt t)
{
    struct ks_json *j = kf_arena_alloc(c->arena, sizeof(*j));

    if (j)
        j->t = t;
    return j;
}

static struct ks_json *jstr(struct conv *c, const char *s, size_t n)
{
    struct ks_json *j = jnew(c, KS_J_STR);

    if (j) {
        j->s = kf_arena_strndup(c->arena, s, n);
        j->n = n;
        if (!j->s)
            return NULL;
    }
    return j;
}

static struct ks_json *jnum(struct conv *c, const char *fmt, ...) KF_PRINTF(2, 3);

static struct ks_json *jnum(struct conv *c, const char *fmt, ...)
{
    struct ks_json *j = jnew(c, KS_J_NUM);
    char buf[64];
    va_list ap;

    if (!j)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    j->s = kf_arena_strdup(c->arena, buf);
    j->n = strlen(buf);
    return j->s ? j : NULL;
}

static struct ks_json *to_dom(struct conv *c, const ProtobufCMessage *m);

static int cmp_order(const void *key, const void *elem)
{
    return strcmp(key, ((const struct ks_field_order *)elem)->message);
}

/* The Go field order of d, when the generated table has it and covers every field. */
static const struct ks_field_order *declared_order(const ProtobufCMessageDescriptor *d)
{
    const struct ks_field_order *o =
        bsearch(d->name, ks_field_orders, ks_n_field_orders, sizeof(*o), cmp_order);
    return o && o->n == d->n_fields ? o : NULL;
}

static struct ks_json *special_to_dom(struct conv *c, enum special sp, const ProtobufCMessage *m)
{
    const ProtobufCFieldDescriptor *f = m->descriptor->fields;
    const char *base = (const char *)m;
    char buf[64];

    switch (sp) {
    case SP_TIME:
    case SP_MICROTIME: {
        int64_t sec = *(const int64_t *)(base + f[0].offset);
        int32_t nsec = *(const int32_t *)(base + f[1].offset);
        if (sec == 0 && nsec == 0)
            return jnew(c, KS_J_NULL);
        ks_time_format(buf, sizeof(buf), sec, nsec, sp == SP_MICROTIME);
        return jstr(c, buf, strlen(buf));
    }
    case SP_DURATION:
        duration_format(buf, sizeof(buf), *(const int64_t *)(base + f[0].offset));
        return jstr(c, buf, strlen(buf));
    case SP_QUANTITY: {
        const char *q = *(const char *const *)(base + f[0].offset);
        return jstr(c, q ? q : "0", q ? strlen(q) : 1);
    }
    case SP_INTORSTRING: {
        if (*(const int64_t *)(base + f[0].offset) == 1) {
            const char *s = *(const char *const *)(base + f[2].offset);
            return jstr(c, s ? s : "", s ? strlen(s) : 0);
        }
        return jnum(c, "%d", *(const int32_t *)(base + f[1].offset));
    }
    case SP_RAWEXT:
    case SP_FIELDSV1: {
        const ProtobufCBinaryData *bd = (const ProtobufCBinaryData *)(base + f[0].offset);
        struct ks_json *j = NULL;
        char err[128];
        if (!bd->len)
            return jnew(c, KS_J_NULL);
        if (ks_json_parse(c->arena, (const char *)bd->data, bd->len, &j, err, sizeof(err)) < 0)
            conv_fail(c, KS_CONV_TYPE, "embedded object is not JSON: %s", err);
        return j;
    }
    default:
        return NULL;
    }
}

static struct ks_json *scalar_to_dom(struct conv *c, const ProtobufCFieldDescriptor *f,
                                     const void *v)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return jnum(c, "%" PRId32, *(const int32_t *)v);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return jnum(c, "%" PRIu32, *(const uint32_t *)v);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return jnum(c, "%" PRId64, *(const int64_t *)v);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return jnum(c, "%" PRIu64, *(const uint64_t *)v);
    case PROTOBUF_C_TYPE_FLOAT:
        return jnum(c, "%.9g", (double)*(const float *)v);
    case PROTOBUF_C_TYPE_DOUBLE:
        return jnum(c, "%.17g", *(const double *)v);
    case PROTOBUF_C_TYPE_BOOL: {
        struct ks_json *j = jnew(c, KS_J_BOOL);
        if (j)
            j->b = *(const protobuf_c_boolean *)v != 0;
        return j;
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(const char *const *)v;
        return jstr(c, s ? s : "", s ? strlen(s) : 0);
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *bd = v;
        char *b64 = kf_arena_alloc(c->arena, 4 * ((bd->len + 2) / 3) + 1);
        if (!b64)
            return NULL;
        EVP_EncodeBlock((unsigned char *)b64, bd->data, (int)bd->len);
        return jstr(c, b64, strlen(b64));
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        return to_dom(c, *(const ProtobufCMessage *const *)v);
    default:
        return NULL;
    }
}

/* Whether an optional field carries a value worth writing (Go's omitempty view). */
static bool present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    const char *base = (const char *)m;

    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return *(const size_t *)(base + f->quantifier_offset) > 0;
    if (f->type == PROTOBUF_C_TYPE_STRING) {
        const char *s = *(const char *const *)(base + f->offset);
        return s && s[0];
    }
    if (f->type == PROTOBUF_C_TYPE_MESSAGE)
        return *(const void *const *)(base + f->offset) != NULL;
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset)
        return *(const protobuf_c_boolean *)(base + f->quantifier_offset) != 0;
    return true;
}

static struct ks_json *repeated_to_dom(struct conv *c, const ProtobufCFieldDescriptor *f,
                                       const ProtobufCMessage *m)
{
    size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
    const char *arr = *(const char *const *)((const char *)m + f->offset);
    bool is_map = f->type == PROTOBUF_C_TYPE_MESSAGE && special_of(f->descriptor) == SP_MAP;
    struct ks_json *j = jnew(c, is_map ? KS_J_OBJ : KS_J_ARR), **tail;
    size_t es = elem_size(f);

    if (!j)
        return NULL;
    tail = &j->kids;
    for (size_t i = 0; i < n; i++) {
        struct ks_json *el;
        if (is_map) {
            const ProtobufCMessage *e = ((const ProtobufCMessage *const *)arr)[i];
            const ProtobufCFieldDescriptor *kf = &e->descriptor->fields[0];
            const char *key = *(const char *const *)((const char *)e + kf->offset);
            el = scalar_to_dom(c, &e->descriptor->fields[1],
                               (const char *)e + e->descriptor->fields[1].offset);
            if (el) {
                el->key = key ? key : "";
                el->key_len = strlen(el->key);
            }
        } else {
            el = scalar_to_dom(c, f, arr + i * es);
        }
        if (!el)
            return NULL;
        *tail = el;
        tail = &el->next;
        j->count++;
    }
    return j;
}

static struct ks_json *to_dom(struct conv *c, const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    enum special sp = special_of(d);
    struct ks_json *j, **tail;

    if (sp != SP_NONE && sp != SP_MAP)
        return special_to_dom(c, sp, m);
    j = jnew(c, KS_J_OBJ);
    if (!j)
        return NULL;
    tail = &j->kids;
    const struct ks_field_order *order = declared_order(d);
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f =
            order && i < order->n ? protobuf_c_message_descriptor_get_field(d, order->numbers[i])
                                  : &d->fields[i];
        if (!f || !present(m, f))
            continue;
        struct ks_json *v = f->label == PROTOBUF_C_LABEL_REPEATED
                                ? repeated_to_dom(c, f, m)
                                : scalar_to_dom(c, f, (const char *)m + f->offset);
        if (!v)
            return NULL;
        if (is_inline(d, f) && v->t == KS_J_OBJ) {
            /* an embedded struct: its members go straight into this object */
            for (struct ks_json *k = v->kids; k; k = k->next) {
                *tail = k;
                tail = &k->next;
                j->count++;
            }
            *tail = NULL;
            continue;
        }
        v->key = f->name;
        v->key_len = strlen(f->name);
        *tail = v;
        tail = &v->next;
        j->count++;
    }
    return j;
}

int ks_conv_to_json(const struct ProtobufCMessage *msg, struct kf_arena *arena,
                    struct ks_json **out, struct ks_conv_error *err)
{
    struct conv c = {.arena = arena, .err = err};

    memset(err, 0, sizeof(*err));
    *out = to_dom(&c, msg);
    if (!*out)
        return err->kind ? -EINVAL : -ENOMEM;
    return 0;
}

int ks_conv_unpack(const struct ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len,
                   struct kf_arena *arena, struct ProtobufCMessage **out)
{
    ProtobufCAllocator alloc = {
        .alloc = ks_conv_arena_alloc,
        .free = ks_conv_arena_free,
        .allocator_data = arena,
    };

    *out = protobuf_c_message_unpack(desc, &alloc, len, data);
    return *out ? 0 : -EINVAL;
}

void *ks_conv_arena_alloc(void *arena, size_t size)
{
    return kf_arena_alloc(arena, size);
}

void ks_conv_arena_free(void *arena, void *ptr)
{
    (void)arena;
    (void)ptr; /* the arena frees everything at once */
}
