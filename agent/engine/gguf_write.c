/*
 * gguf_write.c — collecting what a GGUF v3 file will hold: metadata and
 * tensor descriptions (gguf_emit.c lays them out and writes them).
 *
 * Metadata values are encoded (type word and little-endian payload) when
 * they are set, so a failed set changes nothing and writing is a copy.
 * Tensors are only described until the write: their bytes come from the
 * caller's buffer or from its fill callback, straight into the output
 * buffer, so writing a model never holds a second copy of its weights.
 */
#include <string.h>

#include "agent/engine/gguf_int.h"
#include "common/alloc.h"
#include "common/buf.h"

int gguf_writer_new(gguf_writer **out, mlx_err *err)
{
    gguf_writer *w = mlx_calloc(1, sizeof *w);
    if (w == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    *out = w;
    return 0;
}

void gguf_writer_free(gguf_writer *w)
{
    if (w == NULL)
        return;
    for (size_t i = 0; i < w->n_kv; i++) {
        mlx_free(w->kv[i].key);
        mlx_free(w->kv[i].val);
    }
    for (size_t i = 0; i < w->n_t; i++)
        mlx_free(w->t[i].name);
    mlx_free(w->kv);
    mlx_free(w->t);
    mlx_free(w);
}

static int buf_le(mlx_buf *b, uint64_t v, size_t n)
{
    uint8_t bytes[8];
    gguf_put_le(bytes, v, n);
    return mlx_buf_append(b, bytes, n);
}

/* The bits of one host-order value of a fixed-size type, as an integer. */
static uint64_t scalar_bits(gguf_type t, const void *value)
{
    uint64_t u = 0;
    switch (t) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_INT8:
        u = *(const uint8_t *)value;
        break;
    case GGUF_TYPE_UINT16:
    case GGUF_TYPE_INT16: {
        uint16_t x;
        memcpy(&x, value, 2);
        u = x;
        break;
    }
    case GGUF_TYPE_UINT32:
    case GGUF_TYPE_INT32:
    case GGUF_TYPE_FLOAT32: {
        uint32_t x;
        memcpy(&x, value, 4);
        u = x;
        break;
    }
    case GGUF_TYPE_BOOL:
        u = *(const bool *)value ? 1 : 0;
        break;
    default:
        memcpy(&u, value, 8);
        break;
    }
    return u;
}

static size_t host_size(gguf_type t)
{
    return t == GGUF_TYPE_BOOL ? sizeof(bool) : gguf_type_size(t);
}

static int check_key(const gguf_writer *w, const char *key, mlx_err *err)
{
    size_t n = key != NULL ? strlen(key) : 0;
    if (n == 0 || n > MLX_GGUF_MAX_KEY)
        return mlx_err_set(err, MLX_EINVAL, "a metadata key must be 1 to %u bytes long",
                           (unsigned)MLX_GGUF_MAX_KEY);
    for (size_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->kv[i].key, key) == 0)
            return mlx_err_set(err, MLX_EINVAL, "metadata key '%s' is set twice", key);
    return 0;
}

/* Takes the encoded value in b (emptied either way) as key's. */
static int add_kv(gguf_writer *w, const char *key, mlx_buf *b, mlx_err *err)
{
    size_t len = b->len;
    struct wkv kv = {
        .key = mlx_strdup(key), .val = (uint8_t *)mlx_buf_take(b), .val_len = len};
    if (kv.key == NULL || kv.val == NULL)
        goto nomem;
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? 2 * w->cap_kv : 16;
        struct wkv *grown = mlx_realloc(w->kv, cap * sizeof *grown);
        if (grown == NULL)
            goto nomem;
        w->kv = grown;
        w->cap_kv = cap;
    }
    w->kv[w->n_kv++] = kv;
    return 0;
nomem:
    mlx_free(kv.key);
    mlx_free(kv.val);
    return mlx_err_set(err, MLX_ENOMEM, "out of memory");
}

static int set_encoded(gguf_writer *w, const char *key, gguf_type t, gguf_type elem,
                       const void *v, size_t n, const char *const *strs, mlx_err *err)
{
    int rc = check_key(w, key, err);
    if (rc != 0)
        return rc;
    mlx_buf b;
    mlx_buf_init(&b, SIZE_MAX / 2);
    rc = buf_le(&b, t, 4);
    if (t == GGUF_TYPE_ARRAY) {
        if (rc == 0)
            rc = buf_le(&b, elem, 4);
        if (rc == 0)
            rc = buf_le(&b, n, 8);
        for (size_t i = 0; i < n && rc == 0; i++) {
            if (elem == GGUF_TYPE_STRING) {
                size_t len = strlen(strs[i]);
                rc = buf_le(&b, len, 8);
                if (rc == 0)
                    rc = mlx_buf_append(&b, strs[i], len);
            } else {
                const uint8_t *p = (const uint8_t *)v + i * host_size(elem);
                rc = buf_le(&b, scalar_bits(elem, p), gguf_type_size(elem));
            }
        }
    } else if (t == GGUF_TYPE_STRING) {
        size_t len = strlen(v);
        if (rc == 0)
            rc = buf_le(&b, len, 8);
        if (rc == 0)
            rc = mlx_buf_append(&b, v, len);
    } else if (rc == 0) {
        rc = buf_le(&b, scalar_bits(t, v), gguf_type_size(t));
    }
    if (rc == 0)
        rc = add_kv(w, key, &b, err);
    else
        rc = mlx_err_set(err, MLX_ENOMEM, "out of memory");
    mlx_buf_fini(&b);
    return rc;
}

static bool scalar_type(gguf_type t)
{
    return (unsigned)t < GGUF_TYPE_COUNT_ && t != GGUF_TYPE_STRING &&
           t != GGUF_TYPE_ARRAY;
}

int gguf_writer_set_scalar(gguf_writer *w, const char *key, gguf_type type,
                           const void *value, mlx_err *err)
{
    if (!scalar_type(type) || value == NULL)
        return mlx_err_set(err, MLX_EINVAL,
                           "metadata key '%s': type %s is not a scalar type", key,
                           gguf_type_name(type));
    return set_encoded(w, key, type, type, value, 1, NULL, err);
}

int gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v, mlx_err *err)
{
    return set_encoded(w, key, GGUF_TYPE_UINT32, GGUF_TYPE_UINT32, &v, 1, NULL, err);
}

int gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v, mlx_err *err)
{
    return set_encoded(w, key, GGUF_TYPE_INT32, GGUF_TYPE_INT32, &v, 1, NULL, err);
}

int gguf_writer_set_f32(gguf_writer *w, const char *key, float v, mlx_err *err)
{
    return set_encoded(w, key, GGUF_TYPE_FLOAT32, GGUF_TYPE_FLOAT32, &v, 1, NULL, err);
}

int gguf_writer_set_bool(gguf_writer *w, const char *key, bool v, mlx_err *err)
{
    return set_encoded(w, key, GGUF_TYPE_BOOL, GGUF_TYPE_BOOL, &v, 1, NULL, err);
}

int gguf_writer_set_str(gguf_writer *w, const char *key, const char *v, mlx_err *err)
{
    if (v == NULL || strlen(v) > MLX_GGUF_MAX_STRING)
        return mlx_err_set(err, MLX_EINVAL,
                           "metadata key '%s' needs a string of at most %u bytes", key,
                           (unsigned)MLX_GGUF_MAX_STRING);
    return set_encoded(w, key, GGUF_TYPE_STRING, GGUF_TYPE_STRING, v, 1, NULL, err);
}

static int check_array(const char *key, size_t n, const void *v, mlx_err *err)
{
    if (n > MLX_GGUF_MAX_ARRAY || (n > 0 && v == NULL))
        return mlx_err_set(err, MLX_EINVAL,
                           "metadata key '%s' needs an array of at most %u elements", key,
                           (unsigned)MLX_GGUF_MAX_ARRAY);
    return 0;
}

int gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *v,
                            size_t n, mlx_err *err)
{
    int rc = check_array(key, n, v, err);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n; i++)
        if (v[i] == NULL || strlen(v[i]) > MLX_GGUF_MAX_STRING)
            return mlx_err_set(err, MLX_EINVAL,
                               "element %zu of metadata key '%s' must be a string of at "
                               "most %u bytes",
                               i, key, (unsigned)MLX_GGUF_MAX_STRING);
    return set_encoded(w, key, GGUF_TYPE_ARRAY, GGUF_TYPE_STRING, NULL, n, v, err);
}

int gguf_writer_set_arr(gguf_writer *w, const char *key, gguf_type elem, const void *v,
                        size_t n, mlx_err *err)
{
    if (!scalar_type(elem))
        return mlx_err_set(err, MLX_EINVAL,
                           "metadata key '%s': arrays of %s are written with their own "
                           "call or not at all",
                           key, gguf_type_name(elem));
    int rc = check_array(key, n, v, err);
    if (rc != 0)
        return rc;
    return set_encoded(w, key, GGUF_TYPE_ARRAY, elem, v, n, NULL, err);
}

int gguf_writer_set_arr_f32(gguf_writer *w, const char *key, const float *v, size_t n,
                            mlx_err *err)
{
    return gguf_writer_set_arr(w, key, GGUF_TYPE_FLOAT32, v, n, err);
}

int gguf_writer_set_arr_i32(gguf_writer *w, const char *key, const int32_t *v, size_t n,
                            mlx_err *err)
{
    return gguf_writer_set_arr(w, key, GGUF_TYPE_INT32, v, n, err);
}

/* Checks a tensor's description and computes its size; t->name is set only
 * when everything else is right. */
static int describe_tensor(gguf_writer *w, struct wtensor *t, const char *name,
                           ggml_type type, uint32_t n_dims, const uint64_t *ne,
                           mlx_err *err)
{
    size_t len = name != NULL ? strlen(name) : 0;
    if (len == 0 || len > MLX_GGUF_MAX_TENSOR_NAME)
        return mlx_err_set(err, MLX_EINVAL, "a tensor name must be 1 to %u bytes long",
                           (unsigned)MLX_GGUF_MAX_TENSOR_NAME);
    for (size_t i = 0; i < w->n_t; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return mlx_err_set(err, MLX_EINVAL, "tensor '%s' is added twice", name);
    uint32_t be, bb;
    ggml_type_block(type, &be, &bb);
    if (be == 0)
        return mlx_err_set(err, MLX_EINVAL, "tensor '%s' has unknown type %d", name,
                           (int)type);
    if (n_dims > GGUF_MAX_DIMS || (n_dims > 0 && ne == NULL))
        return mlx_err_set(err, MLX_EINVAL, "tensor '%s' must have 0 to %d dimensions",
                           name, GGUF_MAX_DIMS);
    uint64_t elems = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
        t->ne[d] = d < n_dims ? ne[d] : 1;
        if (t->ne[d] == 0 || t->ne[d] > (uint64_t)INT64_MAX / elems)
            return mlx_err_set(err, MLX_EINVAL,
                               "tensor '%s' has a dimension of 0 or too many elements",
                               name);
        elems *= t->ne[d];
    }
    if (t->ne[0] % be != 0)
        return mlx_err_set(err, MLX_EINVAL,
                           "tensor '%s' has rows of %llu elements, not a whole number of "
                           "%s blocks of %u",
                           name, (unsigned long long)t->ne[0], ggml_type_name(type), be);
    if (elems / be > (uint64_t)INT64_MAX / bb)
        return mlx_err_set(err, MLX_EINVAL, "tensor '%s' is too large", name);
    t->n_dims = n_dims;
    t->type = type;
    t->nbytes = elems / be * bb;
    return 0;
}

static int push_tensor(gguf_writer *w, struct wtensor *t, const char *name, mlx_err *err)
{
    t->name = mlx_strdup(name);
    if (t->name == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    if (w->n_t == w->cap_t) {
        size_t cap = w->cap_t ? 2 * w->cap_t : 64;
        struct wtensor *grown = mlx_realloc(w->t, cap * sizeof *grown);
        if (grown == NULL) {
            mlx_free(t->name);
            return mlx_err_set(err, MLX_ENOMEM, "out of memory");
        }
        w->t = grown;
        w->cap_t = cap;
    }
    w->t[w->n_t++] = *t;
    return 0;
}

int gguf_writer_add_tensor(gguf_writer *w, const char *name, ggml_type type,
                           uint32_t n_dims, const uint64_t *ne, const void *data,
                           size_t nbytes, mlx_err *err)
{
    struct wtensor t = {.data = data};
    int rc = describe_tensor(w, &t, name, type, n_dims, ne, err);
    if (rc != 0)
        return rc;
    if (data == NULL || nbytes != t.nbytes)
        return mlx_err_set(
            err, MLX_EINVAL,
            "tensor '%s' needs %llu bytes for its shape and type; %zu were "
            "given",
            name, (unsigned long long)t.nbytes, data ? nbytes : 0);
    return push_tensor(w, &t, name, err);
}

int gguf_writer_add_tensor_fill(gguf_writer *w, const char *name, ggml_type type,
                                uint32_t n_dims, const uint64_t *ne,
                                gguf_tensor_fill fill, void *arg, mlx_err *err)
{
    struct wtensor t = {.fill = fill, .arg = arg};
    int rc = describe_tensor(w, &t, name, type, n_dims, ne, err);
    if (rc != 0)
        return rc;
    if (fill == NULL)
        return mlx_err_set(err, MLX_EINVAL, "tensor '%s' has no fill function", name);
    return push_tensor(w, &t, name, err);
}
