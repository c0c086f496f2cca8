/*
 * stop.c — watching generated text for stop strings.
 *
 * Text arrives in chunks cut anywhere, even inside a UTF-8 character or in
 * the middle of a stop string. The matcher keeps one invariant: what it
 * holds back is the longest tail of the text seen so far that is a proper
 * beginning of some stop string; everything before that tail has been
 * released, because no stop string can start there whatever comes next.
 *
 * Which stop wins does not depend on the chunking: it is the first one to
 * complete, reading the text byte by byte (the earliest end), and among
 * stops completing at the same byte the longest (the earliest start), so
 * the least text is released. Given stops "ab" and "b", "xab" releases
 * "x"; given "abcd" and "c", "abcd" releases "ab", since "c" completes
 * first.
 *
 * Matching is by bytes, so a held tail that ends inside a character is
 * released whole once the next chunk shows it is not a stop. A release
 * never splits a character of valid UTF-8: it ends where a stop string
 * (valid UTF-8 too) would begin, or at the end of a chunk.
 */
#include <string.h>

#include "agent/engine/engine.h"
#include "common/alloc.h"
#include "common/limits.h"

struct engine_stop {
    size_t n;                  /* non-empty stop strings */
    size_t len[MLX_MAX_STOPS]; /* bytes of each, 1..MLX_MAX_STOP_LEN */
    char str[MLX_MAX_STOPS][MLX_MAX_STOP_LEN];
    size_t longest;              /* the largest len[], 0 without stops */
    char held[MLX_MAX_STOP_LEN]; /* the tail that may begin a stop */
    size_t n_held;               /* < longest */
    bool stopped;                /* a stop completed: release nothing more */
};

int engine_stop_new(const char *const *stops, size_t n, engine_stop **out, mlx_err *err)
{
    *out = NULL;
    if (n > MLX_MAX_STOPS)
        return mlx_err_set(err, MLX_EINVAL,
                           "%zu stop strings were given; at most %d are allowed", n,
                           MLX_MAX_STOPS);
    if (n > 0 && stops == NULL)
        return mlx_err_set(err, MLX_EINVAL, "the list of %zu stop strings is missing", n);
    for (size_t i = 0; i < n; i++) {
        if (stops[i] == NULL)
            return mlx_err_set(err, MLX_EINVAL, "stop string %zu is missing", i + 1);
        size_t len = strnlen(stops[i], MLX_MAX_STOP_LEN + 1);
        if (len > MLX_MAX_STOP_LEN)
            return mlx_err_set(err, MLX_EINVAL,
                               "stop string %zu is longer than %d bytes; shorten it",
                               i + 1, MLX_MAX_STOP_LEN);
    }
    engine_stop *st = mlx_calloc(1, sizeof *st);
    if (st == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory for the stop strings");
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(stops[i]);
        if (len == 0)
            continue;
        memcpy(st->str[st->n], stops[i], len);
        st->len[st->n++] = len;
        if (len > st->longest)
            st->longest = len;
    }
    *out = st;
    return 0;
}

void engine_stop_free(engine_stop *st)
{
    mlx_free(st);
}

/* The earliest start among the stops that end exactly at byte e of s;
 * SIZE_MAX when none does. */
static size_t stop_ending_at(const engine_stop *st, const char *s, size_t e)
{
    size_t start = SIZE_MAX;
    for (size_t i = 0; i < st->n; i++) {
        size_t len = st->len[i];
        if (len <= e && e - len < start && memcmp(s + e - len, st->str[i], len) == 0)
            start = e - len;
    }
    return start;
}

/* True when the m bytes at s are a proper beginning of some stop. */
static bool begins_a_stop(const engine_stop *st, const char *s, size_t m)
{
    for (size_t i = 0; i < st->n; i++)
        if (st->len[i] > m && memcmp(st->str[i], s, m) == 0)
            return true;
    return false;
}

bool engine_stop_push(engine_stop *st, const char *text, size_t len, char *out, size_t *n)
{
    *n = 0;
    if (st->stopped)
        return true;
    /* The held tail and the new text, side by side in out: the caller made
     * room for len plus the longest stop, and the tail is shorter than
     * that. What is released is then already in place at the front. */
    memcpy(out, st->held, st->n_held);
    if (len > 0)
        memcpy(out + st->n_held, text, len);
    size_t total = st->n_held + len;

    /* A stop ending inside the held tail would have ended an earlier push. */
    for (size_t e = st->n_held + 1; e <= total; e++) {
        size_t start = stop_ending_at(st, out, e);
        if (start != SIZE_MAX) {
            *n = start;
            st->n_held = 0;
            st->stopped = true;
            return true;
        }
    }

    size_t keep_from = total;
    size_t tail = st->longest > 0 ? st->longest - 1 : 0; /* the most that can be held */
    size_t first = total > tail ? total - tail : 0;
    for (size_t p = first; p < total; p++) {
        if (begins_a_stop(st, out + p, total - p)) {
            keep_from = p;
            break;
        }
    }
    st->n_held = total - keep_from;
    memcpy(st->held, out + keep_from, st->n_held);
    *n = keep_from;
    return false;
}

size_t engine_stop_flush(engine_stop *st, char *out)
{
    size_t n = st->n_held;
    memcpy(out, st->held, n);
    st->n_held = 0;
    return n;
}
