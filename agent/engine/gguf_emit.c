/*
 * gguf_emit.c — laying out and writing a GGUF v3 file from a gguf_writer
 * (what is collected is in gguf_write.c; the layout in gguf.c).
 *
 * The whole layout (every tensor's offset and the total size) is planned
 * before the first byte goes out, so the memory target is allocated once at
 * its exact size and a fill that hands over the wrong number of bytes is
 * caught at the end of its tensor. Output goes through one 1 MiB buffer;
 * a file is written beside its final path and renamed into place.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/engine/gguf_int.h"
#include "common/alloc.h"
#include "common/buf.h"

#define OUT_BUF_BYTES (1u << 20)

struct gguf_sink {
    int fd;           /* -1: writing to mem */
    const char *path; /* for sentences */
    uint8_t *mem;     /* the exact-size memory target, or the file buffer */
    size_t len, cap;  /* bytes in mem, and its size */
    uint64_t left;    /* bytes the tensor being filled may still take */
    bool filling;
};

void gguf_put_le(uint8_t *p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* The alignment the file will use: general.alignment when set, else 32. */
static int plan_alignment(const gguf_writer *w, uint64_t *align, mlx_err *err)
{
    *align = GGUF_DEFAULT_ALIGNMENT;
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kv[i].key, "general.alignment") != 0)
            continue;
        /* The encoded value: u32 type word, then (for UINT32) 4 bytes; a
         * value of another type may be shorter, so the type goes first. */
        const uint8_t *v = w->kv[i].val;
        uint32_t type = (uint32_t)v[0] | (uint32_t)v[1] << 8 | (uint32_t)v[2] << 16 |
                        (uint32_t)v[3] << 24;
        uint32_t a = 0;
        if (type == GGUF_TYPE_UINT32 && w->kv[i].val_len == 8)
            a = (uint32_t)v[4] | (uint32_t)v[5] << 8 | (uint32_t)v[6] << 16 |
                (uint32_t)v[7] << 24;
        if (a == 0 || (a & (a - 1)) != 0 || a > MLX_GGUF_MAX_ALIGNMENT)
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
    if (!sink->filling)
        return mlx_err_set(err, MLX_EINVAL, "gguf_sink_write outside a tensor fill");
    if (len > sink->left)
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
    gguf_put_le(b, v, n);
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
