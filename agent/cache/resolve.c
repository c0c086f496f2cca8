/* resolve.c — finding a model's GGUF file by its name in the store. */
#include "agent/cache/cache.h"

int cache_resolve_model(const char *data_dir, const char *name, char **path, mlx_err *err)
{
    (void)data_dir;
    *path = NULL;
    return mlx_err_set(err, MLX_ENOENT,
                       "no model named '%s' in the store; give the path of a GGUF file",
                       name);
}
