/*
 * http_server.h — a small router over libmicrohttpd.
 *
 * A server binds HOST:PORT, reads each request body up to a ceiling, finds
 * the route for method and path, and sends what the handler put in the
 * response. Unknown paths get 404 and known paths with another method 405,
 * both as the JSON error every fleet API uses:
 *
 *   {"error":{"message":"…","type":"…","code":"…"}}
 *
 * Handlers run on the connection's own thread and may block.
 *
 * Lifecycle:
 *   1. mlx_http_server_start binds and starts serving at once.
 *   2. Handlers may run until mlx_http_server_stop returns.
 *   3. mlx_http_server_stop stops listening, waits for running handlers and
 *      frees the server. ctx must outlive it.
 *
 * Thread safety: handlers are called concurrently; ctx must be safe for that.
 */
#ifndef MLX_COMMON_HTTP_SERVER_H
#define MLX_COMMON_HTTP_SERVER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

struct MHD_Connection;
typedef struct mlx_http_server mlx_http_server;

typedef struct mlx_http_req {
    const char *method;
    const char *path; /* without the query string */
    const char *body; /* NUL-terminated; "" when there is none */
    size_t body_len;
    bool loopback; /* the client connected from 127.0.0.0/8 or ::1 */
    struct MHD_Connection *conn;
} mlx_http_req;

typedef struct mlx_http_resp {
    int status;
    const char *content_type; /* static string */
    char *body;               /* owned by the response, freed with mlx_free */
    size_t body_len;
} mlx_http_resp;

typedef void (*mlx_http_handler)(void *ctx, const mlx_http_req *req, mlx_http_resp *resp);

typedef struct mlx_http_route {
    const char *method; /* NULL ends a table */
    const char *path;   /* exact, or a prefix when it ends in '*' */
    mlx_http_handler handler;
} mlx_http_route;

/* flag names the option the address came from, for error sentences. */
int mlx_http_server_start(const char *hostport, const mlx_http_route *routes, void *ctx,
                          size_t max_body, const char *flag, mlx_http_server **out,
                          mlx_err *err);
void mlx_http_server_stop(mlx_http_server *srv);

/* The port the server listens on. */
int mlx_http_server_port(const mlx_http_server *srv);

/* A request header, or NULL. Borrowed from the request. */
const char *mlx_http_header(const mlx_http_req *req, const char *name);

/* Sets a JSON body; takes the reference to value. */
void mlx_http_resp_json(mlx_http_resp *resp, int status, json_t *value);

/* Sets the fleet's JSON error body. */
void mlx_http_resp_error(mlx_http_resp *resp, int status, const char *type,
                         const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#endif
