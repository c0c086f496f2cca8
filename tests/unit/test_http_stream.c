/*
 * test_http_stream.c — the HTTP server's responses beyond a body in memory
 * (common/http_server.h): byte ranges of a file, streams that learn whether
 * the client took everything or went away, extra headers, query arguments,
 * and the Range header parser. A real server on loopback, a real libcurl
 * client; and common/http_client's streamed requests against those
 * streams: pieces in order with the status first, a stop by the callback,
 * silence and an unreachable server.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "common/http_client.h"
#include "common/http_server.h"
#include "tests/support/testutil.h"

#define FILE_SIZE 1000

struct ctx {
    char *file; /* FILE_SIZE bytes, byte i == i % 251 */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int opens, closes; /* streams begun and ended */
    bool completed;
    bool released; /* lets /stall go on */
};

static struct ctx shared;

static void on_file(void *c, const mlx_http_req *req, mlx_http_resp *resp)
{
    struct ctx *ctx = c;
    uint64_t start = 0, len = FILE_SIZE;
    int r = mlx_http_parse_range(mlx_http_header(req, "Range"), FILE_SIZE, &start, &len);
    if (r < 0) {
        mlx_http_resp_header(resp, "Content-Range", "bytes */%d", FILE_SIZE);
        mlx_http_resp_error(resp, 416, "invalid_request_error", "range", "no such range");
        return;
    }
    resp->status = r == 1 ? 206 : 200;
    resp->content_type = "application/octet-stream";
    if (r == 1)
        mlx_http_resp_header(resp, "Content-Range", "bytes %llu-%llu/%d",
                             (unsigned long long)start,
                             (unsigned long long)(start + len - 1), FILE_SIZE);
    resp->has_file = true;
    resp->file_fd = open(ctx->file, O_RDONLY);
    resp->file_offset = start;
    resp->file_len = len;
}

struct counter {
    int sent, limit; /* limit < 0: endless */
};

static long count_read(void *arg, char *buf, size_t max)
{
    struct counter *k = arg;
    if (k->limit >= 0 && k->sent == k->limit)
        return 0;
    int n = snprintf(buf, max, "data: %d\n\n", k->sent++);
    return n;
}

static void count_close(void *arg, bool completed)
{
    free(arg);
    pthread_mutex_lock(&shared.lock);
    shared.closes++;
    shared.completed = completed;
    pthread_cond_broadcast(&shared.cond);
    pthread_mutex_unlock(&shared.lock);
}

static void on_stream(void *c, const mlx_http_req *req, mlx_http_resp *resp)
{
    struct counter *k = calloc(1, sizeof *k);
    pthread_mutex_lock(&shared.lock);
    shared.opens++;
    pthread_mutex_unlock(&shared.lock);
    const char *limit = mlx_http_query(req, "limit");
    k->limit = limit != NULL ? (int)(limit[0] - '0') : -1;
    resp->status = 200;
    resp->content_type = "text/event-stream";
    mlx_http_resp_header(resp, "Cache-Control", "no-cache");
    resp->stream = (mlx_http_stream){count_read, count_close, k};
}

/* One event, then nothing until the test releases it (or 10 s pass, so a
 * broken test ends), then the end. */
static long stall_read(void *arg, char *buf, size_t max)
{
    int *sent = arg;
    if ((*sent)++ == 0)
        return snprintf(buf, max, "data: first\n\n");
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    pthread_mutex_lock(&shared.lock);
    while (!shared.released &&
           pthread_cond_timedwait(&shared.cond, &shared.lock, &deadline) == 0) {
    }
    pthread_mutex_unlock(&shared.lock);
    return 0;
}

static void on_stall(void *c, const mlx_http_req *req, mlx_http_resp *resp)
{
    resp->status = 200;
    resp->content_type = "text/event-stream";
    resp->stream = (mlx_http_stream){stall_read, count_close, calloc(1, sizeof(int))};
}

static void on_busy(void *c, const mlx_http_req *req, mlx_http_resp *resp)
{
    mlx_http_resp_header(resp, "Retry-After", "%d", 7);
    mlx_http_resp_error(resp, 503, "server_error", "busy", "queue full (%s)",
                        mlx_http_query(req, "why") != NULL ? mlx_http_query(req, "why")
                                                           : "-");
}

static const mlx_http_route routes[] = {
    {"GET", "/file", on_file},
    {"GET", "/stream", on_stream},
    {"GET", "/busy", on_busy},
    {"GET", "/stall", on_stall},
    {NULL},
};

static mlx_http_server *srv;
static char base[64];
static char *dir;

static int group_setup(void **state)
{
    curl_global_init(CURL_GLOBAL_ALL);
    pthread_mutex_init(&shared.lock, NULL);
    pthread_cond_init(&shared.cond, NULL);
    dir = test_tmpdir("http-stream");
    shared.file = test_join(dir, "blob");
    FILE *f = fopen(shared.file, "wb");
    for (int i = 0; i < FILE_SIZE; i++)
        fputc(i % 251, f);
    fclose(f);
    for (int attempt = 0; srv == NULL && attempt < 5; attempt++) {
        int port = test_free_port();
        char addr[32];
        snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
        snprintf(base, sizeof base, "http://127.0.0.1:%d", port);
        mlx_http_server_start(addr, routes, &shared, 1024, "--http", &srv, NULL);
    }
    return srv != NULL ? 0 : -1;
}

static int group_teardown(void **state)
{
    mlx_http_server_stop(srv);
    free(shared.file);
    test_tmpdir_remove(dir);
    curl_global_cleanup();
    return 0;
}

struct got {
    char data[4096];
    size_t len;
    size_t stop_after; /* abort the transfer past this many bytes; 0: never */
    char header[256];  /* the last header line the test asked for */
    const char *want;
};

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    struct got *g = arg;
    size_t take = size * n;
    size_t room = sizeof g->data - g->len;
    memcpy(g->data + g->len, p, take < room ? take : room);
    g->len += take < room ? take : room;
    if (g->stop_after > 0 && g->len >= g->stop_after)
        return 0; /* the client goes away */
    return take;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct got *g = arg;
    size_t len = size * n;
    if (g->want != NULL && len > strlen(g->want) &&
        strncasecmp(p, g->want, strlen(g->want)) == 0)
        snprintf(g->header, sizeof g->header, "%.*s", (int)(len - strlen(g->want)),
                 p + strlen(g->want));
    g->header[strcspn(g->header, "\r\n")] = '\0';
    return len;
}

static long get(const char *path, const char *range, struct got *g)
{
    char url[128];
    snprintf(url, sizeof url, "%s%s", base, path);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, g);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, g);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    if (range != NULL)
        curl_easy_setopt(c, CURLOPT_RANGE, range);
    curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    return status;
}

static void test_range_parser(void **state)
{
    static const struct {
        const char *header;
        uint64_t size;
        int rc;
        uint64_t start, len;
    } cases[] = {
        {NULL, 100, 0, 0, 0},
        {"bytes=0-9", 100, 1, 0, 10},
        {"bytes=90-", 100, 1, 90, 10},
        {"bytes=90-1000", 100, 1, 90, 10}, /* the end is clipped */
        {"bytes=-30", 100, 1, 70, 30},
        {"bytes=-300", 100, 1, 0, 100},
        {"bytes=100-", 100, -1, 0, 0},
        {"bytes=-0", 100, -1, 0, 0},
        {"bytes=5-4", 100, 0, 0, 0},     /* malformed: ignored */
        {"bytes=0-1,5-6", 100, 0, 0, 0}, /* several: the whole body */
        {"items=0-1", 100, 0, 0, 0},     /* another unit */
        {"bytes=abc", 100, 0, 0, 0},
        {"bytes=1-2x", 100, 0, 0, 0},
        {"bytes=99999999999999999999-", 100, 0, 0, 0}, /* 20 digits */
        {"bytes=0-", 0, -1, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t start = 0, len = 0;
        int rc = mlx_http_parse_range(cases[i].header, cases[i].size, &start, &len);
        if (rc != cases[i].rc ||
            (rc == 1 && (start != cases[i].start || len != cases[i].len)))
            fail_msg("'%s' of %llu: got %d %llu+%llu",
                     cases[i].header ? cases[i].header : "-",
                     (unsigned long long)cases[i].size, rc, (unsigned long long)start,
                     (unsigned long long)len);
    }
}

static void test_file_range_is_206_with_the_bytes(void **state)
{
    struct got g = {.want = "Content-Range: "};
    assert_int_equal(get("/file", "100-199", &g), 206);
    assert_int_equal(g.len, 100);
    for (int i = 0; i < 100; i++)
        assert_int_equal((unsigned char)g.data[i], (100 + i) % 251);
    assert_string_equal(g.header, "bytes 100-199/1000");
}

static void test_whole_file_without_range(void **state)
{
    struct got g = {0};
    assert_int_equal(get("/file", NULL, &g), 200);
    assert_int_equal(g.len, FILE_SIZE);
    assert_int_equal((unsigned char)g.data[FILE_SIZE - 1], (FILE_SIZE - 1) % 251);
}

static void test_unsatisfiable_range_is_416(void **state)
{
    struct got g = {.want = "Content-Range: "};
    assert_int_equal(get("/file", "5000-", &g), 416);
    assert_string_equal(g.header, "bytes */1000");
}

/* The count of ended streams once every stream begun has ended (a
 * client may return before the server learns its stream is over), so a
 * test does not see an earlier test's close as its own. */
static int closes_now(void)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 5;
    pthread_mutex_lock(&shared.lock);
    while (shared.closes < shared.opens &&
           pthread_cond_timedwait(&shared.cond, &shared.lock, &deadline) == 0) {
    }
    int n = shared.closes;
    pthread_mutex_unlock(&shared.lock);
    return n;
}

static int closes_after(int before, int64_t timeout_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    pthread_mutex_lock(&shared.lock);
    while (shared.closes == before &&
           pthread_cond_timedwait(&shared.cond, &shared.lock, &deadline) == 0) {
    }
    int n = shared.closes;
    pthread_mutex_unlock(&shared.lock);
    return n;
}

static void test_stream_sends_everything_and_says_completed(void **state)
{
    int before = closes_now();
    struct got g = {.want = "Cache-Control: "};
    assert_int_equal(get("/stream?limit=3", NULL, &g), 200);
    g.data[g.len] = '\0';
    assert_string_equal(g.data, "data: 0\n\ndata: 1\n\ndata: 2\n\n");
    assert_string_equal(g.header, "no-cache");
    assert_int_equal(closes_after(before, 5000), before + 1);
    assert_true(shared.completed);
}

static void test_stream_learns_the_client_went_away(void **state)
{
    int before = closes_now();
    struct got g = {.stop_after = 20};
    get("/stream", NULL, &g); /* endless: only the client can end it */
    assert_true(g.len >= 20);
    assert_int_equal(closes_after(before, 10000), before + 1);
    assert_false(shared.completed);
}

static void test_extra_header_and_query_argument(void **state)
{
    struct got g = {.want = "Retry-After: "};
    assert_int_equal(get("/busy?why=full&x=1", NULL, &g), 503);
    assert_string_equal(g.header, "7");
    g.data[g.len] = '\0';
    assert_non_null(strstr(g.data, "queue full (full)"));
}

/* ---- the client's streamed requests ----------------------------------------- */

struct pieces {
    char data[4096];
    size_t len;
    int calls;
    long first_status; /* the status the first call saw */
    bool mixed;        /* a later call saw another status */
    size_t stop_after; /* return nonzero past this many bytes; 0: never */
};

static int take_piece(void *arg, long status, const char *p, size_t n)
{
    struct pieces *g = arg;
    if (g->calls++ == 0)
        g->first_status = status;
    else if (status != g->first_status)
        g->mixed = true;
    assert_true(n > 0);
    size_t room = sizeof g->data - 1 - g->len;
    memcpy(g->data + g->len, p, n < room ? n : room);
    g->len += n < room ? n : room;
    g->data[g->len] = '\0';
    return g->stop_after > 0 && g->len >= g->stop_after;
}

static int stream_get(const char *path, int idle_ms, struct pieces *g, long *status,
                      mlx_err *e)
{
    char url[128];
    snprintf(url, sizeof url, "%s%s", base, path);
    mlx_err_clear(e);
    return mlx_http_request_stream("GET", url, NULL, NULL, idle_ms, take_piece, g, status,
                                   e);
}

static void test_client_stream_hands_over_pieces_in_order(void **state)
{
    struct pieces g = {0};
    long status = -1;
    mlx_err e;
    assert_int_equal(stream_get("/stream?limit=3", 5000, &g, &status, &e), 0);
    assert_int_equal(status, 200);
    assert_int_equal(g.first_status, 200);
    assert_false(g.mixed);
    assert_string_equal(g.data, "data: 0\n\ndata: 1\n\ndata: 2\n\n");
}

static void test_client_stream_stops_when_the_callback_says(void **state)
{
    int before = closes_now();
    struct pieces g = {.stop_after = 20};
    long status = 0;
    mlx_err e;
    /* Endless: only the callback can end it, and that is a success. */
    assert_int_equal(stream_get("/stream", 5000, &g, &status, &e), 0);
    assert_int_equal(status, 200);
    assert_true(g.len >= 20);
    int calls = g.calls;
    assert_int_equal(closes_after(before, 10000), before + 1);
    assert_false(shared.completed);
    assert_int_equal(g.calls, calls); /* nothing after the stop */
}

static void test_client_stream_status_comes_before_the_body(void **state)
{
    struct pieces g = {0};
    long status = 0;
    mlx_err e;
    assert_int_equal(stream_get("/busy?why=full", 5000, &g, &status, &e), 0);
    assert_int_equal(status, 503);
    assert_int_equal(g.first_status, 503);
    assert_non_null(strstr(g.data, "queue full (full)"));
}

static void test_client_stream_silence_times_out_after_the_pieces(void **state)
{
    int before = closes_now();
    pthread_mutex_lock(&shared.lock);
    shared.released = false;
    pthread_mutex_unlock(&shared.lock);
    struct pieces g = {0};
    long status = 0;
    mlx_err e;
    int64_t start = mlx_time_mono_ms();
    int rc = stream_get("/stall", 1000, &g, &status, &e);
    int64_t took = mlx_time_mono_ms() - start;
    pthread_mutex_lock(&shared.lock);
    shared.released = true;
    pthread_cond_broadcast(&shared.cond);
    pthread_mutex_unlock(&shared.lock);
    assert_int_equal(rc, MLX_ETIMEDOUT);
    assert_int_equal(e.code, MLX_ETIMEDOUT);
    assert_non_null(strstr(e.msg, "/stall"));
    assert_string_equal(g.data, "data: first\n\n");
    assert_true(took >= 1000);
    assert_true(took < 4000); /* silence is noticed within about a second */
    /* The stalled stream ends before the next test counts closes. */
    assert_int_equal(closes_after(before, 15000), before + 1);
}

static void test_client_stream_unreachable_never_calls_back(void **state)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/stream", test_free_port());
    struct pieces g = {0};
    long status = -1;
    mlx_err e;
    mlx_err_clear(&e);
    assert_int_equal(mlx_http_request_stream("GET", url, NULL, NULL, 5000, take_piece, &g,
                                             &status, &e),
                     MLX_EUNREACH);
    assert_non_null(strstr(e.msg, url));
    assert_int_equal(status, 0);
    assert_int_equal(g.calls, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_range_parser),
        cmocka_unit_test(test_file_range_is_206_with_the_bytes),
        cmocka_unit_test(test_whole_file_without_range),
        cmocka_unit_test(test_unsatisfiable_range_is_416),
        cmocka_unit_test(test_stream_sends_everything_and_says_completed),
        cmocka_unit_test(test_stream_learns_the_client_went_away),
        cmocka_unit_test(test_extra_header_and_query_argument),
        cmocka_unit_test(test_client_stream_hands_over_pieces_in_order),
        cmocka_unit_test(test_client_stream_stops_when_the_callback_says),
        cmocka_unit_test(test_client_stream_status_comes_before_the_body),
        cmocka_unit_test(test_client_stream_silence_times_out_after_the_pieces),
        cmocka_unit_test(test_client_stream_unreachable_never_calls_back),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
