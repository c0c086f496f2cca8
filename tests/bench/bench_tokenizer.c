/*
 * bench_tokenizer.c — how fast the tokenizers turn text into ids: all of
 * War and Peace (3.2 MB, ../shared/testdata) with the 32k SentencePiece
 * vocabulary of llama-2-tiny-random.gguf and with the Llama 3 byte-level
 * BPE vocabulary, best of five runs each, printed in MB/s (10^6 bytes),
 * one line per vocabulary with the machine it ran on. Decoding the ids
 * back is timed too.
 *
 * Usage: bench_tokenizer. Not a test: timings are never asserted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent/engine/gguf.h"
#include "agent/engine/tokenizer.h"
#include "common/alloc.h"
#include "tests/support/testutil.h"

#define RUNS 5

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void bench(const char *label, const char *vocab, const char *text, size_t len,
                  const char *where)
{
    char *path = test_testdata(vocab);
    gguf_file *f = NULL;
    tokenizer *t = NULL;
    mlx_err err;
    if (path == NULL || gguf_open(path, &f, &err) != 0 ||
        tokenizer_load(f, &t, &err) != 0) {
        fprintf(stderr, "%s: %s\n", vocab, path == NULL ? "missing" : err.msg);
        exit(1);
    }
    gguf_close(f);
    double best = 1e30, best_dec = 1e30;
    size_t n = 0;
    for (int r = 0; r < RUNS; r++) {
        int32_t *ids = NULL;
        double t0 = now_s();
        if (tokenizer_encode(t, text, len, true, true, &ids, &n, &err) != 0) {
            fprintf(stderr, "%s: %s\n", vocab, err.msg);
            exit(1);
        }
        double t1 = now_s();
        char *back = NULL;
        size_t back_len;
        if (tokenizer_decode(t, ids, n, &back, &back_len, &err) != 0) {
            fprintf(stderr, "%s: %s\n", vocab, err.msg);
            exit(1);
        }
        double t2 = now_s();
        best = t1 - t0 < best ? t1 - t0 : best;
        best_dec = t2 - t1 < best_dec ? t2 - t1 : best_dec;
        mlx_free(back);
        mlx_free(ids);
    }
    printf("tokenize %-28s %7.1f MB/s  (%zu ids; decode %.0f MB/s)  on %s\n", label,
           (double)len / best / 1e6, n, (double)len / best_dec / 1e6, where);
    tokenizer_free(t);
    free(path);
}

int main(void)
{
    char *path = test_testdata("war-and-peace.txt");
    size_t len = 0;
    char *text = path == NULL ? NULL : test_read_file(path, &len);
    if (text == NULL) {
        printf("skipped: war-and-peace.txt (../shared/testdata or $MLX_TESTDATA) is "
               "absent\n");
        return TEST_SKIP;
    }
    char where[256];
    test_machine(where, sizeof where);
    bench("llama2 (SentencePiece, 32k)", "llama-2-tiny-random.gguf", text, len, where);
    bench("llama3 (byte-level BPE, 128k)", "llama3-vocab.gguf", text, len, where);
    free(text);
    free(path);
    return 0;
}
