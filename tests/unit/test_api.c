/*
 * test_api.c — common/api without a server: each API's defaults for a
 * request the body is silent on, the refusals' sentences, and the bytes of
 * answers written from events (OpenAI's SSE chunks, its usage chunk and
 * [DONE], Ollama's NDJSON lines with their durations, whole answers with
 * log probabilities) and of errors in each API's shape.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "agent/engine/engine.h" /* only to compare OpenAI's defaults with llama.cpp's */
#include "common/alloc.h"
#include "common/api/api.h"
#include "common/json.h"

static int parse(const api_spec *spec, const char *body, api_request *r, mlx_err *err)
{
    mlx_err_clear(err);
    return api_request_parse(spec, body, strlen(body), r, err);
}

/* The JSON of one framed chunk at *p ("data: {…}\n\n" or "{…}\n"),
 * advancing *p past it. */
static json_t *next_chunk(const char **p, const char *head, const char *tail)
{
    assert_memory_equal(*p, head, strlen(head));
    *p += strlen(head);
    const char *end = strstr(*p, tail);
    assert_non_null(end);
    json_t *v = json_loadb(*p, (size_t)(end - *p), 0, NULL);
    assert_non_null(v);
    *p = end + strlen(tail);
    return v;
}

static void test_openai_chat_defaults(void **state)
{
    api_request r;
    mlx_err err;
    assert_int_equal(parse(&api_openai_chat,
                           "{\"model\":\"m\",\"user\":\"alice\",\"messages\":["
                           "{\"role\":\"developer\",\"content\":[{\"type\":\"text\",\"text\":"
                           "\"a\"},{\"type\":\"text\",\"text\":\"b\"}]},"
                           "{\"role\":\"user\",\"content\":null}]}",
                           &r, &err),
                     0);
    assert_int_equal(r.kind, API_OPENAI);
    assert_true(r.chat);
    assert_string_equal(r.model, "m");
    assert_null(r.prompt);
    assert_int_equal(r.n_messages, 2);
    assert_string_equal(r.messages[0].role, "system");
    assert_string_equal(r.messages[0].content, "ab");
    assert_string_equal(r.messages[1].role, "user");
    assert_string_equal(r.messages[1].content, "");
    assert_false(r.stream);
    assert_false(r.include_usage);
    assert_false(r.logprobs);
    assert_int_equal(r.top_logprobs, 0);
    assert_int_equal(r.max_tokens, -1);
    assert_int_equal(r.keep_alive_ms, -1);
    assert_int_equal(r.n_stops, 0);
    assert_string_equal(r.affinity, "alice");
    engine_sampling e = engine_sampling_defaults();
    assert_true(r.sampling.temperature == e.temperature && r.sampling.top_k == e.top_k &&
                r.sampling.top_p == e.top_p && r.sampling.min_p == e.min_p &&
                r.sampling.repeat_penalty == e.repeat_penalty &&
                r.sampling.repeat_last_n == e.repeat_last_n &&
                r.sampling.presence_penalty == e.presence_penalty &&
                r.sampling.frequency_penalty == e.frequency_penalty);
    api_request_fini(&r);
}

static void test_openai_settings(void **state)
{
    api_request r;
    mlx_err err;
    assert_int_equal(parse(&api_openai_completions,
                           "{\"model\":\"m\",\"prompt\":[\"p\"],\"seed\":-1,\"stop\":\"x\","
                           "\"max_tokens\":7,\"stream\":true,\"stream_options\":"
                           "{\"include_usage\":true},\"logprobs\":0,\"top_k\":3,"
                           "\"temperature\":0}",
                           &r, &err),
                     0);
    assert_false(r.chat);
    assert_string_equal(r.prompt, "p");
    assert_int_equal(r.sampling.seed, UINT64_MAX);
    assert_int_equal(r.sampling.top_k, 3);
    assert_true(r.sampling.temperature == 0);
    assert_int_equal(r.n_stops, 1);
    assert_string_equal(r.stops[0], "x");
    assert_int_equal(r.max_tokens, 7);
    assert_true(r.stream && r.include_usage && r.logprobs);
    assert_int_equal(r.top_logprobs, -1); /* logprobs 0: each token's own alone */
    assert_null(r.affinity);
    api_request_fini(&r);
}

static void test_ollama_defaults_and_options(void **state)
{
    api_request r;
    mlx_err err;
    assert_int_equal(parse(&api_ollama_chat, "{\"model\":\"m\"}", &r, &err), 0);
    assert_true(r.chat && r.stream);
    assert_int_equal(r.n_messages, 0); /* only loads */
    assert_true(r.sampling.temperature == 0.8f && r.sampling.top_k == 40 &&
                r.sampling.top_p == 0.9f && r.sampling.min_p == 0 &&
                r.sampling.repeat_penalty == 1.1f && r.sampling.repeat_last_n == 64 &&
                r.sampling.presence_penalty == 0 && r.sampling.frequency_penalty == 0);
    assert_int_equal(r.keep_alive_ms, -1);
    assert_int_equal(r.max_tokens, -1);
    api_request_fini(&r);

    assert_int_equal(parse(&api_ollama_generate,
                           "{\"model\":\"m\",\"prompt\":\"p\",\"system\":\"s\",\"raw\":true,"
                           "\"stream\":false,\"keep_alive\":\"1h30m\",\"options\":{"
                           "\"seed\":7,\"num_predict\":5,\"stop\":[\"a\",\"b\"],"
                           "\"repeat_last_n\":-1,\"num_ctx\":4096}}",
                           &r, &err),
                     0);
    assert_false(r.chat || r.stream || r.as_user);
    assert_string_equal(r.prompt, "p");
    assert_string_equal(r.system, "s");
    assert_int_equal(r.keep_alive_ms, 90 * 60 * 1000);
    assert_int_equal(r.sampling.seed, 7);
    assert_int_equal(r.max_tokens, 5);
    assert_int_equal(r.n_stops, 2);
    assert_int_equal(r.sampling.repeat_last_n, 1 << 20);
    api_request_fini(&r);

    assert_int_equal(parse(&api_ollama_generate, "{\"model\":\"m\",\"keep_alive\":\"250ms\"}",
                           &r, &err),
                     0);
    assert_int_equal(r.keep_alive_ms, 250);
    assert_true(r.as_user);
    api_request_fini(&r);
}

static void test_refusals(void **state)
{
    api_request r;
    mlx_err err;
    assert_int_equal(parse(&api_openai_chat, "{\"model\":\"m\",\"messagez\":[]}", &r, &err),
                     MLX_EINVAL);
    assert_non_null(strstr(err.msg, "unknown field 'messagez'; known fields: model, messages"));
    assert_null(r.body);
    assert_null(r.model);
    assert_int_equal(parse(&api_openai_chat,
                           "{\"model\":\"m\",\"n\":2,\"messages\":[{\"role\":\"user\","
                           "\"content\":\"x\"}]}",
                           &r, &err),
                     MLX_EINVAL);
    assert_string_equal(err.msg, "'n' is not supported by this server; leave it out");
    assert_int_equal(parse(&api_openai_chat,
                           "{\"model\":\"m\",\"n\":1,\"messages\":[{\"role\":\"user\","
                           "\"content\":\"x\"}]}",
                           &r, &err),
                     0); /* its neutral value asks for nothing */
    api_request_fini(&r);
    assert_int_equal(parse(&api_openai_chat, "{\"model\":\"\",\"messages\":[]}", &r, &err),
                     MLX_EINVAL);
    assert_int_equal(parse(&api_ollama_chat, "{\"model\":\"\"}", &r, &err), MLX_EINVAL);
    assert_string_equal(err.msg, "'model' is empty; name a model");
    assert_int_equal(parse(&api_openai_completions, "{\"model\":\"m\",\"prompt\":\"p\"}",
                           &r, &err),
                     0);
    api_request_fini(&r);
    assert_int_equal(parse(&api_openai_completions, "[]", &r, &err), MLX_EINVAL);
    assert_string_equal(err.msg, "the body must be a JSON object, not an array");
    assert_int_equal(api_request_parse(&api_ollama_chat, "", 0, &r, &err), MLX_EINVAL);
    assert_string_equal(err.msg, "the request has no body; send a JSON object");
    assert_int_equal(parse(&api_ollama_generate,
                           "{\"model\":\"m\",\"options\":{\"mirostat\":2}}", &r, &err),
                     MLX_EINVAL);
    assert_string_equal(err.msg, "'options': 'mirostat' is not supported by this server; "
                                 "leave it out");
    /* Each unsupported field's own "off" passes (Ollama's mirostat 0,
     * typical_p 1); its other values do not. */
    assert_int_equal(parse(&api_ollama_generate,
                           "{\"model\":\"m\",\"options\":{\"mirostat\":0,\"typical_p\":1.0,"
                           "\"mirostat_tau\":5.0}}",
                           &r, &err),
                     0);
    api_request_fini(&r);
    assert_int_equal(parse(&api_ollama_generate,
                           "{\"model\":\"m\",\"options\":{\"mirostat\":1}}", &r, &err),
                     MLX_EINVAL);
    assert_int_equal(parse(&api_ollama_generate,
                           "{\"model\":\"m\",\"options\":{\"typical_p\":0.5}}", &r, &err),
                     MLX_EINVAL);
}

/* A chat request, streamed, and its answer. */
static void open_chat(api_request *r, api_answer *a, const char *extra)
{
    char body[256];
    snprintf(body, sizeof body,
             "{\"model\":\"m\",\"stream\":true,%s\"messages\":[{\"role\":\"user\","
             "\"content\":\"x\"}]}",
             extra);
    mlx_err err;
    assert_int_equal(parse(&api_openai_chat, body, r, &err), 0);
    api_answer_init(a, r, "abc", 1700000000);
}

static void test_openai_sse_chunks_and_usage(void **state)
{
    api_request r;
    api_answer a;
    open_chat(&r, &a, "\"stream_options\":{\"include_usage\":true},");
    assert_string_equal(api_stream_type(API_OPENAI), "text/event-stream");
    mlx_buf out;
    mlx_buf_init(&out, 1 << 20);
    api_event text = {.kind = API_EVENT_TEXT, .text = "Hi", .len = 2};
    api_event more = {.kind = API_EVENT_TEXT, .text = " there", .len = 6};
    api_event done = {.kind = API_EVENT_DONE, .finish_reason = "length", .prompt_tokens = 5,
                      .completion_tokens = 2};
    assert_int_equal(api_write_chunk(&a, &text, &out), 0);
    assert_int_equal(api_write_chunk(&a, &more, &out), 0);
    assert_int_equal(api_write_end(&a, &done, &out), 0);
    assert_int_equal(a.text_offset, 8);

    const char *p = mlx_buf_str(&out);
    json_t *v = next_chunk(&p, "data: ", "\n\n");
    assert_string_equal(json_string_value(json_object_get(v, "id")), "chatcmpl-abc");
    assert_string_equal(json_string_value(json_object_get(v, "object")),
                        "chat.completion.chunk");
    assert_int_equal(json_integer_value(json_object_get(v, "created")), 1700000000);
    assert_string_equal(json_string_value(json_object_get(v, "model")), "m");
    assert_true(json_is_null(json_object_get(v, "usage")));
    json_t *c = json_array_get(json_object_get(v, "choices"), 0);
    json_t *delta = json_object_get(c, "delta");
    assert_string_equal(json_string_value(json_object_get(delta, "role")), "assistant");
    assert_string_equal(json_string_value(json_object_get(delta, "content")), "Hi");
    assert_true(json_is_null(json_object_get(c, "finish_reason")));
    assert_true(json_is_null(json_object_get(c, "logprobs")));
    json_decref(v);

    v = next_chunk(&p, "data: ", "\n\n"); /* the role is said once */
    delta = json_object_get(json_array_get(json_object_get(v, "choices"), 0), "delta");
    assert_null(json_object_get(delta, "role"));
    assert_string_equal(json_string_value(json_object_get(delta, "content")), " there");
    json_decref(v);

    v = next_chunk(&p, "data: ", "\n\n");
    c = json_array_get(json_object_get(v, "choices"), 0);
    assert_string_equal(json_string_value(json_object_get(c, "finish_reason")), "length");
    assert_string_equal(json_string_value(json_object_get(json_object_get(c, "delta"),
                                                          "content")),
                        "");
    json_decref(v);

    v = next_chunk(&p, "data: ", "\n\n");
    assert_int_equal(json_array_size(json_object_get(v, "choices")), 0);
    json_t *usage = json_object_get(v, "usage");
    assert_int_equal(json_integer_value(json_object_get(usage, "prompt_tokens")), 5);
    assert_int_equal(json_integer_value(json_object_get(usage, "completion_tokens")), 2);
    assert_int_equal(json_integer_value(json_object_get(usage, "total_tokens")), 7);
    json_decref(v);
    assert_string_equal(p, "data: [DONE]\n\n");
    mlx_buf_fini(&out);
    api_request_fini(&r);
}

static void test_openai_end_without_usage(void **state)
{
    api_request r;
    api_answer a;
    open_chat(&r, &a, "");
    mlx_buf out;
    mlx_buf_init(&out, 1 << 20);
    api_event done = {.kind = API_EVENT_DONE, .finish_reason = "stop"};
    assert_int_equal(api_write_end(&a, &done, &out), 0);
    const char *p = mlx_buf_str(&out);
    json_t *v = next_chunk(&p, "data: ", "\n\n");
    assert_null(json_object_get(v, "usage"));
    json_decref(v);
    assert_string_equal(p, "data: [DONE]\n\n");
    mlx_buf_fini(&out);
    api_request_fini(&r);
}

static void test_completion_whole_with_logprobs(void **state)
{
    api_request r;
    mlx_err err;
    assert_int_equal(parse(&api_openai_completions,
                           "{\"model\":\"m\",\"prompt\":\"p\",\"logprobs\":1}", &r, &err),
                     0);
    api_answer a;
    api_answer_init(&a, &r, "id1", 42);
    /* "é" split over two tokens: each half is U+FFFD in "tokens". */
    api_token t[2] = {
        {.text = "\xC3", .len = 1, .logprob = -0.5f, .n_top = 1,
         .top = {{"\xC3", 1, -0.5f}}},
        {.text = "\xA9!", .len = 2, .logprob = -0.25f, .n_top = 1, .top = {{"x", 1, -1.0f}}},
    };
    api_event done = {.kind = API_EVENT_DONE, .finish_reason = "stop", .prompt_tokens = 1,
                      .completion_tokens = 2};
    json_t *v = api_answer_whole(&a, "\xC3\xA9!", 3, t, 2, &done);
    assert_non_null(v);
    assert_string_equal(json_string_value(json_object_get(v, "id")), "cmpl-id1");
    assert_string_equal(json_string_value(json_object_get(v, "object")), "text_completion");
    json_t *c = json_array_get(json_object_get(v, "choices"), 0);
    assert_string_equal(json_string_value(json_object_get(c, "text")), "\xC3\xA9!");
    json_t *lp = json_object_get(c, "logprobs");
    assert_string_equal(json_string_value(json_array_get(json_object_get(lp, "tokens"), 0)),
                        "\xEF\xBF\xBD");
    assert_string_equal(json_string_value(json_array_get(json_object_get(lp, "tokens"), 1)),
                        "\xEF\xBF\xBD!");
    assert_int_equal(json_integer_value(json_array_get(json_object_get(lp, "text_offset"), 1)),
                     1);
    json_t *top1 = json_array_get(json_object_get(lp, "top_logprobs"), 1);
    assert_true(json_real_value(json_object_get(top1, "x")) == -1.0);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(v, "usage"),
                                                        "total_tokens")),
                     3);
    json_decref(v);
    api_request_fini(&r);
}

static void test_ollama_ndjson_lines(void **state)
{
    api_request r;
    mlx_err err;
    assert_int_equal(parse(&api_ollama_chat,
                           "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
                           "\"x\"}]}",
                           &r, &err),
                     0);
    api_answer a;
    api_answer_init(&a, &r, "id", 0);
    assert_string_equal(api_stream_type(API_OLLAMA), "application/x-ndjson");
    mlx_buf out;
    mlx_buf_init(&out, 1 << 20);
    api_event empty = {.kind = API_EVENT_TEXT, .text = "", .len = 0};
    api_event text = {.kind = API_EVENT_TEXT, .text = "Hi", .len = 2};
    api_event done = {.kind = API_EVENT_DONE, .finish_reason = "stop", .prompt_tokens = 3,
                      .completion_tokens = 4, .load_ns = 10, .prompt_eval_ns = 20,
                      .eval_ns = 30, .total_ns = 100};
    assert_int_equal(api_write_chunk(&a, &empty, &out), 0);
    assert_int_equal(out.len, 0); /* no line without text */
    assert_int_equal(api_write_chunk(&a, &text, &out), 0);
    assert_int_equal(api_write_end(&a, &done, &out), 0);
    const char *p = mlx_buf_str(&out);
    json_t *v = next_chunk(&p, "", "\n");
    assert_string_equal(json_string_value(json_object_get(v, "model")), "m");
    assert_non_null(json_string_value(json_object_get(v, "created_at")));
    assert_true(json_is_false(json_object_get(v, "done")));
    json_t *m = json_object_get(v, "message");
    assert_string_equal(json_string_value(json_object_get(m, "role")), "assistant");
    assert_string_equal(json_string_value(json_object_get(m, "content")), "Hi");
    json_decref(v);
    v = next_chunk(&p, "", "\n");
    assert_true(json_is_true(json_object_get(v, "done")));
    assert_string_equal(json_string_value(json_object_get(v, "done_reason")), "stop");
    assert_int_equal(json_integer_value(json_object_get(v, "total_duration")), 100);
    assert_int_equal(json_integer_value(json_object_get(v, "load_duration")), 10);
    assert_int_equal(json_integer_value(json_object_get(v, "prompt_eval_count")), 3);
    assert_int_equal(json_integer_value(json_object_get(v, "prompt_eval_duration")), 20);
    assert_int_equal(json_integer_value(json_object_get(v, "eval_count")), 4);
    assert_int_equal(json_integer_value(json_object_get(v, "eval_duration")), 30);
    assert_string_equal(json_string_value(json_object_get(json_object_get(v, "message"),
                                                          "content")),
                        "");
    json_decref(v);
    assert_string_equal(p, "");

    v = api_answer_load(&a, "unload", 0);
    assert_string_equal(json_string_value(json_object_get(v, "done_reason")), "unload");
    assert_int_equal(json_integer_value(json_object_get(v, "load_duration")), 0);
    json_decref(v);
    mlx_buf_fini(&out);
    api_request_fini(&r);
}

static void test_ollama_generate_whole(void **state)
{
    api_request r;
    mlx_err err;
    assert_int_equal(parse(&api_ollama_generate, "{\"model\":\"m\",\"prompt\":\"p\"}", &r,
                           &err),
                     0);
    api_answer a;
    api_answer_init(&a, &r, "id", 0);
    api_event done = {.kind = API_EVENT_DONE, .finish_reason = "length", .eval_ns = 5};
    json_t *v = api_answer_whole(&a, "abc", 3, NULL, 0, &done);
    assert_string_equal(json_string_value(json_object_get(v, "response")), "abc");
    assert_null(json_object_get(v, "message"));
    assert_string_equal(json_string_value(json_object_get(v, "done_reason")), "length");
    assert_int_equal(json_integer_value(json_object_get(v, "eval_duration")), 5);
    json_decref(v);
    api_request_fini(&r);
}

static void test_error_shapes(void **state)
{
    const char *code;
    assert_int_equal(api_status_of(MLX_EINVAL, &code), 400);
    assert_string_equal(code, "invalid_request");
    assert_int_equal(api_status_of(MLX_ETOOBIG, &code), 400);
    assert_string_equal(code, "context_length_exceeded");
    assert_int_equal(api_status_of(MLX_ENOENT, &code), 404);
    assert_int_equal(api_status_of(MLX_EBUSY, &code), 503);
    assert_string_equal(code, "overloaded");
    assert_int_equal(api_status_of(MLX_ENOMEM, &code), 507);
    assert_int_equal(api_status_of(MLX_EIO, &code), 500);
    assert_string_equal(code, "internal_error");

    char *text = NULL;
    json_t *v = api_error_json(API_OPENAI, 404, "model_not_found", "no model 'x'");
    assert_int_equal(mlx_json_dump(v, &text, NULL), 0);
    assert_string_equal(text, "{\"error\":{\"message\":\"no model 'x'\",\"type\":"
                              "\"invalid_request_error\",\"code\":\"model_not_found\"}}");
    mlx_free(text);
    json_decref(v);
    v = api_error_json(API_OPENAI, 503, "overloaded", "busy");
    assert_string_equal(json_string_value(json_object_get(json_object_get(v, "error"), "type")),
                        "server_error");
    json_decref(v);
    v = api_error_json(API_OLLAMA, 404, "model_not_found", "no model 'x'");
    assert_int_equal(mlx_json_dump(v, &text, NULL), 0);
    assert_string_equal(text, "{\"error\":\"no model 'x'\"}");
    mlx_free(text);
    json_decref(v);

    /* After a stream began: one more chunk in the API's shape. */
    api_request r;
    api_answer a;
    open_chat(&r, &a, "");
    api_event ev;
    api_event_error(&ev, MLX_ECLOSED, "the agent is stopping");
    assert_int_equal(ev.status, 503);
    assert_string_equal(ev.code, "unavailable");
    mlx_buf out;
    mlx_buf_init(&out, 1 << 20);
    assert_int_equal(api_write_fail(&a, &ev, &out), 0);
    assert_string_equal(mlx_buf_str(&out),
                        "data: {\"error\":{\"message\":\"the agent is stopping\",\"type\":"
                        "\"server_error\",\"code\":\"unavailable\"}}\n\n");
    api_request_fini(&r);
    mlx_buf_reset(&out);
    mlx_err err;
    assert_int_equal(parse(&api_ollama_generate, "{\"model\":\"m\"}", &r, &err), 0);
    api_answer_init(&a, &r, "id", 0);
    assert_int_equal(api_write_fail(&a, &ev, &out), 0);
    assert_string_equal(mlx_buf_str(&out), "{\"error\":\"the agent is stopping\"}\n");
    mlx_buf_fini(&out);
    api_request_fini(&r);

    mlx_http_resp resp;
    memset(&resp, 0, sizeof resp);
    api_error(&resp, API_OLLAMA, 400, "invalid_request", "bad %s", "thing");
    assert_int_equal(resp.status, 400);
    assert_non_null(strstr(resp.body, "{\"error\":\"bad thing\"}"));
    mlx_free(resp.body);
}

/* prompt_cache_key, where given, is the affinity key; else the user. */
static void test_affinity_prefers_prompt_cache_key(void **state)
{
    api_request r;
    mlx_err err;
    mlx_err_clear(&err);
    assert_int_equal(parse(&api_openai_completions,
                           "{\"model\":\"m\",\"prompt\":\"p\",\"user\":\"alice\","
                           "\"prompt_cache_key\":\"doc-7\"}",
                           &r, &err),
                     0);
    assert_string_equal(r.affinity, "doc-7");
    api_request_fini(&r);
    assert_int_equal(parse(&api_openai_completions,
                           "{\"model\":\"m\",\"prompt\":\"p\",\"user\":\"alice\"}", &r,
                           &err),
                     0);
    assert_string_equal(r.affinity, "alice");
    api_request_fini(&r);
    assert_int_equal(parse(&api_openai_completions,
                           "{\"model\":\"m\",\"prompt\":\"p\",\"prompt_cache_key\":7}", &r,
                           &err),
                     MLX_EINVAL);
    assert_string_equal(err.msg, "'prompt_cache_key' must be a string, got an integer");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_affinity_prefers_prompt_cache_key),
        cmocka_unit_test(test_openai_chat_defaults),
        cmocka_unit_test(test_openai_settings),
        cmocka_unit_test(test_ollama_defaults_and_options),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_openai_sse_chunks_and_usage),
        cmocka_unit_test(test_openai_end_without_usage),
        cmocka_unit_test(test_completion_whole_with_logprobs),
        cmocka_unit_test(test_ollama_ndjson_lines),
        cmocka_unit_test(test_ollama_generate_whole),
        cmocka_unit_test(test_error_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
