/*
 * kernels_int.h — what the kernel files share (kernels.c, kernels_scalar.c,
 * kernels_avx2*.c, kernels_avx512*.c, kernels_neon*.c) and what the kernel
 * tests look into; other modules use kernels.h.
 *
 * The activation blocks (all fields little-endian, no alignment assumed):
 *
 *   Q8_0, 34 bytes per 32 values (the weight format itself):
 *     0   2    d, f16
 *     2   32   q[0..31], int8; value i = d * q[i]
 *
 *   Q8_K, 292 bytes per 256 values (ggml's block_q8_K):
 *     0   4    d, f32 (may be negative: see below)
 *     4   256  q[0..255], int8 in [-127, 127]; value i = d * q[i]
 *     260 32   sums[0..15], int16: sums[g] = q[16g] + ... + q[16g + 15]
 *
 * Q8_0 is quantized as quant.c's (ggml's reference) Q8_0: d = max|x| / 127
 * rounded to f16, q = roundf(x / d) with halves away from zero. Q8_K as
 * ggml's reference: m = the value of largest magnitude (the first one, with
 * its sign), s = -127 / m, q = x * s rounded to nearest with ties to even,
 * d = 1 / s; so d < 0 when m > 0, and m itself becomes -127. A block of
 * zeros gets d = 0, q = 0, sums = 0. A NaN value quantizes to q = 0.
 *
 * The order of float operations in the quantized dot products is part of
 * the contract between paths, so that every path returns the same bits
 * (each block's integer sum is exact on every path; only float rounding
 * could differ, and it does not when the float steps are the same):
 *
 *   Q8_0, Q4_0 (32-value blocks b, integer sum s_b):
 *       acc = 0; for each b: acc += (float)s_b * (dw_b * da_b)
 *   Q4_K (256-value blocks, s_b = sum over sub-blocks of sc * sum(q * qa),
 *         m_b = sum over sub-blocks of m * (sums of the sub-block's values)):
 *       acc = 0; for each b: acc += (da_b * d_b) * (float)s_b;
 *                            acc -= (da_b * dmin_b) * (float)m_b
 *   Q6_K (s_b = sum over sub-blocks of sc * sum((q - 32) * qa)):
 *       acc = 0; for each b: acc += (da_b * d_b) * (float)s_b
 *
 * each step rounded on its own (the files are built without floating-point
 * contraction). Every integer sum fits an int32: at most 16 * 128 * 32 *
 * 16 * 127 in magnitude for Q6_K, less for the others.
 */
#ifndef MLX_AGENT_ENGINE_KERNELS_INT_H
#define MLX_AGENT_ENGINE_KERNELS_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "agent/engine/kernels.h"

#define KRN_QK        32  /* values per Q8_0 / Q4_0 block */
#define KRN_Q8_0_SIZE 34  /* bytes per Q8_0 block */
#define KRN_Q4_0_SIZE 18  /* bytes per Q4_0 block */
#define KRN_QK_K      256 /* values per k-quant super-block */
#define KRN_Q4_K_SIZE 144
#define KRN_Q6_K_SIZE 210
#define KRN_Q8_K_SIZE 292
#define KRN_Q8_K_Q    4   /* offset of q[] in a Q8_K block */
#define KRN_Q8_K_SUMS 260 /* offset of sums[] in a Q8_K block */

/* The tables of each path; the NEON ones exist only in arm64 builds, the
 * AVX2 and AVX-512 ones only in x86-64 builds. */
extern const kernels kernels_scalar;
extern const kernels kernels_avx2;
extern const kernels kernels_avx512;
extern const kernels kernels_neon;
extern const kernels kernels_neon_dot;

/* The table MLX_KERNELS=name selects on this CPU (NULL or "" for the best;
 * a name this CPU cannot run, or an unknown one, logs a warning and gives
 * the best). kernels_get is this with getenv("MLX_KERNELS"), once. */
const kernels *kernels_select(const char *name);

/* Whether the CPU has the arm64 dot-product instructions (false elsewhere):
 * kernels_for(KERNEL_NEON) is then kernels_neon_dot. */
bool kernels_cpu_has_dotprod(void);

/* The scalar Q8_K quantizer. */
void kernels_quantize_q8_k_scalar(const float *x, void *out, size_t n);

/* The quantized products of the SIMD paths, for their tables (arguments as
 * kernels.matmul's): 32-value blocks (Q8_0, Q4_0) and k-quants (Q4_K,
 * Q6_K). */
void kernels_avx2_matmul_q32(ggml_type t, const uint8_t *rows, size_t row_bytes, size_t n,
                             size_t r0, size_t r1, const uint8_t *acts, size_t act_bytes,
                             size_t n_acts, float *y, size_t ldy);
void kernels_avx2_matmul_k(ggml_type t, const uint8_t *rows, size_t row_bytes, size_t n,
                           size_t r0, size_t r1, const uint8_t *acts, size_t act_bytes,
                           size_t n_acts, float *y, size_t ldy);
/* The AVX2 members the AVX-512 table reuses: the quantizers, the float
 * products (they stream from memory as fast with 256-bit vectors) and the
 * KV-cache helpers; arguments as the table's. */
void kernels_avx2_quantize_act(ggml_type t, const float *x, void *out, size_t n);
void kernels_avx2_matmul_float(ggml_type t, const uint8_t *rows, size_t row_bytes,
                               size_t n, size_t r0, size_t r1, const uint8_t *acts,
                               size_t act_bytes, size_t n_acts, float *y, size_t ldy);
void kernels_avx2_f32_to_f16(const float *x, uint16_t *y, size_t n);
float kernels_avx2_dot_f16(const float *q, const uint16_t *k, size_t n);
void kernels_avx2_axpy_f16(float a, const uint16_t *v, float *y, size_t n);

/* A matrix of 32-value blocks (Q8_0, Q4_0) times one to KRN_VEC_ACTS
 * vectors, on x86-64 (kernels_avx2_q.c drives it, each path brings the
 * integer part). The float steps of kernels_int.h's order make one serial
 * chain per row: one addition per block, each waiting for the one before
 * (3 to 4 cycles), slower than the integer work of a block. So rows are
 * taken eight at a time, each row read alone from start to end (which
 * keeps memory streaming), and its per-block terms
 *
 *     t_b = (float)s_b * (dw_b * da_b)
 *
 * are written to a small buffer; the eight rows' chains then run side by
 * side, one vector lane per row. A pass covers at most KRN_VEC_BLOCKS
 * blocks times vectors: longer rows take several passes, each chain
 * carried in y from one pass to the next (a float stored and reloaded is
 * the same float, so the order of the additions is unchanged). */
#define KRN_VEC_ACTS   3
#define KRN_VEC_BLOCKS 768 /* 72 bytes each: about 55 KB of stack */

typedef struct krn_vec_pass {
    size_t nb;     /* blocks in this pass */
    size_t nb8;    /* of which in whole groups of eight: what terms computes */
    size_t cap;    /* entries per vector in the arrays below: a multiple of 8 */
    size_t n_acts; /* vectors, 1 to KRN_VEC_ACTS */
    const uint8_t *act[KRN_VEC_ACTS]; /* each vector's first block of the pass */
    /* Per vector j, block b at [j * cap + b]: the scale as a float, and the
     * integer sum's correction (Q4_0: 8 times the block's sum, the weights
     * being taken as 0..15; Q8_0: 128 times it, for paths that take the
     * weights as unsigned q + 128). */
    float da[KRN_VEC_BLOCKS];
    int32_t corr[KRN_VEC_BLOCKS];
    /* Q4_0 only: each four blocks' values 0-15 (64 bytes), then their
     * values 16-31 (64 bytes), at j * cap * 32 + b / 4 * 128: the order a
     * pair of weight blocks' low and high nibbles come in. */
    uint8_t lohi[KRN_VEC_BLOCKS * 32];
    /* The terms, at j * cap * 8 + b / 8 * 64 + lane * 8 + b % 8 (lane: the
     * row's place in its group of eight): each group of eight blocks' terms
     * of the eight rows lie together, so that the chains read them as one
     * forward stream (eight streams, one per row, confuse the hardware
     * prefetchers that the weights need). */
    float terms[KRN_VEC_BLOCKS * 8];
} krn_vec_pass;

/* The terms of blocks [0, p->nb8) of `rows` weight rows (1 to 8; the
 * first at w, at the pass's first block, the others row_bytes apart) for
 * each of the pass's vectors, written for lanes 0 .. rows - 1. */
typedef void krn_vec_terms_fn(const uint8_t *w, size_t row_bytes, size_t rows,
                              krn_vec_pass *p);

/* kernels.matmul for Q8_0 or Q4_0 weights and n_acts <= KRN_VEC_ACTS, the
 * terms of whole groups of eight blocks from `terms` (the last blocks of a
 * row, fewer than eight, are done here). */
void kernels_x86_matmul_vec(ggml_type t, krn_vec_terms_fn *terms, const uint8_t *rows,
                            size_t row_bytes, size_t nb, size_t r0, size_t r1,
                            const uint8_t *acts, size_t act_bytes, size_t n_acts,
                            float *y, size_t ldy);

/* The AVX-512 path's quantized products, arguments as kernels.matmul's:
 * 32-value blocks (kernels_avx512_q.c) and k-quants (kernels_avx512_k.c,
 * kernels_avx2_k.c built with VNNI). */
void kernels_avx512_matmul_q32(ggml_type t, const uint8_t *rows, size_t row_bytes,
                               size_t n, size_t r0, size_t r1, const uint8_t *acts,
                               size_t act_bytes, size_t n_acts, float *y, size_t ldy);
void kernels_avx2_matmul_k_avx512(ggml_type t, const uint8_t *rows, size_t row_bytes,
                                  size_t n, size_t r0, size_t r1, const uint8_t *acts,
                                  size_t act_bytes, size_t n_acts, float *y, size_t ldy);

/* That product with the AVX2 terms (kernels_avx2_vec.c); nb is the number
 * of blocks per row. */
void kernels_avx2_matmul_vec(ggml_type t, const uint8_t *rows, size_t row_bytes,
                             size_t nb, size_t r0, size_t r1, const uint8_t *acts,
                             size_t act_bytes, size_t n_acts, float *y, size_t ldy);

/* NEON: the plain ones, and the _dot ones built with the dot-product
 * extension. */
void kernels_neon_matmul_q32(ggml_type t, const uint8_t *rows, size_t row_bytes, size_t n,
                             size_t r0, size_t r1, const uint8_t *acts, size_t act_bytes,
                             size_t n_acts, float *y, size_t ldy);
void kernels_neon_matmul_k(ggml_type t, const uint8_t *rows, size_t row_bytes, size_t n,
                           size_t r0, size_t r1, const uint8_t *acts, size_t act_bytes,
                           size_t n_acts, float *y, size_t ldy);
void kernels_neon_matmul_q32_dot(ggml_type t, const uint8_t *rows, size_t row_bytes,
                                 size_t n, size_t r0, size_t r1, const uint8_t *acts,
                                 size_t act_bytes, size_t n_acts, float *y, size_t ldy);
void kernels_neon_matmul_k_dot(ggml_type t, const uint8_t *rows, size_t row_bytes,
                               size_t n, size_t r0, size_t r1, const uint8_t *acts,
                               size_t act_bytes, size_t n_acts, float *y, size_t ldy);

static inline float krn_load_f32(const uint8_t *p)
{
    float f;
    memcpy(&f, p, 4);
    return f;
}

static inline uint16_t krn_load_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static inline int16_t krn_load_i16(const uint8_t *p)
{
    return (int16_t)krn_load_u16(p);
}

/* Scale and minimum of sub-block j of a Q4_K super-block, from its 12
 * packed bytes s (the layout is in quant_k.c). */
static inline void krn_q4_k_scale_min(const uint8_t *s, int j, int *sc, int *m)
{
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 15) | (s[j - 4] >> 6) << 4;
        *m = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
    }
}

#endif
