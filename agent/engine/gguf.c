/*
 * gguf.c — parsing a GGUF v2/v3 file that may have been written by anyone.
 *
 * A GGUF file is one header, read front to back, then the tensor data. All
 * integers are little-endian; nothing in the header is aligned.
 *
 *   offset  size  field
 *   0       4     magic "GGUF" (47 47 55 46)
 *   4       4     u32 version: 3 (2 is the same layout; 1 had u32 counts
 *                 and lengths; a version that reads as 0x03000000 is a
 *                 big-endian file)
 *   8       8     u64 tensor count
 *   16      8     u64 metadata (kv) count
 *   24      …     kv pairs, each:
 *                   string key            u64 length, then that many bytes
 *                   u32 value type        gguf_type
 *                   value                 a scalar of 1, 2, 4 or 8 bytes;
 *                                         a string; or an array:
 *                                         u32 element type, u64 count, the
 *                                         elements back to back
 *           …     tensor infos, each:
 *                   string name
 *                   u32 n_dims            at most 4
 *                   u64 ne[n_dims]        ne[0] is the row length
 *                   u32 ggml_type
 *                   u64 offset            from the data start, a multiple
 *                                         of the alignment
 *           …     zero padding to the next multiple of the alignment
 *                 (general.alignment, default 32)
 *   data    …     tensor data: tensor i's bytes at data + offset_i, its size
 *                 given by its type's block geometry and its shape
 *
 * The parser keeps a cursor (pos) and the end (size); every read first
 * checks that its bytes lie between them, and every count is checked both
 * against its ceiling in common/limits.h and against the bytes left, before
 * anything is allocated from it. Values are never copied: the gguf_file
 * points into the mapping.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/engine/gguf.h"
#include "common/alloc.h"

/* The smallest a kv pair and a tensor info can be, to bound counts by the
 * bytes left before allocating for them: a 1-byte key, a type, a 1-byte
 * value; a 1-byte name, n_dims = 0, a type and an offset. */
#define MIN_KV_BYTES     (8 + 1 + 4 + 1)
#define MIN_TENSOR_BYTES (8 + 1 + 4 + 4 + 8)

typedef struct gguf_impl {
    gguf_file file;
    gguf_kv *kv;
    gguf_tensor *tensors;
    const gguf_kv **kv_by_key;          /* sorted by key, for gguf_find */
    const gguf_tensor **tensor_by_name; /* sorted by name */
    void *map;                          /* the mmap'd file, or NULL for gguf_open_mem */
    size_t map_len;
} gguf_impl;

struct cursor {
    const uint8_t *base;
    uint64_t pos, size;
};

/* Internal results of a cursor read, turned into sentences by the caller,
 * who knows what was being read. */
enum { RD_OK = 0, RD_SHORT = -1, RD_LONG = -2 };

static bool cur_has(const struct cursor *c, uint64_t n)
{
    return n <= c->size - c->pos;
}

static int cur_bytes(struct cursor *c, void *out, size_t n)
{
    if (!cur_has(c, n))
        return RD_SHORT;
    memcpy(out, c->base + c->pos, n);
    c->pos += n;
    return RD_OK;
}

/* Little-endian reads that do not depend on the host's byte order. */
static int cur_u32(struct cursor *c, uint32_t *out)
{
    uint8_t b[4];
    if (cur_bytes(c, b, 4) != RD_OK)
        return RD_SHORT;
    *out = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
           (uint32_t)b[3] << 24;
    return RD_OK;
}

static int cur_u64(struct cursor *c, uint64_t *out)
{
    uint32_t lo, hi;
    if (cur_u32(c, &lo) != RD_OK || cur_u32(c, &hi) != RD_OK)
        return RD_SHORT;
    *out = (uint64_t)hi << 32 | lo;
    return RD_OK;
}

/* A length-prefixed string of at most max bytes. */
static int cur_str(struct cursor *c, uint64_t max, gguf_str *out)
{
    uint64_t len;
    if (cur_u64(c, &len) != RD_OK)
        return RD_SHORT;
    if (len > max)
        return RD_LONG;
    if (!cur_has(c, len))
        return RD_SHORT;
    out->ptr = (const char *)c->base + c->pos;
    out->len = len;
    c->pos += len;
    return RD_OK;
}

/* A string from the file, made safe to quote in a sentence: at most 48
 * bytes, control and non-ASCII bytes shown as '?'. */
static const char *show(gguf_str s, char buf[64])
{
    size_t n = s.len < 48 ? (size_t)s.len : 48;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s.ptr[i];
        buf[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    if (n < s.len) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

static int corrupt_short(mlx_err *err, const char *what, const char *name)
{
    return mlx_err_set(err, MLX_ECORRUPT,
                       "truncated in %s '%s'; the file is incomplete or damaged, fetch "
                       "it again",
                       what, name);
}

/* One scalar of type t from the cursor into kv's union. */
static int read_scalar(struct cursor *c, gguf_type t, gguf_kv *kv, const char *key,
                       mlx_err *err)
{
    uint8_t b[8] = {0};
    size_t n = gguf_type_size(t);
    if (cur_bytes(c, b, n) != RD_OK)
        return corrupt_short(err, "the metadata of key", key);
    uint64_t u = 0;
    for (size_t i = 0; i < n; i++)
        u |= (uint64_t)b[i] << (8 * i);
    switch (t) {
    case GGUF_TYPE_BOOL:
        if (u > 1)
            return mlx_err_set(err, MLX_ECORRUPT,
                               "key '%s' is a BOOL of value %u; only 0 and 1 are valid",
                               key, (unsigned)u);
        kv->v.u64 = u;
        break;
    case GGUF_TYPE_INT8:
        kv->v.i64 = (int8_t)u;
        break;
    case GGUF_TYPE_INT16:
        kv->v.i64 = (int16_t)u;
        break;
    case GGUF_TYPE_INT32:
        kv->v.i64 = (int32_t)u;
        break;
    case GGUF_TYPE_INT64:
        kv->v.i64 = (int64_t)u;
        break;
    case GGUF_TYPE_FLOAT32: {
        uint32_t u32 = (uint32_t)u;
        float f;
        memcpy(&f, &u32, 4);
        kv->v.f64 = f;
        break;
    }
    case GGUF_TYPE_FLOAT64:
        memcpy(&kv->v.f64, &u, 8);
        break;
    default: /* the unsigned types */
        kv->v.u64 = u;
        break;
    }
    return 0;
}

static int read_array(struct cursor *c, gguf_kv *kv, const char *key, mlx_err *err)
{
    uint32_t elem;
    uint64_t n;
    if (cur_u32(c, &elem) != RD_OK || cur_u64(c, &n) != RD_OK)
        return corrupt_short(err, "the metadata of key", key);
    if (elem == GGUF_TYPE_ARRAY)
        return mlx_err_set(err, MLX_ECORRUPT,
                           "key '%s' is an array of arrays; nested arrays are not "
                           "supported",
                           key);
    if (elem >= GGUF_TYPE_COUNT_)
        return mlx_err_set(err, MLX_ECORRUPT,
                           "key '%s' is an array of unknown value type %u", key, elem);
    if (n > MLX_GGUF_MAX_ARRAY)
        return mlx_err_set(err, MLX_ECORRUPT,
                           "key '%s' is an array of %llu elements, more than the %u "
                           "allowed",
                           key, (unsigned long long)n, (unsigned)MLX_GGUF_MAX_ARRAY);
    kv->v.arr.type = (gguf_type)elem;
    kv->v.arr.n = n;
    kv->v.arr.data = c->base + c->pos;
    uint64_t start = c->pos;
    if (elem == GGUF_TYPE_STRING) {
        for (uint64_t i = 0; i < n; i++) {
            gguf_str s;
            int rc = cur_str(c, MLX_GGUF_MAX_STRING, &s);
            if (rc == RD_LONG)
                return mlx_err_set(err, MLX_ECORRUPT,
                                   "element %llu of key '%s' is longer than the %u "
                                   "bytes allowed",
                                   (unsigned long long)i, key,
                                   (unsigned)MLX_GGUF_MAX_STRING);
            if (rc != RD_OK)
                return corrupt_short(err, "the metadata of key", key);
        }
    } else {
        uint64_t size = gguf_type_size((gguf_type)elem);
        /* n <= MLX_GGUF_MAX_ARRAY and size <= 8: the product cannot overflow. */
        if (!cur_has(c, n * size))
            return corrupt_short(err, "the metadata of key", key);
        c->pos += n * size;
        if (elem == GGUF_TYPE_BOOL)
            for (uint64_t i = 0; i < n; i++)
                if (kv->v.arr.data[i] > 1)
                    return mlx_err_set(err, MLX_ECORRUPT,
                                       "element %llu of key '%s' is a BOOL of value %u; "
                                       "only 0 and 1 are valid",
                                       (unsigned long long)i, key, kv->v.arr.data[i]);
    }
    kv->v.arr.nbytes = c->pos - start;
    return 0;
}

static int read_kv(struct cursor *c, uint64_t i, gguf_kv *kv, mlx_err *err)
{
    char name[64];
    int rc = cur_str(c, MLX_GGUF_MAX_KEY, &kv->key);
    if (rc == RD_LONG)
        return mlx_err_set(err, MLX_ECORRUPT,
                           "the key of metadata pair %llu is longer than the %u bytes "
                           "allowed",
                           (unsigned long long)i, (unsigned)MLX_GGUF_MAX_KEY);
    if (rc != RD_OK)
        return mlx_err_set(err, MLX_ECORRUPT,
                           "truncated in the key of metadata pair %llu; the file is "
                           "incomplete or damaged, fetch it again",
                           (unsigned long long)i);
    /* Keys and names are looked up with C strings: a NUL byte would hide. */
    if (kv->key.len == 0 || memchr(kv->key.ptr, 0, (size_t)kv->key.len) != NULL)
        return mlx_err_set(err, MLX_ECORRUPT,
                           "metadata pair %llu has an empty key or a NUL byte in it",
                           (unsigned long long)i);
    const char *key = show(kv->key, name);
    uint32_t type;
    if (cur_u32(c, &type) != RD_OK)
        return corrupt_short(err, "the metadata of key", key);
    if (type >= GGUF_TYPE_COUNT_)
        return mlx_err_set(err, MLX_ECORRUPT, "key '%s' has unknown value type %u", key,
                           type);
    kv->type = (gguf_type)type;
    if (type == GGUF_TYPE_ARRAY)
        return read_array(c, kv, key, err);
    if (type == GGUF_TYPE_STRING) {
        rc = cur_str(c, MLX_GGUF_MAX_STRING, &kv->v.str);
        if (rc == RD_LONG)
            return mlx_err_set(
                err, MLX_ECORRUPT,
                "the value of key '%s' is longer than the %u bytes allowed", key,
                (unsigned)MLX_GGUF_MAX_STRING);
        return rc == RD_OK ? 0 : corrupt_short(err, "the metadata of key", key);
    }
    return read_scalar(c, kv->type, kv, key, err);
}

static int cmp_str(gguf_str a, gguf_str b)
{
    uint64_t n = a.len < b.len ? a.len : b.len;
    int d = n == 0 ? 0 : memcmp(a.ptr, b.ptr, (size_t)n);
    if (d != 0)
        return d;
    return a.len < b.len ? -1 : a.len > b.len;
}

static int cmp_kv(const void *a, const void *b)
{
    return cmp_str((*(const gguf_kv *const *)a)->key, (*(const gguf_kv *const *)b)->key);
}

static int cmp_tensor_name(const void *a, const void *b)
{
    return cmp_str((*(const gguf_tensor *const *)a)->name,
                   (*(const gguf_tensor *const *)b)->name);
}

static int cmp_tensor_offset(const void *a, const void *b)
{
    uint64_t x = (*(const gguf_tensor *const *)a)->offset;
    uint64_t y = (*(const gguf_tensor *const *)b)->offset;
    return x < y ? -1 : x > y;
}

static int read_kvs(gguf_impl *g, struct cursor *c, mlx_err *err)
{
    uint64_t n = g->file.n_kv;
    g->kv = mlx_calloc(n ? n : 1, sizeof *g->kv);
    g->kv_by_key = mlx_calloc(n ? n : 1, sizeof *g->kv_by_key);
    if (g->kv == NULL || g->kv_by_key == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory for %llu metadata pairs",
                           (unsigned long long)n);
    for (uint64_t i = 0; i < n; i++) {
        int rc = read_kv(c, i, &g->kv[i], err);
        if (rc != 0)
            return rc;
        g->kv_by_key[i] = &g->kv[i];
    }
    qsort(g->kv_by_key, n, sizeof *g->kv_by_key, cmp_kv);
    for (uint64_t i = 1; i < n; i++)
        if (cmp_str(g->kv_by_key[i - 1]->key, g->kv_by_key[i]->key) == 0) {
            char name[64];
            return mlx_err_set(err, MLX_ECORRUPT, "key '%s' appears twice",
                               show(g->kv_by_key[i]->key, name));
        }
    g->file.kv = g->kv;
    return 0;
}

static int read_alignment(gguf_impl *g, mlx_err *err)
{
    g->file.alignment = GGUF_DEFAULT_ALIGNMENT;
    const gguf_kv *kv = gguf_find(&g->file, "general.alignment");
    if (kv == NULL)
        return 0;
    bool is_signed = false;
    switch (kv->type) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_UINT16:
    case GGUF_TYPE_UINT32:
    case GGUF_TYPE_UINT64:
        break;
    case GGUF_TYPE_INT8:
    case GGUF_TYPE_INT16:
    case GGUF_TYPE_INT32:
    case GGUF_TYPE_INT64:
        is_signed = true;
        break;
    default:
        return mlx_err_set(
            err, MLX_ECORRUPT,
            "general.alignment has type %s; it must be an integer (UINT32)",
            gguf_type_name(kv->type));
    }
    uint64_t a = is_signed && kv->v.i64 < 0 ? 0 : kv->v.u64;
    if (a == 0 || (a & (a - 1)) != 0 || a > MLX_GGUF_MAX_ALIGNMENT) {
        char shown[32];
        if (is_signed)
            snprintf(shown, sizeof shown, "%lld", (long long)kv->v.i64);
        else
            snprintf(shown, sizeof shown, "%llu", (unsigned long long)kv->v.u64);
        return mlx_err_set(err, MLX_ECORRUPT,
                           "general.alignment is %s; it must be a power of two up to %u",
                           shown, (unsigned)MLX_GGUF_MAX_ALIGNMENT);
    }
    g->file.alignment = a;
    return 0;
}

/* The shape, type and offset of one tensor; where its bytes are is checked
 * once the data start is known. */
static int read_tensor_info(gguf_impl *g, struct cursor *c, uint64_t i, gguf_tensor *t,
                            mlx_err *err)
{
    char name[64];
    int rc = cur_str(c, MLX_GGUF_MAX_TENSOR_NAME, &t->name);
    if (rc == RD_LONG)
        return mlx_err_set(err, MLX_ECORRUPT,
                           "the name of tensor %llu is longer than the %u bytes allowed",
                           (unsigned long long)i, (unsigned)MLX_GGUF_MAX_TENSOR_NAME);
    if (rc != RD_OK)
        return mlx_err_set(err, MLX_ECORRUPT,
                           "truncated in the name of tensor %llu; the file is incomplete "
                           "or damaged, fetch it again",
                           (unsigned long long)i);
    if (t->name.len == 0 || memchr(t->name.ptr, 0, (size_t)t->name.len) != NULL)
        return mlx_err_set(err, MLX_ECORRUPT,
                           "tensor %llu has an empty name or a NUL byte in it",
                           (unsigned long long)i);
    const char *tn = show(t->name, name);
    uint32_t type;
    if (cur_u32(c, &t->n_dims) != RD_OK)
        return corrupt_short(err, "the info of tensor", tn);
    if (t->n_dims > GGUF_MAX_DIMS)
        return mlx_err_set(err, MLX_ECORRUPT,
                           "tensor '%s' has %u dimensions, more than the %d allowed", tn,
                           t->n_dims, GGUF_MAX_DIMS);
    uint64_t elems = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
        t->ne[d] = 1;
        if (d < t->n_dims && cur_u64(c, &t->ne[d]) != RD_OK)
            return corrupt_short(err, "the info of tensor", tn);
        if (t->ne[d] == 0)
            return mlx_err_set(err, MLX_ECORRUPT, "tensor '%s' has a dimension of 0", tn);
        if (t->ne[d] > (uint64_t)INT64_MAX / elems)
            return mlx_err_set(err, MLX_ECORRUPT,
                               "tensor '%s' has more elements than can be addressed", tn);
        elems *= t->ne[d];
    }
    if (cur_u32(c, &type) != RD_OK || cur_u64(c, &t->offset) != RD_OK)
        return corrupt_short(err, "the info of tensor", tn);
    uint32_t be, bb;
    ggml_type_block((ggml_type)type, &be, &bb);
    if (be == 0)
        return mlx_err_set(err, MLX_ECORRUPT,
                           "tensor '%s' has unknown type %u; the model may need a newer "
                           "reader",
                           tn, type);
    t->type = (ggml_type)type;
    if (t->ne[0] % be != 0)
        return mlx_err_set(err, MLX_ECORRUPT,
                           "tensor '%s' has rows of %llu elements, not a whole number of "
                           "%s blocks of %u",
                           tn, (unsigned long long)t->ne[0], ggml_type_name(t->type), be);
    /* elems / be < 2^63 and bb <= 292: at most 2^72 — check before multiplying. */
    if (elems / be > UINT64_MAX / bb)
        return mlx_err_set(err, MLX_ECORRUPT,
                           "tensor '%s' has more bytes than can be addressed", tn);
    t->nbytes = elems / be * bb;
    if (t->offset % g->file.alignment != 0)
        return mlx_err_set(err, MLX_ECORRUPT,
                           "tensor '%s' has offset %llu, not a multiple of the alignment "
                           "%llu",
                           tn, (unsigned long long)t->offset,
                           (unsigned long long)g->file.alignment);
    return 0;
}

/* Places each tensor in the file and refuses overlaps and duplicate names. */
static int place_tensors(gguf_impl *g, mlx_err *err)
{
    char a[64], b[64];
    uint64_t n = g->file.n_tensors, data = g->file.data_offset;
    for (uint64_t i = 0; i < n; i++) {
        gguf_tensor *t = &g->tensors[i];
        /* data <= size (checked by the caller), so size - data cannot wrap. */
        if (t->offset > g->file.size - data)
            return mlx_err_set(
                err, MLX_ECORRUPT,
                "tensor '%s' starts past the end of the file (offset %llu, "
                "%llu bytes of data); the file is incomplete, fetch it "
                "again",
                show(t->name, a), (unsigned long long)t->offset,
                (unsigned long long)(g->file.size - data));
        if (t->nbytes > g->file.size - data - t->offset)
            return mlx_err_set(
                err, MLX_ECORRUPT,
                "tensor '%s' ends past the end of the file (%llu bytes at "
                "offset %llu, %llu bytes of data); the file is incomplete, "
                "fetch it again",
                show(t->name, a), (unsigned long long)t->nbytes,
                (unsigned long long)t->offset, (unsigned long long)(g->file.size - data));
        t->data = g->file.base + data + t->offset;
        g->tensor_by_name[i] = t;
    }
    /* Sorted by offset, each tensor must end before the next begins. */
    qsort(g->tensor_by_name, n, sizeof *g->tensor_by_name, cmp_tensor_offset);
    for (uint64_t i = 1; i < n; i++) {
        const gguf_tensor *p = g->tensor_by_name[i - 1], *t = g->tensor_by_name[i];
        if (p->offset + p->nbytes > t->offset)
            return mlx_err_set(err, MLX_ECORRUPT, "tensors '%s' and '%s' overlap",
                               show(p->name, a), show(t->name, b));
    }
    qsort(g->tensor_by_name, n, sizeof *g->tensor_by_name, cmp_tensor_name);
    for (uint64_t i = 1; i < n; i++)
        if (cmp_str(g->tensor_by_name[i - 1]->name, g->tensor_by_name[i]->name) == 0)
            return mlx_err_set(err, MLX_ECORRUPT, "tensor '%s' appears twice",
                               show(g->tensor_by_name[i]->name, a));
    return 0;
}

static int read_tensors(gguf_impl *g, struct cursor *c, mlx_err *err)
{
    uint64_t n = g->file.n_tensors;
    g->tensors = mlx_calloc(n ? n : 1, sizeof *g->tensors);
    g->tensor_by_name = mlx_calloc(n ? n : 1, sizeof *g->tensor_by_name);
    if (g->tensors == NULL || g->tensor_by_name == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory for %llu tensors",
                           (unsigned long long)n);
    for (uint64_t i = 0; i < n; i++) {
        int rc = read_tensor_info(g, c, i, &g->tensors[i], err);
        if (rc != 0)
            return rc;
    }
    g->file.tensors = g->tensors;
    /* pos <= size and alignment <= 2^20, so rounding up cannot wrap. */
    uint64_t a = g->file.alignment;
    g->file.data_offset = (c->pos + a - 1) / a * a;
    if (n > 0 && g->file.data_offset > g->file.size)
        return mlx_err_set(err, MLX_ECORRUPT,
                           "the file ends before its tensor data begins (at byte %llu); "
                           "it is incomplete, fetch it again",
                           (unsigned long long)g->file.data_offset);
    if (n == 0)
        return 0;
    return place_tensors(g, err);
}

static int read_header(gguf_impl *g, struct cursor *c, mlx_err *err)
{
    static const uint8_t magic[4] = {'G', 'G', 'U', 'F'};
    size_t have = c->size < 4 ? (size_t)c->size : 4;
    if (c->size == 0)
        return mlx_err_set(err, MLX_EINVAL, "the file is empty, not a GGUF model");
    if (memcmp(c->base, magic, have) != 0)
        return mlx_err_set(err, MLX_EINVAL,
                           "not a GGUF model (it does not start with \"GGUF\")");
    uint32_t version, magic_word;
    if (cur_u32(c, &magic_word) != RD_OK || cur_u32(c, &version) != RD_OK)
        return mlx_err_set(
            err, MLX_ECORRUPT,
            "truncated in the header (%llu bytes); the file is incomplete, "
            "fetch it again",
            (unsigned long long)c->size);
    if (version == 1)
        return mlx_err_set(err, MLX_ECORRUPT,
                           "unsupported GGUF version 1; convert the model again with a "
                           "current llama.cpp");
    if ((version & 0xffff) == 0 && (version >> 24 == 2 || version >> 24 == 3))
        return mlx_err_set(err, MLX_ECORRUPT,
                           "a big-endian GGUF file; only little-endian files are "
                           "supported");
    if (version != 2 && version != 3)
        return mlx_err_set(err, MLX_ECORRUPT,
                           "unsupported GGUF version %u; versions 2 and 3 are read",
                           version);
    g->file.version = version;
    if (cur_u64(c, &g->file.n_tensors) != RD_OK || cur_u64(c, &g->file.n_kv) != RD_OK)
        return mlx_err_set(
            err, MLX_ECORRUPT,
            "truncated in the header (%llu bytes); the file is incomplete, "
            "fetch it again",
            (unsigned long long)c->size);
    uint64_t nt = g->file.n_tensors, nk = g->file.n_kv, left = c->size - c->pos;
    if (nt > MLX_GGUF_MAX_TENSORS || nk > MLX_GGUF_MAX_KV)
        return mlx_err_set(err, MLX_ECORRUPT,
                           "the header claims %llu tensors and %llu metadata pairs; at "
                           "most %u and %u are allowed",
                           (unsigned long long)nt, (unsigned long long)nk,
                           (unsigned)MLX_GGUF_MAX_TENSORS, (unsigned)MLX_GGUF_MAX_KV);
    /* Both counts are below 2^17 here, so the sum cannot overflow. */
    if (nt * MIN_TENSOR_BYTES + nk * MIN_KV_BYTES > left)
        return mlx_err_set(err, MLX_ECORRUPT,
                           "the header claims %llu tensors and %llu metadata pairs, more "
                           "than the %llu bytes after it can hold",
                           (unsigned long long)nt, (unsigned long long)nk,
                           (unsigned long long)left);
    return 0;
}

static int parse(gguf_impl *g, mlx_err *err)
{
    struct cursor c = {.base = g->file.base, .pos = 0, .size = g->file.size};
    int rc;
    if ((rc = read_header(g, &c, err)) != 0 || (rc = read_kvs(g, &c, err)) != 0 ||
        (rc = read_alignment(g, err)) != 0 || (rc = read_tensors(g, &c, err)) != 0)
        return rc;
    return 0;
}

static int open_impl(const void *data, size_t size, void *map, gguf_file **out,
                     mlx_err *err)
{
    gguf_impl *g = mlx_calloc(1, sizeof *g);
    if (g == NULL) {
        if (map != NULL)
            munmap(map, size);
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    }
    g->map = map;
    g->map_len = size;
    g->file.base = data;
    g->file.size = size;
    g->file.priv_ = g;
    int rc = parse(g, err);
    if (rc != 0) {
        gguf_close(&g->file);
        return rc;
    }
    *out = &g->file;
    return 0;
}

int gguf_open_mem(const void *data, size_t size, gguf_file **out, mlx_err *err)
{
    if (data == NULL && size > 0)
        return mlx_err_set(err, MLX_EINVAL, "no bytes to read a GGUF model from");
    return open_impl(size > 0 ? data : "", size, NULL, out, err);
}

int gguf_open(const char *path, gguf_file **out, mlx_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return mlx_err_set(err, errno == ENOENT ? MLX_ENOENT : MLX_EIO,
                           "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    int rc = 0;
    void *map = NULL;
    if (fstat(fd, &st) != 0) {
        rc = mlx_err_set(err, MLX_EIO, "cannot stat %s: %s", path, strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        rc = mlx_err_set(err, MLX_EINVAL, "%s is not a regular file", path);
    } else if ((uint64_t)st.st_size > SIZE_MAX) {
        rc = mlx_err_set(err, MLX_ETOOBIG, "%s is too large to map", path);
    } else if (st.st_size > 0) {
        map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            map = NULL;
            rc = mlx_err_set(err, errno == ENOMEM ? MLX_ENOMEM : MLX_EIO,
                             "cannot map %s: %s", path, strerror(errno));
        }
    }
    close(fd); /* the mapping keeps the file */
    if (rc != 0)
        return rc;
    size_t size = (size_t)st.st_size;
    rc = open_impl(map != NULL ? map : "", size, map, out, err);
    if (rc != 0)
        return mlx_err_prefix(err, rc, "%s", path);
    return 0;
}

void gguf_close(gguf_file *f)
{
    if (f == NULL)
        return;
    gguf_impl *g = f->priv_;
    if (g->map != NULL)
        munmap(g->map, g->map_len);
    mlx_free(g->kv);
    mlx_free(g->kv_by_key);
    mlx_free(g->tensors);
    mlx_free(g->tensor_by_name);
    mlx_free(g);
}

/* Binary search over an index sorted by cmp_str; get() gives an entry's name. */
static const void *search(const void *const *index, uint64_t n, const char *name,
                          gguf_str (*get)(const void *))
{
    gguf_str want = {name, strlen(name)};
    uint64_t lo = 0, hi = n;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        int d = cmp_str(get(index[mid]), want);
        if (d == 0)
            return index[mid];
        if (d < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static gguf_str kv_key(const void *p)
{
    return ((const gguf_kv *)p)->key;
}

static gguf_str tensor_name(const void *p)
{
    return ((const gguf_tensor *)p)->name;
}

const gguf_kv *gguf_find(const gguf_file *f, const char *key)
{
    const gguf_impl *g = f->priv_;
    return search((const void *const *)g->kv_by_key, f->n_kv, key, kv_key);
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name)
{
    const gguf_impl *g = f->priv_;
    return search((const void *const *)g->tensor_by_name, f->n_tensors, name,
                  tensor_name);
}
