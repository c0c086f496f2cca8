/*
 * kernels.h — the arithmetic of the forward pass, per CPU (engine-internal).
 *
 * Weights stay in their tensor type; activations are converted once per
 * vector into the format each weight type multiplies with:
 *
 *   weight type          activation format   the dot product
 *   F32, F16, BF16       F32                 float, weights widened
 *   Q8_0, Q4_0           Q8_0                integer, per 32-element block
 *   Q4_K, Q6_K           Q8_K                integer, per 256-element block
 *
 * as llama.cpp does, so quantized models give nearly its numbers, and the
 * integer products run several times faster than float ones. Q8_K is
 * ggml's layout: a float scale d, 256 int8 values, and the 16 sums of each
 * 16-value group (int16) that the K-quants' minimums need.
 *
 * Each CPU family has a path: on x86-64, AVX2 + FMA + F16C, and AVX-512
 * (F, BW, VL and VNNI, on top of AVX2's: its VPDPBUSD does in one
 * instruction the byte products and sums of the quantized types, which
 * AVX2 needs three for; the OS must save the ZMM and mask registers); NEON
 * (with the dot-product extension where present) on arm64; and a plain
 * scalar path that any C compiler builds. kernels_get picks the best path
 * the CPU has, once (avx512 over avx2); MLX_KERNELS=scalar|avx2|avx512|neon
 * chooses one for tests and comparisons (a path this CPU cannot run is
 * refused, not emulated).
 * Every path computes the same quantities: for the quantized types the
 * results are the scalar path's bits exactly (block sums are integers, and
 * the float steps after them are done in one order everywhere); float
 * products differ only by summation order.
 *
 * Thread safety: the table is immutable; its functions are pure over the
 * caller's buffers and may run on many threads at once.
 */
#ifndef MLX_AGENT_ENGINE_KERNELS_H
#define MLX_AGENT_ENGINE_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "agent/engine/gguf.h"

typedef enum kernel_path {
    KERNEL_SCALAR,
    KERNEL_AVX2,
    KERNEL_NEON,
    KERNEL_AVX512,
} kernel_path;

/* The activation format weights of type t are multiplied with: F32, Q8_0
 * or Q8_K (GGML_TYPE_Q8_K); GGML_TYPE_COUNT_ for a type the engine does
 * not compute with (and then kernels_act_row_bytes is 0). */
ggml_type kernels_act_type(ggml_type t);

/* Bytes of one activation row of n elements for weights of type t (n is a
 * multiple of t's block length). */
size_t kernels_act_row_bytes(ggml_type t, size_t n);

typedef struct kernels {
    kernel_path path;
    const char *name; /* "scalar", "avx2", "avx512", "neon" */

    /* x (n floats) into the activation format of weight type t, at out
     * (kernels_act_row_bytes(t, n) bytes). */
    void (*quantize_act)(ggml_type t, const float *x, void *out, size_t n);

    /* Matrix times vectors: for rows r in [r0, r1) of a weight matrix of
     * type t (rows of n elements, row_bytes apart from rows) and
     * activations j in [0, n_acts) (act_bytes apart from acts, already in
     * t's activation format):
     *
     *     y[j * ldy + r] = dot(row r, activation j)
     *
     * F32 activations must be 4-byte aligned, act_bytes a multiple of 4.
     * Each weight row is read once for all the activations: that is what
     * makes a batch of tokens cheaper than the same tokens one by one. */
    void (*matmul)(ggml_type t, const void *rows, size_t row_bytes, size_t n, size_t r0,
                   size_t r1, const void *acts, size_t act_bytes, size_t n_acts, float *y,
                   size_t ldy);

    /* The KV cache is F16: rows converted in and read back. */
    void (*f32_to_f16)(const float *x, uint16_t *y, size_t n);
    /* sum over i of q[i] * k[i] (k in F16): an attention score. */
    float (*dot_f16)(const float *q, const uint16_t *k, size_t n);
    /* y[i] += a * v[i] (v in F16): accumulating attention's output. */
    void (*axpy_f16)(float a, const uint16_t *v, float *y, size_t n);
} kernels;

/* The best path this CPU runs, or the one MLX_KERNELS names (a name this
 * CPU cannot run falls back to the best, with a warning in the log).
 * Chosen on the first call. */
const kernels *kernels_get(void);

/* A given path, or NULL when this build or CPU cannot run it. For tests
 * that check every path against the scalar one. */
const kernels *kernels_for(kernel_path p);

#endif
