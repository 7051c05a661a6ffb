/*
 * GET pods/NAME/log, as the apiserver and a kubelet answer it, with fake
 * deterministic container output: every container of a running pod has
 * LOG_LINES lines, one a second from the pod's creation (with a made-up
 * fraction), and with follow=true a new line every FOLLOW_MS until the
 * client goes away or the pod is deleted (a deleted pod's containers stop).
 *
 * Order of checks as in LogREST.Get: the options are validated (422), then
 * the pod is read (404), the container resolved (400 with LogLocation's
 * wording), a pod without a node has no logs (200, empty), and the kubelet
 * refuses previous=true (no container here ever restarted).
 *
 * Options: container, follow, timestamps (each line prefixed with its time
 * in RFC 3339 with nanoseconds, trailing zeros trimmed as Go's RFC3339Nano
 * does), tailLines, limitBytes (the output is cut there, possibly mid-line),
 * sinceSeconds / sinceTime, previous. Booleans are read like the apiserver's
 * query conversion: present and not "false" or "0" means true.
 *
 * A follow stream: STREAMING -> DONE (client gone, pod gone, limitBytes
 * reached or shutdown; the response is ended there and the stream freed with
 * the request).
 */
#include "loadgen/kube-sim/kube_sim.h"
#include "proxy/http/http.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/event.h>

#define LOG_LINES      40
#define FOLLOW_MS      200
#define MAX_CONTAINERS 16

struct log_opts {
    const char *container;
    bool follow, timestamps, previous;
    bool has_tail, has_limit, has_since_sec, has_since_time;
    int64_t tail, limit, since_sec;
    int64_t since_time; /* Unix seconds */
};

enum follow_state { F_STREAMING, F_DONE };

static const char *const follow_state_name[] = {"streaming", "done"};

/* A follow=true stream; lives in the request's arena. */
struct log_stream {
    struct kf_list link; /* in streams */
    enum follow_state state;
    struct ks_req *r;
    struct event *tick;
    const char *key, *uid, *container;
    uint64_t seq;    /* the next line's number */
    bool timestamps; /* prefix lines with their time */
    int64_t left;    /* bytes left under limitBytes; -1: no limit */
};

static struct kf_list streams = {&streams, &streams};

/* ---- options --------------------------------------------------------------------------- */

/* The apiserver's query conversion of a bool: present and not false/0. */
static bool param_on(struct ks_req *r, const char *name)
{
    const char *v = px_request_query(r->px, name);
    return v && strcasecmp(v, "false") != 0 && strcmp(v, "0") != 0;
}

/* An int64 parameter; false after sending the 400 for one that does not parse. */
static bool param_int(struct ks_req *r, const char *name, bool *present, int64_t *out)
{
    const char *v = px_request_query(r->px, name);
    char *end;

    *present = v != NULL;
    if (!v)
        return true;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (!v[0] || *end || errno || v[0] == ' ') {
        ks_reply_bad_request(r, "strconv.ParseInt: parsing \"%s\": %s", v,
                             errno == ERANGE ? "value out of range" : "invalid syntax");
        return false;
    }
    *out = n;
    return true;
}

/* The 422 of errors.NewInvalid(PodLogOptions, name, errs) for up to three errors. */
static void reply_invalid(struct ks_req *r, const struct ks_cause *causes, size_t n)
{
    struct ks_status st;
    char msg[900];
    size_t off;

    off = (size_t)snprintf(msg, sizeof(msg), "PodLogOptions \"%s\" is invalid: %s", r->name,
                           n > 1 ? "[" : "");
    for (size_t i = 0; i < n && off < sizeof(msg); i++)
        off += (size_t)snprintf(msg + off, sizeof(msg) - off, "%s%s: %s", i ? ", " : "",
                                causes[i].field, causes[i].message);
    if (n > 1 && off < sizeof(msg))
        snprintf(msg + off, sizeof(msg) - off, "]");
    ks_status_init(&st, 422, "Invalid", msg);
    ks_status_details(&st, r->name, "", "PodLogOptions");
    for (size_t i = 0; i < n; i++)
        st.causes[i] = causes[i];
    st.n_causes = n;
    ks_reply_status(r, &st);
}

/* ValidatePodLogOptions; false after sending the 422. */
static bool validate(struct ks_req *r, const struct log_opts *o)
{
    struct ks_cause c[3];
    char m[3][96];
    size_t n = 0;

    if (o->has_tail && o->tail < 0) {
        snprintf(m[n], sizeof(m[n]),
                 "Invalid value: %" PRId64 ": must be greater than or equal to 0", o->tail);
        c[n] = (struct ks_cause){"FieldValueInvalid", m[n], "tailLines"}, n++;
    }
    if (o->has_limit && o->limit < 1) {
        snprintf(m[n], sizeof(m[n]), "Invalid value: %" PRId64 ": must be greater than 0",
                 o->limit);
        c[n] = (struct ks_cause){"FieldValueInvalid", m[n], "limitBytes"}, n++;
    }
    if (o->has_since_sec && o->has_since_time) {
        c[n] = (struct ks_cause){"FieldValueForbidden",
                                 "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be "
                                 "specified",
                                 ""};
        n++;
    } else if (o->has_since_sec && o->since_sec < 1) {
        snprintf(m[n], sizeof(m[n]), "Invalid value: %" PRId64 ": must be greater than 0",
                 o->since_sec);
        c[n] = (struct ks_cause){"FieldValueInvalid", m[n], "sinceSeconds"}, n++;
    }
    if (n)
        reply_invalid(r, c, n);
    return n == 0;
}

static bool parse_opts(struct ks_req *r, struct log_opts *o)
{
    const char *since_time = px_request_query(r->px, "sinceTime");

    memset(o, 0, sizeof(*o));
    o->container = px_request_query(r->px, "container");
    if (o->container && !o->container[0])
        o->container = NULL;
    o->follow = param_on(r, "follow");
    o->timestamps = param_on(r, "timestamps");
    o->previous = param_on(r, "previous");
    if (!param_int(r, "tailLines", &o->has_tail, &o->tail) ||
        !param_int(r, "limitBytes", &o->has_limit, &o->limit) ||
        !param_int(r, "sinceSeconds", &o->has_since_sec, &o->since_sec))
        return false;
    if (since_time) {
        int32_t ns;
        if (ks_time_parse(since_time, &o->since_time, &ns) < 0) {
            ks_reply_bad_request(r,
                                 "parsing time \"%s\" as \"2006-01-02T15:04:05Z07:00\": cannot "
                                 "parse \"%s\" as \"2006\"",
                                 since_time, since_time);
            return false;
        }
        o->has_since_time = true;
    }
    return validate(r, o);
}

/* ---- the pod's containers ------------------------------------------------------------------ */

/* Names of the members of spec.<list> (containers, initContainers), space-separated. */
static size_t container_names(const struct ks_json *pod, const char *list, const char **names,
                              size_t max, struct ks_sb *joined)
{
    char path[32];
    size_t n = 0;

    snprintf(path, sizeof(path), "spec.%s", list);
    const struct ks_json *arr = ks_json_path(pod, path);
    for (const struct ks_json *c = arr && arr->t == KS_J_ARR ? arr->kids : NULL; c; c = c->next) {
        const char *name = ks_json_get_str(c, "name");
        if (!name)
            continue;
        if (n < max)
            names[n] = name;
        if (joined->len)
            ks_sb_addc(joined, ' ');
        ks_sb_adds(joined, name);
        n++;
    }
    return n;
}

static bool has_name(const char *const *names, size_t n, const char *want)
{
    for (size_t i = 0; i < n && i < MAX_CONTAINERS; i++)
        if (strcmp(names[i], want) == 0)
            return true;
    return false;
}

static const char *sb_str(struct ks_sb *sb)
{
    const char *s = ks_sb_cstr(sb);
    return s ? s : "";
}

/* LogLocation's choice of container (want: the container parameter); NULL after its 400. */
static const char *pick_container(struct ks_req *r, const struct ks_json *pod, const char *want)
{
    const char *names[MAX_CONTAINERS], *init[MAX_CONTAINERS], *pick = NULL;
    struct ks_sb all, all_init;

    ks_sb_init(&all, 64);
    ks_sb_init(&all_init, 64);
    size_t n = container_names(pod, "containers", names, MAX_CONTAINERS, &all);
    size_t n_init = container_names(pod, "initContainers", init, MAX_CONTAINERS, &all_init);
    if (want && (has_name(names, n, want) || has_name(init, n_init, want)))
        pick = want;
    else if (want)
        ks_reply_bad_request(r, "container %s is not valid for pod %s", want, r->name);
    else if (n == 1)
        pick = names[0];
    else if (n == 0)
        ks_reply_bad_request(r, "a container name must be specified for pod %s", r->name);
    else
        ks_reply_bad_request(r,
                             "a container name must be specified for pod %s, choose one of: "
                             "[%s]%s%s%s",
                             r->name, sb_str(&all),
                             n_init ? " or one of the init containers: [" : "",
                             n_init ? sb_str(&all_init) : "", n_init ? "]" : "");
    if (pick)
        pick = kf_arena_strdup(r->arena, pick);
    ks_sb_free(&all);
    ks_sb_free(&all_init);
    return pick;
}

/* ---- lines ---------------------------------------------------------------------------------- */

/* Go's time.RFC3339Nano in UTC: the fraction with its trailing zeros trimmed. */
static void format_nano(char *buf, size_t size, int64_t sec, int32_t nsec)
{
    time_t t = (time_t)sec;
    struct tm tm;
    char frac[16] = "";

    gmtime_r(&t, &tm);
    if (nsec > 0) {
        snprintf(frac, sizeof(frac), ".%09d", (int)nsec);
        for (size_t n = strlen(frac); frac[n - 1] == '0'; n--)
            frac[n - 1] = '\0';
    }
    snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d%sZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

/* When the i-th of the first LOG_LINES lines was written: one a second, a made-up fraction. */
static void line_time(const struct ks_obj *pod, uint64_t i, int64_t *sec, int32_t *nsec)
{
    *sec = pod->created + 1 + (int64_t)i;
    *nsec = (int32_t)((i * 104729u) % 1000u) * 1000000 + (int32_t)(i % 10u) * 1000;
}

static void add_line(struct ks_sb *sb, bool timestamps, int64_t sec, int32_t nsec, const char *ns,
                     const char *pod, const char *container, uint64_t i)
{
    if (timestamps) {
        char ts[48];
        format_nano(ts, sizeof(ts), sec, nsec);
        ks_sb_adds(sb, ts);
        ks_sb_addc(sb, ' ');
    }
    ks_sb_printf(sb, "%s %s/%s line %" PRIu64 ": GET /items/%" PRIu64 " 200\n", container, ns, pod,
                 i, i * 7 % 1000);
}

/* The lines that exist now, after since, tailLines and limitBytes. */
static void initial_lines(struct ks_sb *sb, struct ks_req *r, const struct ks_obj *pod,
                          const char *container, const struct log_opts *o)
{
    int64_t since = o->has_since_time  ? o->since_time
                    : o->has_since_sec ? (int64_t)time(NULL) - o->since_sec
                                       : INT64_MIN;
    uint64_t first, start;
    int64_t sec;
    int32_t nsec;

    for (first = 0; first < LOG_LINES; first++) {
        line_time(pod, first, &sec, &nsec);
        if (sec >= since)
            break;
    }
    start = o->has_tail && (uint64_t)o->tail < LOG_LINES - first ? LOG_LINES - (uint64_t)o->tail
                                                                 : first;
    for (uint64_t i = start; i < LOG_LINES; i++) {
        line_time(pod, i, &sec, &nsec);
        add_line(sb, o->timestamps, sec, nsec, r->ns, r->name, container, i);
    }
    if (o->has_limit && (uint64_t)o->limit < sb->len)
        sb->len = (size_t)o->limit;
}

/* ---- follow ------------------------------------------------------------------------------- */

static void follow_set_state(struct log_stream *s, enum follow_state next)
{
    KF_BUG_ON(s->state != F_STREAMING || next != F_DONE);
    kf_debug("kube-sim", "log stream %s: %s -> %s", s->key, follow_state_name[s->state],
             follow_state_name[next]);
    s->state = next;
}

/* End the response; the request (and s with it) is freed by the HTTP layer. */
static void follow_end(struct log_stream *s)
{
    struct px_request *px = s->r->px;

    follow_set_state(s, F_DONE);
    kf_list_remove(&s->link);
    if (s->tick)
        event_free(s->tick);
    s->tick = NULL;
    px_request_on_close(px, NULL, NULL);
    px_response_end(px);
}

static void follow_closed(struct px_request *px, void *arg)
{
    (void)px;
    follow_end(arg);
}

/* Write the next line, unless the pod is gone (its containers stopped). */
static void follow_tick(evutil_socket_t fd, short what, void *arg)
{
    struct log_stream *s = arg;
    const struct ks_obj *pod = ks_store_get(&ks_res_pods, s->key);
    struct timespec now;
    struct ks_sb sb;

    (void)fd;
    (void)what;
    if (!pod || pod->terminating || strcmp(pod->uid, s->uid) != 0) {
        follow_end(s);
        return;
    }
    clock_gettime(CLOCK_REALTIME, &now);
    ks_sb_init(&sb, 160);
    add_line(&sb, s->timestamps, (int64_t)now.tv_sec, (int32_t)now.tv_nsec, s->r->ns, s->r->name,
             s->container, s->seq++);
    if (s->left >= 0 && (uint64_t)s->left < sb.len)
        sb.len = (size_t)s->left;
    if (!sb.err && sb.len) {
        px_response_write(s->r->px, sb.p, sb.len);
        ks_metrics_bytes(sb.len);
    }
    if (s->left >= 0)
        s->left -= (int64_t)sb.len;
    ks_sb_free(&sb);
    if (s->left == 0)
        follow_end(s);
}

static void follow_start(struct ks_req *r, const struct ks_obj *pod, const char *container,
                         const struct log_opts *o, size_t written)
{
    struct log_stream *s = kf_arena_alloc(r->arena, sizeof(*s));
    struct timeval tv = {0, FOLLOW_MS * 1000};

    if (!s) {
        px_response_end(r->px);
        return;
    }
    memset(s, 0, sizeof(*s));
    s->state = F_STREAMING;
    s->r = r;
    s->key = kf_arena_strdup(r->arena, pod->key);
    s->uid = kf_arena_strdup(r->arena, pod->uid);
    s->container = container;
    s->seq = LOG_LINES;
    s->timestamps = o->timestamps;
    s->left = o->has_limit ? o->limit - (int64_t)written : -1;
    kf_list_insert_tail(&streams, &s->link);
    s->tick = event_new(ks_base, -1, EV_PERSIST, follow_tick, s);
    if (!s->key || !s->uid || !s->tick || event_add(s->tick, &tv) < 0 || s->left == 0) {
        follow_end(s);
        return;
    }
    px_request_on_close(r->px, follow_closed, s);
}

/* ---- the request ---------------------------------------------------------------------------- */

void ks_handle_log(struct ks_req *r)
{
    struct log_opts o;
    struct ks_json *dom;
    struct ks_sb sb;

    if (!parse_opts(r, &o))
        return;
    struct ks_obj *pod = ks_store_get(r->res, ks_req_key(r, r->name));
    if (!pod) {
        ks_reply_not_found(r, r->res, r->name);
        return;
    }
    if (ks_obj_dom(pod, r->arena, &dom) < 0) {
        ks_reply_error(r, 500, "InternalError", "Internal error occurred: out of memory");
        return;
    }
    const char *container = pick_container(r, dom, o.container);
    if (!container)
        return;
    const struct ks_json *node_name = ks_json_path(dom, "spec.nodeName");
    bool on_node = node_name && node_name->t == KS_J_STR && node_name->s[0];
    if (on_node && o.previous) {
        ks_reply_bad_request(r, "previous terminated container \"%s\" in pod \"%s\" not found",
                             container, r->name);
        return;
    }
    ks_sb_init(&sb, 4096);
    if (on_node)
        initial_lines(&sb, r, pod, container, &o);
    size_t written = sb.err ? 0 : sb.len;
    ks_req_count(r, 200);
    ks_headers(r, "text/plain");
    px_response_start(r->px, 200);
    if (written)
        px_response_write(r->px, sb.p, written);
    ks_metrics_bytes(written);
    ks_sb_free(&sb);
    if (o.follow && on_node)
        follow_start(r, pod, container, &o, written);
    else
        px_response_end(r->px);
}

void ks_logs_shutdown(void)
{
    while (!kf_list_empty(&streams))
        follow_end(kf_container_of(streams.next, struct log_stream, link));
}

size_t ks_logs_following(void)
{
    size_t n = 0;
    struct kf_list *l;

    kf_list_for_each(l, &streams) n++;
    return n;
}
