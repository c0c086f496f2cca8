/*
 * it_prometheus.c — a serving agent's /metrics as a real Prometheus server
 * sees it: Debian's prometheus, started here on loopback, scrapes the agent
 * after a known set of requests, and the series are read back through
 * Prometheus' own query API. A page Prometheus cannot parse marks the
 * target down; a counter that counts wrongly shows as a wrong number.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>

#include "common/parse.h"
#include "tests/integration/harness.h"
#include "tests/integration/serving.h"
#include "tests/support/testutil.h"

#define MAX_TOKENS    16
#define PROM_START_MS 60000 /* first scrape: Prometheus starts slowly on 2 cores */
#define PROM_VALUE_MS 20000 /* a value to settle: several 1 s scrapes */

static const char *const prompts[] = {"Once upon a time", "The little dog",
                                      "Lily and Tom went to the park."};
#define N_PROMPTS (sizeof prompts / sizeof prompts[0])

static serving agent;
static int prom_port;
static h_proc *prom;
static char *prom_dir;

/* What the requests reported, to compare the series against. */
static int64_t completions_ok, completion_tokens, not_found;

/* The prometheus binary: on PATH, or where Debian's package puts it. */
static const char *find_prometheus(void)
{
    const char *found = h_which("prometheus");
    if (found != NULL)
        return found;
    return access("/usr/bin/prometheus", X_OK) == 0 ? "/usr/bin/prometheus" : NULL;
}

/* Three greedy completions of known length, and one for a model the store
 * does not have. */
static void make_requests(void)
{
    for (size_t i = 0; i < N_PROMPTS; i++) {
        char body[512];
        snprintf(body, sizeof body,
                 "{\"model\":\"%s\",\"prompt\":\"%s\",\"max_tokens\":%d,"
                 "\"temperature\":0}",
                 SERVING_MODEL, prompts[i], MAX_TOKENS);
        json_t *v = serving_post_ok(&agent, "/v1/completions", body);
        json_t *usage = json_object_get(v, "usage");
        int64_t n = json_integer_value(json_object_get(usage, "completion_tokens"));
        /* The reference's greedy run goes 48 tokens without an end, so all
         * MAX_TOKENS come, and they are its first ones. */
        assert_int_equal(n, MAX_TOKENS);
        const char *text = json_string_value(
            json_object_get(json_array_get(json_object_get(v, "choices"), 0), "text"));
        assert_non_null(text);
        const char *want = serving_greedy_text(prompts[i]);
        const char *got = text[0] == ' ' && want[0] != ' ' ? text + 1 : text;
        if (strncmp(want, got, strlen(got)) != 0 || strlen(got) == 0)
            fail_msg("\"%s\" gave [%s], not the start of llama.cpp's [%s]", prompts[i],
                     text, want);
        completion_tokens += n;
        completions_ok++;
        json_decref(v);
    }
    const char *missing = "{\"model\":\"no-such-model\",\"prompt\":\"hi\",\"max_tokens\":4}";
    serving_reply r;
    serving_call(&agent, "POST", "/v1/completions", NULL, missing, strlen(missing), &r);
    assert_int_equal(r.status, 404);
    serving_reply_free(&r);
    not_found++;
}

static int group_setup(void **state)
{
    curl_global_init(CURL_GLOBAL_ALL);
    if (serving_start(&agent, "it-prometheus", NULL) != 0)
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    int prom_status = prom != NULL ? h_stop(prom) : 0;
    int agent_status = serving_stop(&agent);
    if (prom_dir != NULL)
        test_tmpdir_remove(prom_dir);
    curl_global_cleanup();
    /* Both stop cleanly on SIGTERM; anything else is a failure to report. */
    if (prom_status != 0)
        fprintf(stderr, "prometheus exited with status %d on SIGTERM\n", prom_status);
    if (agent_status != 0)
        fprintf(stderr, "the agent exited with status %d on SIGTERM\n", agent_status);
    return prom_status == 0 && agent_status == 0 ? 0 : -1;
}

static void start_prometheus(void)
{
    const char *found = find_prometheus();
    if (found == NULL)
        fail_msg("prometheus is neither on PATH nor in /usr/bin: run deploy/install-deps.sh, "
                 "which installs Debian's 'prometheus' package");
    char bin[1024];
    snprintf(bin, sizeof bin, "%s", found);
    prom_dir = test_tmpdir("it-prometheus-server");
    char *config = test_join(prom_dir, "prometheus.yml");
    char yml[512];
    snprintf(yml, sizeof yml,
             "global:\n"
             "  scrape_interval: 1s\n"
             "  scrape_timeout: 1s\n"
             "scrape_configs:\n"
             "  - job_name: mlx-agent\n"
             "    metrics_path: /metrics\n"
             "    static_configs:\n"
             "      - targets: ['127.0.0.1:%d']\n",
             agent.http_port);
    test_write_file(config, yml);
    prom_port = h_free_port();
    char listen[64], config_flag[1200], storage_flag[1200];
    snprintf(listen, sizeof listen, "--web.listen-address=127.0.0.1:%d", prom_port);
    snprintf(config_flag, sizeof config_flag, "--config.file=%s", config);
    snprintf(storage_flag, sizeof storage_flag, "--storage.tsdb.path=%s/tsdb", prom_dir);
    const char *args[] = {config_flag, storage_flag, listen, NULL};
    prom = h_spawn("prometheus", prom_dir, bin, args);
    free(config);
}

/* ---- Prometheus' HTTP API ----------------------------------------------------- */

struct target_state {
    char url[128];
    char health[32];
    char last_error[512];
    char scrape_url[256];
};

/* The one active target is up and its last scrape had no error. */
static bool target_is_up(void *arg)
{
    struct target_state *t = arg;
    json_t *v = h_get_json(t->url, NULL);
    json_t *active =
        json_object_get(json_object_get(v, "data"), "activeTargets");
    json_t *target = json_array_get(active, 0);
    const char *health = json_string_value(json_object_get(target, "health"));
    const char *err = json_string_value(json_object_get(target, "lastError"));
    const char *scraped = json_string_value(json_object_get(target, "scrapeUrl"));
    snprintf(t->health, sizeof t->health, "%s", health != NULL ? health : "");
    snprintf(t->last_error, sizeof t->last_error, "%s", err != NULL ? err : "");
    snprintf(t->scrape_url, sizeof t->scrape_url, "%s", scraped != NULL ? scraped : "");
    bool up = json_array_size(active) == 1 && health != NULL && strcmp(health, "up") == 0 &&
              err != NULL && err[0] == '\0';
    json_decref(v);
    return up;
}

struct query {
    char url[1024];
    const char *promql;
    /* The condition the value must meet. */
    enum { EQUAL, AT_LEAST, ABOVE, FINITE } want;
    double expected;
    /* What came back last, for the failure message. */
    bool got;
    size_t series;
    double value;
};

/* The query's instant vector holds exactly one sample; it is read into
 * q->value (Prometheus sends values as strings: "3", "NaN", "+Inf"). */
static bool read_query(struct query *q)
{
    json_t *v = h_get_json(q->url, NULL);
    json_t *data = json_object_get(v, "data");
    json_t *result = json_object_get(data, "result");
    const char *type = json_string_value(json_object_get(data, "resultType"));
    q->series = json_array_size(result);
    q->got = false;
    if (type != NULL && strcmp(type, "vector") == 0 && q->series == 1) {
        json_t *pair = json_object_get(json_array_get(result, 0), "value");
        const char *text = json_string_value(json_array_get(pair, 1));
        /* "NaN" and "+Inf" are no numbers here: a quantile of an empty or
         * broken histogram must not pass as finite. */
        q->got = text != NULL && mlx_parse_double(text, &q->value, NULL) == 0;
    }
    json_decref(v);
    return q->got;
}

static bool query_meets(void *arg)
{
    struct query *q = arg;
    if (!read_query(q))
        return false;
    switch (q->want) {
    case EQUAL:
        return q->value == q->expected;
    case AT_LEAST:
        return q->value >= q->expected;
    case ABOVE:
        return q->value > q->expected;
    case FINITE:
        return isfinite(q->value);
    }
    return false;
}

/* Polls promql until its value meets the condition, or fails saying what
 * Prometheus last answered. */
static void expect_series(const char *promql, int want, double expected)
{
    struct query q = {.promql = promql, .want = want, .expected = expected};
    CURL *c = curl_easy_init();
    char *escaped = curl_easy_escape(c, promql, 0);
    snprintf(q.url, sizeof q.url, "http://127.0.0.1:%d/api/v1/query?query=%s", prom_port,
             escaped);
    curl_free(escaped);
    curl_easy_cleanup(c);
    if (h_wait_for(query_meets, &q, PROM_VALUE_MS))
        return;
    static const char *const wants[] = {"equal to", "at least", "above", "finite, then"};
    if (!q.got)
        fail_msg("Prometheus has no single sample for %s (%zu series)", promql, q.series);
    fail_msg("%s is %.17g; expected %s %.17g", promql, q.value, wants[want], expected);
}

/* ---- the test ------------------------------------------------------------------ */

static void test_prometheus_reads_what_the_agent_served(void **state)
{
    make_requests();
    start_prometheus();

    struct target_state t;
    snprintf(t.url, sizeof t.url, "http://127.0.0.1:%d/api/v1/targets", prom_port);
    if (!h_wait_for(target_is_up, &t, PROM_START_MS))
        fail_msg("Prometheus' target %s is \"%s\" with last error \"%s\" after %d ms "
                 "(its log: %s/prometheus.log)",
                 t.scrape_url, t.health, t.last_error, PROM_START_MS, prom_dir);
    char scrape[96];
    snprintf(scrape, sizeof scrape, "http://127.0.0.1:%d/metrics", agent.http_port);
    assert_string_equal(t.scrape_url, scrape);

    char promql[512];
    snprintf(promql, sizeof promql,
             "sum(mlx_requests_total{endpoint=\"/v1/completions\",status=\"200\"})");
    expect_series(promql, EQUAL, (double)completions_ok);
    snprintf(promql, sizeof promql,
             "sum(mlx_requests_total{endpoint=\"/v1/completions\",model=\"%s\","
             "status=\"200\"})",
             SERVING_MODEL);
    expect_series(promql, EQUAL, (double)completions_ok);
    expect_series("sum(mlx_requests_total{status=\"404\"})", AT_LEAST, (double)not_found);
    snprintf(promql, sizeof promql, "mlx_tokens_predicted_total{model=\"%s\"}",
             SERVING_MODEL);
    expect_series(promql, EQUAL, (double)completion_tokens);
    /* Every generation's first token was observed once. */
    expect_series("sum(mlx_time_to_first_token_seconds_count)", EQUAL,
                  (double)completions_ok);
    expect_series("histogram_quantile(0.5, sum by (le) "
                  "(mlx_time_to_first_token_seconds_bucket))",
                  FINITE, 0);
    expect_series("mlx_node_memory_total_bytes", ABOVE, 0);
    expect_series("mlx_models_loaded", EQUAL, 1);
    /* Every series carries the node label ("or vector(0)": a count of
     * nothing is no sample at all). */
    expect_series("count({__name__=~\"mlx_.*\", node=\"\"}) or vector(0)", EQUAL, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prometheus_reads_what_the_agent_served),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
