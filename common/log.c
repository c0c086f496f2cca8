/* log.c — line formatting and the default stderr sink. */
#include "common/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"

static const char *const level_names[] = {"debug", "info", "warn", "error"};

static void stderr_sink(void *arg, mlx_log_level level, const char *line)
{
    (void)arg;
    (void)level;
    char buf[MLX_MAX_LOG_LINE + 1];
    size_t n = strlen(line);
    if (n > MLX_MAX_LOG_LINE)
        n = MLX_MAX_LOG_LINE;
    memcpy(buf, line, n);
    buf[n++] = '\n';
    /* One write per line keeps lines whole when several threads log. */
    ssize_t rc = write(STDERR_FILENO, buf, n);
    (void)rc;
}

static mlx_log_sink current_sink = stderr_sink;
static void *current_arg;
static _Atomic int current_level = MLX_LOG_INFO;

void mlx_log_set_sink(mlx_log_sink sink, void *arg)
{
    current_sink = sink != NULL ? sink : stderr_sink;
    current_arg = sink != NULL ? arg : NULL;
}

void mlx_log_set_level(mlx_log_level level)
{
    atomic_store(&current_level, (int)level);
}

mlx_log_level mlx_log_get_level(void)
{
    return (mlx_log_level)atomic_load(&current_level);
}

int mlx_log_parse_level(const char *text, mlx_log_level *out, mlx_err *err)
{
    for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
        if (strcmp(text, level_names[i]) == 0) {
            *out = (mlx_log_level)i;
            return 0;
        }
    }
    return mlx_err_set(err, MLX_EINVAL,
                       "'%s' is not a log level; use debug, info, warn or error", text);
}

/* Appends to line at *len without overflowing; returns the new length. */
static size_t append(char *line, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static size_t append(char *line, size_t len, const char *fmt, ...)
{
    if (len >= MLX_MAX_LOG_LINE)
        return len;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line + len, MLX_MAX_LOG_LINE + 1 - len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return len;
    len += (size_t)n;
    return len > MLX_MAX_LOG_LINE ? MLX_MAX_LOG_LINE : len;
}

void mlx_log(mlx_log_level level, const char *module, const char *msg, const char *kv_fmt,
             ...)
{
    if ((int)level < atomic_load(&current_level))
        return;

    char line[MLX_MAX_LOG_LINE + 1];
    char ts[40];
    mlx_time_format_rfc3339(mlx_time_wall_ms(), ts, sizeof ts);
    size_t len =
        append(line, 0, "%s %s %s msg=\"%s\"", level_names[level], ts, module, msg);
    if (kv_fmt != NULL && kv_fmt[0] != '\0' && len < MLX_MAX_LOG_LINE) {
        /* Format after a space, and take the space back if nothing came. */
        line[len++] = ' ';
        va_list ap;
        va_start(ap, kv_fmt);
        int n = vsnprintf(line + len, MLX_MAX_LOG_LINE + 1 - len, kv_fmt, ap);
        va_end(ap);
        if (n > 0)
            len = len + (size_t)n > MLX_MAX_LOG_LINE ? MLX_MAX_LOG_LINE : len + (size_t)n;
        else
            len--;
    }
    line[len] = '\0';
    for (size_t i = 0; i < len; i++) {
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    }
    current_sink(current_arg, level, line);
}
