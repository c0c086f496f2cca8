/*
 * test_stop.c — agent/engine's stop-string matcher. Every 2-way and 3-way
 * split of several texts (multibyte characters split too) releases the
 * same text and stops at the same byte as a reference reading the whole
 * text at once; after every chunk, exactly what can no longer begin a stop
 * has been released. Overlapping stops, a stop at the very start, a text
 * with no stop, the limits, an allocation failing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/engine/engine.h"
#include "common/alloc.h"
#include "common/limits.h"

static engine_stop *new_stop(const char *const *stops, size_t n)
{
    engine_stop *st = NULL;
    mlx_err err;
    mlx_err_clear(&err);
    if (engine_stop_new(stops, n, &st, &err) != 0)
        fail_msg("engine_stop_new: %s", err.msg);
    return st;
}

static size_t longest(const char *const *stops, size_t n)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (strlen(stops[i]) > m)
            m = strlen(stops[i]);
    return m;
}

/* The reference: the first stop to complete reading byte by byte, the
 * longest of those completing at the same byte; returns the bytes before
 * it, or len with *stopped false. */
static size_t ref_cut(const char *t, size_t len, const char *const *stops, size_t n,
                      bool *stopped)
{
    for (size_t e = 1; e <= len; e++) {
        size_t start = SIZE_MAX;
        for (size_t i = 0; i < n; i++) {
            size_t l = strlen(stops[i]);
            if (l > 0 && l <= e && memcmp(t + e - l, stops[i], l) == 0 && e - l < start)
                start = e - l;
        }
        if (start != SIZE_MAX) {
            *stopped = true;
            return start;
        }
    }
    *stopped = false;
    return len;
}

/* What may be released after reading t[0, len) when no stop has come: all
 * but the longest tail that is a proper beginning of a stop. */
static size_t ref_safe(const char *t, size_t len, const char *const *stops, size_t n)
{
    for (size_t p = 0; p < len; p++)
        for (size_t i = 0; i < n; i++)
            if (strlen(stops[i]) > len - p && memcmp(stops[i], t + p, len - p) == 0)
                return p;
    return len;
}

/* Feeds text cut at a <= b, checking each release; returns what came out
 * in total (caller frees) and whether a stop came. */
static char *feed(const char *const *stops, size_t n, const char *text, size_t a,
                  size_t b, bool *stopped)
{
    size_t len = strlen(text), cap = longest(stops, n);
    char *all = calloc(len + cap + 1, 1);
    char *out = malloc(len + cap + 1);
    size_t total = 0;
    const size_t cuts[4] = {0, a, b, len};
    engine_stop *st = new_stop(stops, n);
    *stopped = false;
    for (int c = 0; c < 3 && !*stopped; c++) {
        size_t got = 99999;
        *stopped = engine_stop_push(st, text + cuts[c], cuts[c + 1] - cuts[c], out, &got);
        assert_true(got <= cuts[c + 1] - cuts[c] + cap);
        memcpy(all + total, out, got);
        total += got;
        if (!*stopped) {
            size_t safe = ref_safe(text, cuts[c + 1], stops, n);
            if (total != safe)
                fail_msg("'%s' cut at %zu,%zu: %zu bytes out after chunk %d, want %zu",
                         text, a, b, total, c, safe);
        }
    }
    if (*stopped) {
        size_t got = 99999;
        /* nothing after a stop, ever */
        assert_true(engine_stop_push(st, "more", 4, out, &got));
        assert_int_equal(got, 0);
        assert_int_equal(engine_stop_flush(st, out), 0);
    } else {
        total += engine_stop_flush(st, all + total);
        assert_int_equal(engine_stop_flush(st, out), 0);
    }
    all[total] = '\0';
    engine_stop_free(st);
    free(out);
    return all;
}

static void every_split(const char *const *stops, size_t n, const char *text)
{
    size_t len = strlen(text);
    bool want_stop;
    size_t want = ref_cut(text, len, stops, n, &want_stop);
    for (size_t a = 0; a <= len; a++)
        for (size_t b = a; b <= len; b++) {
            bool stopped;
            char *got = feed(stops, n, text, a, b, &stopped);
            if (stopped != want_stop || strlen(got) != want ||
                memcmp(got, text, want) != 0)
                fail_msg("'%s' cut at %zu,%zu released '%s' (%s), want %zu bytes (%s)",
                         text, a, b, got, stopped ? "stopped" : "no stop", want,
                         want_stop ? "stopped" : "no stop");
            free(got);
        }
}

static void test_every_split_releases_the_same(void **state)
{
    const char *end[] = {"</s>", "end!"};
    every_split(end, 2, "Hello, wörld! The end.</s>more after");
    const char *cafe[] = {"é ☕", "STOP"};
    every_split(cafe, 2, "naïve café ☕ STOP here");
    const char *kana[] = {"テキ", "本語X"};
    every_split(kana, 2, "日本語のテキスト");
    const char *none[] = {"zz", "here!", "ö"};
    every_split(none, 3, "no stop in here at all, oh");
    const char *chat[] = {"<|im_end|>", "<|im_start|>"};
    every_split(chat, 2, "Sure.<|im_<|im_end|>");
    every_split(chat, 2, "<|im_end|>");
    const char *rep[] = {"aaab"};
    every_split(rep, 1, "aaaaaaab tail");
}

static void test_overlapping_stops(void **state)
{
    const char *stops[] = {"ab", "abc", "bcd"};
    /* each text: what is released, every split agreeing */
    const char *texts[] = {"xabcd", "xbcd", "abab", "bcbcd", "aaabc", "cba"};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++)
        every_split(stops, 3, texts[i]);
    bool stopped;
    char *got = feed(stops, 3, "xabcd", 5, 5, &stopped);
    assert_true(stopped);
    assert_string_equal(got, "x"); /* "ab" completes before "abc" or "bcd" */
    free(got);
    got = feed(stops, 3, "xbcd", 1, 3, &stopped);
    assert_true(stopped);
    assert_string_equal(got, "x");
    free(got);

    /* the earliest end wins, then the longest */
    const char *nested[] = {"abcd", "c"};
    got = feed(nested, 2, "abcd", 4, 4, &stopped);
    assert_true(stopped);
    assert_string_equal(got, "ab");
    free(got);
    const char *same_end[] = {"b", "ab"};
    got = feed(same_end, 2, "xab", 1, 2, &stopped);
    assert_true(stopped);
    assert_string_equal(got, "x");
    free(got);
}

static void test_stop_at_start_and_no_stop(void **state)
{
    const char *stops[] = {"STOP"};
    bool stopped;
    char *got = feed(stops, 1, "STOP and then text", 2, 9, &stopped);
    assert_true(stopped);
    assert_string_equal(got, "");
    free(got);
    got = feed(stops, 1, "STO and STOPPED", 3, 3, &stopped);
    assert_true(stopped);
    assert_string_equal(got, "STO and ");
    free(got);
    got = feed(stops, 1, "never the word, ST", 5, 17, &stopped);
    assert_false(stopped);
    assert_string_equal(got, "never the word, ST"); /* the held "ST" by flush */
    free(got);

    /* held back, then released when the next chunk rules the stop out */
    engine_stop *st = new_stop((const char *[]){"hello"}, 1);
    char out[64];
    size_t n = 99;
    assert_false(engine_stop_push(st, "say hel", 7, out, &n));
    assert_int_equal(n, 4);
    assert_memory_equal(out, "say ", 4);
    assert_false(engine_stop_push(st, "p", 1, out, &n));
    assert_int_equal(n, 4);
    assert_memory_equal(out, "help", 4);
    engine_stop_free(st);

    /* no stops (or only empty ones): everything at once */
    const char *empty[] = {"", ""};
    st = new_stop(empty, 2);
    assert_false(engine_stop_push(st, "abc", 3, out, &n));
    assert_int_equal(n, 3);
    assert_int_equal(engine_stop_flush(st, out), 0);
    engine_stop_free(st);
    st = new_stop(NULL, 0);
    assert_false(engine_stop_push(st, "", 0, out, &n));
    assert_int_equal(n, 0);
    engine_stop_free(st);
    engine_stop_free(NULL);
}

static void test_limits(void **state)
{
    char big[MLX_MAX_STOP_LEN + 2];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    const char *too_long[] = {"ok", big};
    engine_stop *st = (engine_stop *)big;
    mlx_err err;
    mlx_err_clear(&err);
    assert_int_equal(engine_stop_new(too_long, 2, &st, &err), MLX_EINVAL);
    assert_null(st);
    assert_non_null(strstr(err.msg, "256"));

    big[MLX_MAX_STOP_LEN] = '\0'; /* exactly the limit */
    st = new_stop(too_long, 2);
    static char text[MLX_MAX_STOP_LEN * 2 + 8], out[MLX_MAX_STOP_LEN * 3 + 8];
    memset(text, 'x', MLX_MAX_STOP_LEN * 2);
    size_t n;
    assert_false(engine_stop_push(st, text, MLX_MAX_STOP_LEN - 1, out, &n));
    assert_int_equal(n, 0); /* all of it may begin the long stop */
    assert_true(engine_stop_push(st, text, 1, out, &n));
    assert_int_equal(n, 0);
    engine_stop_free(st);

    const char *many[MLX_MAX_STOPS + 1];
    for (int i = 0; i <= MLX_MAX_STOPS; i++)
        many[i] = "s";
    mlx_err_clear(&err);
    assert_int_equal(engine_stop_new(many, MLX_MAX_STOPS + 1, &st, &err), MLX_EINVAL);
    assert_non_null(strstr(err.msg, "16"));
    st = new_stop(many, MLX_MAX_STOPS);
    engine_stop_free(st);

    const char *missing[] = {"a", NULL};
    assert_int_equal(engine_stop_new(missing, 2, &st, &err), MLX_EINVAL);
    assert_int_equal(engine_stop_new(NULL, 1, &st, &err), MLX_EINVAL);
}

static void test_out_of_memory(void **state)
{
    const char *stops[] = {"a"};
    engine_stop *st = (engine_stop *)stops;
    mlx_err err;
    mlx_err_clear(&err);
    mlx_alloc_fail_after(0);
    int rc = engine_stop_new(stops, 1, &st, &err);
    mlx_alloc_fail_reset();
    assert_int_equal(rc, MLX_ENOMEM);
    assert_null(st);
    assert_true(err.msg[0] != '\0');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_split_releases_the_same),
        cmocka_unit_test(test_overlapping_stops),
        cmocka_unit_test(test_stop_at_start_and_no_stop),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
