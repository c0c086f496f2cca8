/*
 * kernels_avx2.c — the x86-64 path (AVX2, FMA, F16C): activation
 * quantizers, float matrix products, the F16 KV-cache helpers, and the
 * table; the quantized products are in kernels_avx2_q.c.
 *
 * The quantizers give the scalar path's bytes: the same float multiply per
 * value, then the same rounding, done exactly with vector instructions
 * (Q8_0 rounds halves away from zero, which no rounding mode does, so it
 * is truncation plus a correction where the dropped part is at least
 * one half; Q8_K rounds to nearest even, as VROUNDPS does when told to).
 * axpy_f16 multiplies and adds in two roundings, as the scalar path does,
 * so attention's output has the same bits on both; the float dot products
 * use FMA with several accumulators and differ by summation order only.
 *
 * Built with -mavx2 -mfma -mf16c (kernels.cmake), reached only through the
 * table that kernels.c hands out once CPUID says the CPU has them.
 */
#include <immintrin.h>
#include <math.h>

#include "agent/engine/kernels_int.h"
#include "agent/engine/quant.h"

static float hmax_ps(__m256 v)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

static float hsum_ps(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static __m256 abs_ps(__m256 v)
{
    return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v);
}

/* Largest |x| of 8k floats; NaN never wins (VMAXPS returns its second
 * operand when the first is NaN), as with fmaxf in the scalar path. */
static float amax_ps(const float *x, size_t n)
{
    __m256 m = _mm256_setzero_ps();
    for (size_t i = 0; i < n; i += 8)
        m = _mm256_max_ps(abs_ps(_mm256_loadu_ps(x + i)), m);
    return hmax_ps(m);
}

/* Four vectors of eight int32 in [-127, 127] as 32 bytes in order. */
static void store_i8x32(uint8_t *out, __m256i a, __m256i b, __m256i c, __m256i d)
{
    __m256i ab = _mm256_packs_epi32(a, b); /* per half: a0-3 b0-3 | a4-7 b4-7 */
    __m256i cd = _mm256_packs_epi32(c, d);
    __m256i abcd = _mm256_packs_epi16(ab, cd); /* a0-3 b0-3 c0-3 d0-3 | a4-7 ... */
    abcd = _mm256_permutevar8x32_epi32(abcd, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)out, abcd);
}

/* NaN to 0, then clamped to [-127, 127]; v holds whole numbers. */
static __m256i to_i32_clamped(__m256 v)
{
    v = _mm256_and_ps(v, _mm256_cmp_ps(v, v, _CMP_ORD_Q));
    v = _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(-127)), _mm256_set1_ps(127));
    return _mm256_cvtps_epi32(v);
}

/* roundf: the value truncated, plus one step away from zero where the
 * dropped part is half or more (v - trunc(v) is exact). */
static __m256 round_half_away(__m256 v)
{
    __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m256 frac = abs_ps(_mm256_sub_ps(v, t));
    __m256 up = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    __m256 step =
        _mm256_or_ps(_mm256_and_ps(v, _mm256_set1_ps(-0.0f)), _mm256_set1_ps(1));
    return _mm256_add_ps(t, _mm256_and_ps(up, step));
}

static void quantize_q8_0(const float *x, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i += KRN_QK, out += KRN_Q8_0_SIZE) {
        float d = amax_ps(x + i, KRN_QK) / 127;
        float id = d != 0 ? 1.0f / d : 0.0f;
        uint16_t h = quant_f32_to_f16(d);
        out[0] = (uint8_t)h;
        out[1] = (uint8_t)(h >> 8);
        __m256 vid = _mm256_set1_ps(id);
        __m256i q[4];
        for (int k = 0; k < 4; k++) {
            __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i + 8 * k), vid);
            q[k] = to_i32_clamped(round_half_away(v));
        }
        store_i8x32(out + 2, q[0], q[1], q[2], q[3]);
    }
}

static void quantize_q8_k(const float *x, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i += KRN_QK_K, out += KRN_Q8_K_SIZE, x += KRN_QK_K) {
        float amax = amax_ps(x, KRN_QK_K);
        if (!(amax > 0)) {
            memset(out, 0, KRN_Q8_K_SIZE);
            continue;
        }
        /* The first value of that magnitude gives the sign. */
        float max = 0;
        __m256 vmax = _mm256_set1_ps(amax);
        for (int j = 0; j < KRN_QK_K; j += 8) {
            __m256 eq = _mm256_cmp_ps(abs_ps(_mm256_loadu_ps(x + j)), vmax, _CMP_EQ_OQ);
            int mask = _mm256_movemask_ps(eq);
            if (mask != 0) {
                max = x[j + __builtin_ctz((unsigned)mask)];
                break;
            }
        }
        float s = -127.0f / max;
        __m256 vs = _mm256_set1_ps(s);
        int8_t *q = (int8_t *)(out + KRN_Q8_K_Q);
        for (int j = 0; j < KRN_QK_K; j += 32) {
            __m256i v[4];
            for (int k = 0; k < 4; k++)
                v[k] = to_i32_clamped(
                    _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + j + 8 * k), vs),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
            store_i8x32((uint8_t *)q + j, v[0], v[1], v[2], v[3]);
        }
        /* Group sums: widen sixteen bytes to int16 and add them up. */
        for (int g = 0; g < KRN_QK_K / 16; g++) {
            __m256i w =
                _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(q + 16 * g)));
            __m128i s8 =
                _mm_add_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
            s8 = _mm_hadd_epi16(s8, s8);
            s8 = _mm_hadd_epi16(s8, s8);
            s8 = _mm_hadd_epi16(s8, s8);
            int16_t sum = (int16_t)_mm_extract_epi16(s8, 0);
            out[KRN_Q8_K_SUMS + 2 * g] = (uint8_t)sum;
            out[KRN_Q8_K_SUMS + 2 * g + 1] = (uint8_t)((uint16_t)sum >> 8);
        }
        float d = 1 / s;
        memcpy(out, &d, 4);
    }
}

void kernels_avx2_quantize_act(ggml_type t, const float *x, void *out, size_t n)
{
    switch (kernels_act_type(t)) {
    case GGML_TYPE_F32:
        memcpy(out, x, n * sizeof(float));
        break;
    case GGML_TYPE_Q8_0:
        quantize_q8_0(x, out, n);
        break;
    case GGML_TYPE_Q8_K:
        quantize_q8_k(x, out, n);
        break;
    default:
        break;
    }
}

/* Float rows: eight weights at p as floats. */
static inline __m256 load8(ggml_type t, const uint8_t *p)
{
    switch (t) {
    case GGML_TYPE_F16:
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
    case GGML_TYPE_BF16: /* the upper half of a float */
        return _mm256_castsi256_ps(_mm256_slli_epi32(
            _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
    default:
        return _mm256_loadu_ps((const float *)(const void *)p);
    }
}

static inline float load1(ggml_type t, const uint8_t *p)
{
    switch (t) {
    case GGML_TYPE_F16:
        return _cvtsh_ss(krn_load_u16(p));
    case GGML_TYPE_BF16:
        return quant_bf16_to_f32(krn_load_u16(p));
    default:
        return krn_load_f32(p);
    }
}

/* One row times one float vector, the row streamed alone (as for the
 * quantized rows, this is what keeps up with memory): four accumulators of
 * eight lanes, then eights into the first, then the last values one by
 * one. */
static inline __attribute__((always_inline)) float
float_row(ggml_type t, size_t esize, const uint8_t *w, const float *x, size_t n)
{
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                     _mm256_setzero_ps()};
    size_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int k = 0; k < 4; k++)
            acc[k] = _mm256_fmadd_ps(load8(t, w + (i + 8 * k) * esize),
                                     _mm256_loadu_ps(x + i + 8 * k), acc[k]);
    for (; i + 8 <= n; i += 8)
        acc[0] = _mm256_fmadd_ps(load8(t, w + i * esize), _mm256_loadu_ps(x + i), acc[0]);
    float s = hsum_ps(
        _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    for (; i < n; i++)
        s += load1(t, w + i * esize) * x[i];
    return s;
}

/* Four rows times na float vectors (1 or 2): one accumulator of eight
 * lanes per row and vector, each weight widened once for both vectors. */
static inline __attribute__((always_inline)) void
float_rows4(ggml_type t, size_t esize, const uint8_t *const w[4], const float *const x[2],
            int na, size_t n, float out[2][4])
{
    __m256 acc[2][4];
    for (int j = 0; j < 2; j++)
        for (int r = 0; r < 4; r++)
            acc[j][r] = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 xv[2];
        for (int j = 0; j < na; j++)
            xv[j] = _mm256_loadu_ps(x[j] + i);
        for (int r = 0; r < 4; r++) {
            __m256 wv = load8(t, w[r] + i * esize);
            for (int j = 0; j < na; j++)
                acc[j][r] = _mm256_fmadd_ps(wv, xv[j], acc[j][r]);
        }
    }
    for (int j = 0; j < na; j++)
        for (int r = 0; r < 4; r++) {
            float s = hsum_ps(acc[j][r]);
            for (size_t k = i; k < n; k++)
                s += load1(t, w[r] + k * esize) * x[j][k];
            out[j][r] = s;
        }
}

static inline __attribute__((always_inline)) void
float_matmul(ggml_type t, const uint8_t *rows, size_t row_bytes, size_t n, size_t r0,
             size_t r1, const uint8_t *acts, size_t act_bytes, size_t n_acts, float *y,
             size_t ldy)
{
    size_t esize = t == GGML_TYPE_F32 ? 4 : 2;
    if (n_acts <= 3) { /* a vector or a few: rows streamed one by one */
        for (size_t r = r0; r < r1; r++)
            for (size_t j = 0; j < n_acts; j++)
                y[j * ldy + r] =
                    float_row(t, esize, rows + r * row_bytes,
                              (const float *)(const void *)(acts + j * act_bytes), n);
        return;
    }
    for (size_t r = r0; r < r1; r += 4) {
        size_t valid = r1 - r < 4 ? r1 - r : 4;
        const uint8_t *w[4];
        for (size_t i = 0; i < 4; i++)
            w[i] = rows + (r + (i < valid ? i : valid - 1)) * row_bytes;
        for (size_t j = 0; j < n_acts; j += 2) {
            const float *x[2] = {
                (const float *)(const void *)(acts + j * act_bytes),
                (const float *)(const void *)(acts + (j + 1) * act_bytes)};
            float out[2][4];
            int na = j + 1 < n_acts ? 2 : 1;
            if (na == 2)
                float_rows4(t, esize, w, x, 2, n, out);
            else
                float_rows4(t, esize, w, x, 1, n, out);
            for (int k = 0; k < na; k++)
                for (size_t i = 0; i < valid; i++)
                    y[(j + k) * ldy + r + i] = out[k][i];
        }
    }
}

void kernels_avx2_matmul_float(ggml_type t, const uint8_t *rows, size_t row_bytes,
                               size_t n, size_t r0, size_t r1, const uint8_t *acts,
                               size_t act_bytes, size_t n_acts, float *y, size_t ldy)
{
    switch (t) { /* one copy of the loops per type, the load inlined */
    case GGML_TYPE_F16:
        float_matmul(GGML_TYPE_F16, rows, row_bytes, n, r0, r1, acts, act_bytes, n_acts,
                     y, ldy);
        break;
    case GGML_TYPE_BF16:
        float_matmul(GGML_TYPE_BF16, rows, row_bytes, n, r0, r1, acts, act_bytes, n_acts,
                     y, ldy);
        break;
    default:
        float_matmul(GGML_TYPE_F32, rows, row_bytes, n, r0, r1, acts, act_bytes, n_acts,
                     y, ldy);
        break;
    }
}

static void avx2_matmul(ggml_type t, const void *rows, size_t row_bytes, size_t n,
                        size_t r0, size_t r1, const void *acts, size_t act_bytes,
                        size_t n_acts, float *y, size_t ldy)
{
    switch (t) {
    case GGML_TYPE_F32:
    case GGML_TYPE_F16:
    case GGML_TYPE_BF16:
        kernels_avx2_matmul_float(t, rows, row_bytes, n, r0, r1, acts, act_bytes, n_acts,
                                  y, ldy);
        break;
    case GGML_TYPE_Q8_0:
    case GGML_TYPE_Q4_0:
        kernels_avx2_matmul_q32(t, rows, row_bytes, n, r0, r1, acts, act_bytes, n_acts, y,
                                ldy);
        break;
    case GGML_TYPE_Q4_K:
    case GGML_TYPE_Q6_K:
        kernels_avx2_matmul_k(t, rows, row_bytes, n, r0, r1, acts, act_bytes, n_acts, y,
                              ldy);
        break;
    default:
        break; /* callers check the type when the model loads */
    }
}

void kernels_avx2_f32_to_f16(const float *x, uint16_t *y, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(x + i),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (; i < n; i++)
        y[i] = quant_f32_to_f16(x[i]);
}

float kernels_avx2_dot_f16(const float *q, const uint16_t *k, size_t n)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 k0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k + i)));
        __m256 k1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k + i + 8)));
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), k0, a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), k1, a1);
    }
    if (i + 8 <= n) {
        __m256 k0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k + i)));
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), k0, a0);
        i += 8;
    }
    float s = hsum_ps(_mm256_add_ps(a0, a1));
    for (; i < n; i++)
        s += q[i] * _cvtsh_ss(k[i]);
    return s;
}

void kernels_avx2_axpy_f16(float a, const uint16_t *v, float *y, size_t n)
{
    __m256 va = _mm256_set1_ps(a);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 vv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(v + i)));
        _mm256_storeu_ps(y + i,
                         _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_mul_ps(va, vv)));
    }
    for (; i < n; i++)
        y[i] += a * _cvtsh_ss(v[i]);
}

const kernels kernels_avx2 = {
    .path = KERNEL_AVX2,
    .name = "avx2",
    .quantize_act = kernels_avx2_quantize_act,
    .matmul = avx2_matmul,
    .f32_to_f16 = kernels_avx2_f32_to_f16,
    .dot_f16 = kernels_avx2_dot_f16,
    .axpy_f16 = kernels_avx2_axpy_f16,
};
