/*
 * test_forward.c — the forward pass against llama.cpp's outputs for every
 * model in ../shared/testdata/reference.json, compared as REFERENCE.md
 * says:
 *
 *   F32 weights        top-10 logits within 1e-3 (relative; absolute near
 *                      0), the same ten ids
 *   F16, BF16          within 0.005 x the row's largest |logit|, the same
 *                      ids apart from near-ties at the tenth place
 *   Q8_0, Q4_0, Q4_K,  within 0.02 x the row's largest |logit|, the
 *   Q6_K               reference's top-1 among our top 3
 *   greedy ids         equal at every step up to the first whose reference
 *                      margin (top-1 minus top-2) is below the type's
 *                      tolerance
 *
 * on every kernel path this CPU runs (scalar, AVX2, NEON). The prompts are
 * the reference's own token ids, so this tests the arithmetic alone. Also:
 * the logits are the same bits with one thread and with two, with a prompt
 * fed at once and token by token, with sequences fed together and alone,
 * and with a prefix copied from another sequence or computed. Skips (77)
 * when the shared folder is absent.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "agent/engine/model.h"
#include "tests/support/testutil.h"

static json_t *reference;

typedef enum kind { KIND_F32, KIND_HALF, KIND_QUANT } kind;

static kind kind_of(const engine_model *m)
{
    ggml_type t = m->layers[0].wq.type;
    return t == GGML_TYPE_F32                          ? KIND_F32
           : t == GGML_TYPE_F16 || t == GGML_TYPE_BF16 ? KIND_HALF
                                                       : KIND_QUANT;
}

/* The allowed difference for a logit near value, in a row whose largest
 * magnitude is max_abs. */
static double tolerance(kind k, double value, double max_abs)
{
    if (k == KIND_F32)
        return fabs(value) > 1 ? 1e-3 * fabs(value) : 1e-3;
    return (k == KIND_HALF ? 0.005 : 0.02) * max_abs;
}

static double max_abs(const float *logits, uint32_t n)
{
    double m = 0;
    for (uint32_t i = 0; i < n; i++)
        if (fabs(logits[i]) > m)
            m = fabs(logits[i]);
    return m;
}

/* The rank of id among logits (0 = the largest; ties to the lower id). */
static uint32_t rank_of(const float *logits, uint32_t n, uint32_t id)
{
    uint32_t r = 0;
    for (uint32_t i = 0; i < n; i++)
        r += logits[i] > logits[id] || (logits[i] == logits[id] && i < id);
    return r;
}

static uint32_t argmax(const float *logits, uint32_t n)
{
    uint32_t best = 0;
    for (uint32_t i = 1; i < n; i++)
        if (logits[i] > logits[best])
            best = i;
    return best;
}

static const kernels *path_under_test;

static engine_model *open_model(const char *file, int threads, gguf_file **g)
{
    char *path = test_testdata(file);
    assert_non_null(path);
    mlx_err err;
    mlx_err_clear(&err);
    if (gguf_open(path, g, &err) != 0)
        fail_msg("%s: %s", file, err.msg);
    engine_opts o = {.threads = threads, .n_ctx = 256};
    engine_model *m;
    if (model_open(*g, &o, &m, &err) != 0)
        fail_msg("%s: %s", file, err.msg);
    free(path);
    if (path_under_test != NULL)
        m->k = path_under_test;
    return m;
}

static void feed_ids(engine_seq *s, json_t *ids)
{
    size_t n = json_array_size(ids);
    int32_t *v = calloc(n, sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = (int32_t)json_integer_value(json_array_get(ids, i));
    mlx_err err;
    if (engine_seq_feed(s, v, n, &err) != 0)
        fail_msg("%s", err.msg);
    free(v);
}

static void check_top10(const char *file, const char *prompt, kind k, const float *logits,
                        uint32_t n_vocab, json_t *top10)
{
    double big = max_abs(logits, n_vocab);
    double tenth = json_real_value(json_array_get(json_array_get(top10, 9), 1));
    for (size_t i = 0; i < json_array_size(top10); i++) {
        json_t *pair = json_array_get(top10, i);
        uint32_t id = (uint32_t)json_integer_value(json_array_get(pair, 0));
        double want = json_number_value(json_array_get(pair, 1));
        double tol = tolerance(k, want, big);
        if (fabs(logits[id] - want) > tol)
            fail_msg("%s \"%s\": logit of token %u is %.5f, llama.cpp says %.5f (+-%.5f)",
                     file, prompt, id, (double)logits[id], want, tol);
        uint32_t r = rank_of(logits, n_vocab, id);
        if (i == 0 && k == KIND_QUANT && r >= 3)
            fail_msg("%s \"%s\": the reference's top token %u is our #%u", file, prompt,
                     id, r + 1);
        /* Outside our top 10 only when it ties with the tenth. */
        if (k != KIND_QUANT && r >= 10 && fabs(want - tenth) > 2 * tol)
            fail_msg("%s \"%s\": token %u is our #%u, not in the top 10", file, prompt,
                     id, r + 1);
    }
}

static void check_model(json_t *model, int threads)
{
    const char *file = json_string_value(json_object_get(model, "file"));
    gguf_file *g;
    engine_model *m = open_model(file, threads, &g);
    kind k = kind_of(m);
    size_t r;
    json_t *run;
    json_array_foreach(json_object_get(model, "runs"), r, run)
    {
        const char *prompt = json_string_value(json_object_get(run, "prompt"));
        engine_seq *s;
        assert_int_equal(engine_seq_new(m, &s, NULL), 0);
        feed_ids(s, json_object_get(run, "prompt_ids"));
        check_top10(file, prompt, k, engine_seq_logits(s), m->cfg.n_vocab,
                    json_object_get(run, "top10"));
        json_t *greedy = json_object_get(run, "greedy_ids");
        json_t *margins = json_object_get(run, "greedy_margins");
        size_t matched = 0;
        for (size_t i = 0; i < json_array_size(greedy); i++) {
            const float *logits = engine_seq_logits(s);
            double tol = tolerance(k, 0, max_abs(logits, m->cfg.n_vocab));
            if (k == KIND_F32)
                tol = tolerance(k, logits[argmax(logits, m->cfg.n_vocab)], 0);
            if (json_number_value(json_array_get(margins, i)) < tol)
                break; /* a near-tie: either token is right from here on */
            int32_t want = (int32_t)json_integer_value(json_array_get(greedy, i));
            uint32_t got = argmax(logits, m->cfg.n_vocab);
            if ((int32_t)got != want)
                fail_msg("%s \"%s\": greedy step %zu gives %u, llama.cpp %d", file,
                         prompt, i, got, (int)want);
            matched++;
            assert_int_equal(engine_seq_feed(s, &want, 1, NULL), 0);
        }
        if (strcmp(file, "stories260K.gguf") == 0)
            assert_int_equal(matched, json_array_size(greedy)); /* margins all > 0.1 */
        printf("%-7s %-26s %-32.32s %zu/%zu greedy ids\n", m->k->name, file, prompt,
               matched, json_array_size(greedy));
        engine_seq_free(s);
    }
    model_close(m);
    gguf_close(g);
}

static void test_every_model_matches_the_reference(void **state)
{
    static const kernel_path paths[] = {KERNEL_SCALAR, KERNEL_AVX2, KERNEL_NEON};
    int tested = 0;
    for (size_t p = 0; p < sizeof paths / sizeof paths[0]; p++) {
        path_under_test = kernels_for(paths[p]);
        if (path_under_test == NULL)
            continue; /* not this CPU's */
        tested++;
        size_t i;
        json_t *model;
        json_array_foreach(json_object_get(reference, "models"), i, model)
        {
            check_model(model, 2);
        }
    }
    path_under_test = NULL;
    assert_true(tested >= 1);
}

static void copy_logits(engine_seq *s, float **out, uint32_t n)
{
    *out = malloc(n * sizeof(float));
    memcpy(*out, engine_seq_logits(s), n * sizeof(float));
}

static void test_a_batch_gives_what_tokens_one_by_one_give(void **state)
{
    static const int32_t prompt[] = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376};
    gguf_file *g;
    engine_model *m = open_model("syn256-q4_k_m.gguf", 2, &g);
    uint32_t n_vocab = m->cfg.n_vocab;
    engine_seq *a, *b;
    assert_int_equal(engine_seq_new(m, &a, NULL), 0);
    assert_int_equal(engine_seq_new(m, &b, NULL), 0);
    assert_int_equal(engine_seq_feed(a, prompt, 10, NULL), 0);
    /* One token at a time never reuses a prefix: every one is computed. */
    for (size_t i = 0; i < 10; i++)
        assert_int_equal(engine_seq_feed(b, &prompt[i], 1, NULL), 0);
    float *la, *lb;
    copy_logits(a, &la, n_vocab);
    copy_logits(b, &lb, n_vocab);
    assert_memory_equal(la, lb, n_vocab * sizeof(float));
    free(la);
    free(lb);
    engine_seq_free(a);
    engine_seq_free(b);
    model_close(m);
    gguf_close(g);
}

/* Sequences fed in one call give what each gives fed alone, with another
 * model instance (so no prefix is shared) as the reference. */
static void test_sequences_fed_together_give_what_each_gives_alone(void **state)
{
    static const int32_t p[3][6] = {
        {1, 403, 407, 261, 378, 432}, {1, 300, 301, 302, 303, 304}, {1, 5, 6, 7, 8, 9}};
    static const size_t len[3] = {6, 3, 5};
    gguf_file *g1, *g2;
    engine_model *together = open_model("syn256-qwen2-q4_k_m.gguf", 2, &g1);
    engine_model *alone = open_model("syn256-qwen2-q4_k_m.gguf", 2, &g2);
    uint32_t n_vocab = together->cfg.n_vocab;
    engine_seq *s[3];
    engine_batch_item items[3];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(engine_seq_new(together, &s[i], NULL), 0);
        items[i] = (engine_batch_item){s[i], p[i], len[i]};
    }
    assert_int_equal(engine_feed_batch(together, items, 3, NULL), 0);
    /* And a decode step of all three together. */
    static const int32_t next[3] = {10, 11, 12};
    for (int i = 0; i < 3; i++)
        items[i] = (engine_batch_item){s[i], &next[i], 1};
    assert_int_equal(engine_feed_batch(together, items, 3, NULL), 0);
    for (int i = 0; i < 3; i++) {
        engine_seq *r;
        assert_int_equal(engine_seq_new(alone, &r, NULL), 0);
        assert_int_equal(engine_seq_feed(r, p[i], len[i], NULL), 0);
        assert_int_equal(engine_seq_feed(r, &next[i], 1, NULL), 0);
        assert_int_equal(engine_seq_len(s[i]), len[i] + 1);
        assert_memory_equal(engine_seq_logits(s[i]), engine_seq_logits(r),
                            n_vocab * sizeof(float));
        engine_seq_free(r);
        engine_seq_free(s[i]);
    }
    /* A refused call changes nothing. */
    engine_seq *t;
    assert_int_equal(engine_seq_new(together, &t, NULL), 0);
    static const int32_t bad = 1 << 30;
    engine_batch_item two[2] = {{t, p[0], 6}, {t, &bad, 1}};
    mlx_err err;
    assert_int_equal(engine_feed_batch(together, two, 2, &err), MLX_EINVAL);
    assert_non_null(strstr(err.msg, "same sequence"));
    assert_int_equal(engine_seq_len(t), 0);
    engine_seq_free(t);
    model_close(together);
    model_close(alone);
    gguf_close(g1);
    gguf_close(g2);
}

static void test_a_shared_prefix_is_copied_not_computed(void **state)
{
    static const int32_t system[] = {1, 403, 407, 261, 378, 432, 383, 286};
    int32_t p1[12], p2[12];
    memcpy(p1, system, sizeof system);
    memcpy(p2, system, sizeof system);
    for (int i = 8; i < 12; i++) {
        p1[i] = 300 + i;
        p2[i] = 400 + i;
    }
    gguf_file *g1, *g2;
    engine_model *m = open_model("syn256-q8_0.gguf", 2, &g1);
    engine_model *fresh = open_model("syn256-q8_0.gguf", 2, &g2);
    uint32_t n_vocab = m->cfg.n_vocab;
    engine_seq *a, *b, *c, *ref;
    assert_int_equal(engine_seq_new(m, &a, NULL), 0);
    assert_int_equal(engine_seq_feed(a, p1, 12, NULL), 0);
    /* From a live sequence: the shared eight positions are copied. */
    assert_int_equal(engine_seq_new(m, &b, NULL), 0);
    assert_int_equal(engine_seq_feed(b, p2, 12, NULL), 0);
    assert_true(m->reused_tokens == 8);
    assert_int_equal(engine_seq_new(fresh, &ref, NULL), 0);
    assert_int_equal(engine_seq_feed(ref, p2, 12, NULL), 0);
    assert_true(fresh->reused_tokens == 0);
    assert_memory_equal(engine_seq_logits(b), engine_seq_logits(ref),
                        n_vocab * sizeof(float));
    /* From a finished one: all but the last token of p1. */
    engine_seq_free(a);
    engine_seq_free(b);
    assert_int_equal(engine_seq_new(m, &c, NULL), 0);
    assert_int_equal(engine_seq_feed(c, p1, 12, NULL), 0);
    assert_true(m->reused_tokens == 8 + 11);
    engine_seq_truncate(ref, 0);
    assert_int_equal(engine_seq_feed(ref, p1, 12, NULL), 0);
    assert_memory_equal(engine_seq_logits(c), engine_seq_logits(ref),
                        n_vocab * sizeof(float));
    engine_seq_free(c);
    engine_seq_free(ref);
    model_close(m);
    model_close(fresh);
    gguf_close(g1);
    gguf_close(g2);
}

static void test_one_thread_or_two_give_the_same_logits(void **state)
{
    static const int32_t prompt[] = {1, 403, 407, 261, 378};
    float *logits[2];
    uint32_t n_vocab = 0;
    for (int t = 0; t < 2; t++) {
        gguf_file *g;
        engine_model *m = open_model("syn256-q4_k_m.gguf", t + 1, &g);
        engine_seq *s;
        assert_int_equal(engine_seq_new(m, &s, NULL), 0);
        assert_int_equal(engine_seq_feed(s, prompt, 5, NULL), 0);
        n_vocab = m->cfg.n_vocab;
        logits[t] = malloc(n_vocab * sizeof(float));
        memcpy(logits[t], engine_seq_logits(s), n_vocab * sizeof(float));
        engine_seq_free(s);
        model_close(m);
        gguf_close(g);
    }
    assert_memory_equal(logits[0], logits[1], n_vocab * sizeof(float));
    free(logits[0]);
    free(logits[1]);
}

static void test_sequence_limits_and_truncation(void **state)
{
    gguf_file *g;
    engine_model *m = open_model("stories260K.gguf", 1, &g);
    engine_seq *a, *b;
    assert_int_equal(engine_seq_new(m, &a, NULL), 0);
    assert_int_equal(engine_seq_new(m, &b, NULL), 0);
    assert_null(engine_seq_logits(a));
    mlx_err err;
    int32_t bad = (int32_t)m->cfg.n_vocab;
    assert_int_equal(engine_seq_feed(a, &bad, 1, &err), MLX_EINVAL);
    assert_non_null(strstr(err.msg, "outside the vocabulary"));
    int32_t *many = calloc(m->n_ctx + 3, sizeof *many);
    assert_int_equal(engine_seq_feed(a, many, m->n_ctx + 3, &err), MLX_ETOOBIG);
    assert_non_null(strstr(err.msg, "3 too many"));
    assert_int_equal(engine_seq_len(a), 0);
    free(many);

    /* Truncating to a shared prefix and feeding the rest gives what
     * feeding the whole prompt to a fresh sequence gives. */
    static const int32_t p1[] = {1, 403, 407, 261, 378}, p2[] = {1, 403, 407, 300, 301};
    assert_int_equal(engine_seq_feed(a, p1, 5, NULL), 0);
    engine_seq_truncate(a, 3);
    assert_int_equal(engine_seq_len(a), 3);
    assert_null(engine_seq_logits(a));
    assert_int_equal(engine_seq_feed(a, p2 + 3, 2, NULL), 0);
    assert_int_equal(engine_seq_feed(b, p2, 5, NULL), 0);
    assert_memory_equal(engine_seq_logits(a), engine_seq_logits(b),
                        m->cfg.n_vocab * sizeof(float));
    engine_seq_free(a);
    engine_seq_free(b);
    model_close(m);
    gguf_close(g);
}

static int group_setup(void **state)
{
    char *path = test_testdata("reference.json");
    if (path == NULL) {
        fprintf(stderr,
                "skipped: the shared test models (../shared/testdata) are absent\n");
        exit(TEST_SKIP);
    }
    json_error_t je;
    reference = json_load_file(path, 0, &je);
    free(path);
    return reference != NULL ? 0 : -1;
}

static int group_teardown(void **state)
{
    json_decref(reference);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_model_matches_the_reference),
        cmocka_unit_test(test_a_batch_gives_what_tokens_one_by_one_give),
        cmocka_unit_test(test_sequences_fed_together_give_what_each_gives_alone),
        cmocka_unit_test(test_a_shared_prefix_is_copied_not_computed),
        cmocka_unit_test(test_one_thread_or_two_give_the_same_logits),
        cmocka_unit_test(test_sequence_limits_and_truncation),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
