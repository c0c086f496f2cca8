/*
 * rand.h — unpredictable identifiers from OpenSSL's CSPRNG.
 *
 * Node ids, request ids, coordinator epochs and (later) API keys and salts
 * come from here, so none of them can be guessed from another.
 *
 * Thread safety: all functions are safe.
 */
#ifndef MLX_COMMON_RAND_H
#define MLX_COMMON_RAND_H

#include <stddef.h>

#include "common/err.h"

int mlx_rand_bytes(void *out, size_t n, mlx_err *err);

/* Writes digits lower-case hex digits and a NUL to out (size > digits). */
int mlx_rand_hex(char *out, size_t digits, mlx_err *err);

#endif
