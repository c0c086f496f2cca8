/* identity.c — the node id that survives restarts. */
#include "agent/agent.h"

#include <stdbool.h>
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"
#include "common/path.h"
#include "common/rand.h"
#include "proto/wire.h"

static int corrupt(const char *path, mlx_err *err)
{
    return mlx_err_set(err, MLX_ECORRUPT,
                       "%s does not hold a node id (%d hex digits); restore it, or "
                       "delete it to join the fleet as a new node",
                       path, MLX_NODE_ID_LEN);
}

int identity_load_or_create(const char *data_dir, char *out, mlx_err *err)
{
    char *path = mlx_path_join(data_dir, "node-id");
    if (path == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    char *text = NULL;
    mlx_err e;
    int rc = mlx_path_read_small(path, 256, &text, &e);
    if (rc == 0) {
        /* The id, optionally followed by a line end, and nothing else. */
        size_t n = strcspn(text, "\r\n");
        bool only_id = text[n + strspn(text + n, "\r\n")] == '\0';
        text[n] = '\0';
        if (!only_id || wire_check_node_id(text, NULL) != 0)
            rc = corrupt(path, err);
        else
            memcpy(out, text, MLX_NODE_ID_LEN + 1);
    } else if (rc == MLX_ETOOBIG) {
        rc = corrupt(path, err); /* far longer than any id: something else */
    } else if (rc == MLX_ENOENT) {
        char id[MLX_NODE_ID_LEN + 2];
        rc = mlx_rand_hex(id, MLX_NODE_ID_LEN, err);
        if (rc == 0) {
            id[MLX_NODE_ID_LEN] = '\n';
            rc = mlx_path_write_atomic(path, id, MLX_NODE_ID_LEN + 1, err);
            id[MLX_NODE_ID_LEN] = '\0';
        }
        if (rc == 0) {
            memcpy(out, id, MLX_NODE_ID_LEN + 1);
            mlx_log_info("agent", "created node identity", "node=%s file=%s", out, path);
        }
    } else {
        rc = mlx_err_set(err, rc, "%s", e.msg);
    }
    mlx_free(text);
    mlx_free(path);
    return rc;
}
