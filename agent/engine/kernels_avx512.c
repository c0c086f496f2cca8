/*
 * kernels_avx512.c — the x86-64 path for CPUs with AVX-512 F, BW, VL and
 * VNNI (and the AVX2, FMA and F16C the AVX2 path needs): the table, whose
 * quantized products of 32-value blocks are kernels_avx512_q.c's. The rest
 * is the AVX2 path's: the float products read memory as fast with 256-bit
 * vectors, the quantizers and the KV-cache helpers are a small part of a
 * pass, and the k-quants' integer work maps onto VNNI less directly (each
 * 16 or 32 values have their own scale).
 *
 * Built with the AVX-512 flags (kernels.cmake), reached only through the
 * table that kernels.c hands out once CPUID and XCR0 say the CPU and the
 * OS have them.
 */
#include "agent/engine/kernels_int.h"

static void avx512_matmul(ggml_type t, const void *rows, size_t row_bytes, size_t n,
                          size_t r0, size_t r1, const void *acts, size_t act_bytes,
                          size_t n_acts, float *y, size_t ldy)
{
    switch (t) {
    case GGML_TYPE_F32:
    case GGML_TYPE_F16:
    case GGML_TYPE_BF16:
        kernels_avx2_matmul_float(t, rows, row_bytes, n, r0, r1, acts, act_bytes, n_acts,
                                  y, ldy);
        break;
    case GGML_TYPE_Q8_0:
    case GGML_TYPE_Q4_0:
        kernels_avx512_matmul_q32(t, rows, row_bytes, n, r0, r1, acts, act_bytes, n_acts,
                                  y, ldy);
        break;
    case GGML_TYPE_Q4_K:
    case GGML_TYPE_Q6_K:
        kernels_avx2_matmul_k_avx512(t, rows, row_bytes, n, r0, r1, acts, act_bytes, n_acts,
                                     y, ldy);
        break;
    default:
        break; /* callers check the type when the model loads */
    }
}

const kernels kernels_avx512 = {
    .path = KERNEL_AVX512,
    .name = "avx512",
    .quantize_act = kernels_avx2_quantize_act,
    .matmul = avx512_matmul,
    .f32_to_f16 = kernels_avx2_f32_to_f16,
    .dot_f16 = kernels_avx2_dot_f16,
    .axpy_f16 = kernels_avx2_axpy_f16,
};
