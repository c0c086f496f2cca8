/*
 * test_wire_dataplane.c — the data plane's bodies on the wire
 * (proto/fleet.proto, "Data plane"): Infer with all it carries (messages,
 * sampling, stops, whole, top_logprobs), InferAccepted with the first chunk
 * and its log probabilities (pieces are bytes: a NUL or half a UTF-8
 * character survives), TokenChunk's end with usage, LoadModel and Loaded,
 * each round-tripped field for field within the data plane's message limit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/limits.h"
#include "proto/wire.h"

/* Packs env with wire_pack and unpacks it again, within the data plane's
 * limit; the result must succeed. */
static wire_envelope *round_trip(wire_envelope *env)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    mlx_err err;
    mlx_err_clear(&err);
    assert_int_equal(wire_pack(env, MLX_MAX_DATA_MSG, &buf, &len, &err), 0);
    wire_envelope *out = NULL;
    int rc = wire_unpack(buf, len, MLX_MAX_DATA_MSG, &out, &err);
    mlx_free(buf);
    if (rc != 0)
        fail_msg("wire_unpack: %s", err.msg);
    assert_int_equal(out->version, WIRE_VERSION);
    return out;
}

static void infer_round_trips(void **state)
{
    (void)state;
    Fleet__ChatMessage sys = FLEET__CHAT_MESSAGE__INIT, user = FLEET__CHAT_MESSAGE__INIT;
    sys.role = (char *)"system";
    sys.content = (char *)"Be brief.";
    user.role = (char *)"user";
    user.content = (char *)"Hi \xc3\xa9";
    Fleet__ChatMessage *msgs[] = {&sys, &user};
    Fleet__Sampling s = FLEET__SAMPLING__INIT;
    s.temperature = 0.7f;
    s.top_k = 40;
    s.top_p = 0.9f;
    s.seed = UINT64_C(18446744073709551615);
    char *stops[] = {(char *)"\n\n", (char *)"END"};
    Fleet__Infer in = FLEET__INFER__INIT;
    in.model = (char *)"llama3.2:1b";
    in.n_messages = 2;
    in.messages = msgs;
    in.max_tokens = 64;
    in.sampling = &s;
    in.n_stop = 2;
    in.stop = stops;
    in.keep_alive_ms = -1;
    in.whole = true;
    in.top_logprobs = -1;
    wire_envelope env = FLEET__ENVELOPE__INIT;
    env.request_id = (char *)"gen-1";
    env.body_case = FLEET__ENVELOPE__BODY_INFER;
    env.infer = &in;

    wire_envelope *out = round_trip(&env);
    assert_int_equal(out->body_case, FLEET__ENVELOPE__BODY_INFER);
    assert_string_equal(wire_body_name(out), "infer");
    const Fleet__Infer *o = out->infer;
    assert_string_equal(o->model, "llama3.2:1b");
    assert_int_equal(o->n_messages, 2);
    assert_string_equal(o->messages[1]->role, "user");
    assert_string_equal(o->messages[1]->content, "Hi \xc3\xa9");
    assert_int_equal(o->max_tokens, 64);
    assert_true(o->sampling->temperature == 0.7f && o->sampling->top_p == 0.9f);
    assert_int_equal(o->sampling->top_k, 40);
    assert_true(o->sampling->seed == UINT64_C(18446744073709551615));
    assert_int_equal(o->n_stop, 2);
    assert_string_equal(o->stop[0], "\n\n");
    assert_int_equal(o->keep_alive_ms, -1);
    assert_true(o->whole);
    assert_int_equal(o->top_logprobs, -1);
    wire_free(out);
}

/* A short answer's whole end rides the acceptance: text, usage, timings
 * and each token's log probability with its alternatives. */
static void infer_accepted_with_its_first_chunk_round_trips(void **state)
{
    (void)state;
    static const uint8_t piece[] = {'a', 0, 0xc3}; /* a NUL, half a character */
    Fleet__TokenAlternative alt = FLEET__TOKEN_ALTERNATIVE__INIT;
    alt.text = (ProtobufCBinaryData){sizeof piece, (uint8_t *)piece};
    alt.logprob = -2.5f;
    Fleet__TokenAlternative *alts[] = {&alt};
    Fleet__TokenLogprob tok = FLEET__TOKEN_LOGPROB__INIT;
    tok.text = (ProtobufCBinaryData){5, (uint8_t *)"Hello"};
    tok.logprob = -0.125f;
    tok.n_top = 1;
    tok.top = alts;
    Fleet__TokenLogprob *toks[] = {&tok};
    Fleet__TokenChunk chunk = FLEET__TOKEN_CHUNK__INIT;
    chunk.text = (ProtobufCBinaryData){5, (uint8_t *)"Hello"};
    chunk.done = true;
    chunk.finish_reason = (char *)"length";
    chunk.prompt_tokens = 5;
    chunk.completion_tokens = 1;
    chunk.eval_ns = 1234;
    chunk.total_ns = INT64_C(9876543210);
    chunk.n_logprobs = 1;
    chunk.logprobs = toks;
    Fleet__InferAccepted acc = FLEET__INFER_ACCEPTED__INIT;
    acc.prompt_tokens = 5;
    acc.first = &chunk;
    wire_envelope env = FLEET__ENVELOPE__INIT;
    env.request_id = (char *)"gen-1";
    env.node_id = (char *)"0123456789abcdef";
    env.body_case = FLEET__ENVELOPE__BODY_INFER_ACCEPTED;
    env.infer_accepted = &acc;

    wire_envelope *out = round_trip(&env);
    assert_int_equal(out->body_case, FLEET__ENVELOPE__BODY_INFER_ACCEPTED);
    assert_int_equal(out->infer_accepted->prompt_tokens, 5);
    const Fleet__TokenChunk *c = out->infer_accepted->first;
    assert_non_null(c);
    assert_int_equal(c->text.len, 5);
    assert_memory_equal(c->text.data, "Hello", 5);
    assert_true(c->done);
    assert_string_equal(c->finish_reason, "length");
    assert_int_equal(c->completion_tokens, 1);
    assert_int_equal(c->total_ns, INT64_C(9876543210));
    assert_int_equal(c->n_logprobs, 1);
    assert_true(c->logprobs[0]->logprob == -0.125f);
    assert_int_equal(c->logprobs[0]->n_top, 1);
    assert_int_equal(c->logprobs[0]->top[0]->text.len, sizeof piece);
    assert_memory_equal(c->logprobs[0]->top[0]->text.data, piece, sizeof piece);
    assert_true(c->logprobs[0]->top[0]->logprob == -2.5f);
    wire_free(out);

    /* still loading: no first chunk at all */
    acc.prompt_tokens = 0;
    acc.first = NULL;
    out = round_trip(&env);
    assert_null(out->infer_accepted->first);
    wire_free(out);
}

/* The data plane's load-only request and its answer; an unload is
 * keep_alive_ms -1, which must survive as a negative varint. */
static void load_model_and_loaded_round_trip(void **state)
{
    (void)state;
    Fleet__LoadModel load = FLEET__LOAD_MODEL__INIT;
    load.model = (char *)"llama3.2:1b";
    load.keep_alive_ms = -1;
    wire_envelope env = FLEET__ENVELOPE__INIT;
    env.request_id = (char *)"load-1";
    env.body_case = FLEET__ENVELOPE__BODY_LOAD;
    env.load = &load;

    wire_envelope *out = round_trip(&env);
    assert_int_equal(out->body_case, FLEET__ENVELOPE__BODY_LOAD);
    assert_string_equal(wire_body_name(out), "load");
    assert_string_equal(out->load->model, "llama3.2:1b");
    assert_int_equal(out->load->keep_alive_ms, -1);
    assert_string_equal(out->request_id, "load-1");
    wire_free(out);

    Fleet__Loaded loaded = FLEET__LOADED__INIT;
    loaded.load_ns = INT64_C(2345678901);
    env = (wire_envelope)FLEET__ENVELOPE__INIT;
    env.request_id = (char *)"load-1";
    env.node_id = (char *)"0123456789abcdef";
    env.body_case = FLEET__ENVELOPE__BODY_LOADED;
    env.loaded = &loaded;
    out = round_trip(&env);
    assert_int_equal(out->body_case, FLEET__ENVELOPE__BODY_LOADED);
    assert_string_equal(wire_body_name(out), "loaded");
    assert_int_equal(out->loaded->load_ns, INT64_C(2345678901));
    wire_free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(infer_round_trips),
        cmocka_unit_test(infer_accepted_with_its_first_chunk_round_trips),
        cmocka_unit_test(load_model_and_loaded_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
