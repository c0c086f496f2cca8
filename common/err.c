/* err.c — error codes, names and sentences. */
#include "common/err.h"
#include "common/parse.h"

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
    /* A few bytes past the end show whether the cut, if the sentence is
     * too long, falls inside a character; it is moved back before it. */
    char text[sizeof e->msg + 4];
    vsnprintf(text, sizeof text, fmt, ap);
    size_t len = mlx_utf8_prefix(text, sizeof e->msg - 1);
    memcpy(e->msg, text, len);
    e->msg[len] = '\0';
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
    /* "prefix: old sentence", cut where mlx_err_vset cuts. */
    char prefix[MLX_MAX_ERR_MSG + 4], old[MLX_MAX_ERR_MSG];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    return mlx_err_set(e, code, "%s: %s", prefix, old);
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
