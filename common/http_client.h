/*
 * http_client.h — one-shot HTTP requests through libcurl.
 *
 * For the CLI and tests talking to the fleet's own APIs: the whole response
 * is read into memory, up to MLX_MAX_HTTP_RESPONSE. Large downloads use the
 * store's streaming puller instead.
 *
 * Lifecycle: call mlx_http_client_init once at program start, before any
 * thread makes a request (libcurl's global init is not thread-safe), and
 * mlx_http_client_fini at the end.
 * Thread safety: requests may run concurrently after init.
 */
#ifndef MLX_COMMON_HTTP_CLIENT_H
#define MLX_COMMON_HTTP_CLIENT_H

#include <stddef.h>

#include "common/err.h"

typedef struct mlx_http_result {
    long status; /* HTTP status, e.g. 200 */
    char *body;  /* NUL-terminated; free with mlx_http_result_free */
    size_t body_len;
} mlx_http_result;

int mlx_http_client_init(mlx_err *err);
void mlx_http_client_fini(void);

/* method "GET", "POST", "DELETE"…; bearer and body may be NULL. A response
 * with any status is a success of this call; MLX_EUNREACH when the server
 * cannot be reached, MLX_ETIMEDOUT after timeout_ms. */
int mlx_http_request(const char *method, const char *url, const char *bearer,
                     const char *body, int timeout_ms, mlx_http_result *out,
                     mlx_err *err);

void mlx_http_result_free(mlx_http_result *r);

#endif
