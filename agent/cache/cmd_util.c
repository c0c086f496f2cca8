/* cmd_util.c — what the cache command files share (see cmd.h). */
#include <stdio.h>
#include <stdlib.h>

#include "agent/cache/cmd.h"
#include "common/alloc.h"
#include "common/clock.h"
#include "common/json.h"
#include "common/path.h"

int cache_cmd_open(const char *data_dir, store **out, mlx_err *err)
{
    int rc = store_open(data_dir, out, err);
    if (rc == 0 && (rc = cache_recover(*out, err)) != 0) {
        store_close(*out);
        *out = NULL;
    }
    return rc;
}

/* The folder a tool uses when its flag is empty, found as that tool finds it. */
static char *default_root(const char *flag, const char *env1, const char *env2,
                          const char *env2_suffix, const char *home_rel)
{
    if (flag[0] != '\0')
        return mlx_strdup(flag);
    const char *v = getenv(env1);
    if (v != NULL && v[0] != '\0')
        return mlx_strdup(v);
    v = env2 != NULL ? getenv(env2) : NULL;
    if (v != NULL && v[0] != '\0')
        return mlx_path_join(v, env2_suffix);
    char *out = NULL;
    mlx_path_expand_user(home_rel, &out, NULL);
    return out;
}

int cache_cmd_roots(const char *hf_flag, const char *ollama_flag, char **hf,
                    char **ollama, mlx_err *err)
{
    *hf = default_root(hf_flag, "HF_HUB_CACHE", "HF_HOME", "hub",
                       "~/.cache/huggingface/hub");
    *ollama = default_root(ollama_flag, "OLLAMA_MODELS", NULL, NULL, "~/.ollama/models");
    if (*hf != NULL && *ollama != NULL)
        return 0;
    mlx_free(*hf);
    mlx_free(*ollama);
    *hf = *ollama = NULL;
    return mlx_err_set(err, MLX_ENOMEM, "out of memory");
}

int cache_cmd_check_name(const char *name, mlx_err *err)
{
    return store_check_name(name, err) == 0 ? 0 : MLX_EUSAGE;
}

void cache_cmd_ago(int64_t unix_ms, char *out, size_t size)
{
    int64_t s = (mlx_time_wall_ms() - unix_ms) / 1000;
    if (unix_ms <= 0)
        snprintf(out, size, "never");
    else if (s < 60)
        snprintf(out, size, "just now");
    else if (s < 3600)
        snprintf(out, size, "%lld min ago", (long long)(s / 60));
    else if (s < 2 * 86400)
        snprintf(out, size, "%lld h ago", (long long)(s / 3600));
    else
        snprintf(out, size, "%lld days ago", (long long)(s / 86400));
}
