/* buf.c — bounded growable buffer. */
#include "common/buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"

void mlx_buf_init(mlx_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void mlx_buf_fini(mlx_buf *b)
{
    mlx_free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void mlx_buf_reset(mlx_buf *b)
{
    b->len = 0;
    if (b->data != NULL)
        b->data[0] = '\0';
}

/* Makes room for len more bytes plus the terminator. */
static int reserve(mlx_buf *b, size_t len)
{
    if (len > b->max || b->len > b->max - len) {
        mlx_buf_fini(b);
        return MLX_ETOOBIG;
    }
    size_t need = b->len + len + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap < 64 ? 64 : b->cap;
    while (cap < need)
        cap = cap > (SIZE_MAX / 2) ? need : cap * 2;
    char *p = mlx_realloc(b->data, cap);
    if (p == NULL) {
        mlx_buf_fini(b);
        return MLX_ENOMEM;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

int mlx_buf_append(mlx_buf *b, const void *data, size_t len)
{
    int rc = reserve(b, len);
    if (rc != 0)
        return rc;
    if (len > 0)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int mlx_buf_append_str(mlx_buf *b, const char *s)
{
    return mlx_buf_append(b, s, strlen(s));
}

int mlx_buf_printf(mlx_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        mlx_buf_fini(b);
        return MLX_EINVAL;
    }
    int rc = reserve(b, (size_t)n);
    if (rc != 0)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

char *mlx_buf_take(mlx_buf *b)
{
    char *out = b->data;
    if (out == NULL)
        out = mlx_strdup("");
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return out;
}

const char *mlx_buf_str(const mlx_buf *b)
{
    return b->data != NULL ? b->data : "";
}
