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
 * Handlers run on the connection's own thread and may block. A response is
 * a body in memory, a range of a file, or a stream whose bytes a producer
 * hands over as they come (SSE, NDJSON); a stream learns whether the
 * client took all of it or went away.
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
#include <stdint.h>

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

/* A body produced while it is sent. read may block (the connection has its
 * own thread); it returns the bytes put in buf (1..max), 0 at the end of
 * the body, or -1 to cut the connection. close is called exactly once when
 * the response is over: completed is false when the client went away or
 * read failed. */
typedef struct mlx_http_stream {
    long (*read)(void *arg, char *buf, size_t max);
    void (*close)(void *arg, bool completed);
    void *arg;
} mlx_http_stream;

#define MLX_HTTP_MAX_HEADERS 6

typedef struct mlx_http_resp {
    int status;
    const char *content_type; /* static string */
    char *body;               /* owned by the response, freed with mlx_free */
    size_t body_len;
    /* Instead of body: file_len bytes of file_fd from file_offset. The fd
     * is owned by the response and closed after sending. */
    bool has_file;
    int file_fd;
    uint64_t file_offset, file_len;
    /* Instead of body: a stream (when stream.read is set). If the handler
     * sets a stream, close is called even if the response cannot be sent. */
    mlx_http_stream stream;
    struct {
        const char *name; /* static string */
        char value[128];
    } headers[MLX_HTTP_MAX_HEADERS];
    size_t n_headers;
} mlx_http_resp;

typedef void (*mlx_http_handler)(void *ctx, const mlx_http_req *req, mlx_http_resp *resp);

typedef struct mlx_http_route {
    const char *method; /* NULL ends a table */
    const char *path;   /* exact, or a prefix when it ends in '*' */
    mlx_http_handler handler;
    /* The server's own errors for this route (a body over the limit) as
     * {"error":"message"}, the shape Ollama's clients read, instead of the
     * fleet's. */
    bool plain_errors;
} mlx_http_route;

/* flag names the option the address came from, for error sentences. */
int mlx_http_server_start(const char *hostport, const mlx_http_route *routes, void *ctx,
                          size_t max_body, const char *flag, mlx_http_server **out,
                          mlx_err *err);
void mlx_http_server_stop(mlx_http_server *srv);

/* The port the server listens on. */
int mlx_http_server_port(const mlx_http_server *srv);

/* Whether the client has closed the connection (or it broke): a producer
 * that waits between writes polls this, so a client that went away is
 * noticed while nothing is being written. conn is mlx_http_req.conn; it
 * stays valid until the response's stream is closed. */
bool mlx_http_client_gone(struct MHD_Connection *conn);

/* A request header, or NULL. Borrowed from the request. */
const char *mlx_http_header(const mlx_http_req *req, const char *name);

/* The request's id for logs and answers: the client's X-Request-Id when it
 * fits in size and is safe to log (printable, no spaces or quotes), else a
 * new random one. Logged by the agent and the coordinator alike, so one
 * request can be followed across the fleet. */
void mlx_http_request_id(const mlx_http_req *req, char *out, size_t size);

/* A query-string argument ("?limit=5" → "5"), or NULL. Borrowed. */
const char *mlx_http_query(const mlx_http_req *req, const char *name);

/* Adds a response header (name is a static string); ignored past
 * MLX_HTTP_MAX_HEADERS. */
void mlx_http_resp_header(mlx_http_resp *resp, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Parses a Range header against a body of size bytes (RFC 9110: one range,
 * "bytes=a-b", "bytes=a-" or "bytes=-n"). Returns 1 with the range in
 * start and len, 0 when the whole body should be sent (no header, another
 * unit, several ranges), or -1 when the range cannot be satisfied (416). */
int mlx_http_parse_range(const char *header, uint64_t size, uint64_t *start,
                         uint64_t *len);

/* Sets a JSON body; takes the reference to value. */
void mlx_http_resp_json(mlx_http_resp *resp, int status, json_t *value);

/* Sets the fleet's JSON error body. */
void mlx_http_resp_error(mlx_http_resp *resp, int status, const char *type,
                         const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#endif
