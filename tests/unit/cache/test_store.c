/* Stores built directly from fixture objects: the event window (replay, -ERANGE after
 * trimming), the relist difference (store_replace), and the frames watches see
 * (cache_event_bytes AS_IS / AS_ADDED / AS_LEFT). No threads, no upstream. */
#include "cache/cache_internal.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct cache *cache;
static struct cache_store store;

static char *read_fixture(const char *rel, size_t *len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", FIXTURES_DIR, rel);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* s with the first occurrence of from replaced by to (malloc'ed). */
static char *replace_first(const char *s, const char *from, const char *to)
{
    const char *at = strstr(s, from);
    cr_assert_not_null(at, "'%s' not in fixture", from);
    size_t a = (size_t)(at - s), n = strlen(s) - strlen(from) + strlen(to);
    char *out = malloc(n + 1);
    memcpy(out, s, a);
    strcpy(out + a, to);
    strcat(out, at + strlen(from));
    return out;
}

/* The ConfigMap fixture as name, at rv, with its one label set to label. */
static struct cache_obj *cm(const char *name, uint64_t rv, const char *label)
{
    size_t len;
    char *js = read_fixture("k8s-api/core.v1.ConfigMap.json", &len), to[128];

    snprintf(to, sizeof(to), "\"name\": \"%s\"", name);
    char *a = replace_first(js, "\"name\": \"nameValue\"", to);
    snprintf(to, sizeof(to), "\"resourceVersion\": \"%llu\"", (unsigned long long)rv);
    char *b = replace_first(a, "\"resourceVersion\": \"resourceVersionValue\"", to);
    snprintf(to, sizeof(to), "\"%s\"", label);
    char *c = replace_first(b, "\"labelsValue\"", to);
    struct cache_obj *o;
    cr_assert_eq(cache_obj_new(CACHE_JSON, store.type, c, strlen(c), &o), 0, "%s", name);
    cr_assert_eq(o->rv, rv);
    free(js);
    free(a);
    free(b);
    free(c);
    return o;
}

static void setup(void)
{
    cache = calloc(1, sizeof(*cache));
    pthread_mutex_init(&cache->locals_lock, NULL);
    cache->window_ms = 0; /* trim down to the minimum at once */
    store_init(&store, cache, 0, codec_type_get(CODEC_KIND_CONFIGMAP), CACHE_JSON);
}

static void teardown(void)
{
    store_destroy(&store);
    pthread_mutex_destroy(&cache->locals_lock);
    free(cache);
}

/* Publish one event; the store keeps its own references. */
static struct cache_event *publish(enum codec_event_type t, struct cache_obj *o, uint64_t rv)
{
    struct cache_event *ev = cache_event_new(store.id, t, rv, o, NULL);
    cr_assert_not_null(ev);
    store_publish(&store, &ev, 1);
    return ev; /* the caller's reference */
}

static void fill(struct cache_obj **objs, size_t n, uint64_t rv)
{
    cr_assert_eq(store_replace(&store, objs, n, rv), 0);
    for (size_t i = 0; i < n; i++)
        cache_obj_put(objs[i]);
}

static uint64_t get_rv(const char *name)
{
    struct cache_query q = {.store = &store, .namespace_ = "namespaceValue", .name = name};
    struct cache_obj *o;
    if (cache_get(&q, &o) < 0)
        return 0;
    uint64_t rv = o->rv;
    cache_obj_put(o);
    return rv;
}

static size_t replay(uint64_t after, struct cache_event **out, size_t max, bool *more)
{
    size_t n;
    cr_assert_eq(store_window_after(&store, after, out, max, &n, more), 0, "after %llu",
                 (unsigned long long)after);
    return n;
}

static void put_all(struct cache_event **evs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cache_ref_put(&evs[i]->ref);
}

TestSuite(store, .init = setup, .fini = teardown);

Test(store, window_replays_after_an_rv_and_refuses_older_ones)
{
    struct cache_event *evs[256];
    bool more;
    size_t n;

    fill((struct cache_obj *[]){cm("a", 10, "x"), cm("b", 11, "x")}, 2, 20);
    cr_expect_eq(atomic_load(&store.state), STORE_READY);
    cr_expect_eq(store.n_objs, 2);
    cr_expect_eq(cache_store_rv(&store), 20);
    cr_expect_eq(store_window_after(&store, 19, evs, 16, &n, &more), -ERANGE);
    cr_expect_eq(replay(20, evs, 16, &more), 0);

    struct cache_event *e1 = publish(CODEC_EV_ADDED, cm("c", 21, "x"), 21);
    struct cache_event *e2 = publish(CODEC_EV_MODIFIED, cm("a", 22, "x"), 22);
    struct cache_event *e3 = publish(CODEC_EV_DELETED, cm("b", 23, "x"), 23);
    cache_obj_put(e1->obj); /* publish's cm() reference: the event holds its own */
    cache_obj_put(e2->obj);
    cache_obj_put(e3->obj);
    /* the modification's previous version was taken from the store */
    cr_assert_not_null(e2->prev);
    cr_expect_eq(e2->prev->rv, 10);
    cr_expect_null(e1->prev);
    cr_expect_eq(get_rv("a"), 22);
    cr_expect_eq(get_rv("b"), 0, "deleted");
    cr_expect_eq(get_rv("c"), 21);
    cr_expect_eq(store.n_objs, 2);

    n = replay(20, evs, 16, &more);
    cr_assert_eq(n, 3);
    cr_expect(!more);
    cr_expect(evs[0] == e1 && evs[1] == e2 && evs[2] == e3);
    put_all(evs, n);
    n = replay(21, evs, 16, &more);
    cr_expect(n == 2 && evs[0] == e2);
    put_all(evs, n);
    n = replay(20, evs, 1, &more);
    cr_expect(n == 1 && more && evs[0] == e1, "max 1: truncated");
    put_all(evs, n);
    cr_expect_eq(replay(23, evs, 16, &more), 0);

    /* 150 more: the window keeps its minimum of 100 and forgets the older ones */
    for (uint64_t rv = 24; rv < 174; rv++) {
        struct cache_obj *o = cm("c", rv, "x");
        struct cache_event *ev = publish(CODEC_EV_MODIFIED, o, rv);
        cache_obj_put(o);
        cache_ref_put(&ev->ref);
    }
    cr_expect_eq(store.win_n, 100);
    cr_expect_eq(store.window_start, 73);
    cr_expect_eq(store_window_after(&store, 72, evs, 16, &n, &more), -ERANGE);
    cr_expect_eq(store_window_after(&store, 20, evs, 16, &n, &more), -ERANGE);
    n = replay(73, evs, 256, &more);
    cr_expect(n == 100 && !more && evs[0]->rv == 74 && evs[99]->rv == 173);
    put_all(evs, n);
    cr_expect_eq(cache_store_rv(&store), 173);
    cache_ref_put(&e1->ref);
    cache_ref_put(&e2->ref);
    cache_ref_put(&e3->ref);
}

Test(store, bookmarks_move_the_rv_but_not_the_window)
{
    struct cache_event *evs[4];
    bool more;

    fill((struct cache_obj *[]){cm("a", 10, "x")}, 1, 20);
    struct cache_event *bm = cache_event_new(store.id, CODEC_EV_BOOKMARK, 30, NULL, NULL);
    store_publish(&store, &bm, 1);
    cache_ref_put(&bm->ref);
    cr_expect_eq(cache_store_rv(&store), 30);
    cr_expect_eq(replay(20, evs, 4, &more), 0);
}

Test(store, relist_sends_the_difference_in_rv_order)
{
    struct cache_event *evs[16];
    bool more;

    fill((struct cache_obj *[]){cm("a", 10, "x"), cm("b", 11, "x"), cm("c", 12, "x")}, 3, 20);
    /* after a 410: a unchanged, b modified, c gone, d new (given out of key order) */
    fill((struct cache_obj *[]){cm("d", 31, "x"), cm("b", 30, "y"), cm("a", 10, "x")}, 3, 40);
    size_t n = replay(20, evs, 16, &more);
    cr_assert_eq(n, 3);
    cr_expect(evs[0]->type == CODEC_EV_MODIFIED && evs[0]->rv == 30 &&
              strcmp(evs[0]->obj->name, "b") == 0);
    cr_expect(evs[0]->prev && evs[0]->prev->rv == 11, "the previous b");
    cr_expect(evs[1]->type == CODEC_EV_ADDED && evs[1]->rv == 31 &&
              strcmp(evs[1]->obj->name, "d") == 0);
    cr_expect(evs[2]->type == CODEC_EV_DELETED && evs[2]->rv == 40 &&
              strcmp(evs[2]->obj->name, "c") == 0);
    put_all(evs, n);
    cr_expect_eq(cache_store_rv(&store), 40);
    cr_expect_eq(store.n_objs, 3);
    cr_expect(get_rv("a") == 10 && get_rv("b") == 30 && get_rv("c") == 0 && get_rv("d") == 31);
    /* the same content again: no events, the RV still moves */
    fill((struct cache_obj *[]){cm("a", 10, "x"), cm("b", 30, "y"), cm("d", 31, "x")}, 3, 50);
    cr_expect_eq(replay(40, evs, 16, &more), 0);
    cr_expect_eq(cache_store_rv(&store), 50);
}

static bool has(const struct cache_bytes *b, const char *s)
{
    return memmem(b->data, b->len, s, strlen(s)) != NULL;
}

Test(store, event_variants_for_filtered_watches)
{
    fill((struct cache_obj *[]){cm("a", 10, "before")}, 1, 20);
    struct cache_obj *now = cm("a", 21, "after");
    struct cache_event *ev = publish(CODEC_EV_MODIFIED, now, 21);
    cache_obj_put(now);

    struct cache_bytes *as_is = cache_event_bytes(ev, CACHE_AS_IS);
    struct cache_bytes *added = cache_event_bytes(ev, CACHE_AS_ADDED);
    struct cache_bytes *left = cache_event_bytes(ev, CACHE_AS_LEFT);
    cr_assert(as_is && added && left);
    cr_expect(strncmp(as_is->data, "{\"type\":\"MODIFIED\",\"object\":", 28) == 0);
    cr_expect(has(as_is, "\"after\"") && !has(as_is, "\"before\""));
    /* entering a filter: the new object as ADDED, the same bytes every ADDED of it uses */
    cr_expect(strncmp(added->data, "{\"type\":\"ADDED\",\"object\":", 25) == 0);
    cr_expect(has(added, "\"after\"") && has(added, "\"resourceVersion\": \"21\""));
    cr_expect(added == cache_obj_added(ev->obj), "shared with the object's ADDED frame");
    /* leaving one: the previous version, at the event's RV, as DELETED */
    cr_expect(strncmp(left->data, "{\"type\":\"DELETED\",\"object\":", 27) == 0);
    cr_expect(has(left, "\"before\"") && !has(left, "\"after\""));
    cr_expect(has(left, "\"resourceVersion\": \"21\"") &&
              !has(left, "\"resourceVersion\": \"10\""));
    cr_expect_eq(left->len, ev->prev->len + 29, "the previous object, one RV digit longer, framed");
    /* encoded once */
    cr_expect(cache_event_bytes(ev, CACHE_AS_LEFT) == left);
    cr_expect(cache_event_bytes(ev, CACHE_AS_IS) == as_is);
    /* an ADDED has no previous version to leave from */
    struct cache_obj *b = cm("b", 22, "x");
    struct cache_event *ev2 = publish(CODEC_EV_ADDED, b, 22);
    cache_obj_put(b);
    cr_expect_null(cache_event_bytes(ev2, CACHE_AS_LEFT));
    cache_ref_put(&ev2->ref);
    cache_ref_put(&ev->ref);
}

Test(store, protobuf_leave_variant_splices_the_rv)
{
    size_t len;
    char *pb = read_fixture("k8s-api/core.v1.ConfigMap.pb", &len);
    struct codec_buf b10, b21, want, obj;
    struct cache_obj *o10, *o21;

    store.fmt = CACHE_PB;
    codec_buf_init(&b10);
    codec_buf_init(&b21);
    cr_assert_eq(codec_pb_with_rv(&b10, pb, len, 10), 0);
    cr_assert_eq(codec_pb_with_rv(&b21, pb, len, 21), 0);
    cr_assert_eq(cache_obj_new(CACHE_PB, store.type, b10.data, b10.len, &o10), 0);
    cr_assert_eq(cache_obj_new(CACHE_PB, store.type, b21.data, b21.len, &o21), 0);
    struct cache_event *ev = cache_event_new(store.id, CODEC_EV_MODIFIED, 21, o21, o10);
    struct cache_bytes *left = cache_event_bytes(ev, CACHE_AS_LEFT);
    cr_assert_not_null(left);
    /* DELETED of the rv-10 object carried at rv 21: that is the rv-21 object's bytes */
    codec_buf_init(&want);
    codec_buf_init(&obj);
    cr_assert_eq(codec_watch_event_pb(&want, CODEC_EV_DELETED, b21.data, b21.len), 0);
    cr_expect(left->len == want.len && memcmp(left->data, want.data, want.len) == 0);
    struct cache_bytes *added = cache_event_bytes(ev, CACHE_AS_ADDED);
    codec_buf_reset(&want);
    cr_assert_eq(codec_watch_event_pb(&want, CODEC_EV_ADDED, b21.data, b21.len), 0);
    cr_expect(added && added->len == want.len && memcmp(added->data, want.data, want.len) == 0);
    cache_ref_put(&ev->ref);
    cache_obj_put(o10);
    cache_obj_put(o21);
    codec_buf_free(&obj);
    codec_buf_free(&want);
    codec_buf_free(&b10);
    codec_buf_free(&b21);
    free(pb);
}

Test(store, objects_without_a_usable_rv_or_name_are_refused)
{
    static const char no_rv[] = "{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\",\"metadata\":{"
                                "\"name\":\"a\",\"namespace\":\"n\"}}";
    static const char no_ns[] = "{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\",\"metadata\":{"
                                "\"name\":\"a\",\"resourceVersion\":\"5\"}}";
    struct cache_obj *o;

    cr_expect_lt(cache_obj_new(CACHE_JSON, store.type, no_rv, sizeof(no_rv) - 1, &o), 0);
    cr_expect_lt(cache_obj_new(CACHE_JSON, store.type, no_ns, sizeof(no_ns) - 1, &o), 0);
    cr_expect_lt(cache_obj_new(CACHE_JSON, store.type, "{", 1, &o), 0);
    cr_expect_lt(cache_obj_new(CACHE_PB, store.type, "k8s\0\x0a", 5, &o), 0);
    cr_expect_lt(cache_obj_from_item(CACHE_PB, store.type, "\xff\xff", 2, &o), 0);
}
