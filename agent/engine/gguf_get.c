/*
 * gguf_get.c — typed access to the metadata of an opened GGUF file.
 *
 * Converters disagree on integer widths (llama.block_count is UINT32 in
 * llama.cpp's files, UINT64 in some others), so the integer getter takes any
 * integer type whose value fits, and refuses the rest with a sentence that
 * names the key, its type and what was expected.
 */
#include <float.h>
#include <math.h>
#include <string.h>

#include "agent/engine/gguf.h"

static const gguf_kv *find_or_fail(const gguf_file *f, const char *key, int *rc,
                                   mlx_err *err)
{
    const gguf_kv *kv = gguf_find(f, key);
    *rc = 0;
    if (kv == NULL)
        *rc = mlx_err_set(err, MLX_ENOENT, "the model has no metadata key '%s'", key);
    return kv;
}

static int wrong_type(const gguf_kv *kv, const char *key, const char *want, mlx_err *err)
{
    return mlx_err_set(err, MLX_ECORRUPT,
                       "metadata key '%s' has type %s; %s was expected", key,
                       gguf_type_name(kv->type), want);
}

int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out, mlx_err *err)
{
    int rc;
    const gguf_kv *kv = find_or_fail(f, key, &rc, err);
    if (kv == NULL)
        return rc;
    switch (kv->type) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_UINT16:
    case GGUF_TYPE_UINT32:
    case GGUF_TYPE_UINT64:
        if (kv->v.u64 > UINT32_MAX)
            return mlx_err_set(err, MLX_ECORRUPT,
                               "metadata key '%s' is %llu, which does not fit 32 bits",
                               key, (unsigned long long)kv->v.u64);
        *out = (uint32_t)kv->v.u64;
        return 0;
    case GGUF_TYPE_INT8:
    case GGUF_TYPE_INT16:
    case GGUF_TYPE_INT32:
    case GGUF_TYPE_INT64:
        if (kv->v.i64 < 0 || kv->v.i64 > (int64_t)UINT32_MAX)
            return mlx_err_set(err, MLX_ECORRUPT,
                               "metadata key '%s' is %lld, which is not an unsigned "
                               "32-bit number",
                               key, (long long)kv->v.i64);
        *out = (uint32_t)kv->v.i64;
        return 0;
    default:
        return wrong_type(kv, key, "an integer", err);
    }
}

int gguf_get_f32(const gguf_file *f, const char *key, float *out, mlx_err *err)
{
    int rc;
    const gguf_kv *kv = find_or_fail(f, key, &rc, err);
    if (kv == NULL)
        return rc;
    if (kv->type != GGUF_TYPE_FLOAT32 && kv->type != GGUF_TYPE_FLOAT64)
        return wrong_type(kv, key, "a float", err);
    double v = kv->v.f64;
    /* A FLOAT64 beyond float's range would become infinity; NaN and infinity
     * stored as such pass through (the caller judges them). */
    if (kv->type == GGUF_TYPE_FLOAT64 && isfinite(v) && fabs(v) > FLT_MAX)
        return mlx_err_set(err, MLX_ECORRUPT,
                           "metadata key '%s' is %g, which does not fit a 32-bit float",
                           key, v);
    *out = (float)v;
    return 0;
}

int gguf_get_bool(const gguf_file *f, const char *key, bool *out, mlx_err *err)
{
    int rc;
    const gguf_kv *kv = find_or_fail(f, key, &rc, err);
    if (kv == NULL)
        return rc;
    if (kv->type != GGUF_TYPE_BOOL)
        return wrong_type(kv, key, "BOOL", err);
    *out = kv->v.u64 != 0;
    return 0;
}

int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out, mlx_err *err)
{
    int rc;
    const gguf_kv *kv = find_or_fail(f, key, &rc, err);
    if (kv == NULL)
        return rc;
    if (kv->type != GGUF_TYPE_STRING)
        return wrong_type(kv, key, "STRING", err);
    *out = kv->v.str;
    return 0;
}

int gguf_get_arr(const gguf_file *f, const char *key, gguf_type elem, const gguf_kv **out,
                 mlx_err *err)
{
    int rc;
    const gguf_kv *kv = find_or_fail(f, key, &rc, err);
    if (kv == NULL)
        return rc;
    if (kv->type != GGUF_TYPE_ARRAY)
        return wrong_type(kv, key, "an ARRAY", err);
    if (kv->v.arr.type != elem)
        return mlx_err_set(err, MLX_ECORRUPT,
                           "metadata key '%s' is an array of %s; an array of %s was "
                           "expected",
                           key, gguf_type_name(kv->v.arr.type), gguf_type_name(elem));
    *out = kv;
    return 0;
}

/* The reader checked, while parsing, that the array's n strings lie within
 * its nbytes; *pos only ever lands on the start of an element or the end. */
gguf_str gguf_arr_str_next(const gguf_kv *arr, uint64_t *pos)
{
    gguf_str s = {NULL, 0};
    if (arr->type != GGUF_TYPE_ARRAY || arr->v.arr.type != GGUF_TYPE_STRING ||
        *pos >= arr->v.arr.nbytes || arr->v.arr.nbytes - *pos < 8)
        return s;
    const uint8_t *p = arr->v.arr.data + *pos;
    uint64_t len = 0;
    for (int i = 0; i < 8; i++)
        len |= (uint64_t)p[i] << (8 * i);
    if (len > arr->v.arr.nbytes - *pos - 8)
        return s; /* only reachable with a pos the caller made up */
    s.ptr = (const char *)p + 8;
    s.len = len;
    *pos += 8 + len;
    return s;
}

gguf_str gguf_arr_str(const gguf_kv *arr, uint64_t i)
{
    gguf_str s = {NULL, 0};
    if (arr->type != GGUF_TYPE_ARRAY || i >= arr->v.arr.n)
        return s;
    uint64_t pos = 0;
    for (uint64_t k = 0; k <= i; k++)
        s = gguf_arr_str_next(arr, &pos);
    return s;
}
