/* label and field selectors: grammar, apiserver error text, matching */
#include "cache/codec/codec.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static char err[2048];

static int lparse(const char *text, struct codec_label_selector *sel)
{
    err[0] = '\0';
    return codec_label_selector_parse(text, sel, err, sizeof(err));
}

/* Parse must fail with exactly this message. */
static void label_error(const char *text, const char *want)
{
    struct codec_label_selector sel;
    cr_expect_eq(lparse(text, &sel), -EINVAL, "'%s' parsed", text);
    cr_expect_str_eq(err, want, "selector '%s'", text);
    codec_label_selector_free(&sel);
}

#define KEY_RULE                                                                                   \
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "  \
    "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for " \
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
#define VALUE_RULE                                                                                 \
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "    \
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "             \
    "'my_value',  or '12345', regex used for validation is "                                       \
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"

Test(labels, grammar_errors)
{
    label_error("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, "
                       "gt, lt");
    label_error("x=a,", "found '', expected: identifier after ','");
    label_error(",", "found ',', expected: !, identifier, or 'end of string'");
    label_error("x=a y", "found 'y', expected: ',' or 'end of string'");
    label_error("!", "unable to parse requirement: found '', expected: identifier");
    label_error("!a=b", "found '=', expected: ',' or 'end of string'");
    label_error("x in (a", "unable to parse requirement: found '', expected: ',' or ')'");
    label_error("x in a", "unable to parse requirement: found 'a' expected: '('");
    label_error("x in (=", "unable to parse requirement: found '=', expected: ',', ')' or "
                           "identifier");
    label_error("x in (a,=)", "unable to parse requirement: found '=', expected: ',', or "
                              "identifier");
    label_error("x=(", "unable to parse requirement: found '(', expected: identifier");
}

Test(labels, validation_errors)
{
    label_error("a_", "unable to parse requirement: <nil>: Invalid value: \"a_\": " KEY_RULE);
    label_error("example.com/", "unable to parse requirement: <nil>: Invalid value: "
                                "\"example.com/\": name part must be non-empty; " KEY_RULE);
    label_error("/a", "unable to parse requirement: <nil>: Invalid value: \"/a\": prefix part "
                      "must be non-empty");
    label_error("Ex.com/a",
                "unable to parse requirement: <nil>: Invalid value: \"Ex.com/a\": prefix part a "
                "lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
                "'-' or '.', and must start and end with an alphanumeric character (e.g. "
                "'example.com', regex used for validation is "
                "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')");
    label_error("a/b/c",
                "unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a valid label key "
                "must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
                "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', "
                "regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an "
                "optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')");
    label_error("x=a_", "unable to parse requirement: values[0][x]: Invalid value: \"a_\": "
                        "" VALUE_RULE);
    label_error("x>a", "unable to parse requirement: values[0]: Invalid value: \"a\": for 'Gt', "
                       "'Lt' operators, the value must be an integer");
    /* several errors: utilerrors.Aggregate's [a, b]; values are sorted first */
    label_error("x in (b_,a_)", "unable to parse requirement: [values[0][x]: Invalid value: "
                                "\"a_\": " VALUE_RULE ", values[1][x]: Invalid value: \"b_\": "
                                "" VALUE_RULE "]");
    char longv[80];
    memset(longv, 'v', 64);
    strcpy(longv + 64, "");
    char text[100], want[600];
    snprintf(text, sizeof(text), "x=%s", longv);
    snprintf(want, sizeof(want),
             "unable to parse requirement: values[0][x]: Invalid value: \"%s\": must be no more "
             "than 63 bytes",
             longv);
    label_error(text, want);
    /* Go's %%q for odd bytes in the value */
    label_error("x=a\x01", "unable to parse requirement: values[0][x]: Invalid value: "
                           "\"a\\x01\": " VALUE_RULE);
}

static struct codec_meta with_labels(struct codec_kv *kv, size_t n)
{
    struct codec_meta m;
    memset(&m, 0, sizeof(m));
    m.labels = kv;
    m.n_labels = n;
    return m;
}

#define KV(k, v)                                                                                   \
    {                                                                                              \
        {k, sizeof(k) - 1},                                                                        \
        {                                                                                          \
            v, sizeof(v) - 1                                                                       \
        }                                                                                          \
    }

static bool lmatch(const char *text, const struct codec_meta *m)
{
    struct codec_label_selector sel;
    cr_assert_eq(lparse(text, &sel), 0, "'%s': %s", text, err);
    bool r = codec_label_selector_matches(&sel, m);
    codec_label_selector_free(&sel);
    return r;
}

Test(labels, matching)
{
    struct codec_kv kv[] = {KV("app", "web"), KV("tier", "1"), KV("in", "x")};
    struct codec_meta m = with_labels(kv, 3);
    cr_expect(lmatch("", &m));
    cr_expect(lmatch("app=web", &m));
    cr_expect(lmatch("app==web", &m));
    cr_expect(lmatch("app = web , tier", &m)); /* whitespace between tokens */
    cr_expect_not(lmatch("app!=web", &m));
    cr_expect(lmatch("app!=db", &m));
    cr_expect(lmatch("missing!=db", &m)); /* != matches objects without the label */
    cr_expect(lmatch("app in (db,web)", &m));
    cr_expect_not(lmatch("app notin (db,web)", &m));
    cr_expect(lmatch("missing notin (a)", &m));
    cr_expect(lmatch("app,!missing", &m));
    cr_expect_not(lmatch("!app", &m));
    cr_expect(lmatch("tier>0,tier<2", &m));
    cr_expect_not(lmatch("app>0", &m)); /* non-integer label never matches gt */
    cr_expect(lmatch("in=x", &m));      /* "in" is an identifier where a key is expected */
    struct codec_kv empty[] = {KV("x", "")};
    struct codec_meta e = with_labels(empty, 1);
    cr_expect(lmatch("x in ()", &e));
    cr_expect(lmatch("x in (,a)", &e));
    cr_expect(lmatch("x=", &e));
    /* kube-proxy's selector */
    const char *kp = "!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless";
    cr_expect(lmatch(kp, &m));
    struct codec_kv headless[] = {KV("service.kubernetes.io/headless", "")};
    struct codec_meta h = with_labels(headless, 1);
    cr_expect_not(lmatch(kp, &h));
}

Test(labels, requirements_sorted_and_values_unique)
{
    struct codec_label_selector sel;
    cr_assert_eq(lparse("z in (b,a,b),a", &sel), 0);
    cr_assert_eq(sel.n, 2);
    cr_expect_str_eq(sel.reqs[0].key, "a");
    cr_expect_eq(sel.reqs[0].op, CODEC_SEL_EXISTS);
    cr_expect_eq(sel.reqs[1].n_values, 2);
    cr_expect_str_eq(sel.reqs[1].values[0], "a");
    cr_expect_str_eq(sel.reqs[1].values[1], "b");
    codec_label_selector_free(&sel);
}

/* ---- field selectors ---------------------------------------------------------------- */

static int fparse(const char *text, enum codec_kind k, struct codec_field_selector *sel)
{
    err[0] = '\0';
    return codec_field_selector_parse(text, k, sel, err, sizeof(err));
}

static void field_error(const char *text, enum codec_kind k, const char *want)
{
    struct codec_field_selector sel;
    cr_expect_eq(fparse(text, k, &sel), -EINVAL, "'%s' parsed", text);
    cr_expect_str_eq(err, want, "selector '%s'", text);
    codec_field_selector_free(&sel);
}

Test(fields, errors)
{
    field_error("spec.foo=bar", CODEC_KIND_POD, "field label not supported: spec.foo");
    field_error("spec.foo=bar", CODEC_KIND_CONFIGMAP,
                "\"spec.foo\" is not a known field selector: only \"metadata.name\", "
                "\"metadata.namespace\"");
    field_error("metadata.namespace=x", CODEC_KIND_NODE,
                "field label not supported: metadata.namespace");
    field_error("foo", CODEC_KIND_POD, "invalid selector: 'foo'; can't understand 'foo'");
    field_error("a=b,c", CODEC_KIND_POD, "invalid selector: 'a=b,c'; can't understand 'c'");
    /* all terms are parsed (in sorted order) before any label is checked */
    field_error("a.bad=1,zzz", CODEC_KIND_POD,
                "invalid selector: 'a.bad=1,zzz'; can't understand 'zzz'");
    field_error("z.bad=1,a.bad=2", CODEC_KIND_POD, "field label not supported: a.bad");
    field_error("metadata.name=a=b", CODEC_KIND_POD,
                "invalid field selector: unescaped character in value: 61");
    field_error("metadata.name=a\\x", CODEC_KIND_POD,
                "invalid field selector: invalid escape sequence: \\x");
    field_error("metadata.name=a\\", CODEC_KIND_POD,
                "invalid field selector: invalid escape sequence: \\");
}

static struct codec_meta pod(const char *node, const char *name)
{
    struct codec_meta m;
    memset(&m, 0, sizeof(m));
    m.kind = CODEC_KIND_POD;
    m.fields[0] = (struct codec_field){"metadata.name", {name, strlen(name)}};
    m.fields[1] = (struct codec_field){"metadata.namespace", {"ns", 2}};
    m.fields[2] = (struct codec_field){"spec.nodeName", {node, strlen(node)}};
    m.n_fields = 3;
    return m;
}

static bool fmatch(const char *text, const struct codec_meta *m)
{
    struct codec_field_selector sel;
    cr_assert_eq(fparse(text, CODEC_KIND_POD, &sel), 0, "'%s': %s", text, err);
    bool r = codec_field_selector_matches(&sel, m);
    codec_field_selector_free(&sel);
    return r;
}

Test(fields, matching_and_pins)
{
    struct codec_meta a = pod("node-1", "p1"), unbound = pod("", "p2");
    cr_expect(fmatch("", &a));
    cr_expect(fmatch("spec.nodeName=node-1", &a));
    cr_expect(fmatch("spec.nodeName==node-1", &a));
    cr_expect(fmatch("spec.host=node-1", &a)); /* old clients' alias */
    cr_expect_not(fmatch("spec.nodeName=node-2", &a));
    cr_expect(fmatch("spec.nodeName!=node-2", &a));
    cr_expect(fmatch("spec.nodeName=", &unbound));
    cr_expect(fmatch("spec.nodeName=node-1,metadata.name=p1", &a));
    cr_expect_not(fmatch("spec.nodeName=node-1,metadata.name=p2", &a));
    /* accepted but not selectable upstream: reads as "" */
    cr_expect(fmatch("status.podIPs=", &a));
    cr_expect_not(fmatch("status.podIPs=1.2.3.4", &a));

    struct codec_field_selector sel;
    const char *v;
    cr_assert_eq(fparse("metadata.name=a\\,b,spec.host=n1", CODEC_KIND_POD, &sel), 0);
    cr_expect(codec_field_selector_pins(&sel, "spec.nodeName", &v));
    cr_expect_str_eq(v, "n1");
    cr_expect(codec_field_selector_pins(&sel, "metadata.name", &v));
    cr_expect_str_eq(v, "a,b");
    cr_expect_not(codec_field_selector_pins(&sel, "status.phase", &v));
    codec_field_selector_free(&sel);
    cr_assert_eq(fparse("spec.nodeName!=x", CODEC_KIND_POD, &sel), 0);
    cr_expect_not(codec_field_selector_pins(&sel, "spec.nodeName", &v));
    codec_field_selector_free(&sel);
}
