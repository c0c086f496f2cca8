/*
 * it_api_bad_input.c — malformed requests to a serving agent (the table in
 * bad_requests.c: broken JSON, wrong types, values out of range, unknown
 * and unsupported fields, broken UTF-8, unknown models, prompts past
 * --ctx, bodies past --max-body, unknown endpoints and methods, and abused
 * HTTP framing on a raw socket), each answered as the API promises.
 * After every row the agent must still answer /healthz; at the end a valid
 * request must still give llama.cpp's greedy text, and /metrics must have
 * counted the refusals.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>

#include "common/parse.h"
#include "tests/integration/bad_requests.h"

#define MAX_BODY "65536"

static serving agent;

static int group_setup(void **state)
{
    curl_global_init(CURL_GLOBAL_ALL);
    const char *extra[] = {"--ctx", BAD_REQUESTS_CTX, "--max-body", MAX_BODY, NULL};
    return serving_start(&agent, "it-api-bad-input", extra);
}

static int group_teardown(void **state)
{
    int status = serving_stop(&agent);
    curl_global_cleanup();
    if (status != 0)
        fprintf(stderr, "the agent exited with status %d on SIGTERM\n", status);
    return status == 0 ? 0 : -1;
}

static bad_server target(void)
{
    return (bad_server){.what = "the agent",
                        .s = &agent,
                        .log_path = agent.agent->log_path,
                        .body_limit = MAX_BODY,
                        .serves_show = true};
}

static void test_each_malformed_request_is_refused_rightly(void **state)
{
    bad_server srv = target();
    bad_requests_check(&srv);
}

/* Framing no client library would send: a 4xx (or, where no request came
 * whole, a closed connection), and never a crash. */
static void test_abused_http_framing_is_refused(void **state)
{
    bad_server srv = target();
    bad_requests_check_framing(&srv);
}

/* The sum of mlx_requests_total over the series with endpoint and status. */
static double requests_counted(const char *metrics, const char *endpoint, int status)
{
    char want_endpoint[96], want_status[32];
    snprintf(want_endpoint, sizeof want_endpoint, "endpoint=\"%s\"", endpoint);
    snprintf(want_status, sizeof want_status, "status=\"%d\"", status);
    double sum = 0;
    for (const char *line = metrics; line != NULL && *line != '\0';) {
        const char *nl = strchr(line, '\n');
        size_t n = nl != NULL ? (size_t)(nl - line) : strlen(line);
        char text[1024];
        snprintf(text, sizeof text, "%.*s", (int)n, line);
        char *close = strrchr(text, '}');
        if (strncmp(text, "mlx_requests_total{", 19) == 0 && close != NULL) {
            *close = '\0';
            double value = 0;
            if (strstr(text, want_endpoint) != NULL && strstr(text, want_status) != NULL &&
                mlx_parse_double(close + 2, &value, NULL) == 0)
                sum += value;
        }
        line = nl != NULL ? nl + 1 : NULL;
    }
    return sum;
}

/* After all that, the agent still serves: a valid greedy request gives
 * llama.cpp's text, an insane X-Request-Id is not echoed, and /metrics
 * counted each refusal the generation endpoints answered. */
static void test_the_agent_still_serves_and_counted_the_refusals(void **state)
{
    const char *json = "{\"model\":\"stories\",\"prompt\":\"Once upon a time\","
                       "\"max_tokens\":48,\"temperature\":0}";
    const char *headers[] = {"X-Request-Id: a b\"c", NULL};
    serving_reply got;
    serving_call(&agent, "POST", CMPL, headers, json, strlen(json), &got);
    assert_int_equal(got.status, 200);
    assert_true(got.request_id[0] != '\0');
    assert_string_not_equal(got.request_id, "a b\"c");
    json_t *v = json_loads(got.body, 0, NULL);
    const char *text = json_string_value(
        json_object_get(json_array_get(json_object_get(v, "choices"), 0), "text"));
    assert_non_null(text);
    const char *want = serving_greedy_text("Once upon a time");
    const char *text_only = text[0] == ' ' && want[0] != ' ' ? text + 1 : text;
    if (strcmp(text_only, want) != 0)
        fail_msg("greedy \"Once upon a time\" gave\n[%s]\nllama.cpp gives\n[%s]", text, want);
    json_decref(v);
    serving_reply_free(&got);

    serving_call(&agent, "GET", "/metrics", NULL, NULL, 0, &got);
    assert_int_equal(got.status, 200);
    /* The rows each of these endpoints answered 400 and 404: counted
     * exactly, since nothing else was sent there with those outcomes.
     * (Chat also took the raw-socket rows, refused before any endpoint.) */
    static const char *const endpoints[] = {CMPL, GEN, OCHAT, CHAT};
    static const int statuses[] = {400, 404};
    for (size_t e = 0; e < 4; e++) {
        for (size_t s = 0; s < 2; s++) {
            double expected = bad_requests_count(endpoints[e], statuses[s]);
            double counted = requests_counted(got.body, endpoints[e], statuses[s]);
            bool ok = e < 3 ? counted == expected : counted >= expected;
            if (!ok)
                fail_msg("mlx_requests_total{endpoint=\"%s\",status=\"%d\"} is %g; %g "
                         "such answers were given",
                         endpoints[e], statuses[s], counted, expected);
        }
    }
    assert_true(requests_counted(got.body, CHAT, 400) > 0);
    serving_reply_free(&got);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_malformed_request_is_refused_rightly),
        cmocka_unit_test(test_abused_http_framing_is_refused),
        cmocka_unit_test(test_the_agent_still_serves_and_counted_the_refusals),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
