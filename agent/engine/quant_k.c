/*
 * quant_k.c — reading the 256-element "k-quant" super-blocks Q4_K and Q6_K,
 * what Ollama's default Q4_K_M models are made of.
 *
 * Q4_K, 144 bytes per 256 elements, in 8 sub-blocks of 32:
 *   0    2    d, f16: scale of the sub-block scales
 *   2    2    dmin, f16: scale of the sub-block minimums
 *   4    12   sc[0..7] and m[0..7], 6 bits each, packed:
 *               j < 4:  sc[j] = s[j] & 63          m[j] = s[j+4] & 63
 *               j >= 4: sc[j] = (s[j+4] & 15) | (s[j-4] >> 6) << 4
 *                       m[j]  = (s[j+4] >> 4) | (s[j]   >> 6) << 4
 *             (bytes 0-7 hold the low 6 bits of sc[0..3], m[0..3] and lend
 *             their top 2 bits to sc[4..7], m[4..7]; bytes 8-11 hold the
 *             low 4 bits of sc[4..7] and m[4..7])
 *   16   128  nibbles, 32 bytes per pair of sub-blocks: byte l of group g
 *             (g = 0..3) holds element 64g + l in its low 4 bits (sub-block
 *             2g) and element 64g + 32 + l in its high 4 bits (sub-block
 *             2g + 1)
 *   element = d * sc[j] * q - dmin * m[j]
 *
 * Q6_K, 210 bytes per 256 elements, in 16 sub-blocks of 16:
 *   0    128  ql: low 4 bits of each 6-bit q
 *   128  64   qh: high 2 bits of each q
 *   192  16   sc[0..15], int8
 *   208  2    d, f16
 *   Each half h (elements 128h..128h+127) uses ql[64h..64h+63] and
 *   qh[32h..32h+31]; for l = 0..31, with L = ql + 64h, H = qh + 32h:
 *     element 128h + l      : L[l] & 15      | (H[l] >> 0 & 3) << 4
 *     element 128h + l + 32 : L[l + 32] & 15 | (H[l] >> 2 & 3) << 4
 *     element 128h + l + 64 : L[l] >> 4      | (H[l] >> 4 & 3) << 4
 *     element 128h + l + 96 : L[l + 32] >> 4 | (H[l] >> 6 & 3) << 4
 *   element e = d * sc[e / 16] * (q - 32)
 *
 * Both are decoded one super-block at a time into 256 floats, so the dot
 * product and the dequantizer share one decoder; the cost is a small stack
 * buffer, which a reference implementation can afford.
 */
#include <string.h>

#include "agent/engine/quant_int.h"

#define QK_K 256

/* Scale and minimum of sub-block j of a Q4_K block, from its 12 bytes s. */
static void q4_k_scale_min(const uint8_t *s, int j, int *sc, int *m)
{
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 15) | (s[j - 4] >> 6) << 4;
        *m = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
    }
}

static void decode_q4_k(const uint8_t *b, float *y)
{
    float d = quant_load_f16(b), dmin = quant_load_f16(b + 2);
    const uint8_t *s = b + 4, *q = b + 16;
    for (int g = 0; g < 4; g++, q += 32) {
        int sc0, m0, sc1, m1;
        q4_k_scale_min(s, 2 * g, &sc0, &m0);
        q4_k_scale_min(s, 2 * g + 1, &sc1, &m1);
        float d0 = d * (float)sc0, min0 = dmin * (float)m0;
        float d1 = d * (float)sc1, min1 = dmin * (float)m1;
        for (int l = 0; l < 32; l++) {
            y[64 * g + l] = d0 * (float)(q[l] & 15) - min0;
            y[64 * g + 32 + l] = d1 * (float)(q[l] >> 4) - min1;
        }
    }
}

static void decode_q6_k(const uint8_t *b, float *y)
{
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    float d = quant_load_f16(b + 208);
    for (int h = 0; h < 2; h++, ql += 64, qh += 32, y += 128) {
        for (int l = 0; l < 32; l++) {
            int q0 = ((ql[l] & 15) | ((qh[l] >> 0) & 3) << 4) - 32;
            int q1 = ((ql[l + 32] & 15) | ((qh[l] >> 2) & 3) << 4) - 32;
            int q2 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
            int q3 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
            const int8_t *s = sc + 8 * h + l / 16;
            y[l] = d * (float)s[0] * (float)q0;
            y[l + 32] = d * (float)s[2] * (float)q1;
            y[l + 64] = d * (float)s[4] * (float)q2;
            y[l + 96] = d * (float)s[6] * (float)q3;
        }
    }
}

static void dequantize_q4_k(const void *src, float *dst, size_t n)
{
    const uint8_t *b = src;
    for (size_t i = 0; i < n; i += QK_K, b += 144)
        decode_q4_k(b, dst + i);
}

static void dequantize_q6_k(const void *src, float *dst, size_t n)
{
    const uint8_t *b = src;
    for (size_t i = 0; i < n; i += QK_K, b += 210)
        decode_q6_k(b, dst + i);
}

static float dot_blocks(const uint8_t *b, size_t block_bytes,
                        void (*decode)(const uint8_t *, float *), const float *x,
                        size_t n)
{
    float y[QK_K];
    double acc = 0;
    for (size_t i = 0; i < n; i += QK_K, b += block_bytes) {
        decode(b, y);
        for (int j = 0; j < QK_K; j++)
            acc += (double)y[j] * x[i + j];
    }
    return (float)acc;
}

static float dot_q4_k(const void *row, const float *x, size_t n)
{
    return dot_blocks(row, 144, decode_q4_k, x, n);
}

static float dot_q6_k(const void *row, const float *x, size_t n)
{
    return dot_blocks(row, 210, decode_q6_k, x, n);
}

const quant_ops quant_ops_q4_k = {GGML_TYPE_Q4_K,  QK_K, 144,
                                  dequantize_q4_k, NULL, dot_q4_k};
const quant_ops quant_ops_q6_k = {GGML_TYPE_Q6_K,  QK_K, 210,
                                  dequantize_q6_k, NULL, dot_q6_k};
