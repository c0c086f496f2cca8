/*
 * test_describe.c — engine_describe, which reads what a GGUF file holds
 * from its metadata and tensor table alone: for every model it agrees with
 * what engine_load reports (architecture, name, chat format and template,
 * quantization, sizes), counts every tensor of the file (its n_params and
 * weight_bytes are at least engine_load's and equal the sums over the
 * tensor table, figured here from the shapes and each type's block
 * geometry), names the quantization as llama.cpp does from
 * general.file_type or, without one, after the type holding most bytes of
 * matrices; and refuses a missing file, a file that is not GGUF and an
 * unsupported architecture with a sentence.
 *
 * Synthetic models of every type synth writes run everywhere; the shared
 * models (../shared/testdata: stories260K, the syn256 family with the K
 * types, qwen2) are checked too where they exist. Without them the synthetic
 * tests still run and must pass, and the test then exits 77 (skipped).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/engine/engine.h"
#include "agent/engine/gguf.h"
#include "agent/engine/synth.h"
#include "tests/support/testutil.h"

static char *dir;

static int group_setup(void **state)
{
    dir = test_tmpdir("describe");
    return dir != NULL ? 0 : -1;
}

static int group_teardown(void **state)
{
    test_tmpdir_remove(dir);
    return 0;
}

/* ---- helpers --------------------------------------------------------------- */

/* Elements and bytes of every tensor of the file, from its shapes and the
 * block geometry of its types. */
static void file_sums(const char *path, uint64_t *params, uint64_t *bytes)
{
    gguf_file *f = NULL;
    mlx_err err;
    if (gguf_open(path, &f, &err) != 0)
        fail_msg("%s", err.msg);
    *params = *bytes = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        uint32_t be = 0, bb = 0;
        ggml_type_block(t->type, &be, &bb);
        assert_true(be > 0 && t->ne[0] % be == 0);
        uint64_t rows = 1;
        for (uint32_t d = 1; d < t->n_dims; d++)
            rows *= t->ne[d];
        *params += t->ne[0] * rows;
        *bytes += t->ne[0] / be * bb * rows;
    }
    gguf_close(f);
}

/* Describes path, loads it, and checks that the two agree; returns what
 * describe said. */
static engine_info describe_and_load(const char *path)
{
    engine_info d;
    mlx_err err;
    mlx_err_clear(&err);
    if (engine_describe(path, &d, &err) != 0)
        fail_msg("describe %s: %s", path, err.msg);
    engine_opts opts = {.threads = 1, .n_ctx = 64};
    engine_model *m = NULL;
    if (engine_load(path, &opts, &m, &err) != 0)
        fail_msg("load %s: %s", path, err.msg);
    const engine_info *l = engine_model_info(m);
    assert_string_equal(d.arch, l->arch);
    assert_string_equal(d.name, l->name);
    assert_string_equal(d.chat_format, l->chat_format);
    assert_int_equal(d.chat_template, l->chat_template);
    assert_string_equal(d.quantization, l->quantization);
    assert_int_equal(d.n_vocab, l->n_vocab);
    assert_int_equal(d.n_ctx_train, l->n_ctx_train);
    assert_int_equal(d.n_embd, l->n_embd);
    assert_int_equal(d.n_layer, l->n_layer);
    assert_int_equal(d.n_head, l->n_head);
    assert_int_equal(d.n_head_kv, l->n_head_kv);
    assert_int_equal(d.n_ff, l->n_ff);
    assert_true(d.n_params >= l->n_params && l->n_params > 0);
    assert_true(d.weight_bytes >= l->weight_bytes && l->weight_bytes > 0);
    uint64_t params, bytes;
    file_sums(path, &params, &bytes);
    assert_int_equal(d.n_params, params);
    assert_int_equal(d.weight_bytes, bytes);
    /* What only a load knows stays empty. */
    assert_int_equal(d.n_ctx, 0);
    assert_int_equal(d.threads, 0);
    assert_null(d.kernels);
    assert_int_equal(d.seq_bytes, 0);
    assert_int_equal(d.work_bytes, 0);
    assert_int_equal(d.bos, -1);
    assert_int_equal(d.eos, -1);
    engine_free(m);
    return d;
}

static char *synth_model(const char *name, ggml_type type, synth_stats *st)
{
    synth_config c;
    synth_config_default(&c);
    c.type = type;
    char *path = test_join(dir, name);
    mlx_err err;
    if (synth_write(&c, path, st, &err) != 0)
        fail_msg("%s", err.msg);
    return path;
}

/* One metadata value of src copied to w under the same key. */
static void copy_kv(gguf_writer *w, const char *key, const gguf_kv *kv)
{
    mlx_err err;
    int rc = 0;
    if (kv->type == GGUF_TYPE_STRING) {
        char *s = strndup(kv->v.str.ptr, kv->v.str.len);
        rc = gguf_writer_set_str(w, key, s, &err);
        free(s);
    } else if (kv->type == GGUF_TYPE_ARRAY && kv->v.arr.type == GGUF_TYPE_STRING) {
        size_t n = (size_t)kv->v.arr.n;
        char **items = calloc(n + 1, sizeof *items);
        uint64_t pos = 0;
        for (size_t i = 0; i < n; i++) {
            gguf_str s = gguf_arr_str_next(kv, &pos);
            items[i] = strndup(s.ptr, s.len);
        }
        rc = gguf_writer_set_arr_str(w, key, (const char *const *)items, n, &err);
        for (size_t i = 0; i < n; i++)
            free(items[i]);
        free(items);
    } else if (kv->type == GGUF_TYPE_ARRAY) {
        void *v = malloc(kv->v.arr.nbytes + 1); /* packed little-endian: host order here */
        memcpy(v, kv->v.arr.data, kv->v.arr.nbytes);
        rc = gguf_writer_set_arr(w, key, kv->v.arr.type, v, (size_t)kv->v.arr.n, &err);
        free(v);
    } else {
        union {
            uint8_t u8;
            int8_t i8;
            uint16_t u16;
            int16_t i16;
            uint32_t u32;
            int32_t i32;
            float f32;
            bool b;
            uint64_t u64;
            int64_t i64;
            double f64;
        } v;
        switch (kv->type) {
        case GGUF_TYPE_UINT8: v.u8 = (uint8_t)kv->v.u64; break;
        case GGUF_TYPE_INT8: v.i8 = (int8_t)kv->v.i64; break;
        case GGUF_TYPE_UINT16: v.u16 = (uint16_t)kv->v.u64; break;
        case GGUF_TYPE_INT16: v.i16 = (int16_t)kv->v.i64; break;
        case GGUF_TYPE_UINT32: v.u32 = (uint32_t)kv->v.u64; break;
        case GGUF_TYPE_INT32: v.i32 = (int32_t)kv->v.i64; break;
        case GGUF_TYPE_FLOAT32: v.f32 = (float)kv->v.f64; break;
        case GGUF_TYPE_BOOL: v.b = kv->v.u64 != 0; break;
        case GGUF_TYPE_UINT64: v.u64 = kv->v.u64; break;
        case GGUF_TYPE_INT64: v.i64 = kv->v.i64; break;
        default: v.f64 = kv->v.f64; break;
        }
        rc = gguf_writer_set_scalar(w, key, kv->type, &v, &err);
    }
    if (rc != 0)
        fail_msg("copying %s: %s", key, err.msg);
}

/* src copied to dst (in dir) without the metadata key `drop` (may be NULL),
 * with key `set` set to the string `value` (may be NULL). */
static char *copy_model(const char *src, const char *dst, const char *drop, const char *set,
                        const char *value)
{
    gguf_file *f = NULL;
    gguf_writer *w = NULL;
    mlx_err err;
    if (gguf_open(src, &f, &err) != 0 || gguf_writer_new(&w, &err) != 0)
        fail_msg("%s", err.msg);
    for (uint64_t i = 0; i < f->n_kv; i++) {
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)f->kv[i].key.len, f->kv[i].key.ptr);
        if ((drop != NULL && strcmp(key, drop) == 0) || (set != NULL && strcmp(key, set) == 0))
            continue;
        copy_kv(w, key, &f->kv[i]);
    }
    if (set != NULL && gguf_writer_set_str(w, set, value, &err) != 0)
        fail_msg("%s", err.msg);
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        if (gguf_writer_add_tensor(w, name, t->type, t->n_dims, t->ne, t->data,
                                   (size_t)t->nbytes, &err) != 0)
            fail_msg("%s", err.msg);
    }
    char *path = test_join(dir, dst);
    if (gguf_writer_write(w, path, &err) != 0)
        fail_msg("%s", err.msg);
    gguf_writer_free(w);
    gguf_close(f);
    return path;
}

/* A file describe can read but no loader could run: llama hyper-parameters,
 * an optional general.file_type (0 for none) and the given tensors of
 * zeros. */
struct raw_tensor {
    const char *name;
    ggml_type type;
    uint32_t n_dims;
    uint64_t ne0, ne1;
};

static char *raw_model(const char *name, uint32_t file_type, const struct raw_tensor *ts,
                       size_t n)
{
    gguf_writer *w = NULL;
    mlx_err err;
    if (gguf_writer_new(&w, &err) != 0 ||
        gguf_writer_set_str(w, "general.architecture", "llama", &err) != 0 ||
        gguf_writer_set_u32(w, "llama.embedding_length", 64, &err) != 0 ||
        gguf_writer_set_u32(w, "llama.block_count", 1, &err) != 0 ||
        gguf_writer_set_u32(w, "llama.feed_forward_length", 128, &err) != 0 ||
        gguf_writer_set_u32(w, "llama.attention.head_count", 4, &err) != 0 ||
        (file_type != 0 && gguf_writer_set_u32(w, "general.file_type", file_type, &err) != 0))
        fail_msg("%s", err.msg);
    void *zeros[16];
    for (size_t i = 0; i < n; i++) {
        uint32_t be = 0, bb = 0;
        ggml_type_block(ts[i].type, &be, &bb);
        uint64_t ne[2] = {ts[i].ne0, ts[i].ne1};
        size_t bytes = (size_t)(ts[i].ne0 / be * bb * ts[i].ne1);
        zeros[i] = calloc(1, bytes);
        if (gguf_writer_add_tensor(w, ts[i].name, ts[i].type, ts[i].n_dims, ne, zeros[i],
                                   bytes, &err) != 0)
            fail_msg("%s", err.msg);
    }
    char *path = test_join(dir, name);
    if (gguf_writer_write(w, path, &err) != 0)
        fail_msg("%s", err.msg);
    gguf_writer_free(w);
    for (size_t i = 0; i < n; i++)
        free(zeros[i]);
    return path;
}

static engine_info describe_only(const char *path)
{
    engine_info d;
    mlx_err err;
    if (engine_describe(path, &d, &err) != 0)
        fail_msg("describe %s: %s", path, err.msg);
    return d;
}

/* ---- synthetic models --------------------------------------------------------- */

static void test_every_synthetic_type_agrees_with_a_load(void **state)
{
    const struct {
        ggml_type type;
        const char *quantization; /* llama.cpp's name for the file_type synth writes */
    } types[] = {{GGML_TYPE_F32, "F32"},
                 {GGML_TYPE_F16, "F16"},
                 {GGML_TYPE_BF16, "BF16"},
                 {GGML_TYPE_Q8_0, "Q8_0"},
                 {GGML_TYPE_Q4_0, "Q4_0"}};
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        synth_stats st;
        char *path = synth_model("typed.gguf", types[k].type, &st);
        engine_info d = describe_and_load(path);
        assert_string_equal(d.arch, "llama");
        assert_string_equal(d.quantization, types[k].quantization);
        assert_false(d.chat_template);
        assert_string_equal(d.chat_format, "chatml");
        assert_non_null(strstr(d.name, "synthetic llama"));
        /* synth_config_default: 2 layers, dim 128, 4 heads, 2 KV heads,
         * ff 384, 512 tokens, context 2048. */
        assert_int_equal(d.n_layer, 2);
        assert_int_equal(d.n_embd, 128);
        assert_int_equal(d.n_head, 4);
        assert_int_equal(d.n_head_kv, 2);
        assert_int_equal(d.n_ff, 384);
        assert_int_equal(d.n_vocab, 512);
        assert_int_equal(d.n_ctx_train, 2048);
        assert_int_equal(d.n_params, st.n_params);
        assert_true(d.weight_bytes < st.bytes);
        free(path);
    }
}

static void test_a_chat_template_is_described_as_loaded(void **state)
{
    char *src = synth_model("plain.gguf", GGML_TYPE_Q8_0, NULL);
    char *path = copy_model(src, "chat.gguf", NULL, "tokenizer.chat_template",
                            "{% for m in messages %}[INST] {{ m.content }} [/INST]"
                            "{% endfor %}");
    engine_info d = describe_and_load(path);
    assert_true(d.chat_template);
    assert_string_equal(d.chat_format, "mistral");
    free(src);
    free(path);
}

/* Without general.file_type (or with one llama.cpp never used), the type
 * holding most bytes of matrices names the file; vectors do not count. */
static void test_quantization_without_a_file_type(void **state)
{
    char *src = synth_model("q4.gguf", GGML_TYPE_Q4_0, NULL);
    char *path = copy_model(src, "q4-no-type.gguf", "general.file_type", NULL, NULL);
    assert_string_equal(describe_and_load(path).quantization, "Q4_0");
    free(path);
    free(src);

    /* One F16 matrix outweighs three Q8_0 ones; a larger F32 vector does
     * not count. */
    const struct raw_tensor mixed[] = {
        {"token_embd.weight", GGML_TYPE_F16, 2, 64, 512},       /* 64 KiB */
        {"blk.0.attn_q.weight", GGML_TYPE_Q8_0, 2, 64, 64},     /* 4.25 KiB each */
        {"blk.0.attn_k.weight", GGML_TYPE_Q8_0, 2, 64, 64},
        {"blk.0.attn_v.weight", GGML_TYPE_Q8_0, 2, 64, 64},
        {"blk.0.attn_norm.weight", GGML_TYPE_F32, 1, 65536, 1}, /* 256 KiB */
    };
    path = raw_model("mixed.gguf", 0, mixed, 5);
    engine_info d = describe_only(path);
    assert_string_equal(d.quantization, "F16");
    uint64_t params, bytes;
    file_sums(path, &params, &bytes);
    assert_int_equal(d.n_params, params);
    assert_int_equal(d.weight_bytes, bytes);
    assert_int_equal(d.n_params, 64 * 512 + 3 * 64 * 64 + 65536);
    free(path);

    /* Many Q8_0 matrices outweigh one F16: bytes, not the first tensor. */
    const struct raw_tensor mostly_q8[] = {
        {"token_embd.weight", GGML_TYPE_F16, 2, 64, 64}, /* 8 KiB */
        {"blk.0.attn_q.weight", GGML_TYPE_Q8_0, 2, 64, 128},
        {"blk.0.attn_k.weight", GGML_TYPE_Q8_0, 2, 64, 128},
    };
    path = raw_model("mostly-q8.gguf", 0, mostly_q8, 3);
    assert_string_equal(describe_only(path).quantization, "Q8_0");
    free(path);

    /* A file_type number llama.cpp has no name for: the bytes decide. */
    path = raw_model("odd-type.gguf", 99, mostly_q8, 3);
    assert_string_equal(describe_only(path).quantization, "Q8_0");
    free(path);
    /* A known one wins over the bytes, as llama.cpp reports it. */
    path = raw_model("q4km.gguf", 15, mostly_q8, 3);
    assert_string_equal(describe_only(path).quantization, "Q4_K_M");
    free(path);
    path = raw_model("q4_0.gguf", 2, mostly_q8, 3);
    assert_string_equal(describe_only(path).quantization, "Q4_0");
    free(path);
}

/* ---- errors ------------------------------------------------------------------ */

static void expect_error(const char *path, int code, const char *words)
{
    engine_info d;
    mlx_err err;
    mlx_err_clear(&err);
    int rc = engine_describe(path, &d, &err);
    if (code != 0)
        assert_int_equal(rc, code);
    else
        assert_true(rc < 0);
    if (err.msg[0] == '\0')
        fail_msg("describe %s failed (%s) without a sentence", path, mlx_errname(rc));
    if (words != NULL && strstr(err.msg, words) == NULL)
        fail_msg("'%s' does not mention '%s'", err.msg, words);
    /* engine_load refuses the same file with the same code. */
    engine_model *m = NULL;
    engine_opts opts = {.threads = 1, .n_ctx = 64};
    assert_int_equal(engine_load(path, &opts, &m, NULL), rc);
    assert_null(m);
}

static void test_errors_say_what_is_wrong(void **state)
{
    char *missing = test_join(dir, "no-such-model.gguf");
    expect_error(missing, MLX_ENOENT, NULL);
    free(missing);

    char *text = test_join(dir, "notes.txt");
    test_write_file(text, "these are not the weights you are looking for\n");
    expect_error(text, MLX_EINVAL, NULL);
    free(text);

    /* A GGUF cut short in its header. */
    char *src = synth_model("whole.gguf", GGML_TYPE_F32, NULL);
    size_t len = 0;
    char *bytes = test_read_file(src, &len);
    char *cut = test_join(dir, "cut.gguf");
    FILE *f = fopen(cut, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, 200, f), 200);
    fclose(f);
    expect_error(cut, MLX_ECORRUPT, NULL);
    free(cut);
    free(bytes);

    char *gpt2 = copy_model(src, "gpt2.gguf", NULL, "general.architecture", "gpt2");
    expect_error(gpt2, MLX_EINVAL, "'gpt2'");
    free(gpt2);
    free(src);
}

/* ---- the shared models --------------------------------------------------------- */

static char *shared(const char *name)
{
    char *path = test_testdata(name);
    if (path == NULL)
        fail_msg("the shared model %s is missing", name);
    return path;
}

/* stories260K, against its description in ../shared/testdata/SOURCES.md:
 * no general.file_type, all F32; 292,800 parameters (output.weight a copy
 * of the tied embedding). */
static void test_stories260k(void **state)
{
    char *path = shared("stories260K.gguf");
    engine_info d = describe_and_load(path);
    assert_string_equal(d.arch, "llama");
    assert_string_equal(d.name, "llama");
    assert_string_equal(d.quantization, "F32");
    assert_false(d.chat_template);
    assert_int_equal(d.n_vocab, 512);
    assert_int_equal(d.n_ctx_train, 2048);
    assert_int_equal(d.n_embd, 64);
    assert_int_equal(d.n_layer, 5);
    assert_int_equal(d.n_head, 8);
    assert_int_equal(d.n_head_kv, 4);
    assert_int_equal(d.n_ff, 172);
    assert_int_equal(d.n_params, 292800);
    assert_int_equal(d.weight_bytes, 292800 * 4);
    free(path);
}

/* The syn256 family (llama.cpp's own quantizer wrote them, K types
 * included) and the other shared models, by general.file_type. */
static void test_shared_models_by_file_type(void **state)
{
    const struct {
        const char *file, *arch, *quantization;
    } models[] = {
        {"syn256.gguf", "llama", "F32"},          {"syn256-f16.gguf", "llama", "F16"},
        {"syn256-bf16.gguf", "llama", "BF16"},    {"syn256-q8_0.gguf", "llama", "Q8_0"},
        {"syn256-q4_0.gguf", "llama", "Q4_0"},    {"syn256-q4_k_m.gguf", "llama", "Q4_K_M"},
        {"syn256-q6_k.gguf", "llama", "Q6_K"},    {"syn256-qwen2.gguf", "qwen2", "F32"},
        {"syn256-qwen2-q4_k_m.gguf", "qwen2", "Q4_K_M"},
        {"llama-2-tiny-random.gguf", "llama", "F16"},
    };
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        char *path = shared(models[i].file);
        engine_info d = describe_and_load(path);
        if (strcmp(d.arch, models[i].arch) != 0 ||
            strcmp(d.quantization, models[i].quantization) != 0)
            fail_msg("%s: %s %s, want %s %s", models[i].file, d.arch, d.quantization,
                     models[i].arch, models[i].quantization);
        free(path);
    }
    /* The Q4_K_M recipe without its file_type: Q4_K holds most bytes. */
    char *src = shared("syn256-q4_k_m.gguf");
    char *path = copy_model(src, "q4km-no-type.gguf", "general.file_type", NULL, NULL);
    assert_string_equal(describe_and_load(path).quantization, "Q4_K");
    free(path);
    free(src);
}

int main(void)
{
    const struct CMUnitTest synthetic[] = {
        cmocka_unit_test(test_every_synthetic_type_agrees_with_a_load),
        cmocka_unit_test(test_a_chat_template_is_described_as_loaded),
        cmocka_unit_test(test_quantization_without_a_file_type),
        cmocka_unit_test(test_errors_say_what_is_wrong),
    };
    int failed = cmocka_run_group_tests_name("synthetic", synthetic, group_setup,
                                             group_teardown);
    char *probe = test_testdata("stories260K.gguf");
    if (probe == NULL) {
        printf("skipped: the shared test models (../shared/testdata or $MLX_TESTDATA) are "
               "absent; the synthetic models were checked\n");
        return failed != 0 ? 1 : TEST_SKIP;
    }
    free(probe);
    const struct CMUnitTest files[] = {
        cmocka_unit_test(test_stories260k),
        cmocka_unit_test(test_shared_models_by_file_type),
    };
    failed += cmocka_run_group_tests_name("shared models", files, group_setup, group_teardown);
    return failed != 0 ? 1 : 0;
}
