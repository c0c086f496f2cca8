/*
 * path.h — file-system paths: home expansion, directory creation, small files.
 *
 * Small state files (a node id, a pid) are written atomically: to a
 * temporary name in the same directory, fsync'd, then renamed over the
 * target, so a crash leaves either the old or the new content, never half.
 *
 * Thread safety: all functions are safe.
 */
#ifndef MLX_COMMON_PATH_H
#define MLX_COMMON_PATH_H

#include <stddef.h>

#include "common/err.h"

/* "~" or "~/x" → "$HOME" or "$HOME/x"; anything else is copied. *out: caller frees. */
int mlx_path_expand_user(const char *path, char **out, mlx_err *err);

/* "a" + "b" → "a/b"; caller frees; NULL when out of memory. */
char *mlx_path_join(const char *dir, const char *name);

/* mkdir -p with the given mode for directories it creates. */
int mlx_path_mkdirs(const char *path, unsigned mode, mlx_err *err);

/* Reads at most max bytes of a small file into a NUL-terminated string
 * (caller frees). MLX_ENOENT when the file does not exist, MLX_ETOOBIG when
 * it is longer than max. */
int mlx_path_read_small(const char *path, size_t max, char **out, mlx_err *err);

/* Replaces path's content with data, atomically (see above). */
int mlx_path_write_atomic(const char *path, const void *data, size_t len, mlx_err *err);

/* Takes an exclusive lock on dir/name (created if needed) so that two
 * processes never share a data directory. *fd keeps the lock until closed.
 * MLX_EBUSY when another process holds it. */
int mlx_path_lock(const char *dir, const char *name, const char *who, int *fd,
                  mlx_err *err);

#endif
