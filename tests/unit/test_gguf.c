/*
 * test_gguf.c — agent/engine GGUF writer and reader on files made here:
 * a round trip of every metadata type (scalars, strings, arrays of each)
 * and of tensors of several types and alignments, through memory and
 * through a file; the typed getters (absent keys, wrong types, values that
 * do not fit); the writer's refusals; a failed allocation at every step of
 * opening. The shared real models are read in test_gguf_files.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "agent/engine/gguf.h"
#include "common/alloc.h"
#include "tests/support/testutil.h"

/* A fill that writes bytes 0, 1, 2, … in pieces of 7, or one too few. */
struct counting_fill {
    size_t n;
    bool short_by_one;
};

static int fill_counting(void *arg, gguf_sink *sink, mlx_err *err)
{
    struct counting_fill *c = arg;
    size_t n = c->short_by_one ? c->n - 1 : c->n;
    for (size_t i = 0; i < n; i += 7) {
        uint8_t b[7];
        size_t k = n - i < 7 ? n - i : 7;
        for (size_t j = 0; j < k; j++)
            b[j] = (uint8_t)(i + j);
        int rc = gguf_sink_write(sink, b, k, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static const char *const strings[] = {"", "a", "\xe2\x96\x81the", "<0xFF>"};
static const int8_t i8s[] = {-128, 0, 127};
static const uint16_t u16s[] = {0, 65535};
static const int64_t i64s[] = {INT64_MIN, -1, INT64_MAX};
static const double f64s[] = {-2.5, 1e300};
static const bool bools[] = {true, false, true};
static float f32_data[2 * 3] = {1, 2, 3, 4, 5, 6};
static uint8_t q8_data[2 * 34];

/* A writer with one key of each type, arrays of each, and three tensors. */
static gguf_writer *build(uint32_t alignment, struct counting_fill *fill)
{
    gguf_writer *w = NULL;
    assert_int_equal(gguf_writer_new(&w, NULL), 0);
    uint8_t u8 = 200;
    int8_t i8 = -100;
    uint16_t u16 = 60000;
    int16_t i16 = -30000;
    uint64_t u64 = UINT64_MAX;
    int64_t i64 = INT64_MIN;
    double f64 = 3.141592653589793;
    assert_int_equal(gguf_writer_set_scalar(w, "t.u8", GGUF_TYPE_UINT8, &u8, NULL), 0);
    assert_int_equal(gguf_writer_set_scalar(w, "t.i8", GGUF_TYPE_INT8, &i8, NULL), 0);
    assert_int_equal(gguf_writer_set_scalar(w, "t.u16", GGUF_TYPE_UINT16, &u16, NULL), 0);
    assert_int_equal(gguf_writer_set_scalar(w, "t.i16", GGUF_TYPE_INT16, &i16, NULL), 0);
    assert_int_equal(gguf_writer_set_u32(w, "t.u32", 4000000000u, NULL), 0);
    assert_int_equal(gguf_writer_set_i32(w, "t.i32", -2000000000, NULL), 0);
    assert_int_equal(gguf_writer_set_f32(w, "t.f32", 0.25f, NULL), 0);
    assert_int_equal(gguf_writer_set_bool(w, "t.bool", true, NULL), 0);
    assert_int_equal(gguf_writer_set_str(w, "t.str", "hello, GGUF", NULL), 0);
    assert_int_equal(gguf_writer_set_scalar(w, "t.u64", GGUF_TYPE_UINT64, &u64, NULL), 0);
    assert_int_equal(gguf_writer_set_scalar(w, "t.i64", GGUF_TYPE_INT64, &i64, NULL), 0);
    assert_int_equal(gguf_writer_set_scalar(w, "t.f64", GGUF_TYPE_FLOAT64, &f64, NULL),
                     0);
    assert_int_equal(gguf_writer_set_arr_str(w, "a.str", strings, 4, NULL), 0);
    assert_int_equal(gguf_writer_set_arr(w, "a.i8", GGUF_TYPE_INT8, i8s, 3, NULL), 0);
    assert_int_equal(gguf_writer_set_arr(w, "a.u16", GGUF_TYPE_UINT16, u16s, 2, NULL), 0);
    assert_int_equal(gguf_writer_set_arr(w, "a.i64", GGUF_TYPE_INT64, i64s, 3, NULL), 0);
    assert_int_equal(gguf_writer_set_arr(w, "a.f64", GGUF_TYPE_FLOAT64, f64s, 2, NULL),
                     0);
    assert_int_equal(gguf_writer_set_arr(w, "a.bool", GGUF_TYPE_BOOL, bools, 3, NULL), 0);
    float f32s[] = {0.5f, -1.5f};
    int32_t i32s[] = {-7, 7, 1 << 30};
    assert_int_equal(gguf_writer_set_arr_f32(w, "a.f32", f32s, 2, NULL), 0);
    assert_int_equal(gguf_writer_set_arr_i32(w, "a.i32", i32s, 3, NULL), 0);
    assert_int_equal(gguf_writer_set_arr_i32(w, "a.empty", NULL, 0, NULL), 0);
    if (alignment != 0)
        assert_int_equal(gguf_writer_set_u32(w, "general.alignment", alignment, NULL), 0);

    uint64_t ne_f32[2] = {3, 2}, ne_q8[2] = {32, 2}, ne_f16[1] = {37};
    for (size_t i = 0; i < sizeof q8_data; i++)
        q8_data[i] = (uint8_t)(i * 13);
    assert_int_equal(gguf_writer_add_tensor(w, "f32", GGML_TYPE_F32, 2, ne_f32, f32_data,
                                            sizeof f32_data, NULL),
                     0);
    assert_int_equal(gguf_writer_add_tensor(w, "q8", GGML_TYPE_Q8_0, 2, ne_q8, q8_data,
                                            sizeof q8_data, NULL),
                     0);
    fill->n = 37 * 2;
    assert_int_equal(gguf_writer_add_tensor_fill(w, "blk.0.filled", GGML_TYPE_F16, 1,
                                                 ne_f16, fill_counting, fill, NULL),
                     0);
    return w;
}

static void check_file(const gguf_file *f, uint64_t alignment)
{
    assert_int_equal(f->version, 3);
    assert_int_equal(f->n_tensors, 3);
    assert_int_equal(f->n_kv, alignment != 32 ? 22 : 21);
    assert_int_equal(f->alignment, alignment);
    assert_int_equal(f->data_offset % alignment, 0);
    /* Keys keep the order they were set in. */
    assert_true(gguf_str_eq(f->kv[0].key, "t.u8"));
    assert_true(gguf_str_eq(f->kv[20].key, "a.empty"));

    const gguf_kv *kv;
    assert_non_null(kv = gguf_find(f, "t.u8"));
    assert_int_equal(kv->type, GGUF_TYPE_UINT8);
    assert_int_equal(kv->v.u64, 200);
    assert_int_equal(gguf_find(f, "t.i8")->v.i64, -100);
    assert_int_equal(gguf_find(f, "t.u16")->v.u64, 60000);
    assert_int_equal(gguf_find(f, "t.i16")->v.i64, -30000);
    assert_int_equal(gguf_find(f, "t.u32")->v.u64, 4000000000u);
    assert_int_equal(gguf_find(f, "t.i32")->v.i64, -2000000000);
    assert_true(gguf_find(f, "t.f32")->v.f64 == 0.25);
    assert_int_equal(gguf_find(f, "t.bool")->type, GGUF_TYPE_BOOL);
    assert_true(gguf_find(f, "t.u64")->v.u64 == UINT64_MAX);
    assert_true(gguf_find(f, "t.i64")->v.i64 == INT64_MIN);
    assert_true(gguf_find(f, "t.f64")->v.f64 == 3.141592653589793);
    assert_null(gguf_find(f, "t.u"));
    assert_null(gguf_find(f, "t.u80"));

    const gguf_kv *arr;
    assert_int_equal(gguf_get_arr(f, "a.str", GGUF_TYPE_STRING, &arr, NULL), 0);
    assert_int_equal(arr->v.arr.n, 4);
    uint64_t pos = 0;
    for (int i = 0; i < 4; i++) {
        gguf_str s = gguf_arr_str_next(arr, &pos);
        assert_true(gguf_str_eq(s, strings[i]));
        assert_true(gguf_str_eq(gguf_arr_str(arr, (uint64_t)i), strings[i]));
    }
    assert_null(gguf_arr_str_next(arr, &pos).ptr); /* past the end */
    assert_null(gguf_arr_str(arr, 4).ptr);

    assert_int_equal(gguf_get_arr(f, "a.i8", GGUF_TYPE_INT8, &arr, NULL), 0);
    assert_memory_equal(arr->v.arr.data, i8s, 3);
    assert_int_equal(gguf_get_arr(f, "a.u16", GGUF_TYPE_UINT16, &arr, NULL), 0);
    assert_memory_equal(arr->v.arr.data, "\0\0\xff\xff", 4);
    assert_int_equal(gguf_get_arr(f, "a.i64", GGUF_TYPE_INT64, &arr, NULL), 0);
    int64_t i64;
    memcpy(&i64, arr->v.arr.data + 16, 8);
    assert_true(i64 == INT64_MAX);
    assert_int_equal(gguf_get_arr(f, "a.f64", GGUF_TYPE_FLOAT64, &arr, NULL), 0);
    double f64;
    memcpy(&f64, arr->v.arr.data + 8, 8);
    assert_true(f64 == 1e300);
    assert_int_equal(gguf_get_arr(f, "a.bool", GGUF_TYPE_BOOL, &arr, NULL), 0);
    assert_memory_equal(arr->v.arr.data, "\1\0\1", 3);
    assert_int_equal(gguf_get_arr(f, "a.f32", GGUF_TYPE_FLOAT32, &arr, NULL), 0);
    float f32;
    memcpy(&f32, arr->v.arr.data + 4, 4);
    assert_true(f32 == -1.5f);
    assert_int_equal(gguf_get_arr(f, "a.i32", GGUF_TYPE_INT32, &arr, NULL), 0);
    assert_int_equal(arr->v.arr.n, 3);
    assert_int_equal(gguf_get_arr(f, "a.empty", GGUF_TYPE_INT32, &arr, NULL), 0);
    assert_int_equal(arr->v.arr.n, 0);

    const gguf_tensor *t = gguf_find_tensor(f, "f32");
    assert_non_null(t);
    assert_int_equal(t->n_dims, 2);
    assert_int_equal(t->ne[0], 3);
    assert_int_equal(t->ne[1], 2);
    assert_int_equal(t->ne[2], 1);
    assert_int_equal(t->type, GGML_TYPE_F32);
    assert_int_equal(t->nbytes, sizeof f32_data);
    assert_memory_equal(t->data, f32_data, sizeof f32_data);
    t = gguf_find_tensor(f, "q8");
    assert_non_null(t);
    assert_int_equal(t->nbytes, 68);
    assert_int_equal(t->offset % alignment, 0);
    assert_memory_equal(t->data, q8_data, sizeof q8_data);
    t = gguf_find_tensor(f, "blk.0.filled");
    assert_non_null(t);
    assert_int_equal(t->type, GGML_TYPE_F16);
    assert_int_equal(t->nbytes, 74);
    for (size_t i = 0; i < 74; i++)
        assert_int_equal(((const uint8_t *)t->data)[i], (uint8_t)i);
    assert_ptr_equal(&f->tensors[2], t);
    assert_null(gguf_find_tensor(f, "q"));
    /* Each tensor is padded to the alignment, the last one too. */
    assert_int_equal(f->size, f->data_offset + t->offset +
                                  (74 + alignment - 1) / alignment * alignment);
}

static void test_gguf_round_trip_in_memory(void **state)
{
    struct counting_fill fill = {0};
    uint32_t alignments[] = {0, 1, 64, 4096};
    for (size_t i = 0; i < 4; i++) {
        gguf_writer *w = build(alignments[i], &fill);
        void *data = NULL;
        size_t len = 0;
        assert_int_equal(gguf_writer_to_mem(w, &data, &len, NULL), 0);
        gguf_file *f = NULL;
        mlx_err err;
        int rc = gguf_open_mem(data, len, &f, &err);
        if (rc != 0)
            fail_msg("%s", err.msg);
        check_file(f, alignments[i] ? alignments[i] : 32);
        /* The same writer writes the same bytes again. */
        void *again = NULL;
        size_t len2 = 0;
        assert_int_equal(gguf_writer_to_mem(w, &again, &len2, NULL), 0);
        assert_int_equal(len, len2);
        assert_memory_equal(data, again, len);
        mlx_free(again);
        gguf_close(f);
        mlx_free(data);
        gguf_writer_free(w);
    }
}

static void test_gguf_round_trip_through_a_file(void **state)
{
    char *dir = test_tmpdir("gguf");
    char *path = test_join(dir, "model.gguf");
    struct counting_fill fill = {0};
    gguf_writer *w = build(0, &fill);
    mlx_err err;
    assert_int_equal(gguf_writer_write(w, path, &err), 0);
    void *mem = NULL;
    size_t len = 0;
    assert_int_equal(gguf_writer_to_mem(w, &mem, &len, NULL), 0);
    size_t flen = 0;
    char *bytes = test_read_file(path, &flen);
    assert_int_equal(flen, len);
    assert_memory_equal(bytes, mem, len);
    gguf_file *f = NULL;
    assert_int_equal(gguf_open(path, &f, &err), 0);
    check_file(f, 32);
    assert_int_equal((uintptr_t)f->tensors[1].data % 32, 0);

    /* A fill that comes up short fails the write and leaves the old file. */
    fill.short_by_one = true;
    assert_int_equal(gguf_writer_write(w, path, &err), MLX_EINVAL);
    assert_non_null(strstr(err.msg, "blk.0.filled"));
    size_t flen2 = 0;
    char *bytes2 = test_read_file(path, &flen2);
    assert_int_equal(flen2, len);
    assert_memory_equal(bytes2, mem, len);
    void *none = NULL;
    size_t none_len = 0;
    assert_int_equal(gguf_writer_to_mem(w, &none, &none_len, &err), MLX_EINVAL);
    assert_null(none);

    gguf_close(f);
    free(bytes);
    free(bytes2);
    mlx_free(mem);
    gguf_writer_free(w);
    free(path);
    test_tmpdir_remove(dir);
}

static gguf_file *open_built(void **mem)
{
    struct counting_fill fill = {0};
    gguf_writer *w = build(0, &fill);
    size_t len = 0;
    assert_int_equal(gguf_writer_to_mem(w, mem, &len, NULL), 0);
    gguf_writer_free(w);
    gguf_file *f = NULL;
    assert_int_equal(gguf_open_mem(*mem, len, &f, NULL), 0);
    return f;
}

static void test_gguf_getters(void **state)
{
    void *mem = NULL;
    gguf_file *f = open_built(&mem);
    mlx_err err;
    uint32_t u = 77;
    assert_int_equal(gguf_get_u32(f, "t.u32", &u, &err), 0);
    assert_int_equal(u, 4000000000u);
    assert_int_equal(gguf_get_u32(f, "t.u8", &u, &err), 0);
    assert_int_equal(u, 200);
    assert_int_equal(gguf_get_u32(f, "t.i16", &u, &err), MLX_ECORRUPT);
    assert_non_null(strstr(err.msg, "'t.i16'"));
    assert_int_equal(u, 200);
    assert_int_equal(gguf_get_u32(f, "t.u64", &u, &err), MLX_ECORRUPT);
    assert_int_equal(gguf_get_u32(f, "t.str", &u, &err), MLX_ECORRUPT);
    assert_non_null(strstr(err.msg, "STRING"));
    assert_int_equal(gguf_get_u32(f, "t.bool", &u, &err), MLX_ECORRUPT);
    u = 5;
    assert_int_equal(gguf_get_u32(f, "no.such.key", &u, &err), MLX_ENOENT);
    assert_int_equal(u, 5);
    assert_non_null(strstr(err.msg, "no.such.key"));

    float x = 9;
    assert_int_equal(gguf_get_f32(f, "t.f32", &x, &err), 0);
    assert_true(x == 0.25f);
    assert_int_equal(gguf_get_f32(f, "t.f64", &x, &err), 0);
    assert_true(x == (float)3.141592653589793);
    assert_int_equal(gguf_get_f32(f, "t.u32", &x, &err), MLX_ECORRUPT);
    x = 9;
    assert_int_equal(gguf_get_f32(f, "absent", &x, &err), MLX_ENOENT);
    assert_true(x == 9);

    bool b = false;
    assert_int_equal(gguf_get_bool(f, "t.bool", &b, &err), 0);
    assert_true(b);
    assert_int_equal(gguf_get_bool(f, "t.u8", &b, &err), MLX_ECORRUPT);
    assert_int_equal(gguf_get_bool(f, "absent", &b, &err), MLX_ENOENT);

    gguf_str s = {0};
    assert_int_equal(gguf_get_str(f, "t.str", &s, &err), 0);
    assert_true(gguf_str_eq(s, "hello, GGUF"));
    assert_false(gguf_str_eq(s, "hello, GGU"));
    assert_false(gguf_str_eq(s, "hello, GGUF!"));
    assert_int_equal(gguf_get_str(f, "a.str", &s, &err), MLX_ECORRUPT);
    assert_int_equal(gguf_get_str(f, "absent", &s, &err), MLX_ENOENT);

    const gguf_kv *arr = NULL;
    assert_int_equal(gguf_get_arr(f, "a.i32", GGUF_TYPE_FLOAT32, &arr, &err),
                     MLX_ECORRUPT);
    assert_non_null(strstr(err.msg, "INT32"));
    assert_int_equal(gguf_get_arr(f, "t.str", GGUF_TYPE_STRING, &arr, &err),
                     MLX_ECORRUPT);
    assert_int_equal(gguf_get_arr(f, "absent", GGUF_TYPE_STRING, &arr, &err), MLX_ENOENT);
    /* String helpers on a non-string array give nothing. */
    assert_int_equal(gguf_get_arr(f, "a.i32", GGUF_TYPE_INT32, &arr, &err), 0);
    uint64_t pos = 0;
    assert_null(gguf_arr_str_next(arr, &pos).ptr);
    assert_null(gguf_arr_str(arr, 0).ptr);

    gguf_close(f);
    mlx_free(mem);
}

static void test_gguf_writer_refusals(void **state)
{
    gguf_writer *w = NULL;
    mlx_err err;
    assert_int_equal(gguf_writer_new(&w, &err), 0);
    assert_int_equal(gguf_writer_set_u32(w, "k", 1, &err), 0);
    assert_int_equal(gguf_writer_set_u32(w, "k", 2, &err), MLX_EINVAL);
    assert_non_null(strstr(err.msg, "'k'"));
    assert_int_equal(gguf_writer_set_str(w, "", "x", &err), MLX_EINVAL);
    assert_int_equal(gguf_writer_set_scalar(w, "s", GGUF_TYPE_STRING, "x", &err),
                     MLX_EINVAL);
    assert_int_equal(gguf_writer_set_arr(w, "s", GGUF_TYPE_ARRAY, "x", 1, &err),
                     MLX_EINVAL);
    const char *with_null[] = {"a", NULL};
    assert_int_equal(gguf_writer_set_arr_str(w, "s", with_null, 2, &err), MLX_EINVAL);

    float data[64] = {0};
    uint64_t ne[2] = {64, 1};
    assert_int_equal(
        gguf_writer_add_tensor(w, "t", GGML_TYPE_F32, 2, ne, data, sizeof data, &err), 0);
    assert_int_equal(
        gguf_writer_add_tensor(w, "t", GGML_TYPE_F32, 2, ne, data, sizeof data, &err),
        MLX_EINVAL);
    assert_int_equal(gguf_writer_add_tensor(w, "u", GGML_TYPE_F32, 2, ne, data, 8, &err),
                     MLX_EINVAL);
    assert_non_null(strstr(err.msg, "256 bytes"));
    uint64_t odd[1] = {48};
    assert_int_equal(
        gguf_writer_add_tensor(w, "u", GGML_TYPE_Q8_0, 1, odd, data, 51, &err),
        MLX_EINVAL);
    assert_non_null(strstr(err.msg, "Q8_0"));
    uint64_t zero[1] = {0};
    assert_int_equal(
        gguf_writer_add_tensor(w, "u", GGML_TYPE_F32, 1, zero, data, 0, &err),
        MLX_EINVAL);
    assert_int_equal(gguf_writer_add_tensor(w, "u", (ggml_type)4, 1, ne, data, 256, &err),
                     MLX_EINVAL);
    assert_int_equal(
        gguf_writer_add_tensor(w, "u", GGML_TYPE_F32, 5, ne, data, 256, &err),
        MLX_EINVAL);
    char long_name[80];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    assert_int_equal(gguf_writer_add_tensor(w, long_name, GGML_TYPE_F32, 2, ne, data,
                                            sizeof data, &err),
                     MLX_EINVAL);
    assert_int_equal(
        gguf_writer_add_tensor_fill(w, "u", GGML_TYPE_F32, 2, ne, NULL, NULL, &err),
        MLX_EINVAL);

    /* An alignment that is not a power of two fails the write, not the set. */
    assert_int_equal(gguf_writer_set_u32(w, "general.alignment", 48, &err), 0);
    void *mem = NULL;
    size_t len = 0;
    assert_int_equal(gguf_writer_to_mem(w, &mem, &len, &err), MLX_EINVAL);
    assert_non_null(strstr(err.msg, "general.alignment"));
    gguf_writer_free(w);

    /* Another integer type, even with a right value, is refused as well. */
    assert_int_equal(gguf_writer_new(&w, &err), 0);
    assert_int_equal(gguf_writer_set_i32(w, "general.alignment", 32, &err), 0);
    assert_int_equal(gguf_writer_to_mem(w, &mem, &len, &err), MLX_EINVAL);
    gguf_writer_free(w);
    uint8_t small = 32;
    assert_int_equal(gguf_writer_new(&w, &err), 0);
    assert_int_equal(
        gguf_writer_set_scalar(w, "general.alignment", GGUF_TYPE_UINT8, &small, &err), 0);
    assert_int_equal(gguf_writer_to_mem(w, &mem, &len, &err), MLX_EINVAL);
    gguf_writer_free(w);

    /* A fill that writes too much is stopped at its tensor's end. */
    struct counting_fill big = {.n = 64};
    uint64_t ne16[1] = {16};
    assert_int_equal(gguf_writer_new(&w, &err), 0);
    assert_int_equal(gguf_writer_add_tensor_fill(w, "t", GGML_TYPE_F16, 1, ne16,
                                                 fill_counting, &big, &err),
                     0);
    assert_int_equal(gguf_writer_to_mem(w, &mem, &len, &err), MLX_EINVAL);
    assert_non_null(strstr(err.msg, "more bytes"));
    assert_non_null(strstr(err.msg, "'t'"));
    gguf_writer_free(w);
}

static void test_gguf_open_refusals(void **state)
{
    char *dir = test_tmpdir("gguf");
    char *path = test_join(dir, "absent.gguf");
    gguf_file *f = NULL;
    mlx_err err;
    assert_int_equal(gguf_open(path, &f, &err), MLX_ENOENT);
    test_write_file(path, "");
    assert_int_equal(gguf_open(path, &f, &err), MLX_EINVAL);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "empty"));
    test_write_file(path, "GGU");
    assert_int_equal(gguf_open(path, &f, &err), MLX_ECORRUPT);
    assert_non_null(strstr(err.msg, "truncated"));
    test_write_file(path, "PK\3\4 a zip file");
    assert_int_equal(gguf_open(path, &f, &err), MLX_EINVAL);
    assert_non_null(strstr(err.msg, "not a GGUF"));
    assert_int_equal(gguf_open(dir, &f, &err), MLX_EINVAL);
    assert_int_equal(gguf_open_mem(NULL, 0, &f, &err), MLX_EINVAL);

    /* The smallest valid file: a header with no keys and no tensors. */
    static const uint8_t empty[24] = {'G', 'G', 'U', 'F', 2};
    assert_int_equal(gguf_open_mem(empty, sizeof empty, &f, &err), 0);
    assert_int_equal(f->version, 2);
    assert_int_equal(f->n_kv, 0);
    assert_null(gguf_find(f, "x"));
    assert_null(gguf_find_tensor(f, "x"));
    gguf_close(f);
    gguf_close(NULL);
    free(path);
    test_tmpdir_remove(dir);
}

/* Every allocation of an open can fail; each failure is ENOMEM, leaks
 * nothing (ASan checks) and leaves *out alone. */
static void test_gguf_open_survives_allocation_failures(void **state)
{
    struct counting_fill fill = {0};
    gguf_writer *w = build(0, &fill);
    void *mem = NULL;
    size_t len = 0;
    assert_int_equal(gguf_writer_to_mem(w, &mem, &len, NULL), 0);
    int failures = 0;
    for (long n = 0;; n++) {
        gguf_file *f = NULL;
        mlx_alloc_fail_after(n);
        int rc = gguf_open_mem(mem, len, &f, NULL);
        mlx_alloc_fail_reset();
        if (rc == 0) {
            check_file(f, 32);
            gguf_close(f);
            break;
        }
        assert_int_equal(rc, MLX_ENOMEM);
        assert_null(f);
        failures++;
    }
    assert_true(failures >= 2);

    /* And the writer: a failed set leaves it usable and unchanged. */
    for (long n = 0; n < 4; n++) {
        mlx_alloc_fail_after(n);
        int rc = gguf_writer_set_str(w, "late.key", "value", NULL);
        mlx_alloc_fail_reset();
        if (rc == 0)
            break;
        assert_int_equal(rc, MLX_ENOMEM);
    }
    void *mem2 = NULL;
    size_t len2 = 0;
    assert_int_equal(gguf_writer_to_mem(w, &mem2, &len2, NULL), 0);
    gguf_file *f = NULL;
    assert_int_equal(gguf_open_mem(mem2, len2, &f, NULL), 0);
    assert_int_equal(f->n_kv, 22);
    gguf_close(f);
    mlx_free(mem2);
    mlx_free(mem);
    gguf_writer_free(w);
}

static void test_gguf_type_tables(void **state)
{
    uint32_t be, bb;
    ggml_type_block(GGML_TYPE_Q4_K, &be, &bb);
    assert_int_equal(be, 256);
    assert_int_equal(bb, 144);
    ggml_type_block(GGML_TYPE_Q6_K, &be, &bb);
    assert_int_equal(bb, 210);
    ggml_type_block(GGML_TYPE_Q8_0, &be, &bb);
    assert_int_equal(be, 32);
    assert_int_equal(bb, 34);
    ggml_type_block((ggml_type)4, &be, &bb); /* retired Q4_2 */
    assert_int_equal(be, 0);
    assert_int_equal(bb, 0);
    ggml_type_block((ggml_type)1000, &be, &bb);
    assert_int_equal(be, 0);
    assert_string_equal(ggml_type_name(GGML_TYPE_BF16), "BF16");
    assert_string_equal(ggml_type_name((ggml_type)5), "unknown");
    assert_string_equal(ggml_type_name((ggml_type)-1), "unknown");
    assert_string_equal(gguf_type_name(GGUF_TYPE_FLOAT64), "FLOAT64");
    assert_string_equal(gguf_type_name(GGUF_TYPE_COUNT_), "unknown");
    assert_int_equal(gguf_type_size(GGUF_TYPE_INT16), 2);
    assert_int_equal(gguf_type_size(GGUF_TYPE_STRING), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gguf_round_trip_in_memory),
        cmocka_unit_test(test_gguf_round_trip_through_a_file),
        cmocka_unit_test(test_gguf_getters),
        cmocka_unit_test(test_gguf_writer_refusals),
        cmocka_unit_test(test_gguf_open_refusals),
        cmocka_unit_test(test_gguf_open_survives_allocation_failures),
        cmocka_unit_test(test_gguf_type_tables),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
