/*
 * it_agent_http.c — a standalone mlx-agent's HTTP API: /healthz, the
 * store's blobs by byte range for peers, and /metrics as a real Prometheus
 * server (Debian's prometheus, started here on loopback) scrapes and reads
 * it back through its own query API.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "common/sha256.h"
#include "tests/integration/harness.h"
#include "tests/support/testutil.h"

#define BLOB_SIZE  5000

static char *dir, *data;
static char base[64];
static int http_port;
static h_proc *agent;
static unsigned char blob[BLOB_SIZE];
static char hex[MLX_SHA256_HEX];

static bool agent_up(void *arg)
{
    long status = 0;
    json_t *v = h_get_json(arg, &status);
    json_decref(v);
    return status == 200;
}

static int group_setup(void **state)
{
    curl_global_init(CURL_GLOBAL_ALL);
    dir = test_tmpdir("it-agent-http");
    data = test_join(dir, "data");
    /* A blob as the store keeps it: named by the SHA-256 of its bytes. */
    for (int i = 0; i < BLOB_SIZE; i++)
        blob[i] = (unsigned char)(i * 7 + 3);
    uint8_t digest[MLX_SHA256_LEN];
    if (mlx_sha256_buf(blob, sizeof blob, digest, NULL) != 0)
        return -1;
    mlx_sha256_hex(digest, hex);
    char blobs[1024], path[1200];
    snprintf(blobs, sizeof blobs, "%s/blobs/sha256", data);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", blobs);
    if (system(cmd) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/%s", blobs, hex);
    FILE *f = fopen(path, "wb");
    fwrite(blob, 1, sizeof blob, f);
    fclose(f);

    http_port = h_free_port();
    char http[32], health[96];
    snprintf(http, sizeof http, "127.0.0.1:%d", http_port);
    snprintf(base, sizeof base, "http://127.0.0.1:%d", http_port);
    snprintf(health, sizeof health, "%s/healthz", base);
    const char *args[] = {"serve",  "--data",     data,       "--http", http,
                          "--name", "node-\"q\"", "--ollama", "",       NULL};
    agent = h_spawn("agent", dir, "mlx-agent", args);
    return h_wait_for(agent_up, health, 10000) ? 0 : -1;
}

static int group_teardown(void **state)
{
    if (agent != NULL)
        assert_int_equal(h_stop(agent), 0);
    free(data);
    test_tmpdir_remove(dir);
    curl_global_cleanup();
    return 0;
}

struct got {
    unsigned char data[2 * BLOB_SIZE];
    size_t len;
    char content_range[128];
};

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    struct got *g = arg;
    size_t take = size * n;
    if (take > sizeof g->data - g->len)
        take = sizeof g->data - g->len;
    memcpy(g->data + g->len, p, take);
    g->len += take;
    return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct got *g = arg;
    const char *key = "Content-Range: ";
    if (size * n > strlen(key) && strncasecmp(p, key, strlen(key)) == 0) {
        snprintf(g->content_range, sizeof g->content_range, "%.*s",
                 (int)(size * n - strlen(key)), p + strlen(key));
        g->content_range[strcspn(g->content_range, "\r\n")] = '\0';
    }
    return size * n;
}

static long fetch(const char *path, const char *range, bool head, struct got *g)
{
    char url[256];
    snprintf(url, sizeof url, "%s%s", base, path);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, g);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, g);
    curl_easy_setopt(c, CURLOPT_NOBODY, head ? 1L : 0L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    if (range != NULL)
        curl_easy_setopt(c, CURLOPT_RANGE, range);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    return status;
}

static void test_blob_whole_and_by_range(void **state)
{
    char path[128];
    snprintf(path, sizeof path, "/blobs/sha256/%s", hex);
    struct got g = {0};
    assert_int_equal(fetch(path, NULL, false, &g), 200);
    assert_int_equal(g.len, BLOB_SIZE);
    assert_memory_equal(g.data, blob, BLOB_SIZE);

    /* A peer resuming an interrupted copy asks for the rest. */
    memset(&g, 0, sizeof g);
    assert_int_equal(fetch(path, "4000-", false, &g), 206);
    assert_int_equal(g.len, 1000);
    assert_memory_equal(g.data, blob + 4000, 1000);
    assert_string_equal(g.content_range, "bytes 4000-4999/5000");

    memset(&g, 0, sizeof g);
    assert_int_equal(fetch(path, "6000-", false, &g), 416);
    assert_string_equal(g.content_range, "bytes */5000");

    memset(&g, 0, sizeof g);
    assert_int_equal(fetch(path, NULL, true, &g), 200);
    assert_int_equal(g.len, 0);
}

static void test_blob_errors(void **state)
{
    struct got g = {0};
    char path[128];
    snprintf(path, sizeof path, "/blobs/sha256/%064d", 0);
    assert_int_equal(fetch(path, NULL, false, &g), 404);
    assert_non_null(strstr((char *)g.data, "no blob"));
    memset(&g, 0, sizeof g);
    assert_int_equal(fetch("/blobs/sha256/..%2F..%2Fagent.db", NULL, false, &g), 400);
    assert_non_null(strstr((char *)g.data, "not a SHA-256 digest"));
    memset(&g, 0, sizeof g);
    assert_int_equal(fetch("/blobs/sha256/ABCDEF", NULL, false, &g), 400);
}

static void test_metrics_page_has_node_series(void **state)
{
    struct got g = {0};
    assert_int_equal(fetch("/metrics", NULL, false, &g), 200);
    g.data[g.len < sizeof g.data ? g.len : sizeof g.data - 1] = '\0';
    const char *text = (const char *)g.data;
    assert_non_null(strstr(text, "# TYPE mlx_node_memory_total_bytes gauge\n"));
    /* The node name is a label value, escaped. */
    assert_non_null(
        strstr(text, "mlx_node_memory_total_bytes{node=\"node-\\\"q\\\"\"} "));
}

struct prom_query {
    char url[256];
    double value;
};

static bool prometheus_has_value(void *arg)
{
    struct prom_query *q = arg;
    json_t *v = h_get_json(q->url, NULL);
    json_t *result = json_object_get(json_object_get(v, "data"), "result");
    json_t *pair = json_object_get(json_array_get(result, 0), "value");
    const char *text = json_string_value(json_array_get(pair, 1));
    /* Prometheus sends sample values as JSON strings: read one as a number. */
    json_t *number = text != NULL ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
    bool ok = json_is_number(number);
    if (ok)
        q->value = json_number_value(number);
    json_decref(number);
    json_decref(v);
    return ok;
}

static void test_prometheus_scrapes_and_reads_back(void **state)
{
    const char *found = h_which("prometheus");
    /* The README's test command installs it; a bare build may lack it. */
    if (found == NULL)
        fail_msg("prometheus is not in PATH: run deploy/install-deps.sh");
    char prometheus[1024];
    snprintf(prometheus, sizeof prometheus, "%s", found);
    char *pdir = test_join(dir, "prometheus");
    mkdir(pdir, 0755);
    char *config = test_join(pdir, "prometheus.yml");
    char yml[512];
    snprintf(yml, sizeof yml,
             "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: agent\n"
             "    static_configs:\n      - targets: ['127.0.0.1:%d']\n",
             http_port);
    test_write_file(config, yml);
    int port = h_free_port();
    char listen[64], config_flag[600], storage_flag[600];
    snprintf(listen, sizeof listen, "--web.listen-address=127.0.0.1:%d", port);
    snprintf(config_flag, sizeof config_flag, "--config.file=%s", config);
    snprintf(storage_flag, sizeof storage_flag, "--storage.tsdb.path=%s/tsdb", pdir);
    const char *args[] = {config_flag, storage_flag, listen, NULL};
    h_proc *prom = h_spawn("prometheus", dir, prometheus, args);

    struct prom_query q;
    snprintf(q.url, sizeof q.url,
             "http://127.0.0.1:%d/api/v1/query?query=mlx_node_memory_total_bytes", port);
    bool got = h_wait_for(prometheus_has_value, &q, 30000);
    double mem = q.value;
    snprintf(q.url, sizeof q.url, "http://127.0.0.1:%d/api/v1/query?query=up", port);
    bool up = h_wait_for(prometheus_has_value, &q, 10000) && q.value == 1;
    h_stop(prom);
    free(config);
    free(pdir);
    assert_true(got);
    assert_true(mem > 0);
    assert_true(up); /* Prometheus parsed the page: a bad one marks the target down */
}

/* The running agent records a sample every second; history reads them. */
static void test_history_shows_what_serve_recorded(void **state)
{
    const char *args[] = {"history", "--data", data, "--since", "1h", "--json", NULL};
    char *out = NULL;
    assert_int_equal(h_run(h_bin("mlx-agent"), args, 10000, &out, NULL), 0);
    json_t *v = json_loads(out, 0, NULL);
    free(out);
    json_t *system = json_object_get(v, "system");
    assert_true(json_integer_value(json_object_get(system, "points")) >= 1);
    assert_true(json_number_value(json_object_get(system, "memory_used_bytes_max")) > 0);
    assert_true(json_is_array(json_object_get(v, "bench_runs")));
    json_decref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blob_whole_and_by_range),
        cmocka_unit_test(test_blob_errors),
        cmocka_unit_test(test_metrics_page_has_node_series),
        cmocka_unit_test(test_prometheus_scrapes_and_reads_back),
        cmocka_unit_test(test_history_shows_what_serve_recorded),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
