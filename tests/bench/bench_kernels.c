/*
 * bench_kernels.c — how fast each kernel path multiplies a matrix by
 * vectors, per weight type, on one thread: GB/s of weights read (each
 * call reads every weight once, whatever the number of vectors) and
 * GFLOP/s (2 per weight per vector), for 1 and 16 vectors.
 *
 * Two matrices per type: 4096 columns and rows enough for about 0.5 MB of
 * weights, which stays in the caches (the speed of the kernel itself), and
 * about 256 MB, which does not (the speed of memory, one core's share;
 * n_acts = 1 only, on the best path). Each figure is the best of several
 * timed runs of at least 0.1 s. The quantizing of the vectors is timed
 * apart, per million values.
 *
 * Usage: bench_kernels [--quick]. Not a test: timings are never asserted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent/engine/kernels.h"
#include "agent/engine/quant.h"
#include "common/alloc.h"
#include "tests/support/testutil.h"

#define COLS 4096

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng = 88172645463325252ull;

static uint32_t next_u32(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

/* Rows of type t from random floats, through the type's own quantizer
 * where it has one, random bytes with sane scales where not. */
static uint8_t *make_rows(ggml_type t, size_t rows, size_t row_bytes)
{
    uint8_t *w = mlx_malloc(rows * row_bytes);
    float *x = mlx_malloc(COLS * sizeof(float));
    if (w == NULL || x == NULL) {
        fprintf(stderr, "bench_kernels: out of memory\n");
        exit(1);
    }
    const quant_ops *ops = quant_ops_get(t);
    for (size_t r = 0; r < rows; r++) {
        uint8_t *row = w + r * row_bytes;
        if (ops->quantize != NULL) {
            for (size_t i = 0; i < COLS; i++)
                x[i] = (float)((int)(next_u32() % 2001) - 1000) / 1000.0f;
            ops->quantize(x, row, COLS);
            continue;
        }
        for (size_t i = 0; i < row_bytes; i++)
            row[i] = (uint8_t)next_u32();
        uint16_t d = quant_f32_to_f16(0.001f);
        for (size_t b = 0; b < COLS / 256; b++) {
            uint8_t *blk = row + b * ops->block_bytes;
            size_t at = t == GGML_TYPE_Q6_K ? 208 : 0;
            blk[at] = (uint8_t)d;
            blk[at + 1] = (uint8_t)(d >> 8);
            if (t == GGML_TYPE_Q4_K)
                memcpy(blk + 2, blk, 2);
        }
    }
    mlx_free(x);
    return w;
}

/* Best seconds per call of the matmul. */
static double time_matmul(const kernels *k, ggml_type t, const uint8_t *w,
                          size_t row_bytes, size_t rows, const uint8_t *acts,
                          size_t act_bytes, size_t n_acts, float *y, int quick)
{
    double best = 1e30;
    for (int run = 0; run < (quick ? 2 : 5); run++) {
        size_t calls = 0;
        double t0 = now_s(), t1;
        do {
            k->matmul(t, w, row_bytes, COLS, 0, rows, acts, act_bytes, n_acts, y, rows);
            calls++;
            t1 = now_s();
        } while (t1 - t0 < (quick ? 0.02 : 0.1));
        double per = (t1 - t0) / (double)calls;
        if (per < best)
            best = per;
    }
    return best;
}

static void bench_type(const kernels *k, ggml_type t, size_t rows, int big, int quick)
{
    size_t row_bytes = quant_row_bytes(t, COLS);
    size_t act_bytes = kernels_act_row_bytes(t, COLS);
    uint8_t *w = make_rows(t, rows, row_bytes);
    uint8_t *acts = mlx_malloc(16 * act_bytes);
    float *x = mlx_malloc(16 * COLS * sizeof(float));
    float *y = mlx_malloc(16 * rows * sizeof(float));
    if (acts == NULL || x == NULL || y == NULL) {
        fprintf(stderr, "bench_kernels: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < 16 * COLS; i++)
        x[i] = (float)((int)(next_u32() % 2001) - 1000) / 500.0f;
    for (size_t j = 0; j < 16; j++)
        k->quantize_act(t, x + j * COLS, acts + j * act_bytes, COLS);

    double bytes = (double)rows * (double)row_bytes;
    printf("%-5s %-7s %8.2f MB", ggml_type_name(t), k->name, bytes / 1e6);
    static const size_t counts[] = {1, 16};
    for (size_t c = 0; c < (big ? 1 : 2); c++) {
        size_t n_acts = counts[c];
        double s =
            time_matmul(k, t, w, row_bytes, rows, acts, act_bytes, n_acts, y, quick);
        printf("   n_acts %2zu: %7.2f GB/s %7.2f GFLOP/s", n_acts, bytes / s / 1e9,
               2.0 * (double)rows * COLS * (double)n_acts / s / 1e9);
    }
    /* Quantizing the vectors, per million values. */
    double best = 1e30;
    for (int run = 0; run < 3 && !big; run++) {
        double t0 = now_s();
        for (size_t j = 0; j < 16; j++)
            k->quantize_act(t, x + j * COLS, acts + j * act_bytes, COLS);
        double per = (now_s() - t0) / (16.0 * COLS) * 1e6;
        if (per < best)
            best = per;
    }
    if (!big)
        printf("   quantize_act %.3f ms/M", best * 1e3);
    printf("\n");
    fflush(stdout);
    mlx_free(w);
    mlx_free(acts);
    mlx_free(x);
    mlx_free(y);
}

int main(int argc, char **argv)
{
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    char where[256];
    test_machine(where, sizeof where);
    printf("bench_kernels: %s; one thread, %d columns\n", where, COLS);
    static const ggml_type types[] = {GGML_TYPE_Q4_0, GGML_TYPE_Q8_0, GGML_TYPE_Q4_K,
                                      GGML_TYPE_Q6_K, GGML_TYPE_F16,  GGML_TYPE_BF16,
                                      GGML_TYPE_F32};
    static const kernel_path paths[] = {KERNEL_SCALAR, KERNEL_AVX2, KERNEL_AVX512,
                                        KERNEL_NEON};
    printf("in cache (about 0.5 MB of weights):\n");
    for (size_t p = 0; p < sizeof paths / sizeof paths[0]; p++) {
        const kernels *k = kernels_for(paths[p]);
        if (k == NULL)
            continue;
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
            size_t rows = 500000 / quant_row_bytes(types[i], COLS) + 1;
            bench_type(k, types[i], rows, 0, quick);
        }
    }
    if (!quick) {
        const kernels *k = kernels_get();
        printf("from memory (about 256 MB of weights), %s:\n", k->name);
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
            size_t rows = 256000000 / quant_row_bytes(types[i], COLS);
            bench_type(k, types[i], rows, 1, quick);
        }
    }
    return 0;
}
