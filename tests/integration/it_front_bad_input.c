/*
 * it_front_bad_input.c — the malformed requests of it_api_bad_input.c (the
 * table in bad_requests.c) sent to the coordinator, with one agent behind
 * it serving stories260K: the coordinator reads requests with the agent's
 * code and must refuse each alike, with the same status and error shape,
 * whether it refuses a request itself or relays the agent's refusal (a
 * prompt past the agent's --ctx). Abused HTTP framing on a raw socket is
 * refused as the agent refuses it. After every row the coordinator must
 * still answer /healthz, and at the end a valid request through it must
 * give llama.cpp's greedy text.
 *
 * The coordinator's body limit is MLX_MAX_HTTP_BODY.
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

#include "common/limits.h"
#include "tests/integration/bad_requests.h"
#include "tests/integration/cluster.h"

#define HB      100
#define WAIT_MS 15000

static cluster *c;    /* the coordinator only */
static serving agent; /* the agent behind it */
static serving front; /* the coordinator's HTTP, for serving_call */
static char body_limit[32];

/* The coordinator lists the model on the agent, up. */
static bool model_listed(void *arg)
{
    char url[128];
    snprintf(url, sizeof url, "%s/api/v1/models", c->http_url);
    json_t *doc = h_get_json(url, NULL);
    size_t i, k;
    json_t *m, *n;
    bool up = false;
    json_array_foreach(json_object_get(doc, "models"), i, m)
    {
        const char *name = json_string_value(json_object_get(m, "name"));
        if (name == NULL || strcmp(name, SERVING_MODEL) != 0)
            continue;
        json_array_foreach(json_object_get(m, "nodes"), k, n)
        {
            const char *st = json_string_value(json_object_get(n, "state"));
            up |= json_is_true(json_object_get(n, "stored")) && st != NULL &&
                  strcmp(st, "up") == 0;
        }
    }
    json_decref(doc);
    return up;
}

static int group_setup(void **state)
{
    curl_global_init(CURL_GLOBAL_ALL);
    c = cluster_create("it-front-bad-input", HB, 10, 50);
    cluster_start_coordinator(c);
    char hb[16];
    snprintf(hb, sizeof hb, "%d", HB);
    const char *extra[] = {
        "--ctx", BAD_REQUESTS_CTX, "--coordinator", c->control_url, "--heartbeat-ms", hb,
        NULL};
    if (serving_start(&agent, "it-front-bad-input-agent", extra) != 0)
        return -1;
    snprintf(front.base, sizeof front.base, "%s", c->http_url);
    front.http_port = c->http_port;
    snprintf(body_limit, sizeof body_limit, "%u", (unsigned)MLX_MAX_HTTP_BODY);
    if (!h_wait_for(model_listed, NULL, WAIT_MS)) {
        fprintf(stderr, "the coordinator never listed %s on the agent; see %s\n",
                SERVING_MODEL, c->coordinator->log_path);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    int status = serving_stop(&agent);
    cluster_destroy(c);
    curl_global_cleanup();
    if (status != 0)
        fprintf(stderr, "the agent exited with status %d on SIGTERM\n", status);
    return status == 0 ? 0 : -1;
}

static bad_server target(void)
{
    return (bad_server){.what = "the coordinator",
                        .s = &front,
                        .log_path = c->coordinator->log_path,
                        .body_limit = body_limit,
                        .serves_show = true};
}

static void test_each_malformed_request_is_refused_rightly(void **state)
{
    bad_server srv = target();
    bad_requests_check(&srv);
}

static void test_abused_http_framing_is_refused(void **state)
{
    bad_server srv = target();
    bad_requests_check_framing(&srv);
}

/* After all that, a valid greedy request through the coordinator gives
 * llama.cpp's text, whole and as Ollama's stream. */
static void test_the_coordinator_still_serves(void **state)
{
    const char *want = serving_greedy_text("Once upon a time");
    json_t *v = serving_post_ok(&front, CMPL,
                                "{\"model\":\"stories\",\"prompt\":\"Once upon a time\","
                                "\"max_tokens\":48,\"temperature\":0}");
    const char *text = json_string_value(
        json_object_get(json_array_get(json_object_get(v, "choices"), 0), "text"));
    assert_non_null(text);
    const char *text_only = text[0] == ' ' && want[0] != ' ' ? text + 1 : text;
    if (strcmp(text_only, want) != 0)
        fail_msg("greedy \"Once upon a time\" gave\n[%s]\nllama.cpp gives\n[%s]", text,
                 want);
    json_decref(v);

    const char *body =
        "{\"model\":\"stories\",\"prompt\":\"Once upon a time\",\"raw\":true,"
        "\"options\":{\"temperature\":0,\"num_predict\":8}}";
    serving_reply r;
    serving_call(&front, "POST", GEN, NULL, body, strlen(body), &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"done\":true"));
    assert_null(strstr(r.body, "\"error\""));
    serving_reply_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_malformed_request_is_refused_rightly),
        cmocka_unit_test(test_abused_http_framing_is_refused),
        cmocka_unit_test(test_the_coordinator_still_serves),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
