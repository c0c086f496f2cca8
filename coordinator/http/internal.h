/*
 * internal.h — shared by the files of coordinator/http, not part of its
 * interface: the admission gate every handler but /healthz goes through,
 * and the key endpoints (keys.c) that admin.c routes to.
 */
#ifndef MLX_COORDINATOR_HTTP_INTERNAL_H
#define MLX_COORDINATOR_HTTP_INTERNAL_H

#include "coordinator/http/admin.h"

/* The part of a handler that runs once the request is admitted; ar is the
 * admission (the key, its scope and model pattern). */
typedef void (*admin_inner)(const admin_ctx *c, const mlx_http_req *req,
                            const auth_result *ar, mlx_http_resp *resp);

/* Runs fn if auth_check admits the request and the key's request bucket has
 * room; otherwise answers 401, 403, 429 or 500. Logs the request either way. */
void admin_gated(void *ctx, const mlx_http_req *req, mlx_http_resp *resp,
                 bool admin_endpoint, admin_inner fn);

void keys_list(const admin_ctx *c, const mlx_http_req *req, const auth_result *ar,
               mlx_http_resp *resp);
void keys_create(const admin_ctx *c, const mlx_http_req *req, const auth_result *ar,
                 mlx_http_resp *resp);
void keys_revoke(const admin_ctx *c, const mlx_http_req *req, const auth_result *ar,
                 mlx_http_resp *resp);

/* The prefix of DELETE /api/v1/keys/NAME. */
#define ADMIN_KEYS_PATH "/api/v1/keys"

#endif
