/*
 * gguf_tensors.c — the tensor infos of a GGUF header (layout in gguf.c):
 * each tensor's shape, type and offset, then where its bytes lie.
 *
 * A tensor's size follows from its type's block geometry and its shape, so
 * the reader computes it (never trusting the file for it) and checks, with
 * overflow in mind, that the elements fit in 63 bits, that rows are whole
 * blocks, and that the bytes lie inside the file. Sorted by offset, each
 * tensor must end before the next begins; sorted by name, no two may share
 * a name (the name index is kept for gguf_find_tensor).
 */
#include <stdlib.h>
#include <string.h>

#include "agent/engine/gguf_int.h"
#include "common/alloc.h"

static int cmp_tensor_name(const void *a, const void *b)
{
    return gguf_str_cmp((*(const gguf_tensor *const *)a)->name,
                        (*(const gguf_tensor *const *)b)->name);
}

static int cmp_tensor_offset(const void *a, const void *b)
{
    uint64_t x = (*(const gguf_tensor *const *)a)->offset;
    uint64_t y = (*(const gguf_tensor *const *)b)->offset;
    return x < y ? -1 : x > y;
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
    const char *tn = gguf_show_str(t->name, name);
    uint32_t type;
    if (cur_u32(c, &t->n_dims) != RD_OK)
        return gguf_err_truncated(err, "the info of tensor", tn);
    if (t->n_dims > GGUF_MAX_DIMS)
        return mlx_err_set(err, MLX_ECORRUPT,
                           "tensor '%s' has %u dimensions, more than the %d allowed", tn,
                           t->n_dims, GGUF_MAX_DIMS);
    uint64_t elems = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
        t->ne[d] = 1;
        if (d < t->n_dims && cur_u64(c, &t->ne[d]) != RD_OK)
            return gguf_err_truncated(err, "the info of tensor", tn);
        if (t->ne[d] == 0)
            return mlx_err_set(err, MLX_ECORRUPT, "tensor '%s' has a dimension of 0", tn);
        if (t->ne[d] > (uint64_t)INT64_MAX / elems)
            return mlx_err_set(err, MLX_ECORRUPT,
                               "tensor '%s' has more elements than can be addressed", tn);
        elems *= t->ne[d];
    }
    if (cur_u32(c, &type) != RD_OK || cur_u64(c, &t->offset) != RD_OK)
        return gguf_err_truncated(err, "the info of tensor", tn);
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
                gguf_show_str(t->name, a), (unsigned long long)t->offset,
                (unsigned long long)(g->file.size - data));
        if (t->nbytes > g->file.size - data - t->offset)
            return mlx_err_set(
                err, MLX_ECORRUPT,
                "tensor '%s' ends past the end of the file (%llu bytes at "
                "offset %llu, %llu bytes of data); the file is incomplete, "
                "fetch it again",
                gguf_show_str(t->name, a), (unsigned long long)t->nbytes,
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
                               gguf_show_str(p->name, a), gguf_show_str(t->name, b));
    }
    qsort(g->tensor_by_name, n, sizeof *g->tensor_by_name, cmp_tensor_name);
    for (uint64_t i = 1; i < n; i++)
        if (gguf_str_cmp(g->tensor_by_name[i - 1]->name, g->tensor_by_name[i]->name) == 0)
            return mlx_err_set(err, MLX_ECORRUPT, "tensor '%s' appears twice",
                               gguf_show_str(g->tensor_by_name[i]->name, a));
    return 0;
}

int gguf_read_tensors(gguf_impl *g, struct cursor *c, mlx_err *err)
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
