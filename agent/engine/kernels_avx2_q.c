/*
 * kernels_avx2_q.c — the products of 32-value blocks (Q8_0 and Q4_0
 * weights, Q8_0 activations) on AVX2: which shape goes where, and the
 * batch kernel. A matrix times one to three vectors (decoding) is
 * kernels_avx2_vec.c's; the k-quants are kernels_avx2_k.c's.
 *
 * A batch takes four rows together, one lane each, a last group of fewer
 * rows repeating its last row and storing only what it owns, and decodes
 * each weight block once for two vectors. The products are integer:
 * VPMADDUBSW multiplies unsigned bytes by signed bytes and adds neighbours
 * into int16, VPMADDWD adds neighbouring int16 into int32. No int16 can
 * saturate: the largest pair is 2 * 128 * 127 (a Q8_0 weight of -128,
 * taken as its magnitude). Each block's eight int32 partial sums are
 * reduced four rows at a time with unpack-and-add steps, and the float
 * steps after them are those of kernels_int.h, one lane per row, so each
 * row's result has the scalar path's bits.
 */
#include <immintrin.h>

#include "agent/engine/kernels_int.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))

/* [sum of a's lanes, of b's, of c's, of d's]: unpack-and-add steps (per
 * 128-bit half, the first two leave [a0 + a2, b0 + b2, a1 + a3, b1 + b3]),
 * cheaper than three VPHADDD on recent cores. */
static ALWAYS_INLINE __m128i hsum4_epi32(__m256i a, __m256i b, __m256i c, __m256i d)
{
    __m256i ab =
        _mm256_add_epi32(_mm256_unpacklo_epi32(a, b), _mm256_unpackhi_epi32(a, b));
    __m256i cd =
        _mm256_add_epi32(_mm256_unpacklo_epi32(c, d), _mm256_unpackhi_epi32(c, d));
    __m256i abcd =
        _mm256_add_epi32(_mm256_unpacklo_epi64(ab, cd), _mm256_unpackhi_epi64(ab, cd));
    return _mm_add_epi32(_mm256_castsi256_si128(abcd), _mm256_extracti128_si256(abcd, 1));
}

static ALWAYS_INLINE float f16_at(const uint8_t *p)
{
    return _cvtsh_ss(krn_load_u16(p));
}

/* The f16 at each of four places, as four floats. */
static ALWAYS_INLINE __m128 f16x4(const uint8_t *p0, const uint8_t *p1, const uint8_t *p2,
                                  const uint8_t *p3)
{
    __m128i h = _mm_cvtsi32_si128(krn_load_u16(p0));
    h = _mm_insert_epi16(h, krn_load_u16(p1), 1);
    h = _mm_insert_epi16(h, krn_load_u16(p2), 2);
    h = _mm_insert_epi16(h, krn_load_u16(p3), 3);
    return _mm_cvtph_ps(h);
}

/* The 32 nibbles of a Q4_0 block as bytes 0..31 in value order: the low
 * nibbles are values 0-15, the high ones 16-31. The 16 bytes go to both
 * halves at once and the upper half is shifted by 4 (VPSRLVD), cheaper
 * than shifting and inserting one half. */
static ALWAYS_INLINE __m256i q4_0_unpack(const uint8_t *q, __m256i low4)
{
    __m256i both = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)q));
    both = _mm256_srlv_epi32(both, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4));
    return _mm256_and_si256(both, low4);
}

/* Writes the valid lanes of v (rows r .. r + valid - 1) at y. */
static ALWAYS_INLINE void store_rows(float *y, __m128 v, size_t valid)
{
    if (valid == 4) {
        _mm_storeu_ps(y, v);
        return;
    }
    float t[4];
    _mm_storeu_ps(t, v);
    for (size_t i = 0; i < valid; i++)
        y[i] = t[i];
}

/* One block's products as eight int32 partial sums: a Q4_0 block's
 * unpacked q (0..15) or a Q8_0 block's q, times the activation's av. For
 * Q4_0 the sums are of q * a, not (q - 8) * a: the caller takes off 8
 * times the activation block's sum (q32_act_sum8). */
static ALWAYS_INLINE __m256i q32_block(ggml_type t, __m256i q, __m256i av)
{
    const __m256i ones = _mm256_set1_epi16(1);
    if (t == GGML_TYPE_Q4_0)
        return _mm256_madd_epi16(_mm256_maddubs_epi16(q, av), ones);
    /* VPMADDUBSW wants one unsigned operand: the weight's magnitude, with
     * its sign moved onto the activation. */
    __m256i prod = _mm256_maddubs_epi16(_mm256_abs_epi8(q), _mm256_sign_epi8(av, q));
    return _mm256_madd_epi16(prod, ones);
}

/* 8 times the sum of a Q8_0 activation block's 32 values (av), as eight
 * int32 partial sums. */
static ALWAYS_INLINE __m256i q32_act_sum8(__m256i av)
{
    return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(8), av),
                             _mm256_set1_epi16(1));
}

static ALWAYS_INLINE __m256i q32_load(ggml_type t, const uint8_t *block)
{
    if (t == GGML_TYPE_Q4_0)
        return q4_0_unpack(block + 2, _mm256_set1_epi8(15));
    return _mm256_loadu_si256((const __m256i *)(block + 2));
}

static ALWAYS_INLINE size_t q32_size(ggml_type t)
{
    return t == GGML_TYPE_Q4_0 ? KRN_Q4_0_SIZE : KRN_Q8_0_SIZE;
}

/* Four rows (one lane each) times na activations (1 or 2): each weight
 * block is loaded and unpacked once for both. */
static ALWAYS_INLINE void q32_rows4(ggml_type t, const uint8_t *const w[4],
                                    const uint8_t *const a[2], int na, size_t nb,
                                    __m128 out[2])
{
    const size_t ws = q32_size(t);
    __m128 acc[2] = {_mm_setzero_ps(), _mm_setzero_ps()};
    for (size_t b = 0; b < nb; b++) {
        size_t ow = b * ws;
        __m256i q[4];
        for (int r = 0; r < 4; r++)
            q[r] = q32_load(t, w[r] + ow);
        __m128 dw = f16x4(w[0] + ow, w[1] + ow, w[2] + ow, w[3] + ow);
        for (int j = 0; j < na; j++) {
            const uint8_t *ab = a[j] + b * KRN_Q8_0_SIZE;
            __m256i av = _mm256_loadu_si256((const __m256i *)(ab + 2));
            __m256i p[4];
            for (int r = 0; r < 4; r++)
                p[r] = q32_block(t, q[r], av);
            if (t == GGML_TYPE_Q4_0) { /* the same sum for every row */
                __m256i s8 = q32_act_sum8(av);
                for (int r = 0; r < 4; r++)
                    p[r] = _mm256_sub_epi32(p[r], s8);
            }
            __m128 s = _mm_cvtepi32_ps(hsum4_epi32(p[0], p[1], p[2], p[3]));
            __m128 scale = _mm_mul_ps(dw, _mm_set1_ps(f16_at(ab)));
            acc[j] = _mm_add_ps(acc[j], _mm_mul_ps(s, scale));
        }
    }
    out[0] = acc[0];
    out[1] = acc[1];
}

static ALWAYS_INLINE void q32_matmul(ggml_type t, const uint8_t *rows, size_t row_bytes,
                                     size_t nb, size_t r0, size_t r1, const uint8_t *acts,
                                     size_t act_bytes, size_t n_acts, float *y,
                                     size_t ldy)
{
    if (n_acts <= KRN_VEC_ACTS) { /* rows streamed one by one */
        kernels_avx2_matmul_vec(t, rows, row_bytes, nb, r0, r1, acts, act_bytes, n_acts,
                                y, ldy);
        return;
    }
    for (size_t r = r0; r < r1; r += 4) {
        size_t valid = r1 - r < 4 ? r1 - r : 4;
        const uint8_t *w[4];
        for (size_t i = 0; i < 4; i++)
            w[i] = rows + (r + (i < valid ? i : valid - 1)) * row_bytes;
        for (size_t j = 0; j < n_acts; j += 2) {
            const uint8_t *a[2] = {acts + j * act_bytes, acts + (j + 1) * act_bytes};
            __m128 v[2];
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

void kernels_avx2_matmul_q32(ggml_type t, const uint8_t *rows, size_t row_bytes, size_t n,
                             size_t r0, size_t r1, const uint8_t *acts, size_t act_bytes,
                             size_t n_acts, float *y, size_t ldy)
{
    /* One copy per type, so the type's tests fold away. */
    if (t == GGML_TYPE_Q4_0)
        q32_matmul(GGML_TYPE_Q4_0, rows, row_bytes, n / KRN_QK, r0, r1, acts, act_bytes,
                   n_acts, y, ldy);
    else
        q32_matmul(GGML_TYPE_Q8_0, rows, row_bytes, n / KRN_QK, r0, r1, acts, act_bytes,
                   n_acts, y, ldy);
}
