/*
 * test_sampler.c — the metrics sampler and its Ollama probe
 * (agent/metrics/metrics.h). A real HTTP server on loopback answers
 * /api/ps with the body Ollama documents; the sampler is run at a short
 * interval and waited on by condition, never by sleeping a fixed time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "agent/metrics/metrics.h"
#include "common/alloc.h"
#include "common/http_client.h"
#include "common/http_server.h"
#include "tests/support/testutil.h"

/* The shape of Ollama's GET /api/ps answer (docs/api.md, "List Running
 * Models"). */
static const char PS_BODY[] =
    "{\"models\":[{\"name\":\"mistral:latest\",\"model\":\"mistral:latest\","
    "\"size\":5137025024,\"digest\":"
    "\"2ae6f6dd7a3dd734790bbbf58b8909a606e0e7e97e94b7604e0aa7ae"
    "4490e6d8\",\"details\":{\"parent_model\":\"\",\"format\":\"gguf\",\"family\":"
    "\"llama\","
    "\"families\":[\"llama\"],\"parameter_size\":\"7.2B\",\"quantization_level\":\"Q4_"
    "0\"},"
    "\"expires_at\":\"2024-06-04T14:38:31.83753-07:00\",\"size_vram\":5137025024},"
    "{\"name\":\"llama3.2:1b\",\"model\":\"llama3.2:1b\",\"size\":1300000000}]}";

static void handle_ps(void *ctx, const mlx_http_req *req, mlx_http_resp *resp)
{
    resp->status = 200;
    resp->content_type = "application/json";
    resp->body = mlx_strdup(PS_BODY);
    resp->body_len = strlen(PS_BODY);
}

static const mlx_http_route routes[] = {
    {"GET", "/api/ps", handle_ps},
    {NULL},
};

struct fx {
    mlx_http_server *srv;
    char url[64];
    char *dir;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    mlx_err err;
    int rc = mlx_http_client_init(&err);
    /* A port found free may be taken before we bind it: try a few. */
    for (int attempt = 0; rc == 0 && f->srv == NULL && attempt < 5; attempt++) {
        char addr[32];
        snprintf(addr, sizeof addr, "127.0.0.1:%d", test_free_port());
        rc = mlx_http_server_start(addr, routes, NULL, 1024, "--ollama", &f->srv, &err);
        if (rc == MLX_EBUSY)
            rc = 0;
    }
    if (rc != 0 || f->srv == NULL) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    snprintf(f->url, sizeof f->url, "http://127.0.0.1:%d", mlx_http_server_port(f->srv));
    f->dir = test_tmpdir("sampler");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    if (f == NULL)
        return 0;
    mlx_http_server_stop(f->srv);
    test_tmpdir_remove(f->dir);
    free(f);
    mlx_http_client_fini();
    return 0;
}

static void test_parse_ps_takes_name_and_size(void **state)
{
    (void)state;
    metrics_model_activity m[4];
    size_t n;
    assert_int_equal(metrics_ollama_parse_ps(PS_BODY, strlen(PS_BODY), m, 4, &n, NULL),
                     0);
    assert_int_equal(n, 2);
    assert_string_equal(m[0].model, "mistral:latest");
    assert_string_equal(m[0].engine, "ollama");
    assert_int_equal(m[0].memory_bytes, 5137025024ULL);
    assert_string_equal(m[1].model, "llama3.2:1b");
}

static void test_parse_ps_refuses_what_is_not_ollama(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        int code;
        const char *says;
    } cases[] = {
        {"{\"models\":", MLX_EINVAL, "line 1"},
        {"[]", MLX_EPROTO, "\"models\""},
        {"{\"models\":{}}", MLX_EPROTO, "\"models\""},
        {"<html>nginx</html>", MLX_EINVAL, "Ollama"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        metrics_model_activity m[4];
        size_t n = 99;
        mlx_err err;
        mlx_err_clear(&err);
        int rc =
            metrics_ollama_parse_ps(cases[i].body, strlen(cases[i].body), m, 4, &n, &err);
        if (rc == 0 || strstr(err.msg, cases[i].says) == NULL)
            fail_msg("body %s: rc %d, sentence '%s' lacks '%s'", cases[i].body, rc,
                     err.msg, cases[i].says);
        assert_int_equal(n, 0);
    }
}

static void test_parse_ps_skips_odd_entries_and_keeps_max(void **state)
{
    (void)state;
    const char *body = "{\"models\":[{\"size\":1},{\"name\":7},{\"name\":\"bad\\u0001\"},"
                       "{\"name\":\"a\",\"size\":-5},{\"name\":\"b\"},{\"name\":\"c\"},"
                       "{\"name\":\"d\"}]}";
    metrics_model_activity m[2];
    size_t n;
    assert_int_equal(metrics_ollama_parse_ps(body, strlen(body), m, 2, &n, NULL), 0);
    assert_int_equal(n, 2);
    assert_string_equal(m[0].model, "b");
    assert_string_equal(m[1].model, "c");
}

static void test_ps_from_a_real_server(void **state)
{
    struct fx *f = *state;
    metrics_model_activity m[4];
    size_t n;
    mlx_err err;
    assert_int_equal(metrics_ollama_ps(f->url, 2000, m, 4, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(m[1].model, "llama3.2:1b");
}

static void test_ps_without_a_server_is_unreachable(void **state)
{
    (void)state;
    metrics_model_activity m[4];
    size_t n;
    mlx_err err;
    mlx_err_clear(&err);
    /* Port 1 on loopback: nothing listens there. */
    assert_int_equal(metrics_ollama_ps("http://127.0.0.1:1", 2000, m, 4, &n, &err),
                     MLX_EUNREACH);
    assert_int_equal(n, 0);
}

static size_t one_model(void *arg, metrics_model_activity *out, size_t max)
{
    (void)arg;
    assert_true(max >= 1);
    memset(out, 0, sizeof *out);
    snprintf(out->model, sizeof out->model, "tiny");
    snprintf(out->engine, sizeof out->engine, "mlx");
    out->tokens_per_s = 5.0;
    return 1;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_sampler_samples_records_and_reports_models(void **state)
{
    struct fx *f = *state;
    metrics_sampler_config cfg = {
        .data_dir = f->dir,
        .interval_ms = 20,
        .ollama_url = f->url,
        .activity = one_model,
        .record = true,
    };
    metrics_sampler *s;
    mlx_err err;
    assert_int_equal(metrics_sampler_start(&cfg, &s, &err), 0);
    metrics_snapshot snap;
    metrics_sampler_latest(s, &snap);
    assert_true(snap.samples >= 1); /* one is taken before start returns */
    int64_t deadline = mono_ms() + 10000;
    while (snap.samples < 5 && mono_ms() < deadline)
        metrics_sampler_latest(s, &snap);
    metrics_sampler_stop(s);
    assert_true(snap.samples >= 5);
    assert_true(snap.system.memory_total_bytes > 0);
    assert_int_equal(snap.n_models, 3); /* ours, then Ollama's two */
    assert_string_equal(snap.models[0].model, "tiny");
    assert_string_equal(snap.models[1].model, "mistral:latest");
    assert_string_equal(snap.models[1].engine, "ollama");

    metrics_history *h;
    assert_int_equal(metrics_history_open(f->dir, &h, NULL), 0);
    metrics_point *p;
    size_t n;
    assert_int_equal(metrics_history_query(h, METRICS_RES_1S, 0, &p, &n, NULL), 0);
    /* Rows are keyed by millisecond: every sample is a row. */
    assert_true(n >= 5);
    assert_float_equal(p[0].tokens_per_s, 5.0, 1e-9);
    mlx_free(p);
    metrics_history_close(h);
}

static void test_sampler_refuses_a_zero_interval(void **state)
{
    struct fx *f = *state;
    metrics_sampler_config cfg = {.data_dir = f->dir, .interval_ms = 0};
    metrics_sampler *s = NULL;
    mlx_err err;
    mlx_err_clear(&err);
    assert_int_equal(metrics_sampler_start(&cfg, &s, &err), MLX_EINVAL);
    assert_null(s);
    assert_non_null(strstr(err.msg, "interval"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_ps_takes_name_and_size),
        cmocka_unit_test(test_parse_ps_refuses_what_is_not_ollama),
        cmocka_unit_test(test_parse_ps_skips_odd_entries_and_keeps_max),
        cmocka_unit_test(test_ps_from_a_real_server),
        cmocka_unit_test(test_ps_without_a_server_is_unreachable),
        cmocka_unit_test(test_sampler_samples_records_and_reports_models),
        cmocka_unit_test(test_sampler_refuses_a_zero_interval),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
