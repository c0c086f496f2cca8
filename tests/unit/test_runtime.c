/*
 * test_runtime.c — agent/runtime: generations through the runtime equal the
 * engine's own (greedy), alone and many at once; events come in order with
 * the right counts; full queues, prompts past the context, unknown models,
 * models over the memory budget and bad settings are refused with
 * sentences; a cancelled request frees its slot; keep-alive unloads idle
 * models; log probabilities come with each token when asked. Uses
 * stories260K.gguf from ../shared/testdata (skips, 77, without it).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "agent/runtime/runtime.h"
#include "common/alloc.h"
#include "tests/support/testutil.h"

static char *model, *dir;

static runtime *start(int parallel, int queue, int64_t keep_alive_ms, uint64_t budget)
{
    runtime_config c = {.data_dir = dir,
                        .parallel = parallel,
                        .queue_limit = queue,
                        .keep_alive_ms = keep_alive_ms,
                        .memory_budget = budget,
                        .threads = 2,
                        .n_ctx = 256};
    runtime *rt;
    mlx_err err;
    if (runtime_start(&c, &rt, &err) != 0)
        fail_msg("%s", err.msg);
    return rt;
}

static runtime_request greedy(const char *prompt, int32_t max_tokens)
{
    runtime_request r = {.model = model, .prompt = prompt, .max_tokens = max_tokens,
                         .keep_alive_ms = -1};
    r.sampling = engine_sampling_defaults();
    r.sampling.temperature = 0;
    return r;
}

/* Reads a job to its end: the text, and the final event. */
static char *drain(runtime_job *job, runtime_event *end)
{
    char *text = calloc(1, 1);
    size_t len = 0;
    bool started = false;
    for (;;) {
        runtime_event ev;
        assert_int_equal(runtime_job_next(job, &ev, 60000), 0);
        if (ev.kind == RUNTIME_STARTED) {
            assert_false(started);
            started = true;
        } else if (ev.kind == RUNTIME_TEXT) {
            assert_true(started);
            text = realloc(text, len + ev.len + 1);
            memcpy(text + len, ev.text, ev.len);
            len += ev.len;
            text[len] = '\0';
        } else {
            *end = ev;
            return text;
        }
    }
}

/* The engine alone, greedy, for comparison. */
static char *engine_greedy(const char *prompt, int n)
{
    engine_model *m;
    engine_opts o = {.threads = 1, .n_ctx = 256};
    assert_int_equal(engine_load(model, &o, &m, NULL), 0);
    int32_t *ids;
    size_t n_ids;
    assert_int_equal(engine_tokenize(m, prompt, strlen(prompt), true, true, &ids, &n_ids, NULL),
                     0);
    engine_seq *s;
    assert_int_equal(engine_seq_new(m, &s, NULL), 0);
    assert_int_equal(engine_seq_feed(s, ids, n_ids, NULL), 0);
    engine_decoder d;
    engine_decoder_init(&d);
    d.started = true;
    char *text = calloc(1, 4096);
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        const float *l = engine_seq_logits(s);
        int32_t best = 0;
        for (uint32_t v = 1; v < engine_model_info(m)->n_vocab; v++)
            if (l[v] > l[best])
                best = (int32_t)v;
        if (engine_is_eog(m, best))
            break;
        size_t k = 0;
        assert_int_equal(engine_decoder_push(m, &d, best, text + len, 4096 - len, &k, NULL),
                         0);
        len += k;
        assert_int_equal(engine_seq_feed(s, &best, 1, NULL), 0);
    }
    len += engine_decoder_flush(&d, text + len, 4096 - len);
    text[len] = '\0';
    mlx_free(ids);
    engine_seq_free(s);
    engine_free(m);
    return text;
}

static void test_a_generation_equals_the_engines(void **state)
{
    runtime *rt = start(4, 8, -1, 0);
    runtime_request r = greedy("Once upon a time", 40);
    runtime_job *job;
    assert_int_equal(runtime_submit(rt, &r, &job, NULL), 0);
    runtime_event end;
    char *text = drain(job, &end);
    char *want = engine_greedy("Once upon a time", 40);
    assert_int_equal(end.kind, RUNTIME_DONE);
    assert_string_equal(end.finish_reason, "length");
    assert_int_equal(end.completion_tokens, 40);
    assert_int_equal(end.prompt_tokens, 5);
    assert_true(end.total_ns >= end.prompt_ns + end.gen_ns);
    assert_string_equal(text, want);
    free(text);
    free(want);
    runtime_job_free(job);
    runtime_stop(rt);
}

static void test_many_at_once_each_equals_itself_alone(void **state)
{
    static const char *const prompts[] = {
        "Once upon a time", "The little dog",   "Lily and Tom went to the park.",
        "One day",          "Tim had a red ball", "The sun was hot",
        "A cat sat",        "Mom said",
    };
    enum { N = sizeof prompts / sizeof prompts[0] };
    runtime *rt = start(3, 16, -1, 0); /* fewer slots than requests: some wait */
    runtime_job *jobs[N];
    for (int i = 0; i < N; i++) {
        runtime_request r = greedy(prompts[i], 24);
        assert_int_equal(runtime_submit(rt, &r, &jobs[i], NULL), 0);
    }
    for (int i = 0; i < N; i++) {
        runtime_event end;
        char *text = drain(jobs[i], &end);
        char *want = engine_greedy(prompts[i], 24);
        if (strcmp(text, want) != 0)
            fail_msg("\"%s\": [%s] together, [%s] alone", prompts[i], text, want);
        free(text);
        free(want);
        runtime_job_free(jobs[i]);
    }
    runtime_stop(rt);
}

static void test_refusals_say_why(void **state)
{
    runtime *rt = start(1, 1, -1, 0);
    runtime_job *job;
    runtime_event end;
    mlx_err err;
    /* An unknown model: an ERROR event. */
    runtime_request r = greedy("hi", 4);
    r.model = "nope:latest";
    assert_int_equal(runtime_submit(rt, &r, &job, NULL), 0);
    free(drain(job, &end));
    assert_int_equal(end.kind, RUNTIME_ERROR);
    assert_int_equal(end.error, MLX_ENOENT);
    assert_non_null(
        strstr(end.message, "'nope:latest' is neither a GGUF file nor a model of the store"));
    runtime_job_free(job);
    /* A prompt past the context says by how much. */
    char *long_prompt = calloc(1, 4000);
    for (int i = 0; i < 600; i++)
        memcpy(long_prompt + 4 * i, "cat ", 4);
    r = greedy(long_prompt, 4);
    assert_int_equal(runtime_submit(rt, &r, &job, NULL), 0);
    free(drain(job, &end));
    assert_int_equal(end.error, MLX_ETOOBIG);
    assert_non_null(strstr(end.message, "tokens too long"));
    runtime_job_free(job);
    free(long_prompt);
    /* Bad settings: refused at once. */
    r = greedy("hi", 4);
    r.sampling.top_p = 2;
    mlx_err_clear(&err);
    assert_int_equal(runtime_submit(rt, &r, &job, &err), MLX_EINVAL);
    assert_non_null(strstr(err.msg, "top_p"));
    r = greedy("hi", 4);
    r.prompt = NULL;
    assert_int_equal(runtime_submit(rt, &r, &job, &err), MLX_EINVAL);
    /* One slot and one place in the queue: a third request is refused. */
    runtime_job *a, *b, *c;
    r = greedy("Once upon a time", 200);
    assert_int_equal(runtime_submit(rt, &r, &a, NULL), 0);
    assert_int_equal(runtime_submit(rt, &r, &b, NULL), 0);
    mlx_err_clear(&err);
    assert_int_equal(runtime_submit(rt, &r, &c, &err), MLX_EBUSY);
    assert_non_null(strstr(err.msg, "try again"));
    runtime_job_free(a); /* cancelled: b gets the slot */
    free(drain(b, &end));
    assert_int_equal(end.kind, RUNTIME_DONE);
    runtime_job_free(b);
    runtime_stop(rt);
}

static void test_a_cancelled_request_frees_its_slot(void **state)
{
    runtime *rt = start(1, 4, -1, 0);
    runtime_request r = greedy("Once upon a time", -1);
    runtime_job *job, *next;
    assert_int_equal(runtime_submit(rt, &r, &job, NULL), 0);
    runtime_event ev;
    do
        assert_int_equal(runtime_job_next(job, &ev, 60000), 0);
    while (ev.kind != RUNTIME_TEXT);
    runtime_job_cancel(job);
    /* The only slot is free again: the next request runs to its end. */
    r = greedy("The little dog", 8);
    assert_int_equal(runtime_submit(rt, &r, &next, NULL), 0);
    runtime_event end;
    free(drain(next, &end));
    assert_int_equal(end.kind, RUNTIME_DONE);
    assert_int_equal(end.completion_tokens, 8);
    runtime_job_free(next);
    runtime_job_free(job);
    runtime_stop(rt);
}

static bool loaded(runtime *rt)
{
    runtime_status st;
    assert_int_equal(runtime_get_status(rt, &st, NULL), 0);
    bool yes = st.n_models > 0;
    runtime_status_free(&st);
    return yes;
}

static void test_keep_alive_and_the_memory_budget(void **state)
{
    runtime *rt = start(2, 4, -1, 0);
    runtime_request r = greedy("Once upon a time", 4);
    r.keep_alive_ms = 0; /* unload as soon as it is idle */
    runtime_job *job;
    assert_int_equal(runtime_submit(rt, &r, &job, NULL), 0);
    runtime_event end;
    free(drain(job, &end));
    runtime_job_free(job);
    for (int i = 0; i < 300 && loaded(rt); i++) {
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL); /* the janitor looks once a second */
    }
    assert_false(loaded(rt));
    runtime_stop(rt);

    rt = start(2, 4, -1, 1 << 20); /* 1 MiB: the model cannot fit */
    r = greedy("hi", 4);
    assert_int_equal(runtime_submit(rt, &r, &job, NULL), 0);
    free(drain(job, &end));
    assert_int_equal(end.error, MLX_ENOMEM);
    assert_non_null(strstr(end.message, "memory budget"));
    runtime_job_free(job);
    runtime_stop(rt);
}

static void test_log_probabilities_come_with_each_token(void **state)
{
    runtime *rt = start(1, 4, -1, 0);
    runtime_request r = greedy("Once upon a time", 6);
    r.top_logprobs = 3;
    runtime_job *job;
    assert_int_equal(runtime_submit(rt, &r, &job, NULL), 0);
    size_t tokens = 0;
    runtime_event ev;
    for (;;) {
        assert_int_equal(runtime_job_next(job, &ev, 60000), 0);
        if (ev.kind == RUNTIME_DONE || ev.kind == RUNTIME_ERROR)
            break;
        for (size_t i = 0; ev.kind == RUNTIME_TEXT && i < ev.n_tokens; i++) {
            const runtime_token *t = &ev.tokens[i];
            assert_int_equal(t->n_top, 3);
            assert_true(t->logprob <= 0);
            /* Greedy: the token taken is the most likely one. */
            assert_int_equal(t->top[0].id, t->id);
            assert_true(fabsf(t->top[0].logprob - t->logprob) < 1e-5f);
            assert_true(t->top[0].logprob >= t->top[1].logprob);
            assert_true(t->top[1].logprob >= t->top[2].logprob);
            tokens++;
        }
    }
    assert_int_equal(ev.kind, RUNTIME_DONE);
    assert_int_equal(tokens, 6);
    runtime_job_free(job);
    runtime_stop(rt);
}

static int group_setup(void **state)
{
    model = test_testdata("stories260K.gguf");
    if (model == NULL) {
        fprintf(stderr, "skipped: the shared test models (../shared/testdata) are absent\n");
        exit(TEST_SKIP);
    }
    dir = test_tmpdir("runtime");
    return 0;
}

static int group_teardown(void **state)
{
    test_tmpdir_remove(dir);
    free(model);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_generation_equals_the_engines),
        cmocka_unit_test(test_many_at_once_each_equals_itself_alone),
        cmocka_unit_test(test_refusals_say_why),
        cmocka_unit_test(test_a_cancelled_request_frees_its_slot),
        cmocka_unit_test(test_keep_alive_and_the_memory_budget),
        cmocka_unit_test(test_log_probabilities_come_with_each_token),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
