/*
 * gguf_write.c — writing GGUF v3 files (layout in gguf.c's head comment).
 *
 * Metadata values are encoded (type word and little-endian payload) when
 * they are set, so a failed set changes nothing and writing is a copy.
 * Tensors are only described until the write: their bytes come from the
 * caller's buffer or from its fill callback, straight into a 1 MiB output
 * buffer, so writing a model never holds a second copy of its weights.
 *
 * The whole layout (every tensor's offset and the total size) is planned
 * before the first byte goes out: the memory target is allocated once at
 * its exact size, and a fill that hands over the wrong number of bytes is
 * caught at the end of its tensor.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/engine/gguf.h"
#include "common/alloc.h"
#include "common/buf.h"

#define OUT_BUF_BYTES (1u << 20)

struct wkv {
    char *key;
    uint8_t *val; /* u32 type word, then the payload, as in the file */
    size_t val_len;
};

struct wtensor {
    char *name;
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS];
    ggml_type type;
    uint64_t nbytes, offset;
    const void *data;      /* or: */
    gguf_tensor_fill fill; /* with its arg */
    void *arg;
};

struct gguf_writer {
    struct wkv *kv;
    size_t n_kv, cap_kv;
    struct wtensor *t;
    size_t n_t, cap_t;
};

struct gguf_sink {
    int fd;           /* -1: writing to mem */
    const char *path; /* for sentences */
    uint8_t *mem;     /* the exact-size memory target, or the file buffer */
    size_t len, cap;  /* bytes in mem, and its size */
    uint64_t left;    /* bytes the tensor being filled may still take */
    bool filling;
};

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

static void put_le(uint8_t *p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static int buf_le(mlx_buf *b, uint64_t v, size_t n)
{
    uint8_t bytes[8];
    put_le(bytes, v, n);
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

/* The alignment the file will use: general.alignment when set, else 32. */
static int plan_alignment(const gguf_writer *w, uint64_t *align, mlx_err *err)
{
    *align = GGUF_DEFAULT_ALIGNMENT;
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kv[i].key, "general.alignment") != 0)
            continue;
        const uint8_t *v = w->kv[i].val;
        uint32_t type = (uint32_t)v[0] | (uint32_t)v[1] << 8 | (uint32_t)v[2] << 16 |
                        (uint32_t)v[3] << 24;
        uint32_t a = (uint32_t)v[4] | (uint32_t)v[5] << 8 | (uint32_t)v[6] << 16 |
                     (uint32_t)v[7] << 24;
        if (type != GGUF_TYPE_UINT32 || a == 0 || (a & (a - 1)) != 0 ||
            a > MLX_GGUF_MAX_ALIGNMENT)
            return mlx_err_set(err, MLX_EINVAL,
                               "general.alignment must be a UINT32 power of two up to %u",
                               (unsigned)MLX_GGUF_MAX_ALIGNMENT);
        *align = a;
    }
    return 0;
}

static uint64_t round_up(uint64_t n, uint64_t a)
{
    return (n + a - 1) / a * a;
}

/* Sets every tensor's offset; returns the header size and total size. */
static int plan(gguf_writer *w, uint64_t *align, uint64_t *header, uint64_t *total,
                mlx_err *err)
{
    int rc = plan_alignment(w, align, err);
    if (rc != 0)
        return rc;
    uint64_t h = 24;
    for (size_t i = 0; i < w->n_kv; i++)
        h += 8 + strlen(w->kv[i].key) + w->kv[i].val_len;
    for (size_t i = 0; i < w->n_t; i++)
        h += 8 + strlen(w->t[i].name) + 4 + 8 * (uint64_t)w->t[i].n_dims + 4 + 8;
    uint64_t data = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        w->t[i].offset = data;
        data += round_up(w->t[i].nbytes, *align);
    }
    *header = h;
    *total = round_up(h, *align) + data;
    return 0;
}

static int sink_flush(gguf_sink *s, mlx_err *err)
{
    const uint8_t *p = s->mem;
    size_t left = s->len;
    while (left > 0) {
        ssize_t n = write(s->fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return mlx_err_set(err, MLX_EIO, "cannot write %s: %s", s->path,
                               strerror(errno));
        p += n;
        left -= (size_t)n;
    }
    s->len = 0;
    return 0;
}

static int sink_put(gguf_sink *s, const void *data, size_t len, mlx_err *err)
{
    const uint8_t *p = data;
    while (len > 0) {
        if (s->len == s->cap) {
            if (s->fd < 0)
                return mlx_err_set(err, MLX_EINTERNAL, "GGUF layout planned too small");
            int rc = sink_flush(s, err);
            if (rc != 0)
                return rc;
        }
        size_t n = s->cap - s->len < len ? s->cap - s->len : len;
        memcpy(s->mem + s->len, p, n);
        s->len += n;
        p += n;
        len -= n;
    }
    return 0;
}

int gguf_sink_write(gguf_sink *sink, const void *data, size_t len, mlx_err *err)
{
    if (!sink->filling || len > sink->left)
        return mlx_err_set(err, MLX_EINVAL,
                           "a tensor fill wrote more bytes than its tensor holds");
    sink->left -= len;
    return sink_put(sink, data, len, err);
}

static int put_zeros(gguf_sink *s, uint64_t n, mlx_err *err)
{
    static const uint8_t zeros[4096];
    while (n > 0) {
        size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
        int rc = sink_put(s, zeros, k, err);
        if (rc != 0)
            return rc;
        n -= k;
    }
    return 0;
}

static int put_int(gguf_sink *s, uint64_t v, size_t n, mlx_err *err)
{
    uint8_t b[8];
    put_le(b, v, n);
    return sink_put(s, b, n, err);
}

static int put_string(gguf_sink *s, const char *str, mlx_err *err)
{
    size_t len = strlen(str);
    int rc = put_int(s, len, 8, err);
    return rc != 0 ? rc : sink_put(s, str, len, err);
}

static int emit_header(gguf_writer *w, gguf_sink *s, mlx_err *err)
{
    int rc;
    if ((rc = sink_put(s, "GGUF", 4, err)) != 0 || (rc = put_int(s, 3, 4, err)) != 0 ||
        (rc = put_int(s, w->n_t, 8, err)) != 0 || (rc = put_int(s, w->n_kv, 8, err)) != 0)
        return rc;
    for (size_t i = 0; i < w->n_kv; i++)
        if ((rc = put_string(s, w->kv[i].key, err)) != 0 ||
            (rc = sink_put(s, w->kv[i].val, w->kv[i].val_len, err)) != 0)
            return rc;
    for (size_t i = 0; i < w->n_t; i++) {
        const struct wtensor *t = &w->t[i];
        if ((rc = put_string(s, t->name, err)) != 0 ||
            (rc = put_int(s, t->n_dims, 4, err)) != 0)
            return rc;
        for (uint32_t d = 0; d < t->n_dims; d++)
            if ((rc = put_int(s, t->ne[d], 8, err)) != 0)
                return rc;
        if ((rc = put_int(s, (uint64_t)t->type, 4, err)) != 0 ||
            (rc = put_int(s, t->offset, 8, err)) != 0)
            return rc;
    }
    return 0;
}

static int emit(gguf_writer *w, gguf_sink *s, uint64_t align, uint64_t header,
                mlx_err *err)
{
    int rc = emit_header(w, s, err);
    if (rc == 0)
        rc = put_zeros(s, round_up(header, align) - header, err);
    for (size_t i = 0; i < w->n_t && rc == 0; i++) {
        struct wtensor *t = &w->t[i];
        if (t->fill == NULL) {
            rc = sink_put(s, t->data, (size_t)t->nbytes, err);
        } else {
            s->filling = true;
            s->left = t->nbytes;
            rc = t->fill(t->arg, s, err);
            s->filling = false;
            if (rc == 0 && s->left != 0)
                rc = mlx_err_set(err, MLX_EINVAL,
                                 "the fill of tensor '%s' wrote %llu of its %llu bytes",
                                 t->name, (unsigned long long)(t->nbytes - s->left),
                                 (unsigned long long)t->nbytes);
            else if (rc != 0)
                rc = mlx_err_prefix(err, rc, "tensor '%s'", t->name);
        }
        if (rc == 0)
            rc = put_zeros(s, round_up(t->nbytes, align) - t->nbytes, err);
    }
    return rc;
}

int gguf_writer_to_mem(gguf_writer *w, void **data, size_t *len, mlx_err *err)
{
    uint64_t align, header, total;
    int rc = plan(w, &align, &header, &total, err);
    if (rc != 0)
        return rc;
    if (total > SIZE_MAX)
        return mlx_err_set(err, MLX_ETOOBIG, "the GGUF file is too large for memory");
    gguf_sink s = {.fd = -1, .path = "memory", .cap = (size_t)total};
    s.mem = mlx_malloc(s.cap);
    if (s.mem == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory for a %llu-byte GGUF file",
                           (unsigned long long)total);
    rc = emit(w, &s, align, header, err);
    if (rc == 0 && s.len != s.cap)
        rc = mlx_err_set(err, MLX_EINTERNAL, "GGUF layout planned too large");
    if (rc != 0) {
        mlx_free(s.mem);
        return rc;
    }
    *data = s.mem;
    *len = s.len;
    return 0;
}

int gguf_writer_write(gguf_writer *w, const char *path, mlx_err *err)
{
    uint64_t align, header, total;
    int rc = plan(w, &align, &header, &total, err);
    if (rc != 0)
        return rc;
    mlx_buf tmp;
    mlx_buf_init(&tmp, strlen(path) + 64);
    if (mlx_buf_printf(&tmp, "%s.tmp-XXXXXX", path) != 0)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    char *tmp_path = tmp.data;
    gguf_sink s = {.fd = -1, .path = path, .cap = OUT_BUF_BYTES};
    s.mem = mlx_malloc(s.cap);
    if (s.mem == NULL) {
        rc = mlx_err_set(err, MLX_ENOMEM, "out of memory");
        goto out;
    }
    s.fd = mkstemp(tmp_path);
    if (s.fd < 0) {
        rc = mlx_err_set(err, MLX_EIO, "cannot create %s: %s", tmp_path, strerror(errno));
        goto out;
    }
    if (fchmod(s.fd, 0644) != 0)
        rc = mlx_err_set(err, MLX_EIO, "cannot set the mode of %s: %s", tmp_path,
                         strerror(errno));
    if (rc == 0)
        rc = emit(w, &s, align, header, err);
    if (rc == 0)
        rc = sink_flush(&s, err);
    if (rc == 0 && fsync(s.fd) != 0)
        rc = mlx_err_set(err, MLX_EIO, "cannot sync %s: %s", tmp_path, strerror(errno));
    if (close(s.fd) != 0 && rc == 0)
        rc = mlx_err_set(err, MLX_EIO, "cannot write %s: %s", tmp_path, strerror(errno));
    if (rc == 0 && rename(tmp_path, path) != 0)
        rc = mlx_err_set(err, MLX_EIO, "cannot rename %s to %s: %s", tmp_path, path,
                         strerror(errno));
    if (rc != 0)
        unlink(tmp_path);
out:
    mlx_free(s.mem);
    mlx_buf_fini(&tmp);
    return rc;
}
