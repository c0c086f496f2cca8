/*
 * it_dataplane.c — the agent's data plane as the coordinator will use it: a
 * real `mlx-agent serve` with stories260K, dialed with an NNG REQ socket.
 *
 * Infer then Next until done gives llama.cpp's greedy text (the same as
 * /v1/completions) with the right usage, the first text already in
 * InferAccepted; read whole, a short answer comes in InferAccepted alone;
 * an unknown model, bad values and an unknown request id are Errors with
 * HTTP-like statuses and a sentence; Cancel stops a generation early
 * (finish "cancelled") and frees its slot;
 * several generations interleave on several contexts; random bytes, a cut
 * envelope and another major version are refused and the agent goes on.
 * LoadModel loads a model (the agent's /api/ps shows it) with its load
 * time, 0 the second time, unloads it with keep_alive_ms -1 without
 * loading what is not loaded, refuses a bad name, an unknown model and a
 * bad keep-alive, and is counted under endpoint "dataplane".
 * With top_logprobs every token comes once, in order, with its
 * alternatives, at most MLX_MAX_CHUNK_TOKENS a chunk, streamed or whole.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <nng/nng.h>

#include "common/alloc.h"
#include "common/limits.h"
#include "common/nng_util.h"
#include "common/parse.h"
#include "proto/wire.h"
#include "tests/integration/serving.h"

/* A sanitized agent loads and generates far slower than a release one. */
#define TIMEOUT_MS    30000
#define GREEDY_TOKENS 48
#define PROMPT        "Once upon a time"

static serving agent;
static nng_socket sock;

static int setup(void **state)
{
    (void)state;
    const char *extra[] = {"--parallel", "4", NULL};
    if (serving_start(&agent, "dataplane", extra) != 0)
        return -1;
    mlx_err err;
    mlx_err_clear(&err);
    if (mlx_nng_req_dial(agent.listen, MLX_MAX_DATA_MSG, TIMEOUT_MS, &sock, &err) != 0) {
        fprintf(stderr, "cannot dial %s: %s\n", agent.listen, err.msg);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    nng_close(sock);
    return serving_stop(&agent) == 0 ? 0 : -1;
}

/* ---- exchanges ------------------------------------------------------------ */

/* Sends raw bytes on ctx and returns the decoded reply (wire_free). */
static wire_envelope *exchange_raw(nng_ctx ctx, const void *data, size_t len)
{
    nng_aio *aio;
    assert_int_equal(nng_aio_alloc(&aio, NULL, NULL), 0);
    nng_aio_set_timeout(aio, TIMEOUT_MS);
    nng_msg *msg;
    assert_int_equal(nng_msg_alloc(&msg, len), 0);
    if (len > 0)
        memcpy(nng_msg_body(msg), data, len);
    nng_aio_set_msg(aio, msg);
    nng_ctx_send(ctx, aio);
    nng_aio_wait(aio);
    assert_int_equal(nng_aio_result(aio), 0);
    nng_ctx_recv(ctx, aio);
    nng_aio_wait(aio);
    int rv = nng_aio_result(aio);
    if (rv != 0)
        fail_msg("no reply from the agent's data plane: %s", nng_strerror(rv));
    nng_msg *reply = nng_aio_get_msg(aio);
    nng_aio_free(aio);
    wire_envelope *env = NULL;
    mlx_err err;
    mlx_err_clear(&err);
    int rc = wire_unpack(nng_msg_body(reply), nng_msg_len(reply), MLX_MAX_DATA_MSG, &env,
                         &err);
    nng_msg_free(reply);
    if (rc != 0)
        fail_msg("the agent's reply does not decode: %s", err.msg);
    return env;
}

static wire_envelope *exchange(nng_ctx ctx, wire_envelope *env)
{
    uint8_t *buf;
    size_t len;
    assert_int_equal(wire_pack(env, MLX_MAX_DATA_MSG, &buf, &len, NULL), 0);
    wire_envelope *reply = exchange_raw(ctx, buf, len);
    mlx_free(buf);
    assert_string_equal(reply->request_id, env->request_id);
    return reply;
}

static nng_ctx open_ctx(void)
{
    nng_ctx ctx;
    assert_int_equal(nng_ctx_open(&ctx, sock), 0);
    return ctx;
}

/* Greedy sampling, every value given. */
static Fleet__Sampling greedy(void)
{
    Fleet__Sampling s = FLEET__SAMPLING__INIT;
    s.temperature = 0;
    s.top_p = 1;
    s.repeat_penalty = 1;
    return s;
}

/* Infer, streamed or read whole; the reply (wire_free). */
static wire_envelope *infer_as(nng_ctx ctx, const char *id, const char *model,
                               const char *prompt, int32_t max_tokens, Fleet__Sampling *s,
                               bool whole)
{
    Fleet__Infer in = FLEET__INFER__INIT;
    in.model = (char *)model;
    in.prompt = (char *)prompt;
    in.max_tokens = max_tokens;
    in.sampling = s;
    in.whole = whole;
    wire_envelope env = FLEET__ENVELOPE__INIT;
    env.request_id = (char *)id;
    env.body_case = FLEET__ENVELOPE__BODY_INFER;
    env.infer = &in;
    return exchange(ctx, &env);
}

static wire_envelope *infer(nng_ctx ctx, const char *id, const char *model,
                            const char *prompt, int32_t max_tokens, Fleet__Sampling *s)
{
    return infer_as(ctx, id, model, prompt, max_tokens, s, false);
}

static wire_envelope *ask(nng_ctx ctx, const char *id, Fleet__Envelope__BodyCase body)
{
    Fleet__Next next = FLEET__NEXT__INIT;
    Fleet__Cancel cancel = FLEET__CANCEL__INIT;
    wire_envelope env = FLEET__ENVELOPE__INIT;
    env.request_id = (char *)id;
    env.body_case = body;
    if (body == FLEET__ENVELOPE__BODY_NEXT)
        env.next = &next;
    else
        env.cancel = &cancel;
    return exchange(ctx, &env);
}

static void expect_error(wire_envelope *r, Fleet__Error__Code code, uint32_t status,
                         const char *needle)
{
    if (r->body_case != FLEET__ENVELOPE__BODY_ERROR)
        fail_msg("expected an Error %d, got %s", (int)status, wire_body_name(r));
    if (r->error->code != code || r->error->status != status)
        fail_msg("expected code %d status %u, got code %d status %u: %s", (int)code,
                 status, (int)r->error->code, r->error->status, r->error->message);
    if (needle != NULL && strstr(r->error->message, needle) == NULL)
        fail_msg("error '%s' does not name '%s'", r->error->message, needle);
    assert_true(strlen(r->error->message) > 10);
    wire_free(r);
}

/* What a generation gave: InferAccepted's first chunk, then each Next's. */
typedef struct result {
    char text[8192];
    size_t len;
    uint32_t prompt_tokens, completion_tokens;
    char finish[32];
    int64_t eval_ns;
    int chunks;
    bool done;
} result;

static void add_chunk(result *res, const Fleet__TokenChunk *c)
{
    assert_false(res->done);
    assert_true(res->len + c->text.len < sizeof res->text);
    if (c->text.len > 0)
        memcpy(res->text + res->len, c->text.data, c->text.len);
    res->len += c->text.len;
    res->text[res->len] = '\0';
    res->chunks++;
    if (c->done) {
        res->done = true;
        res->prompt_tokens = c->prompt_tokens;
        res->completion_tokens = c->completion_tokens;
        res->eval_ns = c->eval_ns;
        snprintf(res->finish, sizeof res->finish, "%s", c->finish_reason);
    }
}

/* Checks r is InferAccepted and starts res (may be NULL) with its first
 * chunk. */
static void expect_accepted(wire_envelope *r, uint32_t prompt_tokens, result *res)
{
    if (r->body_case == FLEET__ENVELOPE__BODY_ERROR)
        fail_msg("Infer refused: %s", r->error->message);
    assert_int_equal(r->body_case, FLEET__ENVELOPE__BODY_INFER_ACCEPTED);
    assert_int_equal(r->infer_accepted->prompt_tokens, prompt_tokens);
    if (res != NULL) {
        memset(res, 0, sizeof *res);
        if (r->infer_accepted->first != NULL)
            add_chunk(res, r->infer_accepted->first);
    }
    wire_free(r);
}

/* One Next into res; true when it was the last. */
static bool next_into(nng_ctx ctx, const char *id, result *res)
{
    wire_envelope *r = ask(ctx, id, FLEET__ENVELOPE__BODY_NEXT);
    if (r->body_case == FLEET__ENVELOPE__BODY_ERROR)
        fail_msg("Next for %s refused: %s", id, r->error->message);
    assert_int_equal(r->body_case, FLEET__ENVELOPE__BODY_TOKEN_CHUNK);
    add_chunk(res, r->token_chunk);
    wire_free(r);
    return res->done;
}

/* Polls until done, after expect_accepted started res. */
static void run_to_end(nng_ctx ctx, const char *id, result *res)
{
    int64_t deadline = h_now_ms() + 2 * TIMEOUT_MS;
    while (!res->done && !next_into(ctx, id, res))
        assert_true(h_now_ms() < deadline);
}

/* ---- tests ---------------------------------------------------------------- */

static void test_greedy_text_and_usage(void **state)
{
    (void)state;
    nng_ctx ctx = open_ctx();
    Fleet__Sampling s = greedy();
    result res;
    expect_accepted(infer(ctx, "greedy-1", SERVING_MODEL, PROMPT, GREEDY_TOKENS, &s), 5,
                    &res);
    /* a streamed generation's answer brings its first text along */
    assert_true(res.len > 0);
    run_to_end(ctx, "greedy-1", &res);
    assert_string_equal(res.text, serving_greedy_text(PROMPT));
    assert_int_equal(res.prompt_tokens, 5);
    assert_int_equal(res.completion_tokens, GREEDY_TOKENS);
    assert_string_equal(res.finish, "length");
    assert_true(res.eval_ns > 0);

    /* the same as the HTTP API's answer */
    json_t *v = serving_post_ok(&agent, "/v1/completions",
                                "{\"model\":\"stories\",\"prompt\":\"" PROMPT "\","
                                "\"max_tokens\":48,\"temperature\":0}");
    const char *http_text = json_string_value(
        json_object_get(json_array_get(json_object_get(v, "choices"), 0), "text"));
    assert_non_null(http_text);
    assert_string_equal(res.text, http_text);
    json_decref(v);

    /* done means forgotten */
    expect_error(ask(ctx, "greedy-1", FLEET__ENVELOPE__BODY_NEXT),
                 FLEET__ERROR__CODE__NOT_FOUND, 404, "greedy-1");
    nng_ctx_close(ctx);
}

/* Read whole, a short generation is one exchange: InferAccepted brings the
 * text, the usage and the end, and the agent forgets it at once. */
static void test_whole_answer_in_one_exchange(void **state)
{
    (void)state;
    nng_ctx ctx = open_ctx();
    Fleet__Sampling s = greedy();
    result res;
    expect_accepted(
        infer_as(ctx, "whole-1", SERVING_MODEL, PROMPT, GREEDY_TOKENS, &s, true), 5,
        &res);
    assert_true(res.done);
    assert_int_equal(res.chunks, 1);
    assert_string_equal(res.text, serving_greedy_text(PROMPT));
    assert_int_equal(res.prompt_tokens, 5);
    assert_int_equal(res.completion_tokens, GREEDY_TOKENS);
    assert_string_equal(res.finish, "length");
    expect_error(ask(ctx, "whole-1", FLEET__ENVELOPE__BODY_NEXT),
                 FLEET__ERROR__CODE__NOT_FOUND, 404, "whole-1");
    nng_ctx_close(ctx);
}

static void test_refusals(void **state)
{
    (void)state;
    nng_ctx ctx = open_ctx();
    Fleet__Sampling s = greedy();
    expect_error(infer(ctx, "bad-1", "no-such-model", PROMPT, 4, &s),
                 FLEET__ERROR__CODE__NOT_FOUND, 404, "no-such-model");
    expect_error(infer(ctx, "bad-2", "", PROMPT, 4, &s), FLEET__ERROR__CODE__BAD_REQUEST,
                 400, "model");
    Fleet__Sampling zero = FLEET__SAMPLING__INIT; /* repeat_penalty 0 */
    expect_error(infer(ctx, "bad-3", SERVING_MODEL, PROMPT, 4, &zero),
                 FLEET__ERROR__CODE__BAD_REQUEST, 400, "repeat_penalty");
    Fleet__Sampling hot = greedy();
    hot.temperature = -1;
    expect_error(infer(ctx, "bad-4", SERVING_MODEL, PROMPT, 4, &hot),
                 FLEET__ERROR__CODE__BAD_REQUEST, 400, "temperature");
    expect_error(infer(ctx, "bad-5", SERVING_MODEL, PROMPT, -5, &s),
                 FLEET__ERROR__CODE__BAD_REQUEST, 400, "max_tokens");
    expect_error(infer(ctx, "", SERVING_MODEL, PROMPT, 4, &s),
                 FLEET__ERROR__CODE__BAD_MESSAGE, 400, "request id");
    expect_error(ask(ctx, "never-seen", FLEET__ENVELOPE__BODY_NEXT),
                 FLEET__ERROR__CODE__NOT_FOUND, 404, "never-seen");

    /* an id already running (long enough not to end within its Infer) */
    result res;
    expect_accepted(infer(ctx, "twice", SERVING_MODEL, PROMPT, 400, &s), 5, &res);
    expect_error(infer(ctx, "twice", SERVING_MODEL, PROMPT, 4, &s),
                 FLEET__ERROR__CODE__BAD_REQUEST, 409, "already running");
    wire_envelope *c = ask(ctx, "twice", FLEET__ENVELOPE__BODY_CANCEL);
    assert_int_equal(c->body_case, FLEET__ENVELOPE__BODY_ACK);
    wire_free(c);
    run_to_end(ctx, "twice", &res);
    assert_string_equal(res.finish, "cancelled");

    /* a body the data plane does not take */
    Fleet__Deregister d = FLEET__DEREGISTER__INIT;
    wire_envelope env = FLEET__ENVELOPE__INIT;
    env.request_id = "dereg";
    env.body_case = FLEET__ENVELOPE__BODY_DEREGISTER;
    env.deregister = &d;
    expect_error(exchange(ctx, &env), FLEET__ERROR__CODE__BAD_MESSAGE, 400, "deregister");
    nng_ctx_close(ctx);
}

static void test_cancel_stops_early_and_frees_the_slot(void **state)
{
    (void)state;
    nng_ctx ctx = open_ctx();
    Fleet__Sampling s = greedy();
    /* four at once take every slot (--parallel 4) */
    const char *ids[] = {"cancel-1", "cancel-2", "cancel-3", "cancel-4"};
    result res[4];
    for (size_t i = 0; i < 4; i++)
        expect_accepted(infer(ctx, ids[i], SERVING_MODEL, PROMPT, 400, &s), 5, &res[i]);
    for (size_t i = 0; i < 4; i++) {
        wire_envelope *r = ask(ctx, ids[i], FLEET__ENVELOPE__BODY_CANCEL);
        assert_int_equal(r->body_case, FLEET__ENVELOPE__BODY_ACK);
        wire_free(r);
    }
    for (size_t i = 0; i < 4; i++) {
        run_to_end(ctx, ids[i], &res[i]);
        assert_string_equal(res[i].finish, "cancelled");
        if (res[i].completion_tokens >= 400)
            fail_msg("%s went on to %u tokens after Cancel", ids[i],
                     res[i].completion_tokens);
    }
    /* cancelling what is gone is acknowledged too */
    wire_envelope *r = ask(ctx, "cancel-1", FLEET__ENVELOPE__BODY_CANCEL);
    assert_int_equal(r->body_case, FLEET__ENVELOPE__BODY_ACK);
    wire_free(r);

    /* the slots are free: a new generation runs to the end */
    result after;
    expect_accepted(infer(ctx, "after-cancel", SERVING_MODEL, PROMPT, GREEDY_TOKENS, &s),
                    5, &after);
    run_to_end(ctx, "after-cancel", &after);
    assert_string_equal(after.text, serving_greedy_text(PROMPT));
    nng_ctx_close(ctx);
}

static void test_interleaved_on_several_contexts(void **state)
{
    (void)state;
    enum { N = 6 };
    const char *prompts[] = {"Once upon a time", "The little dog",
                             "Lily and Tom went to the park."};
    const uint32_t prompt_tokens[] = {5, 5, 13};
    nng_ctx ctx[N];
    result res[N];
    bool done[N] = {false};
    char ids[N][16];
    Fleet__Sampling s = greedy();
    for (int i = 0; i < N; i++) {
        ctx[i] = open_ctx();
        snprintf(ids[i], sizeof ids[i], "mix-%d", i);
        expect_accepted(
            infer(ctx[i], ids[i], SERVING_MODEL, prompts[i % 3], GREEDY_TOKENS, &s),
            prompt_tokens[i % 3], &res[i]);
    }
    int left = N;
    int64_t deadline = h_now_ms() + 4 * TIMEOUT_MS;
    while (left > 0) {
        assert_true(h_now_ms() < deadline);
        for (int i = 0; i < N; i++) {
            if (!done[i] && (res[i].done || next_into(ctx[i], ids[i], &res[i]))) {
                done[i] = true;
                left--;
            }
        }
    }
    for (int i = 0; i < N; i++) {
        /* The reference decodes the generated ids on their own, which drops
         * the first piece's leading space; after a prompt it is real (see
         * it_run.c). */
        const char *want = serving_greedy_text(prompts[i % 3]);
        const char *got =
            res[i].text[0] == ' ' && want[0] != ' ' ? res[i].text + 1 : res[i].text;
        assert_string_equal(got, want);
        assert_int_equal(res[i].completion_tokens, GREEDY_TOKENS);
        assert_int_equal(res[i].prompt_tokens, prompt_tokens[i % 3]);
        nng_ctx_close(ctx[i]);
    }
}

/* ---- log probabilities ------------------------------------------------------ */

/* What the chunks of a generation with top_logprobs brought. */
typedef struct lp_result {
    char text[16384];
    size_t len;
    char pieces[16384]; /* every token's piece, joined */
    size_t pieces_len;
    size_t tokens, max_in_chunk;
    uint32_t completion_tokens;
    bool done;
} lp_result;

static void lp_add(lp_result *res, const Fleet__TokenChunk *c, size_t top)
{
    assert_true(res->len + c->text.len < sizeof res->text);
    if (c->text.len > 0)
        memcpy(res->text + res->len, c->text.data, c->text.len);
    res->len += c->text.len;
    assert_true(c->n_logprobs <= MLX_MAX_CHUNK_TOKENS);
    if (c->n_logprobs > res->max_in_chunk)
        res->max_in_chunk = c->n_logprobs;
    for (size_t i = 0; i < c->n_logprobs; i++) {
        const Fleet__TokenLogprob *t = c->logprobs[i];
        assert_true(res->pieces_len + t->text.len < sizeof res->pieces);
        if (t->text.len > 0)
            memcpy(res->pieces + res->pieces_len, t->text.data, t->text.len);
        res->pieces_len += t->text.len;
        assert_int_equal(t->n_top, top);
        assert_true(t->logprob <= 0);
        for (size_t k = 1; k < t->n_top; k++) /* most likely first */
            assert_true(t->top[k]->logprob <= t->top[k - 1]->logprob);
        res->tokens++;
    }
    if (c->done) {
        res->done = true;
        res->completion_tokens = c->completion_tokens;
    }
}

/* Infer with top_logprobs, then Next until done. */
static void lp_run(nng_ctx ctx, const char *id, int32_t max_tokens, int32_t top,
                   bool whole, lp_result *res)
{
    memset(res, 0, sizeof *res);
    Fleet__Sampling s = greedy();
    Fleet__Infer in = FLEET__INFER__INIT;
    in.model = SERVING_MODEL;
    in.prompt = PROMPT;
    in.max_tokens = max_tokens;
    in.sampling = &s;
    in.top_logprobs = top;
    in.whole = whole;
    wire_envelope env = FLEET__ENVELOPE__INIT;
    env.request_id = (char *)id;
    env.body_case = FLEET__ENVELOPE__BODY_INFER;
    env.infer = &in;
    wire_envelope *r = exchange(ctx, &env);
    if (r->body_case == FLEET__ENVELOPE__BODY_ERROR)
        fail_msg("Infer refused: %s", r->error->message);
    assert_int_equal(r->body_case, FLEET__ENVELOPE__BODY_INFER_ACCEPTED);
    size_t k = top > 0 ? (size_t)top : 0;
    if (r->infer_accepted->first != NULL)
        lp_add(res, r->infer_accepted->first, k);
    wire_free(r);
    int64_t deadline = h_now_ms() + 4 * TIMEOUT_MS;
    while (!res->done) {
        assert_true(h_now_ms() < deadline);
        r = ask(ctx, id, FLEET__ENVELOPE__BODY_NEXT);
        if (r->body_case == FLEET__ENVELOPE__BODY_ERROR)
            fail_msg("Next refused: %s", r->error->message);
        assert_int_equal(r->body_case, FLEET__ENVELOPE__BODY_TOKEN_CHUNK);
        lp_add(res, r->token_chunk, k);
        wire_free(r);
    }
}

static void test_log_probabilities_ride_the_chunks(void **state)
{
    (void)state;
    nng_ctx ctx = open_ctx();
    Fleet__Sampling s = greedy();
    Fleet__Infer in = FLEET__INFER__INIT;
    in.model = SERVING_MODEL;
    in.prompt = PROMPT;
    in.sampling = &s;
    wire_envelope env = FLEET__ENVELOPE__INIT;
    env.body_case = FLEET__ENVELOPE__BODY_INFER;
    env.infer = &in;
    in.top_logprobs = 21;
    env.request_id = "lp-bad-1";
    expect_error(exchange(ctx, &env), FLEET__ERROR__CODE__BAD_REQUEST, 400,
                 "top_logprobs");
    in.top_logprobs = -2;
    env.request_id = "lp-bad-2";
    expect_error(exchange(ctx, &env), FLEET__ERROR__CODE__BAD_REQUEST, 400,
                 "top_logprobs");

    /* streamed: each token once, in order, the text's own pieces */
    lp_result res;
    lp_run(ctx, "lp-1", GREEDY_TOKENS, 2, false, &res);
    assert_int_equal(res.completion_tokens, GREEDY_TOKENS);
    assert_int_equal(res.tokens, GREEDY_TOKENS);
    assert_int_equal(res.pieces_len, res.len);
    assert_memory_equal(res.pieces, res.text, res.len);
    res.text[res.len] = '\0';
    assert_string_equal(res.text, serving_greedy_text(PROMPT));

    /* read whole, past a chunk's worth of tokens: cut across chunks */
    lp_run(ctx, "lp-2", 2 * MLX_MAX_CHUNK_TOKENS - 100, -1, true, &res);
    assert_true(res.completion_tokens > MLX_MAX_CHUNK_TOKENS);
    assert_int_equal(res.tokens, res.completion_tokens);
    assert_true(res.max_in_chunk <= MLX_MAX_CHUNK_TOKENS);
    assert_int_equal(res.pieces_len, res.len);
    assert_memory_equal(res.pieces, res.text, res.len);
    nng_ctx_close(ctx);
}

static void test_malformed_and_other_versions(void **state)
{
    (void)state;
    nng_ctx ctx = open_ctx();
    uint8_t junk[257];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t)(i * 131u + 7u);
    expect_error(exchange_raw(ctx, junk, sizeof junk), FLEET__ERROR__CODE__BAD_MESSAGE,
                 400, NULL);
    expect_error(exchange_raw(ctx, "", 0), FLEET__ERROR__CODE__BAD_MESSAGE, 400, NULL);

    /* a valid Infer cut short */
    Fleet__Sampling s = greedy();
    Fleet__Infer in = FLEET__INFER__INIT;
    in.model = SERVING_MODEL;
    in.prompt = PROMPT;
    in.sampling = &s;
    wire_envelope env = FLEET__ENVELOPE__INIT;
    env.request_id = "cut";
    env.body_case = FLEET__ENVELOPE__BODY_INFER;
    env.infer = &in;
    uint8_t *buf;
    size_t len;
    assert_int_equal(wire_pack(&env, MLX_MAX_DATA_MSG, &buf, &len, NULL), 0);
    expect_error(exchange_raw(ctx, buf, len - 3), FLEET__ERROR__CODE__BAD_MESSAGE, 400,
                 NULL);
    mlx_free(buf);

    /* another major version: refused, naming the versions, with our id */
    env.request_id = "v2";
    env.version = 2u << 16;
    size_t n = fleet__envelope__get_packed_size(&env);
    buf = malloc(n);
    assert_non_null(buf);
    fleet__envelope__pack(&env, buf);
    wire_envelope *r = exchange_raw(ctx, buf, n);
    free(buf);
    assert_string_equal(r->request_id, "v2");
    expect_error(r, FLEET__ERROR__CODE__VERSION, 400, "2.0");

    /* and the agent goes on serving */
    result res;
    expect_accepted(infer(ctx, "after-junk", SERVING_MODEL, PROMPT, GREEDY_TOKENS, &s), 5,
                    &res);
    run_to_end(ctx, "after-junk", &res);
    assert_string_equal(res.text, serving_greedy_text(PROMPT));
    assert_true(serving_healthy(&agent));
    nng_ctx_close(ctx);
}

/* LoadModel; the reply (wire_free). */
static wire_envelope *load_model(nng_ctx ctx, const char *id, const char *model,
                                 int64_t keep_alive_ms)
{
    Fleet__LoadModel load = FLEET__LOAD_MODEL__INIT;
    load.model = (char *)model;
    load.keep_alive_ms = keep_alive_ms;
    wire_envelope env = FLEET__ENVELOPE__INIT;
    env.request_id = (char *)id;
    env.body_case = FLEET__ENVELOPE__BODY_LOAD;
    env.load = &load;
    return exchange(ctx, &env);
}

/* The load time of a Loaded reply. */
static int64_t expect_loaded(wire_envelope *r)
{
    if (r->body_case == FLEET__ENVELOPE__BODY_ERROR)
        fail_msg("LoadModel refused: %s", r->error->message);
    assert_int_equal(r->body_case, FLEET__ENVELOPE__BODY_LOADED);
    int64_t ns = r->loaded->load_ns;
    wire_free(r);
    return ns;
}

/* Whether the agent's /api/ps lists the model (arg: "1" loaded, "0" not). */
static bool ps_says(void *arg)
{
    char url[128];
    snprintf(url, sizeof url, "%s/api/ps", agent.base);
    json_t *ps = h_get_json(url, NULL);
    bool listed = false;
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(ps, "models"), i, m)
    {
        const char *name = json_string_value(json_object_get(m, "name"));
        listed |= name != NULL && strcmp(name, SERVING_MODEL) == 0;
    }
    json_decref(ps);
    return listed == (strcmp(arg, "1") == 0);
}

/* The sum of the agent's mlx_requests_total{endpoint="dataplane"} with
 * status. */
static double dataplane_requests(int status)
{
    serving_reply r;
    assert_int_equal(serving_call(&agent, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    char want_status[32];
    snprintf(want_status, sizeof want_status, "status=\"%d\"", status);
    double sum = 0;
    for (char *line = r.body; line != NULL && *line != '\0';) {
        char *nl = strchr(line, '\n');
        if (nl != NULL)
            *nl = '\0';
        char *close = strrchr(line, '}');
        double value = 0;
        if (strncmp(line, "mlx_requests_total{", 19) == 0 && close != NULL &&
            strstr(line, "endpoint=\"dataplane\"") != NULL &&
            strstr(line, want_status) != NULL &&
            mlx_parse_double(close + 2, &value, NULL) == 0)
            sum += value;
        line = nl != NULL ? nl + 1 : NULL;
    }
    serving_reply_free(&r);
    return sum;
}

static void test_load_and_unload(void **state)
{
    (void)state;
    nng_ctx ctx = open_ctx();
    double ok_before = dataplane_requests(200);
    double bad_before = dataplane_requests(400) + dataplane_requests(404);

    /* The generations above left it loaded: -1 unloads it at once. */
    assert_int_equal(expect_loaded(load_model(ctx, "unload-1", SERVING_MODEL, -1)), 0);
    if (!h_wait_for(ps_says, "0", TIMEOUT_MS))
        fail_msg("/api/ps still lists %s after an unload", SERVING_MODEL);
    /* Unloading what is not loaded is done, and loads nothing. */
    assert_int_equal(expect_loaded(load_model(ctx, "unload-2", SERVING_MODEL, -1)), 0);
    assert_true(ps_says("0"));

    /* 0: the agent's keep-alive. The load took time, and /api/ps shows it. */
    assert_true(expect_loaded(load_model(ctx, "load-1", SERVING_MODEL, 0)) > 0);
    assert_true(ps_says("1"));
    /* Loaded already: no time, and it stays. */
    assert_int_equal(expect_loaded(load_model(ctx, "load-2", SERVING_MODEL, 600000)), 0);
    assert_true(ps_says("1"));

    /* Refusals, as an Infer's. */
    expect_error(load_model(ctx, "load-bad-1", "", 0), FLEET__ERROR__CODE__BAD_REQUEST,
                 400, "'model' is empty");
    expect_error(load_model(ctx, "load-bad-2", "bad\x01name", 0),
                 FLEET__ERROR__CODE__BAD_REQUEST, 400, "not a model name");
    expect_error(load_model(ctx, "load-bad-3", "no-such-model", 0),
                 FLEET__ERROR__CODE__NOT_FOUND, 404, "no-such-model");
    expect_error(load_model(ctx, "load-bad-4", SERVING_MODEL, -5),
                 FLEET__ERROR__CODE__BAD_REQUEST, 400, "keep_alive_ms");
    assert_true(ps_says("1"));

    /* Each counted, as the HTTP API counts its load-only requests. */
    assert_true(dataplane_requests(200) - ok_before == 4);
    assert_true(dataplane_requests(400) + dataplane_requests(404) - bad_before == 4);
    nng_ctx_close(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_text_and_usage),
        cmocka_unit_test(test_whole_answer_in_one_exchange),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_cancel_stops_early_and_frees_the_slot),
        cmocka_unit_test(test_interleaved_on_several_contexts),
        cmocka_unit_test(test_log_probabilities_ride_the_chunks),
        cmocka_unit_test(test_malformed_and_other_versions),
        cmocka_unit_test(test_load_and_unload),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
