/*
 * err.h — error codes and error sentences.
 *
 * Every fallible function returns 0 or a negative MLX_E* code and, when the
 * caller passes an mlx_err, fills it with one sentence for a person: what was
 * wrong and what to do about it. The code is for programs, the sentence for
 * people. Passing NULL for the mlx_err is always allowed.
 *
 * The list below is the only place codes are defined: it makes the enum, the
 * names (mlx_errname) and the default texts (mlx_strerror).
 *
 * Thread safety: all functions are safe; an mlx_err belongs to one caller.
 */
#ifndef MLX_COMMON_ERR_H
#define MLX_COMMON_ERR_H

#include <stdarg.h>

#include "common/limits.h"

#define MLX_ERRNO_MAP(X)                                                                 \
    X(EINVAL, "invalid argument")                                                        \
    X(ENOMEM, "out of memory")                                                           \
    X(EIO, "input/output error")                                                         \
    X(ENOENT, "not found")                                                               \
    X(EEXIST, "already exists")                                                          \
    X(EPERM, "permission denied")                                                        \
    X(EPROTO, "malformed message")                                                       \
    X(EVERSION, "unsupported protocol version")                                          \
    X(ETOOBIG, "too large")                                                              \
    X(ETIMEDOUT, "timed out")                                                            \
    X(EUNREACH, "peer unreachable")                                                      \
    X(ECONFIG, "bad configuration")                                                      \
    X(EUSAGE, "bad usage")                                                               \
    X(EDB, "database error")                                                             \
    X(EBUSY, "busy")                                                                     \
    X(ECLOSED, "closed")                                                                 \
    X(ECORRUPT, "corrupt data")                                                          \
    X(EHTTP, "HTTP error")                                                               \
    X(EUNKNOWNNODE, "unknown node")                                                      \
    X(EINTERNAL, "internal error")

enum mlx_errno {
    MLX_OK = 0,
#define MLX_ERR_ENUM_(name, text) MLX_##name,
    MLX_ERR_FIRST_ = -1000,
    MLX_ERRNO_MAP(MLX_ERR_ENUM_) MLX_ERR_LAST_
#undef MLX_ERR_ENUM_
};

/* A failure described for a person. code is 0 until something fails. */
typedef struct mlx_err {
    int code;
    char msg[MLX_MAX_ERR_MSG];
} mlx_err;

/* Resets e to "no error". e may be NULL. */
void mlx_err_clear(mlx_err *e);

/* Records code and a printf-style sentence in e (may be NULL) and returns
 * code, so a caller can write `return mlx_err_set(err, MLX_EIO, "...")`. */
int mlx_err_set(mlx_err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int mlx_err_vset(mlx_err *e, int code, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* Puts "prefix: " in front of the sentence already in e (context such as the
 * file being read) and returns code, the failure being passed up — so
 * `return mlx_err_prefix(err, rc, "reading %s", path)` is right even when err
 * is NULL. */
int mlx_err_prefix(mlx_err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Default text and symbolic name of a code ("EINVAL"); never NULL. */
const char *mlx_strerror(int code);
const char *mlx_errname(int code);

/* The sentence in e, or the default text of code when e holds none. */
const char *mlx_err_text(const mlx_err *e, int code);

/* Process exit status for a code: 0 for success, 2 for bad usage or
 * configuration, 1 for everything else (DESIGN.md, "Exit codes"). */
int mlx_exit_status(int code);

#endif
