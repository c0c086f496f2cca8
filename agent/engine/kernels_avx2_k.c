/*
 * kernels_avx2_k.c — the k-quant matrix products on AVX2: Q4_K and Q6_K
 * weights with Q8_K activations.
 *
 * Built twice: as itself, and through kernels_avx512_k.c, which defines
 * KRN_AVX512_VNNI, for the AVX-512 path. The products are integer:
 * VPMADDUBSW multiplies unsigned bytes (the weights, 0..15 or 0..63) by
 * signed bytes (the activations) and adds neighbours into int16; then each
 * int16 is multiplied by its sub-block's scale and neighbours added into
 * the int32 sums: VPMADDWD and VPADDD on AVX2, VPDPWSSD (AVX-512 VNNI) in
 * one instruction. No int16 can saturate: the largest pair is 2 * 63 *
 * 127 (Q6_K). The float steps after each super-block's integer sums are
 * those of kernels_int.h, so each row's result has the scalar path's
 * bits.
 *
 * Shapes: every row is read alone, start to end, which keeps a matrix
 * streaming from memory (bench_kernels, "from memory"); batches decode
 * each weight block once for two vectors. A super-block's float steps are
 * two operations per 256 values, so the serial chain that slows the
 * 32-value blocks (kernels_int.h, KRN_VEC_BLOCKS) costs nothing here.
 */
#include <immintrin.h>

#include "agent/engine/kernels_int.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))

#if defined(KRN_AVX512_VNNI)
#define KRN_FN(name) name##_avx512
/* acc + the sums of neighbouring products of p and sc (int16 to int32). */
static ALWAYS_INLINE __m256i add_scaled(__m256i acc, __m256i p, __m256i sc)
{
    return _mm256_dpwssd_epi32(acc, p, sc);
}
#else
#define KRN_FN(name) name
static ALWAYS_INLINE __m256i add_scaled(__m256i acc, __m256i p, __m256i sc)
{
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, sc));
}
#endif

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
 * their partial sums together (unpack-and-add steps: VPHADDD costs about
 * twice as much on recent cores) and d, dmin converted together. */
static ALWAYS_INLINE __m128 q4_k_finish(__m128 acc, const uint8_t *w, const uint8_t *a,
                                        __m256i isum, __m256i msum)
{
    /* Per half: [s0 + s2, m0 + m2, s1 + s3, m1 + m3]. */
    __m256i t = _mm256_add_epi32(_mm256_unpacklo_epi32(isum, msum),
                                 _mm256_unpackhi_epi32(isum, msum));
    __m128i u = _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
    u = _mm_add_epi32(u, _mm_shuffle_epi32(u, _MM_SHUFFLE(1, 0, 3, 2)));
    __m128 sm = _mm_cvtepi32_ps(u); /* s, m, s, m */
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
        /* Two sums per activation, for the low and the high nibbles, so
         * that no chain of dependent additions grows long. */
        __m256i isum[2][2] = {{_mm256_setzero_si256(), _mm256_setzero_si256()},
                              {_mm256_setzero_si256(), _mm256_setzero_si256()}};
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
                isum[j][0] = add_scaled(isum[j][0], plo, s0);
                isum[j][1] = add_scaled(isum[j][1], phi, s1);
            }
        }
        for (int j = 0; j < na; j++) {
            const uint8_t *ab = a[j] + b * KRN_Q8_K_SIZE;
            __m256i sums = _mm256_loadu_si256((const __m256i *)(ab + KRN_Q8_K_SUMS));
            acc[j] = q4_k_finish(acc[j], w, ab, _mm256_add_epi32(isum[j][0], isum[j][1]),
                                 _mm256_madd_epi16(sums, m16));
        }
    }
    out[0] = _mm_cvtss_f32(acc[0]);
    out[1] = _mm_cvtss_f32(acc[1]);
}

/* Q6_K: each 32-value run of a half holds two sub-blocks, k and k + 1 (k
 * even); their scales as int16, eight of the first then eight of the
 * second, matching the halves of the VPMADDUBSW result. sc8 is the half's
 * eight scales widened to int16, in both 128-bit halves: one VPSHUFB
 * picks words k % 8 and k % 8 + 1. */
static ALWAYS_INLINE __m256i q6_k_scale_pair(__m256i sc8, int k)
{
    long long lo = 2 * (k % 8), hi = lo + 2; /* byte offsets of the two words */
    long long first = 0x0001000100010001ll * (lo | (lo + 1) << 8);
    long long second = 0x0001000100010001ll * (hi | (hi + 1) << 8);
    return _mm256_shuffle_epi8(sc8, _mm256_setr_epi64x(first, first, second, second));
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
        __m256i sc16 = _mm256_cvtepi8_epi16(sc); /* all sixteen scales */
        /* Two sums per activation, for runs 0-1 and 2-3 of each half, so
         * that no chain of dependent additions grows long. */
        __m256i isum[2][2] = {{_mm256_setzero_si256(), _mm256_setzero_si256()},
                              {_mm256_setzero_si256(), _mm256_setzero_si256()}};
        for (int h = 0; h < 2; h++) {
            __m256i sc8 = h == 0 ? _mm256_permute4x64_epi64(sc16, 0x44)
                                 : _mm256_permute4x64_epi64(sc16, 0xee);
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
                __m256i scp = q6_k_scale_pair(sc8, 8 * h + 2 * i);
                for (int j = 0; j < na; j++) {
                    const uint8_t *qa = a[j] + b * KRN_Q8_K_SIZE + KRN_Q8_K_Q + 128 * h;
                    __m256i av = _mm256_loadu_si256((const __m256i *)(qa + 32 * i));
                    __m256i p = _mm256_maddubs_epi16(q[i], av);
                    isum[j][i / 2] = add_scaled(isum[j][i / 2], p, scp);
                }
            }
        }
        /* q - 32: take 32 * sc[k] * (sum of sub-block k's activations). */
        float d = f16_at(w + 208);
        for (int j = 0; j < na; j++) {
            const uint8_t *ab = a[j] + b * KRN_Q8_K_SIZE;
            __m256i sums = _mm256_loadu_si256((const __m256i *)(ab + KRN_Q8_K_SUMS));
            __m256i corr = _mm256_slli_epi32(_mm256_madd_epi16(sums, sc16), 5);
            __m256i si = _mm256_add_epi32(isum[j][0], isum[j][1]);
            float s = (float)hsum_epi32(_mm256_sub_epi32(si, corr));
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

void KRN_FN(kernels_avx2_matmul_k)(ggml_type t, const uint8_t *rows, size_t row_bytes,
                                   size_t n, size_t r0, size_t r1, const uint8_t *acts,
                                   size_t act_bytes, size_t n_acts, float *y, size_t ldy)
{
    if (t == GGML_TYPE_Q4_K)
        k_matmul(GGML_TYPE_Q4_K, rows, row_bytes, n / KRN_QK_K, r0, r1, acts, act_bytes,
                 n_acts, y, ldy);
    else
        k_matmul(GGML_TYPE_Q6_K, rows, row_bytes, n / KRN_QK_K, r0, r1, acts, act_bytes,
                 n_acts, y, ldy);
}
