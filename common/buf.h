/*
 * buf.h — a growable byte buffer with a ceiling.
 *
 * Every buffer gets its maximum at init; an append that would pass it fails
 * with MLX_ETOOBIG, and any failed append frees the contents, so after an
 * error the buffer is always empty and still usable (one known state).
 * The data is kept NUL-terminated for convenience; the terminator is not
 * counted in len.
 *
 * Lifecycle:
 *   1. mlx_buf_init sets the maximum; no memory is allocated yet.
 *   2. appends grow the buffer.
 *   3. mlx_buf_take hands the bytes to the caller (who frees them with
 *      mlx_free) and leaves the buffer empty; mlx_buf_fini frees them.
 *
 * Thread safety: a buffer belongs to one thread at a time.
 */
#ifndef MLX_COMMON_BUF_H
#define MLX_COMMON_BUF_H

#include <stddef.h>

typedef struct mlx_buf {
    char *data; /* NULL until the first append; NUL-terminated after it */
    size_t len; /* bytes used, without the terminator */
    size_t cap; /* bytes allocated */
    size_t max; /* ceiling on len */
} mlx_buf;

void mlx_buf_init(mlx_buf *b, size_t max);
void mlx_buf_fini(mlx_buf *b);
void mlx_buf_reset(mlx_buf *b); /* empties, keeps the allocation */

int mlx_buf_append(mlx_buf *b, const void *data, size_t len);
int mlx_buf_append_str(mlx_buf *b, const char *s);
int mlx_buf_printf(mlx_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Returns the NUL-terminated contents ("" as an allocation when empty) and
 * empties the buffer; caller frees. NULL only when out of memory. */
char *mlx_buf_take(mlx_buf *b);

/* The contents as a C string; "" when nothing was appended. Borrowed. */
const char *mlx_buf_str(const mlx_buf *b);

#endif
