/*
 * kernels_avx2_q.c — the quantized matrix products on AVX2: Q8_0 and Q4_0
 * weights with Q8_0 activations, Q4_K and Q6_K with Q8_K.
 *
 * The products are integer: VPMADDUBSW multiplies unsigned bytes by signed
 * bytes and adds neighbours into int16, VPMADDWD adds neighbouring int16
 * (times 1, or times a sub-block scale) into int32. No int16 can saturate:
 * the largest pair is 2 * 128 * 127 (a Q8_0 weight of -128, taken as its
 * magnitude) and 2 * 63 * 127 for Q6_K.
 *
 * The float steps after each block's integer sum are those of
 * kernels_int.h, so each row's result has the scalar path's bits. For the
 * 32-value blocks, eight int32 partial sums per block are reduced four
 * blocks at a time (three VPHADDD), which costs about what converting and
 * scaling eight lanes would, and the four scaled terms are then added in
 * the scalar order.
 *
 * Shapes: a matrix times one to three vectors reads one row at a time,
 * which streams from memory at about twice the speed of four rows read side
 * by side (bench_kernels, "from memory"); the k-quants always do. A batch
 * of 32-value blocks takes four rows together, one lane each, a last group
 * of fewer rows repeating its last row and storing only what it owns.
 * Batches decode each weight block once for two vectors.
 */
#include <immintrin.h>

#include "agent/engine/kernels_int.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))

/* [sum of a's lanes, of b's, of c's, of d's]. */
static ALWAYS_INLINE __m128i hsum4_epi32(__m256i a, __m256i b, __m256i c, __m256i d)
{
    __m256i ab = _mm256_hadd_epi32(a, b);
    __m256i cd = _mm256_hadd_epi32(c, d);
    __m256i abcd = _mm256_hadd_epi32(ab, cd); /* per 128-bit half: a, b, c, d */
    return _mm_add_epi32(_mm256_castsi256_si128(abcd), _mm256_extracti128_si256(abcd, 1));
}

static ALWAYS_INLINE int32_t hsum_epi32(__m256i a)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
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

/* acc (in lane 0) plus t's lanes 0, 1, 2, 3, in that order. */
static ALWAYS_INLINE __m128 add_lanes_in_order(__m128 acc, __m128 t)
{
    acc = _mm_add_ss(acc, t);
    acc = _mm_add_ss(acc, _mm_movehdup_ps(t));
    acc = _mm_add_ss(acc, _mm_movehl_ps(t, t));
    return _mm_add_ss(acc, _mm_shuffle_ps(t, t, _MM_SHUFFLE(3, 3, 3, 3)));
}

/* What a row-by-row product needs of each activation block, worked out
 * once for all the rows: its scale as a float, and for Q4_0 8 times its
 * sum. Rows longer than this take the four-row kernel. */
#define ROW_MAX_BLOCKS 1024
#define ROW_MAX_ACTS   3

typedef struct act_blocks {
    float d[ROW_MAX_BLOCKS];
    int32_t sum8[ROW_MAX_BLOCKS];
} act_blocks;

static ALWAYS_INLINE void act_blocks_fill(ggml_type t, const uint8_t *a, size_t nb,
                                          act_blocks *out)
{
    for (size_t b = 0; b < nb; b++, a += KRN_Q8_0_SIZE) {
        out->d[b] = f16_at(a);
        if (t == GGML_TYPE_Q4_0)
            out->sum8[b] =
                hsum_epi32(q32_act_sum8(_mm256_loadu_si256((const __m256i *)(a + 2))));
    }
}

/* One row times one activation, four blocks at a time: their integer
 * sums reduced together, scaled as four lanes, then added to the row's
 * sum one after the other, as the scalar path adds them. Reading one row
 * at a time is what keeps a matrix streaming from memory at full speed;
 * four rows read side by side reach about half of it (bench_kernels). */
static ALWAYS_INLINE float q32_row(ggml_type t, const uint8_t *w, const uint8_t *a,
                                   const act_blocks *ab, size_t nb)
{
    const size_t ws = q32_size(t), as = KRN_Q8_0_SIZE;
    __m128 acc = _mm_setzero_ps();
    size_t b = 0;
    for (; b + 4 <= nb; b += 4, w += 4 * ws, a += 4 * as) {
        __m256i p[4];
        for (size_t k = 0; k < 4; k++) {
            __m256i av = _mm256_loadu_si256((const __m256i *)(a + k * as + 2));
            p[k] = q32_block(t, q32_load(t, w + k * ws), av);
        }
        __m128i si = hsum4_epi32(p[0], p[1], p[2], p[3]);
        if (t == GGML_TYPE_Q4_0)
            si = _mm_sub_epi32(si, _mm_loadu_si128((const __m128i *)(ab->sum8 + b)));
        __m128 dw = f16x4(w, w + ws, w + 2 * ws, w + 3 * ws);
        __m128 scale = _mm_mul_ps(dw, _mm_loadu_ps(ab->d + b));
        acc = add_lanes_in_order(acc, _mm_mul_ps(_mm_cvtepi32_ps(si), scale));
    }
    float sum = _mm_cvtss_f32(acc);
    for (; b < nb; b++, w += ws, a += as) {
        __m256i av = _mm256_loadu_si256((const __m256i *)(a + 2));
        int32_t si = hsum_epi32(q32_block(t, q32_load(t, w), av));
        if (t == GGML_TYPE_Q4_0)
            si -= ab->sum8[b];
        sum += (float)si * (f16_at(w) * ab->d[b]);
    }
    return sum;
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
    if (n_acts <= ROW_MAX_ACTS && nb <= ROW_MAX_BLOCKS) {
        /* A matrix times a vector or a few: rows streamed one by one. */
        act_blocks ab[ROW_MAX_ACTS];
        for (size_t j = 0; j < n_acts; j++)
            act_blocks_fill(t, acts + j * act_bytes, nb, &ab[j]);
        for (size_t r = r0; r < r1; r++)
            for (size_t j = 0; j < n_acts; j++)
                y[j * ldy + r] =
                    q32_row(t, rows + r * row_bytes, acts + j * act_bytes, &ab[j], nb);
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

/* Q4_K: the 6-bit scales and minimums of a super-block's 12 bytes, as
 * eight bytes each (layout in quant_k.c): bytes 0-3 of each are the low
 * six bits of bytes 0-7; scales and minimums 4-7 take their low four bits
 * from bytes 8-11 and their top two from the spare bits of bytes 0-7. */
static ALWAYS_INLINE void q4_k_scales(const uint8_t *s, uint64_t *sc, uint64_t *m)
{
    uint32_t u0, u1, u2;
    memcpy(&u0, s, 4);
    memcpy(&u1, s + 4, 4);
    memcpy(&u2, s + 8, 4);
    uint32_t sc_hi = (u2 & 0x0f0f0f0f) | ((u0 >> 6) & 0x03030303) << 4;
    uint32_t m_hi = ((u2 >> 4) & 0x0f0f0f0f) | ((u1 >> 6) & 0x03030303) << 4;
    *sc = (uint64_t)(u0 & 0x3f3f3f3f) | (uint64_t)sc_hi << 32;
    *m = (uint64_t)(u1 & 0x3f3f3f3f) | (uint64_t)m_hi << 32;
}

/* The float steps of a Q4_K block for one activation (kernels_int.h):
 * acc += (da * d) * s; acc -= (da * dmin) * m, with s and m reduced from
 * their partial sums together and d, dmin converted together. */
static ALWAYS_INLINE __m128 q4_k_finish(__m128 acc, const uint8_t *w, const uint8_t *a,
                                        __m256i isum, __m256i msum)
{
    __m256i t = _mm256_hadd_epi32(isum, msum); /* per half: s s m m */
    __m128i u = _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
    __m128 sm = _mm_cvtepi32_ps(_mm_hadd_epi32(u, u)); /* s, m, s, m */
    uint32_t dd;
    memcpy(&dd, w, 4);
    __m128 scales = _mm_cvtph_ps(_mm_cvtsi32_si128((int)dd)); /* d, dmin */
    __m128 f = _mm_mul_ps(_mm_mul_ps(_mm_set1_ps(krn_load_f32(a)), scales), sm);
    acc = _mm_add_ss(acc, f);
    return _mm_sub_ss(acc, _mm_movehdup_ps(f));
}

/* One Q4_K row times na activations (1 or 2): the nibbles are unpacked and
 * the scales decoded once for both. */
static ALWAYS_INLINE void q4_k_dots(const uint8_t *w, const uint8_t *const a[2], int na,
                                    size_t nb, float out[2])
{
    const __m256i low4 = _mm256_set1_epi8(15);
    __m128 acc[2] = {_mm_setzero_ps(), _mm_setzero_ps()};
    for (size_t b = 0; b < nb; b++, w += KRN_Q4_K_SIZE) {
        uint64_t sc, m;
        q4_k_scales(w + 4, &sc, &m);
        /* Scale j as an int16 in every lane: the 8 scales widened to
         * int16 in both halves, then VPSHUFB picks bytes 2j, 2j + 1. */
        __m256i sc16 = _mm256_broadcastsi128_si256(
            _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)sc)));
        /* Minimum j weighs the activation sums of groups 2j and 2j + 1:
         * each minimum twice, against the sixteen sums. */
        __m128i mb = _mm_cvtsi64_si128((long long)m);
        __m256i m16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mb, mb));
        __m256i isum[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
        for (int g = 0; g < 4; g++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(w + 16 + 32 * g));
            __m256i lo = _mm256_and_si256(q, low4);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
            __m256i s0 = _mm256_shuffle_epi8(
                sc16, _mm256_set1_epi16((short)(0x0100 * (4 * g + 1) + 4 * g)));
            __m256i s1 = _mm256_shuffle_epi8(
                sc16, _mm256_set1_epi16((short)(0x0100 * (4 * g + 3) + 4 * g + 2)));
            for (int j = 0; j < na; j++) {
                const uint8_t *qa = a[j] + b * KRN_Q8_K_SIZE + KRN_Q8_K_Q + 64 * g;
                __m256i plo =
                    _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)qa));
                __m256i phi = _mm256_maddubs_epi16(
                    hi, _mm256_loadu_si256((const __m256i *)(qa + 32)));
                isum[j] = _mm256_add_epi32(isum[j], _mm256_madd_epi16(plo, s0));
                isum[j] = _mm256_add_epi32(isum[j], _mm256_madd_epi16(phi, s1));
            }
        }
        for (int j = 0; j < na; j++) {
            const uint8_t *ab = a[j] + b * KRN_Q8_K_SIZE;
            __m256i sums = _mm256_loadu_si256((const __m256i *)(ab + KRN_Q8_K_SUMS));
            acc[j] = q4_k_finish(acc[j], w, ab, isum[j], _mm256_madd_epi16(sums, m16));
        }
    }
    out[0] = _mm_cvtss_f32(acc[0]);
    out[1] = _mm_cvtss_f32(acc[1]);
}

/* Q6_K: each 32-value run of a half holds two sub-blocks; its scales as
 * int16, eight of the first then eight of the second, matching the halves
 * of the VPMADDUBSW result. */
static ALWAYS_INLINE __m256i q6_k_scale_pair(__m128i sc, int k)
{
    __m128i idx =
        _mm_set_epi64x(0x0101010101010101ll * (k + 1), 0x0101010101010101ll * k);
    return _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc, idx));
}

/* One Q6_K row times na activations (1 or 2), the 6-bit values and the
 * scale vectors built once for both. */
static ALWAYS_INLINE void q6_k_dots(const uint8_t *w, const uint8_t *const a[2], int na,
                                    size_t nb, float out[2])
{
    const __m256i low4 = _mm256_set1_epi8(15), bits45 = _mm256_set1_epi8(0x30);
    float acc[2] = {0, 0};
    for (size_t b = 0; b < nb; b++, w += KRN_Q6_K_SIZE) {
        __m128i sc = _mm_loadu_si128((const __m128i *)(w + 192));
        __m256i isum[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
        for (int h = 0; h < 2; h++) {
            __m256i l0 = _mm256_loadu_si256((const __m256i *)(w + 64 * h));
            __m256i l1 = _mm256_loadu_si256((const __m256i *)(w + 64 * h + 32));
            __m256i hb = _mm256_loadu_si256((const __m256i *)(w + 128 + 32 * h));
            /* The 6-bit q (0..63): four bits from ql, two from qh moved
             * to bits 4-5 (16-bit shifts: the mask drops what crosses
             * into the neighbouring byte). */
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(l0, low4),
                                   _mm256_and_si256(_mm256_slli_epi16(hb, 4), bits45));
            q[1] = _mm256_or_si256(_mm256_and_si256(l1, low4),
                                   _mm256_and_si256(_mm256_slli_epi16(hb, 2), bits45));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low4),
                                   _mm256_and_si256(hb, bits45));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low4),
                                   _mm256_and_si256(_mm256_srli_epi16(hb, 2), bits45));
            for (int i = 0; i < 4; i++) {
                __m256i scp = q6_k_scale_pair(sc, 8 * h + 2 * i);
                for (int j = 0; j < na; j++) {
                    const uint8_t *qa = a[j] + b * KRN_Q8_K_SIZE + KRN_Q8_K_Q + 128 * h;
                    __m256i av = _mm256_loadu_si256((const __m256i *)(qa + 32 * i));
                    __m256i p = _mm256_maddubs_epi16(q[i], av);
                    isum[j] = _mm256_add_epi32(isum[j], _mm256_madd_epi16(p, scp));
                }
            }
        }
        /* q - 32: take 32 * sc[k] * (sum of sub-block k's activations). */
        __m256i sc16 = _mm256_cvtepi8_epi16(sc);
        float d = f16_at(w + 208);
        for (int j = 0; j < na; j++) {
            const uint8_t *ab = a[j] + b * KRN_Q8_K_SIZE;
            __m256i sums = _mm256_loadu_si256((const __m256i *)(ab + KRN_Q8_K_SUMS));
            __m256i corr = _mm256_slli_epi32(_mm256_madd_epi16(sums, sc16), 5);
            float s = (float)hsum_epi32(_mm256_sub_epi32(isum[j], corr));
            acc[j] += (krn_load_f32(ab) * d) * s;
        }
    }
    out[0] = acc[0];
    out[1] = acc[1];
}

static ALWAYS_INLINE void k_matmul(ggml_type t, const uint8_t *rows, size_t row_bytes,
                                   size_t nb, size_t r0, size_t r1, const uint8_t *acts,
                                   size_t act_bytes, size_t n_acts, float *y, size_t ldy)
{
    for (size_t r = r0; r < r1; r++) {
        const uint8_t *w = rows + r * row_bytes;
        for (size_t j = 0; j < n_acts; j += 2) {
            const uint8_t *a[2] = {acts + j * act_bytes, acts + (j + 1) * act_bytes};
            float v[2];
            int na = j + 1 < n_acts ? 2 : 1;
            if (t == GGML_TYPE_Q4_K) {
                if (na == 2)
                    q4_k_dots(w, a, 2, nb, v);
                else
                    q4_k_dots(w, a, 1, nb, v);
            } else {
                if (na == 2)
                    q6_k_dots(w, a, 2, nb, v);
                else
                    q6_k_dots(w, a, 1, nb, v);
            }
            y[j * ldy + r] = v[0];
            if (na == 2)
                y[(j + 1) * ldy + r] = v[1];
        }
    }
}

void kernels_avx2_matmul_k(ggml_type t, const uint8_t *rows, size_t row_bytes, size_t n,
                           size_t r0, size_t r1, const uint8_t *acts, size_t act_bytes,
                           size_t n_acts, float *y, size_t ldy)
{
    if (t == GGML_TYPE_Q4_K)
        k_matmul(GGML_TYPE_Q4_K, rows, row_bytes, n / KRN_QK_K, r0, r1, acts, act_bytes,
                 n_acts, y, ldy);
    else
        k_matmul(GGML_TYPE_Q6_K, rows, row_bytes, n / KRN_QK_K, r0, r1, acts, act_bytes,
                 n_acts, y, ldy);
}
