/*
 * test_http.c — common/http_server and common/http_client together, on a
 * loopback port: routing (exact and prefix paths, query strings ignored),
 * JSON bodies, the fleet's JSON error shape for 404, 405 and 413 (body over
 * max_body), req->loopback, request headers and bearer tokens, client
 * timeouts, an unreachable port, and the server's own start-up errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "common/http_client.h"
#include "common/http_server.h"
#include "common/json.h"
#include "tests/support/testutil.h"

#define MAX_BODY 2048

/* A loopback TCP port nobody listens on right now (the kernel picks it). */
/* ---- handlers ------------------------------------------------------------ */

/* Shared with the handlers, which run on the server's threads. */
struct ctx {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool released; /* lets /slow finish */
};

static void on_ping(void *c, const mlx_http_req *req, mlx_http_resp *resp)
{
    (void)c;
    (void)req;
    mlx_http_resp_json(resp, 200, json_pack("{s:b}", "ok", 1));
}

static void on_echo(void *c, const mlx_http_req *req, mlx_http_resp *resp)
{
    (void)c;
    mlx_http_resp_json(resp, 200,
                       json_pack("{s:s, s:s, s:I, s:s%, s:b}", "method", req->method,
                                 "path", req->path, "len", (json_int_t)req->body_len,
                                 "body", req->body, req->body_len, "loopback",
                                 req->loopback));
}

static void on_headers(void *c, const mlx_http_req *req, mlx_http_resp *resp)
{
    (void)c;
    const char *auth = mlx_http_header(req, "Authorization");
    const char *ct = mlx_http_header(req, "Content-Type");
    const char *none = mlx_http_header(req, "X-Not-Sent");
    mlx_http_resp_json(resp, 200,
                       json_pack("{s:s?, s:s?, s:b}", "auth", auth, "content_type", ct,
                                 "absent_is_null", none == NULL));
}

static void on_created(void *c, const mlx_http_req *req, mlx_http_resp *resp)
{
    (void)c;
    (void)req;
    resp->status = 201;
    resp->content_type = "text/plain";
    resp->body = mlx_strdup("made it");
    resp->body_len = strlen("made it");
}

/* Blocks until the test releases it (or 10 s pass, so a broken test ends). */
static void on_slow(void *c, const mlx_http_req *req, mlx_http_resp *resp)
{
    (void)req;
    struct ctx *ctx = c;
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    pthread_mutex_lock(&ctx->lock);
    while (!ctx->released) {
        if (pthread_cond_timedwait(&ctx->cond, &ctx->lock, &deadline) != 0)
            break;
    }
    pthread_mutex_unlock(&ctx->lock);
    mlx_http_resp_json(resp, 200, json_pack("{s:b}", "slow", 1));
}

static const mlx_http_route routes[] = {
    {"GET", "/v1/ping", on_ping},
    {"POST", "/v1/ping", on_ping},
    {"POST", "/echo", on_echo},
    {"GET", "/api/*", on_echo},
    {"GET", "/headers", on_headers},
    {"POST", "/headers", on_headers},
    {"GET", "/created", on_created},
    {"GET", "/slow", on_slow},
    {NULL, NULL, NULL},
};

/* ---- fixture --------------------------------------------------------------- */

struct fixture {
    struct ctx ctx;
    mlx_http_server *srv;
    int port;
    char base[64]; /* http://127.0.0.1:PORT */
};

static int group_setup(void **state)
{
    (void)state;
    mlx_json_use_mlx_alloc();
    return mlx_http_client_init(NULL) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    mlx_http_client_fini();
    return 0;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    pthread_mutex_init(&f->ctx.lock, NULL);
    pthread_cond_init(&f->ctx.cond, NULL);
    char addr[64];
    mlx_err e;
    mlx_err_clear(&e);
    /* A port found free may be taken before we bind it: try a few. */
    for (int attempt = 0; attempt < 5 && f->srv == NULL; attempt++) {
        f->port = test_free_port();
        snprintf(addr, sizeof addr, "127.0.0.1:%d", f->port);
        mlx_http_server_start(addr, routes, &f->ctx, MAX_BODY, "--http", &f->srv, &e);
    }
    if (f->srv == NULL) {
        fprintf(stderr, "cannot start the test server: %s\n", e.msg);
        return -1;
    }
    snprintf(f->base, sizeof f->base, "http://127.0.0.1:%d", f->port);
    *state = f;
    return 0;
}

static void release_slow(struct fixture *f)
{
    pthread_mutex_lock(&f->ctx.lock);
    f->ctx.released = true;
    pthread_cond_broadcast(&f->ctx.cond);
    pthread_mutex_unlock(&f->ctx.lock);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    release_slow(f);
    mlx_http_server_stop(f->srv);
    pthread_cond_destroy(&f->ctx.cond);
    pthread_mutex_destroy(&f->ctx.lock);
    free(f);
    return 0;
}

/* Makes a request to base + path and parses a JSON answer (NULL otherwise). */
static json_t *call(const struct fixture *f, const char *method, const char *path,
                    const char *bearer, const char *body, long want_status)
{
    char url[256];
    snprintf(url, sizeof url, "%s%s", f->base, path);
    mlx_http_result r = {0};
    mlx_err e;
    mlx_err_clear(&e);
    int rc = mlx_http_request(method, url, bearer, body, 5000, &r, &e);
    if (rc != 0)
        fail_msg("%s %s: %s", method, url, e.msg);
    assert_int_equal(r.status, want_status);
    assert_non_null(r.body);
    assert_int_equal(strlen(r.body), r.body_len);
    json_t *v = NULL;
    if (mlx_json_parse(r.body, r.body_len, &v, &e) != 0)
        fail_msg("%s %s answered non-JSON '%s': %s", method, url, r.body, e.msg);
    mlx_http_result_free(&r);
    assert_null(r.body);
    return v;
}

/* Checks {"error":{"message","type","code"}} and nothing else; returns the message. */
static const char *assert_error_shape(json_t *v, const char *type, const char *code)
{
    assert_true(json_is_object(v));
    assert_int_equal(json_object_size(v), 1);
    json_t *err = json_object_get(v, "error");
    assert_true(json_is_object(err));
    assert_int_equal(json_object_size(err), 3);
    assert_string_equal(json_string_value(json_object_get(err, "type")), type);
    assert_string_equal(json_string_value(json_object_get(err, "code")), code);
    const char *msg = json_string_value(json_object_get(err, "message"));
    assert_non_null(msg);
    return msg;
}

/* ---- routing and bodies --------------------------------------------------- */

static void test_http_get_returns_json_200(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(mlx_http_server_port(f->srv), f->port);
    json_t *v = call(f, "GET", "/v1/ping", NULL, NULL, 200);
    assert_true(json_is_true(json_object_get(v, "ok")));
    json_decref(v);
}

static void test_http_query_string_is_not_part_of_path(void **state)
{
    struct fixture *f = *state;
    json_t *v = call(f, "GET", "/v1/ping?verbose=1&x=y", NULL, NULL, 200);
    assert_true(json_is_true(json_object_get(v, "ok")));
    json_decref(v);
}

static void test_http_post_body_reaches_handler(void **state)
{
    struct fixture *f = *state;
    json_t *v = call(f, "POST", "/echo", NULL, "{\"model\":\"m\"}", 200);
    assert_string_equal(json_string_value(json_object_get(v, "method")), "POST");
    assert_string_equal(json_string_value(json_object_get(v, "path")), "/echo");
    assert_string_equal(json_string_value(json_object_get(v, "body")),
                        "{\"model\":\"m\"}");
    assert_int_equal(json_integer_value(json_object_get(v, "len")), 13);
    json_decref(v);
}

static void test_http_request_without_body_sees_empty_string(void **state)
{
    struct fixture *f = *state;
    json_t *v = call(f, "GET", "/api/tags", NULL, NULL, 200);
    assert_string_equal(json_string_value(json_object_get(v, "body")), "");
    assert_int_equal(json_integer_value(json_object_get(v, "len")), 0);
    json_decref(v);
}

static void test_http_prefix_route_matches_below_it(void **state)
{
    struct fixture *f = *state;
    json_t *v = call(f, "GET", "/api/show/llama", NULL, NULL, 200);
    assert_string_equal(json_string_value(json_object_get(v, "path")), "/api/show/llama");
    json_decref(v);
    /* The prefix is "/api/": "/api" and "/apix" are other paths. */
    json_decref(call(f, "GET", "/api", NULL, NULL, 404));
    json_decref(call(f, "GET", "/apix", NULL, NULL, 404));
}

static void test_http_handler_sets_status_and_type(void **state)
{
    struct fixture *f = *state;
    char url[128];
    snprintf(url, sizeof url, "%s/created", f->base);
    mlx_http_result r = {0};
    assert_int_equal(mlx_http_request("GET", url, NULL, NULL, 5000, &r, NULL), 0);
    assert_int_equal(r.status, 201);
    assert_string_equal(r.body, "made it");
    assert_int_equal(r.body_len, 7);
    mlx_http_result_free(&r);
}

static void test_http_client_from_loopback_is_loopback(void **state)
{
    struct fixture *f = *state;
    json_t *v = call(f, "POST", "/echo", NULL, "", 200);
    assert_true(json_is_true(json_object_get(v, "loopback")));
    json_decref(v);
}

/* ---- errors from the router ------------------------------------------------- */

static void test_http_unknown_path_is_404_json_error(void **state)
{
    struct fixture *f = *state;
    json_t *v = call(f, "GET", "/nope", NULL, NULL, 404);
    const char *msg = assert_error_shape(v, "invalid_request_error", "not_found");
    assert_non_null(strstr(msg, "/nope"));
    json_decref(v);
}

static void test_http_wrong_method_is_405_json_error(void **state)
{
    struct fixture *f = *state;
    json_t *v = call(f, "DELETE", "/v1/ping", NULL, NULL, 405);
    const char *msg =
        assert_error_shape(v, "invalid_request_error", "method_not_allowed");
    assert_non_null(strstr(msg, "DELETE"));
    assert_non_null(strstr(msg, "/v1/ping"));
    json_decref(v);
    /* Also on a prefix route. */
    v = call(f, "PUT", "/api/tags", NULL, "{}", 405);
    assert_error_shape(v, "invalid_request_error", "method_not_allowed");
    json_decref(v);
}

static void test_http_body_over_max_is_413(void **state)
{
    struct fixture *f = *state;
    char *body = malloc(MAX_BODY + 2);
    assert_non_null(body);
    memset(body, 'x', MAX_BODY + 1);
    body[MAX_BODY + 1] = '\0';
    json_t *v = call(f, "POST", "/echo", NULL, body, 413);
    const char *msg = assert_error_shape(v, "invalid_request_error", "body_too_large");
    char limit[32];
    snprintf(limit, sizeof limit, "%d", MAX_BODY);
    assert_non_null(strstr(msg, limit));
    json_decref(v);

    /* Exactly max_body is accepted, whole. */
    body[MAX_BODY] = '\0';
    v = call(f, "POST", "/echo", NULL, body, 200);
    assert_int_equal(json_integer_value(json_object_get(v, "len")), MAX_BODY);
    assert_string_equal(json_string_value(json_object_get(v, "body")), body);
    json_decref(v);
    free(body);
}

static void test_http_server_keeps_serving_after_413(void **state)
{
    struct fixture *f = *state;
    char *body = malloc(4 * MAX_BODY + 1);
    assert_non_null(body);
    memset(body, 'y', 4 * MAX_BODY);
    body[4 * MAX_BODY] = '\0';
    json_decref(call(f, "POST", "/echo", NULL, body, 413));
    free(body);
    json_t *v = call(f, "POST", "/echo", NULL, "small", 200);
    assert_string_equal(json_string_value(json_object_get(v, "body")), "small");
    json_decref(v);
}

/* ---- headers ---------------------------------------------------------------- */

static void test_http_long_bearer_token_is_sent_whole(void **state)
{
    struct fixture *f = *state;
    char token[2001];
    memset(token, 'k', sizeof token - 1);
    token[sizeof token - 1] = '\0';
    json_t *v = call(f, "GET", "/headers", token, NULL, 200);
    const char *auth = json_string_value(json_object_get(v, "auth"));
    assert_int_equal(strlen(auth), strlen("Bearer ") + strlen(token));
    json_decref(v);
}

static void test_http_bearer_token_is_sent(void **state)
{
    struct fixture *f = *state;
    json_t *v = call(f, "GET", "/headers", "s3cret", NULL, 200);
    assert_string_equal(json_string_value(json_object_get(v, "auth")), "Bearer s3cret");
    assert_true(json_is_true(json_object_get(v, "absent_is_null")));
    json_decref(v);
    /* No token, no header. */
    v = call(f, "GET", "/headers", NULL, NULL, 200);
    assert_true(json_is_null(json_object_get(v, "auth")));
    json_decref(v);
    v = call(f, "GET", "/headers", "", NULL, 200);
    assert_true(json_is_null(json_object_get(v, "auth")));
    json_decref(v);
}

static void test_http_body_is_sent_as_json(void **state)
{
    struct fixture *f = *state;
    json_t *v = call(f, "POST", "/headers", NULL, "{}", 200);
    assert_string_equal(json_string_value(json_object_get(v, "content_type")),
                        "application/json");
    json_decref(v);
}

/* ---- client failures ---------------------------------------------------------- */

static void test_http_slow_server_times_out(void **state)
{
    struct fixture *f = *state;
    char url[128];
    snprintf(url, sizeof url, "%s/slow", f->base);
    mlx_http_result r = {0};
    mlx_err e;
    mlx_err_clear(&e);
    int64_t start = mlx_time_mono_ms();
    int rc = mlx_http_request("GET", url, NULL, NULL, 300, &r, &e);
    int64_t took = mlx_time_mono_ms() - start;
    assert_int_equal(rc, MLX_ETIMEDOUT);
    assert_int_equal(e.code, MLX_ETIMEDOUT);
    assert_non_null(strstr(e.msg, url));
    assert_null(r.body);
    assert_true(took >= 250);
    assert_true(took < 5000);
    release_slow(f);
}

static void test_http_closed_port_is_unreachable(void **state)
{
    (void)state;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/ping", test_free_port());
    mlx_http_result r = {0};
    mlx_err e;
    mlx_err_clear(&e);
    assert_int_equal(mlx_http_request("GET", url, NULL, NULL, 5000, &r, &e),
                     MLX_EUNREACH);
    assert_int_equal(e.code, MLX_EUNREACH);
    assert_non_null(strstr(e.msg, url));
    assert_null(r.body);
}

static void test_http_client_refuses_other_protocols(void **state)
{
    (void)state;
    mlx_http_result r = {0};
    mlx_err e;
    mlx_err_clear(&e);
    int rc = mlx_http_request("GET", "file:///etc/passwd", NULL, NULL, 1000, &r, &e);
    assert_true(rc < 0);
    assert_null(r.body);
    assert_non_null(strstr(e.msg, "file:///etc/passwd"));
}

/* ---- server start-up ---------------------------------------------------------- */

static void test_http_server_bad_address_names_flag(void **state)
{
    (void)state;
    mlx_http_server *srv = NULL;
    mlx_err e;
    mlx_err_clear(&e);
    assert_int_equal(
        mlx_http_server_start("localhost", routes, NULL, MAX_BODY, "--http", &srv, &e),
        MLX_ECONFIG); /* a bad --http is a configuration error: exit status 2 */
    assert_null(srv);
    assert_non_null(strstr(e.msg, "--http"));
    assert_non_null(strstr(e.msg, "'localhost'"));
}

static void test_http_server_port_in_use_is_busy(void **state)
{
    struct fixture *f = *state;
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", f->port);
    mlx_http_server *second = NULL;
    mlx_err e;
    mlx_err_clear(&e);
    int rc = mlx_http_server_start(addr, routes, NULL, MAX_BODY, "--http", &second, &e);
    if (rc == 0)
        mlx_http_server_stop(second);
    assert_int_equal(rc, MLX_EBUSY);
    assert_non_null(strstr(e.msg, addr));
    assert_non_null(strstr(e.msg, "--http"));
}

static void test_http_server_stops_and_frees_port(void **state)
{
    (void)state;
    int port = test_free_port();
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    mlx_http_server *srv = NULL;
    assert_int_equal(
        mlx_http_server_start(addr, routes, NULL, MAX_BODY, "--http", &srv, NULL), 0);
    mlx_http_server_stop(srv);
    char url[128];
    snprintf(url, sizeof url, "http://%s/v1/ping", addr);
    mlx_http_result r = {0};
    assert_int_equal(mlx_http_request("GET", url, NULL, NULL, 5000, &r, NULL),
                     MLX_EUNREACH);
    /* The same address can be served again at once. */
    assert_int_equal(
        mlx_http_server_start(addr, routes, NULL, MAX_BODY, "--http", &srv, NULL), 0);
    mlx_http_server_stop(srv);
    mlx_http_server_stop(NULL); /* harmless */
}

/* ---- response helpers (no network) ------------------------------------------ */

static void test_http_resp_error_builds_fleet_shape(void **state)
{
    (void)state;
    mlx_http_resp resp = {.status = 0};
    mlx_http_resp_error(&resp, 429, "rate_limit_error", "too_many_requests",
                        "slow down: %d requests", 12);
    assert_int_equal(resp.status, 429);
    assert_string_equal(resp.content_type, "application/json");
    assert_int_equal(strlen(resp.body), resp.body_len);
    json_t *v = NULL;
    assert_int_equal(mlx_json_parse(resp.body, resp.body_len, &v, NULL), 0);
    const char *msg = assert_error_shape(v, "rate_limit_error", "too_many_requests");
    assert_string_equal(msg, "slow down: 12 requests");
    json_decref(v);
    /* A second body replaces the first without leaking it. */
    mlx_http_resp_json(&resp, 200, json_pack("{s:i}", "n", 1));
    assert_int_equal(resp.status, 200);
    assert_string_equal(resp.body, "{\"n\":1}");
    mlx_free(resp.body);
}

static void test_http_resp_json_without_value_is_500(void **state)
{
    (void)state;
    mlx_http_resp resp = {.status = 0};
    mlx_http_resp_json(&resp, 200, NULL);
    assert_int_equal(resp.status, 500);
    json_t *v = NULL;
    assert_int_equal(mlx_json_parse(resp.body, resp.body_len, &v, NULL), 0);
    assert_error_shape(v, "server_error", "internal");
    json_decref(v);
    mlx_free(resp.body);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_http_get_returns_json_200),
        T(test_http_query_string_is_not_part_of_path),
        T(test_http_post_body_reaches_handler),
        T(test_http_request_without_body_sees_empty_string),
        T(test_http_prefix_route_matches_below_it),
        T(test_http_handler_sets_status_and_type),
        T(test_http_client_from_loopback_is_loopback),
        T(test_http_unknown_path_is_404_json_error),
        T(test_http_wrong_method_is_405_json_error),
        T(test_http_body_over_max_is_413),
        T(test_http_server_keeps_serving_after_413),
        T(test_http_bearer_token_is_sent),
        T(test_http_long_bearer_token_is_sent_whole),
        T(test_http_body_is_sent_as_json),
        T(test_http_slow_server_times_out),
        cmocka_unit_test(test_http_closed_port_is_unreachable),
        cmocka_unit_test(test_http_client_refuses_other_protocols),
        cmocka_unit_test(test_http_server_bad_address_names_flag),
        T(test_http_server_port_in_use_is_busy),
        cmocka_unit_test(test_http_server_stops_and_frees_port),
        cmocka_unit_test(test_http_resp_error_builds_fleet_shape),
        cmocka_unit_test(test_http_resp_json_without_value_is_500),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
