/*
 * pods/<name>/exec and /attach over WebSocket, as kubectl 1.29+ speaks them
 * (the kubelet's channel protocol, subprotocols v5.channel.k8s.io and
 * v4.channel.k8s.io), with a tiny fake command set so clients and proxies can
 * be tested end to end:
 *   echo ARGS...       ARGS joined by spaces (and a newline) on stdout
 *   cat                stdin echoed to stdout until stdin closes
 *   sh -c 'exit N'     exit code N (a NonZeroExitCode Status when N != 0)
 * Anything else fails like a missing executable. Every container's main
 * process is cat: attach echoes stdin until it closes. SPDY (older clients)
 * is refused with 400.
 *
 * Framing (RFC 6455): client frames are masked, ours are not; each binary
 * message starts with a channel byte (0 stdin, 1 stdout, 2 stderr, 3 the
 * final metav1.Status, 4 resize). v5 adds a close-stream message: channel
 * 255 followed by the id of the stream that ended.
 *
 * Session states: OPEN -> CLOSING (our close frame is queued; freed when the
 * client closes, or 2 s after the frame is flushed) -> freed. Pings are answered; a client close
 * frame ends stdin.
 */
#include "loadgen/kube-sim/kube_sim.h"
#include "proxy/http/http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

enum { CH_STDIN = 0, CH_STDOUT = 1, CH_STDERR = 2, CH_ERROR = 3, CH_RESIZE = 4, CH_CLOSE = 255 };

enum cmd_kind { CMD_ECHO, CMD_CAT, CMD_EXIT, CMD_UNKNOWN };

enum sess_state { SESS_OPEN, SESS_CLOSING };

static const char *const sess_state_name[] = {"open", "closing"};

struct exec_sess {
    struct kf_list link; /* in sessions */
    enum sess_state state;
    struct bufferevent *bev;
    bool v5;
    enum cmd_kind cmd;
    int exit_code;
    char *output; /* echo: what goes to stdout at once; unknown: the command */
    struct ks_ws ws;
};

static struct kf_list sessions = {&sessions, &sessions};

static void sess_set_state(struct exec_sess *s, enum sess_state next)
{
    KF_BUG_ON(s->state != SESS_OPEN || next != SESS_CLOSING);
    kf_debug("kube-sim", "exec session: %s -> %s", sess_state_name[s->state],
             sess_state_name[next]);
    s->state = next;
}

static void sess_free(struct exec_sess *s)
{
    kf_list_remove(&s->link);
    bufferevent_free(s->bev);
    ks_ws_free(&s->ws);
    free(s->output);
    free(s);
}

/* ---- frames out ---------------------------------------------------------------------- */

static void ws_frame(struct exec_sess *s, int op, int channel, const void *data, size_t len)
{
    ks_ws_frame(bufferevent_get_output(s->bev), op, channel, data, len);
}

/* The final Status on the error channel, then a normal close. */
static void sess_finish(struct exec_sess *s)
{
    char st[512];
    int n;

    if (s->state != SESS_OPEN)
        return;
    if (s->cmd == CMD_UNKNOWN) {
        struct ks_sb sb;
        ks_sb_init(&sb, 256);
        ks_sb_adds(&sb, "{\"metadata\":{},\"status\":\"Failure\",\"message\":");
        snprintf(st, sizeof(st),
                 "failed to exec in container: exec: \"%s\": executable file not found in $PATH",
                 s->output);
        ks_sb_json_cstr(&sb, st);
        ks_sb_adds(&sb, ",\"reason\":\"InternalError\"}");
        if (!sb.err)
            ws_frame(s, KS_WS_BINARY, CH_ERROR, sb.p, sb.len);
        ks_sb_free(&sb);
        n = -1;
    } else if (s->exit_code == 0)
        n = snprintf(st, sizeof(st), "{\"metadata\":{},\"status\":\"Success\"}");
    else
        n = snprintf(st, sizeof(st),
                     "{\"metadata\":{},\"status\":\"Failure\",\"message\":\"command terminated "
                     "with non-zero exit code: exit status %d\",\"reason\":\"NonZeroExitCode\","
                     "\"details\":{\"causes\":[{\"reason\":\"ExitCode\",\"message\":\"%d\"}]}}",
                     s->exit_code, s->exit_code);
    if (n >= 0)
        ws_frame(s, KS_WS_BINARY, CH_ERROR, st,
                 (size_t)n < sizeof(st) ? (size_t)n : sizeof(st) - 1);
    ws_frame(s, KS_WS_CLOSE, -1, "\x03\xe8", 2); /* 1000: normal closure */
    sess_set_state(s, SESS_CLOSING);
}

/* ---- frames in ----------------------------------------------------------------------- */

static void on_message(struct exec_sess *s, const uint8_t *p, size_t len)
{
    if (len == 0)
        return;
    if (p[0] == CH_STDIN && s->cmd == CMD_CAT)
        ws_frame(s, KS_WS_BINARY, CH_STDOUT, p + 1, len - 1);
    else if (p[0] == CH_CLOSE && len >= 2 && p[1] == CH_STDIN)
        sess_finish(s); /* stdin ended: cat is done (the others were already) */
}

/* A message, or the client's close (it is done with stdin and the session). */
static bool on_ws_message(void *arg, int op, const uint8_t *p, size_t len)
{
    struct exec_sess *s = arg;

    if (op == KS_WS_CLOSE) {
        sess_finish(s);
        return false;
    }
    on_message(s, p, len);
    return true;
}

static void sess_on_read(struct bufferevent *bev, void *arg)
{
    struct exec_sess *s = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    int rc;

    while (s->state == SESS_OPEN &&
           (rc = ks_ws_read(&s->ws, in, bufferevent_get_output(bev), on_ws_message, s)) != 0) {
        if (rc < 0) {
            sess_finish(s);
            break;
        }
    }
    if (s->state == SESS_CLOSING) /* the client's last frames (its close) are of no use */
        evbuffer_drain(in, evbuffer_get_length(in));
}

/* Closing: once our close frame is out, give the client a moment to close first, so the
 * socket is not closed with unread input (a reset that could cut what we sent). */
static void sess_on_write(struct bufferevent *bev, void *arg)
{
    struct exec_sess *s = arg;
    struct timeval linger = {2, 0};

    if (s->state == SESS_CLOSING && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        bufferevent_set_timeouts(bev, &linger, NULL);
}

static void sess_on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    (void)what;
    sess_free(arg); /* the client went away, or did not close in time */
}

/* ---- the command --------------------------------------------------------------------------- */

/* Decide what runs from the command=... parameters; echo's output is made here. */
static void pick_command(struct exec_sess *s, struct px_request *px)
{
    const char *argv[16], *name, *value;
    size_t argc = 0;
    struct ks_sb out;

    for (size_t i = 0; px_request_query_at(px, i, &name, &value); i++)
        if (strcmp(name, "command") == 0 && argc < KF_ARRAY_SIZE(argv))
            argv[argc++] = value;
    s->cmd = CMD_UNKNOWN;
    if (argc >= 1 && strcmp(argv[0], "echo") == 0) {
        s->cmd = CMD_ECHO;
        ks_sb_init(&out, 64);
        for (size_t i = 1; i < argc; i++) {
            ks_sb_adds(&out, argv[i]);
            ks_sb_addc(&out, i + 1 < argc ? ' ' : '\n');
        }
        if (argc == 1)
            ks_sb_addc(&out, '\n');
        s->output = ks_sb_cstr(&out);
        return;
    }
    if (argc == 1 && strcmp(argv[0], "cat") == 0) {
        s->cmd = CMD_CAT;
        return;
    }
    int code;
    char end;
    if (argc == 3 && strcmp(argv[0], "sh") == 0 && strcmp(argv[1], "-c") == 0 &&
        sscanf(argv[2], "exit %d%c", &code, &end) == 1) {
        s->cmd = CMD_EXIT;
        s->exit_code = code;
        return;
    }
    s->output = strdup(argc ? argv[0] : "");
}

static void on_upgraded(struct bufferevent *bev, void *arg)
{
    struct exec_sess *s = arg;

    if (!bev) {
        ks_ws_free(&s->ws);
        free(s->output);
        free(s);
        return;
    }
    s->bev = bev;
    kf_list_insert_tail(&sessions, &s->link);
    bufferevent_setcb(bev, sess_on_read, sess_on_write, sess_on_event, s);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    if (s->cmd == CMD_ECHO)
        ws_frame(s, KS_WS_BINARY, CH_STDOUT, s->output, strlen(s->output));
    if (s->cmd != CMD_CAT)
        sess_finish(s);
    else
        sess_on_read(bev, s); /* stdin may have come with the handshake */
}

/* ---- the handshake ------------------------------------------------------------------ */

void ks_handle_exec(struct ks_req *r)
{
    static const char *const protos[] = {"v5.channel.k8s.io", "v4.channel.k8s.io"};
    struct exec_sess *s;
    const char *proto;

    if (!ks_store_get(r->res, ks_req_key(r, r->name))) {
        ks_reply_not_found(r, r->res, r->name);
        return;
    }
    s = calloc(1, sizeof(*s));
    if (!s) {
        ks_reply_error(r, 500, "InternalError", "out of memory");
        return;
    }
    proto = ks_ws_accept(r, protos, KF_ARRAY_SIZE(protos));
    if (!proto) {
        free(s);
        ks_reply_bad_request(r, "kube-sim serves exec and attach over WebSocket with the "
                                "v5.channel.k8s.io or v4.channel.k8s.io subprotocol only");
        return;
    }
    kf_list_init(&s->link);
    s->v5 = proto[1] == '5';
    ks_ws_init(&s->ws);
    if (ks_is_pod_sub(r, "attach"))
        s->cmd = CMD_CAT;
    else
        pick_command(s, r->px);
    ks_req_count(r, 101);
    if (px_request_upgrade(r->px, on_upgraded, s) < 0)
        on_upgraded(NULL, s);
}

void ks_exec_shutdown(void)
{
    while (!kf_list_empty(&sessions))
        sess_free(kf_container_of(sessions.next, struct exec_sess, link));
}
