/*
 * kernels_scalar.c — the plain C path: every kernel in portable code, the
 * fallback on any CPU and the definition the SIMD paths are tested against.
 *
 * The quantized products follow the integer-then-float order written in
 * kernels_int.h literally, so a SIMD path that vectorizes across rows (one
 * lane per row, each lane doing these same float steps) returns the same
 * bits. The float products (F32, F16, BF16 weights, the attention dot)
 * keep eight partial sums, which bounds their rounding error and lets the
 * compiler overlap the additions; SIMD paths sum in other orders, within
 * the tolerance the tests state.
 *
 * Built with floating-point contraction off (kernels.cmake): a fused
 * multiply-add here would round once where the contract says twice.
 */
#include <math.h>
#include <string.h>

#include "agent/engine/kernels_int.h"
#include "agent/engine/quant.h"

/* Round to nearest, ties to even, as the default floating-point mode does;
 * v is within [-128, 128] or NaN, which gives 0. */
static int round_even(float v)
{
    if (v != v)
        return 0;
    return (int)rintf(v);
}

void kernels_quantize_q8_k_scalar(const float *x, void *out, size_t n)
{
    uint8_t *b = out;
    for (size_t i = 0; i < n; i += KRN_QK_K, b += KRN_Q8_K_SIZE) {
        float amax = 0, max = 0;
        for (int j = 0; j < KRN_QK_K; j++) {
            float a = fabsf(x[i + j]);
            if (a > amax) {
                amax = a;
                max = x[i + j];
            }
        }
        memset(b, 0, KRN_Q8_K_SIZE);
        if (amax == 0)
            continue; /* d = 0, q = 0, sums = 0 */
        float s = -127.0f / max;
        int8_t *q = (int8_t *)(b + KRN_Q8_K_Q);
        for (int j = 0; j < KRN_QK_K; j++) {
            int v = round_even(x[i + j] * s);
            q[j] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
        }
        for (int g = 0; g < KRN_QK_K / 16; g++) {
            int sum = 0;
            for (int j = 0; j < 16; j++)
                sum += q[16 * g + j];
            b[KRN_Q8_K_SUMS + 2 * g] = (uint8_t)(sum & 0xff);
            b[KRN_Q8_K_SUMS + 2 * g + 1] = (uint8_t)((unsigned)sum >> 8 & 0xff);
        }
        float d = 1 / s;
        memcpy(b, &d, 4);
    }
}

static void scalar_quantize_act(ggml_type t, const float *x, void *out, size_t n)
{
    switch (kernels_act_type(t)) {
    case GGML_TYPE_F32:
        memcpy(out, x, n * sizeof(float));
        break;
    case GGML_TYPE_Q8_0:
        quant_quantize_row(GGML_TYPE_Q8_0, x, out, n);
        break;
    case GGML_TYPE_Q8_K:
        kernels_quantize_q8_k_scalar(x, out, n);
        break;
    default:
        break;
    }
}

/* The float dot products: eight partial sums, added pairwise at the end. */
static float sum8(const float *s)
{
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

static float dot_f32_row(const uint8_t *w, const float *x, size_t n)
{
    float s[8] = {0};
    for (size_t i = 0; i < n; i++)
        s[i % 8] += krn_load_f32(w + 4 * i) * x[i];
    return sum8(s);
}

static float dot_f16_row(const uint8_t *w, const float *x, size_t n)
{
    float s[8] = {0};
    for (size_t i = 0; i < n; i++)
        s[i % 8] += quant_f16_to_f32(krn_load_u16(w + 2 * i)) * x[i];
    return sum8(s);
}

static float dot_bf16_row(const uint8_t *w, const float *x, size_t n)
{
    float s[8] = {0};
    for (size_t i = 0; i < n; i++)
        s[i % 8] += quant_bf16_to_f32(krn_load_u16(w + 2 * i)) * x[i];
    return sum8(s);
}

/* The quantized ones, in the order kernels_int.h fixes. */

/* The int8 products of 32-value blocks, written so compilers vectorize
 * them (the weights first unpacked into a plain array). */
static int32_t dot_i8_32(const int8_t *q, const int8_t *a)
{
    int32_t s = 0;
    for (int j = 0; j < KRN_QK; j++)
        s += q[j] * a[j];
    return s;
}

static float dot_q8_0_row(const uint8_t *w, const uint8_t *a, size_t n)
{
    float acc = 0;
    for (size_t i = 0; i < n; i += KRN_QK, w += KRN_Q8_0_SIZE, a += KRN_Q8_0_SIZE) {
        int32_t s = dot_i8_32((const int8_t *)(w + 2), (const int8_t *)(a + 2));
        float dw = quant_f16_to_f32(krn_load_u16(w));
        float da = quant_f16_to_f32(krn_load_u16(a));
        acc += (float)s * (dw * da);
    }
    return acc;
}

static float dot_q4_0_row(const uint8_t *w, const uint8_t *a, size_t n)
{
    float acc = 0;
    for (size_t i = 0; i < n; i += KRN_QK, w += KRN_Q4_0_SIZE, a += KRN_Q8_0_SIZE) {
        int8_t q[KRN_QK];
        for (int j = 0; j < KRN_QK / 2; j++) {
            q[j] = (int8_t)((w[2 + j] & 15) - 8);
            q[j + KRN_QK / 2] = (int8_t)((w[2 + j] >> 4) - 8);
        }
        int32_t s = dot_i8_32(q, (const int8_t *)(a + 2));
        float dw = quant_f16_to_f32(krn_load_u16(w));
        float da = quant_f16_to_f32(krn_load_u16(a));
        acc += (float)s * (dw * da);
    }
    return acc;
}

static float dot_q4_k_row(const uint8_t *w, const uint8_t *a, size_t n)
{
    float acc = 0;
    for (size_t i = 0; i < n; i += KRN_QK_K, w += KRN_Q4_K_SIZE, a += KRN_Q8_K_SIZE) {
        const uint8_t *q = w + 16;
        const int8_t *qa = (const int8_t *)(a + KRN_Q8_K_Q);
        int32_t s = 0, m = 0;
        for (int g = 0; g < 4; g++, q += 32, qa += 64) {
            int sc0, m0, sc1, m1;
            krn_q4_k_scale_min(w + 4, 2 * g, &sc0, &m0);
            krn_q4_k_scale_min(w + 4, 2 * g + 1, &sc1, &m1);
            int32_t s0 = 0, s1 = 0;
            for (int l = 0; l < 32; l++) {
                s0 += (q[l] & 15) * qa[l];
                s1 += (q[l] >> 4) * qa[32 + l];
            }
            s += sc0 * s0 + sc1 * s1;
            /* Sub-block 2g covers the sums of groups 4g and 4g + 1. */
            const uint8_t *sums = a + KRN_Q8_K_SUMS + 8 * g;
            m += m0 * (krn_load_i16(sums) + krn_load_i16(sums + 2));
            m += m1 * (krn_load_i16(sums + 4) + krn_load_i16(sums + 6));
        }
        float da = krn_load_f32(a);
        float d = quant_f16_to_f32(krn_load_u16(w));
        float dmin = quant_f16_to_f32(krn_load_u16(w + 2));
        acc += (da * d) * (float)s;
        acc -= (da * dmin) * (float)m;
    }
    return acc;
}

static float dot_q6_k_row(const uint8_t *w, const uint8_t *a, size_t n)
{
    float acc = 0;
    for (size_t i = 0; i < n; i += KRN_QK_K, w += KRN_Q6_K_SIZE, a += KRN_Q8_K_SIZE) {
        const uint8_t *ql = w, *qh = w + 128;
        const int8_t *sc = (const int8_t *)(w + 192);
        const int8_t *qa = (const int8_t *)(a + KRN_Q8_K_Q);
        int8_t q[KRN_QK_K]; /* q - 32, in value order */
        for (int h = 0; h < 2; h++, ql += 64, qh += 32) {
            int8_t *o = q + 128 * h;
            for (int l = 0; l < 32; l++) {
                o[l] = (int8_t)(((ql[l] & 15) | (qh[l] & 3) << 4) - 32);
                o[l + 32] = (int8_t)(((ql[l + 32] & 15) | (qh[l] >> 2 & 3) << 4) - 32);
                o[l + 64] = (int8_t)(((ql[l] >> 4) | (qh[l] >> 4 & 3) << 4) - 32);
                o[l + 96] = (int8_t)(((ql[l + 32] >> 4) | (qh[l] >> 6 & 3) << 4) - 32);
            }
        }
        int32_t s = 0;
        for (int k = 0; k < KRN_QK_K / 16; k++) { /* sub-block k: scale sc[k] */
            int32_t sub = 0;
            for (int l = 0; l < 16; l++)
                sub += q[16 * k + l] * qa[16 * k + l];
            s += sc[k] * sub;
        }
        float da = krn_load_f32(a);
        float d = quant_f16_to_f32(krn_load_u16(w + 208));
        acc += (da * d) * (float)s;
    }
    return acc;
}

typedef float (*row_dot_fn)(const uint8_t *w, const uint8_t *a, size_t n);

static float dot_f32_act(const uint8_t *w, const uint8_t *a, size_t n)
{
    return dot_f32_row(w, (const float *)(const void *)a, n);
}

static float dot_f16_act(const uint8_t *w, const uint8_t *a, size_t n)
{
    return dot_f16_row(w, (const float *)(const void *)a, n);
}

static float dot_bf16_act(const uint8_t *w, const uint8_t *a, size_t n)
{
    return dot_bf16_row(w, (const float *)(const void *)a, n);
}

static row_dot_fn row_dot_for(ggml_type t)
{
    switch (t) {
    case GGML_TYPE_F32:
        return dot_f32_act;
    case GGML_TYPE_F16:
        return dot_f16_act;
    case GGML_TYPE_BF16:
        return dot_bf16_act;
    case GGML_TYPE_Q8_0:
        return dot_q8_0_row;
    case GGML_TYPE_Q4_0:
        return dot_q4_0_row;
    case GGML_TYPE_Q4_K:
        return dot_q4_k_row;
    case GGML_TYPE_Q6_K:
        return dot_q6_k_row;
    default:
        return NULL;
    }
}

static void scalar_matmul(ggml_type t, const void *rows, size_t row_bytes, size_t n,
                          size_t r0, size_t r1, const void *acts, size_t act_bytes,
                          size_t n_acts, float *y, size_t ldy)
{
    row_dot_fn dot = row_dot_for(t);
    if (dot == NULL)
        return; /* callers check the type when the model loads */
    const uint8_t *w = rows, *a = acts;
    for (size_t r = r0; r < r1; r++)
        for (size_t j = 0; j < n_acts; j++)
            y[j * ldy + r] = dot(w + r * row_bytes, a + j * act_bytes, n);
}

static void scalar_f32_to_f16(const float *x, uint16_t *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = quant_f32_to_f16(x[i]);
}

static float scalar_dot_f16(const float *q, const uint16_t *k, size_t n)
{
    float s[8] = {0};
    for (size_t i = 0; i < n; i++)
        s[i % 8] += q[i] * quant_f16_to_f32(k[i]);
    return sum8(s);
}

static void scalar_axpy_f16(float a, const uint16_t *v, float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] += a * quant_f16_to_f32(v[i]);
}

const kernels kernels_scalar = {
    .path = KERNEL_SCALAR,
    .name = "scalar",
    .quantize_act = scalar_quantize_act,
    .matmul = scalar_matmul,
    .f32_to_f16 = scalar_f32_to_f16,
    .dot_f16 = scalar_dot_f16,
    .axpy_f16 = scalar_axpy_f16,
};
