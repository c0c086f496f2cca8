/*
 * it_front.c — the coordinator's OpenAI and Ollama front end to end: a
 * coordinator and two agents on loopback, stories260K in both stores.
 * Through the coordinator, greedy chat and completions (whole and SSE) and
 * Ollama's NDJSON generate give what the same request gives at an agent
 * directly, log probabilities included (tokens, values, alternatives); /v1/models and
 * /api/tags list the model with its nodes; an unknown model is 404 naming it and a
 * malformed body 400, each in its API's error shape; X-Session-Id keeps requests on one
 * node (seen in the agents' logs by request id); and when that node is killed with
 * SIGKILL, the next requests with the key are served by the other.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <math.h>

#include "tests/integration/cluster.h"
#include "tests/integration/serving.h"
#include "tests/support/testutil.h"

#define HB      100
#define SUSPECT 10
#define DOWN    50
#define WAIT_MS 15000

static cluster *c;
static char *model_file;  /* ../shared/testdata/stories260K.gguf */
static serving front;     /* the coordinator's HTTP, for serving_call */
static serving direct[2]; /* the agents' HTTP */

/* ---- setup ------------------------------------------------------------------ */

static int group_setup(void **state)
{
    c = cluster_create("front", HB, SUSPECT, DOWN);
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
    cluster_destroy(c);
    free(model_file);
    return 0;
}

/* ---- helpers ---------------------------------------------------------------- */

static serving_reply post(const serving *s, const char *path, const char *const *headers,
                          const char *body)
{
    serving_reply r;
    serving_call(s, "POST", path, headers, body, strlen(body), &r);
    return r;
}

static json_t *post_json(const serving *s, const char *path, const char *body)
{
    serving_reply r = post(s, path, NULL, body);
    if (r.status != 200)
        fail_msg("POST %s%s answered %ld: %s", s->base, path, r.status,
                 r.body ? r.body : "");
    json_t *v = json_loads(r.body, 0, NULL);
    serving_reply_free(&r);
    assert_non_null(v);
    return v;
}

static const char *str_at(json_t *v, const char *a, int index, const char *b,
                          const char *leaf)
{
    json_t *x = json_object_get(v, a);
    if (index >= 0)
        x = json_array_get(x, (size_t)index);
    if (b != NULL)
        x = json_object_get(x, b);
    return json_string_value(json_object_get(x, leaf));
}

#define CHAT                                                                             \
    "{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a "   \
    "story about a cat.\"}],\"max_tokens\":40,\"temperature\":0"
#define COMPLETION                                                                       \
    "{\"model\":\"stories\",\"prompt\":\"Once upon a time\",\"max_tokens\":40,"          \
    "\"temperature\":0"

/* The text of an SSE chat or completion stream; fails unless it ends with
 * data: [DONE]. */
static char *sse_text(const char *body, bool chat)
{
    char *text = calloc(1, strlen(body) + 1);
    assert_non_null(text);
    const char *p = body;
    const char *last = NULL;
    while ((p = strstr(p, "data: ")) != NULL) {
        p += 6;
        const char *end = strstr(p, "\n\n");
        assert_non_null(end);
        last = p;
        if (strncmp(p, "[DONE]", 6) != 0) {
            json_t *v = json_loadb(p, (size_t)(end - p), 0, NULL);
            assert_non_null(v);
            json_t *choice = json_array_get(json_object_get(v, "choices"), 0);
            const char *piece = chat ? json_string_value(json_object_get(
                                           json_object_get(choice, "delta"), "content"))
                                     : json_string_value(json_object_get(choice, "text"));
            if (piece != NULL)
                memcpy(text + strlen(text), piece, strlen(piece) + 1);
            json_decref(v);
        }
        p = end;
    }
    assert_non_null(last);
    assert_int_equal(strncmp(last, "[DONE]", 6), 0);
    return text;
}

/* The logprobs of an SSE stream's chunks joined into one: a chat's content
 * items in one array, a completion's four parallel arrays each joined.
 * Fails unless the stream ends with data: [DONE]. Caller decrefs. */
static json_t *sse_logprobs(const char *body, bool chat)
{
    static const char *const keys[] = {"tokens", "token_logprobs", "top_logprobs",
                                       "text_offset"};
    json_t *all =
        chat ? json_pack("{s:[]}", "content")
             : json_pack("{s:[], s:[], s:[], s:[]}", keys[0], keys[1], keys[2], keys[3]);
    assert_non_null(all);
    const char *p = body;
    const char *last = NULL;
    while ((p = strstr(p, "data: ")) != NULL) {
        p += 6;
        const char *end = strstr(p, "\n\n");
        assert_non_null(end);
        last = p;
        if (strncmp(p, "[DONE]", 6) != 0) {
            json_t *v = json_loadb(p, (size_t)(end - p), 0, NULL);
            assert_non_null(v);
            json_t *lp = json_object_get(json_array_get(json_object_get(v, "choices"), 0),
                                         "logprobs");
            if (chat && json_is_object(lp))
                json_array_extend(json_object_get(all, "content"),
                                  json_object_get(lp, "content"));
            for (size_t k = 0; !chat && json_is_object(lp) && k < 4; k++)
                json_array_extend(json_object_get(all, keys[k]),
                                  json_object_get(lp, keys[k]));
            json_decref(v);
        }
        p = end;
    }
    assert_non_null(last);
    assert_int_equal(strncmp(last, "[DONE]", 6), 0);
    return all;
}

/* ---- tests ------------------------------------------------------------------ */

static void test_whole_answers_equal_an_agent_s(void **state)
{
    json_t *via = post_json(&front, "/v1/chat/completions", CHAT "}");
    json_t *at = post_json(&direct[0], "/v1/chat/completions", CHAT "}");
    const char *text = str_at(via, "choices", 0, "message", "content");
    assert_non_null(text);
    assert_true(strlen(text) > 0);
    assert_string_equal(text, str_at(at, "choices", 0, "message", "content"));
    assert_string_equal(str_at(via, "choices", 0, NULL, "finish_reason"),
                        str_at(at, "choices", 0, NULL, "finish_reason"));
    assert_string_equal(json_string_value(json_object_get(via, "object")),
                        "chat.completion");
    assert_true(json_equal(json_object_get(via, "usage"), json_object_get(at, "usage")));
    json_decref(via);
    json_decref(at);

    via = post_json(&front, "/v1/completions", COMPLETION "}");
    at = post_json(&direct[1], "/v1/completions", COMPLETION "}");
    assert_string_equal(str_at(via, "choices", 0, NULL, "text"),
                        str_at(at, "choices", 0, NULL, "text"));
    assert_true(json_equal(json_object_get(via, "usage"), json_object_get(at, "usage")));
    json_decref(via);
    json_decref(at);
}

static void test_sse_streams_equal_an_agent_s(void **state)
{
    json_t *at = post_json(&direct[0], "/v1/chat/completions", CHAT "}");
    serving_reply r =
        post(&front, "/v1/chat/completions", NULL, CHAT ",\"stream\":true}");
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.content_type, "text/event-stream"));
    char *text = sse_text(r.body, true);
    assert_string_equal(text, str_at(at, "choices", 0, "message", "content"));
    free(text);
    serving_reply_free(&r);
    json_decref(at);

    at = post_json(&direct[1], "/v1/completions", COMPLETION "}");
    r = post(&front, "/v1/completions", NULL, COMPLETION ",\"stream\":true}");
    assert_int_equal(r.status, 200);
    text = sse_text(r.body, false);
    assert_string_equal(text, str_at(at, "choices", 0, NULL, "text"));
    free(text);
    serving_reply_free(&r);
    json_decref(at);
}

#define CHAT_LP       CHAT ",\"logprobs\":true,\"top_logprobs\":3"
#define COMPLETION_LP COMPLETION ",\"logprobs\":2"

/* Log probabilities may differ in their last digits between two nodes:
 * where a node reuses a cached prefix of the prompt (an earlier test's),
 * the prompt's last token is computed alone rather than in the prefill,
 * which rounds differently, and the difference carries on to later tokens
 * (about 1e-5 after 40 in a debug build). So numbers are equal within
 * LOGPROB_TOLERANCE, far below what a token's value differs by from its
 * neighbours'; tokens and alternatives are equal exactly. */
#define LOGPROB_TOLERANCE 1e-3

static bool json_near(json_t *a, json_t *b)
{
    if (json_is_real(a) && json_is_real(b))
        return fabs(json_real_value(a) - json_real_value(b)) <= LOGPROB_TOLERANCE;
    if (json_is_array(a) && json_is_array(b)) {
        if (json_array_size(a) != json_array_size(b))
            return false;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!json_near(json_array_get(a, i), json_array_get(b, i)))
                return false;
        return true;
    }
    if (json_is_object(a) && json_is_object(b)) {
        if (json_object_size(a) != json_object_size(b))
            return false;
        const char *key;
        json_t *v;
        json_object_foreach(a, key, v)
        {
            if (!json_near(v, json_object_get(b, key)))
                return false;
        }
        return true;
    }
    return json_equal(a, b);
}

/* Fails, showing both, unless got equals want (json_near). */
static void expect_json_equal(const char *what, json_t *got, json_t *want)
{
    if (json_near(got, want))
        return;
    char *g = json_dumps(got, JSON_COMPACT);
    char *w = json_dumps(want, JSON_COMPACT);
    fprintf(stderr, "got:  %s\nwant: %s\n", g ? g : "(null)", w ? w : "(null)");
    free(g);
    free(w);
    fail_msg("%s differ", what);
}

static json_t *logprobs_of(json_t *answer)
{
    return json_object_get(json_array_get(json_object_get(answer, "choices"), 0),
                           "logprobs");
}

static void test_logprobs_equal_an_agent_s(void **state)
{
    /* whole chat: every token, its log probability and three alternatives */
    json_t *via = post_json(&front, "/v1/chat/completions", CHAT_LP "}");
    json_t *chat = post_json(&direct[0], "/v1/chat/completions", CHAT_LP "}");
    json_t *content = json_object_get(logprobs_of(chat), "content");
    json_int_t n = json_integer_value(
        json_object_get(json_object_get(chat, "usage"), "completion_tokens"));
    assert_true(n > 0);
    assert_int_equal(json_array_size(content), (size_t)n);
    for (size_t i = 0; i < json_array_size(content); i++)
        assert_int_equal(
            json_array_size(json_object_get(json_array_get(content, i), "top_logprobs")),
            3);
    expect_json_equal("the coordinator's chat logprobs and the agent's", logprobs_of(via),
                      logprobs_of(chat));
    assert_string_equal(str_at(via, "choices", 0, "message", "content"),
                        str_at(chat, "choices", 0, "message", "content"));
    json_decref(via);

    /* whole completion: the legacy arrays, text offsets included */
    via = post_json(&front, "/v1/completions", COMPLETION_LP "}");
    json_t *cmpl = post_json(&direct[1], "/v1/completions", COMPLETION_LP "}");
    assert_true(json_array_size(json_object_get(logprobs_of(cmpl), "tokens")) > 0);
    expect_json_equal("the coordinator's completion logprobs and the agent's",
                      logprobs_of(via), logprobs_of(cmpl));
    json_decref(via);

    /* streamed, chunk by chunk: joined, the same as the agent's stream and
     * as its whole answer */
    for (int i = 0; i < 2; i++) {
        bool is_chat = i == 0;
        const char *path = is_chat ? "/v1/chat/completions" : "/v1/completions";
        const char *body =
            is_chat ? CHAT_LP ",\"stream\":true}" : COMPLETION_LP ",\"stream\":true}";
        serving_reply r = post(&front, path, NULL, body);
        serving_reply at = post(&direct[i], path, NULL, body);
        assert_int_equal(r.status, 200);
        assert_int_equal(at.status, 200);
        json_t *got = sse_logprobs(r.body, is_chat);
        json_t *want = sse_logprobs(at.body, is_chat);
        expect_json_equal(
            is_chat ? "streamed chat logprobs, the coordinator's and the agent's"
                    : "streamed completion logprobs, the coordinator's and the agent's",
            got, want);
        expect_json_equal(is_chat ? "streamed and whole chat logprobs"
                                  : "streamed and whole completion logprobs",
                          got, logprobs_of(is_chat ? chat : cmpl));
        json_decref(got);
        json_decref(want);
        serving_reply_free(&r);
        serving_reply_free(&at);
    }
    json_decref(chat);
    json_decref(cmpl);
}

static void test_ollama_ndjson_equals_an_agent_s(void **state)
{
    const char *body = "{\"model\":\"stories\",\"prompt\":\"Once upon a time\","
                       "\"options\":{\"temperature\":0,\"num_predict\":32}";
    char whole[256];
    snprintf(whole, sizeof whole, "%s,\"stream\":false}", body);
    json_t *at = post_json(&direct[0], "/api/generate", whole);
    char streamed[256];
    snprintf(streamed, sizeof streamed, "%s}", body);
    serving_reply r = post(&front, "/api/generate", NULL, streamed);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.content_type, "application/x-ndjson"));
    char *text = calloc(1, r.len + 1);
    assert_non_null(text);
    bool done = false;
    for (char *line = r.body; line != NULL && *line != '\0';) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        json_t *v = json_loadb(line, (size_t)(nl - line), 0, NULL);
        assert_non_null(v);
        assert_false(done); /* nothing after the last line */
        const char *piece = json_string_value(json_object_get(v, "response"));
        if (piece != NULL)
            memcpy(text + strlen(text), piece, strlen(piece) + 1);
        if (json_is_true(json_object_get(v, "done"))) {
            done = true;
            assert_int_equal(json_integer_value(json_object_get(v, "eval_count")),
                             json_integer_value(json_object_get(at, "eval_count")));
        }
        json_decref(v);
        line = nl + 1;
    }
    assert_true(done);
    assert_string_equal(text, json_string_value(json_object_get(at, "response")));
    free(text);
    serving_reply_free(&r);
    json_decref(at);
}

static void test_model_lists_name_the_model_and_its_nodes(void **state)
{
    char url[128];
    snprintf(url, sizeof url, "%s/v1/models", c->http_url);
    long status = 0;
    json_t *v = h_get_json(url, &status);
    assert_int_equal(status, 200);
    assert_string_equal(json_string_value(json_object_get(v, "object")), "list");
    json_t *m = json_array_get(json_object_get(v, "data"), 0);
    assert_string_equal(json_string_value(json_object_get(m, "id")), SERVING_MODEL);
    assert_string_equal(json_string_value(json_object_get(m, "object")), "model");
    assert_int_equal(json_array_size(json_object_get(m, "nodes")), 2);
    json_decref(v);

    snprintf(url, sizeof url, "%s/api/tags", c->http_url);
    v = h_get_json(url, &status);
    assert_int_equal(status, 200);
    m = json_array_get(json_object_get(v, "models"), 0);
    assert_string_equal(json_string_value(json_object_get(m, "name")), SERVING_MODEL);
    assert_int_equal(json_array_size(json_object_get(m, "nodes")), 2);
    /* The details an agent reads from the GGUF, as the agent gives them. */
    char direct_url[128];
    snprintf(direct_url, sizeof direct_url, "%s/api/tags", direct[0].base);
    json_t *at = h_get_json(direct_url, &status);
    assert_int_equal(status, 200);
    json_t *want =
        json_object_get(json_array_get(json_object_get(at, "models"), 0), "details");
    assert_non_null(want);
    assert_true(json_equal(json_object_get(m, "details"), want));
    json_decref(at);
    json_decref(v);
}

static bool fleet_has_loaded(void *arg)
{
    json_t **ps = arg;
    char url[128];
    snprintf(url, sizeof url, "%s/api/ps", c->http_url);
    json_decref(*ps);
    *ps = h_get_json(url, NULL);
    return json_array_size(json_object_get(*ps, "models")) > 0;
}

/* /api/show, /api/ps and /api/version in Ollama's shapes, with the agent's
 * details of the model and where it lives. */
static void test_ollama_info_endpoints_speak_for_the_fleet(void **state)
{
    const char *show = "{\"model\":\"" SERVING_MODEL "\"}";
    json_t *via = post_json(&front, "/api/show", show);
    json_t *at = post_json(&direct[0], "/api/show", show);
    assert_true(
        json_equal(json_object_get(via, "details"), json_object_get(at, "details")));
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(via, "model_info"), "general.architecture")),
                        json_string_value(json_object_get(
                            json_object_get(at, "model_info"), "general.architecture")));
    assert_int_equal(json_array_size(json_object_get(via, "nodes")), 2);
    json_decref(via);
    json_decref(at);

    serving_reply r = post(&front, "/api/show", NULL, "{\"model\":\"no-such-model\"}");
    assert_int_equal(r.status, 404);
    assert_non_null(strstr(r.body, "'no-such-model'"));
    serving_reply_free(&r);
    r = post(&front, "/api/show", NULL, "{\"modle\":\"stories\"}");
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "'modle'"));
    serving_reply_free(&r);

    /* Loaded by the generations above (heartbeats tell the coordinator):
     * each entry names its node. */
    json_t *ps = NULL;
    if (!h_wait_for(fleet_has_loaded, &ps, WAIT_MS))
        fail_msg("GET /api/ps never listed a loaded model");
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(ps, "models"), i, m)
    {
        assert_string_equal(json_string_value(json_object_get(m, "name")), SERVING_MODEL);
        const char *node = json_string_value(json_object_get(m, "node"));
        assert_true(strcmp(node, "agent0") == 0 || strcmp(node, "agent1") == 0);
        assert_true(json_integer_value(json_object_get(m, "size")) > 0);
        assert_non_null(json_object_get(m, "details"));
    }
    json_decref(ps);

    char url[128];
    long status = 0;
    snprintf(url, sizeof url, "%s/api/version", c->http_url);
    json_t *vv = h_get_json(url, &status);
    snprintf(url, sizeof url, "%s/api/version", direct[0].base);
    json_t *va = h_get_json(url, NULL);
    assert_int_equal(status, 200);
    assert_true(json_equal(vv, va));
    json_decref(vv);
    json_decref(va);
}

static void test_errors_come_in_each_api_s_shape(void **state)
{
    /* An unknown model: 404 naming it. */
    serving_reply r =
        post(&front, "/v1/chat/completions", NULL,
             "{\"model\":\"no-such-model\",\"messages\":[{\"role\":\"user\","
             "\"content\":\"hi\"}]}");
    assert_int_equal(r.status, 404);
    json_t *v = json_loads(r.body, 0, NULL);
    const char *msg = str_at(v, "error", -1, NULL, "message");
    assert_non_null(msg);
    assert_non_null(strstr(msg, "no-such-model"));
    assert_string_equal(str_at(v, "error", -1, NULL, "code"), "model_not_found");
    json_decref(v);
    serving_reply_free(&r);

    r = post(&front, "/api/generate", NULL,
             "{\"model\":\"no-such-model\",\"prompt\":\"hi\"}");
    assert_int_equal(r.status, 404);
    v = json_loads(r.body, 0, NULL);
    assert_true(json_is_string(json_object_get(v, "error")));
    assert_non_null(
        strstr(json_string_value(json_object_get(v, "error")), "no-such-model"));
    json_decref(v);
    serving_reply_free(&r);

    /* A malformed body: 400, the same sentence the agent gives. */
    const char *paths[] = {"/v1/completions", "/api/chat"};
    for (int i = 0; i < 2; i++) {
        serving_reply via = post(&front, paths[i], NULL, "{\"model\":");
        serving_reply at = post(&direct[0], paths[i], NULL, "{\"model\":");
        assert_int_equal(via.status, 400);
        assert_int_equal(at.status, 400);
        assert_string_equal(via.body, at.body);
        v = json_loads(via.body, 0, NULL);
        if (i == 0)
            assert_true(json_is_object(json_object_get(v, "error")));
        else
            assert_true(json_is_string(json_object_get(v, "error")));
        json_decref(v);
        serving_reply_free(&via);
        serving_reply_free(&at);
    }
    /* An unknown field, refused by the same reader as the agent's. */
    serving_reply via =
        post(&front, "/v1/completions", NULL, COMPLETION ",\"tempreature\":1}");
    serving_reply at =
        post(&direct[1], "/v1/completions", NULL, COMPLETION ",\"tempreature\":1}");
    assert_int_equal(via.status, 400);
    assert_string_equal(via.body, at.body);
    serving_reply_free(&via);
    serving_reply_free(&at);
}

/* A completion with X-Session-Id session and X-Request-Id id through the
 * coordinator; the agent that served it. */
static int session_request(const char *session, const char *id)
{
    char h1[96], h2[96];
    snprintf(h1, sizeof h1, "X-Session-Id: %s", session);
    snprintf(h2, sizeof h2, "X-Request-Id: %s", id);
    const char *headers[] = {h1, h2, NULL};
    serving_reply r =
        post(&front, "/v1/completions", headers,
             "{\"model\":\"stories\",\"prompt\":\"Once\",\"max_tokens\":4}");
    assert_int_equal(r.status, 200);
    assert_string_equal(r.request_id, id);
    serving_reply_free(&r);
    int agent = cluster_wait_served_by(c, id, WAIT_MS);
    if (agent < 0)
        fail_msg("no agent logged request %s", id);
    return agent;
}

static void test_a_session_keeps_to_one_node_and_fails_over(void **state)
{
    for (int i = 0; i < 2; i++)
        json_decref(post_json(&direct[i], "/v1/completions",
                              "{\"model\":\"stories\",\"prompt\":\"Once\","
                              "\"max_tokens\":1}"));
    /* Both loaded, so the router's tiers (loaded before stored) cannot
     * change under the session while the test runs. */
    if (!cluster_wait_model(c, SERVING_MODEL, "loaded", 2, WAIT_MS))
        fail_msg("the coordinator never saw the model loaded on both agents");
    int first = session_request("conversation-42", "pin-0");
    for (int i = 1; i < 6; i++) {
        char id[32];
        snprintf(id, sizeof id, "pin-%d", i);
        assert_int_equal(session_request("conversation-42", id), first);
    }
    /* Its node dies without a word; once the coordinator misses its
     * heartbeats, the key moves to the other. (Sent at once, the request
     * would wait for the data plane's Infer timeout, 30 s, on the dead node
     * before the relay retried it elsewhere.) */
    h_signal(c->agents[first].proc, SIGKILL);
    assert_true(h_wait_exit(c->agents[first].proc, 10000) >= 0);
    assert_true(cluster_wait_agent_state(c, first, "suspect", WAIT_MS) ||
                cluster_wait_agent_state(c, first, "down", WAIT_MS));
    assert_int_equal(session_request("conversation-42", "pin-after"), 1 - first);
    assert_int_equal(session_request("conversation-42", "pin-after-2"), 1 - first);
}

int main(void)
{
    model_file = test_shared_model("stories260K.gguf");
    if (model_file == NULL)
        return 77;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole_answers_equal_an_agent_s),
        cmocka_unit_test(test_sse_streams_equal_an_agent_s),
        cmocka_unit_test(test_logprobs_equal_an_agent_s),
        cmocka_unit_test(test_ollama_ndjson_equals_an_agent_s),
        cmocka_unit_test(test_model_lists_name_the_model_and_its_nodes),
        cmocka_unit_test(test_ollama_info_endpoints_speak_for_the_fleet),
        cmocka_unit_test(test_errors_come_in_each_api_s_shape),
        cmocka_unit_test(test_a_session_keeps_to_one_node_and_fails_over),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
