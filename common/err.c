/* err.c — error codes, names and sentences. */
#include "common/err.h"

#include <stdio.h>
#include <string.h>

void mlx_err_clear(mlx_err *e)
{
    if (e == NULL)
        return;
    e->code = 0;
    e->msg[0] = '\0';
}

int mlx_err_vset(mlx_err *e, int code, const char *fmt, va_list ap)
{
    if (e == NULL)
        return code;
    e->code = code;
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    return code;
}

int mlx_err_set(mlx_err *e, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mlx_err_vset(e, code, fmt, ap);
    va_end(ap);
    return code;
}

int mlx_err_prefix(mlx_err *e, int code, const char *fmt, ...)
{
    if (e == NULL)
        return code;
    char joined[MLX_MAX_ERR_MSG];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(joined, sizeof joined, fmt, ap);
    va_end(ap);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof joined ? (size_t)n : sizeof joined - 1;
    /* "prefix: old sentence", cut at the buffer's end. */
    const char *parts[2] = {": ", e->msg};
    for (int i = 0; i < 2; i++) {
        size_t add = strlen(parts[i]);
        if (add > sizeof joined - 1 - len)
            add = sizeof joined - 1 - len;
        memcpy(joined + len, parts[i], add);
        len += add;
    }
    joined[len] = '\0';
    memcpy(e->msg, joined, len + 1);
    e->code = code;
    return code;
}

#define MLX_ERR_TEXT_(name, text)                                                        \
    case MLX_##name:                                                                     \
        return text;
#define MLX_ERR_NAME_(name, text)                                                        \
    case MLX_##name:                                                                     \
        return #name;

const char *mlx_strerror(int code)
{
    switch (code) {
    case MLX_OK:
        return "success";
        MLX_ERRNO_MAP(MLX_ERR_TEXT_)
    default:
        return "unknown error";
    }
}

const char *mlx_errname(int code)
{
    switch (code) {
    case MLX_OK:
        return "OK";
        MLX_ERRNO_MAP(MLX_ERR_NAME_)
    default:
        return "EUNKNOWN";
    }
}

const char *mlx_err_text(const mlx_err *e, int code)
{
    if (e != NULL && e->code != 0 && e->msg[0] != '\0')
        return e->msg;
    return mlx_strerror(code);
}

int mlx_exit_status(int code)
{
    if (code == 0)
        return 0;
    if (code == MLX_EUSAGE || code == MLX_ECONFIG)
        return 2;
    return 1;
}
