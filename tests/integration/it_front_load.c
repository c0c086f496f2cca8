/*
 * it_front_load.c — Ollama's request with nothing to generate through the
 * coordinator: a coordinator and two agents on loopback, stories260K in
 * both stores, nothing loaded at the start.
 *
 * POST /api/generate with a model and no prompt makes one node load it:
 * that agent's /api/ps lists it, the coordinator sees it loaded after a
 * heartbeat, and the answer is the agent's (done_reason "load", the load's
 * time as load_duration, 0 once loaded); a keep_alive reaches the agent as
 * its expiry. /api/chat without messages does the same. keep_alive 0
 * unloads it from every node that had it, and answers "unload" also when
 * none had. An unknown model is a 404 naming it. The coordinator counts
 * each load under the node that did it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/clock.h"
#include "common/parse.h"
#include "tests/integration/cluster.h"
#include "tests/integration/serving.h"
#include "tests/support/testutil.h"

#define HB      100
#define SUSPECT 10
#define DOWN    50
#define WAIT_MS 15000

static cluster *c;
static char *model_file;  /* ../shared/testdata/stories260K.gguf */
static serving front;     /* the coordinator's HTTP */
static serving direct[2]; /* the agents' HTTP */

/* ---- setup ------------------------------------------------------------------ */

static int group_setup(void **state)
{
    (void)state;
    c = cluster_create("front-load", HB, SUSPECT, DOWN);
    cluster_start_coordinator(c);
    if (!cluster_start_holding(c, 2, model_file, SERVING_MODEL, WAIT_MS))
        return -1;
    for (int i = 0; i < 2; i++)
        snprintf(direct[i].base, sizeof direct[i].base, "http://127.0.0.1:%d",
                 c->agents[i].http_port);
    snprintf(front.base, sizeof front.base, "%s", c->http_url);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    cluster_destroy(c);
    free(model_file);
    return 0;
}

/* ---- helpers ---------------------------------------------------------------- */

/* POST path with body; the reply's status and its JSON (json_decref). */
static json_t *post(const serving *s, const char *path, const char *body, long *status)
{
    serving_reply r;
    serving_call(s, "POST", path, NULL, body, strlen(body), &r);
    *status = r.status;
    json_t *v = json_loads(r.body != NULL ? r.body : "", 0, NULL);
    if (v == NULL)
        fail_msg("POST %s%s answered %ld with no JSON: %s", s->base, path, r.status,
                 r.body != NULL ? r.body : "");
    serving_reply_free(&r);
    return v;
}

/* A load-only request that must be answered 200 with done_reason reason;
 * its load_duration. */
static int64_t load_only(const char *path, const char *body, const char *reason)
{
    long status;
    json_t *v = post(&front, path, body, &status);
    if (status != 200)
        fail_msg("POST %s %s answered %ld: %s", path, body, status,
                 json_string_value(json_object_get(v, "error")));
    assert_string_equal(json_string_value(json_object_get(v, "model")), SERVING_MODEL);
    assert_true(json_is_true(json_object_get(v, "done")));
    assert_string_equal(json_string_value(json_object_get(v, "done_reason")), reason);
    assert_non_null(json_string_value(json_object_get(v, "created_at")));
    if (strcmp(path, "/api/chat") == 0) {
        json_t *m = json_object_get(v, "message");
        assert_string_equal(json_string_value(json_object_get(m, "role")), "assistant");
        assert_string_equal(json_string_value(json_object_get(m, "content")), "");
    } else {
        assert_string_equal(json_string_value(json_object_get(v, "response")), "");
    }
    json_t *d = json_object_get(v, "load_duration");
    assert_true(json_is_integer(d));
    int64_t ns = json_integer_value(d);
    assert_true(ns >= 0);
    json_decref(v);
    return ns;
}

/* The expires_at of the model in agent i's /api/ps, "" when it has none
 * loaded (out: 40 bytes). */
static void agent_ps(int i, char *out)
{
    char url[128];
    snprintf(url, sizeof url, "%s/api/ps", direct[i].base);
    json_t *ps = h_get_json(url, NULL);
    out[0] = '\0';
    size_t k;
    json_t *m;
    json_array_foreach(json_object_get(ps, "models"), k, m)
    {
        const char *name = json_string_value(json_object_get(m, "name"));
        const char *expires = json_string_value(json_object_get(m, "expires_at"));
        if (name != NULL && strcmp(name, SERVING_MODEL) == 0 && expires != NULL)
            snprintf(out, 40, "%s", expires);
    }
    json_decref(ps);
}

static bool agent_has_it(int i)
{
    char expires[40];
    agent_ps(i, expires);
    return expires[0] != '\0';
}

/* Which agent has the model loaded: its index, 2 for both, -1 for none. */
static int holder(void)
{
    bool a = agent_has_it(0), b = agent_has_it(1);
    return a && b ? 2 : a ? 0 : b ? 1 : -1;
}

static bool none_loaded(void *arg)
{
    (void)arg;
    return holder() == -1;
}

/* The sum of the coordinator's mlx_coordinator_requests_total over the
 * series whose labels contain every needle. */
static double coordinator_counted(const char *a, const char *b)
{
    serving_reply r;
    assert_int_equal(serving_call(&front, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    double sum = 0;
    for (char *line = r.body; line != NULL && *line != '\0';) {
        char *nl = strchr(line, '\n');
        if (nl != NULL)
            *nl = '\0';
        char *close = strrchr(line, '}');
        double value = 0;
        if (strncmp(line, "mlx_coordinator_requests_total{", 31) == 0 && close != NULL &&
            strstr(line, a) != NULL && strstr(line, b) != NULL &&
            mlx_parse_double(close + 2, &value, NULL) == 0)
            sum += value;
        line = nl != NULL ? nl + 1 : NULL;
    }
    serving_reply_free(&r);
    return sum;
}

#define GENERATE "{\"model\":\"" SERVING_MODEL "\""

/* ---- tests ------------------------------------------------------------------ */

static void test_generate_without_prompt_loads_on_one_node(void **state)
{
    (void)state;
    assert_int_equal(holder(), -1);
    double counted = coordinator_counted("model=\"" SERVING_MODEL "\"", "status=\"200\"");

    /* A real load: it took time, and one agent has it now. */
    assert_true(load_only("/api/generate", GENERATE "}", "load") > 0);
    int first = holder();
    if (first < 0 || first > 1)
        fail_msg("after a load-only request, agents holding it: %d (want one)", first);
    /* The coordinator learns it from that node's heartbeat. */
    if (!cluster_wait_model(c, SERVING_MODEL, "loaded", 1, WAIT_MS))
        fail_msg("the coordinator never saw %s loaded on a node", SERVING_MODEL);

    /* Again: the router prefers the node that has it, which loads nothing. */
    assert_int_equal(load_only("/api/generate", GENERATE ",\"stream\":false}", "load"),
                     0);
    assert_int_equal(holder(), first);

    /* A keep_alive reaches the agent: an hour, not its five minutes. */
    assert_int_equal(
        load_only("/api/generate", GENERATE ",\"keep_alive\":\"1h\"}", "load"), 0);
    char expires[40], later[40];
    agent_ps(first, expires);
    mlx_time_format_rfc3339(mlx_time_wall_ms() + 30 * 60 * 1000, later, sizeof later);
    if (strcmp(expires, later) <= 0)
        fail_msg("keep_alive 1h: the model expires at %s, before %s", expires, later);

    /* Each counted by the coordinator, under the node that did it. */
    char node[64];
    snprintf(node, sizeof node, "node=\"%s\"", c->agents[first].name);
    assert_true(coordinator_counted("model=\"" SERVING_MODEL "\"", "status=\"200\"") -
                    counted ==
                3);
    assert_true(coordinator_counted(node, "status=\"200\"") >= 3);
}

static void test_chat_without_messages_loads_too(void **state)
{
    (void)state;
    assert_int_equal(load_only("/api/chat", GENERATE "}", "load"), 0);
    assert_int_equal(load_only("/api/chat", GENERATE ",\"messages\":[]}", "load"), 0);
    assert_true(holder() == 0 || holder() == 1);
}

static void test_keep_alive_0_unloads_from_every_node(void **state)
{
    (void)state;
    /* Both load it (directly), and the coordinator sees both. */
    for (int i = 0; i < 2; i++) {
        long status;
        json_decref(post(&direct[i], "/api/generate", GENERATE "}", &status));
        assert_int_equal(status, 200);
    }
    assert_int_equal(holder(), 2);
    if (!cluster_wait_model(c, SERVING_MODEL, "loaded", 2, WAIT_MS))
        fail_msg("the coordinator never saw %s loaded on both nodes", SERVING_MODEL);

    assert_int_equal(load_only("/api/generate", GENERATE ",\"keep_alive\":0}", "unload"),
                     0);
    if (!h_wait_for(none_loaded, NULL, WAIT_MS))
        fail_msg("after an unload, agents still holding it: %d", holder());
    if (!cluster_wait_model(c, SERVING_MODEL, "loaded", 0, WAIT_MS))
        fail_msg("the coordinator still sees %s loaded", SERVING_MODEL);

    /* None has it loaded: still "unload", and nothing is loaded for it. */
    assert_int_equal(load_only("/api/chat", GENERATE ",\"keep_alive\":0}", "unload"), 0);
    assert_int_equal(holder(), -1);
}

static void test_an_unknown_model_is_404_naming_it(void **state)
{
    (void)state;
    const char *paths[] = {"/api/generate", "/api/chat"};
    const char *bodies[] = {"{\"model\":\"no-such-model\"}",
                            "{\"model\":\"no-such-model\",\"keep_alive\":0}"};
    for (int i = 0; i < 2; i++) {
        for (int k = 0; k < 2; k++) {
            long status;
            json_t *v = post(&front, paths[i], bodies[k], &status);
            assert_int_equal(status, 404);
            const char *msg = json_string_value(json_object_get(v, "error"));
            assert_non_null(msg);
            assert_non_null(strstr(msg, "'no-such-model'"));
            json_decref(v);
        }
    }
}

int main(void)
{
    model_file = test_shared_model("stories260K.gguf");
    if (model_file == NULL)
        return 77;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate_without_prompt_loads_on_one_node),
        cmocka_unit_test(test_chat_without_messages_loads_too),
        cmocka_unit_test(test_keep_alive_0_unloads_from_every_node),
        cmocka_unit_test(test_an_unknown_model_is_404_naming_it),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
