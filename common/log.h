/*
 * log.h — one line per event: `level ts module msg="…" key=value …`.
 *
 *   info 2026-11-22T10:04:05.123Z membership msg="node state changed" node=3f… from=up
 * to=suspect
 *
 * Library code reports through mlx_log_* and never prints; the binary picks
 * the sink (stderr by default) and the lowest level shown. A line is formatted
 * whole and handed to the sink in one call, so lines from several threads
 * never interleave; newlines inside a line become spaces.
 *
 * Thread safety: mlx_log_* are safe from any thread. Set the sink and level at
 * start, before other threads log.
 */
#ifndef MLX_COMMON_LOG_H
#define MLX_COMMON_LOG_H

#include "common/err.h"

typedef enum mlx_log_level {
    MLX_LOG_DEBUG,
    MLX_LOG_INFO,
    MLX_LOG_WARN,
    MLX_LOG_ERROR,
} mlx_log_level;

/* Receives each finished line (no trailing newline). Must be thread-safe. */
typedef void (*mlx_log_sink)(void *arg, mlx_log_level level, const char *line);

/* NULL restores the default sink (stderr). */
void mlx_log_set_sink(mlx_log_sink sink, void *arg);
void mlx_log_set_level(mlx_log_level level);
mlx_log_level mlx_log_get_level(void);

/* Parses "debug", "info", "warn" or "error". */
int mlx_log_parse_level(const char *text, mlx_log_level *out, mlx_err *err);

/* msg is a short fixed sentence; kv_fmt (may be NULL) formats the
 * space-separated key=value pairs that follow it. */
void mlx_log(mlx_log_level level, const char *module, const char *msg, const char *kv_fmt,
             ...) __attribute__((format(printf, 4, 5)));

#define mlx_log_debug(module, msg, ...) mlx_log(MLX_LOG_DEBUG, module, msg, __VA_ARGS__)
#define mlx_log_info(module, msg, ...)  mlx_log(MLX_LOG_INFO, module, msg, __VA_ARGS__)
#define mlx_log_warn(module, msg, ...)  mlx_log(MLX_LOG_WARN, module, msg, __VA_ARGS__)
#define mlx_log_error(module, msg, ...) mlx_log(MLX_LOG_ERROR, module, msg, __VA_ARGS__)

#endif
