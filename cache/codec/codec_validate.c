/*
 * Label key and value validation with the apiserver's messages
 * (k8s.io/apimachinery pkg/api/validate/content), and Go's %q quoting, so a
 * rejected selector reads exactly like the apiserver's 400.
 */
#include "cache/codec/codec_internal.h"

#include <stdio.h>
#include <string.h>

#define LABEL_KEY_FMT "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
#define LABEL_KEY_MSG                                                                              \
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "    \
    "alphanumeric character"
#define LABEL_KEY_EG  "(e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '"
#define DNS_LABEL_FMT "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
#define DNS_SUB_FMT   DNS_LABEL_FMT "(\\." DNS_LABEL_FMT ")*"
#define DNS_SUB_MSG                                                                                \
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "   \
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "  \
    "for validation is '" DNS_SUB_FMT "')"
#define LABEL_VALUE_MSG                                                                            \
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "    \
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "             \
    "'my_value',  or '12345', regex used for validation is '(" LABEL_KEY_FMT ")?')"

static bool alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9] */
static bool label_name_ok(const char *s, size_t n)
{
    if (n == 0 || !alnum(s[0]) || !alnum(s[n - 1]))
        return false;
    for (size_t i = 1; i + 1 < n; i++) {
        if (!alnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
            return false;
    }
    return true;
}

/* [a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)* */
bool codec_dns_subdomain_ok(const char *s, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '.') {
            char c = s[i];
            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
                return false;
            continue;
        }
        /* one label: [start, i) */
        if (i == start || s[start] == '-' || s[i - 1] == '-')
            return false;
        start = i + 1;
    }
    return true;
}

/* Append "; " between messages, as strings.Join(errs, "; ") does. */
static void add(struct codec_buf *b, const char *msg)
{
    if (b->len)
        codec_buf_puts(b, "; ");
    codec_buf_puts(b, msg);
}

static void check_name_part(struct codec_buf *b, const char *name, size_t n)
{
    if (n == 0)
        add(b, "name part must be non-empty");
    else if (n > 63)
        add(b, "name part must be no more than 63 bytes");
    if (!label_name_ok(name, n))
        add(b, "name part " LABEL_KEY_MSG " " LABEL_KEY_EG LABEL_KEY_FMT "')");
}

bool label_key_errors(const char *key, struct codec_buf *b)
{
    const char *slash = strchr(key, '/');
    size_t before = b->len;
    if (slash && strchr(slash + 1, '/')) {
        add(b, "a valid label key " LABEL_KEY_MSG " " LABEL_KEY_EG LABEL_KEY_FMT
               "') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')");
        return true;
    }
    const char *name = slash ? slash + 1 : key;
    if (slash) {
        size_t pl = (size_t)(slash - key);
        if (pl == 0) {
            add(b, "prefix part must be non-empty");
        } else {
            if (pl > 253)
                add(b, "prefix part must be no more than 253 bytes");
            if (!codec_dns_subdomain_ok(key, pl))
                add(b, "prefix part " DNS_SUB_MSG);
        }
    }
    check_name_part(b, name, strlen(name));
    return b->len != before;
}

bool label_value_errors(const char *v, struct codec_buf *b)
{
    size_t n = strlen(v), before = b->len;
    if (n > 63)
        add(b, "must be no more than 63 bytes");
    if (n && !label_name_ok(v, n))
        add(b, LABEL_VALUE_MSG);
    return b->len != before;
}

/* Go's strconv.Quote for one rune or invalid byte. */
static void quote_rune(struct codec_buf *b, const unsigned char *s, size_t *i, size_t len)
{
    static const char esc_from[] = "\a\b\f\n\r\t\v\"\\", esc_to[] = "abfnrtv\"\\";
    char tmp[16];
    unsigned char c = s[*i];
    const char *hit = c ? memchr(esc_from, c, sizeof(esc_from) - 1) : NULL;
    if (hit) {
        tmp[0] = '\\';
        tmp[1] = esc_to[hit - esc_from];
        codec_buf_append(b, tmp, 2);
    } else if (c >= 0x20 && c < 0x7f) {
        codec_buf_append(b, &c, 1);
    } else if (c < 0x80) {
        snprintf(tmp, sizeof(tmp), "\\x%02x", c);
        codec_buf_puts(b, tmp);
    } else {
        size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
        if (n == 0 || n > len - *i || !utf8_valid((const char *)s + *i, n)) {
            snprintf(tmp, sizeof(tmp), "\\x%02x", c);
            codec_buf_puts(b, tmp);
        } else if (n == 2 && c == 0xc2 && s[*i + 1] < 0xa0) {
            snprintf(tmp, sizeof(tmp), "\\u%04x", s[*i + 1]); /* C1 controls */
            codec_buf_puts(b, tmp);
            *i += 1;
        } else {
            codec_buf_append(b, s + *i, n); /* printable (approximation of unicode.IsPrint) */
            *i += n - 1;
        }
    }
    *i += 1;
}

void codec_go_quote(struct codec_buf *b, const char *s, size_t len)
{
    codec_buf_append(b, "\"", 1);
    for (size_t i = 0; i < len;)
        quote_rune(b, (const unsigned char *)s, &i, len);
    codec_buf_append(b, "\"", 1);
}

/* The apiserver's sanitizer: strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;"). */
static int html_escape(struct codec_buf *out, const char *s, size_t n)
{
    int rc = 0;

    for (size_t i = 0; i < n && rc == 0; i++) {
        const char *with = s[i] == '&'   ? "&amp;"
                           : s[i] == '<' ? "&lt;"
                           : s[i] == '>' ? "&gt;"
                                         : NULL;
        rc = with ? codec_buf_puts(out, with) : codec_buf_append(out, s + i, 1);
    }
    return rc;
}

int codec_internal_error_text(struct codec_buf *out, const char *request_uri, const char *message)
{
    struct codec_buf line;
    int rc;

    codec_buf_init(&line);
    codec_buf_puts(&line, "Internal Server Error: ");
    codec_go_quote(&line, request_uri, strlen(request_uri));
    codec_buf_puts(&line, ": ");
    rc = codec_buf_puts(&line, message);
    if (rc == 0)
        rc = html_escape(out, line.data, line.len);
    if (rc == 0)
        rc = codec_buf_append(out, "\n", 1);
    codec_buf_free(&line);
    return rc;
}
