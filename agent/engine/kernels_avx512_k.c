/*
 * kernels_avx512_k.c — kernels_avx2_k.c again, for the AVX-512 path: this
 * file is compiled with the AVX-512 flags (kernels.cmake) and defines
 * KRN_AVX512_VNNI, so each sub-block's int16 products are multiplied by
 * its scale and added into the int32 sums by one VPDPWSSD where AVX2 needs
 * VPMADDWD and VPADDD. One source for both keeps the two from drifting
 * apart; the integers, and so the results, are the same.
 */
#define KRN_AVX512_VNNI 1
#include "kernels_avx2_k.c"
