/*
 * JSON by slicing: list-item form (without kind/apiVersion) and back, Go's
 * string escaping, and compaction of pretty-printed output. Nothing here
 * re-serialises an object.
 */
#include "cache/codec/codec_internal.h"

#include <errno.h>
#include <string.h>

static size_t skip_ws(const char *s, size_t i, size_t len)
{
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

/* End of the string literal starting at s[i] == '"' (index past the closing quote), 0 if none. */
static size_t string_end(const char *s, size_t i, size_t len)
{
    for (i++; i < len; i++) {
        if (s[i] == '\\')
            i++;
        else if (s[i] == '"')
            return i + 1;
    }
    return 0;
}

/*
 * If a member "name":"string" starts at s[i], return the index past it and a
 * following comma; 0 otherwise. Only string values: kind and apiVersion are strings.
 */
static size_t typemeta_member(const char *s, size_t i, size_t len, bool *is_tm)
{
    *is_tm = false;
    if (i >= len || s[i] != '"')
        return 0;
    size_t kend = string_end(s, i, len);
    if (!kend)
        return 0;
    struct codec_str key = {s + i + 1, kend - i - 2};
    if (!codec_str_eq(key, "kind") && !codec_str_eq(key, "apiVersion"))
        return 0;
    size_t j = skip_ws(s, kend, len);
    if (j >= len || s[j] != ':')
        return 0;
    j = skip_ws(s, j + 1, len);
    if (j >= len || s[j] != '"' || !(j = string_end(s, j, len)))
        return 0;
    j = skip_ws(s, j, len);
    *is_tm = true;
    return j < len && s[j] == ',' ? j + 1 : j;
}

int codec_json_item_tail(const char *json, size_t len, size_t *tail_off)
{
    size_t i = skip_ws(json, 0, len);
    if (i >= len || json[i] != '{')
        return -EBADMSG;
    i++;
    /* Go writes TypeMeta first (kind, then apiVersion): strip at most those two */
    for (int n = 0; n < 2; n++) {
        bool is_tm;
        size_t j = typemeta_member(json, skip_ws(json, i, len), len, &is_tm);
        if (!is_tm)
            break;
        i = j;
    }
    *tail_off = i;
    return 0;
}

int codec_json_to_item(struct codec_buf *out, const char *json, size_t len)
{
    size_t tail;
    int rc = codec_json_item_tail(json, len, &tail);
    if (rc < 0)
        return rc;
    codec_buf_append(out, "{", 1);
    codec_buf_append(out, json + tail, len - tail);
    return out->err;
}

int codec_json_from_item(struct codec_buf *out, const char *item, size_t len,
                         const char *api_version, const char *kind)
{
    if (len < 2 || item[0] != '{' || item[len - 1] != '}')
        return -EBADMSG;
    codec_buf_puts(out, "{\"kind\":");
    codec_json_string(out, kind, strlen(kind));
    codec_buf_puts(out, ",\"apiVersion\":");
    codec_json_string(out, api_version, strlen(api_version));
    size_t body = skip_ws(item, 1, len);
    if (item[body] != '}')
        codec_buf_append(out, ",", 1);
    codec_buf_append(out, item + body, len - body);
    return out->err;
}

int codec_json_compact(struct codec_buf *out, const char *json, size_t len)
{
    size_t run = 0; /* start of the pending run of significant bytes */
    for (size_t i = 0; i < len; i++) {
        char c = json[i];
        if (c == '"') {
            size_t e = string_end(json, i, len);
            if (!e)
                return -EBADMSG;
            i = e - 1;
        } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            codec_buf_append(out, json + run, i - run);
            run = i + 1;
        }
    }
    codec_buf_append(out, json + run, len - run);
    return out->err;
}

/* Length of the UTF-8 sequence at s (1..4), or 0 if invalid there. */
static size_t utf8_seq(const unsigned char *s, size_t left)
{
    size_t n = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
    if (n == 0 || n > left || !utf8_valid((const char *)s, n))
        return 0;
    return n;
}

/* The escape Go writes for an ASCII byte, or NULL if it is written as is. */
static const char *ascii_escape(unsigned char c, char tmp[8])
{
    static const char hex[] = "0123456789abcdef";
    switch (c) {
    case '"':
        return "\\\"";
    case '\\':
        return "\\\\";
    case '\n':
        return "\\n";
    case '\r':
        return "\\r";
    case '\t':
        return "\\t";
    case '\b': /* Go >= 1.22; older releases wrote \u0008 and \u000c */
        return "\\b";
    case '\f':
        return "\\f";
    default:
        break;
    }
    if (c >= 0x20 && c != '<' && c != '>' && c != '&')
        return NULL; /* HTML-sensitive characters are escaped, as json.Marshal does */
    memcpy(tmp, "\\u00", 4);
    tmp[4] = hex[c >> 4];
    tmp[5] = hex[c & 15];
    tmp[6] = '\0';
    return tmp;
}

int codec_json_string(struct codec_buf *out, const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t run = 0;
    char tmp[8];
    codec_buf_append(out, "\"", 1);
    for (size_t i = 0; i < len;) {
        const char *esc = NULL;
        size_t n = 1;
        if (s[i] < 0x80) {
            esc = ascii_escape(s[i], tmp);
        } else if ((n = utf8_seq(s + i, len - i)) == 0) {
            esc = "\\ufffd", n = 1; /* invalid UTF-8, replaced as Go does */
        } else if (n == 3 && s[i] == 0xe2 && s[i + 1] == 0x80 && (s[i + 2] & 0xfe) == 0xa8) {
            esc = s[i + 2] == 0xa8 ? "\\u2028" : "\\u2029"; /* JSONP-unsafe separators */
        }
        if (esc) {
            codec_buf_append(out, str + run, i - run);
            codec_buf_puts(out, esc);
            run = i + n;
        }
        i += n;
    }
    codec_buf_append(out, str + run, len - run);
    codec_buf_append(out, "\"", 1);
    return out->err;
}
