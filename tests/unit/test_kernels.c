/*
 * test_kernels.c — agent/engine kernels: every member of every path this
 * build and CPU run, against the scalar path and against quant.h's
 * reference dot products; the activation quantizers against blocks worked
 * out by hand; MLX_KERNELS forcing.
 *
 * What "agree" means:
 *   - the quantized products (Q8_0, Q4_0, Q4_K, Q6_K) and the activation
 *     quantizers, f32_to_f16 and axpy_f16 are bit-identical between paths:
 *     integer sums are exact and the float steps after them are fixed by
 *     kernels_int.h;
 *   - the float products (F32, F16, BF16 weights, dot_f16) differ by
 *     summation order only. Every path keeps at least eight partial sums
 *     (or more lanes), so no product passes through more than n/8 + 16
 *     roundings (its own, one per eight values in its lane, the lanes'
 *     final sum, and a tail of up to seven values added one by one); each
 *     result is checked against a double-precision sum with the classic
 *     bound |error| <= gamma(k) * sum |w x|, gamma(k) = k u / (1 - k u),
 *     u = 2^-24, k = n/8 + 16;
 *   - against quant.h's reference (which multiplies the dequantized row by
 *     the dequantized activation in double), the scalar quantized products
 *     differ by float rounding only: of each block's scales (2 roundings),
 *     of the accumulation (one per block) and, in the reference, of each
 *     dequantized value. With M the sum of |terms| before any cancellation
 *     (for Q4_K both d*sc*q and dmin*m), the bound is (blocks + 8) * 2u * M.
 *
 * Written without cmocka so that the same file cross-compiles for arm64
 * and runs under qemu (tests/unit/cross_neon.sh). Closes with the count of
 * passed and failed tests; exits 1 when one failed.
 *
 *   test_kernels [--expect-dotprod=yes|no] [--expect-best=scalar|avx2|avx512|neon]
 *
 * (the options say what an emulated CPU must get: tests/unit/cross_neon.sh
 * and the Nehalem and Haswell runs in engine_kernels.cmake)
 */
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/engine/kernels_int.h"
#include "agent/engine/quant.h"
#include "common/log.h"

/* Harness ---------------------------------------------------------------- */

static int test_failures; /* in the running test */

#define CHECK(cond, ...)                                                                 \
    do {                                                                                 \
        if (!(cond))                                                                     \
            check_failed(__FILE__, __LINE__, #cond, __VA_ARGS__);                        \
    } while (0)

static void check_failed(const char *file, int line, const char *cond, const char *fmt,
                         ...) __attribute__((format(printf, 4, 5)));
static void check_failed(const char *file, int line, const char *cond, const char *fmt,
                         ...)
{
    if (test_failures++ < 10) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "  %s:%d: %s: ", file, line, cond);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
    }
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t next_u32(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

/* Uniform on [-1, 1). */
static float next_unit(void)
{
    return (float)((double)next_u32() / 2147483648.0 - 1.0);
}

/* A scale 2^e with e uniform in [lo, hi], times a random mantissa. */
static float next_scale(int lo, int hi)
{
    int e = lo + (int)(next_u32() % (unsigned)(hi - lo + 1));
    return ldexpf(1.0f + 0.5f * (next_unit() + 1.0f), e);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n > 0 ? n : 1);
    if (p == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

static const char *type_name(ggml_type t)
{
    return ggml_type_name(t);
}

/* The paths to check: every one this build and CPU run but scalar. */
static const kernels *paths[4];
static size_t n_paths;

/* Activation formats and the quantizers ---------------------------------- */

static void test_act_formats(void)
{
    static const struct {
        ggml_type w, a;
        size_t bytes_512;
    } cases[] = {
        {GGML_TYPE_F32, GGML_TYPE_F32, 2048},
        {GGML_TYPE_F16, GGML_TYPE_F32, 2048},
        {GGML_TYPE_BF16, GGML_TYPE_F32, 2048},
        {GGML_TYPE_Q8_0, GGML_TYPE_Q8_0, 16 * 34},
        {GGML_TYPE_Q4_0, GGML_TYPE_Q8_0, 16 * 34},
        {GGML_TYPE_Q4_K, GGML_TYPE_Q8_K, 2 * 292},
        {GGML_TYPE_Q6_K, GGML_TYPE_Q8_K, 2 * 292},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK(kernels_act_type(cases[i].w) == cases[i].a, "%s", type_name(cases[i].w));
        CHECK(kernels_act_row_bytes(cases[i].w, 512) == cases[i].bytes_512, "%s",
              type_name(cases[i].w));
    }
    CHECK(kernels_act_row_bytes(GGML_TYPE_Q5_K, 512) == 0, "Q5_K has no kernel");
    CHECK(kernels_act_row_bytes(GGML_TYPE_F32, 3) == 12, "F32 rows of any length");
}

/* Quantizes x with every path and checks they agree with the scalar one. */
static void quantize_all_paths(ggml_type t, const float *x, size_t n, uint8_t *out)
{
    size_t bytes = kernels_act_row_bytes(t, n);
    kernels_scalar.quantize_act(t, x, out, n);
    uint8_t *other = xmalloc(bytes);
    for (size_t p = 0; p < n_paths; p++) {
        memset(other, 0xa5, bytes);
        paths[p]->quantize_act(t, x, other, n);
        CHECK(memcmp(out, other, bytes) == 0, "%s quantize_act for %s, n %zu",
              paths[p]->name, type_name(t), n);
    }
    free(other);
}

static void test_quantize_q8_0_by_hand(void)
{
    /* max|x| = 127: d = 1 exactly (f16 0x3c00), q = x rounded with halves
     * away from zero. Then max|x| = 63.5: d = 0.5 (0x3800), q = round(2x). */
    float x[96] = {0};
    int8_t want[96] = {0};
    static const float a[] = {127, 2.5f, -2.5f, 1.49f, -0.5f, 0.5f, 126.5f, -127};
    static const int8_t qa[] = {127, 3, -3, 1, -1, 1, 127, -127};
    static const float b[] = {63.5f, 0.25f, -0.25f, 0.75f, -31.75f, 1.2f};
    static const int8_t qb[] = {127, 1, -1, 2, -64, 2};
    for (int i = 0; i < 8; i++) {
        x[3 * i] = a[i];
        want[3 * i] = qa[i];
    }
    for (int i = 0; i < 6; i++) {
        x[32 + 5 * i] = b[i];
        want[32 + 5 * i] = qb[i];
    }
    /* The third block is all zeros: d = 0, q = 0. */
    uint8_t out[3 * 34];
    quantize_all_paths(GGML_TYPE_Q8_0, x, 96, out);
    CHECK(out[0] == 0x00 && out[1] == 0x3c, "d of block 0 is %02x%02x", out[1], out[0]);
    CHECK(out[34] == 0x00 && out[35] == 0x38, "d of block 1 is %02x%02x", out[35],
          out[34]);
    CHECK(out[68] == 0 && out[69] == 0, "d of the zero block");
    for (int i = 0; i < 96; i++)
        CHECK((int8_t)out[(i / 32) * 34 + 2 + i % 32] == want[i], "q[%d] = %d, want %d",
              i, (int8_t)out[(i / 32) * 34 + 2 + i % 32], want[i]);
}

static float q8_k_d(const uint8_t *b)
{
    return krn_load_f32(b);
}

static void test_quantize_q8_k_by_hand(void)
{
    float x[768] = {0};
    int8_t want[768] = {0};
    /* Block 0: the largest magnitude is +127 (index 5): s = -1, d = -1, q =
     * -x rounded to nearest, ties to even. */
    static const struct {
        int i;
        float x;
        int8_t q;
    } b0[] = {{5, 127, -127}, {0, 2.5f, -2},      {1, 3.5f, -4},
              {2, -0.5f, 0},  {3, -1.5f, 2},      {17, 100, -100},
              {18, 0.49f, 0}, {40, -126.5f, 126}, {255, 7.25f, -7}},
      /* Block 1: -127 comes first, then +127: the first one's sign wins, so
       * s = 1, d = 1, q = x. */
        b1[] = {{3, -127, -127}, {9, 127, 127}, {20, 4.5f, 4}, {21, -5.5f, -6}},
      /* Block 2: the largest magnitude is -63.5: s = 2, d = 0.5. */
        b2[] = {{0, -63.5f, -127},
                {1, 0.25f, 0},
                {2, 0.75f, 2},
                {3, 31.75f, 64},
                {16, -1.25f, -2}};
    for (size_t k = 0; k < sizeof b0 / sizeof b0[0]; k++) {
        x[b0[k].i] = b0[k].x;
        want[b0[k].i] = b0[k].q;
    }
    for (size_t k = 0; k < sizeof b1 / sizeof b1[0]; k++) {
        x[256 + b1[k].i] = b1[k].x;
        want[256 + b1[k].i] = b1[k].q;
    }
    for (size_t k = 0; k < sizeof b2 / sizeof b2[0]; k++) {
        x[512 + b2[k].i] = b2[k].x;
        want[512 + b2[k].i] = b2[k].q;
    }
    /* Group sums, worked out from the q above. */
    static const int16_t sums0[16] = {
        -127 - 2 - 4 + 0 + 2, -100, -0 + 126, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -7};
    static const int16_t sums1[16] = {0, -127 + 127 + 4 - 6};
    static const int16_t sums2[16] = {-127 + 0 + 2 + 64, -2};
    static const int16_t *sums[3] = {sums0, sums1, sums2};
    static const float d[3] = {-1, 1, 0.5f};

    uint8_t out[3 * 292];
    quantize_all_paths(GGML_TYPE_Q4_K, x, 768, out);
    for (int b = 0; b < 3; b++) {
        const uint8_t *blk = out + 292 * b;
        CHECK(q8_k_d(blk) == d[b], "block %d: d = %g, want %g", b, (double)q8_k_d(blk),
              (double)d[b]);
        for (int i = 0; i < 256; i++)
            CHECK((int8_t)blk[4 + i] == want[256 * b + i],
                  "block %d: q[%d] = %d, want %d", b, i, (int8_t)blk[4 + i],
                  want[256 * b + i]);
        for (int g = 0; g < 16; g++)
            CHECK(krn_load_i16(blk + 260 + 2 * g) == sums[b][g],
                  "block %d: sum %d = %d, want %d", b, g, krn_load_i16(blk + 260 + 2 * g),
                  sums[b][g]);
    }

    /* A block of zeros: everything zero. */
    float zeros[256] = {0};
    uint8_t zb[292];
    quantize_all_paths(GGML_TYPE_Q4_K, zeros, 256, zb);
    uint8_t none[292] = {0};
    CHECK(memcmp(zb, none, 292) == 0, "a zero block quantizes to zeros");
}

/* Random rows, with ties, NaN and infinity where the quantizers must still
 * agree byte for byte across paths. */
static void test_quantize_random_rows(void)
{
    static const ggml_type types[] = {GGML_TYPE_F32, GGML_TYPE_Q4_0, GGML_TYPE_Q4_K};
    for (int round = 0; round < 40; round++) {
        size_t n = 256 * (1 + next_u32() % 6);
        float *x = xmalloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++) {
            float scale = next_scale(-20, 20);
            x[i] = next_unit() * scale;
            if (next_u32() % 8 == 0) /* exact halves after scaling by 127 / max */
                x[i] = (float)((int)(next_u32() % 255) - 127) * 0.5f;
        }
        if (round % 10 == 1)
            x[next_u32() % n] = NAN;
        if (round % 10 == 2)
            x[next_u32() % n] = -INFINITY;
        for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
            uint8_t *out = xmalloc(kernels_act_row_bytes(types[t], n));
            quantize_all_paths(types[t], x, n, out);
            free(out);
        }
        free(x);
    }
}

/* Weight rows ------------------------------------------------------------ */

/* A finite f16 scale in [2^lo, 2^hi] with a random sign, stored at p. */
static void put_scale(uint8_t *p, int lo, int hi)
{
    float v = next_scale(lo, hi) * (next_u32() & 1 ? -1.0f : 1.0f);
    uint16_t h = quant_f32_to_f16(v);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

/* Fills rows of type t at random: random quants, random finite scales. */
static void fill_rows(ggml_type t, uint8_t *w, size_t rows, size_t row_bytes, size_t n)
{
    for (size_t r = 0; r < rows; r++) {
        uint8_t *row = w + r * row_bytes;
        for (size_t i = 0; i < row_bytes; i++)
            row[i] = (uint8_t)next_u32();
        switch (t) {
        case GGML_TYPE_F32:
            for (size_t i = 0; i < n; i++) {
                float v = next_unit() * next_scale(-8, 4);
                memcpy(row + 4 * i, &v, 4);
            }
            break;
        case GGML_TYPE_F16:
        case GGML_TYPE_BF16:
            for (size_t i = 0; i < n; i++) {
                float v = next_unit() * next_scale(-8, 4);
                uint16_t h =
                    t == GGML_TYPE_F16 ? quant_f32_to_f16(v) : quant_f32_to_bf16(v);
                row[2 * i] = (uint8_t)h;
                row[2 * i + 1] = (uint8_t)(h >> 8);
            }
            break;
        case GGML_TYPE_Q8_0:
            for (size_t b = 0; b < n / 32; b++)
                put_scale(row + 34 * b, -12, -2);
            break;
        case GGML_TYPE_Q4_0:
            for (size_t b = 0; b < n / 32; b++)
                put_scale(row + 18 * b, -12, -2);
            break;
        case GGML_TYPE_Q4_K:
            for (size_t b = 0; b < n / 256; b++) {
                put_scale(row + 144 * b, -14, -4);
                put_scale(row + 144 * b + 2, -14, -4);
            }
            break;
        case GGML_TYPE_Q6_K:
            for (size_t b = 0; b < n / 256; b++)
                put_scale(row + 210 * b + 208, -14, -6);
            break;
        default:
            break;
        }
    }
}

/* Activations of n values, blocks at random scales, quantized into the
 * format of t at act (act_bytes apart); the float values in xf. */
static void make_acts(ggml_type t, size_t n, size_t n_acts, uint8_t *act,
                      size_t act_bytes, float *xf)
{
    for (size_t j = 0; j < n_acts; j++) {
        float *x = xf + j * n;
        for (size_t i = 0; i < n; i += 32) {
            float scale = next_scale(-6, 6);
            for (size_t k = i; k < i + 32 && k < n; k++)
                x[k] = next_unit() * scale;
        }
        kernels_scalar.quantize_act(t, x, act + j * act_bytes, n);
    }
}

/* The activation as the reference sees it: dequantized to floats. */
static void dequantize_act(ggml_type t, const uint8_t *a, const float *x, float *out,
                           size_t n)
{
    switch (kernels_act_type(t)) {
    case GGML_TYPE_Q8_0:
        quant_dequantize_row(GGML_TYPE_Q8_0, a, out, n);
        break;
    case GGML_TYPE_Q8_K:
        for (size_t i = 0; i < n; i++) {
            const uint8_t *b = a + i / 256 * 292;
            out[i] = krn_load_f32(b) * (float)(int8_t)b[4 + i % 256];
        }
        break;
    default:
        memcpy(out, x, n * sizeof(float));
        break;
    }
}

/* Sum of |terms| of row . act before any cancellation: for Q4_K the parts
 * d*sc*q and dmin*m apart (dequantizing a copy with dmin, then d, zeroed). */
static double magnitude(ggml_type t, const uint8_t *row, const float *a, size_t n)
{
    float *w = xmalloc(n * sizeof(float));
    double m = 0;
    if (t == GGML_TYPE_Q4_K) {
        uint8_t *copy = xmalloc(n / 256 * 144);
        for (int part = 0; part < 2; part++) {
            memcpy(copy, row, n / 256 * 144);
            for (size_t b = 0; b < n / 256; b++)
                memset(copy + 144 * b + (part == 0 ? 2 : 0), 0, 2);
            quant_dequantize_row(t, copy, w, n);
            for (size_t i = 0; i < n; i++)
                m += fabs((double)w[i] * a[i]);
        }
        free(copy);
    } else {
        quant_dequantize_row(t, row, w, n);
        for (size_t i = 0; i < n; i++)
            m += fabs((double)w[i] * a[i]);
    }
    free(w);
    return m;
}

static bool is_quantized(ggml_type t)
{
    return kernels_act_type(t) != GGML_TYPE_F32;
}

static double gamma_k(double k)
{
    double u = ldexp(1.0, -24);
    return k * u / (1 - k * u);
}

/* One matmul case: rows of t, n values, a sub-range [r0, r1) of `rows`
 * rows, n_acts activations; padding between rows, activations and outputs. */
static void check_matmul(ggml_type t, size_t n, size_t rows, size_t r0, size_t r1,
                         size_t n_acts)
{
    size_t row_bytes = quant_row_bytes(t, n) + next_u32() % 3 * 7;
    /* Float activations are floats, so 4-byte steps; quantized ones may
     * lie at any byte. */
    size_t act_bytes =
        kernels_act_row_bytes(t, n) + next_u32() % 3 * (is_quantized(t) ? 5 : 4);
    size_t ldy = rows + next_u32() % 4;
    uint8_t *w = xmalloc(rows * row_bytes);
    uint8_t *acts = xmalloc(n_acts * act_bytes);
    float *xf = xmalloc(n_acts * n * sizeof(float));
    float *af = xmalloc(n * sizeof(float));
    float *want = xmalloc(n_acts * ldy * sizeof(float));
    float *got = xmalloc(n_acts * ldy * sizeof(float));
    fill_rows(t, w, rows, row_bytes, n);
    make_acts(t, n, n_acts, acts, act_bytes, xf);

    const float canary = -7777.5f;
    for (size_t i = 0; i < n_acts * ldy; i++)
        want[i] = canary;
    kernels_scalar.matmul(t, w, row_bytes, n, r0, r1, acts, act_bytes, n_acts, want, ldy);

    /* The scalar path against the reference, and what it left alone. */
    size_t blocks = n / (t == GGML_TYPE_Q4_K || t == GGML_TYPE_Q6_K ? 256 : 32);
    for (size_t j = 0; j < n_acts; j++) {
        dequantize_act(t, acts + j * act_bytes, xf + j * n, af, n);
        for (size_t r = 0; r < rows; r++) {
            float y = want[j * ldy + r];
            if (r < r0 || r >= r1) {
                CHECK(y == canary, "%s row %zu outside [%zu, %zu) was written",
                      type_name(t), r, r0, r1);
                continue;
            }
            float ref;
            quant_dot_row(t, w + r * row_bytes, af, n, &ref);
            double m = magnitude(t, w + r * row_bytes, af, n);
            double tol = is_quantized(t) ? (double)(blocks + 8) * ldexp(2.0, -24) * m
                                         : gamma_k((double)n / 8 + 16) * m;
            CHECK(
                fabs((double)y - ref) <= tol,
                "scalar %s n %zu row %zu act %zu: %.9g, reference %.9g (tolerance %.3g)",
                type_name(t), n, r, j, (double)y, (double)ref, tol);
        }
        for (size_t r = rows; r < ldy; r++)
            CHECK(want[j * ldy + r] == canary, "%s padding of y written", type_name(t));
    }

    for (size_t p = 0; p < n_paths; p++) {
        for (size_t i = 0; i < n_acts * ldy; i++)
            got[i] = canary;
        paths[p]->matmul(t, w, row_bytes, n, r0, r1, acts, act_bytes, n_acts, got, ldy);
        if (is_quantized(t)) {
            CHECK(memcmp(want, got, n_acts * ldy * sizeof(float)) == 0,
                  "%s %s n %zu rows [%zu, %zu) of %zu, %zu acts differ from scalar",
                  paths[p]->name, type_name(t), n, r0, r1, rows, n_acts);
            continue;
        }
        for (size_t j = 0; j < n_acts; j++)
            for (size_t r = 0; r < ldy; r++) {
                float y = got[j * ldy + r];
                if (r < r0 || r >= r1) {
                    CHECK(y == canary, "%s %s: y[%zu][%zu] written", paths[p]->name,
                          type_name(t), j, r);
                    continue;
                }
                float ref;
                quant_dot_row(t, w + r * row_bytes, xf + j * n, n, &ref);
                double m = magnitude(t, w + r * row_bytes, xf + j * n, n);
                double tol = gamma_k((double)n / 8 + 16) * m;
                CHECK(fabs((double)y - ref) <= tol,
                      "%s %s n %zu row %zu act %zu: %.9g, reference %.9g", paths[p]->name,
                      type_name(t), n, r, j, (double)y, (double)ref);
            }
    }
    free(w);
    free(acts);
    free(xf);
    free(af);
    free(want);
    free(got);
}

static const ggml_type weight_types[] = {GGML_TYPE_F32,  GGML_TYPE_F16,  GGML_TYPE_BF16,
                                         GGML_TYPE_Q8_0, GGML_TYPE_Q4_0, GGML_TYPE_Q4_K,
                                         GGML_TYPE_Q6_K};

static void test_matmul_every_type(void)
{
    for (size_t ti = 0; ti < sizeof weight_types / sizeof weight_types[0]; ti++) {
        ggml_type t = weight_types[ti];
        size_t block = t == GGML_TYPE_Q4_K || t == GGML_TYPE_Q6_K ? 256
                       : is_quantized(t)                          ? 32
                                                                  : 1;
        for (size_t n_acts = 1; n_acts <= 17; n_acts++) {
            size_t blocks = 1 + next_u32() % (block == 256 ? 5 : 12);
            size_t n = block * blocks;
            if (block == 1)
                n = 1 + next_u32() % 300;
            size_t rows = 1 + next_u32() % 23;
            size_t r0 = next_u32() % rows;
            size_t r1 = r0 + 1 + next_u32() % (rows - r0);
            if (n_acts % 4 == 0) { /* the whole matrix */
                r0 = 0;
                r1 = rows;
            }
            check_matmul(t, n, rows, r0, r1, n_acts);
        }
    }
}

/* Sizes of real layers: long rows, many blocks. */
static void test_matmul_long_rows(void)
{
    for (size_t ti = 0; ti < sizeof weight_types / sizeof weight_types[0]; ti++) {
        check_matmul(weight_types[ti], 2048, 9, 0, 9, 1);
        check_matmul(weight_types[ti], 4096, 6, 1, 6, 3);
        /* Past the 1024 blocks a row-by-row kernel prepares for. */
        check_matmul(weight_types[ti], 33024, 3, 0, 3, 2);
    }
}

/* F16 rows of the KV cache ------------------------------------------------ */

static void test_f32_to_f16(void)
{
    /* Every half's float value, each halfway point between neighbours (ties
     * to even), and random floats across the whole exponent range. */
    size_t n = 65536 * 2 + 20000;
    float *x = xmalloc(n * sizeof(float));
    uint16_t *want = xmalloc(n * sizeof(uint16_t)), *got = xmalloc(n * sizeof(uint16_t));
    for (uint32_t h = 0; h < 65536; h++) {
        x[h] = quant_f16_to_f32((uint16_t)h);
        float next = quant_f16_to_f32((uint16_t)(h + 1));
        x[65536 + h] = isfinite(x[h]) && isfinite(next) ? (x[h] + next) / 2 : x[h];
    }
    for (size_t i = 2 * 65536; i < n; i++) {
        uint32_t u = next_u32() << 16 | next_u32();
        memcpy(&x[i], &u, 4);
    }
    for (size_t i = 0; i < n; i++)
        want[i] = quant_f32_to_f16(x[i]);
    kernels_scalar.f32_to_f16(x, got, n);
    CHECK(memcmp(want, got, n * 2) == 0,
          "scalar f32_to_f16 differs from quant_f32_to_f16");
    for (size_t p = 0; p < n_paths; p++) {
        memset(got, 0, n * 2);
        paths[p]->f32_to_f16(x, got, n);
        for (size_t i = 0; i < n; i++)
            CHECK(got[i] == want[i], "%s f32_to_f16(%a) = %04x, want %04x",
                  paths[p]->name, (double)x[i], got[i], want[i]);
        /* Short and unaligned rows: every tail length. */
        for (size_t len = 0; len < 40; len++) {
            memset(got, 0, 64 * 2);
            paths[p]->f32_to_f16(x + 1 + len, got + 1, len);
            CHECK(memcmp(got + 1, want + 1 + len, len * 2) == 0 && got[1 + len] == 0,
                  "%s f32_to_f16 of %zu values", paths[p]->name, len);
        }
    }
    free(x);
    free(want);
    free(got);
}

static void test_dot_and_axpy_f16(void)
{
    const kernels *all[5] = {&kernels_scalar};
    memcpy(all + 1, paths, n_paths * sizeof paths[0]);
    for (int round = 0; round < 300; round++) {
        size_t n = 1 + next_u32() % 300;
        size_t off = next_u32() % 4; /* unaligned starts */
        size_t len = n + 4;
        float *q = xmalloc(len * sizeof(float)), *y0 = xmalloc(len * sizeof(float));
        float *want = xmalloc(len * sizeof(float)), *got = xmalloc(len * sizeof(float));
        uint16_t *k = xmalloc(len * sizeof(uint16_t));
        for (size_t i = 0; i < len; i++) {
            q[i] = next_unit() * next_scale(-6, 6);
            k[i] = quant_f32_to_f16(next_unit() * next_scale(-6, 4));
            y0[i] = next_unit() * next_scale(-4, 4);
        }
        double m = 0, exact = 0;
        for (size_t i = off; i < off + n; i++) {
            double v = (double)q[i] * quant_f16_to_f32(k[i]);
            exact += v;
            m += fabs(v);
        }
        float a = next_unit() * next_scale(-3, 3);
        memcpy(want, y0, len * sizeof(float));
        kernels_scalar.axpy_f16(a, k + off, want + off, n);
        for (size_t p = 0; p <= n_paths; p++) {
            float d = all[p]->dot_f16(q + off, k + off, n);
            CHECK(fabs((double)d - exact) <= gamma_k((double)n / 8 + 16) * m,
                  "%s dot_f16 n %zu: %.9g, exact %.9g", all[p]->name, n, (double)d,
                  exact);
            memcpy(got, y0, len * sizeof(float));
            all[p]->axpy_f16(a, k + off, got + off, n);
            CHECK(memcmp(want, got, len * sizeof(float)) == 0,
                  "%s axpy_f16 n %zu differs from scalar", all[p]->name, n);
        }
        for (size_t i = off; i < off + n; i++) /* the scalar one, by definition */
            CHECK(want[i] == y0[i] + a * quant_f16_to_f32(k[i]), "scalar axpy_f16[%zu]",
                  i);
        free(q);
        free(y0);
        free(want);
        free(got);
        free(k);
    }
}

/* MLX_KERNELS ------------------------------------------------------------ */

static int warnings_seen;

static void count_warnings(void *arg, mlx_log_level level, const char *line)
{
    (void)arg;
    (void)line;
    if (level == MLX_LOG_WARN)
        warnings_seen++;
}

/* In a child (kernels_get chooses once per process): the path kernels_get
 * picks under MLX_KERNELS=name, and 8 added when it warned. */
static int child_choice(const char *name)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        mlx_log_set_sink(count_warnings, NULL);
        if (name != NULL)
            setenv("MLX_KERNELS", name, 1);
        else
            unsetenv("MLX_KERNELS");
        const kernels *k = kernels_get();
        _exit((int)k->path + (warnings_seen > 0 ? 8 : 0));
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

static void test_mlx_kernels_forcing(void)
{
    const kernels *best = kernels_for(KERNEL_AVX512);
    if (best == NULL)
        best = kernels_for(KERNEL_AVX2);
    if (best == NULL)
        best = kernels_for(KERNEL_NEON);
    if (best == NULL)
        best = &kernels_scalar;
    CHECK(child_choice(NULL) == (int)best->path, "no MLX_KERNELS: the best path, %s",
          best->name);
    CHECK(child_choice("") == (int)best->path, "empty MLX_KERNELS: the best path");
    static const struct {
        const char *name;
        kernel_path path;
    } names[] = {{"scalar", KERNEL_SCALAR},
                 {"avx2", KERNEL_AVX2},
                 {"avx512", KERNEL_AVX512},
                 {"neon", KERNEL_NEON}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const kernels *k = kernels_for(names[i].path);
        int want = k != NULL ? (int)names[i].path : (int)best->path + 8;
        int got = child_choice(names[i].name);
        CHECK(got == want, "MLX_KERNELS=%s: child says %d, want %d", names[i].name, got,
              want);
        if (k != NULL)
            CHECK(strcmp(k->name, names[i].name) == 0 && k->path == names[i].path,
                  "the %s table's name and path", names[i].name);
    }
    CHECK(child_choice("sse9") == (int)best->path + 8, "an unknown name warns, uses %s",
          best->name);
}

/* main ------------------------------------------------------------------- */

static const struct {
    const char *name;
    void (*fn)(void);
} tests[] = {
    {"act_formats", test_act_formats},
    {"mlx_kernels_forcing", test_mlx_kernels_forcing},
    {"quantize_q8_0_by_hand", test_quantize_q8_0_by_hand},
    {"quantize_q8_k_by_hand", test_quantize_q8_k_by_hand},
    {"quantize_random_rows", test_quantize_random_rows},
    {"matmul_every_type", test_matmul_every_type},
    {"matmul_long_rows", test_matmul_long_rows},
    {"f32_to_f16", test_f32_to_f16},
    {"dot_and_axpy_f16", test_dot_and_axpy_f16},
};

int main(int argc, char **argv)
{
    int expect_dotprod = -1;
    const char *expect_best = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--expect-dotprod=yes") == 0)
            expect_dotprod = 1;
        else if (strcmp(argv[i], "--expect-dotprod=no") == 0)
            expect_dotprod = 0;
        else if (strncmp(argv[i], "--expect-best=", 14) == 0)
            expect_best = argv[i] + 14;
        else {
            fprintf(stderr, "usage: test_kernels [--expect-dotprod=yes|no] "
                            "[--expect-best=scalar|avx2|avx512|neon]\n");
            return 2;
        }
    }
    /* The forcing test forks before anything here calls kernels_get. */
    static const kernel_path others[] = {KERNEL_AVX2, KERNEL_AVX512, KERNEL_NEON};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
        if (kernels_for(others[i]) != NULL)
            paths[n_paths++] = kernels_for(others[i]);
    printf("paths: scalar");
    for (size_t p = 0; p < n_paths; p++)
        printf(" %s%s", paths[p]->name,
               paths[p]->path == KERNEL_NEON && kernels_cpu_has_dotprod() ? " (dotprod)"
                                                                          : "");
    printf("\n");

    int passed = 0, failed = 0;
    if (expect_dotprod >= 0) {
        bool has = kernels_cpu_has_dotprod();
        bool neon = kernels_for(KERNEL_NEON) != NULL;
#if defined(__aarch64__)
        bool ok = neon && has == (expect_dotprod == 1) &&
                  kernels_for(KERNEL_NEON) == (has ? &kernels_neon_dot : &kernels_neon);
#else
        bool ok = false; /* the dot-product extension is arm64's */
        (void)neon;
        (void)has;
#endif
        printf("%s neon_dotprod_expected\n", ok ? "PASS" : "FAIL");
        ok ? passed++ : failed++;
    }
    if (expect_best != NULL) { /* what the emulated CPU should get */
        bool ok = strcmp(kernels_select(NULL)->name, expect_best) == 0;
        printf("%s best_path_is_%s\n", ok ? "PASS" : "FAIL", expect_best);
        ok ? passed++ : failed++;
    }
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        test_failures = 0;
        tests[i].fn();
        printf("%s %s\n", test_failures == 0 ? "PASS" : "FAIL", tests[i].name);
        if (test_failures == 0)
            passed++;
        else
            failed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
