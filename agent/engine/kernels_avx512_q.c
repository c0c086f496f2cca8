/*
 * kernels_avx512_q.c — the terms of 32-value blocks (Q8_0, Q4_0) for the
 * AVX-512 path (kernels_int.h, krn_vec_pass; kernels_avx2_vec.c drives
 * them): AVX-512 VNNI's VPDPBUSD multiplies unsigned bytes by signed bytes
 * and adds each four products into an int32 lane in one instruction, where
 * AVX2 needs three; AVX-512 BW's VPERMT2W picks words out of two vectors.
 * On 256-bit vectors (AVX-512 VL): 512-bit ones run at half rate on some
 * cores and lower the clock on others, and these loops gain nothing from
 * them.
 *
 * Q4_0, eight blocks (144 bytes) at a time: five loads cover them; one
 * VPERMT2W per pair of blocks gathers their 16 + 16 packed bytes (every
 * block starts at an even byte, so words suffice), two more gather the
 * eight f16 scales, and no byte is loaded twice. The low nibbles are both
 * blocks' values 0-15, the high ones their values 16-31, as the pass laid
 * the vectors out (lohi); two VPDPBUSD give four int32 lanes per block.
 * The weights count as 0..15: 8 times the vector block's sum is taken off
 * after (corr).
 *
 * Q8_0: VPDPBUSD wants the weights unsigned: q + 128 (q XOR 0x80), and
 * 128 times the vector block's sum is taken off after (corr); every sum
 * fits an int32 (at most 32 * 255 * 127). Eight int32 lanes per block.
 *
 * Each block's lanes are reduced with unpack-and-add steps (VPHADDD costs
 * about twice as much), eight blocks at a time, and the float steps are
 * kernels_int.h's, so results have the scalar path's bits.
 *
 * Built with -mavx512f -mavx512bw -mavx512vl -mavx512vnni besides the AVX2
 * flags (kernels.cmake), reached only through the table that kernels.c
 * hands out once CPUID and XCR0 say the CPU and the OS have them.
 */
#include <immintrin.h>

#include "agent/engine/kernels_int.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))

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

/* The terms of blocks b .. b + 7 from their integer sums si and weight
 * scales dw, stored for the row: (si - corr) * (dw * da). */
static ALWAYS_INLINE void put_terms(const vec_view *v, size_t lane, size_t b, __m256i si,
                                    __m256 dw)
{
    si = _mm256_sub_epi32(si, _mm256_loadu_si256((const __m256i *)(v->corr + b)));
    __m256 scale = _mm256_mul_ps(dw, _mm256_loadu_ps(v->da + b));
    _mm256_storeu_ps(v->out + b * 8 + lane * 8,
                     _mm256_mul_ps(_mm256_cvtepi32_ps(si), scale));
}

/* Word indices for VPERMT2W over L[k], L[k + 1] (words 16k .. 16k + 31 of
 * eight Q4_0 blocks, block i's scale at word 9i, its bytes at words 9i + 1
 * .. 9i + 8): the bytes of blocks 2k and 2k + 1. */
static ALWAYS_INLINE __m256i q4_0_pair_index(int k)
{
    short o = (short)(2 * k); /* 18k + 1 - 16k: block 2k's bytes start at o + 1 */
    return _mm256_setr_epi16(o + 1, o + 2, o + 3, o + 4, o + 5, o + 6, o + 7, o + 8,
                             o + 10, o + 11, o + 12, o + 13, o + 14, o + 15, o + 16,
                             o + 17);
}

/* Eight Q4_0 blocks at wb unpacked: each pair's low nibbles (both blocks'
 * values 0-15) and high nibbles (values 16-31), and the weight scales as
 * floats. */
typedef struct q4_0_unpacked {
    __m256i lo[4], hi[4];
    __m256 dw;
} q4_0_unpacked;

static ALWAYS_INLINE void q4_0_unpack(const uint8_t *wb, q4_0_unpacked *u)
{
    const __m256i low4 = _mm256_set1_epi8(15);
    /* Scales: blocks 0-3 at words 0, 9, 18, 27 of L[0], L[1]; blocks 4-7
     * at words 36, 45, 54, 63, that is 4, 13, 22, 31 of L[2], L[3]. */
    const __m256i d03 =
        _mm256_setr_epi16(0, 9, 18, 27, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m256i d47 =
        _mm256_setr_epi16(4, 13, 22, 31, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    __m256i L[5];
    for (int k = 0; k < 4; k++)
        L[k] = _mm256_loadu_si256((const __m256i *)(wb + 32 * k));
    L[4] = _mm256_maskz_loadu_epi16(0xff, wb + 128); /* bytes 128-143 only */
    for (int k = 0; k < 4; k++) {
        __m256i v = _mm256_permutex2var_epi16(L[k], q4_0_pair_index(k), L[k + 1]);
        u->lo[k] = _mm256_and_si256(v, low4);
        u->hi[k] = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
    }
    __m128i h03 = _mm256_castsi256_si128(_mm256_permutex2var_epi16(L[0], d03, L[1]));
    __m128i h47 = _mm256_castsi256_si128(_mm256_permutex2var_epi16(L[2], d47, L[3]));
    u->dw = _mm256_cvtph_ps(_mm_unpacklo_epi64(h03, h47));
}

/* Per vector, the pair sums s[j][k] of unpacked blocks b .. b + 7: four
 * lanes of block 2k, then four of block 2k + 1. */
static ALWAYS_INLINE void q4_0_dots(const q4_0_unpacked *u, const vec_view *vw, size_t b,
                                    size_t na, __m256i s[KRN_VEC_ACTS][4])
{
    for (size_t j = 0; j < na; j++) {
        const uint8_t *a = vw[j].lohi + b * 32;
        for (int k = 0; k < 4; k++) {
            const uint8_t *ak = a + k / 2 * 128 + k % 2 * 32;
            __m256i acc = _mm256_dpbusd_epi32(_mm256_setzero_si256(), u->lo[k],
                                              _mm256_loadu_si256((const __m256i *)ak));
            s[j][k] = _mm256_dpbusd_epi32(acc, u->hi[k],
                                          _mm256_loadu_si256((const __m256i *)(ak + 64)));
        }
    }
}

static ALWAYS_INLINE void q4_0_ints(const uint8_t *wb, const vec_view *vw, size_t b,
                                    size_t na, __m256i s[KRN_VEC_ACTS][4], __m256 *dw)
{
    q4_0_unpacked u;
    q4_0_unpack(wb, &u);
    q4_0_dots(&u, vw, b, na, s);
    *dw = u.dw;
}

/* The float half: the pair sums reduced to eight block sums, scaled. */
static ALWAYS_INLINE void q4_0_floats(const vec_view *vw, size_t lane, size_t b,
                                      size_t na, __m256i s[KRN_VEC_ACTS][4], __m256 dw)
{
    /* fold4 leaves the blocks in the order 0 2 4 6 | 1 3 5 7: back to 0-7. */
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (size_t j = 0; j < na; j++) {
        __m256i u = fold4(fold2(s[j][0], s[j][1]), fold2(s[j][2], s[j][3]));
        put_terms(&vw[j], lane, b, _mm256_permutevar8x32_epi32(u, order), dw);
    }
}

static ALWAYS_INLINE void terms_q4_0(const uint8_t *w, size_t row_bytes, size_t rows,
                                     krn_vec_pass *p, size_t na)
{
    vec_view vw[KRN_VEC_ACTS];
    view_of(p, na, vw);
    const size_t nb8 = p->nb8;
    for (size_t lane = 0; lane < rows; lane++, w += row_bytes) {
        if (na > 1) { /* two groups' sums would not fit the registers */
            for (size_t b = 0; b < nb8; b += 8) {
                __m256i s[KRN_VEC_ACTS][4];
                __m256 dw;
                q4_0_ints(w + b * KRN_Q4_0_SIZE, vw, b, na, s, &dw);
                q4_0_floats(vw, lane, b, na, s, dw);
            }
            continue;
        }
        /* Software-pipelined: the integer half of blocks b .. b + 7, then
         * the float half of the eight before, whose sums are ready by then.
         * One group after the other, each waits on about 30 cycles of
         * dependent instructions, more than the scheduler can look past
         * (6% slower, bench_kernels). */
        __m256i s[KRN_VEC_ACTS][4], next[KRN_VEC_ACTS][4];
        __m256 dw, next_dw;
        q4_0_ints(w, vw, 0, 1, s, &dw);
        for (size_t b = 8; b < nb8; b += 8) {
            q4_0_ints(w + b * KRN_Q4_0_SIZE, vw, b, 1, next, &next_dw);
            q4_0_floats(vw, lane, b - 8, 1, s, dw);
            memcpy(s, next, sizeof s[0]);
            dw = next_dw;
        }
        q4_0_floats(vw, lane, nb8 - 8, 1, s, dw);
    }
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

/* The integer half of eight Q8_0 blocks' terms at wb: per vector, the
 * eight block sums (corrections not yet taken), and the weight scales. */
static ALWAYS_INLINE void q8_0_ints(const uint8_t *wb, const vec_view *vw, size_t b,
                                    size_t na, __m256i si[KRN_VEC_ACTS], __m256 *dw)
{
    const __m256i bias = _mm256_set1_epi8((char)0x80);
    __m256i q[8];
    for (int k = 0; k < 8; k++)
        q[k] = _mm256_xor_si256(
            _mm256_loadu_si256((const __m256i *)(wb + k * KRN_Q8_0_SIZE + 2)), bias);
    *dw = f16x8(wb, KRN_Q8_0_SIZE);
    for (size_t j = 0; j < na; j++) {
        const uint8_t *a = vw[j].act + b * KRN_Q8_0_SIZE + 2;
        __m256i s[8];
        for (int k = 0; k < 8; k++)
            s[k] = _mm256_dpbusd_epi32(
                _mm256_setzero_si256(), q[k],
                _mm256_loadu_si256((const __m256i *)(a + k * KRN_Q8_0_SIZE)));
        __m256i u0 = fold4(fold2(s[0], s[1]), fold2(s[2], s[3]));
        __m256i u1 = fold4(fold2(s[4], s[5]), fold2(s[6], s[7]));
        si[j] = _mm256_add_epi32(_mm256_permute2x128_si256(u0, u1, 0x20),
                                 _mm256_permute2x128_si256(u0, u1, 0x31));
    }
}

static ALWAYS_INLINE void terms_q8_0(const uint8_t *w, size_t row_bytes, size_t rows,
                                     krn_vec_pass *p, size_t na)
{
    vec_view vw[KRN_VEC_ACTS];
    view_of(p, na, vw);
    const size_t nb8 = p->nb8;
    for (size_t lane = 0; lane < rows; lane++, w += row_bytes) {
        for (size_t b = 0; b < nb8; b += 8) {
            __m256i si[KRN_VEC_ACTS];
            __m256 dw;
            q8_0_ints(w + b * KRN_Q8_0_SIZE, vw, b, na, si, &dw);
            for (size_t j = 0; j < na; j++)
                put_terms(&vw[j], lane, b, si[j], dw);
        }
    }
}

/* One copy per number of vectors, so the loops over them unroll. */
static void avx512_terms_q4_0(const uint8_t *w, size_t row_bytes, size_t rows,
                              krn_vec_pass *p)
{
    if (p->n_acts == 1)
        terms_q4_0(w, row_bytes, rows, p, 1);
    else if (p->n_acts == 2)
        terms_q4_0(w, row_bytes, rows, p, 2);
    else
        terms_q4_0(w, row_bytes, rows, p, 3);
}

static void avx512_terms_q8_0(const uint8_t *w, size_t row_bytes, size_t rows,
                              krn_vec_pass *p)
{
    if (p->n_acts == 1)
        terms_q8_0(w, row_bytes, rows, p, 1);
    else if (p->n_acts == 2)
        terms_q8_0(w, row_bytes, rows, p, 2);
    else
        terms_q8_0(w, row_bytes, rows, p, 3);
}

void kernels_avx512_matmul_q32(ggml_type t, const uint8_t *rows, size_t row_bytes,
                               size_t n, size_t r0, size_t r1, const uint8_t *acts,
                               size_t act_bytes, size_t n_acts, float *y, size_t ldy)
{
    if (n_acts > KRN_VEC_ACTS) { /* batches: the AVX2 kernel */
        kernels_avx2_matmul_q32(t, rows, row_bytes, n, r0, r1, acts, act_bytes, n_acts, y,
                                ldy);
        return;
    }
    kernels_x86_matmul_vec(t, t == GGML_TYPE_Q4_0 ? avx512_terms_q4_0 : avx512_terms_q8_0,
                           rows, row_bytes, n / KRN_QK, r0, r1, acts, act_bytes, n_acts,
                           y, ldy);
}
