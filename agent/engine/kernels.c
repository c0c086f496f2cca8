/*
 * kernels.c — which kernel path runs: what the CPU can do, what
 * MLX_KERNELS asks for, and the activation formats every path shares.
 *
 * The AVX2 path needs AVX2, FMA and F16C from the CPU and the YMM
 * registers' state saved by the OS (XCR0 bits 1 and 2, read with xgetbv
 * once CPUID says OSXSAVE): a CPU that has AVX but runs under an OS that
 * does not save YMM would fault on the first 256-bit instruction. The
 * AVX-512 path needs all that, AVX-512 F, BW, VL and VNNI (CPUID leaf 7)
 * and the OS saving the mask and upper ZMM registers too (XCR0 bits 5, 6
 * and 7): an OS may leave AVX-512 off even where the CPU has it. NEON is
 * part of every arm64 CPU; its dot-product instructions (SDOT, FEAT_DotProd)
 * are asked of the kernel (AT_HWCAP on Linux) or of sysctl on macOS.
 *
 * The path files are compiled for their instruction sets only on the
 * architectures that have them (kernels.cmake, which defines
 * MLX_KERNELS_AVX2, MLX_KERNELS_AVX512 or MLX_KERNELS_NEON for this file
 * when it builds them);
 * this file is built for the baseline, so nothing runs an instruction the
 * CPU lacks before the check.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "agent/engine/kernels_int.h"
#include "common/log.h"

#if defined(__x86_64__) || defined(_M_X64)
#define KRN_X86 1
#include <cpuid.h>
#elif defined(__aarch64__)
#define KRN_ARM64 1
#if defined(__APPLE__)
#include <sys/sysctl.h>
#elif defined(__linux__)
#include <sys/auxv.h>
#endif
#endif

ggml_type kernels_act_type(ggml_type t)
{
    switch (t) {
    case GGML_TYPE_F32:
    case GGML_TYPE_F16:
    case GGML_TYPE_BF16:
        return GGML_TYPE_F32;
    case GGML_TYPE_Q8_0:
    case GGML_TYPE_Q4_0:
        return GGML_TYPE_Q8_0;
    case GGML_TYPE_Q4_K:
    case GGML_TYPE_Q6_K:
        return GGML_TYPE_Q8_K;
    default:
        return GGML_TYPE_COUNT_; /* no kernel multiplies this type */
    }
}

size_t kernels_act_row_bytes(ggml_type t, size_t n)
{
    switch (kernels_act_type(t)) {
    case GGML_TYPE_F32:
        return n * sizeof(float);
    case GGML_TYPE_Q8_0:
        return n / KRN_QK * KRN_Q8_0_SIZE;
    case GGML_TYPE_Q8_K:
        return n / KRN_QK_K * KRN_Q8_K_SIZE;
    default:
        return 0;
    }
}

#if KRN_X86 && defined(MLX_KERNELS_AVX2)
/* XCR0, the register states the OS saves; 0 when it saves none (no
 * OSXSAVE, and xgetbv would fault). */
static unsigned os_saved_state(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || (c & 1u << 27) == 0) /* OSXSAVE */
        return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    (void)hi;
    return lo;
}

static bool cpu_has_avx2(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return false;
    const unsigned fma = 1u << 12, avx = 1u << 28, f16c = 1u << 29;
    if ((c & (fma | avx | f16c)) != (fma | avx | f16c))
        return false;
    /* XCR0: bit 1 SSE state, bit 2 AVX (upper YMM) state. */
    if ((os_saved_state() & 6) != 6)
        return false;
    if (__get_cpuid_max(0, NULL) < 7)
        return false;
    __cpuid_count(7, 0, a, b, c, d);
    return (b & (1u << 5)) != 0; /* AVX2 */
}

#if defined(MLX_KERNELS_AVX512)
static bool cpu_has_avx512(void)
{
    if (!cpu_has_avx2()) /* the path reuses the AVX2 kernels */
        return false;
    unsigned a, b, c, d;
    __cpuid_count(7, 0, a, b, c, d);
    const unsigned f = 1u << 16, bw = 1u << 30, vl = 1u << 31, vnni = 1u << 11;
    if ((b & (f | bw | vl)) != (f | bw | vl) || (c & vnni) == 0)
        return false;
    /* XCR0: bit 5 the mask registers, bit 6 the upper halves of ZMM0-15,
     * bit 7 ZMM16-31 (the VL instructions reach YMM16-31 too). */
    return (os_saved_state() & 0xe6) == 0xe6;
}
#endif
#endif

bool kernels_cpu_has_dotprod(void)
{
#if KRN_ARM64 && defined(__APPLE__)
    int v = 0;
    size_t len = sizeof(v);
    if (sysctlbyname("hw.optional.arm.FEAT_DotProd", &v, &len, NULL, 0) != 0)
        return false;
    return v != 0;
#elif KRN_ARM64 && defined(__linux__)
    /* HWCAP_ASIMDDP, spelled out: older C libraries' headers lack it. */
    return (getauxval(AT_HWCAP) & (1ul << 20)) != 0;
#else
    return false;
#endif
}

const kernels *kernels_for(kernel_path p)
{
    switch (p) {
    case KERNEL_SCALAR:
        return &kernels_scalar;
    case KERNEL_AVX2:
#if KRN_X86 && defined(MLX_KERNELS_AVX2)
        return cpu_has_avx2() ? &kernels_avx2 : NULL;
#else
        return NULL;
#endif
    case KERNEL_AVX512:
#if KRN_X86 && defined(MLX_KERNELS_AVX512)
        return cpu_has_avx512() ? &kernels_avx512 : NULL;
#else
        return NULL;
#endif
    case KERNEL_NEON:
#if KRN_ARM64 && defined(MLX_KERNELS_NEON)
        return kernels_cpu_has_dotprod() ? &kernels_neon_dot : &kernels_neon;
#else
        return NULL;
#endif
    }
    return NULL;
}

static const kernels *kernels_best(void)
{
    const kernels *k = kernels_for(KERNEL_AVX512);
    if (k == NULL)
        k = kernels_for(KERNEL_AVX2);
    if (k == NULL)
        k = kernels_for(KERNEL_NEON);
    return k != NULL ? k : &kernels_scalar;
}

const kernels *kernels_select(const char *name)
{
    const kernels *best = kernels_best();
    if (name == NULL || name[0] == '\0')
        return best;
    static const struct {
        const char *name;
        kernel_path path;
    } names[] = {{"scalar", KERNEL_SCALAR},
                 {"avx2", KERNEL_AVX2},
                 {"avx512", KERNEL_AVX512},
                 {"neon", KERNEL_NEON}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(name, names[i].name) != 0)
            continue;
        const kernels *k = kernels_for(names[i].path);
        if (k == NULL)
            mlx_log_warn("kernels",
                         "MLX_KERNELS names a path this CPU or build cannot run",
                         "asked=%s using=%s", name, best->name);
        return k != NULL ? k : best;
    }
    mlx_log_warn("kernels", "MLX_KERNELS is not scalar, avx2, avx512 or neon",
                 "asked=\"%s\" using=%s", name, best->name);
    return best;
}

static const kernels *chosen;
static pthread_once_t chosen_once = PTHREAD_ONCE_INIT;

static void kernels_choose(void)
{
    chosen = kernels_select(getenv("MLX_KERNELS"));
    mlx_log_debug("kernels", "kernel path chosen", "path=%s dotprod=%s", chosen->name,
                  chosen == kernels_for(KERNEL_NEON) && kernels_cpu_has_dotprod() ? "yes"
                                                                                  : "no");
}

const kernels *kernels_get(void)
{
    pthread_once(&chosen_once, kernels_choose);
    return chosen;
}
