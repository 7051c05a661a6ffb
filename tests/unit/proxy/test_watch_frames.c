/*
 * px_watch_frames: where a forwarded watch's events end, fed in every possible split, so a
 * draining kfront ends a watch between two events and never inside one.
 */
#include <criterion/criterion.h>

#include <string.h>

#include "proxy/l7.h"

static const char json_ct[] = "application/json";
static const char pb_ct[] = "application/vnd.kubernetes.protobuf;stream=watch";

/* Two protobuf frames: 3 bytes, then 0 bytes, then 2 bytes. */
static const uint8_t pb_stream[] = {0, 0, 0, 3, 'a', 'b', 'c', 0, 0, 0, 0, 0, 0, 0, 2, 'd', 'e'};
static const size_t pb_ends[] = {7, 11, 17}; /* offsets just after each frame */

Test(watch_frames, framing_from_the_content_type)
{
    struct px_watch_frames f;

    px_watch_frames_init(&f, json_ct, strlen(json_ct));
    cr_assert_eq(f.framing, PX_FRAMING_LINES);
    px_watch_frames_init(&f, "Application/JSON;charset=utf-8", 30);
    cr_assert_eq(f.framing, PX_FRAMING_LINES);
    px_watch_frames_init(&f, pb_ct, strlen(pb_ct));
    cr_assert_eq(f.framing, PX_FRAMING_LENGTH);
    px_watch_frames_init(&f, "application/yaml", 16);
    cr_assert_eq(f.framing, PX_FRAMING_NONE);
    px_watch_frames_init(&f, "application/cbor-seq", 20);
    cr_assert_eq(f.framing, PX_FRAMING_NONE);
    cr_assert(f.at_boundary);
}

Test(watch_frames, json_lines_split_anywhere)
{
    static const char s[] = "{\"type\":\"ADDED\"}\n{\"type\":\"MODIFIED\"}\n";
    size_t n = sizeof(s) - 1, first_end = strchr(s, '\n') - s + 1;

    for (size_t cut = 1; cut < n; cut++) {
        struct px_watch_frames f;
        px_watch_frames_init(&f, json_ct, strlen(json_ct));
        cr_assert_eq(px_watch_frames_advance(&f, (const uint8_t *)s, cut, false), cut);
        cr_assert_eq(f.at_boundary, cut == first_end, "cut %zu", cut);
        if (f.at_boundary)
            continue;
        /* draining: stop at the end of the event in progress */
        size_t took = px_watch_frames_advance(&f, (const uint8_t *)s + cut, n - cut, true);
        size_t want = cut < first_end ? first_end - cut : n - cut;
        cr_assert_eq(took, want, "cut %zu: took %zu", cut, took);
        cr_assert(f.at_boundary);
    }
}

Test(watch_frames, protobuf_frames_split_anywhere)
{
    size_t n = sizeof(pb_stream);

    for (size_t cut = 1; cut < n; cut++) {
        struct px_watch_frames f;
        bool boundary = false;
        size_t next_end = n;
        for (size_t i = 0; i < 3; i++) {
            boundary |= pb_ends[i] == cut;
            if (pb_ends[i] > cut && pb_ends[i] < next_end)
                next_end = pb_ends[i];
        }
        px_watch_frames_init(&f, pb_ct, strlen(pb_ct));
        cr_assert_eq(px_watch_frames_advance(&f, pb_stream, cut, false), cut);
        cr_assert_eq(f.at_boundary, boundary, "cut %zu", cut);
        size_t took = px_watch_frames_advance(&f, pb_stream + cut, n - cut, true);
        cr_assert_eq(took, next_end - cut, "cut %zu: took %zu", cut, took);
        cr_assert(f.at_boundary);
    }
}

Test(watch_frames, byte_at_a_time)
{
    struct px_watch_frames f;
    size_t ends = 0;

    px_watch_frames_init(&f, pb_ct, strlen(pb_ct));
    for (size_t i = 0; i < sizeof(pb_stream); i++) {
        cr_assert_eq(px_watch_frames_advance(&f, pb_stream + i, 1, false), 1);
        ends += f.at_boundary;
    }
    cr_assert_eq(ends, 3);
}
