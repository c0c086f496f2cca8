/* http_server.c — libmicrohttpd glue: binding, body reading, routing. */
#include "common/http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/json.h"
#include "common/log.h"
#include "common/parse.h"
#include "common/rand.h"

struct mlx_http_server {
    struct MHD_Daemon *daemon;
    const mlx_http_route *routes;
    void *ctx;
    size_t max_body;
    int port;
};

/* Per-request state kept by MHD between calls of the access handler. */
struct request_state {
    mlx_buf body;
    bool too_big;
};

static void set_body(mlx_http_resp *resp, int status, const char *type, char *body)
{
    mlx_free(resp->body);
    resp->status = status;
    resp->content_type = type;
    resp->body = body;
    resp->body_len = body != NULL ? strlen(body) : 0;
}

void mlx_http_resp_json(mlx_http_resp *resp, int status, json_t *value)
{
    char *text = NULL;
    if (value == NULL || mlx_json_dump(value, &text, NULL) != 0) {
        json_decref(value);
        set_body(resp, 500, "application/json",
                 mlx_strdup("{\"error\":{\"message\":\"out of memory\",\"type\":"
                            "\"server_error\",\"code\":\"internal\"}}"));
        return;
    }
    json_decref(value);
    set_body(resp, status, "application/json", text);
}

void mlx_http_resp_error(mlx_http_resp *resp, int status, const char *type,
                         const char *code, const char *fmt, ...)
{
    char message[MLX_MAX_ERR_MSG];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    json_t *body = json_pack("{s:{s:s, s:s, s:s}}", "error", "message", message, "type",
                             type, "code", code);
    mlx_http_resp_json(resp, status, body);
}

const char *mlx_http_header(const mlx_http_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

void mlx_http_request_id(const mlx_http_req *req, char *out, size_t size)
{
    const char *given = req->conn != NULL ? mlx_http_header(req, "X-Request-Id") : NULL;
    if (given != NULL && given[0] != '\0' && strlen(given) < size &&
        mlx_text_is_clean(given, size - 1) && strpbrk(given, " \"\\") == NULL) {
        snprintf(out, size, "%s", given);
        return;
    }
    if (mlx_rand_hex(out, 24, NULL) != 0)
        snprintf(out, size, "%llx", (unsigned long long)mlx_time_mono_ns());
}

static bool is_loopback(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (info == NULL || info->client_addr == NULL)
        return false;
    const struct sockaddr *sa = info->client_addr;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
            return true;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
            return in6->sin6_addr.s6_addr[12] == 127;
    }
    return false;
}

static const mlx_http_route *find_route(const mlx_http_server *srv, const char *method,
                                        const char *path, bool *path_known)
{
    *path_known = false;
    for (const mlx_http_route *r = srv->routes; r->method != NULL; r++) {
        size_t n = strlen(r->path);
        bool match = (n > 0 && r->path[n - 1] == '*')
                         ? strncmp(path, r->path, n - 1) == 0
                         : strcmp(path, r->path) == 0;
        if (!match)
            continue;
        *path_known = true;
        if (strcmp(r->method, method) == 0)
            return r;
    }
    return NULL;
}

static void route(mlx_http_server *srv, const mlx_http_req *req, bool too_big,
                  mlx_http_resp *resp)
{
    bool path_known;
    const mlx_http_route *r = find_route(srv, req->method, req->path, &path_known);
    if (r != NULL && too_big && r->plain_errors) {
        char message[128];
        snprintf(message, sizeof message,
                 "the request body is larger than the %zu-byte limit", srv->max_body);
        mlx_http_resp_json(resp, 413, json_pack("{s:s}", "error", message));
    } else if (too_big) {
        mlx_http_resp_error(resp, 413, "invalid_request_error", "body_too_large",
                            "the request body is larger than the %zu-byte limit",
                            srv->max_body);
    } else if (r != NULL) {
        r->handler(srv->ctx, req, resp);
    } else if (path_known) {
        mlx_http_resp_error(resp, 405, "invalid_request_error", "method_not_allowed",
                            "%s is not allowed on %s", req->method, req->path);
    } else {
        mlx_http_resp_error(resp, 404, "invalid_request_error", "not_found",
                            "no such endpoint: %s %s", req->method, req->path);
    }
}

bool mlx_http_client_gone(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (info == NULL)
        return true;
    char c;
    ssize_t n = recv(info->connect_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0)
        return false; /* more data (a pipelined request): still there */
    if (n == 0)
        return true; /* the client closed its side */
    return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

const char *mlx_http_query(const mlx_http_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

void mlx_http_resp_header(mlx_http_resp *resp, const char *name, const char *fmt, ...)
{
    if (resp->n_headers == MLX_HTTP_MAX_HEADERS)
        return;
    va_list ap;
    va_start(ap, fmt);
    resp->headers[resp->n_headers].name = name;
    vsnprintf(resp->headers[resp->n_headers].value,
              sizeof resp->headers[resp->n_headers].value, fmt, ap);
    va_end(ap);
    resp->n_headers++;
}

/* Reads an unsigned decimal of at most 19 digits; advances *p. */
static bool range_number(const char **p, uint64_t *out)
{
    const char *start = *p;
    uint64_t v = 0;
    while (**p >= '0' && **p <= '9' && *p - start < 19)
        v = v * 10 + (uint64_t)(*(*p)++ - '0');
    *out = v;
    return *p > start && !(**p >= '0' && **p <= '9');
}

int mlx_http_parse_range(const char *header, uint64_t size, uint64_t *start,
                         uint64_t *len)
{
    if (header == NULL || strncmp(header, "bytes=", 6) != 0 ||
        strchr(header, ',') != NULL)
        return 0;
    const char *p = header + 6;
    uint64_t first = 0, last = 0;
    if (*p == '-') { /* the last n bytes */
        p++;
        if (!range_number(&p, &last) || *p != '\0')
            return 0;
        if (last == 0 || size == 0)
            return -1;
        *len = last < size ? last : size;
        *start = size - *len;
        return 1;
    }
    if (!range_number(&p, &first) || *p++ != '-')
        return 0;
    if (*p == '\0') {
        last = size > 0 ? size - 1 : 0;
    } else if (!range_number(&p, &last) || *p != '\0' || last < first) {
        return 0; /* a malformed range is ignored, as RFC 9110 says */
    }
    if (first >= size)
        return -1;
    if (last >= size)
        last = size - 1;
    *start = first;
    *len = last - first + 1;
    return 1;
}

/* Wraps a handler's stream so its close learns whether it completed. */
struct stream_state {
    mlx_http_stream stream;
    bool completed;
};

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct stream_state *st = cls;
    long n = st->stream.read(st->stream.arg, buf, max);
    if (n > 0)
        return (ssize_t)n;
    if (n == 0) {
        st->completed = true;
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    return MHD_CONTENT_READER_END_WITH_ERROR;
}

static void stream_free(void *cls)
{
    struct stream_state *st = cls;
    st->stream.close(st->stream.arg, st->completed);
    mlx_free(st);
}

static struct MHD_Response *make_response(mlx_http_resp *resp)
{
    if (resp->stream.read != NULL) {
        struct stream_state *st = mlx_calloc(1, sizeof *st);
        if (st == NULL) {
            resp->stream.close(resp->stream.arg, false);
            return NULL;
        }
        st->stream = resp->stream;
        resp->stream.read = NULL; /* the wrapper owns it now */
        struct MHD_Response *r = MHD_create_response_from_callback(
            MHD_SIZE_UNKNOWN, 16 * 1024, stream_read, st, stream_free);
        if (r == NULL)
            stream_free(st);
        return r;
    }
    if (resp->has_file) {
        resp->has_file = false; /* MHD owns the fd now, even on failure */
        struct MHD_Response *r = MHD_create_response_from_fd_at_offset64(
            resp->file_len, resp->file_fd, resp->file_offset);
        if (r == NULL)
            close(resp->file_fd);
        return r;
    }
    return MHD_create_response_from_buffer(resp->body_len,
                                           resp->body != NULL ? resp->body : (char *)"",
                                           MHD_RESPMEM_MUST_COPY);
}

static enum MHD_Result send_resp(struct MHD_Connection *conn, mlx_http_resp *resp)
{
    struct MHD_Response *r = make_response(resp);
    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type",
                            resp->content_type != NULL ? resp->content_type
                                                       : "text/plain");
    for (size_t i = 0; i < resp->n_headers; i++)
        MHD_add_response_header(r, resp->headers[i].name, resp->headers[i].value);
    enum MHD_Result ok = MHD_queue_response(conn, (unsigned)resp->status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    (void)kind;
    (void)value;
    size_t *counts = cls;
    counts[0] += strcasecmp(key, "Content-Length") == 0;
    counts[1] += strcasecmp(key, "Transfer-Encoding") == 0;
    return MHD_YES;
}

/* Why the request's length is ambiguous, or NULL when it is not. Two
 * Content-Lengths, or one beside Transfer-Encoding, are how requests are
 * smuggled past a proxy that reads the length differently (RFC 9112 6.3). */
static const char *ambiguous_framing(struct MHD_Connection *conn)
{
    size_t counts[2] = {0, 0};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, count_header, counts);
    if (counts[0] > 1)
        return "the request has more than one Content-Length";
    if (counts[0] > 0 && counts[1] > 0)
        return "the request has both Content-Length and Transfer-Encoding";
    if (counts[1] > 1)
        return "the request has more than one Transfer-Encoding";
    return NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    mlx_http_server *srv = cls;
    struct request_state *st = *con_cls;
    if (st == NULL) {
        st = mlx_calloc(1, sizeof *st);
        if (st == NULL)
            return MHD_NO;
        mlx_buf_init(&st->body, srv->max_body);
        *con_cls = st;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (!st->too_big &&
            mlx_buf_append(&st->body, upload_data, *upload_data_size) != 0)
            st->too_big = true; /* keep reading and drop the rest, then answer 413 */
        *upload_data_size = 0;
        return MHD_YES;
    }

    mlx_http_resp resp = {.status = 500};
    const char *framing = ambiguous_framing(conn);
    if (framing != NULL) {
        mlx_http_resp_error(&resp, 400, "invalid_request_error", "bad_framing",
                            "%s: send one Content-Length or chunked encoding, not both",
                            framing);
        /* What follows on this connection cannot be trusted to start a request. */
        mlx_http_resp_header(&resp, "Connection", "close");
    } else {
        mlx_http_req req = {
            .method = method,
            .path = url,
            .body = mlx_buf_str(&st->body),
            .body_len = st->body.len,
            .loopback = is_loopback(conn),
            .conn = conn,
        };
        route(srv, &req, st->too_big, &resp);
    }
    enum MHD_Result ok = send_resp(conn, &resp);
    mlx_free(resp.body);
    return ok;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct request_state *st = *con_cls;
    if (st == NULL)
        return;
    mlx_buf_fini(&st->body);
    mlx_free(st);
    *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    line[strcspn(line, "\n")] = '\0';
    mlx_log_warn("http", "server message", "detail=\"%s\"", line);
}

int mlx_http_server_start(const char *hostport, const mlx_http_route *routes, void *ctx,
                          size_t max_body, const char *flag, mlx_http_server **out,
                          mlx_err *err)
{
    char host[MLX_MAX_ADDRESS + 1];
    int port;
    int rc = mlx_parse_hostport(hostport, host, sizeof host, &port, err);
    if (rc != 0)
        return mlx_err_prefix(err, MLX_ECONFIG, "%s", flag);

    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char service[8];
    snprintf(service, sizeof service, "%d", port);
    int gai = getaddrinfo(host, service, &hints, &ai);
    if (gai != 0)
        return mlx_err_set(err, MLX_ECONFIG, "%s: cannot resolve '%s': %s", flag, host,
                           gai_strerror(gai));

    mlx_http_server *srv = mlx_calloc(1, sizeof *srv);
    if (srv == NULL) {
        freeaddrinfo(ai);
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    }
    srv->routes = routes;
    srv->ctx = ctx;
    srv->max_body = max_body;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_ERROR_LOG | (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    /* The logger must come first, or MHD logs the earlier options' problems
     * to stderr itself. MHD's default SO_REUSEADDR allows a quick restart;
     * its "address reuse" option would be SO_REUSEPORT, letting a second
     * process share our port, so it stays off. */
    srv->daemon = MHD_start_daemon(
        flags, (uint16_t)port, NULL, NULL, on_request, srv, MHD_OPTION_EXTERNAL_LOGGER,
        on_mhd_log, NULL, MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, NULL, MHD_OPTION_CONNECTION_TIMEOUT, 120u,
        /* Refuse what RFC 9112 says a server must: HTTP/1.1 without Host,
         * whitespace before a header's colon, and the like. */
        MHD_OPTION_STRICT_FOR_CLIENT, 1, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (srv->daemon == NULL) {
        mlx_free(srv);
        return mlx_err_set(err, MLX_EBUSY,
                           "cannot serve HTTP on %s: the address is in use or not local; "
                           "choose another with %s",
                           hostport, flag);
    }
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info != NULL ? info->port : port;
    *out = srv;
    return 0;
}

int mlx_http_server_port(const mlx_http_server *srv)
{
    return srv->port;
}

void mlx_http_server_stop(mlx_http_server *srv)
{
    if (srv == NULL)
        return;
    MHD_stop_daemon(srv->daemon);
    mlx_free(srv);
}
