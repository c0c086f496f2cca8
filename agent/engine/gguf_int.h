/*
 * gguf_int.h — what the GGUF files share: the reader (gguf.c,
 * gguf_tensors.c) and the writer (gguf_write.c, gguf_emit.c); other
 * modules use gguf.h.
 */
#ifndef MLX_AGENT_ENGINE_GGUF_INT_H
#define MLX_AGENT_ENGINE_GGUF_INT_H

#include <stdbool.h>
#include <string.h>

#include "agent/engine/gguf.h"

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

static inline bool cur_has(const struct cursor *c, uint64_t n)
{
    return n <= c->size - c->pos;
}

static inline int cur_bytes(struct cursor *c, void *out, size_t n)
{
    if (!cur_has(c, n))
        return RD_SHORT;
    memcpy(out, c->base + c->pos, n);
    c->pos += n;
    return RD_OK;
}

/* Little-endian reads that do not depend on the host's byte order. */
static inline int cur_u32(struct cursor *c, uint32_t *out)
{
    uint8_t b[4];
    if (cur_bytes(c, b, 4) != RD_OK)
        return RD_SHORT;
    *out = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
           (uint32_t)b[3] << 24;
    return RD_OK;
}

static inline int cur_u64(struct cursor *c, uint64_t *out)
{
    uint32_t lo, hi;
    if (cur_u32(c, &lo) != RD_OK || cur_u32(c, &hi) != RD_OK)
        return RD_SHORT;
    *out = (uint64_t)hi << 32 | lo;
    return RD_OK;
}

/* A length-prefixed string of at most max bytes. */
static inline int cur_str(struct cursor *c, uint64_t max, gguf_str *out)
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


/* "truncated in WHAT 'NAME'; …": MLX_ECORRUPT. */
int gguf_err_truncated(mlx_err *err, const char *what, const char *name);

/* memcmp order, a prefix first. */
int gguf_str_cmp(gguf_str a, gguf_str b);

/* Reads the tensor infos at c (after the kv pairs and the alignment are
 * known), places each tensor in the file and builds the name index. */
int gguf_read_tensors(gguf_impl *g, struct cursor *c, mlx_err *err);

/* The writer's collection (gguf_write.c), laid out by gguf_emit.c. */
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

/* v's n low bytes, little-endian, at p. */
void gguf_put_le(uint8_t *p, uint64_t v, size_t n);

#endif
