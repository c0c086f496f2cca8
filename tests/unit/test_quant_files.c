/*
 * test_quant_files.c — the block formats against llama.cpp's own output:
 * the shared syn256 models are one F32 model and its conversions by
 * llama.cpp's quantizer (SOURCES.md). Every tensor of every conversion,
 * dequantized here, must be close to the F32 original (within what its
 * format can hold: a decoder that misreads a layout is off by the size of
 * the weights themselves), and quantizing the F32 rows here must give
 * llama.cpp's bytes exactly for F16, BF16, Q8_0 and Q4_0. Skips (77) when
 * the shared folder is absent.
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
#include "tests/support/testutil.h"

static gguf_file *open_shared(const char *name)
{
    char *path = test_testdata(name);
    if (path == NULL)
        fail_msg("%s is missing from the shared test data", name);
    gguf_file *f = NULL;
    mlx_err err;
    if (gguf_open(path, &f, &err) != 0)
        fail_msg("%s", err.msg);
    free(path);
    return f;
}

/* Relative RMS error allowed per stored type: about 1.5 times what the
 * format gives on these weights (measured: F16 2.1e-4, BF16 1.7e-3, Q8_0
 * 5.4e-3, Q6_K 0.018, Q4_K 0.072, Q4_0 0.086). A misread layout is off by
 * about the weights' own size, a relative error near 1. */
static double allowed_error(ggml_type t)
{
    switch (t) {
    case GGML_TYPE_F32:
        return 0;
    case GGML_TYPE_F16:
        return 3e-4;
    case GGML_TYPE_BF16:
        return 2.5e-3;
    case GGML_TYPE_Q8_0:
        return 8e-3;
    case GGML_TYPE_Q6_K:
        return 0.027;
    default: /* Q4_0, Q4_K */
        return 0.13;
    }
}

struct file_report {
    int tensors, exact_rows, rows;
};

static struct file_report compare_file(const gguf_file *ref, const char *name)
{
    gguf_file *f = open_shared(name);
    struct file_report r = {0};
    assert_int_equal(f->n_tensors, ref->n_tensors);
    for (uint64_t i = 0; i < ref->n_tensors; i++) {
        const gguf_tensor *a = &ref->tensors[i];
        char tname[80];
        snprintf(tname, sizeof tname, "%.*s", (int)a->name.len, a->name.ptr);
        const gguf_tensor *b = gguf_find_tensor(f, tname);
        assert_non_null(b);
        assert_memory_equal(a->ne, b->ne, sizeof a->ne);
        size_t n = (size_t)a->ne[0], rows = (size_t)(a->nbytes / 4 / n);
        size_t row_bytes = quant_row_bytes(b->type, n);
        assert_int_equal(row_bytes * rows, b->nbytes);
        float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
        uint8_t *q = malloc(row_bytes);
        assert_true(x != NULL && y != NULL && q != NULL);
        double err2 = 0, ref2 = 0;
        const quant_ops *ops = quant_ops_get(b->type);
        assert_non_null(ops);
        for (size_t r0 = 0; r0 < rows; r0++) {
            memcpy(x, (const uint8_t *)a->data + r0 * n * 4, n * 4);
            const uint8_t *stored = (const uint8_t *)b->data + r0 * row_bytes;
            assert_int_equal(quant_dequantize_row(b->type, stored, y, n), 0);
            for (size_t k = 0; k < n; k++) {
                err2 += ((double)y[k] - x[k]) * ((double)y[k] - x[k]);
                ref2 += (double)x[k] * x[k];
            }
            if (ops->quantize != NULL) {
                ops->quantize(x, q, n);
                r.rows++;
                r.exact_rows += memcmp(q, stored, row_bytes) == 0;
            }
        }
        double rel = sqrt(err2 / ref2);
        if (rel > allowed_error(b->type))
            fail_msg("%s %s (%s): relative RMS error %g", name, tname,
                     ggml_type_name(b->type), rel);
        r.tensors++;
        free(x);
        free(y);
        free(q);
    }
    gguf_close(f);
    return r;
}

static void test_every_conversion_matches_the_f32_model(void **state)
{
    gguf_file *ref = open_shared("syn256.gguf");
    const char *files[] = {"syn256-f16.gguf",  "syn256-bf16.gguf",   "syn256-q8_0.gguf",
                           "syn256-q4_0.gguf", "syn256-q4_k_m.gguf", "syn256-q6_k.gguf"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        struct file_report r = compare_file(ref, files[i]);
        assert_int_equal(r.tensors, 21);
        /* The quantizers here are llama.cpp's reference ones: byte for byte. */
        if (r.exact_rows != r.rows)
            fail_msg("%s: %d of %d rows quantized to llama.cpp's bytes", files[i],
                     r.exact_rows, r.rows);
        printf("%s: %d tensors close to F32, %d rows requantized exactly\n", files[i],
               r.tensors, r.rows);
    }
    gguf_close(ref);
}

/* The dot product of stored rows with a vector equals the F32 model's
 * within the format's error, for the k-quant files too. */
static void test_dot_products_on_stored_rows(void **state)
{
    gguf_file *ref = open_shared("syn256.gguf");
    gguf_file *q4k = open_shared("syn256-q4_k_m.gguf");
    gguf_file *q6k = open_shared("syn256-q6_k.gguf");
    const gguf_tensor *a = gguf_find_tensor(ref, "blk.0.ffn_gate.weight");
    const gguf_tensor *b = gguf_find_tensor(q4k, "blk.0.ffn_gate.weight");
    const gguf_tensor *c = gguf_find_tensor(q6k, "blk.0.ffn_gate.weight");
    assert_true(a && b && c);
    assert_int_equal(b->type, GGML_TYPE_Q4_K);
    assert_int_equal(c->type, GGML_TYPE_Q6_K);
    float x[256], y[256];
    for (int i = 0; i < 256; i++)
        x[i] = (float)sin(i * 0.37);
    double worst4 = 0, worst6 = 0, scale = 0;
    for (size_t r = 0; r < a->ne[1]; r++) {
        float fa, fb, fc;
        assert_int_equal(quant_dot_row(GGML_TYPE_F32, (const uint8_t *)a->data + r * 1024,
                                       x, 256, &fa),
                         0);
        assert_int_equal(quant_dot_row(GGML_TYPE_Q4_K, (const uint8_t *)b->data + r * 144,
                                       x, 256, &fb),
                         0);
        assert_int_equal(quant_dot_row(GGML_TYPE_Q6_K, (const uint8_t *)c->data + r * 210,
                                       x, 256, &fc),
                         0);
        quant_dequantize_row(GGML_TYPE_F32, (const uint8_t *)a->data + r * 1024, y, 256);
        double norm = 0;
        for (int i = 0; i < 256; i++)
            norm += (double)y[i] * y[i];
        scale = fmax(scale, sqrt(norm * 256)); /* |w| |x| bounds the dot */
        worst4 = fmax(worst4, fabs(fb - fa));
        worst6 = fmax(worst6, fabs(fc - fa));
    }
    assert_true(worst4 < 0.05 * scale);
    assert_true(worst6 < 0.01 * scale);
    assert_true(worst6 < worst4);
    gguf_close(ref);
    gguf_close(q4k);
    gguf_close(q6k);
}

int main(void)
{
    char *probe = test_testdata("syn256.gguf");
    if (probe == NULL) {
        printf("skipped: the shared test models (../shared/testdata or $MLX_TESTDATA) "
               "are absent\n");
        return TEST_SKIP;
    }
    free(probe);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_conversion_matches_the_f32_model),
        cmocka_unit_test(test_dot_products_on_stored_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
