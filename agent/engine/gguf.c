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

#include "agent/engine/gguf_int.h"
#include "common/alloc.h"

/* The smallest a kv pair and a tensor info can be, to bound counts by the
 * bytes left before allocating for them: a 1-byte key, a type, a 1-byte
 * value; a 1-byte name, n_dims = 0, a type and an offset. */
#define MIN_KV_BYTES     (8 + 1 + 4 + 1)
#define MIN_TENSOR_BYTES (8 + 1 + 4 + 4 + 8)

const char *gguf_show_str(gguf_str s, char buf[64])
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

int gguf_err_truncated(mlx_err *err, const char *what, const char *name)
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
        return gguf_err_truncated(err, "the metadata of key", key);
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
        return gguf_err_truncated(err, "the metadata of key", key);
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
                return gguf_err_truncated(err, "the metadata of key", key);
        }
    } else {
        uint64_t size = gguf_type_size((gguf_type)elem);
        /* n <= MLX_GGUF_MAX_ARRAY and size <= 8: the product cannot overflow. */
        if (!cur_has(c, n * size))
            return gguf_err_truncated(err, "the metadata of key", key);
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
    const char *key = gguf_show_str(kv->key, name);
    uint32_t type;
    if (cur_u32(c, &type) != RD_OK)
        return gguf_err_truncated(err, "the metadata of key", key);
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
        return rc == RD_OK ? 0 : gguf_err_truncated(err, "the metadata of key", key);
    }
    return read_scalar(c, kv->type, kv, key, err);
}

int gguf_str_cmp(gguf_str a, gguf_str b)
{
    uint64_t n = a.len < b.len ? a.len : b.len;
    int d = n == 0 ? 0 : memcmp(a.ptr, b.ptr, (size_t)n);
    if (d != 0)
        return d;
    return a.len < b.len ? -1 : a.len > b.len;
}

static int cmp_kv(const void *a, const void *b)
{
    return gguf_str_cmp((*(const gguf_kv *const *)a)->key,
                        (*(const gguf_kv *const *)b)->key);
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
        if (gguf_str_cmp(g->kv_by_key[i - 1]->key, g->kv_by_key[i]->key) == 0) {
            char name[64];
            return mlx_err_set(err, MLX_ECORRUPT, "key '%s' appears twice",
                               gguf_show_str(g->kv_by_key[i]->key, name));
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
        (rc = read_alignment(g, err)) != 0 || (rc = gguf_read_tensors(g, &c, err)) != 0)
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

/* Binary search over an index sorted by gguf_str_cmp; get() gives an entry's name. */
static const void *search(const void *const *index, uint64_t n, const char *name,
                          gguf_str (*get)(const void *))
{
    gguf_str want = {name, strlen(name)};
    uint64_t lo = 0, hi = n;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        int d = gguf_str_cmp(get(index[mid]), want);
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
