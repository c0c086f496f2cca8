/*
 * http_client.h — HTTP requests through libcurl, for the CLI and tests
 * talking to the fleet's own APIs.
 *
 * Two shapes: mlx_http_request reads the whole response into memory, up to
 * MLX_MAX_HTTP_RESPONSE; mlx_http_request_stream hands the body to a
 * callback piece by piece as it arrives (a streamed generation, SSE or
 * NDJSON), with no size limit of its own. Large downloads use the store's
 * streaming puller instead.
 *
 * Both report the same way: a response with any status is a success of
 * the call; MLX_EUNREACH when the server cannot be reached, MLX_ETIMEDOUT
 * when it kept silent too long, MLX_EHTTP when the exchange broke, each
 * with a sentence naming the URL.
 *
 * Lifecycle: call mlx_http_client_init once at program start, before any
 * thread makes a request (libcurl's global init is not thread-safe), and
 * mlx_http_client_fini at the end.
 * Thread safety: requests may run concurrently after init; a stream's
 * callback runs on the thread that called mlx_http_request_stream.
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

/* method "GET", "POST", "DELETE"…; bearer and body may be NULL. The whole
 * exchange must end within timeout_ms (MLX_ETIMEDOUT otherwise). */
int mlx_http_request(const char *method, const char *url, const char *bearer,
                     const char *body, int timeout_ms, mlx_http_result *out,
                     mlx_err *err);

void mlx_http_result_free(mlx_http_result *r);

/* One piece of a streamed response's body, in order of arrival. status is
 * the response's HTTP status: known before the first piece, the same for
 * every piece. data (len > 0 bytes, not NUL-terminated) is borrowed, valid
 * only during the call. Returns 0 to go on; anything else stops the
 * transfer. It must not call mlx_http_client_fini. */
typedef int (*mlx_http_on_piece)(void *arg, long status, const char *data, size_t len);

/* mlx_http_request, with the body handed to on_piece as it arrives instead
 * of kept. idle_ms bounds connecting and every silence (the wait for the
 * answer's head included), not the whole exchange: a stream lasts as long
 * as it keeps sending. Silence is noticed within about a second.
 *
 * *status (may be NULL) gets the response's status, also when its body is
 * empty; 0 when no response came. A transfer that on_piece stopped is a
 * success (0): the caller knows why it stopped. A failure after some
 * pieces (the connection broke, idle_ms of silence) is returned after
 * them, so a caller must treat what it got as cut short; on_piece is never
 * called after the failure. */
int mlx_http_request_stream(const char *method, const char *url, const char *bearer,
                            const char *body, int idle_ms, mlx_http_on_piece on_piece,
                            void *arg, long *status, mlx_err *err);

#endif
