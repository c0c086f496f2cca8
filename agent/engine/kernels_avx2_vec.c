/*
 * kernels_avx2_vec.c — a matrix of 32-value blocks (Q8_0, Q4_0) times one
 * to three vectors on x86-64, the decoding case: the driver that the AVX2
 * and AVX-512 paths share (kernels_int.h, krn_vec_pass, says why rows go
 * eight at a time through a buffer of terms), and the AVX2 terms.
 *
 * Per row, the terms of eight blocks come out of one pass of integer work:
 * each block's 32 products summed into int32 lanes, the lanes of eight
 * blocks reduced to one vector of eight sums, then scaled as eight floats.
 * The reductions use unpack-and-add steps, not VPHADDD, which costs about
 * twice as much on recent cores (two shuffles and an add, on fewer ports).
 *
 * Q4_0: a pair of blocks' 16 packed bytes each go to the two halves of one
 * vector, so its low nibbles are both blocks' values 0-15 and its high
 * nibbles their values 16-31; the vectors were rearranged to match when
 * the pass was prepared (lohi). VPMADDUBSW multiplies the nibbles (0..15,
 * unsigned) by the vector's bytes, the two products are added as int16
 * (at most 4 * 15 * 127, no saturation) and VPMADDWD widens them: four
 * int32 lanes per block. The weights count as 0..15, not -8..7; 8 times
 * the vector block's sum is taken off after (corr).
 *
 * Q8_0: VPMADDUBSW wants one unsigned operand: the weight's magnitude,
 * with its sign moved onto the vector's byte (the largest pair, 2 * 128 *
 * 127, fits int16); eight int32 lanes per block.
 *
 * The block scales come in as eight f16 inserted one by one: each lies
 * 18 or 34 bytes from the next, which no AVX2 load gathers more cheaply.
 */
#include <immintrin.h>

#include "agent/engine/kernels_int.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))

static ALWAYS_INLINE float f16_at(const uint8_t *p)
{
    return _cvtsh_ss(krn_load_u16(p));
}

/* The f16 scales of eight blocks `stride` bytes apart, as floats. */
static ALWAYS_INLINE __m256 f16x8(const uint8_t *p, size_t stride)
{
    __m128i h = _mm_cvtsi32_si128(krn_load_u16(p));
    h = _mm_insert_epi16(h, krn_load_u16(p + stride), 1);
    h = _mm_insert_epi16(h, krn_load_u16(p + 2 * stride), 2);
    h = _mm_insert_epi16(h, krn_load_u16(p + 3 * stride), 3);
    h = _mm_insert_epi16(h, krn_load_u16(p + 4 * stride), 4);
    h = _mm_insert_epi16(h, krn_load_u16(p + 5 * stride), 5);
    h = _mm_insert_epi16(h, krn_load_u16(p + 6 * stride), 6);
    h = _mm_insert_epi16(h, krn_load_u16(p + 7 * stride), 7);
    return _mm256_cvtph_ps(h);
}

/* Per 128-bit half: [a0 + a2, b0 + b2, a1 + a3, b1 + b3]. */
static ALWAYS_INLINE __m256i fold2(__m256i a, __m256i b)
{
    return _mm256_add_epi32(_mm256_unpacklo_epi32(a, b), _mm256_unpackhi_epi32(a, b));
}

/* Per half, from x = fold2(a, b) and y = fold2(c, d): the sums of a's,
 * b's, c's and d's four lanes in that half. */
static ALWAYS_INLINE __m256i fold4(__m256i x, __m256i y)
{
    return _mm256_add_epi32(_mm256_unpacklo_epi64(x, y), _mm256_unpackhi_epi64(x, y));
}

/* Q4_0 pair sums s[k] (four lanes of block 2k, then four of block 2k + 1)
 * as eight block sums in order: fold4 leaves blocks 0 2 4 6 | 1 3 5 7. */
static ALWAYS_INLINE __m256i sums_of_pairs(const __m256i s[4])
{
    __m256i u = fold4(fold2(s[0], s[1]), fold2(s[2], s[3]));
    return _mm256_permutevar8x32_epi32(u, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* Eight blocks' sums s[k] (eight lanes each) in order. */
static ALWAYS_INLINE __m256i sums_of_eight(const __m256i s[8])
{
    __m256i u0 = fold4(fold2(s[0], s[1]), fold2(s[2], s[3]));
    __m256i u1 = fold4(fold2(s[4], s[5]), fold2(s[6], s[7]));
    return _mm256_add_epi32(_mm256_permute2x128_si256(u0, u1, 0x20),
                            _mm256_permute2x128_si256(u0, u1, 0x31));
}

/* One vector's share of a pass, for one row, as local pointers: the
 * stores through `out` (unaligned-store intrinsics may alias anything)
 * would otherwise make the compiler reload the pass's fields after each. */
typedef struct vec_view {
    const uint8_t *act;  /* the blocks (Q8_0) */
    const uint8_t *lohi; /* the rearranged values (Q4_0) */
    const float *da;
    const int32_t *corr;
    float *out; /* lane 0's terms of blocks 0-7 */
} vec_view;

static ALWAYS_INLINE void view_of(krn_vec_pass *p, size_t na, vec_view v[KRN_VEC_ACTS])
{
    for (size_t j = 0; j < na; j++)
        v[j] = (vec_view){p->act[j], p->lohi + j * p->cap * 32, p->da + j * p->cap,
                          p->corr + j * p->cap, p->terms + j * p->cap * 8};
}

/* The terms of blocks b .. b + 7 from their integer sums si (less the
 * pass's corrections where `corrected`) and weight scales dw, stored for
 * the row. */
static ALWAYS_INLINE void put_terms(const vec_view *v, size_t lane, size_t b, __m256i si,
                                    __m256 dw, bool corrected)
{
    if (corrected)
        si = _mm256_sub_epi32(si, _mm256_loadu_si256((const __m256i *)(v->corr + b)));
    __m256 scale = _mm256_mul_ps(dw, _mm256_loadu_ps(v->da + b));
    _mm256_storeu_ps(v->out + b * 8 + lane * 8,
                     _mm256_mul_ps(_mm256_cvtepi32_ps(si), scale));
}

/* The integer half of eight Q4_0 blocks' terms at wb: per vector, the
 * eight block sums in order (corrections not yet taken), and the weight
 * scales. */
static ALWAYS_INLINE void q4_0_ints(const uint8_t *wb, const vec_view *vw, size_t b,
                                    size_t na, __m256i si[KRN_VEC_ACTS], __m256 *dw)
{
    const __m256i low4 = _mm256_set1_epi8(15), ones = _mm256_set1_epi16(1);
    __m256i lo[4], hi[4];
    for (int k = 0; k < 4; k++) {
        const uint8_t *q = wb + 2 * k * KRN_Q4_0_SIZE + 2;
        __m256i v = _mm256_inserti128_si256(
            _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)q)),
            _mm_loadu_si128((const __m128i *)(q + KRN_Q4_0_SIZE)), 1);
        lo[k] = _mm256_and_si256(v, low4);
        hi[k] = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
    }
    *dw = f16x8(wb, KRN_Q4_0_SIZE);
    for (size_t j = 0; j < na; j++) {
        const uint8_t *a = vw[j].lohi + b * 32;
        __m256i s[4];
        for (int k = 0; k < 4; k++) {
            const uint8_t *ak = a + k / 2 * 128 + k % 2 * 32;
            __m256i plo =
                _mm256_maddubs_epi16(lo[k], _mm256_loadu_si256((const __m256i *)ak));
            __m256i phi = _mm256_maddubs_epi16(
                hi[k], _mm256_loadu_si256((const __m256i *)(ak + 64)));
            s[k] = _mm256_madd_epi16(_mm256_add_epi16(plo, phi), ones);
        }
        si[j] = sums_of_pairs(s);
    }
}

static ALWAYS_INLINE void terms_q4_0(const uint8_t *w, size_t row_bytes, size_t rows,
                                     krn_vec_pass *p, size_t na)
{
    vec_view vw[KRN_VEC_ACTS];
    view_of(p, na, vw);
    const size_t nb8 = p->nb8;
    for (size_t lane = 0; lane < rows; lane++, w += row_bytes) {
        for (size_t b = 0; b < nb8; b += 8) {
            __m256i si[KRN_VEC_ACTS];
            __m256 dw;
            q4_0_ints(w + b * KRN_Q4_0_SIZE, vw, b, na, si, &dw);
            for (size_t j = 0; j < na; j++)
                put_terms(&vw[j], lane, b, si[j], dw, true);
        }
    }
}

static ALWAYS_INLINE void terms_q8_0(const uint8_t *w, size_t row_bytes, size_t rows,
                                     krn_vec_pass *p, size_t na)
{
    const __m256i ones = _mm256_set1_epi16(1);
    vec_view vw[KRN_VEC_ACTS];
    view_of(p, na, vw);
    const size_t nb8 = p->nb8;
    for (size_t lane = 0; lane < rows; lane++, w += row_bytes)
        for (size_t b = 0; b < nb8; b += 8) {
            const uint8_t *wb = w + b * KRN_Q8_0_SIZE;
            __m256i mag[8];
            for (int k = 0; k < 8; k++)
                mag[k] =
                    _mm256_loadu_si256((const __m256i *)(wb + k * KRN_Q8_0_SIZE + 2));
            __m256 dw = f16x8(wb, KRN_Q8_0_SIZE);
            for (size_t j = 0; j < na; j++) {
                const uint8_t *a = vw[j].act + b * KRN_Q8_0_SIZE + 2;
                __m256i s[8];
                for (int k = 0; k < 8; k++) {
                    __m256i av =
                        _mm256_loadu_si256((const __m256i *)(a + k * KRN_Q8_0_SIZE));
                    __m256i prod = _mm256_maddubs_epi16(_mm256_abs_epi8(mag[k]),
                                                        _mm256_sign_epi8(av, mag[k]));
                    s[k] = _mm256_madd_epi16(prod, ones);
                }
                put_terms(&vw[j], lane, b, sums_of_eight(s), dw, false);
            }
        }
}

/* One copy per number of vectors, so the loops over them unroll. */
static void avx2_terms_q4_0(const uint8_t *w, size_t row_bytes, size_t rows,
                            krn_vec_pass *p)
{
    if (p->n_acts == 1)
        terms_q4_0(w, row_bytes, rows, p, 1);
    else if (p->n_acts == 2)
        terms_q4_0(w, row_bytes, rows, p, 2);
    else
        terms_q4_0(w, row_bytes, rows, p, 3);
}

static void avx2_terms_q8_0(const uint8_t *w, size_t row_bytes, size_t rows,
                            krn_vec_pass *p)
{
    if (p->n_acts == 1)
        terms_q8_0(w, row_bytes, rows, p, 1);
    else if (p->n_acts == 2)
        terms_q8_0(w, row_bytes, rows, p, 2);
    else
        terms_q8_0(w, row_bytes, rows, p, 3);
}

void kernels_avx2_matmul_vec(ggml_type t, const uint8_t *rows, size_t row_bytes,
                             size_t nb, size_t r0, size_t r1, const uint8_t *acts,
                             size_t act_bytes, size_t n_acts, float *y, size_t ldy)
{
    kernels_x86_matmul_vec(t, t == GGML_TYPE_Q4_0 ? avx2_terms_q4_0 : avx2_terms_q8_0,
                           rows, row_bytes, nb, r0, r1, acts, act_bytes, n_acts, y, ldy);
}

/* The driver --------------------------------------------------------------- */

/* 8 times (Q4_0) or 128 times (Q8_0) the sum of a vector block's 32
 * bytes av, as eight int32 partial sums: VPMADDUBSW by ones, then
 * VPMADDWD by ones. */
static ALWAYS_INLINE __m256i block_sum(__m256i av)
{
    return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), av),
                             _mm256_set1_epi16(1));
}

/* Vector block a (its 32 bytes av) at block b of vector j's arrays. */
static ALWAYS_INLINE void prepare_lohi(krn_vec_pass *p, size_t j, size_t b, __m256i av)
{
    uint8_t *q = p->lohi + (j * p->cap + b / 4 * 4) * 32 + b % 4 * 16;
    _mm_storeu_si128((__m128i *)q, _mm256_castsi256_si128(av));
    _mm_storeu_si128((__m128i *)(q + 64), _mm256_extracti128_si256(av, 1));
}

/* Blocks [b0, b0 + p->nb) of each vector, as the terms functions read
 * them: eight blocks at a time, their sums reduced together. */
static void pass_prepare(ggml_type t, krn_vec_pass *p, const uint8_t *acts,
                         size_t act_bytes, size_t b0)
{
    int shift = t == GGML_TYPE_Q4_0 ? 3 : 7; /* times 8, times 128 */
    for (size_t j = 0; j < p->n_acts; j++) {
        const uint8_t *a = acts + j * act_bytes + b0 * KRN_Q8_0_SIZE;
        p->act[j] = a;
        float *da = p->da + j * p->cap;
        int32_t *corr = p->corr + j * p->cap;
        size_t b = 0;
        for (; b < p->nb8; b += 8) {
            const uint8_t *ab = a + b * KRN_Q8_0_SIZE;
            __m256i s[8];
            for (int k = 0; k < 8; k++) {
                __m256i av =
                    _mm256_loadu_si256((const __m256i *)(ab + k * KRN_Q8_0_SIZE + 2));
                s[k] = block_sum(av);
                if (t == GGML_TYPE_Q4_0)
                    prepare_lohi(p, j, b + k, av);
            }
            _mm256_storeu_ps(da + b, f16x8(ab, KRN_Q8_0_SIZE));
            _mm256_storeu_si256((__m256i *)(corr + b),
                                _mm256_slli_epi32(sums_of_eight(s), shift));
        }
        for (; b < p->nb; b++) { /* the last blocks, for pass_tail */
            const uint8_t *ab = a + b * KRN_Q8_0_SIZE;
            int32_t sum = 0;
            for (int i = 0; i < KRN_QK; i++)
                sum += (int8_t)ab[2 + i];
            da[b] = f16_at(ab);
            corr[b] = sum * (1 << shift);
        }
    }
}

/* The terms of the pass's last blocks, fewer than eight, one by one, and
 * zeros after them up to the group of eight (adding +0 to a sum that
 * starts at +0 changes no bit of it). */
static void pass_tail(ggml_type t, const uint8_t *w, krn_vec_pass *p, size_t lane)
{
    size_t ws = t == GGML_TYPE_Q4_0 ? KRN_Q4_0_SIZE : KRN_Q8_0_SIZE;
    for (size_t j = 0; j < p->n_acts; j++) {
        float *out = p->terms + j * p->cap * 8 + p->nb8 * 8 + lane * 8;
        for (size_t b = p->nb8; b < p->nb8 + 8; b++) {
            if (b >= p->nb) {
                out[b % 8] = 0;
                continue;
            }
            const uint8_t *wb = w + b * ws;
            const int8_t *a = (const int8_t *)(p->act[j] + b * KRN_Q8_0_SIZE + 2);
            int32_t s = 0;
            if (t == GGML_TYPE_Q4_0) {
                for (int i = 0; i < KRN_QK / 2; i++)
                    s += ((wb[2 + i] & 15) - 8) * a[i] +
                         ((wb[2 + i] >> 4) - 8) * a[i + 16];
            } else {
                for (int i = 0; i < KRN_QK; i++)
                    s += (int8_t)wb[2 + i] * a[i];
            }
            out[b % 8] = (float)s * (f16_at(wb) * p->da[j * p->cap + b]);
        }
    }
}

/* acc plus, block by block, the terms of a group of eight rows: each eight
 * blocks' 8 x 8 terms transposed (row-major to one vector per block, its
 * lanes the rows) and added in block order. */
static __m256 pass_chain(const float *terms, size_t groups, __m256 acc)
{
    for (size_t g = 0; g < groups; g++, terms += 64) {
        __m256 r[8];
        for (int i = 0; i < 8; i++)
            r[i] = _mm256_loadu_ps(terms + 8 * i);
        __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
        __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
        __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
        __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
        __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xee);
        __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xee);
        __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xee);
        __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xee);
        acc = _mm256_add_ps(acc, _mm256_permute2f128_ps(u0, u4, 0x20));
        acc = _mm256_add_ps(acc, _mm256_permute2f128_ps(u1, u5, 0x20));
        acc = _mm256_add_ps(acc, _mm256_permute2f128_ps(u2, u6, 0x20));
        acc = _mm256_add_ps(acc, _mm256_permute2f128_ps(u3, u7, 0x20));
        acc = _mm256_add_ps(acc, _mm256_permute2f128_ps(u0, u4, 0x31));
        acc = _mm256_add_ps(acc, _mm256_permute2f128_ps(u1, u5, 0x31));
        acc = _mm256_add_ps(acc, _mm256_permute2f128_ps(u2, u6, 0x31));
        acc = _mm256_add_ps(acc, _mm256_permute2f128_ps(u3, u7, 0x31));
    }
    return acc;
}

void kernels_x86_matmul_vec(ggml_type t, krn_vec_terms_fn *terms, const uint8_t *rows,
                            size_t row_bytes, size_t nb, size_t r0, size_t r1,
                            const uint8_t *acts, size_t act_bytes, size_t n_acts,
                            float *y, size_t ldy)
{
    size_t ws = t == GGML_TYPE_Q4_0 ? KRN_Q4_0_SIZE : KRN_Q8_0_SIZE;
    krn_vec_pass p;
    p.n_acts = n_acts;
    p.cap = KRN_VEC_BLOCKS / n_acts / 8 * 8;
    for (size_t b0 = 0; b0 < nb; b0 += p.cap) {
        p.nb = nb - b0 < p.cap ? nb - b0 : p.cap;
        p.nb8 = p.nb / 8 * 8;
        size_t groups = (p.nb + 7) / 8;
        pass_prepare(t, &p, acts, act_bytes, b0);
        for (size_t r = r0; r < r1; r += 8) {
            size_t valid = r1 - r < 8 ? r1 - r : 8;
            const uint8_t *w = rows + r * row_bytes + b0 * ws;
            if (p.nb8 > 0)
                terms(w, row_bytes, valid, &p);
            if (p.nb8 < p.nb)
                for (size_t lane = 0; lane < valid; lane++)
                    pass_tail(t, w + lane * row_bytes, &p, lane);
            for (size_t j = 0; j < n_acts; j++) {
                float *tj = p.terms + j * p.cap * 8;
                for (size_t lane = valid; lane < 8; lane++) /* rows past r1 */
                    for (size_t g = 0; g < groups; g++)
                        memset(tj + g * 64 + lane * 8, 0, 8 * sizeof(float));
                float *yj = y + j * ldy + r, part[8] = {0};
                if (b0 > 0) /* the chains so far, from the passes before */
                    memcpy(part, yj, valid * sizeof(float));
                __m256 acc = pass_chain(tj, groups, _mm256_loadu_ps(part));
                _mm256_storeu_ps(part, acc);
                memcpy(yj, part, valid * sizeof(float));
            }
        }
    }
}
