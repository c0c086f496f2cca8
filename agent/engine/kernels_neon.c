/*
 * kernels_neon.c — the arm64 path: activation quantizers, float matrix
 * products, the F16 KV-cache helpers, and the two tables (with and without
 * the dot-product extension, which differ only in their quantized
 * products, kernels_neon_q.c).
 *
 * NEON has the roundings the quantizers need as instructions: FRINTA
 * rounds halves away from zero (roundf, for Q8_0), FCVTNS to nearest even
 * (Q8_K), and both conversions to int32 give 0 for NaN, as the scalar path
 * does. The amax uses FMAXNM, which ignores a NaN as fmaxf does. F16
 * converts in hardware (FCVTL, FCVTN), with the same rounding and NaN
 * rules as quant.c's conversions. axpy_f16 multiplies and adds in two
 * roundings, like the scalar path; the float dot products use FMA with
 * several accumulators and differ from it by summation order only.
 *
 * Built for arm64 only (kernels.cmake); NEON is part of every arm64 CPU.
 */
#include <arm_neon.h>
#include <math.h>

#include "agent/engine/kernels_int.h"
#include "agent/engine/quant.h"

/* Largest |x| of 4k floats; NaN never wins. */
static float amax_f32(const float *x, size_t n)
{
    float32x4_t m = vdupq_n_f32(0);
    for (size_t i = 0; i < n; i += 4)
        m = vmaxnmq_f32(m, vabsq_f32(vld1q_f32(x + i)));
    return vmaxnmvq_f32(m);
}

/* Sixteen int32 in [-127, 127] as sixteen bytes at out. */
static void store_i8x16(uint8_t *out, int32x4_t a, int32x4_t b, int32x4_t c, int32x4_t d)
{
    int16x8_t ab = vcombine_s16(vqmovn_s32(a), vqmovn_s32(b));
    int16x8_t cd = vcombine_s16(vqmovn_s32(c), vqmovn_s32(d));
    vst1q_s8((int8_t *)out, vcombine_s8(vqmovn_s16(ab), vqmovn_s16(cd)));
}

static int32x4_t clamp127(int32x4_t v)
{
    return vmaxq_s32(vminq_s32(v, vdupq_n_s32(127)), vdupq_n_s32(-127));
}

static void quantize_q8_0(const float *x, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i += KRN_QK, out += KRN_Q8_0_SIZE) {
        float d = amax_f32(x + i, KRN_QK) / 127;
        float id = d != 0 ? 1.0f / d : 0.0f;
        uint16_t h = quant_f32_to_f16(d);
        out[0] = (uint8_t)h;
        out[1] = (uint8_t)(h >> 8);
        for (int k = 0; k < 2; k++) {
            int32x4_t q[4];
            for (int j = 0; j < 4; j++) {
                float32x4_t v = vmulq_n_f32(vld1q_f32(x + i + 16 * k + 4 * j), id);
                q[j] = clamp127(vcvtq_s32_f32(vrndaq_f32(v)));
            }
            store_i8x16(out + 2 + 16 * k, q[0], q[1], q[2], q[3]);
        }
    }
}

static void quantize_q8_k(const float *x, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i += KRN_QK_K, out += KRN_Q8_K_SIZE, x += KRN_QK_K) {
        float amax = amax_f32(x, KRN_QK_K);
        if (!(amax > 0)) {
            memset(out, 0, KRN_Q8_K_SIZE);
            continue;
        }
        float max = 0; /* the first value of that magnitude gives the sign */
        for (int j = 0; j < KRN_QK_K; j++)
            if (fabsf(x[j]) == amax) {
                max = x[j];
                break;
            }
        float s = -127.0f / max;
        int8_t *q = (int8_t *)(out + KRN_Q8_K_Q);
        for (int j = 0; j < KRN_QK_K; j += 16) {
            int32x4_t v[4];
            for (int k = 0; k < 4; k++)
                v[k] = clamp127(vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + j + 4 * k), s)));
            store_i8x16((uint8_t *)q + j, v[0], v[1], v[2], v[3]);
            int16_t sum = vaddlvq_s8(vld1q_s8(q + j));
            out[KRN_Q8_K_SUMS + j / 8] = (uint8_t)sum;
            out[KRN_Q8_K_SUMS + j / 8 + 1] = (uint8_t)((uint16_t)sum >> 8);
        }
        float d = 1 / s;
        memcpy(out, &d, 4);
    }
}

static void neon_quantize_act(ggml_type t, const float *x, void *out, size_t n)
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

/* Float rows: eight weights at p as two vectors of four floats. */
static inline void load8(ggml_type t, const uint8_t *p, float32x4_t *lo, float32x4_t *hi)
{
    switch (t) {
    case GGML_TYPE_F16: {
        float16x8_t h = vreinterpretq_f16_u8(vld1q_u8(p));
        *lo = vcvt_f32_f16(vget_low_f16(h));
        *hi = vcvt_high_f32_f16(h);
        break;
    }
    case GGML_TYPE_BF16: { /* the upper half of a float */
        uint16x8_t b = vreinterpretq_u16_u8(vld1q_u8(p));
        *lo = vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(b), 16));
        *hi = vreinterpretq_f32_u32(vshll_high_n_u16(b, 16));
        break;
    }
    default:
        *lo = vreinterpretq_f32_u8(vld1q_u8(p));
        *hi = vreinterpretq_f32_u8(vld1q_u8(p + 16));
        break;
    }
}

static inline float load1(ggml_type t, const uint8_t *p)
{
    switch (t) {
    case GGML_TYPE_F16:
        return quant_f16_to_f32(krn_load_u16(p));
    case GGML_TYPE_BF16:
        return quant_bf16_to_f32(krn_load_u16(p));
    default:
        return krn_load_f32(p);
    }
}

/* Four rows times one float vector; two accumulators of four lanes per
 * row (eight partial sums, as the scalar path keeps). */
static inline __attribute__((always_inline)) void float_rows4(ggml_type t, size_t esize,
                                                              const uint8_t *const w[4],
                                                              const float *x, size_t n,
                                                              float out[4])
{
    float32x4_t lo[4], hi[4];
    for (int r = 0; r < 4; r++)
        lo[r] = hi[r] = vdupq_n_f32(0);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        float32x4_t x0 = vld1q_f32(x + i), x1 = vld1q_f32(x + i + 4);
        for (int r = 0; r < 4; r++) {
            float32x4_t w0, w1;
            load8(t, w[r] + i * esize, &w0, &w1);
            lo[r] = vfmaq_f32(lo[r], w0, x0);
            hi[r] = vfmaq_f32(hi[r], w1, x1);
        }
    }
    for (int r = 0; r < 4; r++) {
        float s = vaddvq_f32(vaddq_f32(lo[r], hi[r]));
        for (size_t k = i; k < n; k++)
            s += load1(t, w[r] + k * esize) * x[k];
        out[r] = s;
    }
}

static void matmul_float(ggml_type t, const uint8_t *rows, size_t row_bytes, size_t n,
                         size_t r0, size_t r1, const uint8_t *acts, size_t act_bytes,
                         size_t n_acts, float *y, size_t ldy)
{
    size_t esize = t == GGML_TYPE_F32 ? 4 : 2;
    for (size_t r = r0; r < r1; r += 4) {
        size_t valid = r1 - r < 4 ? r1 - r : 4;
        const uint8_t *w[4];
        for (size_t i = 0; i < 4; i++)
            w[i] = rows + (r + (i < valid ? i : valid - 1)) * row_bytes;
        for (size_t j = 0; j < n_acts; j++) {
            const float *x = (const float *)(const void *)(acts + j * act_bytes);
            float out[4];
            switch (t) { /* one copy of the loop per type, the load inlined */
            case GGML_TYPE_F16:
                float_rows4(GGML_TYPE_F16, esize, w, x, n, out);
                break;
            case GGML_TYPE_BF16:
                float_rows4(GGML_TYPE_BF16, esize, w, x, n, out);
                break;
            default:
                float_rows4(GGML_TYPE_F32, esize, w, x, n, out);
                break;
            }
            for (size_t i = 0; i < valid; i++)
                y[j * ldy + r + i] = out[i];
        }
    }
}

typedef void (*matmul_fn)(ggml_type t, const uint8_t *rows, size_t row_bytes, size_t n,
                          size_t r0, size_t r1, const uint8_t *acts, size_t act_bytes,
                          size_t n_acts, float *y, size_t ldy);

static void neon_matmul_with(matmul_fn q32, matmul_fn k, ggml_type t, const void *rows,
                             size_t row_bytes, size_t n, size_t r0, size_t r1,
                             const void *acts, size_t act_bytes, size_t n_acts, float *y,
                             size_t ldy)
{
    switch (t) {
    case GGML_TYPE_F32:
    case GGML_TYPE_F16:
    case GGML_TYPE_BF16:
        matmul_float(t, rows, row_bytes, n, r0, r1, acts, act_bytes, n_acts, y, ldy);
        break;
    case GGML_TYPE_Q8_0:
    case GGML_TYPE_Q4_0:
        q32(t, rows, row_bytes, n, r0, r1, acts, act_bytes, n_acts, y, ldy);
        break;
    case GGML_TYPE_Q4_K:
    case GGML_TYPE_Q6_K:
        k(t, rows, row_bytes, n, r0, r1, acts, act_bytes, n_acts, y, ldy);
        break;
    default:
        break; /* callers check the type when the model loads */
    }
}

static void neon_matmul(ggml_type t, const void *rows, size_t row_bytes, size_t n,
                        size_t r0, size_t r1, const void *acts, size_t act_bytes,
                        size_t n_acts, float *y, size_t ldy)
{
    neon_matmul_with(kernels_neon_matmul_q32, kernels_neon_matmul_k, t, rows, row_bytes,
                     n, r0, r1, acts, act_bytes, n_acts, y, ldy);
}

static void neon_matmul_dot(ggml_type t, const void *rows, size_t row_bytes, size_t n,
                            size_t r0, size_t r1, const void *acts, size_t act_bytes,
                            size_t n_acts, float *y, size_t ldy)
{
    neon_matmul_with(kernels_neon_matmul_q32_dot, kernels_neon_matmul_k_dot, t, rows,
                     row_bytes, n, r0, r1, acts, act_bytes, n_acts, y, ldy);
}

static void neon_f32_to_f16(const float *x, uint16_t *y, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        float16x8_t h =
            vcvt_high_f16_f32(vcvt_f16_f32(vld1q_f32(x + i)), vld1q_f32(x + i + 4));
        vst1q_u16(y + i, vreinterpretq_u16_f16(h));
    }
    for (; i < n; i++)
        y[i] = quant_f32_to_f16(x[i]);
}

static float neon_dot_f16(const float *q, const uint16_t *k, size_t n)
{
    float32x4_t a0 = vdupq_n_f32(0), a1 = vdupq_n_f32(0);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(k + i));
        a0 = vfmaq_f32(a0, vld1q_f32(q + i), vcvt_f32_f16(vget_low_f16(h)));
        a1 = vfmaq_f32(a1, vld1q_f32(q + i + 4), vcvt_high_f32_f16(h));
    }
    float s = vaddvq_f32(vaddq_f32(a0, a1));
    for (; i < n; i++)
        s += q[i] * quant_f16_to_f32(k[i]);
    return s;
}

static void neon_axpy_f16(float a, const uint16_t *v, float *y, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(v + i));
        float32x4_t lo = vmulq_n_f32(vcvt_f32_f16(vget_low_f16(h)), a);
        float32x4_t hi = vmulq_n_f32(vcvt_high_f32_f16(h), a);
        vst1q_f32(y + i, vaddq_f32(vld1q_f32(y + i), lo));
        vst1q_f32(y + i + 4, vaddq_f32(vld1q_f32(y + i + 4), hi));
    }
    for (; i < n; i++)
        y[i] += a * quant_f16_to_f32(v[i]);
}

const kernels kernels_neon = {
    .path = KERNEL_NEON,
    .name = "neon",
    .quantize_act = neon_quantize_act,
    .matmul = neon_matmul,
    .f32_to_f16 = neon_f32_to_f16,
    .dot_f16 = neon_dot_f16,
    .axpy_f16 = neon_axpy_f16,
};

const kernels kernels_neon_dot = {
    .path = KERNEL_NEON,
    .name = "neon",
    .quantize_act = neon_quantize_act,
    .matmul = neon_matmul_dot,
    .f32_to_f16 = neon_f32_to_f16,
    .dot_f16 = neon_dot_f16,
    .axpy_f16 = neon_axpy_f16,
};
