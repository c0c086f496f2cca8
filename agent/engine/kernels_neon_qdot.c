/*
 * kernels_neon_qdot.c — kernels_neon_q.c again, with the arm64
 * dot-product instructions (SDOT): this file alone is compiled for
 * armv8.2-a+dotprod (kernels.cmake), and kernels.c calls into it only when
 * the CPU reports FEAT_DotProd. One source for both builds keeps the two
 * variants from drifting apart.
 */
#define KRN_NEON_DOTPROD 1
#include "kernels_neon_q.c"
