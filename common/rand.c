/* rand.c — RAND_bytes wrappers. */
#include "common/rand.h"

#include <openssl/rand.h>
#include <stdint.h>

int mlx_rand_bytes(void *out, size_t n, mlx_err *err)
{
    if (n > INT32_MAX || RAND_bytes(out, (int)n) != 1)
        return mlx_err_set(err, MLX_EINTERNAL, "the random number generator failed");
    return 0;
}

int mlx_rand_hex(char *out, size_t digits, mlx_err *err)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char bytes[64];
    if (digits > 2 * sizeof bytes)
        return mlx_err_set(err, MLX_EINVAL, "at most %zu random hex digits",
                           2 * sizeof bytes);
    int rc = mlx_rand_bytes(bytes, (digits + 1) / 2, err);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < digits; i++)
        out[i] = hex[(bytes[i / 2] >> (i % 2 ? 0 : 4)) & 15];
    out[digits] = '\0';
    return 0;
}
