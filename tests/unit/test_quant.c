/*
 * test_quant.c — agent/engine block formats: half and bfloat16 conversions
 * (all 65,536 halves, rounding at every boundary, against the compiler's
 * _Float16 where it has one), quantize → dequantize error bounds per type
 * on random rows, Q8_0/Q4_0/Q4_K/Q6_K dequantization of blocks built by
 * hand from the format's definition (an encoder written here, the inverse
 * of what quant.c and quant_k.c decode), and each type's dot product
 * against dequantize-then-multiply. The shared models are used in
 * test_quant_files.c.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/engine/quant.h"

static uint64_t rng = 0x1234567;

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

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void test_f16_every_half_round_trips(void **state)
{
    for (uint32_t h = 0; h < 65536; h++) {
        float f = quant_f16_to_f32((uint16_t)h);
        bool nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0;
        if (nan) {
            assert_true(isnan(f));
            assert_true(isnan(quant_f16_to_f32(quant_f32_to_f16(f))));
            continue;
        }
        assert_int_equal(quant_f32_to_f16(f), h);
#ifdef __FLT16_MAX__
        _Float16 ref;
        uint16_t hb = (uint16_t)h;
        memcpy(&ref, &hb, 2);
        assert_true(bits((float)ref) == bits(f));
#endif
    }
    assert_true(quant_f16_to_f32(0x3c00) == 1.0f);
    assert_true(quant_f16_to_f32(0xc000) == -2.0f);
    assert_true(quant_f16_to_f32(0x7bff) == 65504.0f);
    assert_true(quant_f16_to_f32(0x0001) == ldexpf(1, -24));
    assert_true(quant_f16_to_f32(0x0400) == ldexpf(1, -14));
    assert_true(isinf(quant_f16_to_f32(0xfc00)) && quant_f16_to_f32(0xfc00) < 0);
}

static void test_f16_rounds_to_nearest_even(void **state)
{
    /* 1 + 2^-11 lies halfway between 1 and the next half: ties to even. */
    assert_int_equal(quant_f32_to_f16(1.0f + ldexpf(1, -11)), 0x3c00);
    assert_int_equal(quant_f32_to_f16(1.0f + 3 * ldexpf(1, -11)), 0x3c02);
    assert_int_equal(quant_f32_to_f16(nextafterf(1.0f + ldexpf(1, -11), 2)), 0x3c01);
    assert_int_equal(quant_f32_to_f16(65504.0f), 0x7bff);
    assert_int_equal(quant_f32_to_f16(65519.99f), 0x7bff);
    assert_int_equal(quant_f32_to_f16(65520.0f), 0x7c00); /* ties away to infinity */
    assert_int_equal(quant_f32_to_f16(-1e10f), 0xfc00);
    assert_int_equal(quant_f32_to_f16(INFINITY), 0x7c00);
    assert_true((quant_f32_to_f16(NAN) & 0x7fff) > 0x7c00);
    /* Subnormal halves: 2^-25 is a tie between 0 and 2^-24 and goes to 0. */
    assert_int_equal(quant_f32_to_f16(ldexpf(1, -25)), 0x0000);
    assert_int_equal(quant_f32_to_f16(nextafterf(ldexpf(1, -25), 1)), 0x0001);
    assert_int_equal(quant_f32_to_f16(3 * ldexpf(1, -25)), 0x0002); /* 1.5 → 2 */
    assert_int_equal(quant_f32_to_f16(-ldexpf(1, -24)), 0x8001);
    assert_int_equal(quant_f32_to_f16(ldexpf(1, -14) - ldexpf(1, -25)), 0x0400);
    assert_int_equal(quant_f32_to_f16(-0.0f), 0x8000);
    assert_int_equal(quant_f32_to_f16(1e-30f), 0x0000);
#ifdef __FLT16_MAX__
    for (int i = 0; i < 2000000; i++) {
        /* Random bit patterns cover every exponent, subnormals included. */
        float f = from_bits(next_u32() ^ (next_u32() << 16));
        if (isnan(f))
            continue;
        _Float16 ref = (_Float16)f;
        uint16_t want;
        memcpy(&want, &ref, 2);
        if (quant_f32_to_f16(f) != want)
            fail_msg("%a: %04x, want %04x", (double)f, quant_f32_to_f16(f), want);
    }
#endif
}

static void test_bf16_conversions(void **state)
{
    for (uint32_t b = 0; b < 65536; b++) {
        float f = quant_bf16_to_f32((uint16_t)b);
        assert_int_equal(bits(f), b << 16);
        if (!isnan(f))
            assert_int_equal(quant_f32_to_bf16(f), b);
    }
    /* Ties to even on the 16 dropped bits. */
    assert_int_equal(quant_f32_to_bf16(from_bits(0x3f808000)), 0x3f80);
    assert_int_equal(quant_f32_to_bf16(from_bits(0x3f818000)), 0x3f82);
    assert_int_equal(quant_f32_to_bf16(from_bits(0x3f808001)), 0x3f81);
    assert_int_equal(quant_f32_to_bf16(from_bits(0x7f7fffff)), 0x7f80);
    uint16_t nan = quant_f32_to_bf16(from_bits(0x7f800001)); /* payload only below */
    assert_true((nan & 0x7f80) == 0x7f80 && (nan & 0x7f) != 0);
}

/* Quantizes a random row at several scales and checks each element's error
 * against the bound its format allows. */
static void check_round_trip(ggml_type t, double rel_bound, double abs_bound)
{
    enum { N = 1024 };
    float x[N], y[N];
    uint8_t q[4 * N];
    const float scales[] = {1e-3f, 1.0f, 300.0f};
    for (size_t s = 0; s < 3; s++) {
        for (int i = 0; i < N; i++)
            x[i] = next_unit() * scales[s];
        for (int i = 64; i < 96; i++)
            x[i] = 0;        /* an all-zero block */
        x[200] = scales[s];  /* a block whose extreme is exactly the scale */
        x[300] = -scales[s]; /* and one whose extreme is negative */
        assert_int_equal(quant_quantize_row(t, x, q, N), 0);
        assert_int_equal(quant_dequantize_row(t, q, y, N), 0);
        for (int b = 0; b < N; b += 32) {
            float amax = 0;
            for (int i = b; i < b + 32; i++)
                amax = fmaxf(amax, fabsf(x[i]));
            for (int i = b; i < b + 32; i++) {
                /* F16 below 2^-14 is subnormal: steps of 2^-24. */
                double bound = t == GGML_TYPE_F32 ? 0
                               : t == GGML_TYPE_F16
                                   ? fabs(x[i]) * rel_bound + ldexp(1, -25)
                               : t == GGML_TYPE_BF16 ? fabs(x[i]) * rel_bound
                                                     : amax * rel_bound + abs_bound;
                if (fabs((double)y[i] - x[i]) > bound)
                    fail_msg("%s: element %d is %g, was %g (bound %g)", ggml_type_name(t),
                             i, (double)y[i], (double)x[i], bound);
            }
        }
    }
}

static void test_quantize_round_trip_error_bounds(void **state)
{
    check_round_trip(GGML_TYPE_F32, 0, 0);
    check_round_trip(GGML_TYPE_F16, ldexp(1, -11), 0); /* half an ulp of 11 bits */
    check_round_trip(GGML_TYPE_BF16, ldexp(1, -8), 0); /* half an ulp of 8 bits */
    /* Q8_0: half a step (amax / 254) plus the f16 rounding of d times the
     * largest q, 127: relative 2^-11, or absolute 2^-25 where d is a
     * subnormal half (amax below about 0.008). */
    check_round_trip(GGML_TYPE_Q8_0, 1.0 / 254 + ldexp(1, -11) * 1.01,
                     127 * ldexp(1, -25));
    /* Q4_0: d = amax / 8; half a step, or a whole one for the clamped +8
     * end, plus the f16 rounding of d times 8. */
    check_round_trip(GGML_TYPE_Q4_0, 1.0 / 8 + ldexp(1, -11) * 1.01, 8 * ldexp(1, -25));
}

static void test_quantize_refusals(void **state)
{
    float x[64] = {0};
    uint8_t q[256];
    float y[64];
    assert_int_equal(quant_quantize_row(GGML_TYPE_Q8_0, x, q, 48), MLX_EINVAL);
    assert_int_equal(quant_quantize_row(GGML_TYPE_Q4_K, x, q, 256), MLX_EINVAL);
    assert_int_equal(quant_quantize_row(GGML_TYPE_Q5_K, x, q, 256), MLX_EINVAL);
    assert_int_equal(quant_dequantize_row(GGML_TYPE_Q6_K, q, y, 64), MLX_EINVAL);
    assert_int_equal(quant_dequantize_row(GGML_TYPE_IQ2_XS, q, y, 256), MLX_EINVAL);
    float out = 0;
    assert_int_equal(quant_dot_row((ggml_type)99, q, x, 32, &out), MLX_EINVAL);
    mlx_err err;
    assert_int_equal(quant_check_row(GGML_TYPE_Q3_K, 256, false, &err), MLX_EINVAL);
    assert_non_null(strstr(err.msg, "Q3_K"));
    assert_int_equal(quant_check_row(GGML_TYPE_Q4_K, 256, true, &err), MLX_EINVAL);
    assert_int_equal(quant_check_row(GGML_TYPE_Q4_K, 255, false, &err), MLX_EINVAL);
    assert_non_null(strstr(err.msg, "255"));
    assert_int_equal(quant_check_row(GGML_TYPE_Q4_K, 512, false, &err), 0);
    assert_int_equal(quant_check_row(GGML_TYPE_Q4_0, 64, true, &err), 0);
    assert_true(ggml_type_supported(GGML_TYPE_BF16));
    assert_false(ggml_type_supported(GGML_TYPE_Q5_K));
    assert_int_equal(quant_row_bytes(GGML_TYPE_Q6_K, 512), 420);
    assert_int_equal(quant_row_bytes(GGML_TYPE_Q4_0, 33), 0);
    assert_int_equal(quant_row_bytes(GGML_TYPE_F16, 3), 6);
    /* Input that is not finite still gives a defined block. */
    x[3] = NAN;
    x[4] = INFINITY;
    assert_int_equal(quant_quantize_row(GGML_TYPE_Q8_0, x, q, 64), 0);
    assert_int_equal(quant_quantize_row(GGML_TYPE_Q4_0, x, q, 64), 0);
}

static void put_f16(uint8_t *p, float f)
{
    uint16_t h = quant_f32_to_f16(f);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

static void test_q8_0_and_q4_0_hand_built_blocks(void **state)
{
    uint8_t b[34];
    float y[32];
    put_f16(b, 0.5f);
    for (int i = 0; i < 32; i++)
        b[2 + i] = (uint8_t)(int8_t)(i * 8 - 128);
    assert_int_equal(quant_dequantize_row(GGML_TYPE_Q8_0, b, y, 32), 0);
    for (int i = 0; i < 32; i++)
        assert_true(y[i] == 0.5f * (float)(i * 8 - 128));

    /* Q4_0: byte j holds element j low, element j + 16 high. */
    uint8_t c[18];
    put_f16(c, -0.25f);
    for (int j = 0; j < 16; j++)
        c[2 + j] = (uint8_t)(j | (15 - j) << 4);
    assert_int_equal(quant_dequantize_row(GGML_TYPE_Q4_0, c, y, 32), 0);
    for (int j = 0; j < 16; j++) {
        assert_true(y[j] == -0.25f * (float)(j - 8));
        assert_true(y[j + 16] == -0.25f * (float)(15 - j - 8));
    }
    /* ggml's Q4_0 quantizer maps the extreme to q = 0: d = max / -8. */
    float x[32] = {0};
    x[5] = 4.0f;
    x[20] = -1.0f;
    assert_int_equal(quant_quantize_row(GGML_TYPE_Q4_0, x, c, 32), 0);
    assert_int_equal(c[0] | c[1] << 8, quant_f32_to_f16(-0.5f));
    assert_int_equal(c[2 + 5] & 15, 0);  /* 4 / -0.5 + 8 = 0 */
    assert_int_equal(c[2 + 4] >> 4, 10); /* -1 / -0.5 + 8 = 10, element 20 */
    assert_int_equal(c[2 + 0] & 15, 8);  /* zero */
}

/*
 * Q4_K encoder, written from the format's definition: d and dmin as f16,
 * 6-bit sc[8] and m[8] packed into 12 bytes — bytes 0-3 hold sc[0..3] in
 * their low 6 bits, bytes 4-7 m[0..3]; bytes 8-11 hold sc[4..7] in the low
 * nibble and m[4..7] in the high nibble, whose top 2 bits go to the top
 * bits of bytes 0-3 (sc) and 4-7 (m). Quants: 4 groups of 32 bytes, group g
 * holding sub-block 2g in the low nibbles, 2g + 1 in the high ones.
 */
static void encode_q4_k(uint8_t *b, float d, float dmin, const int *sc, const int *m,
                        const int *q)
{
    put_f16(b, d);
    put_f16(b + 2, dmin);
    uint8_t *s = b + 4;
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)(sc[j] | (sc[j + 4] >> 4) << 6);
        s[j + 4] = (uint8_t)(m[j] | (m[j + 4] >> 4) << 6);
        s[j + 8] = (uint8_t)((sc[j + 4] & 15) | (m[j + 4] & 15) << 4);
    }
    for (int e = 0; e < 256; e++) {
        int sub = e / 32, g = sub / 2, l = e % 32;
        uint8_t *p = b + 16 + 32 * g + l;
        if (sub % 2 == 0)
            *p = (uint8_t)((*p & 0xf0) | q[e]);
        else
            *p = (uint8_t)((*p & 0x0f) | q[e] << 4);
    }
}

static void test_q4_k_hand_built_block(void **state)
{
    int sc[8] = {1, 63, 17, 40, 2, 33, 63, 48};
    int m[8] = {0, 5, 63, 21, 60, 1, 34, 16};
    int q[512];
    for (int e = 0; e < 512; e++)
        q[e] = (int)(next_u32() % 16);
    uint8_t b[2 * 144] = {0};
    encode_q4_k(b, 0.125f, 0.0625f, sc, m, q);
    int sc2[8], m2[8];
    for (int j = 0; j < 8; j++) {
        sc2[j] = m[j];
        m2[j] = sc[j];
    }
    encode_q4_k(b + 144, -3.0f, 0.5f, sc2, m2, q + 256);
    float y[512], x[512];
    assert_int_equal(quant_dequantize_row(GGML_TYPE_Q4_K, b, y, 512), 0);
    double dot = 0;
    for (int e = 0; e < 512; e++) {
        int j = e % 256 / 32;
        float want = e < 256 ? 0.125f * (float)sc[j] * (float)q[e] - 0.0625f * (float)m[j]
                             : -3.0f * (float)sc2[j] * (float)q[e] - 0.5f * (float)m2[j];
        if (fabsf(y[e] - want) > 1e-4f * (1 + fabsf(want)))
            fail_msg("element %d: %g, want %g", e, (double)y[e], (double)want);
        x[e] = next_unit();
        dot += (double)want * x[e];
    }
    float got = 0;
    assert_int_equal(quant_dot_row(GGML_TYPE_Q4_K, b, x, 512, &got), 0);
    assert_true(fabs(got - dot) <= 1e-5 * (1 + fabs(dot)));
}

/*
 * Q6_K encoder from the definition: element e of a 256 block is
 * q[e] - 32 (q 6-bit) scaled by d * sc[e / 16]. Within each half h of 128,
 * element 128h + 32k + l (k = 0..3, l = 0..31) keeps its low 4 bits in
 * ql[64h + l + 32 (k & 1)], low nibble for k < 2, high for k >= 2, and its
 * top 2 bits in qh[32h + l] at bit 2k.
 */
static void encode_q6_k(uint8_t *b, float d, const int8_t *sc, const int *q)
{
    memset(b, 0, 210);
    for (int e = 0; e < 256; e++) {
        int h = e / 128, k = e % 128 / 32, l = e % 32;
        uint8_t *ql = b + 64 * h + l + 32 * (k & 1);
        uint8_t *qh = b + 128 + 32 * h + l;
        if (k < 2)
            *ql |= (uint8_t)(q[e] & 15);
        else
            *ql |= (uint8_t)((q[e] & 15) << 4);
        *qh |= (uint8_t)((q[e] >> 4) << (2 * k));
    }
    memcpy(b + 192, sc, 16);
    put_f16(b + 208, d);
}

static void test_q6_k_hand_built_block(void **state)
{
    int8_t sc[16];
    int q[256];
    for (int i = 0; i < 16; i++)
        sc[i] = (int8_t)(i * 17 - 128); /* -128 … 127 */
    for (int e = 0; e < 256; e++)
        q[e] = (int)(next_u32() % 64);
    q[0] = 0;
    q[255] = 63;
    uint8_t b[210];
    encode_q6_k(b, 0.01f, sc, q);
    float y[256], x[256];
    assert_int_equal(quant_dequantize_row(GGML_TYPE_Q6_K, b, y, 256), 0);
    double dot = 0;
    float d = quant_f16_to_f32(quant_f32_to_f16(0.01f));
    for (int e = 0; e < 256; e++) {
        float want = d * (float)sc[e / 16] * (float)(q[e] - 32);
        if (fabsf(y[e] - want) > 1e-6f * (1 + fabsf(want)))
            fail_msg("element %d: %g, want %g", e, (double)y[e], (double)want);
        x[e] = next_unit();
        dot += (double)want * x[e];
    }
    float got = 0;
    assert_int_equal(quant_dot_row(GGML_TYPE_Q6_K, b, x, 256, &got), 0);
    assert_true(fabs(got - dot) <= 1e-5 * (1 + fabs(dot)));
}

/* For every supported type, on random bytes with sane scales: dot equals
 * dequantize followed by a double-precision dot. */
static void test_dot_matches_dequantize(void **state)
{
    const ggml_type types[] = {GGML_TYPE_F32,  GGML_TYPE_F16,  GGML_TYPE_BF16,
                               GGML_TYPE_Q8_0, GGML_TYPE_Q4_0, GGML_TYPE_Q4_K,
                               GGML_TYPE_Q6_K};
    enum { N = 2048 };
    static float x[N], y[N], w[N];
    static uint8_t row[4 * N];
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        const quant_ops *ops = quant_ops_get(types[k]);
        assert_non_null(ops);
        assert_int_equal(ops->type, types[k]);
        size_t bytes = quant_row_bytes(types[k], N);
        for (int i = 0; i < N; i++) {
            w[i] = next_unit();
            x[i] = next_unit();
        }
        if (ops->quantize != NULL) {
            ops->quantize(w, row, N);
        } else {
            for (size_t i = 0; i < bytes; i++)
                row[i] = (uint8_t)next_u32();
            /* Keep the f16 scales finite and modest. */
            for (size_t b = 0; b < bytes; b += ops->block_bytes) {
                size_t at = types[k] == GGML_TYPE_Q6_K ? 208 : 0;
                put_f16(row + b + at, next_unit());
                if (types[k] == GGML_TYPE_Q4_K)
                    put_f16(row + b + 2, next_unit());
            }
        }
        ops->dequantize(row, y, N);
        double want = 0;
        for (int i = 0; i < N; i++)
            want += (double)y[i] * x[i];
        float got = ops->dot(row, x, N);
        if (fabs(got - want) > 1e-5 * (1 + fabs(want)))
            fail_msg("%s: dot %g, want %g", ggml_type_name(types[k]), (double)got, want);
        float via = 0;
        assert_int_equal(quant_dot_row(types[k], row, x, N, &via), 0);
        assert_true(via == got);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f16_every_half_round_trips),
        cmocka_unit_test(test_f16_rounds_to_nearest_even),
        cmocka_unit_test(test_bf16_conversions),
        cmocka_unit_test(test_quantize_round_trip_error_bounds),
        cmocka_unit_test(test_quantize_refusals),
        cmocka_unit_test(test_q8_0_and_q4_0_hand_built_blocks),
        cmocka_unit_test(test_q4_k_hand_built_block),
        cmocka_unit_test(test_q6_k_hand_built_block),
        cmocka_unit_test(test_dot_matches_dequantize),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
