/*
 * test_synth.c — agent/engine synthetic models: the file opens with the
 * reader and holds the tensors, shapes, types and metadata a llama loader
 * expects; the same configuration gives the same bytes and another seed
 * other weights; quantized files hold the F32 file's weights within the
 * type's error; the vocabulary is what a SentencePiece tokenizer needs;
 * bad configurations are refused with a sentence.
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

#include "agent/engine/gguf.h"
#include "agent/engine/quant.h"
#include "agent/engine/synth.h"
#include "tests/support/testutil.h"

struct fixture {
    char *dir;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    f->dir = test_tmpdir("synth");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    test_tmpdir_remove(f->dir);
    free(f);
    return 0;
}

static char *write_model(struct fixture *fx, const char *name, const synth_config *c,
                         synth_stats *st)
{
    char *path = test_join(fx->dir, name);
    mlx_err err;
    if (synth_write(c, path, st, &err) != 0)
        fail_msg("%s", err.msg);
    return path;
}

static gguf_file *open_model(const char *path)
{
    gguf_file *f = NULL;
    mlx_err err;
    if (gguf_open(path, &f, &err) != 0)
        fail_msg("%s", err.msg);
    return f;
}

static uint32_t get_u32(const gguf_file *f, const char *key)
{
    uint32_t v = 0;
    mlx_err err;
    if (gguf_get_u32(f, key, &v, &err) != 0)
        fail_msg("%s", err.msg);
    return v;
}

static void expect_tensor(const gguf_file *f, const char *name, ggml_type type,
                          uint64_t ne0, uint64_t ne1)
{
    const gguf_tensor *t = gguf_find_tensor(f, name);
    if (t == NULL)
        fail_msg("no tensor %s", name);
    if (t->type != type || t->ne[0] != ne0 || t->ne[1] != ne1)
        fail_msg("%s is %s [%llu, %llu], want %s [%llu, %llu]", name,
                 ggml_type_name(t->type), (unsigned long long)t->ne[0],
                 (unsigned long long)t->ne[1], ggml_type_name(type),
                 (unsigned long long)ne0, (unsigned long long)ne1);
    assert_int_equal(t->n_dims, ne1 == 1 ? 1 : 2);
}

static void test_synth_default_model_has_the_llama_layout(void **state)
{
    synth_config c;
    synth_config_default(&c);
    synth_stats st;
    char *path = write_model(*state, "default.gguf", &c, &st);
    gguf_file *f = open_model(path);
    assert_int_equal(f->n_tensors, 3 + 9 * 2);
    assert_int_equal(st.n_tensors, f->n_tensors);
    assert_int_equal(st.bytes, f->size);
    assert_true(f->size < 4u << 20); /* a small model */

    gguf_str s;
    assert_int_equal(gguf_get_str(f, "general.architecture", &s, NULL), 0);
    assert_true(gguf_str_eq(s, "llama"));
    assert_int_equal(gguf_get_str(f, "general.name", &s, NULL), 0);
    assert_int_equal(get_u32(f, "general.file_type"), 0);
    assert_int_equal(get_u32(f, "llama.context_length"), 2048);
    assert_int_equal(get_u32(f, "llama.embedding_length"), 128);
    assert_int_equal(get_u32(f, "llama.block_count"), 2);
    assert_int_equal(get_u32(f, "llama.feed_forward_length"), 384);
    assert_int_equal(get_u32(f, "llama.attention.head_count"), 4);
    assert_int_equal(get_u32(f, "llama.attention.head_count_kv"), 2);
    assert_int_equal(get_u32(f, "llama.rope.dimension_count"), 32);
    float eps = 0, base = 0;
    assert_int_equal(
        gguf_get_f32(f, "llama.attention.layer_norm_rms_epsilon", &eps, NULL), 0);
    assert_true(eps == 1e-5f);
    assert_int_equal(gguf_get_f32(f, "llama.rope.freq_base", &base, NULL), 0);
    assert_true(base == 10000.0f);
    assert_int_equal(get_u32(f, "tokenizer.ggml.bos_token_id"), 1);
    assert_int_equal(get_u32(f, "tokenizer.ggml.eos_token_id"), 2);
    assert_int_equal(get_u32(f, "tokenizer.ggml.unknown_token_id"), 0);
    assert_int_equal(gguf_get_str(f, "tokenizer.ggml.model", &s, NULL), 0);
    assert_true(gguf_str_eq(s, "llama"));

    expect_tensor(f, "token_embd.weight", GGML_TYPE_F32, 128, 512);
    expect_tensor(f, "output.weight", GGML_TYPE_F32, 128, 512);
    expect_tensor(f, "output_norm.weight", GGML_TYPE_F32, 128, 1);
    for (int l = 0; l < 2; l++) {
        char name[64];
#define T(suffix, type, ne0, ne1)                                                        \
    snprintf(name, sizeof name, "blk.%d.%s.weight", l, suffix);                          \
    expect_tensor(f, name, type, ne0, ne1)
        T("attn_norm", GGML_TYPE_F32, 128, 1);
        T("attn_q", GGML_TYPE_F32, 128, 128);
        T("attn_k", GGML_TYPE_F32, 128, 64);
        T("attn_v", GGML_TYPE_F32, 128, 64);
        T("attn_output", GGML_TYPE_F32, 128, 128);
        T("ffn_norm", GGML_TYPE_F32, 128, 1);
        T("ffn_gate", GGML_TYPE_F32, 128, 384);
        T("ffn_up", GGML_TYPE_F32, 128, 384);
        T("ffn_down", GGML_TYPE_F32, 384, 128);
#undef T
    }
    assert_null(gguf_find_tensor(f, "blk.2.attn_q.weight"));

    /* Matrices have standard deviation 1/sqrt(row length); norms are 1 ± 0.1. */
    const gguf_tensor *q = gguf_find_tensor(f, "blk.0.attn_q.weight");
    const float *w = q->data;
    double sum2 = 0;
    for (size_t i = 0; i < 128 * 128; i++)
        sum2 += (double)w[i] * w[i];
    double sd = sqrt(sum2 / (128 * 128));
    assert_true(fabs(sd - 1 / sqrt(128.0)) < 0.005);
    const float *norm = gguf_find_tensor(f, "blk.1.ffn_norm.weight")->data;
    bool differs = false;
    for (int i = 0; i < 128; i++) {
        assert_true(norm[i] >= 0.9f && norm[i] <= 1.1f);
        differs |= norm[i] != norm[0];
    }
    assert_true(differs);
    gguf_close(f);
    free(path);
}

static void test_synth_is_deterministic(void **state)
{
    synth_config c;
    synth_config_default(&c);
    c.type = GGML_TYPE_Q4_0;
    char *a = write_model(*state, "a.gguf", &c, NULL);
    char *b = write_model(*state, "b.gguf", &c, NULL);
    c.seed = 43;
    char *other = write_model(*state, "c.gguf", &c, NULL);
    size_t na, nb, nc;
    char *da = test_read_file(a, &na), *db = test_read_file(b, &nb),
         *dc = test_read_file(other, &nc);
    assert_int_equal(na, nb);
    assert_memory_equal(da, db, na);
    assert_int_equal(na, nc); /* the same layout, other weights */
    assert_memory_not_equal(da, dc, na);
    free(da);
    free(db);
    free(dc);
    free(a);
    free(b);
    free(other);
}

/* The same seed gives the same weights whatever the type: a quantized file
 * holds the F32 file's values within the type's error. */
static void test_synth_types_hold_the_same_weights(void **state)
{
    synth_config c;
    synth_config_default(&c);
    c.n_layers = 1;
    char *ref_path = write_model(*state, "f32.gguf", &c, NULL);
    gguf_file *ref = open_model(ref_path);
    const struct {
        ggml_type type;
        uint32_t file_type;
        double tolerance; /* relative RMS */
    } types[] = {{GGML_TYPE_F16, 1, 1e-3},
                 {GGML_TYPE_BF16, 32, 5e-3},
                 {GGML_TYPE_Q8_0, 7, 0.01},
                 {GGML_TYPE_Q4_0, 2, 0.15}};
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        c.type = types[k].type;
        char *path = write_model(*state, "typed.gguf", &c, NULL);
        gguf_file *f = open_model(path);
        assert_int_equal(get_u32(f, "general.file_type"), types[k].file_type);
        expect_tensor(f, "blk.0.attn_norm.weight", GGML_TYPE_F32, 128, 1);
        for (uint64_t i = 0; i < f->n_tensors; i++) {
            const gguf_tensor *t = &f->tensors[i], *r = &ref->tensors[i];
            assert_int_equal(t->type, t->n_dims == 1 ? GGML_TYPE_F32 : types[k].type);
            size_t n = (size_t)t->ne[0], rows = (size_t)t->ne[1];
            float *y = malloc(n * rows * sizeof *y);
            assert_int_equal(quant_dequantize_row(t->type, t->data, y, n * rows), 0);
            const float *x = r->data;
            double e2 = 0, x2 = 0;
            for (size_t j = 0; j < n * rows; j++) {
                e2 += ((double)y[j] - x[j]) * ((double)y[j] - x[j]);
                x2 += (double)x[j] * x[j];
            }
            assert_true(sqrt(e2 / x2) < types[k].tolerance);
            free(y);
        }
        gguf_close(f);
        free(path);
    }
    gguf_close(ref);
    free(ref_path);
}

static bool has_token(const synth_vocab *v, const char *s, size_t len)
{
    for (size_t i = 0; i < v->n; i++)
        if (strlen(v->tokens[i]) == len && memcmp(v->tokens[i], s, len) == 0)
            return true;
    return false;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_synth_vocabulary(void **state)
{
    synth_vocab v;
    mlx_err err;
    assert_int_equal(synth_vocab_build(512, &v, &err), 0);
    assert_int_equal(v.n, 512);
    assert_string_equal(v.tokens[0], "<unk>");
    assert_int_equal(v.types[0], 2);
    assert_string_equal(v.tokens[1], "<s>");
    assert_string_equal(v.tokens[2], "</s>");
    assert_int_equal(v.types[2], 3);
    assert_string_equal(v.tokens[3], "<0x00>");
    assert_string_equal(v.tokens[3 + 0x41], "<0x41>");
    assert_string_equal(v.tokens[258], "<0xFF>");
    assert_int_equal(v.types[258], 6);
    assert_string_equal(v.tokens[259], "\xe2\x96\x81");
    assert_true(has_token(&v, "a", 1));
    assert_true(has_token(&v, "~", 1));
    assert_true(has_token(&v, "\xe2\x96\x81the", 6));
    assert_true(has_token(&v, "\xe2\x96\x81th", 5));
    assert_true(has_token(&v,
                          "\xe2\x96\x81"
                          "a",
                          4));
    /* Every piece of two or more characters can be built by merging: its
     * prefix one character shorter is a token too (or a single character),
     * and pieces outrank characters. */
    for (size_t i = 259; i < v.n; i++) {
        const char *t = v.tokens[i];
        size_t len = strlen(t), cut = len - 1;
        while (cut > 0 && ((unsigned char)t[cut] & 0xc0) == 0x80)
            cut--;
        assert_int_equal(v.types[i], 1);
        if (cut == 0)
            continue;
        if (!has_token(&v, t, cut))
            fail_msg("token %zu '%s' lacks its prefix", i, t);
        assert_true(v.scores[i] > -1e6f);
    }
    synth_vocab_free(&v);

    /* Large vocabularies stay unique; the smallest is specials and bytes. */
    assert_int_equal(synth_vocab_build(32000, &v, &err), 0);
    char **sorted = malloc(v.n * sizeof *sorted);
    memcpy(sorted, v.tokens, v.n * sizeof *sorted);
    qsort(sorted, v.n, sizeof *sorted, cmp_str);
    for (size_t i = 1; i < v.n; i++)
        if (strcmp(sorted[i - 1], sorted[i]) == 0)
            fail_msg("token '%s' appears twice", sorted[i]);
    free(sorted);
    synth_vocab_free(&v);
    assert_int_equal(synth_vocab_build(SYNTH_MIN_VOCAB, &v, &err), 0);
    assert_string_equal(v.tokens[SYNTH_MIN_VOCAB - 1], "<0xFF>");
    synth_vocab_free(&v);
    assert_int_equal(synth_vocab_build(SYNTH_MAX_VOCAB, &v, &err), 0);
    assert_int_equal(v.n, SYNTH_MAX_VOCAB);
    synth_vocab_free(&v);
    assert_int_equal(synth_vocab_build(100, &v, &err), MLX_EUSAGE);
}

static void expect_refused(synth_config c, const char *words)
{
    mlx_err err;
    mlx_err_clear(&err);
    assert_int_equal(synth_check(&c, &err), MLX_EUSAGE);
    if (strstr(err.msg, words) == NULL)
        fail_msg("'%s' does not mention '%s'", err.msg, words);
    char *dir = test_tmpdir("synth-bad");
    char *path = test_join(dir, "never.gguf");
    assert_int_equal(synth_write(&c, path, NULL, &err), MLX_EUSAGE);
    FILE *f = fopen(path, "rb");
    assert_null(f);
    free(path);
    test_tmpdir_remove(dir);
}

static void test_synth_refuses_bad_configurations(void **state)
{
    synth_config c, d;
    synth_config_default(&c);
    assert_int_equal(synth_check(&c, NULL), 0);
    d = c, d.dim = 100, d.n_heads = 3;
    expect_refused(d, "not divisible by --heads");
    d = c, d.n_kv_heads = 3;
    expect_refused(d, "not divisible by --kv-heads");
    d = c, d.dim = 100, d.n_heads = 4;
    expect_refused(d, "even head size");
    d = c, d.type = GGML_TYPE_Q8_0, d.ff = 100;
    expect_refused(d, "multiples of 32");
    d = c, d.type = GGML_TYPE_Q4_0, d.dim = 80, d.n_heads = 2, d.n_kv_heads = 1;
    expect_refused(d, "--dim (80)");
    d = c, d.type = GGML_TYPE_Q4_K;
    expect_refused(d, "cannot be written");
    d = c, d.n_layers = 0;
    expect_refused(d, "--layers 0");
    d = c, d.vocab = 10;
    expect_refused(d, "--vocab 10");
    d = c, d.dim = SYNTH_MAX_DIM * 2;
    expect_refused(d, "--dim");
    ggml_type t;
    mlx_err err;
    assert_int_equal(synth_parse_type("Q8_0", &t, &err), 0);
    assert_int_equal(t, GGML_TYPE_Q8_0);
    assert_int_equal(synth_parse_type("bf16", &t, &err), 0);
    assert_int_equal(t, GGML_TYPE_BF16);
    assert_int_equal(synth_parse_type("q4_k", &t, &err), MLX_EUSAGE);
    assert_non_null(strstr(err.msg, "q4_k"));
    assert_int_equal(synth_parse_type("f3", &t, &err), MLX_EUSAGE);
    assert_int_equal(synth_parse_type("f322", &t, &err), MLX_EUSAGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_synth_default_model_has_the_llama_layout,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_synth_is_deterministic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_synth_types_hold_the_same_weights, setup,
                                        teardown),
        cmocka_unit_test(test_synth_vocabulary),
        cmocka_unit_test(test_synth_refuses_bad_configurations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
