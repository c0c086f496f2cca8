/*
 * it_dpc.c — the coordinator's data-plane client (coordinator/dataplane)
 * against a real `mlx-agent serve` with stories260K.
 *
 * A generation through the pool gives llama.cpp's greedy text (the
 * reference, not ourselves) with the right usage; sixteen streams from
 * sixteen threads share one pool and one connection; Cancel ends a stream
 * early as "cancelled"; an unknown model and a bad request are refused
 * (4xx, never retried) while the agent goes on. A load (dpc_load) takes
 * time once, none when the model is loaded, and an unload none; an unknown
 * or bad model is refused, a node nobody answers for is its failure.
 * Last, the agent is killed with SIGKILL mid-generation: the waiting poll
 * and a new Infer both end as the node's failure (retryable) within their
 * timeouts, and once the agent is back on the same address the same pool
 * serves again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <signal.h>

#include <cmocka.h>

#include "common/log.h"
#include "coordinator/dataplane/dataplane_client.h"
#include "coordinator/router/router.h"
#include "tests/integration/serving.h"

/* A sanitized agent loads and generates far slower than a release one. */
#define TIMEOUT_MS    30000
#define POLL_MS       10000
#define GREEDY_TOKENS 48
#define PROMPT        "Once upon a time"
#define NODE          "node-under-test"

static serving agent;
static dpc_pool *pool;

static const dpc_sampling greedy = {.temperature = 0, .top_p = 1, .repeat_penalty = 1};

static int setup(void **state)
{
    (void)state;
    mlx_log_set_level(MLX_LOG_WARN);
    const char *extra[] = {"--parallel", "4", NULL};
    if (serving_start(&agent, "dpc", extra) != 0)
        return -1;
    dpc_options opt = {.timeout_ms = TIMEOUT_MS};
    return dpc_open(&opt, &pool, NULL) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    dpc_close(pool);
    return serving_stop(&agent) == 0 ? 0 : -1;
}

/* What a stream gave until done. */
typedef struct result {
    char text[8192];
    size_t len;
    uint32_t prompt_tokens, completion_tokens;
    char finish[16];
    int64_t eval_ns;
} result;

/* Polls s until done; 0, or the failing call's code with e filled. */
static int run_to_end(dpc_stream *s, result *res, dpc_error *e)
{
    memset(res, 0, sizeof *res);
    int64_t deadline = h_now_ms() + 4 * TIMEOUT_MS;
    for (;;) {
        dpc_chunk c;
        int rc = dpc_next(s, POLL_MS, &c, e);
        if (rc != 0)
            return rc;
        if (res->len + c.len >= sizeof res->text)
            return MLX_ETOOBIG;
        memcpy(res->text + res->len, c.text, c.len);
        res->len += c.len;
        res->text[res->len] = '\0';
        if (c.done) {
            res->prompt_tokens = c.prompt_tokens;
            res->completion_tokens = c.completion_tokens;
            res->eval_ns = c.eval_ns;
            snprintf(res->finish, sizeof res->finish, "%s", c.finish_reason);
            return 0;
        }
        if (h_now_ms() > deadline)
            return MLX_ETIMEDOUT;
    }
}

static dpc_request completion(const char *prompt, int32_t max_tokens)
{
    dpc_request r = {.model = SERVING_MODEL,
                     .prompt = prompt,
                     .max_tokens = max_tokens,
                     .sampling = &greedy};
    return r;
}

static dpc_stream *infer_ok(const dpc_request *req)
{
    dpc_stream *s = NULL;
    dpc_error e;
    int rc = dpc_infer(pool, NODE, agent.listen, req, &s, &e);
    if (rc != 0)
        fail_msg("dpc_infer failed (%s, %d): %s", dpc_failure_name(e.failure), e.status,
                 e.err.msg);
    assert_non_null(s);
    return s;
}

static void test_greedy_text(void **state)
{
    (void)state;
    dpc_request req = completion(PROMPT, GREEDY_TOKENS);
    dpc_stream *s = infer_ok(&req);
    assert_int_equal(strlen(dpc_stream_id(s)), 32); /* generated */
    assert_string_equal(dpc_stream_node(s), NODE);
    result res;
    dpc_error e;
    if (run_to_end(s, &res, &e) != 0)
        fail_msg("the stream failed: %s", e.err.msg);
    assert_string_equal(res.text, serving_greedy_text(PROMPT));
    assert_int_equal(res.prompt_tokens, 5);
    assert_int_equal(res.completion_tokens, GREEDY_TOKENS);
    assert_string_equal(res.finish, "length");
    assert_true(res.eval_ns > 0);
    /* over: no more polls */
    dpc_chunk c;
    assert_int_equal(dpc_next(s, POLL_MS, &c, &e), MLX_ECLOSED);
    dpc_stream_free(s);

    /* read whole: one chunk, all the text and the end */
    req.whole = true;
    s = infer_ok(&req);
    assert_int_equal(dpc_next(s, POLL_MS, &c, &e), 0);
    assert_true(c.done);
    assert_int_equal(c.len, strlen(serving_greedy_text(PROMPT)));
    assert_memory_equal(c.text, serving_greedy_text(PROMPT), c.len);
    assert_int_equal(c.completion_tokens, GREEDY_TOKENS);
    dpc_stream_free(s);

    /* a chat, and the caller's own request id */
    dpc_message msgs[] = {{"user", "Tell me a story."}};
    dpc_request chat = {.request_id = "chat-1",
                        .model = SERVING_MODEL,
                        .messages = msgs,
                        .n_messages = 1,
                        .max_tokens = 8,
                        .sampling = &greedy};
    s = infer_ok(&chat);
    assert_string_equal(dpc_stream_id(s), "chat-1");
    assert_int_equal(run_to_end(s, &res, &e), 0);
    assert_int_equal(res.completion_tokens, 8);
    dpc_stream_free(s);
    assert_int_equal(dpc_connections(pool), 1);
}

/* ---- sixteen at once ------------------------------------------------------- */

enum { STREAMS = 16 };
static const char *const prompts[] = {"Once upon a time", "The little dog",
                                      "Lily and Tom went to the park."};
static const uint32_t prompt_tokens[] = {5, 5, 13};

typedef struct worker {
    int i;
    pthread_t thread;
    result res;
    int rc;
    dpc_error e;
} worker;

static void *run_worker(void *arg)
{
    worker *w = arg;
    dpc_request req = completion(prompts[w->i % 3], GREEDY_TOKENS);
    dpc_stream *s = NULL;
    w->rc = dpc_infer(pool, NODE, agent.listen, &req, &s, &w->e);
    if (w->rc == 0)
        w->rc = run_to_end(s, &w->res, &w->e);
    dpc_stream_free(s);
    return NULL;
}

static void test_sixteen_concurrent_streams(void **state)
{
    (void)state;
    static worker w[STREAMS];
    for (int i = 0; i < STREAMS; i++) {
        w[i].i = i;
        assert_int_equal(pthread_create(&w[i].thread, NULL, run_worker, &w[i]), 0);
    }
    for (int i = 0; i < STREAMS; i++)
        pthread_join(w[i].thread, NULL);
    for (int i = 0; i < STREAMS; i++) {
        if (w[i].rc != 0)
            fail_msg("stream %d failed (%s): %s", i, dpc_failure_name(w[i].e.failure),
                     w[i].e.err.msg);
        /* The reference decodes the generated ids on their own, which drops
         * the first piece's leading space; after a prompt it is real (see
         * it_run.c). */
        const char *want = serving_greedy_text(prompts[i % 3]);
        const char *got =
            w[i].res.text[0] == ' ' && want[0] != ' ' ? w[i].res.text + 1 : w[i].res.text;
        assert_string_equal(got, want);
        assert_int_equal(w[i].res.completion_tokens, GREEDY_TOKENS);
        assert_int_equal(w[i].res.prompt_tokens, prompt_tokens[i % 3]);
    }
    assert_int_equal(dpc_connections(pool), 1); /* one connection carried them all */
}

static void test_cancel(void **state)
{
    (void)state;
    dpc_request req = completion(PROMPT, 400);
    dpc_stream *s = infer_ok(&req);
    dpc_chunk c;
    dpc_error e;
    assert_int_equal(dpc_next(s, POLL_MS, &c, &e), 0);
    dpc_cancel(s);
    result res;
    assert_int_equal(run_to_end(s, &res, &e), 0);
    assert_string_equal(res.finish, "cancelled");
    if (res.completion_tokens >= 400)
        fail_msg("the generation went on to %u tokens after Cancel",
                 res.completion_tokens);
    dpc_cancel(s); /* again, when over: harmless */
    dpc_stream_free(s);
}

static void test_refused_requests_are_not_retried(void **state)
{
    (void)state;
    dpc_request req = completion(PROMPT, 4);
    req.model = "no-such-model";
    dpc_stream *s = (dpc_stream *)1;
    dpc_error e;
    int rc = dpc_infer(pool, NODE, agent.listen, &req, &s, &e);
    assert_int_equal(rc, MLX_ENOENT);
    assert_null(s);
    assert_int_equal(e.failure, DPC_REFUSED);
    assert_int_equal(e.status, 404);
    assert_non_null(strstr(e.err.msg, "no-such-model"));
    assert_false(router_may_retry(1, ROUTER_FAILURE_REQUEST, ROUTER_NOTHING_SENT));

    /* values the agent refuses */
    dpc_sampling cold = greedy;
    cold.temperature = -1;
    req = completion(PROMPT, 4);
    req.sampling = &cold;
    assert_int_equal(dpc_infer(pool, NODE, agent.listen, &req, &s, &e), MLX_EINVAL);
    assert_int_equal(e.failure, DPC_REFUSED);
    assert_int_equal(e.status, 400);
    assert_non_null(strstr(e.err.msg, "temperature"));

    /* refused before the wire */
    req = completion(PROMPT, 4);
    req.model = "";
    assert_int_equal(dpc_infer(pool, NODE, agent.listen, &req, &s, &e), MLX_EINVAL);
    assert_int_equal(e.failure, DPC_REFUSED);
    assert_int_equal(e.status, 400);
    req = completion(PROMPT, 4);
    req.request_id = "has a space";
    assert_int_equal(dpc_infer(pool, NODE, agent.listen, &req, &s, &e), MLX_EINVAL);
    assert_int_equal(e.failure, DPC_REFUSED);

    /* an id already running on the node (long enough not to end within its
     * Infer): 409 */
    req = completion(PROMPT, 400);
    req.request_id = "same-id";
    dpc_stream *first = infer_ok(&req);
    assert_int_equal(dpc_infer(pool, NODE, agent.listen, &req, &s, &e), MLX_EEXIST);
    assert_int_equal(e.failure, DPC_REFUSED);
    assert_int_equal(e.status, 409);
    dpc_cancel(first);
    result res;
    assert_int_equal(run_to_end(first, &res, &e), 0);
    assert_string_equal(res.finish, "cancelled");
    dpc_stream_free(first);
    assert_true(serving_healthy(&agent));
}

/* ---- loads ------------------------------------------------------------------- */

/* dpc_load; its code, with *ns the load time and e the failure. */
static int load(const char *node, const char *address, const char *model,
                int64_t keep_alive_ms, int64_t *ns, dpc_error *e)
{
    *ns = -1;
    return dpc_load(pool, node, address, model, keep_alive_ms, ns, e);
}

static void test_load_and_unload(void **state)
{
    (void)state;
    int64_t ns;
    dpc_error e;
    /* Loaded by the generations above: -1 unloads it (no load time)... */
    assert_int_equal(load(NODE, agent.listen, SERVING_MODEL, -1, &ns, &e), 0);
    assert_int_equal(ns, 0);
    /* ...so a load takes time, and the next finds it loaded. */
    if (load(NODE, agent.listen, SERVING_MODEL, 0, &ns, &e) != 0)
        fail_msg("dpc_load failed (%s, %d): %s", dpc_failure_name(e.failure), e.status,
                 e.err.msg);
    assert_true(ns > 0);
    assert_int_equal(load(NODE, agent.listen, SERVING_MODEL, 300000, &ns, &e), 0);
    assert_int_equal(ns, 0);

    /* The node's refusals: the request's fault, never retried. */
    assert_int_equal(load(NODE, agent.listen, "no-such-model", 0, &ns, &e), MLX_ENOENT);
    assert_int_equal(e.failure, DPC_REFUSED);
    assert_int_equal(e.status, 404);
    assert_non_null(strstr(e.err.msg, "no-such-model"));
    assert_int_equal(ns, 0);
    assert_int_equal(load(NODE, agent.listen, "bad\x01name", 0, &ns, &e), MLX_EINVAL);
    assert_int_equal(e.failure, DPC_REFUSED);
    assert_int_equal(e.status, 400);
    assert_non_null(strstr(e.err.msg, "model name"));
    /* Refused before the wire. */
    assert_int_equal(load(NODE, agent.listen, "", 0, &ns, &e), MLX_EINVAL);
    assert_int_equal(e.failure, DPC_REFUSED);
    assert_int_equal(e.status, 400);
    assert_int_equal(load(NODE, agent.listen, SERVING_MODEL, -2, &ns, &e), MLX_EINVAL);
    assert_int_equal(e.failure, DPC_REFUSED);
    assert_non_null(strstr(e.err.msg, "keep_alive_ms"));

    /* Nobody listening: the node's failure, for the relay to try another. */
    char nobody[48];
    snprintf(nobody, sizeof nobody, "tcp://127.0.0.1:%d", h_free_port());
    assert_int_not_equal(load("node-nobody", nobody, SERVING_MODEL, 0, &ns, &e), 0);
    assert_int_equal(e.failure, DPC_NODE_FAILED);
    assert_int_equal(e.status, 502);
    dpc_forget(pool, "node-nobody");
    assert_true(serving_healthy(&agent));
}

/* ---- a killed agent --------------------------------------------------------- */

static bool agent_up(void *arg)
{
    (void)arg;
    return serving_healthy(&agent);
}

/* Starts the agent again with the same data, ports and flags. */
static void restart_agent(void)
{
    char http[32];
    snprintf(http, sizeof http, "127.0.0.1:%d", agent.http_port);
    const char *args[] = {"serve", "--data",     agent.data,   "--http",
                          http,    "--listen",   agent.listen, "--ollama",
                          "",      "--parallel", "4",          NULL};
    h_stop(agent.agent); /* reaped already: only frees it */
    agent.agent = h_spawn("agent", agent.dir, "mlx-agent", args);
    if (!h_wait_for(agent_up, NULL, TIMEOUT_MS))
        fail_msg("the agent did not come back on %s", agent.listen);
}

static void test_killed_agent_fails_fast_and_the_pool_recovers(void **state)
{
    (void)state;
    enum { SHORT_MS = 3000 };
    dpc_pool *quick;
    dpc_options opt = {.timeout_ms = SHORT_MS, .cancel_timeout_ms = 500};
    assert_int_equal(dpc_open(&opt, &quick, NULL), 0);
    dpc_request req = completion(PROMPT, 2000);
    dpc_stream *s = NULL;
    dpc_error e;
    assert_int_equal(dpc_infer(quick, NODE, agent.listen, &req, &s, &e), 0);
    dpc_chunk c;
    assert_int_equal(dpc_next(s, POLL_MS, &c, &e), 0);

    h_signal(agent.agent, SIGKILL);
    assert_int_equal(h_wait_exit(agent.agent, 10000), 128 + SIGKILL);

    /* the waiting stream: the node's failure, within its timeout */
    int64_t t0 = h_now_ms();
    int rc = 0;
    while (rc == 0 && h_now_ms() - t0 < 4 * SHORT_MS)
        rc = dpc_next(s, SHORT_MS, &c, &e);
    int64_t took = h_now_ms() - t0;
    assert_true(rc != 0);
    assert_int_equal(e.failure, DPC_NODE_FAILED);
    assert_true(e.status >= 500);
    assert_true(took < SHORT_MS + 2000);
    assert_true(router_may_retry(1, ROUTER_FAILURE_NODE, ROUTER_NOTHING_SENT));
    dpc_cancel(s); /* to a dead node: gives up after its own timeout */
    dpc_stream_free(s);

    /* a new Infer to the dead node: the same */
    t0 = h_now_ms();
    req = completion(PROMPT, 4);
    rc = dpc_infer(quick, NODE, agent.listen, &req, &s, &e);
    took = h_now_ms() - t0;
    assert_true(rc == MLX_ETIMEDOUT || rc == MLX_EUNREACH);
    assert_null(s);
    assert_int_equal(e.failure, DPC_NODE_FAILED);
    assert_true(took < SHORT_MS + 2000);
    assert_non_null(strstr(e.err.msg, NODE));

    /* back on the same address: both pools serve again, with no forget */
    restart_agent();
    req = completion(PROMPT, GREEDY_TOKENS);
    for (int i = 0; i < 2; i++) {
        dpc_pool *p = i == 0 ? quick : pool;
        rc = dpc_infer(p, NODE, agent.listen, &req, &s, &e);
        if (rc != 0)
            fail_msg("after the restart: %s", e.err.msg);
        result res;
        assert_int_equal(run_to_end(s, &res, &e), 0);
        assert_string_equal(res.text, serving_greedy_text(PROMPT));
        dpc_stream_free(s);
    }

    /* forgetting the node drops its connection; the next request redials */
    dpc_forget(quick, NODE);
    assert_int_equal(dpc_connections(quick), 0);
    dpc_forget(quick, "never-known");
    s = infer_ok(&req); /* on the long-lived pool */
    dpc_stream_free(s);
    rc = dpc_infer(quick, NODE, agent.listen, &req, &s, &e);
    if (rc != 0)
        fail_msg("after forgetting: %s", e.err.msg);
    assert_int_equal(dpc_connections(quick), 1);
    dpc_cancel(s);
    dpc_stream_free(s);
    dpc_close(quick);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_text),
        cmocka_unit_test(test_sixteen_concurrent_streams),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_refused_requests_are_not_retried),
        cmocka_unit_test(test_load_and_unload),
        cmocka_unit_test(test_killed_agent_fails_fast_and_the_pool_recovers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
