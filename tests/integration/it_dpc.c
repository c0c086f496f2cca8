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
 *
 * Log probabilities: the tokens a stream brings (streamed and whole) are
 * those of the agent's own /v1/completions with logprobs, in order, once
 * each; a stand-in node that answers malformed ones (NaN, infinity, too
 * many alternatives or tokens, an overlong piece, ones nobody asked for)
 * is the node's failure, 502.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <math.h>
#include <nng/nng.h>
#include <pthread.h>
#include <signal.h>

#include <cmocka.h>

#include "common/alloc.h"
#include "common/log.h"
#include "common/nng_util.h"
#include "coordinator/dataplane/dataplane_client.h"
#include "coordinator/router/router.h"
#include "proto/wire.h"
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

/* ---- log probabilities -------------------------------------------------------- */

#define LP_TOKENS 16
#define LP_TOP    3

/* The tokens a stream brought until done. */
typedef struct lp_result {
    result res;
    size_t n;
    char piece[4 * LP_TOKENS][64];
    float logprob[4 * LP_TOKENS];
    size_t n_top[4 * LP_TOKENS];
    char top0[4 * LP_TOKENS][64];
    float top0_logprob[4 * LP_TOKENS];
    char pieces[8192]; /* every piece, joined */
    size_t pieces_len;
} lp_result;

/* Whether two answers' log probabilities agree. They may differ in their
 * last digits: where the agent reuses a cached prefix of the prompt, the
 * prompt's last token is computed alone rather than in the prefill, which
 * rounds differently, and the difference carries on to later tokens. */
static bool near(double a, double b)
{
    return fabs(a - b) <= 1e-3;
}

static void lp_run(dpc_request *req, lp_result *out)
{
    memset(out, 0, sizeof *out);
    dpc_stream *s = infer_ok(req);
    dpc_error e;
    int64_t deadline = h_now_ms() + 4 * TIMEOUT_MS;
    for (;;) {
        dpc_chunk c;
        if (dpc_next(s, POLL_MS, &c, &e) != 0)
            fail_msg("the stream failed: %s", e.err.msg);
        assert_true(out->res.len + c.len < sizeof out->res.text);
        memcpy(out->res.text + out->res.len, c.text, c.len);
        out->res.len += c.len;
        for (size_t i = 0; i < c.n_tokens; i++) {
            const dpc_token *t = &c.tokens[i];
            assert_true(out->n < 4 * LP_TOKENS);
            assert_true(t->len < sizeof out->piece[0]);
            memcpy(out->piece[out->n], t->text, t->len);
            assert_true(out->pieces_len + t->len < sizeof out->pieces);
            memcpy(out->pieces + out->pieces_len, t->text, t->len);
            out->pieces_len += t->len;
            out->logprob[out->n] = t->logprob;
            out->n_top[out->n] = t->n_top;
            if (t->n_top > 0) {
                assert_true(t->top[0].len < sizeof out->top0[0]);
                memcpy(out->top0[out->n], t->top[0].text, t->top[0].len);
                out->top0_logprob[out->n] = t->top[0].logprob;
            }
            out->n++;
        }
        if (c.done) {
            out->res.completion_tokens = c.completion_tokens;
            break;
        }
        assert_true(h_now_ms() < deadline);
    }
    dpc_stream_free(s);
}

static void test_log_probabilities(void **state)
{
    (void)state;
    dpc_request req = completion(PROMPT, LP_TOKENS);
    req.top_logprobs = LP_TOP;
    lp_result streamed, whole, alone;
    lp_run(&req, &streamed);
    assert_int_equal(streamed.res.completion_tokens, LP_TOKENS);
    assert_int_equal(streamed.n, LP_TOKENS); /* each token once */
    assert_int_equal(streamed.pieces_len, streamed.res.len);
    assert_memory_equal(streamed.pieces, streamed.res.text, streamed.res.len);
    for (size_t i = 0; i < streamed.n; i++) {
        assert_int_equal(streamed.n_top[i], LP_TOP);
        /* greedy: the token is the most likely alternative */
        assert_string_equal(streamed.top0[i], streamed.piece[i]);
        assert_true(streamed.top0_logprob[i] == streamed.logprob[i]);
        assert_true(streamed.logprob[i] <= 0 && isfinite(streamed.logprob[i]));
    }

    /* read whole, or each token alone: the same tokens */
    req.whole = true;
    lp_run(&req, &whole);
    req.whole = false;
    req.top_logprobs = -1;
    lp_run(&req, &alone);
    assert_int_equal(whole.n, LP_TOKENS);
    assert_int_equal(alone.n, LP_TOKENS);
    for (size_t i = 0; i < LP_TOKENS; i++) {
        assert_string_equal(whole.piece[i], streamed.piece[i]);
        assert_true(near(whole.logprob[i], streamed.logprob[i]));
        assert_int_equal(whole.n_top[i], LP_TOP);
        assert_string_equal(alone.piece[i], streamed.piece[i]);
        assert_true(near(alone.logprob[i], streamed.logprob[i]));
        assert_int_equal(alone.n_top[i], 0);
    }

    /* the agent's own HTTP answer with the same sampling */
    char body[512];
    snprintf(body, sizeof body,
             "{\"model\":\"" SERVING_MODEL "\",\"prompt\":\"" PROMPT "\","
             "\"max_tokens\":%d,\"temperature\":0,\"top_k\":0,\"top_p\":1,"
             "\"min_p\":0,\"logprobs\":%d}",
             LP_TOKENS, LP_TOP);
    json_t *v = serving_post_ok(&agent, "/v1/completions", body);
    json_t *lp =
        json_object_get(json_array_get(json_object_get(v, "choices"), 0), "logprobs");
    json_t *tokens = json_object_get(lp, "tokens");
    json_t *values = json_object_get(lp, "token_logprobs");
    assert_int_equal(json_array_size(tokens), LP_TOKENS);
    for (size_t i = 0; i < LP_TOKENS; i++) {
        assert_string_equal(json_string_value(json_array_get(tokens, i)),
                            streamed.piece[i]);
        assert_true(
            near(json_real_value(json_array_get(values, i)), streamed.logprob[i]));
    }
    json_decref(v);

    /* more alternatives than the wire carries: refused before it */
    req.top_logprobs = 21;
    dpc_stream *s = NULL;
    dpc_error e;
    assert_int_equal(dpc_infer(pool, NODE, agent.listen, &req, &s, &e), MLX_EINVAL);
    assert_int_equal(e.failure, DPC_REFUSED);
    assert_int_equal(e.status, 400);
    assert_non_null(strstr(e.err.msg, "top_logprobs"));
}

/* A stand-in node on a REP socket: it accepts every Infer with a first
 * chunk whose log probabilities are spoiled as fake_mode says, and ends
 * every Next. */
enum fake_mode {
    FAKE_GOOD,
    FAKE_NAN,
    FAKE_INFINITE_ALTERNATIVE,
    FAKE_TOO_MANY_ALTERNATIVES,
    FAKE_LONG_PIECE,
    FAKE_TOO_MANY_TOKENS,
    FAKE_MODES,
};

static struct {
    nng_socket sock;
    pthread_t thread;
    char url[64];
    enum fake_mode mode; /* set before each request, read by the thread */
} fake;

enum { FAKE_TOKENS = MLX_MAX_CHUNK_TOKENS + 1 };

static void *fake_serve(void *arg)
{
    (void)arg;
    static Fleet__TokenLogprob toks[FAKE_TOKENS];
    static Fleet__TokenLogprob *ptrs[FAKE_TOKENS];
    static Fleet__TokenAlternative alts[LP_TOP + 1];
    static Fleet__TokenAlternative *alt_ptrs[LP_TOP + 1];
    static char long_piece[MLX_MAX_TOKEN_PIECE + 1];
    memset(long_piece, 'a', sizeof long_piece);
    for (;;) {
        nng_msg *msg;
        if (nng_recvmsg(fake.sock, &msg, 0) != 0)
            break; /* closed */
        wire_envelope *req = NULL;
        int rc = wire_unpack(nng_msg_body(msg), nng_msg_len(msg), MLX_MAX_DATA_MSG, &req,
                             NULL);
        nng_msg_free(msg);
        if (rc != 0)
            break;
        for (size_t i = 0; i <= LP_TOP; i++) {
            fleet__token_alternative__init(&alts[i]);
            alts[i].text.data = (uint8_t *)"b";
            alts[i].text.len = 1;
            alts[i].logprob = -1.0f - (float)i;
            alt_ptrs[i] = &alts[i];
        }
        for (size_t i = 0; i < FAKE_TOKENS; i++) {
            fleet__token_logprob__init(&toks[i]);
            toks[i].text.data = (uint8_t *)(i % 2 ? "i" : "H");
            toks[i].text.len = 1;
            toks[i].logprob = -0.5f;
            toks[i].n_top = LP_TOP;
            toks[i].top = alt_ptrs;
            ptrs[i] = &toks[i];
        }
        Fleet__TokenChunk chunk = FLEET__TOKEN_CHUNK__INIT;
        chunk.text.data = (uint8_t *)"Hi";
        chunk.text.len = 2;
        chunk.logprobs = ptrs;
        chunk.n_logprobs = 2;
        switch (fake.mode) {
        case FAKE_GOOD:
        case FAKE_MODES:
            break;
        case FAKE_NAN:
            toks[1].logprob = NAN;
            break;
        case FAKE_INFINITE_ALTERNATIVE:
            alts[2].logprob = INFINITY;
            break;
        case FAKE_TOO_MANY_ALTERNATIVES:
            toks[0].n_top = LP_TOP + 1;
            break;
        case FAKE_LONG_PIECE:
            toks[1].text.data = (uint8_t *)long_piece;
            toks[1].text.len = sizeof long_piece;
            break;
        case FAKE_TOO_MANY_TOKENS:
            chunk.n_logprobs = FAKE_TOKENS;
            break;
        }
        Fleet__InferAccepted accepted = FLEET__INFER_ACCEPTED__INIT;
        Fleet__Ack ack = FLEET__ACK__INIT;
        wire_envelope reply = FLEET__ENVELOPE__INIT;
        reply.request_id = req->request_id;
        reply.node_id = (char *)"fake-node";
        if (req->body_case == FLEET__ENVELOPE__BODY_INFER) {
            accepted.prompt_tokens = 1;
            accepted.first = &chunk;
            reply.body_case = FLEET__ENVELOPE__BODY_INFER_ACCEPTED;
            reply.infer_accepted = &accepted;
        } else if (req->body_case == FLEET__ENVELOPE__BODY_NEXT) {
            chunk.text.len = 0;
            chunk.n_logprobs = 0;
            chunk.done = true;
            chunk.finish_reason = (char *)"stop";
            chunk.completion_tokens = 2;
            reply.body_case = FLEET__ENVELOPE__BODY_TOKEN_CHUNK;
            reply.token_chunk = &chunk;
        } else {
            reply.body_case = FLEET__ENVELOPE__BODY_ACK;
            reply.ack = &ack;
        }
        uint8_t *buf = NULL;
        size_t len = 0;
        rc = wire_pack(&reply, MLX_MAX_DATA_MSG, &buf, &len, NULL);
        wire_free(req);
        if (rc != 0)
            break;
        nng_msg *out;
        if (nng_msg_alloc(&out, len) == 0) {
            memcpy(nng_msg_body(out), buf, len);
            if (nng_sendmsg(fake.sock, out, 0) != 0)
                nng_msg_free(out);
        }
        mlx_free(buf);
    }
    return NULL;
}

static void test_malformed_log_probabilities_are_the_node_s_failure(void **state)
{
    (void)state;
    snprintf(fake.url, sizeof fake.url, "tcp://127.0.0.1:%d", h_free_port());
    mlx_err err;
    mlx_err_clear(&err);
    if (mlx_nng_rep_listen(fake.url, MLX_MAX_DATA_MSG, "fake", &fake.sock, &err) != 0)
        fail_msg("cannot listen: %s", err.msg);
    assert_int_equal(pthread_create(&fake.thread, NULL, fake_serve, NULL), 0);

    dpc_request req = completion(PROMPT, 4);
    req.top_logprobs = LP_TOP;
    for (int mode = FAKE_GOOD; mode < FAKE_MODES; mode++) {
        fake.mode = (enum fake_mode)mode;
        dpc_stream *s = NULL;
        dpc_error e;
        if (dpc_infer(pool, "fake-node", fake.url, &req, &s, &e) != 0)
            fail_msg("mode %d: Infer failed: %s", mode, e.err.msg);
        dpc_chunk c;
        int rc = dpc_next(s, POLL_MS, &c, &e);
        if (mode == FAKE_GOOD) {
            if (rc != 0)
                fail_msg("a well-formed chunk was refused: %s", e.err.msg);
            assert_int_equal(c.len, 2);
            assert_int_equal(c.n_tokens, 2);
            assert_int_equal(c.tokens[1].len, 1);
            assert_memory_equal(c.tokens[1].text, "i", 1);
            assert_true(c.tokens[1].logprob == -0.5f);
            assert_int_equal(c.tokens[1].n_top, LP_TOP);
            assert_true(c.tokens[1].top[2].logprob == -3.0f);
            assert_int_equal(dpc_next(s, POLL_MS, &c, &e), 0);
            assert_true(c.done);
            assert_int_equal(c.n_tokens, 0);
        } else {
            if (rc == 0)
                fail_msg("mode %d: a malformed chunk was accepted", mode);
            assert_int_equal(e.failure, DPC_NODE_FAILED);
            assert_int_equal(e.status, 502);
            if (strstr(e.err.msg, "log probabilit") == NULL)
                fail_msg("mode %d: '%s' does not say what was wrong", mode, e.err.msg);
        }
        dpc_stream_free(s);
    }

    /* tokens nobody asked for */
    fake.mode = FAKE_GOOD;
    req.top_logprobs = 0;
    dpc_stream *s = NULL;
    dpc_error e;
    assert_int_equal(dpc_infer(pool, "fake-node", fake.url, &req, &s, &e), 0);
    dpc_chunk c;
    assert_int_not_equal(dpc_next(s, POLL_MS, &c, &e), 0);
    assert_int_equal(e.failure, DPC_NODE_FAILED);
    assert_non_null(strstr(e.err.msg, "asked for none"));
    dpc_stream_free(s);

    dpc_forget(pool, "fake-node");
    nng_close(fake.sock);
    pthread_join(fake.thread, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {

        cmocka_unit_test(test_greedy_text),
        cmocka_unit_test(test_sixteen_concurrent_streams),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_refused_requests_are_not_retried),
        cmocka_unit_test(test_load_and_unload),
        cmocka_unit_test(test_log_probabilities),
        cmocka_unit_test(test_malformed_log_probabilities_are_the_node_s_failure),
        cmocka_unit_test(test_killed_agent_fails_fast_and_the_pool_recovers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
