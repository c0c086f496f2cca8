/*
 * sha256.h — SHA-256 through OpenSSL's EVP interface.
 *
 * EVP picks the CPU's SHA extensions (SHA-NI, ARMv8 crypto) when present,
 * which is why the store hashes through it rather than a portable routine.
 *
 * Lifecycle: mlx_sha256_init, any number of mlx_sha256_update,
 * mlx_sha256_final (which also frees); mlx_sha256_abort frees a context
 * that will not be finished.
 *
 * Thread safety: a context belongs to one thread; the functions are safe.
 */
#ifndef MLX_COMMON_SHA256_H
#define MLX_COMMON_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define MLX_SHA256_LEN 32
#define MLX_SHA256_HEX 65 /* 64 hex digits and a NUL */

typedef struct mlx_sha256 {
    void *md; /* EVP_MD_CTX, opaque */
} mlx_sha256;

int mlx_sha256_init(mlx_sha256 *h, mlx_err *err);
int mlx_sha256_update(mlx_sha256 *h, const void *data, size_t len, mlx_err *err);
int mlx_sha256_final(mlx_sha256 *h, uint8_t out[MLX_SHA256_LEN], mlx_err *err);
void mlx_sha256_abort(mlx_sha256 *h);

/* One-shot digest of a buffer. */
int mlx_sha256_buf(const void *data, size_t len, uint8_t out[MLX_SHA256_LEN],
                   mlx_err *err);

/* Digest of a whole file, read in large chunks. */
int mlx_sha256_file(const char *path, uint8_t out[MLX_SHA256_LEN], mlx_err *err);

/* Lower-case hex of a digest; out must hold MLX_SHA256_HEX bytes. */
void mlx_sha256_hex(const uint8_t digest[MLX_SHA256_LEN], char out[MLX_SHA256_HEX]);

/* Parses 64 hex digits (either case); MLX_EINVAL otherwise. */
int mlx_sha256_parse_hex(const char *hex, uint8_t out[MLX_SHA256_LEN], mlx_err *err);

#endif
