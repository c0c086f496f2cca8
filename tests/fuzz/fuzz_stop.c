/*
 * fuzz_stop.c — the stop-string matcher with random stops and random
 * chunking: what it releases must be the text up to where the first stop
 * completes (the longest of those completing there), or all of it when
 * none does, whatever the chunks.
 *
 * Input: a count byte (0-4 stops), then per stop a length byte (0-6) and
 * its bytes; a byte seeding the chunk lengths; the text. Bytes are mapped
 * onto a small alphabet ("abc", the two bytes of "é", a space) so stops
 * overlap and recur.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/engine/engine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char alphabet[] = "abc\xc3\xa9 ";

static char letter(uint8_t b)
{
    return alphabet[b % (sizeof alphabet - 1)];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char stops[4][8];
    const char *list[4];
    size_t at = 0, n = size > 0 ? data[at++] % 5 : 0, longest = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = at < size ? data[at++] % 7 : 0;
        size_t j = 0;
        for (; j < len && at < size; j++)
            stops[i][j] = letter(data[at++]);
        stops[i][j] = '\0';
        list[i] = stops[i];
        if (j > longest)
            longest = j;
    }
    uint32_t chunk_rng = at < size ? data[at++] * 2654435761u + 1 : 1;
    size_t len = size - at;
    char *text = malloc(len + 1);
    char *got = malloc(len + longest + 1);
    char *out = malloc(len + longest + 1);
    for (size_t i = 0; i < len; i++)
        text[i] = letter(data[at + i]);

    /* The reference, reading the whole text. */
    size_t want = len;
    bool want_stop = false;
    for (size_t e = 1; e <= len && !want_stop; e++)
        for (size_t i = 0; i < n; i++) {
            size_t l = strlen(list[i]);
            if (l > 0 && l <= e && memcmp(text + e - l, list[i], l) == 0 &&
                (!want_stop || e - l < want)) {
                want = e - l;
                want_stop = true;
            }
        }

    engine_stop *st = NULL;
    if (engine_stop_new(list, n, &st, NULL) != 0)
        abort();
    size_t total = 0, pos = 0;
    bool stopped = false;
    while (pos < len && !stopped) {
        chunk_rng ^= chunk_rng << 13;
        chunk_rng ^= chunk_rng >> 17;
        chunk_rng ^= chunk_rng << 5;
        size_t c = chunk_rng % 9;
        if (c > len - pos)
            c = len - pos;
        size_t k = 0;
        stopped = engine_stop_push(st, text + pos, c, out, &k);
        if (k > c + longest)
            abort();
        memcpy(got + total, out, k);
        total += k;
        pos += c;
    }
    if (!stopped)
        total += engine_stop_flush(st, got + total);
    if (stopped != want_stop || total != want || memcmp(got, text, want) != 0)
        abort();
    engine_stop_free(st);
    free(text);
    free(got);
    free(out);
    return 0;
}
