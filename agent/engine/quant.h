/*
 * quant.h — the tensor block formats of GGUF files (engine-internal).
 *
 * A row of a weight matrix is stored in its tensor type's blocks (geometry
 * in gguf_types.c, byte layouts in quant.c and quant_k.c). This module
 * turns rows of the supported types into floats, turns floats into the
 * types a model writer needs (F16, BF16, Q8_0, Q4_0, as ggml's reference
 * quantizers do, so a quantized file is the one llama.cpp would write), and
 * gives a plain scalar dot product of a stored row with a float vector for
 * each type: the reference that faster kernels are checked against, and
 * the fallback where none exists.
 *
 *   type  elements/block  bytes/block  value of element i of a block
 *   F32   1               4            IEEE single
 *   F16   1               2            IEEE half
 *   BF16  1               2            the upper 16 bits of an IEEE single
 *   Q8_0  32              34           d * q[i]                 (q int8)
 *   Q4_0  32              18           d * (q[i] - 8)           (q 4-bit)
 *   Q4_K  256             144          d * sc[j] * q[i] - dmin * m[j]
 *                                      (8 sub-blocks j of 32; 6-bit sc, m)
 *   Q6_K  256             210          d * sc[j] * (q[i] - 32)
 *                                      (16 sub-blocks j of 16; int8 sc)
 *
 * Rows are read byte by byte, so they need no alignment and the results do
 * not depend on the host's byte order.
 *
 * Errors: the row functions run once per row in the forward pass and take
 * no mlx_err; they return MLX_EINVAL for an unsupported type or a length
 * that is not a whole number of blocks, conditions a caller checks once,
 * with a sentence, through quant_check_row.
 *
 * Thread safety: pure functions over the caller's buffers.
 */
#ifndef MLX_AGENT_ENGINE_QUANT_H
#define MLX_AGENT_ENGINE_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/engine/gguf.h"
#include "common/err.h"

/* Half precision (IEEE 754 binary16) and bfloat16 from and to float. The
 * narrowing conversions round to nearest, ties to even; too large a value
 * becomes infinity; NaN stays NaN (quiet). */
float quant_f16_to_f32(uint16_t h);
uint16_t quant_f32_to_f16(float f);
float quant_bf16_to_f32(uint16_t b);
uint16_t quant_f32_to_bf16(float f);

/* The per-type functions, for callers that pick a kernel once per tensor
 * (n is the row length, a multiple of block_elems; dst/x hold n floats). */
typedef void (*quant_dequantize_fn)(const void *src, float *dst, size_t n);
typedef void (*quant_quantize_fn)(const float *src, void *dst, size_t n);
typedef float (*quant_dot_fn)(const void *row, const float *x, size_t n);

typedef struct quant_ops {
    ggml_type type;
    uint32_t block_elems, block_bytes;
    quant_dequantize_fn dequantize;
    quant_quantize_fn quantize; /* NULL where only reading is supported (Q4_K, Q6_K) */
    quant_dot_fn dot;           /* accumulates in double; the reference */
} quant_ops;

/* The functions of a supported type; NULL for any other. */
const quant_ops *quant_ops_get(ggml_type t);

/* True for the types the engine computes with: F32, F16, BF16, Q8_0, Q4_0,
 * Q4_K, Q6_K. */
bool ggml_type_supported(ggml_type t);

/* Bytes of a row of n elements of type t; 0 when t has no known geometry or
 * n is not a whole number of its blocks. */
size_t quant_row_bytes(ggml_type t, uint64_t n);

/* 0 when rows of n elements of type t can be dequantized (and quantized,
 * when quantize is set); otherwise MLX_EINVAL and a sentence naming the
 * type and what is wrong. */
int quant_check_row(ggml_type t, uint64_t n, bool quantize, mlx_err *err);

/* src: quant_row_bytes(t, n) bytes; dst: n floats. */
int quant_dequantize_row(ggml_type t, const void *src, float *dst, size_t n);
/* src: n floats; dst: quant_row_bytes(t, n) bytes. F32, F16, BF16, Q8_0, Q4_0. */
int quant_quantize_row(ggml_type t, const float *src, void *dst, size_t n);
/* *out = sum over i of row[i] * x[i]. */
int quant_dot_row(ggml_type t, const void *row, const float *x, size_t n, float *out);

#endif
