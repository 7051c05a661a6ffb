/*
 * core: the few things every module needs and none owns.
 *
 * Return convention (all modules): 0 on success, a negative errno value on
 * failure, KF_AGAIN (> 0) when non-blocking I/O must wait; predicates return
 * bool. Logging checks the level before it formats anything.
 */
#ifndef KF_CORE_H
#define KF_CORE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KF_AGAIN 1

#define KF_ARRAY_SIZE(a)                   (sizeof(a) / sizeof((a)[0]))
#define kf_container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#define KF_UNUSED       __attribute__((unused))
#define KF_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* ---- logging ---------------------------------------------------------- */

enum kf_log_level {
    KF_LOG_ERROR = 0,
    KF_LOG_WARN = 1,
    KF_LOG_INFO = 2,
    KF_LOG_DEBUG = 3,
};

extern enum kf_log_level kf_log_threshold;

/** Parse "error", "warn", "info", "debug"; returns -EINVAL on anything else. */
int kf_log_level_parse(const char *name, enum kf_log_level *out);
/** Name of a level, for printing the effective configuration. */
const char *kf_log_level_name(enum kf_log_level level);
/** Write one log line to stderr: timestamp, level, module, message. */
void kf_log_write(enum kf_log_level level, const char *module, const char *fmt, ...)
    KF_PRINTF(3, 4);

#define kf_log(level, module, ...)                                                                 \
    do {                                                                                           \
        if ((level) <= kf_log_threshold)                                                           \
            kf_log_write((level), (module), __VA_ARGS__);                                          \
    } while (0)
#define kf_err(module, ...)   kf_log(KF_LOG_ERROR, module, __VA_ARGS__)
#define kf_warn(module, ...)  kf_log(KF_LOG_WARN, module, __VA_ARGS__)
#define kf_info(module, ...)  kf_log(KF_LOG_INFO, module, __VA_ARGS__)
#define kf_debug(module, ...) kf_log(KF_LOG_DEBUG, module, __VA_ARGS__)

/* ---- invariants ---------------------------------------------------------- */

/** Abort with file:line when an invariant that the code relies on is broken. */
#define KF_BUG_ON(cond)                                                                            \
    do {                                                                                           \
        if (__builtin_expect(!!(cond), 0))                                                         \
            kf_bug(__FILE__, __LINE__, #cond);                                                     \
    } while (0)
_Noreturn void kf_bug(const char *file, int line, const char *what);

/* ---- intrusive doubly linked list: joining a list never allocates -------- */

struct kf_list {
    struct kf_list *next, *prev;
};

static inline void kf_list_init(struct kf_list *head)
{
    head->next = head->prev = head;
}
static inline bool kf_list_empty(const struct kf_list *head)
{
    return head->next == head;
}
static inline void kf_list_insert_tail(struct kf_list *head, struct kf_list *node)
{
    node->prev = head->prev;
    node->next = head;
    head->prev->next = node;
    head->prev = node;
}
static inline void kf_list_remove(struct kf_list *node)
{
    node->prev->next = node->next;
    node->next->prev = node->prev;
    node->next = node->prev = node;
}
#define kf_list_for_each(pos, head) for ((pos) = (head)->next; (pos) != (head); (pos) = (pos)->next)
#define kf_list_for_each_safe(pos, tmp, head)                                                      \
    for ((pos) = (head)->next, (tmp) = (pos)->next; (pos) != (head);                               \
         (pos) = (tmp), (tmp) = (pos)->next)

/* ---- clocks ----------------------------------------------------------------- */

/** Monotonic time in milliseconds. */
uint64_t kf_now_ms(void);
/** Monotonic time in microseconds. */
uint64_t kf_now_us(void);

/* ---- socket addresses -------------------------------------------------------- */

struct sockaddr;
struct sockaddr_storage;

/**
 * Parse a numeric "HOST:PORT", "[V6]:PORT", "*:PORT" or ":PORT" (wildcard,
 * IPv4) into *ss. No DNS: callers that accept names resolve them off the
 * event loop. Returns 0 or -EINVAL.
 */
int kf_addr_parse(const char *text, struct sockaddr_storage *ss, unsigned *len);
/** The IPv4 or IPv6 address as text ("" for other families); returns buf. */
const char *kf_addr_host(const struct sockaddr *sa, char *buf, size_t size);
/** Format an address as HOST:PORT ([V6]:PORT); returns buf. */
const char *kf_addr_format(const struct sockaddr *sa, char *buf, size_t size);

/* ---- text ---------------------------------------------------------------------- */

/** Write code point cp (at most U+10FFFF) as UTF-8 into out (room for 4); returns bytes. */
size_t kf_utf8_encode(char *out, uint32_t cp);

/* A literal and its length, for case-insensitive membership tests (header names). */
struct kf_token {
    const char *s;
    size_t len;
};
#define KF_TOKEN(lit)                                                                              \
    {                                                                                              \
        (lit), sizeof(lit) - 1                                                                     \
    }

/* Whether s (len bytes) equals one of list[0..n), ignoring ASCII case. */
bool kf_token_in(const char *s, size_t len, const struct kf_token *list, size_t n);

/* Go's time.ParseDuration: 0 and *out in nanoseconds, or -EINVAL with Go's error text
 * ("time: invalid duration \"x\"") in err (errlen bytes; err may be NULL). */
int kf_go_duration_parse(const char *s, int64_t *out, char *err, size_t errlen);

/* v in decimal into out (at least 21 bytes), NUL-terminated; returns the digits written. */
size_t kf_u64_format(char *out, uint64_t v);

/* Copies src into dst of size bytes, truncating, always NUL-terminated (size > 0); returns
 * strlen(src), so a result >= size means truncation. */
size_t kf_strlcpy(char *dst, const char *src, size_t size);

/* ---- arena: memory that belongs to one scope and dies with it ---------------- */

struct kf_arena;

/** A new arena whose blocks are at least block_size bytes. NULL on ENOMEM. */
struct kf_arena *kf_arena_new(size_t block_size);
/** Zeroed, max-aligned memory that lives until kf_arena_free. NULL on ENOMEM. */
void *kf_arena_alloc(struct kf_arena *arena, size_t size);
/** Copy of a string (or of its first n bytes with kf_arena_strndup). */
char *kf_arena_strdup(struct kf_arena *arena, const char *s);
char *kf_arena_strndup(struct kf_arena *arena, const char *s, size_t n);
/** printf into the arena. */
char *kf_arena_sprintf(struct kf_arena *arena, const char *fmt, ...) KF_PRINTF(2, 3);
/** Free every allocation at once. NULL is a no-op. */
void kf_arena_free(struct kf_arena *arena);

/* ---- string map: open addressing, for indexes ---------------------------------------- */

/** A string-keyed hash map; zero-initialised is empty. Keys are copied, values are the caller's. */
struct kf_map {
    char **keys;
    void **values;
    size_t cap, n, used; /* used counts tombstones too */
};

/** Value for key, or NULL. */
void *kf_map_get(const struct kf_map *m, const char *key);
/** Insert or replace (the key is copied). -ENOMEM. */
int kf_map_put(struct kf_map *m, const char *key, void *value);
/** Remove key; returns its value (NULL if absent). */
void *kf_map_remove(struct kf_map *m, const char *key);
/** Free the map (and each value with free_value when not NULL). */
void kf_map_free(struct kf_map *m, void (*free_value)(void *));

/* ---- bufferevents ------------------------------------------------------------------- */

struct bufferevent;
/**
 * Write what bev's output holds in this loop iteration rather than after the
 * next epoll round (no epoll_ctl pair per response); tls: also make a fragmented
 * output contiguous, so that it leaves in full records. Call once the output of
 * a burst is queued.
 */
void kf_bev_send_now(struct bufferevent *bev, bool tls);
/**
 * TLS read-ahead on bev (a no-op without TLS): one read(2) takes every record the socket
 * holds, rather than two per record. Only for a connection that never stops reading (HTTP/2,
 * whose flow control is in the protocol), and whose read handler ends with
 * kf_bev_read_buffered.
 */
void kf_bev_tls_read_ahead(struct bufferevent *bev);
/**
 * End of a read handler: records read ahead but not yet decrypted are invisible to epoll
 * (the socket may be empty) and to libevent (SSL_pending is 0); read them in this loop
 * iteration.
 */
void kf_bev_read_buffered(struct bufferevent *bev);

#endif
