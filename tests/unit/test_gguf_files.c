/*
 * test_gguf_files.c — the GGUF reader on the shared real models
 * (../shared/testdata). The expected numbers (version, tensor and kv
 * counts, data offset, dimensions, types) are those SOURCES.md records,
 * read there with a parser independent of this one. Skips (77) when the
 * folder is absent.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/engine/gguf.h"
#include "tests/support/testutil.h"

static gguf_file *open_shared(const char *name)
{
    char *path = test_testdata(name);
    if (path == NULL)
        fail_msg("%s is missing from the shared test data", name);
    gguf_file *f = NULL;
    mlx_err err;
    int rc = gguf_open(path, &f, &err);
    if (rc != 0)
        fail_msg("%s", err.msg);
    free(path);
    return f;
}

static void expect_u32(const gguf_file *f, const char *key, uint32_t want)
{
    uint32_t v = 0;
    mlx_err err;
    if (gguf_get_u32(f, key, &v, &err) != 0)
        fail_msg("%s", err.msg);
    assert_int_equal(v, want);
}

static const gguf_tensor *expect_tensor(const gguf_file *f, const char *name,
                                        ggml_type type, uint64_t ne0, uint64_t ne1)
{
    const gguf_tensor *t = gguf_find_tensor(f, name);
    if (t == NULL)
        fail_msg("no tensor %s", name);
    assert_int_equal(t->type, type);
    assert_int_equal(t->ne[0], ne0);
    assert_int_equal(t->ne[1], ne1);
    assert_int_equal(t->n_dims, ne1 == 1 ? 1 : 2);
    return t;
}

static void test_stories260k(void **state)
{
    gguf_file *f = open_shared("stories260K.gguf");
    assert_int_equal(f->version, 3);
    assert_int_equal(f->n_tensors, 48);
    assert_int_equal(f->n_kv, 19);
    assert_int_equal(f->data_offset, 14176);
    assert_int_equal(f->alignment, 32);
    assert_null(gguf_find(f, "general.alignment"));
    assert_null(gguf_find(f, "general.file_type"));
    gguf_str s;
    assert_int_equal(gguf_get_str(f, "general.architecture", &s, NULL), 0);
    assert_true(gguf_str_eq(s, "llama"));
    expect_u32(f, "llama.embedding_length", 64);
    expect_u32(f, "llama.block_count", 5);
    expect_u32(f, "llama.attention.head_count", 8);
    expect_u32(f, "llama.attention.head_count_kv", 4);
    expect_u32(f, "llama.feed_forward_length", 172);
    expect_u32(f, "llama.rope.dimension_count", 8);
    expect_u32(f, "llama.context_length", 2048);
    expect_u32(f, "tokenizer.ggml.bos_token_id", 1);
    expect_u32(f, "tokenizer.ggml.eos_token_id", 2);
    expect_u32(f, "tokenizer.ggml.unknown_token_id", 0);
    expect_u32(f, "tokenizer.ggml.seperator_token_id", 4294967295u);
    float eps = 0, base = 10000;
    assert_int_equal(
        gguf_get_f32(f, "llama.attention.layer_norm_rms_epsilon", &eps, NULL), 0);
    assert_true(eps == 1e-5f);
    assert_int_equal(gguf_get_f32(f, "llama.rope.freq_base", &base, NULL), MLX_ENOENT);
    assert_true(base == 10000);
    assert_int_equal(gguf_get_str(f, "tokenizer.ggml.model", &s, NULL), 0);
    assert_true(gguf_str_eq(s, "llama"));
    const gguf_kv *tokens, *scores, *types;
    assert_int_equal(
        gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &tokens, NULL), 0);
    assert_int_equal(tokens->v.arr.n, 512);
    assert_true(gguf_str_eq(gguf_arr_str(tokens, 3), "<0x00>"));
    assert_true(gguf_str_eq(gguf_arr_str(tokens, 258), "<0xFF>"));
    uint64_t pos = 0, total = 0;
    for (uint64_t i = 0; i < tokens->v.arr.n; i++)
        total += gguf_arr_str_next(tokens, &pos).len;
    assert_int_equal(pos, tokens->v.arr.nbytes);
    assert_true(total > 512);
    assert_int_equal(
        gguf_get_arr(f, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, &scores, NULL), 0);
    assert_int_equal(scores->v.arr.n, 512);
    assert_int_equal(
        gguf_get_arr(f, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, &types, NULL), 0);
    int32_t type3;
    memcpy(&type3, types->v.arr.data + 4 * 3, 4);
    assert_int_equal(type3, 6); /* BYTE */

    for (uint64_t i = 0; i < f->n_tensors; i++)
        assert_int_equal(f->tensors[i].type, GGML_TYPE_F32);
    expect_tensor(f, "token_embd.weight", GGML_TYPE_F32, 64, 512);
    expect_tensor(f, "output.weight", GGML_TYPE_F32, 64, 512);
    expect_tensor(f, "output_norm.weight", GGML_TYPE_F32, 64, 1);
    expect_tensor(f, "blk.0.attn_q.weight", GGML_TYPE_F32, 64, 64);
    expect_tensor(f, "blk.4.attn_k.weight", GGML_TYPE_F32, 64, 32);
    expect_tensor(f, "blk.2.attn_v.weight", GGML_TYPE_F32, 64, 32);
    expect_tensor(f, "blk.3.ffn_gate.weight", GGML_TYPE_F32, 64, 172);
    const gguf_tensor *t =
        expect_tensor(f, "blk.1.ffn_down.weight", GGML_TYPE_F32, 172, 64);
    assert_int_equal(t->nbytes, 172 * 64 * 4);
    assert_null(gguf_find_tensor(f, "blk.5.attn_q.weight"));
    /* Parameters: 292,800 (SOURCES.md). */
    uint64_t params = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++)
        params += f->tensors[i].ne[0] * f->tensors[i].ne[1];
    assert_int_equal(params, 292800);
    gguf_close(f);
}

static void test_llama2_tiny_random(void **state)
{
    gguf_file *f = open_shared("llama-2-tiny-random.gguf");
    assert_int_equal(f->version, 3);
    assert_int_equal(f->n_tensors, 12);
    assert_int_equal(f->n_kv, 18);
    assert_int_equal(f->data_offset, 724416);
    gguf_str s;
    assert_int_equal(gguf_get_str(f, "general.name", &s, NULL), 0);
    assert_true(gguf_str_eq(s, "LLaMA v2"));
    expect_u32(f, "general.file_type", 1);
    expect_u32(f, "llama.embedding_length", 8);
    expect_u32(f, "llama.block_count", 1);
    expect_u32(f, "llama.feed_forward_length", 32);
    expect_u32(f, "llama.context_length", 4096);
    const gguf_kv *tokens;
    assert_int_equal(
        gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &tokens, NULL), 0);
    assert_int_equal(tokens->v.arr.n, 32000);
    expect_tensor(f, "token_embd.weight", GGML_TYPE_F16, 8, 32000);
    expect_tensor(f, "output.weight", GGML_TYPE_F16, 8, 32000);
    expect_tensor(f, "blk.0.ffn_down.weight", GGML_TYPE_F16, 32, 8);
    expect_tensor(f, "blk.0.attn_norm.weight", GGML_TYPE_F32, 8, 1);
    expect_tensor(f, "output_norm.weight", GGML_TYPE_F32, 8, 1);
    uint64_t params = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++)
        params += f->tensors[i].ne[0] * f->tensors[i].ne[1];
    assert_int_equal(params, 513048);
    gguf_close(f);
}

static void test_llama3_vocab(void **state)
{
    gguf_file *f = open_shared("llama3-vocab.gguf");
    assert_int_equal(f->n_tensors, 0);
    gguf_str s;
    assert_int_equal(gguf_get_str(f, "tokenizer.ggml.model", &s, NULL), 0);
    assert_true(gguf_str_eq(s, "gpt2"));
    assert_int_equal(gguf_get_str(f, "tokenizer.ggml.pre", &s, NULL), 0);
    assert_true(gguf_str_eq(s, "llama-bpe"));
    const gguf_kv *tokens, *merges;
    assert_int_equal(
        gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &tokens, NULL), 0);
    assert_int_equal(tokens->v.arr.n, 128256);
    assert_true(gguf_str_eq(gguf_arr_str(tokens, 128000), "<|begin_of_text|>"));
    assert_true(gguf_str_eq(gguf_arr_str(tokens, 128009), "<|eot_id|>"));
    assert_int_equal(
        gguf_get_arr(f, "tokenizer.ggml.merges", GGUF_TYPE_STRING, &merges, NULL), 0);
    assert_int_equal(merges->v.arr.n, 280147);
    expect_u32(f, "tokenizer.ggml.bos_token_id", 128000);
    expect_u32(f, "tokenizer.ggml.eos_token_id", 128009);
    gguf_close(f);
}

/* The syn256 family: 2 layers of dim 256, 8 heads, 4 KV heads, ff 768. */
static void check_syn256(const char *name, ggml_type matrices, ggml_type output)
{
    gguf_file *f = open_shared(name);
    assert_int_equal(f->version, 3);
    assert_int_equal(f->n_tensors, 3 + 2 * 9);
    expect_u32(f, "llama.embedding_length", 256);
    expect_u32(f, "llama.block_count", 2);
    expect_u32(f, "llama.attention.head_count", 8);
    expect_u32(f, "llama.attention.head_count_kv", 4);
    expect_u32(f, "llama.feed_forward_length", 768);
    expect_tensor(f, "blk.0.attn_q.weight", matrices, 256, 256);
    expect_tensor(f, "blk.1.attn_k.weight", matrices, 256, 128);
    expect_tensor(f, "blk.1.ffn_up.weight", matrices, 256, 768);
    expect_tensor(f, "blk.0.attn_norm.weight", GGML_TYPE_F32, 256, 1);
    expect_tensor(f, "output.weight", output, 256, 512);
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        assert_int_equal(t->offset % f->alignment, 0);
        assert_true(t->data >= (const void *)(f->base + f->data_offset));
        assert_true((const uint8_t *)t->data + t->nbytes <= f->base + f->size);
    }
    gguf_close(f);
}

static void test_syn256_family(void **state)
{
    check_syn256("syn256.gguf", GGML_TYPE_F32, GGML_TYPE_F32);
    check_syn256("syn256-f16.gguf", GGML_TYPE_F16, GGML_TYPE_F16);
    check_syn256("syn256-bf16.gguf", GGML_TYPE_BF16, GGML_TYPE_BF16);
    check_syn256("syn256-q8_0.gguf", GGML_TYPE_Q8_0, GGML_TYPE_Q8_0);
    check_syn256("syn256-q4_0.gguf", GGML_TYPE_Q4_0, GGML_TYPE_Q6_K);
    check_syn256("syn256-q4_k_m.gguf", GGML_TYPE_Q4_K, GGML_TYPE_Q6_K);
    check_syn256("syn256-q6_k.gguf", GGML_TYPE_Q6_K, GGML_TYPE_Q6_K);
}

/* Every model in the folder opens, and the in-memory reader agrees with the
 * mapped one. */
static void test_every_shared_model_opens(void **state)
{
    char *any = test_testdata("SOURCES.md");
    assert_non_null(any);
    char *dir = strdup(any);
    *strrchr(dir, '/') = '\0';
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 5, ".gguf") != 0)
            continue;
        char *path = test_join(dir, e->d_name);
        gguf_file *f = NULL, *m = NULL;
        mlx_err err;
        if (gguf_open(path, &f, &err) != 0)
            fail_msg("%s", err.msg);
        size_t size = 0;
        char *bytes = test_read_file(path, &size);
        if (gguf_open_mem(bytes, size, &m, &err) != 0)
            fail_msg("%s", err.msg);
        assert_int_equal(f->n_kv, m->n_kv);
        assert_int_equal(f->n_tensors, m->n_tensors);
        assert_int_equal(f->data_offset, m->data_offset);
        for (uint64_t i = 0; i < f->n_tensors; i++)
            assert_memory_equal(f->tensors[i].data, m->tensors[i].data,
                                f->tensors[i].nbytes < 64 ? f->tensors[i].nbytes : 64);
        gguf_close(m);
        gguf_close(f);
        free(bytes);
        free(path);
        n++;
    }
    closedir(d);
    assert_true(n >= 12);
    free(dir);
    free(any);
}

int main(void)
{
    char *probe = test_testdata("stories260K.gguf");
    if (probe == NULL) {
        printf("skipped: the shared test models (../shared/testdata or $MLX_TESTDATA) "
               "are absent\n");
        return TEST_SKIP;
    }
    free(probe);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stories260k),
        cmocka_unit_test(test_llama2_tiny_random),
        cmocka_unit_test(test_llama3_vocab),
        cmocka_unit_test(test_syn256_family),
        cmocka_unit_test(test_every_shared_model_opens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
