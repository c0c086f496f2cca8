/*
 * gguf_types.c — the numbering and geometry of GGUF metadata value types and
 * of ggml tensor types, shared by the reader, the writer and the block
 * formats.
 *
 * A tensor type stores its elements in blocks: block_elems consecutive
 * elements of a row packed into block_bytes bytes. A row of n elements
 * takes n / block_elems * block_bytes bytes, so n must be a multiple of
 * block_elems. The byte counts below are ggml's block structs, which have no
 * padding (every field is a byte array or a 16-bit half after 16-bit-aligned
 * arrays).
 */
#include <string.h>

#include "agent/engine/gguf.h"

static const char *const value_type_names[GGUF_TYPE_COUNT_] = {
    [GGUF_TYPE_UINT8] = "UINT8",     [GGUF_TYPE_INT8] = "INT8",
    [GGUF_TYPE_UINT16] = "UINT16",   [GGUF_TYPE_INT16] = "INT16",
    [GGUF_TYPE_UINT32] = "UINT32",   [GGUF_TYPE_INT32] = "INT32",
    [GGUF_TYPE_FLOAT32] = "FLOAT32", [GGUF_TYPE_BOOL] = "BOOL",
    [GGUF_TYPE_STRING] = "STRING",   [GGUF_TYPE_ARRAY] = "ARRAY",
    [GGUF_TYPE_UINT64] = "UINT64",   [GGUF_TYPE_INT64] = "INT64",
    [GGUF_TYPE_FLOAT64] = "FLOAT64",
};

static const unsigned char value_type_sizes[GGUF_TYPE_COUNT_] = {
    [GGUF_TYPE_UINT8] = 1,   [GGUF_TYPE_INT8] = 1,    [GGUF_TYPE_UINT16] = 2,
    [GGUF_TYPE_INT16] = 2,   [GGUF_TYPE_UINT32] = 4,  [GGUF_TYPE_INT32] = 4,
    [GGUF_TYPE_FLOAT32] = 4, [GGUF_TYPE_BOOL] = 1,    [GGUF_TYPE_UINT64] = 8,
    [GGUF_TYPE_INT64] = 8,   [GGUF_TYPE_FLOAT64] = 8,
};

const char *gguf_type_name(gguf_type t)
{
    if ((unsigned)t >= GGUF_TYPE_COUNT_)
        return "unknown";
    return value_type_names[t];
}

size_t gguf_type_size(gguf_type t)
{
    if ((unsigned)t >= GGUF_TYPE_COUNT_)
        return 0;
    return value_type_sizes[t];
}

struct tensor_type {
    const char *name;
    unsigned short block_elems, block_bytes;
};

/* Byte counts per block, from ggml's block layouts: */
static const struct tensor_type tensor_types[GGML_TYPE_COUNT_] = {
    [GGML_TYPE_F32] = {"F32", 1, 4},
    [GGML_TYPE_F16] = {"F16", 1, 2},
    [GGML_TYPE_Q4_0] = {"Q4_0", 32, 18},   /* f16 d, 16 bytes of nibbles */
    [GGML_TYPE_Q4_1] = {"Q4_1", 32, 20},   /* f16 d, f16 m, 16 bytes of nibbles */
    [GGML_TYPE_Q5_0] = {"Q5_0", 32, 22},   /* f16 d, 4 bytes high bits, 16 nibbles */
    [GGML_TYPE_Q5_1] = {"Q5_1", 32, 24},   /* f16 d, f16 m, 4 + 16 bytes */
    [GGML_TYPE_Q8_0] = {"Q8_0", 32, 34},   /* f16 d, 32 int8 */
    [GGML_TYPE_Q8_1] = {"Q8_1", 32, 36},   /* f16 d, f16 sum, 32 int8 */
    [GGML_TYPE_Q2_K] = {"Q2_K", 256, 84},  /* 16 scales, 64 quants, f16 d, dmin */
    [GGML_TYPE_Q3_K] = {"Q3_K", 256, 110}, /* 32 hmask, 64 quants, 12 scales, d */
    [GGML_TYPE_Q4_K] = {"Q4_K", 256, 144}, /* d, dmin, 12 scales, 128 nibbles */
    [GGML_TYPE_Q5_K] = {"Q5_K", 256, 176}, /* d, dmin, 12 scales, 32 qh, 128 qs */
    [GGML_TYPE_Q6_K] = {"Q6_K", 256, 210}, /* 128 ql, 64 qh, 16 scales, d */
    [GGML_TYPE_Q8_K] = {"Q8_K", 256, 292}, /* f32 d, 256 int8, 16 int16 sums */
    [GGML_TYPE_IQ2_XXS] = {"IQ2_XXS", 256, 66},
    [GGML_TYPE_IQ2_XS] = {"IQ2_XS", 256, 74},
    [GGML_TYPE_IQ3_XXS] = {"IQ3_XXS", 256, 98},
    [GGML_TYPE_IQ1_S] = {"IQ1_S", 256, 50},
    [GGML_TYPE_IQ4_NL] = {"IQ4_NL", 32, 18},
    [GGML_TYPE_IQ3_S] = {"IQ3_S", 256, 110},
    [GGML_TYPE_IQ2_S] = {"IQ2_S", 256, 82},
    [GGML_TYPE_IQ4_XS] = {"IQ4_XS", 256, 136},
    [GGML_TYPE_I8] = {"I8", 1, 1},
    [GGML_TYPE_I16] = {"I16", 1, 2},
    [GGML_TYPE_I32] = {"I32", 1, 4},
    [GGML_TYPE_I64] = {"I64", 1, 8},
    [GGML_TYPE_F64] = {"F64", 1, 8},
    [GGML_TYPE_IQ1_M] = {"IQ1_M", 256, 56},
    [GGML_TYPE_BF16] = {"BF16", 1, 2},
    [GGML_TYPE_TQ1_0] = {"TQ1_0", 256, 54},
    [GGML_TYPE_TQ2_0] = {"TQ2_0", 256, 66},
    [GGML_TYPE_MXFP4] = {"MXFP4", 32, 17}, /* e8m0 scale, 16 bytes of fp4 pairs */
};

void ggml_type_block(ggml_type t, uint32_t *block_elems, uint32_t *block_bytes)
{
    uint32_t e = 0, b = 0;
    if ((unsigned)t < GGML_TYPE_COUNT_) {
        e = tensor_types[t].block_elems;
        b = tensor_types[t].block_bytes;
    }
    if (block_elems != NULL)
        *block_elems = e;
    if (block_bytes != NULL)
        *block_bytes = b;
}

const char *ggml_type_name(ggml_type t)
{
    if ((unsigned)t >= GGML_TYPE_COUNT_ || tensor_types[t].name == NULL)
        return "unknown";
    return tensor_types[t].name;
}

bool gguf_str_eq(gguf_str s, const char *c)
{
    size_t n = strlen(c);
    return s.len == n && (n == 0 || memcmp(s.ptr, c, n) == 0);
}
