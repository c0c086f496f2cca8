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
#include "tests/integration/promserver.h"
#include "tests/integration/serving.h"
#include "tests/support/testutil.h"

#define MAX_TOKENS 16

static const char *const prompts[] = {"Once upon a time", "The little dog",
                                      "Lily and Tom went to the park."};
#define N_PROMPTS (sizeof prompts / sizeof prompts[0])

static serving agent;
static prom_server *prom;

/* What the requests reported, to compare the series against. */
static int64_t completions_ok, completion_tokens, not_found;

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
    const char *missing =
        "{\"model\":\"no-such-model\",\"prompt\":\"hi\",\"max_tokens\":4}";
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
    int prom_status = prom_stop(prom);
    int agent_status = serving_stop(&agent);
    curl_global_cleanup();
    /* Both stop cleanly on SIGTERM; anything else is a failure to report. */
    if (prom_status != 0)
        fprintf(stderr, "prometheus exited with status %d on SIGTERM\n", prom_status);
    if (agent_status != 0)
        fprintf(stderr, "the agent exited with status %d on SIGTERM\n", agent_status);
    return prom_status == 0 && agent_status == 0 ? 0 : -1;
}

/* ---- the test ------------------------------------------------------------------ */

static void test_prometheus_reads_what_the_agent_served(void **state)
{
    make_requests();
    prom_job job = {"mlx-agent", &agent.http_port, 1};
    prom = prom_start("it-prometheus-server", &job, 1);

    char promql[512];
    snprintf(promql, sizeof promql,
             "sum(mlx_requests_total{endpoint=\"/v1/completions\",status=\"200\"})");
    prom_expect(prom, promql, PROM_EQUAL, (double)completions_ok);
    snprintf(promql, sizeof promql,
             "sum(mlx_requests_total{endpoint=\"/v1/completions\",model=\"%s\","
             "status=\"200\"})",
             SERVING_MODEL);
    prom_expect(prom, promql, PROM_EQUAL, (double)completions_ok);
    prom_expect(prom, "sum(mlx_requests_total{status=\"404\"})", PROM_AT_LEAST,
                (double)not_found);
    snprintf(promql, sizeof promql, "mlx_tokens_predicted_total{model=\"%s\"}",
             SERVING_MODEL);
    prom_expect(prom, promql, PROM_EQUAL, (double)completion_tokens);
    /* Every generation's first token was observed once. */
    prom_expect(prom, "sum(mlx_time_to_first_token_seconds_count)", PROM_EQUAL,
                (double)completions_ok);
    prom_expect(prom,
                "histogram_quantile(0.5, sum by (le) "
                "(mlx_time_to_first_token_seconds_bucket))",
                PROM_FINITE, 0);
    prom_expect(prom, "mlx_node_memory_total_bytes", PROM_ABOVE, 0);
    prom_expect(prom, "mlx_models_loaded", PROM_EQUAL, 1);
    /* Every series carries the node label ("or vector(0)": a count of
     * nothing is no sample at all). */
    prom_expect(prom, "count({__name__=~\"mlx_.*\", node=\"\"}) or vector(0)", PROM_EQUAL,
                0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prometheus_reads_what_the_agent_served),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
