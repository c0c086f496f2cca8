/*
 * kernels_neon_q.c — the quantized matrix products on arm64 NEON: Q8_0 and
 * Q4_0 weights with Q8_0 activations, Q4_K and Q6_K with Q8_K.
 *
 * Built twice: as itself, for any arm64 CPU, where a signed byte product
 * is SMULL into int16 and SADALP into int32; and through
 * kernels_neon_qdot.c, which defines KRN_NEON_DOTPROD, with the
 * dot-product extension enabled for that file only, where SDOT (vdotq_s32)
 * does the sixteen products and their sums in one instruction. Both give
 * the same integers; kernels.c uses the second only on CPUs that have it.
 *
 * NEON multiplies signed by signed, so the weights are centred once (q - 8
 * for Q4_0, q - 32 for Q6_K) instead of being corrected through the
 * activation sums as on x86. No int16 product can overflow: 128 * 127 at
 * most. The float steps follow kernels_int.h, for the 32-value blocks lane
 * by lane with one lane per row of four, so every row gets the scalar
 * path's bits. Weights are decoded once for two activations at a time.
 * (AVX2 streams one row at a time for a single vector, which kept up with
 * memory better on x86; four rows side by side are kept here until an
 * arm64 machine's numbers say otherwise.)
 */
#include <arm_neon.h>

#include "agent/engine/kernels_int.h"

#if defined(KRN_NEON_DOTPROD)
#define KRN_FN(name) name##_dot
/* acc + the sums of each four neighbouring products of a and b. */
static inline int32x4_t dot_s8(int32x4_t acc, int8x16_t a, int8x16_t b)
{
    return vdotq_s32(acc, a, b);
}
#else
#define KRN_FN(name) name
/* acc + sums of neighbouring products of a and b (which lane gets which
 * product differs from SDOT; the total, all that is used, does not). */
static inline int32x4_t dot_s8(int32x4_t acc, int8x16_t a, int8x16_t b)
{
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
    return vpadalq_s16(acc, vmull_high_s8(a, b));
}
#endif

/* The f16 at each of four places, as four floats. */
static inline float32x4_t f16x4(const uint8_t *p0, const uint8_t *p1, const uint8_t *p2,
                                const uint8_t *p3)
{
    uint16_t h[4] = {krn_load_u16(p0), krn_load_u16(p1), krn_load_u16(p2),
                     krn_load_u16(p3)};
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(h)));
}

/* The f16 at p in every lane. */
static inline float32x4_t f16_dup(const uint8_t *p)
{
    return vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(krn_load_u16(p))));
}

static inline float f16_at(const uint8_t *p)
{
    return vgetq_lane_f32(f16_dup(p), 0);
}

/* [sum of a, of b, of c, of d]. */
static inline int32x4_t hsum4(int32x4_t a, int32x4_t b, int32x4_t c, int32x4_t d)
{
    return vpaddq_s32(vpaddq_s32(a, b), vpaddq_s32(c, d));
}

static inline void store_rows(float *y, float32x4_t v, size_t valid)
{
    if (valid == 4) {
        vst1q_f32(y, v);
        return;
    }
    float t[4];
    vst1q_f32(t, v);
    for (size_t i = 0; i < valid; i++)
        y[i] = t[i];
}

/* Four rows (one lane each) times na activations (1 or 2): each weight
 * block is loaded, and for Q4_0 unpacked and centred, once for both. */
static inline __attribute__((always_inline)) void
q32_rows4(ggml_type t, const uint8_t *const w[4], const uint8_t *const a[2], int na,
          size_t nb, float32x4_t out[2])
{
    const uint8x16_t low4 = vdupq_n_u8(15);
    const int8x16_t eight = vdupq_n_s8(8);
    const size_t ws = t == GGML_TYPE_Q4_0 ? KRN_Q4_0_SIZE : KRN_Q8_0_SIZE;
    float32x4_t acc[2] = {vdupq_n_f32(0), vdupq_n_f32(0)};
    for (size_t b = 0; b < nb; b++) {
        size_t ow = b * ws;
        int8x16_t lo[4], hi[4];
        for (int r = 0; r < 4; r++) {
            if (t == GGML_TYPE_Q4_0) {
                uint8x16_t raw = vld1q_u8(w[r] + ow + 2);
                lo[r] = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(raw, low4)), eight);
                hi[r] = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(raw, 4)), eight);
            } else {
                lo[r] = vld1q_s8((const int8_t *)(w[r] + ow + 2));
                hi[r] = vld1q_s8((const int8_t *)(w[r] + ow + 18));
            }
        }
        float32x4_t dw = f16x4(w[0] + ow, w[1] + ow, w[2] + ow, w[3] + ow);
        for (int j = 0; j < na; j++) {
            const uint8_t *ab = a[j] + b * KRN_Q8_0_SIZE;
            int8x16_t a0 = vld1q_s8((const int8_t *)(ab + 2));
            int8x16_t a1 = vld1q_s8((const int8_t *)(ab + 18));
            int32x4_t p[4];
            for (int r = 0; r < 4; r++)
                p[r] = dot_s8(dot_s8(vdupq_n_s32(0), lo[r], a0), hi[r], a1);
            float32x4_t s = vcvtq_f32_s32(hsum4(p[0], p[1], p[2], p[3]));
            acc[j] = vaddq_f32(acc[j], vmulq_f32(s, vmulq_f32(dw, f16_dup(ab))));
        }
    }
    out[0] = acc[0];
    out[1] = acc[1];
}

static inline __attribute__((always_inline)) void
q32_matmul(ggml_type t, const uint8_t *rows, size_t row_bytes, size_t nb, size_t r0,
           size_t r1, const uint8_t *acts, size_t act_bytes, size_t n_acts, float *y,
           size_t ldy)
{
    for (size_t r = r0; r < r1; r += 4) {
        size_t valid = r1 - r < 4 ? r1 - r : 4;
        const uint8_t *w[4];
        for (size_t i = 0; i < 4; i++)
            w[i] = rows + (r + (i < valid ? i : valid - 1)) * row_bytes;
        for (size_t j = 0; j < n_acts; j += 2) {
            const uint8_t *a[2] = {acts + j * act_bytes, acts + (j + 1) * act_bytes};
            float32x4_t v[2];
            if (j + 1 < n_acts) {
                q32_rows4(t, w, a, 2, nb, v);
                store_rows(y + (j + 1) * ldy + r, v[1], valid);
            } else {
                q32_rows4(t, w, a, 1, nb, v);
            }
            store_rows(y + j * ldy + r, v[0], valid);
        }
    }
}

void KRN_FN(kernels_neon_matmul_q32)(ggml_type t, const uint8_t *rows, size_t row_bytes,
                                     size_t n, size_t r0, size_t r1, const uint8_t *acts,
                                     size_t act_bytes, size_t n_acts, float *y,
                                     size_t ldy)
{
    /* One copy per type, so the type's tests fold away. */
    if (t == GGML_TYPE_Q4_0)
        q32_matmul(GGML_TYPE_Q4_0, rows, row_bytes, n / KRN_QK, r0, r1, acts, act_bytes,
                   n_acts, y, ldy);
    else
        q32_matmul(GGML_TYPE_Q8_0, rows, row_bytes, n / KRN_QK, r0, r1, acts, act_bytes,
                   n_acts, y, ldy);
}

/* Q4_K scales and minimums, eight bytes each (see kernels_avx2_q.c). */
static inline void q4_k_scales(const uint8_t *s, uint8_t sc[8], uint8_t m[8])
{
    uint32_t u0, u1, u2;
    memcpy(&u0, s, 4);
    memcpy(&u1, s + 4, 4);
    memcpy(&u2, s + 8, 4);
    uint32_t v[4] = {u0 & 0x3f3f3f3f, (u2 & 0x0f0f0f0f) | ((u0 >> 6) & 0x03030303) << 4,
                     u1 & 0x3f3f3f3f,
                     ((u2 >> 4) & 0x0f0f0f0f) | ((u1 >> 6) & 0x03030303) << 4};
    memcpy(sc, v, 8);
    memcpy(m, v + 2, 8);
}

/* One Q4_K row times na activations (1 or 2): nibbles and scales decoded
 * once for both. */
static inline __attribute__((always_inline)) void
q4_k_dots(const uint8_t *w, const uint8_t *const a[2], int na, size_t nb, float out[2])
{
    const uint8x16_t low4 = vdupq_n_u8(15);
    float acc[2] = {0, 0};
    for (size_t b = 0; b < nb; b++, w += KRN_Q4_K_SIZE) {
        uint8_t sc[8], m[8];
        q4_k_scales(w + 4, sc, m);
        int32x4_t isum[2] = {vdupq_n_s32(0), vdupq_n_s32(0)};
        for (int g = 0; g < 4; g++) {
            const uint8_t *q = w + 16 + 32 * g;
            uint8x16_t r0 = vld1q_u8(q), r1 = vld1q_u8(q + 16);
            int8x16_t lo0 = vreinterpretq_s8_u8(vandq_u8(r0, low4));
            int8x16_t lo1 = vreinterpretq_s8_u8(vandq_u8(r1, low4));
            int8x16_t hi0 = vreinterpretq_s8_u8(vshrq_n_u8(r0, 4));
            int8x16_t hi1 = vreinterpretq_s8_u8(vshrq_n_u8(r1, 4));
            for (int j = 0; j < na; j++) {
                const int8_t *qa =
                    (const int8_t *)(a[j] + b * KRN_Q8_K_SIZE + KRN_Q8_K_Q + 64 * g);
                int32x4_t slo = dot_s8(dot_s8(vdupq_n_s32(0), lo0, vld1q_s8(qa)), lo1,
                                       vld1q_s8(qa + 16));
                int32x4_t shi = dot_s8(dot_s8(vdupq_n_s32(0), hi0, vld1q_s8(qa + 32)),
                                       hi1, vld1q_s8(qa + 48));
                isum[j] = vmlaq_n_s32(isum[j], slo, sc[2 * g]);
                isum[j] = vmlaq_n_s32(isum[j], shi, sc[2 * g + 1]);
            }
        }
        /* Minimum j weighs the activation sums of groups 2j and 2j + 1. */
        int16x8_t m16 = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(m)));
        float d = f16_at(w), dmin = f16_at(w + 2);
        for (int j = 0; j < na; j++) {
            const uint8_t *ab = a[j] + b * KRN_Q8_K_SIZE;
            int16x8_t s0 = vreinterpretq_s16_u8(vld1q_u8(ab + KRN_Q8_K_SUMS));
            int16x8_t s1 = vreinterpretq_s16_u8(vld1q_u8(ab + KRN_Q8_K_SUMS + 16));
            int16x8_t pairs = vpaddq_s16(s0, s1);
            int32x4_t msum = vmull_s16(vget_low_s16(pairs), vget_low_s16(m16));
            msum = vmlal_high_s16(msum, pairs, m16);
            float da = krn_load_f32(ab);
            float fs = (float)vaddvq_s32(isum[j]), fm = (float)vaddvq_s32(msum);
            acc[j] += (da * d) * fs;
            acc[j] -= (da * dmin) * fm;
        }
    }
    out[0] = acc[0];
    out[1] = acc[1];
}

/* One Q6_K row times na activations (1 or 2), the 6-bit values centred
 * once for both. */
static inline __attribute__((always_inline)) void
q6_k_dots(const uint8_t *w, const uint8_t *const a[2], int na, size_t nb, float out[2])
{
    const uint8x16_t low4 = vdupq_n_u8(15), three = vdupq_n_u8(3);
    const int8x16_t m32 = vdupq_n_s8(32);
    float acc[2] = {0, 0};
    for (size_t b = 0; b < nb; b++, w += KRN_Q6_K_SIZE) {
        const int8_t *sc = (const int8_t *)(w + 192);
        int32x4_t isum[2] = {vdupq_n_s32(0), vdupq_n_s32(0)};
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = w + 64 * h, *qh = w + 128 + 32 * h;
            for (int c = 0; c < 2; c++) { /* values 16c..16c+15 of each run of 32 */
                uint8x16_t l0 = vld1q_u8(ql + 16 * c), l1 = vld1q_u8(ql + 32 + 16 * c);
                uint8x16_t hb = vld1q_u8(qh + 16 * c);
                uint8x16_t q[4];
                q[0] = vorrq_u8(vandq_u8(l0, low4), vshlq_n_u8(vandq_u8(hb, three), 4));
                q[1] = vorrq_u8(vandq_u8(l1, low4),
                                vshlq_n_u8(vandq_u8(vshrq_n_u8(hb, 2), three), 4));
                q[2] = vorrq_u8(vshrq_n_u8(l0, 4),
                                vshlq_n_u8(vandq_u8(vshrq_n_u8(hb, 4), three), 4));
                q[3] = vorrq_u8(vshrq_n_u8(l1, 4), vshlq_n_u8(vshrq_n_u8(hb, 6), 4));
                for (int i = 0; i < 4; i++) {
                    /* Run i, values 16c.. of it: sub-block 8h + 2i + c. */
                    int8x16_t qs = vsubq_s8(vreinterpretq_s8_u8(q[i]), m32);
                    int k = 8 * h + 2 * i + c;
                    for (int j = 0; j < na; j++) {
                        const int8_t *qa = (const int8_t *)(a[j] + b * KRN_Q8_K_SIZE +
                                                            KRN_Q8_K_Q + 128 * h);
                        int32x4_t d =
                            dot_s8(vdupq_n_s32(0), qs, vld1q_s8(qa + 32 * i + 16 * c));
                        isum[j] = vmlaq_n_s32(isum[j], d, sc[k]);
                    }
                }
            }
        }
        float d = f16_at(w + 208);
        for (int j = 0; j < na; j++) {
            float da = krn_load_f32(a[j] + b * KRN_Q8_K_SIZE);
            acc[j] += (da * d) * (float)vaddvq_s32(isum[j]);
        }
    }
    out[0] = acc[0];
    out[1] = acc[1];
}

void KRN_FN(kernels_neon_matmul_k)(ggml_type t, const uint8_t *rows, size_t row_bytes,
                                   size_t n, size_t r0, size_t r1, const uint8_t *acts,
                                   size_t act_bytes, size_t n_acts, float *y, size_t ldy)
{
    size_t nb = n / KRN_QK_K;
    for (size_t r = r0; r < r1; r++) {
        const uint8_t *w = rows + r * row_bytes;
        for (size_t j = 0; j < n_acts; j += 2) {
            const uint8_t *a[2] = {acts + j * act_bytes, acts + (j + 1) * act_bytes};
            float v[2];
            int na = j + 1 < n_acts ? 2 : 1;
            if (t == GGML_TYPE_Q4_K && na == 2)
                q4_k_dots(w, a, 2, nb, v);
            else if (t == GGML_TYPE_Q4_K)
                q4_k_dots(w, a, 1, nb, v);
            else if (na == 2)
                q6_k_dots(w, a, 2, nb, v);
            else
                q6_k_dots(w, a, 1, nb, v);
            y[j * ldy + r] = v[0];
            if (na == 2)
                y[(j + 1) * ldy + r] = v[1];
        }
    }
}
