/*
 * quant.c — half and bfloat16 conversions, the 32-element block formats,
 * and the table of per-type functions.
 *
 * Byte layouts (all multi-byte fields little-endian):
 *
 *   Q8_0, 34 bytes per 32 elements:
 *     0   2   d, f16 scale
 *     2   32  q[0..31], int8; element i = d * q[i]
 *
 *   Q4_0, 18 bytes per 32 elements:
 *     0   2   d, f16 scale
 *     2   16  nibbles: byte j holds element j in its low 4 bits and element
 *             j+16 in its high 4 bits; element = d * (nibble - 8)
 *
 * The quantizers are ggml's reference ones, so that a file written here has
 * the bytes llama.cpp's quantizer would give for the same floats:
 *   Q8_0: d = max|x| / 127, q = round(x / d) (halves away from zero);
 *   Q4_0: m = the element of largest magnitude, with its sign; d = m / -8,
 *         q = min(15, trunc(x / d + 8.5)), so m itself maps to q = 0.
 * Both compute with the float d and store it rounded to f16; 1/d is taken
 * once per block, as there. This file is built with floating-point
 * contraction off, so no compiler fuses x * id + 8.5 into one rounding and
 * the output is the same on every machine.
 */
#include <math.h>
#include <string.h>

#include "agent/engine/quant_int.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "F32 rows are copied as they lie in the file: the host must be little-endian"
#endif

#define QK 32 /* elements per Q8_0 and Q4_0 block */

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float quant_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    if (exp == 31) /* infinity or NaN, payload kept */
        return bits_f32(sign | 0x7f800000 | mant << 13);
    if (exp != 0) /* normal: rebias 15 → 127 */
        return bits_f32(sign | (exp + 112) << 23 | mant << 13);
    if (mant == 0)
        return bits_f32(sign);
    /* Subnormal, mant * 2^-24: shift the leading 1 into the implicit bit. */
    uint32_t e = 113;
    while ((mant & 0x400) == 0) {
        mant <<= 1;
        e--;
    }
    return bits_f32(sign | e << 23 | (mant & 0x3ff) << 13);
}

uint16_t quant_f32_to_f16(float f)
{
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffff;
    if (ax > 0x7f800000) /* NaN: keep the top payload bits, force quiet */
        return (uint16_t)(sign | 0x7e00 | ((ax >> 13) & 0x3ff));
    if (ax >= 0x477ff000) /* 65520 and above round to infinity */
        return (uint16_t)(sign | 0x7c00);
    if (ax >= 0x38800000) { /* normal half: 2^-14 and above */
        uint32_t h = ((ax >> 23) - 112) << 10 | (ax & 0x7fffff) >> 13;
        uint32_t rem = ax & 0x1fff;
        if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
            h++; /* a carry into the exponent is still the right value */
        return (uint16_t)(sign | h);
    }
    if (ax <= 0x33000000) /* at most half the smallest subnormal: zero */
        return sign;
    /* Subnormal half: the value in units of 2^-24, rounded. */
    uint32_t e = ax >> 23, m = (ax & 0x7fffff) | 0x800000;
    uint32_t shift = 126 - e; /* 14..24 */
    uint32_t h = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1)))
        h++;
    return (uint16_t)(sign | h);
}

float quant_bf16_to_f32(uint16_t b)
{
    return bits_f32((uint32_t)b << 16);
}

uint16_t quant_f32_to_bf16(float f)
{
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffff) > 0x7f800000)
        return (uint16_t)((x >> 16) | 0x40); /* NaN stays NaN, quiet */
    return (uint16_t)((x + 0x7fff + ((x >> 16) & 1)) >> 16);
}

/* F32 */

static void dequantize_f32(const void *src, float *dst, size_t n)
{
    memcpy(dst, src, n * sizeof(float));
}

static void quantize_f32(const float *src, void *dst, size_t n)
{
    memcpy(dst, src, n * sizeof(float));
}

static float dot_f32(const void *row, const float *x, size_t n)
{
    const uint8_t *p = row;
    double acc = 0;
    for (size_t i = 0; i < n; i++) {
        float w;
        memcpy(&w, p + 4 * i, 4);
        acc += (double)w * x[i];
    }
    return (float)acc;
}

/* F16 and BF16 */

static void dequantize_f16(const void *src, float *dst, size_t n)
{
    const uint8_t *p = src;
    for (size_t i = 0; i < n; i++)
        dst[i] = quant_load_f16(p + 2 * i);
}

static void quantize_f16(const float *src, void *dst, size_t n)
{
    uint8_t *p = dst;
    for (size_t i = 0; i < n; i++) {
        uint16_t h = quant_f32_to_f16(src[i]);
        p[2 * i] = (uint8_t)h;
        p[2 * i + 1] = (uint8_t)(h >> 8);
    }
}

static float dot_f16(const void *row, const float *x, size_t n)
{
    const uint8_t *p = row;
    double acc = 0;
    for (size_t i = 0; i < n; i++)
        acc += (double)quant_load_f16(p + 2 * i) * x[i];
    return (float)acc;
}

static float load_bf16(const uint8_t *p)
{
    return quant_bf16_to_f32((uint16_t)(p[0] | p[1] << 8));
}

static void dequantize_bf16(const void *src, float *dst, size_t n)
{
    const uint8_t *p = src;
    for (size_t i = 0; i < n; i++)
        dst[i] = load_bf16(p + 2 * i);
}

static void quantize_bf16(const float *src, void *dst, size_t n)
{
    uint8_t *p = dst;
    for (size_t i = 0; i < n; i++) {
        uint16_t h = quant_f32_to_bf16(src[i]);
        p[2 * i] = (uint8_t)h;
        p[2 * i + 1] = (uint8_t)(h >> 8);
    }
}

static float dot_bf16(const void *row, const float *x, size_t n)
{
    const uint8_t *p = row;
    double acc = 0;
    for (size_t i = 0; i < n; i++)
        acc += (double)load_bf16(p + 2 * i) * x[i];
    return (float)acc;
}

static void store_f16(uint8_t *p, float f)
{
    uint16_t h = quant_f32_to_f16(f);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

/* v truncated toward zero into [lo, hi]; NaN gives 0. Finite in-range
 * values convert as a plain cast would; the clamp only keeps a NaN or an
 * infinity in the input from turning into an undefined conversion. */
static int trunc_clamp(float v, int lo, int hi)
{
    if (!(v > (float)lo))
        return v != v ? 0 : lo;
    if (v >= (float)hi)
        return hi;
    return (int)v;
}

/* Q8_0 */

static void dequantize_q8_0(const void *src, float *dst, size_t n)
{
    const uint8_t *b = src;
    for (size_t i = 0; i < n; i += QK, b += 34) {
        float d = quant_load_f16(b);
        for (int j = 0; j < QK; j++)
            dst[i + j] = d * (float)(int8_t)b[2 + j];
    }
}

static void quantize_q8_0(const float *src, void *dst, size_t n)
{
    uint8_t *b = dst;
    for (size_t i = 0; i < n; i += QK, b += 34) {
        float amax = 0;
        for (int j = 0; j < QK; j++)
            amax = fmaxf(amax, fabsf(src[i + j]));
        float d = amax / 127;
        float id = d != 0 ? 1.0f / d : 0.0f;
        store_f16(b, d);
        for (int j = 0; j < QK; j++) {
            float v = src[i + j] * id;
            b[2 + j] = (uint8_t)(int8_t)trunc_clamp(roundf(v), -127, 127);
        }
    }
}

static float dot_q8_0(const void *row, const float *x, size_t n)
{
    const uint8_t *b = row;
    double acc = 0;
    for (size_t i = 0; i < n; i += QK, b += 34) {
        double s = 0;
        for (int j = 0; j < QK; j++)
            s += (double)(int8_t)b[2 + j] * x[i + j];
        acc += s * quant_load_f16(b);
    }
    return (float)acc;
}

/* Q4_0 */

static void dequantize_q4_0(const void *src, float *dst, size_t n)
{
    const uint8_t *b = src;
    for (size_t i = 0; i < n; i += QK, b += 18) {
        float d = quant_load_f16(b);
        for (int j = 0; j < QK / 2; j++) {
            dst[i + j] = d * (float)((b[2 + j] & 0x0f) - 8);
            dst[i + j + QK / 2] = d * (float)((b[2 + j] >> 4) - 8);
        }
    }
}

static void quantize_q4_0(const float *src, void *dst, size_t n)
{
    uint8_t *b = dst;
    for (size_t i = 0; i < n; i += QK, b += 18) {
        float amax = 0, max = 0;
        for (int j = 0; j < QK; j++)
            if (fabsf(src[i + j]) > amax) {
                amax = fabsf(src[i + j]);
                max = src[i + j];
            }
        float d = max / -8;
        float id = d != 0 ? 1.0f / d : 0.0f;
        store_f16(b, d);
        for (int j = 0; j < QK / 2; j++) {
            /* x * id lies in [-8, 8]; + 8.5 and truncation round to nearest. */
            float lo = src[i + j] * id;
            float hi = src[i + j + QK / 2] * id;
            lo += 8.5f;
            hi += 8.5f;
            int qlo = lo != lo ? 8 : trunc_clamp(lo, 0, 15);
            int qhi = hi != hi ? 8 : trunc_clamp(hi, 0, 15);
            b[2 + j] = (uint8_t)(qlo | qhi << 4);
        }
    }
}

static float dot_q4_0(const void *row, const float *x, size_t n)
{
    const uint8_t *b = row;
    double acc = 0;
    for (size_t i = 0; i < n; i += QK, b += 18) {
        double s = 0;
        for (int j = 0; j < QK / 2; j++)
            s += (double)((b[2 + j] & 0x0f) - 8) * x[i + j] +
                 (double)((b[2 + j] >> 4) - 8) * x[i + j + QK / 2];
        acc += s * quant_load_f16(b);
    }
    return (float)acc;
}

static const quant_ops ops_f32 = {GGML_TYPE_F32, 1,      4, dequantize_f32,
                                  quantize_f32,  dot_f32};
static const quant_ops ops_f16 = {GGML_TYPE_F16, 1,      2, dequantize_f16,
                                  quantize_f16,  dot_f16};
static const quant_ops ops_bf16 = {GGML_TYPE_BF16, 1,       2, dequantize_bf16,
                                   quantize_bf16,  dot_bf16};
static const quant_ops ops_q8_0 = {GGML_TYPE_Q8_0, QK,      34, dequantize_q8_0,
                                   quantize_q8_0,  dot_q8_0};
static const quant_ops ops_q4_0 = {GGML_TYPE_Q4_0, QK,      18, dequantize_q4_0,
                                   quantize_q4_0,  dot_q4_0};

const quant_ops *quant_ops_get(ggml_type t)
{
    switch (t) {
    case GGML_TYPE_F32:
        return &ops_f32;
    case GGML_TYPE_F16:
        return &ops_f16;
    case GGML_TYPE_BF16:
        return &ops_bf16;
    case GGML_TYPE_Q8_0:
        return &ops_q8_0;
    case GGML_TYPE_Q4_0:
        return &ops_q4_0;
    case GGML_TYPE_Q4_K:
        return &quant_ops_q4_k;
    case GGML_TYPE_Q6_K:
        return &quant_ops_q6_k;
    default:
        return NULL;
    }
}

bool ggml_type_supported(ggml_type t)
{
    return quant_ops_get(t) != NULL;
}

size_t quant_row_bytes(ggml_type t, uint64_t n)
{
    uint32_t be, bb;
    ggml_type_block(t, &be, &bb);
    if (be == 0 || n % be != 0 || n / be > SIZE_MAX / bb)
        return 0;
    return (size_t)(n / be * bb);
}

int quant_check_row(ggml_type t, uint64_t n, bool quantize, mlx_err *err)
{
    const quant_ops *ops = quant_ops_get(t);
    if (ops == NULL)
        return mlx_err_set(err, MLX_EINVAL,
                           "tensor type %s is not supported; use a model quantized to "
                           "F32, F16, BF16, Q8_0, Q4_0, Q4_K or Q6_K",
                           ggml_type_name(t));
    if (quantize && ops->quantize == NULL)
        return mlx_err_set(err, MLX_EINVAL,
                           "writing %s is not supported; choose F32, F16, BF16, Q8_0 or "
                           "Q4_0",
                           ggml_type_name(t));
    if (n == 0 || n % ops->block_elems != 0)
        return mlx_err_set(err, MLX_EINVAL,
                           "a row of %llu elements is not a whole number of %s blocks of "
                           "%u",
                           (unsigned long long)n, ggml_type_name(t), ops->block_elems);
    return 0;
}

static const quant_ops *row_ops(ggml_type t, size_t n)
{
    const quant_ops *ops = quant_ops_get(t);
    return ops != NULL && n % ops->block_elems == 0 ? ops : NULL;
}

int quant_dequantize_row(ggml_type t, const void *src, float *dst, size_t n)
{
    const quant_ops *ops = row_ops(t, n);
    if (ops == NULL)
        return MLX_EINVAL;
    ops->dequantize(src, dst, n);
    return 0;
}

int quant_quantize_row(ggml_type t, const float *src, void *dst, size_t n)
{
    const quant_ops *ops = row_ops(t, n);
    if (ops == NULL || ops->quantize == NULL)
        return MLX_EINVAL;
    ops->quantize(src, dst, n);
    return 0;
}

int quant_dot_row(ggml_type t, const void *row, const float *x, size_t n, float *out)
{
    const quant_ops *ops = row_ops(t, n);
    if (ops == NULL)
        return MLX_EINVAL;
    *out = ops->dot(row, x, n);
    return 0;
}
