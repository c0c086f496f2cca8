/*
 * agent.h — the mlx-agent program: its commands and node identity.
 *
 * Each command is an mlx_cmd (common/config.h) defined beside its code and
 * listed in main.c. Only main.c and the command files include this header.
 */
#ifndef MLX_AGENT_AGENT_H
#define MLX_AGENT_AGENT_H

#include "common/config.h"
#include "common/limits.h"

extern const mlx_cmd agent_cmd_serve, agent_cmd_run, agent_cmd_bench;

/* Reads the node id kept in data_dir/node-id, or makes and stores a new one
 * when there is none. A file that holds something else is an error (the id
 * is the node's identity in the fleet; it is never silently replaced).
 * out holds MLX_NODE_ID_LEN + 1 bytes. */
int identity_load_or_create(const char *data_dir, char *out, mlx_err *err);

#endif
